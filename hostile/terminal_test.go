package hostile

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
)

// tiocsti tries to type a command into every terminal the child can reach.
const tiocsti = `
import fcntl, termios, os
targets = []
try:
    targets.append(("tty", os.open("/dev/tty", os.O_RDWR)))
except OSError as e:
    print("tty open", e.errno)
for fd in (0, 1, 2):
    targets.append(("fd%d" % fd, fd))
for name, fd in targets:
    try:
        for c in "echo INJECTED\n":
            fcntl.ioctl(fd, termios.TIOCSTI, c)
        print(name, "injected")
    except OSError as e:
        print(name, "refused", e.errno)
`

// TestTIOCSTI runs agentwatch under a real terminal (script(1)) as an
// operator would, and after the run reads what the terminal would hand the
// operator's shell: an agent that typed into it would show up there.
func TestTIOCSTI(t *testing.T) {
	privtest.Require(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("script(1) is needed (util-linux)")
	}
	u := privtest.User(t, agent, agentHome)
	w := newWorkspace(t, u)
	for _, tc := range []struct{ name, redirect string }{
		{"pipe mode (stdin not a terminal)", "</dev/null"},
		{"pty mode", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var words []string
			for _, a := range []string{os.Args[0], "run", "--user", agent, "--store", t.TempDir(), "--", "/usr/bin/python3", "-c", tiocsti} {
				words = append(words, shellQuote(a))
			}
			aw := strings.Join(words, " ")
			// The "operator's shell": after the run, whatever was typed
			// into the terminal is what it reads next.
			shell := aw + " " + tc.redirect + "; read -t 1 line; echo \"NEXT:$line\""
			cmd := exec.Command("script", "-qec", shell, "/dev/null")
			cmd.Env = append(gitEnv(), asAgentwatch+"=1")
			cmd.Dir = w.dir
			in, _ := cmd.StdinPipe() // kept open: script ends with the shell
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatal("script did not finish")
			}
			in.Close()
			got := out.String()
			if !strings.Contains(got, "recorded") {
				t.Fatalf("no run recorded:\n%s", got)
			}
			for _, l := range strings.Split(got, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "NEXT:") && strings.Contains(l, "INJECTED") {
					t.Errorf("the operator's shell read an injected command: %q\n%s", l, got)
				}
			}
			if tc.redirect != "" && (!strings.Contains(got, "tty open 6") || strings.Contains(got, "injected")) {
				// ENXIO: no controlling terminal at all in pipe mode.
				t.Errorf("pipe mode: want /dev/tty ENXIO and no injection:\n%s", got)
			}
		})
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
