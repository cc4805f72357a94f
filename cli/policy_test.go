package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/policy"
)

// TestPolicyCheckEveryError: `policy check` prints every error of the
// file, one line each (file:line: key: reason), and exits 1; `run` prints
// one line, the first error and how many more.
func TestPolicyCheckEveryError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	doc := "version: 1\nmode: loud\nnetwork:\n  allow: ['*', ok.example, 'a b.example']\n  allow_cidrs: ['::/0']\nalerts:\n  spend: 1\n"
	if err := os.WriteFile(bad, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := execute(t, &fakeRun{}, "policy", "check", bad)
	want := []string{
		bad + `:2: mode: unknown mode "loud" (want observe or enforce)`,
		bad + `:4: network.allow[0]: bad pattern "*": ` + policy.ErrAllowsTooMuch.Error(),
		bad + `:4: network.allow[2]: bad pattern "a b.example": character ' ' not allowed in a host name`,
		bad + `:5: network.allow_cidrs[0]: bad CIDR "::/0": ` + policy.ErrAllowsTooMuch.Error(),
		bad + `:7: alerts.spend: unknown key (want one of dependency_install, retries_without_progress, spend_usd, unknown_domain, workflow_edit)`,
	}
	wantOut := "agentwatch: " + strings.Join(want, "\nagentwatch: ") + "\n"
	if code != ExitPolicyInvalid || out != "" || stderr != wantOut {
		t.Errorf("policy check: exit %d, stdout %q\nstderr:\n%s\nwant:\n%s", code, out, stderr, wantOut)
	}

	f := &fakeRun{}
	code, _, stderr = execute(t, f, "run", "--store", "/s", "--policy", bad, "--", "true")
	re := `^agentwatch: loading policy: ` + regexp.QuoteMeta(want[0]) + ` \(and 4 more errors; agentwatch policy check lists them\)\n$`
	if code != ExitFailure || f.called || !regexp.MustCompile(re).MatchString(stderr) {
		t.Errorf("run: exit %d, started %v, stderr %q, want %s", code, f.called, stderr, re)
	}
}

// TestPolicyTooLarge: a policy over 1 MiB is refused with one line before
// parsing, from --policy, from `policy check` and from the base commit
// (where it must not fall back to the built-in).
func TestPolicyTooLarge(t *testing.T) {
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	dir := t.TempDir()
	big := filepath.Join(dir, policy.FileName)
	data := "version: 1\n# " + strings.Repeat("x", 40<<20) + "\n"
	if err := os.WriteFile(big, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	limit := regexp.QuoteMeta("over the 1048576-byte (1 MiB) limit")
	code, _, stderr := execute(t, &fakeRun{}, "policy", "check", big)
	if code != ExitPolicyInvalid || !regexp.MustCompile(`^agentwatch: `+regexp.QuoteMeta(big)+`: policy file is 41943054 bytes, `+limit+"\n$").MatchString(stderr) {
		t.Errorf("policy check: exit %d, stderr %q", code, stderr)
	}
	f := &fakeRun{}
	code, _, stderr = execute(t, f, "run", "--store", "/s", "--policy", big, "--", "true")
	if code != ExitFailure || f.called || !regexp.MustCompile(limit+"\n$").MatchString(stderr) {
		t.Errorf("run --policy: exit %d, started %v, stderr %q", code, f.called, stderr)
	}

	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=a@b", "-c", "user.name=a"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", policy.FileName)
	git("commit", "-q", "-m", "big policy")
	_, err := resolvePolicy("", "", dir, nil)
	if err == nil || !regexp.MustCompile(`^loading policy: HEAD:\.agentwatch\.yaml: policy file is 1048577 bytes, `+limit+`$`).MatchString(err.Error()) {
		t.Errorf("committed 40 MB policy: %v", err)
	}
}

// TestPolicyWorktreeFIFO: a FIFO (or a symlink) planted as the worktree's
// .agentwatch.yaml neither blocks the next run nor is followed; it is
// reported as differing from the committed policy, which is used.
func TestPolicyWorktreeFIFO(t *testing.T) {
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	for _, plant := range []string{"fifo", "symlink"} {
		t.Run(plant, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, policy.FileName)
			os.WriteFile(f, []byte("version: 1\nmode: enforce\n"), 0o644)
			for _, args := range [][]string{{"init", "-q"}, {"add", policy.FileName}, {"commit", "-q", "-m", "p"}} {
				cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=a@b", "-c", "user.name=a"}, args...)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("git %v: %v\n%s", args, err, out)
				}
			}
			os.Remove(f)
			switch plant {
			case "fifo":
				if err := syscall.Mkfifo(f, 0o644); err != nil {
					t.Fatal(err)
				}
			case "symlink":
				target := filepath.Join(t.TempDir(), "other.yaml")
				os.WriteFile(target, []byte("version: 1\nmode: enforce\n"), 0o644) // the same bytes, through a link
				if err := os.Symlink(target, f); err != nil {
					t.Fatal(err)
				}
			}
			type result struct {
				p     *policy.Policy
				err   error
				warns []string
			}
			done := make(chan result, 1)
			go func() {
				var r result
				r.p, r.err = resolvePolicy("", "", dir, func(w string) { r.warns = append(r.warns, w) })
				done <- r
			}()
			select {
			case r := <-done:
				if r.err != nil || r.p.Mode != policy.Enforce || r.p.Source != "HEAD:"+policy.FileName {
					t.Errorf("policy %+v, %v", r.p, r.err)
				}
				if len(r.warns) != 1 || !strings.Contains(r.warns[0], "differs from the base commit's") {
					t.Errorf("warnings %q", r.warns)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("resolvePolicy blocked on a FIFO in the worktree")
			}
		})
	}
}
