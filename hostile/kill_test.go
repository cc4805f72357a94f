package hostile

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
)

// TestSupervisorKilled: `kill -9` of agentwatch while the agent has a
// background process that keeps trying a connection the policy refuses.
// The whole tree must be dead within a second, the connection must never
// be made, and the next agentwatch command must save the run as
// interrupted with what was observed.
func TestSupervisorKilled(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, agent, agentHome)
	w := newWorkspace(t, u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pol, []byte("version: 1\nmode: enforce\nnetwork:\n  allow: []\n  allow_loopback: false\n"), 0o644)
	storeDir := t.TempDir()
	marker := "aw-kill-" + strings.ReplaceAll(filepath.Base(w.root), "aw-hostile-", "")
	// The loop runs in its own session, as a daemon would, and tries the
	// refused connection every 10 ms; the foreground waits.
	script := `echo started > ` + w.dir + `/started
setsid /usr/bin/python3 -c '
import socket, time, sys
sys.argv[0] = "` + marker + `"
while True:
    try:
        socket.create_connection(("127.0.0.1", ` + itoa(port) + `), timeout=0.2).close()
        print("CONNECTED", flush=True)
    except OSError:
        pass
    time.sleep(0.01)
' ` + marker + ` </dev/null >/dev/null 2>&1 &
sleep 300`
	cmd := exec.Command(os.Args[0], "run", "--user", agent, "--policy", pol, "--store", storeDir, "--", "/bin/bash", "-c", script)
	cmd.Env = append(gitEnv(), asAgentwatch+"=1")
	cmd.Dir = w.dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && len(pgrep(marker)) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if len(pgrep(marker)) == 0 {
		cmd.Process.Kill()
		t.Fatalf("the background loop never started:\n%s", errb.String())
	}
	time.Sleep(300 * time.Millisecond) // it tried, and was refused
	if n := accepted.Load(); n != 0 {
		t.Fatalf("%d connections accepted before the kill: enforcement is not on", n)
	}
	killed := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for len(pgrep(marker)) > 0 && time.Since(killed) < 5*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if left := pgrep(marker); len(left) > 0 {
		t.Errorf("background process %v alive %v after the kill", left, time.Since(killed))
	} else if d := time.Since(killed); d > time.Second {
		t.Errorf("the tree took %v to die; want under a second", d)
	}
	time.Sleep(500 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections were made after agentwatch died", n)
	}

	// The hooks stayed attached (pinned) until recovery detaches them.
	journals, _ := filepath.Glob(filepath.Join(storeDir, "journal", "*.journal"))
	if len(journals) != 1 {
		t.Fatalf("journals after the kill: %v", journals)
	}
	pin := filepath.Join("/sys/fs/bpf/agentwatch", "run-"+strings.TrimSuffix(filepath.Base(journals[0]), ".journal"))
	if _, err := os.Stat(pin); err != nil {
		t.Errorf("the network hooks are not pinned after the kill: %v", err)
	}

	// The next command recovers it.
	runs := exec.Command(os.Args[0], "runs", "--store", storeDir)
	runs.Env = append(os.Environ(), asAgentwatch+"=1")
	out, err := runs.CombinedOutput()
	if err != nil {
		t.Fatalf("agentwatch runs: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "was interrupted") || !strings.Contains(string(out), "bash -c") ||
		!regexp.MustCompile(`(?m)^\S+\s.*\binterrupted\b.*bash -c`).MatchString(string(out)) {
		t.Errorf("runs did not recover the run:\n%s", out)
	}
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		t.Errorf("recovery left the pinned hooks %s (stat: %v)", pin, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(storeDir, "journal")); len(ents) != 0 {
		t.Errorf("journal left after recovery: %v", ents)
	}
	m := recoveredRe.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no recovered run id in:\n%s", out)
	}
	show := exec.Command(os.Args[0], "show", "--store", storeDir, "--json", m[1])
	show.Env = runs.Env
	js, _ := show.CombinedOutput()
	for _, want := range []string{"run interrupted", "python3", "started"} {
		if !strings.Contains(string(js), want) {
			t.Errorf("recovered run lacks %q:\n%.3000s", want, js)
		}
	}
}

var recoveredRe = regexp.MustCompile(`run (\S+) was interrupted`)

func pgrep(pattern string) []string {
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	return strings.Fields(string(out))
}

func itoa(n int) string { return strconv.Itoa(n) }
