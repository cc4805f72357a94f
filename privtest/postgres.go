package privtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PostgresUser is the account a test's PostgreSQL runs as: initdb and
// postgres refuse to run as root.
const PostgresUser = "agentwatch-pg"

// Postgres is a private PostgreSQL server for one test: its own data
// directory under the test's temporary directory, listening on loopback
// only, on a free port, with trust authentication for the database user
// "agentwatch". It is stopped (fast shutdown) when the test ends.
type Postgres struct {
	DSN  string // postgres://agentwatch@127.0.0.1:PORT/agentwatch?sslmode=disable
	Port int
	dir  string
	bin  string
	uid  uint32
	gid  uint32
}

// PostgresBin finds the server binaries (Debian's postgresql package puts
// them in /usr/lib/postgresql/VERSION/bin, not on PATH): the newest
// version there, else initdb on PATH. "" when there is none.
func PostgresBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(r)
		}
		return filepath.Dir(p)
	}
	return ""
}

// StartPostgres starts a private server and creates database "agentwatch"
// owned by user "agentwatch". It is privileged (it runs the server as
// PostgresUser); without the binaries it fails under CI=true and skips
// otherwise.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	Require(t)
	bin := PostgresBin()
	if bin == "" {
		if Strict() {
			t.Fatal("PostgreSQL server binaries not found (Debian package postgresql; .ci/run installs it)")
		}
		t.Skip("PostgreSQL server binaries not found (apt-get install postgresql)")
	}
	u := User(t, PostgresUser, "")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The test's TempDir is root's 0700: the server's directory lives in
	// a directory of its own that the server's user owns.
	base, err := os.MkdirTemp("", "agentwatch-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chown(base, uid, gid); err != nil {
		t.Fatal(err)
	}
	pg := &Postgres{dir: filepath.Join(base, "data"), bin: bin, uid: uint32(uid), gid: uint32(gid)}
	if out, err := pg.command("initdb", "-D", pg.dir, "-U", "agentwatch", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	// A port the kernel says is free now; a race with another process is
	// retried below.
	for attempt := 0; ; attempt++ {
		pg.Port = freePort(t)
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c max_connections=50 -c shared_buffers=32MB", pg.Port, base)
		out, err := pg.command("pg_ctl", "-D", pg.dir, "-l", filepath.Join(base, "log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput()
		if err == nil {
			break
		}
		log, _ := os.ReadFile(filepath.Join(base, "log"))
		if attempt < 2 && strings.Contains(string(log), "Address already in use") {
			continue
		}
		t.Fatalf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	t.Cleanup(pg.Stop)
	if out, err := pg.command("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "agentwatch", "agentwatch").CombinedOutput(); err != nil {
		t.Fatalf("createdb: %v: %s", err, out)
	}
	pg.DSN = fmt.Sprintf("postgres://agentwatch@127.0.0.1:%d/agentwatch?sslmode=disable", pg.Port)
	return pg
}

// CreateDatabase makes another empty database on the server and returns
// its DSN (tests that want a store each).
func (pg *Postgres) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	if out, err := pg.command("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "agentwatch", name).CombinedOutput(); err != nil {
		t.Fatalf("createdb %s: %v: %s", name, err, out)
	}
	return fmt.Sprintf("postgres://agentwatch@127.0.0.1:%d/%s?sslmode=disable", pg.Port, name)
}

// Stop shuts the server down (fast: open connections are closed).
func (pg *Postgres) Stop() {
	_ = pg.command("pg_ctl", "-D", pg.dir, "-m", "fast", "-w", "-t", "30", "stop").Run()
}

// Kill stops the server abruptly (immediate shutdown: no checkpoint), as
// a crash or a lost network would look to a client.
func (pg *Postgres) Kill() {
	_ = pg.command("pg_ctl", "-D", pg.dir, "-m", "immediate", "-w", "-t", "30", "stop").Run()
}

// Start starts a stopped server again on the same port.
func (pg *Postgres) Start(t testing.TB) {
	t.Helper()
	base := filepath.Dir(pg.dir)
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c max_connections=50", pg.Port, base)
	if out, err := pg.command("pg_ctl", "-D", pg.dir, "-l", filepath.Join(base, "log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v: %s", err, out)
	}
}

func (pg *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + pg.bin + ":/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: pg.uid, Gid: pg.gid}}
	return cmd
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// AddPasswordUser creates login role name with password and database
// name owned by it, and makes the server ask that role for its password
// (scram-sha-256) over TCP; everyone else keeps trust. It returns the
// DSN of that database as that role, without the password.
func (pg *Postgres) AddPasswordUser(t testing.TB, name, password string) string {
	t.Helper()
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %q LOGIN PASSWORD '%s'", name, strings.ReplaceAll(password, "'", "''")),
		fmt.Sprintf("CREATE DATABASE %q OWNER %q", name, name),
	} {
		if out, err := pg.command("psql", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "agentwatch", "-d", "agentwatch",
			"-v", "ON_ERROR_STOP=1", "-c", q).CombinedOutput(); err != nil {
			t.Fatalf("psql %s: %v: %s", q, err, out)
		}
	}
	hba := filepath.Join(pg.dir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("host all %q 127.0.0.1/32 scram-sha-256\n", name) // the first matching line wins
	if err := os.WriteFile(hba, append([]byte(line), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := pg.command("pg_ctl", "-D", pg.dir, "reload").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl reload: %v: %s", err, out)
	}
	// The reload is asynchronous: wait until the role is asked for a
	// password.
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		err := pg.command("psql", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", name, "-d", name, "-w", "-c", "select 1").Run()
		if err != nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the server still lets the role in without a password after pg_ctl reload")
		}
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", name, pg.Port, name)
}
