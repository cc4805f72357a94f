package main

// The fixed cost of a run: `agentwatch run -- true` in a plain directory,
// in a small git repository and in one of 10,000 files, where the start
// and end snapshots (git processes) and the end-of-run evidence (git
// status and diff against the base) are the cost — where agents really
// run.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
)

func (h *harness) startup(reps int) error {
	fmt.Printf("== agentwatch run -- true, start to finish (median of %d)\n", reps)
	small, err := h.gitRepo("repo", 1)
	if err != nil {
		return err
	}
	big, err := h.gitRepo("repo-10k", 10_000)
	if err != nil {
		return err
	}
	for _, where := range []struct {
		name, dir, target string
		evidence          bool // print the git_diff span's duration
	}{
		{"plain directory", h.work, "", false},
		{"git repository", small, " (target ≤ 150 ms, goal 100 ms)", false},
		{"git, 10,000 files", big, "", true},
	} {
		// One run untimed: the page cache and the index's stat data
		// settle, as they are for an agent run after the first.
		if _, err := h.runIn(where.dir, h.wrap(h.traceFile(), []string{"/bin/true"})); err != nil {
			return err
		}
		var plain, wrapped []sample
		var diff []float64
		for range reps {
			s, err := h.runIn(where.dir, []string{"/bin/true"})
			if err != nil {
				return err
			}
			plain = append(plain, s)
			tf := h.traceFile()
			s, err = h.runIn(where.dir, h.wrap(tf, []string{"/bin/true"}))
			if err != nil {
				return err
			}
			wrapped = append(wrapped, s)
			if where.evidence {
				d, err := evidenceTime(tf)
				if err != nil {
					return err
				}
				diff = append(diff, d.Seconds())
			}
		}
		fmt.Printf("  %-18s median %.1f ms%s (unwrapped /bin/true %.1f ms)\n", where.name, medianWall(wrapped)*1000, where.target, medianWall(plain)*1000)
		if where.evidence {
			fmt.Printf("  %-18s end-of-run evidence (git_diff span) median %.1f ms (target ≤ 300 ms)\n", "", median(diff)*1000)
		}
	}
	fmt.Println()
	return nil
}

// evidenceTime is the duration of the run's end-of-run evidence: the
// git_diff span under the root.
func evidenceTime(traceFile string) (time.Duration, error) {
	tr, err := readTrace(traceFile)
	if err != nil {
		return 0, err
	}
	root := tr.Root()
	for _, s := range spansOf(tr, telemetry.SpanGitDiff) {
		if s.ParentID != root.SpanID {
			continue
		}
		if s.StatusMessage != "" {
			return 0, fmt.Errorf("%s: git_diff span: %s", traceFile, s.StatusMessage)
		}
		return s.End.Sub(s.Start), nil
	}
	return 0, fmt.Errorf("%s: no git_diff span under the root", traceFile)
}

// gitRepo makes (untimed) a repository of n committed files, 100 to a
// directory, under the bench's temporary directory.
func (h *harness) gitRepo(name string, n int) (string, error) {
	repo := filepath.Join(filepath.Dir(h.work), name)
	for i := range n {
		p := filepath.Join(repo, fmt.Sprintf("d%03d/f%05d.go", i/100, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "package d%03d\n\n// File %d of the bench repository.\nconst F%d = %d\n", i/100, i, i, i), 0o644); err != nil {
			return "", err
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "bench"}} {
		if err := git(repo, args...); err != nil {
			return "", err
		}
	}
	return repo, nil
}

// gitEnv keeps the user's and the system's git configuration out of every
// git the bench runs, wrapped or not.
var gitEnv = []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}

// git runs git in dir with the bench's identity; errors are one line.
func git(dir string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@localhost", "-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), gitEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, lastLine(out))
	}
	return nil
}

// lastLine is the last non-empty line of a command's output, for an
// error that stays on one line.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
