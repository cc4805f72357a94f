package supervisor_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/cli"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// pgAgentwatch runs agentwatch in dir with extra environment; it returns
// the exit code, stdout and stderr.
func pgAgentwatch(t *testing.T, env []string, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := agentwatch(t, args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running agentwatch %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// A PostgreSQL store through the command line: run records a real run
// into it; runs, show and report read it (also through AGENTWATCH_STORE).
// With the server stopped every command fails first, in one line naming
// the server, and run never starts its child. Killed while a run's child
// sleeps, the server loses nothing: the run waits in the local journal
// and the first command once the server is back saves it. No output ever
// shows the URL's password.
func TestPostgresStoreCommands(t *testing.T) {
	pg := privtest.StartPostgres(t)
	const pw = "never-print-this-pw"
	dsn := strings.Replace(pg.DSN, "agentwatch@", "agentwatch:"+pw+"@", 1) // trust auth: accepted, unused
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state) // store.JournalDir below, as the commands compute it
	env := []string{"XDG_STATE_HOME=" + state, cli.StoreEnv + "="}
	ws := t.TempDir()
	var outputs []string
	aw := func(extra []string, args ...string) (int, string, string) {
		t.Helper()
		code, out, errs := pgAgentwatch(t, append(append([]string{}, env...), extra...), ws, args...)
		outputs = append(outputs, out, errs)
		return code, out, errs
	}
	defer func() {
		for _, o := range outputs {
			if strings.Contains(o, pw) {
				t.Errorf("output shows the password:\n%s", o)
			}
		}
	}()

	code, _, errs := aw(nil, "run", "--user", "root", "--store", dsn, "--label", "team=pg", "--", "/bin/sh", "-c", "echo hi > note.txt")
	if code != 0 {
		t.Fatalf("run --store URL: exit %d\n%s", code, errs)
	}
	id := runID(t, errs)
	code, out, errs := aw(nil, "runs", "--store", dsn)
	if code != 0 || !strings.Contains(out, id) {
		t.Errorf("runs --store URL: exit %d, %q\n%s", code, out, errs)
	}
	code, out, errs = aw([]string{cli.StoreEnv + "=" + dsn}, "runs", "--json")
	if code != 0 || !strings.Contains(out, id) {
		t.Errorf("runs with AGENTWATCH_STORE: exit %d, %q\n%s", code, out, errs)
	}
	code, out, errs = aw(nil, "show", "--store", dsn, "latest", "--no-pager")
	if code != 0 || !strings.Contains(out, "note.txt") {
		t.Errorf("show --store URL latest: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = aw(nil, "report", "--store", dsn, "--since", "", "--json")
	var rep struct {
		Runs int `json:"runs"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Runs != 1 {
		t.Errorf("report --store URL --json: exit %d, runs %d\n%s\n%s", code, rep.Runs, out, errs)
	}

	_, out, errs = aw(nil, "doctor", "--store", dsn)
	if !strings.Contains(out, store.Redact(dsn)+": 1 runs") {
		t.Errorf("doctor --store URL does not count the run:\n%s\n%s", out, errs)
	}

	// The server stopped: every command fails at once, in one line.
	pg.Stop()
	marker := filepath.Join(t.TempDir(), "child-ran")
	local := t.TempDir()
	for _, args := range [][]string{
		{"run", "--user", "root", "--store", dsn, "--", "/bin/touch", marker},
		{"runs", "--store", dsn},
		{"show", "--store", dsn, "latest"},
		{"report", "--store", dsn},
		{"sync", "--store", local, "--to", dsn},
		{"store", "repair", "--store", dsn},
	} {
		code, out, errs := aw(nil, args...)
		t.Logf("%s: exit %d: %s", args[0], code, errs)
		want := "PostgreSQL server 127.0.0.1:" + strconv.Itoa(pg.Port) + ": connection refused"
		if args[0] == "store" {
			want = "applies to SQLite stores (directories) only"
		}
		if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, want) || out != "" {
			t.Errorf("%v with the server stopped: exit %d, stdout %q, stderr %q; want one line saying %q", args, code, out, errs, want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("run started its child although the store could not be reached")
	}

	// Killed while the child sleeps: kept in the local journal, saved by
	// the next command once the server is back.
	pg.Start(t)
	started := filepath.Join(t.TempDir(), "started")
	cmd := agentwatch(t, "run", "--user", "root", "--store", dsn, "--", "/bin/sh", "-c", "touch "+started+"; sleep 2; echo late > late.txt")
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = ws
	var runErr bytes.Buffer
	cmd.Stderr = &runErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the child never started:\n%s", runErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pg.Kill()
	err := cmd.Wait()
	outputs = append(outputs, runErr.String())
	t.Logf("run with the server killed: %v\n%s", err, runErr.String())
	if cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("exit %d, want the command's 0", cmd.ProcessState.ExitCode())
	}
	journal := store.JournalDir(dsn)
	if !strings.HasPrefix(journal, filepath.Join(state, "agentwatch")+"/journal-") {
		t.Errorf("journal of the URL store at %s, want under %s", journal, state)
	}
	if !strings.Contains(runErr.String(), "PostgreSQL server 127.0.0.1:"+strconv.Itoa(pg.Port)) || !strings.Contains(runErr.String(), "kept in "+journal) {
		t.Errorf("stderr does not say the run is kept in %s:\n%s", journal, runErr.String())
	}
	kept, _ := filepath.Glob(filepath.Join(journal, "*.journal"))
	if len(kept) != 1 {
		t.Fatalf("journal files %v, want the run's", kept)
	}
	lost := strings.TrimSuffix(filepath.Base(kept[0]), ".journal")

	pg.Start(t)
	code, out, errs = aw(nil, "runs", "--store", dsn)
	if code != 0 || !strings.Contains(errs, lost+", not saved when it ended, is saved now") || !strings.Contains(out, lost) {
		t.Errorf("runs after the restart: exit %d\n%s\n%s", code, out, errs)
	}
	if left, _ := filepath.Glob(filepath.Join(journal, "*.journal")); len(left) != 0 {
		t.Errorf("journal left after saving: %v", left)
	}
	st, err := store.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, r, err := st.Load(t.Context(), lost)
	if err != nil || r.Status != store.StatusLate {
		t.Fatalf("the run saved late: %+v, %v", r, err)
	}
	found := false
	for i := range tr.Spans {
		if v, ok := tr.Spans[i].Attr(telemetry.FilePath); ok && strings.HasSuffix(v.AsString(), "late.txt") {
			found = true
		}
	}
	if !found {
		t.Errorf("the run saved late lacks what its child did after the server died (late.txt)")
	}
}
