package supervisor_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/creack/pty"
	"go.opentelemetry.io/otel/attribute"
)

// TestPullRequestFromOutput runs a real child on a real terminal in a
// repository whose remote is github.com/acme/api: the pull request URL it
// prints, in two writes, is the run's (source output), another
// repository's is only a claim, and the terminal shows exactly what the
// child wrote.
func TestPullRequestFromOutput(t *testing.T) {
	privtest.Require(t)
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// No host or user git configuration (an insteadOf rule would rewrite
	// the remote), and no CI job around the test (its pull request would
	// be preferred).
	gitConfig := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(gitConfig, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "CI_") || strings.HasPrefix(k, "BUILDKITE") ||
			strings.HasPrefix(k, "CIRCLE") || strings.HasPrefix(k, "GIT_CONFIG") || k == "BUILD_ID" || k == "JENKINS_URL" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GIT_CONFIG_GLOBAL="+gitConfig, "GIT_CONFIG_NOSYSTEM=1")
	for _, args := range [][]string{{"init", "-q", ws}, {"-C", ws, "remote", "add", "origin", "https://github.com/acme/api.git"}} {
		git := exec.Command("git", args...)
		git.Env = env
		if out, err := git.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	// (The child's own PTY turns its \n into \r\n.)
	script := `printf 'opened \033[1mhttps://github.com/acme/ap'; sleep 0.3; printf 'i/pull/42\033[0m\n'; ` +
		`printf 'also https://github.com/evil/api/pull/1\n'`
	storeDir := t.TempDir()
	args := append(append([]string{"run", "--store", storeDir}, asSelf()...), "--", "/bin/sh", "-c", script)
	cmd := agentwatch(t, args...)
	cmd.Env = append(env, asAgentwatch+"=1")
	cmd.Dir = ws
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var out syncBuffer
	go io.Copy(&out, ptmx)
	if code := waitExit(t, cmd, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; terminal:\n%s", code, out.String())
	}
	out.waitFor(t, "recorded (", nil)
	screen := out.String()
	if !strings.Contains(screen, "opened \x1b[1mhttps://github.com/acme/api/pull/42\x1b[0m\r\n") {
		t.Errorf("the terminal did not get the child's bytes as written: %q", screen)
	}

	tr := loadRun(t, storeDir, screen)
	root := tr.Root()
	str := func(k attribute.Key) string { v, _ := root.Attr(k); return v.Emit() }
	if got := str(telemetry.VCSRepositoryURLFull); got != "https://github.com/acme/api" {
		t.Fatalf("vcs.repository.url.full %q", got)
	}
	for k, want := range map[attribute.Key]string{
		telemetry.PRURL:       "https://github.com/acme/api/pull/42",
		telemetry.VCSChangeID: "42",
		telemetry.PRSource:    "output",
	} {
		if got := str(k); got != want {
			t.Errorf("root %s = %q, want %q", k, got, want)
		}
	}
	v, _ := root.Attr(telemetry.PRClaimedURLs)
	if got := v.AsStringSlice(); !slices.Equal(got, []string{"https://github.com/evil/api/pull/1"}) {
		t.Errorf("claimed %q", got)
	}
}
