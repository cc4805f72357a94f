package supervisor

// Git configuration that runs code later (core.fsmonitor, core.hooksPath,
// an alias with "!", a filter driver, …) is persistence: written during a
// run, it runs in the user's own `git checkout` after it, outside any run.
// The files are read before the child starts and after it ends; entries
// that policy.GitConfigExecutes and that are new or changed become
// persistence alerts, and in enforce mode the file is put back as it was.
// .git/config cannot simply be read-only: git writes it for ordinary work
// (a branch's upstream, a remote).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"github.com/agentwatch/agentwatch/event"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
)

type gitConfigWatch struct {
	files  []string
	before map[string][]byte // nil entry: the file did not exist
}

// watchGitConfig reads the repository's and the user's git configuration.
func watchGitConfig(ws, home string) *gitConfigWatch {
	w := &gitConfigWatch{before: map[string][]byte{}}
	if gd := gitDirOf(ws); gd != "" {
		w.files = append(w.files, filepath.Join(gd, "config"))
	}
	if home != "" {
		w.files = append(w.files, filepath.Join(home, ".gitconfig"), filepath.Join(home, ".config", "git", "config"))
	}
	for _, f := range w.files {
		b, err := os.ReadFile(f)
		if err != nil {
			b = nil
		}
		w.before[f] = b
	}
	return w
}

// gitDirOf is the repository directory of the workspace: .git, or where a
// .git file ("gitdir: …", a linked worktree) points.
func gitDirOf(ws string) string {
	p := filepath.Join(ws, ".git")
	fi, err := os.Lstat(p)
	if err != nil {
		return ""
	}
	if fi.IsDir() {
		return p
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	dir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	if !ok {
		return ""
	}
	dir = strings.TrimSpace(dir)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(ws, dir)
	}
	return dir
}

// check compares the files now with the start; in enforce mode a file
// with a new code-executing entry is restored.
func (w *gitConfigWatch) check(enforce bool) (changes []recorder.GitConfigChange, gaps []event.Gap) {
	for _, f := range w.files {
		after, err := os.ReadFile(f)
		if err != nil || bytes.Equal(after, w.before[f]) {
			continue
		}
		old := execEntries(w.before[f])
		var found []recorder.GitConfigChange
		for kv, digest := range execEntries(after) {
			if _, ok := old[kv]; !ok {
				key, _, _ := strings.Cut(kv, "\x00")
				found = append(found, recorder.GitConfigChange{File: f, Key: key, Digest: digest})
			}
		}
		if len(found) > 0 && enforce {
			restored := true
			if w.before[f] == nil {
				restored = os.Remove(f) == nil
			} else if err := os.WriteFile(f, w.before[f], 0); err != nil {
				restored = false
				gaps = append(gaps, gapText("persistence", "restoring "+f+": "+oneLine(err)))
			}
			for i := range found {
				found[i].Restored = restored
			}
		}
		changes = append(changes, found...)
	}
	return changes, gaps
}

// execEntries parses a configuration file's bytes with git itself (no
// includes followed, nothing executed: `git config --file --list` only
// reads) and returns its code-executing entries as "key\x00digest".
func execEntries(b []byte) map[string]string {
	out := map[string]string{}
	if len(b) == 0 {
		return out
	}
	cmd := exec.Command("git", "config", "--file", "-", "--list", "--null")
	cmd.Stdin = bytes.NewReader(b)
	cmd.Env = []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=/nonexistent", "PATH=" + os.Getenv("PATH")}
	list, err := cmd.Output()
	if err != nil {
		return out
	}
	for _, rec := range bytes.Split(list, []byte{0}) {
		key, value, _ := strings.Cut(string(rec), "\n")
		if key == "" || !policy.GitConfigExecutes(key, value) {
			continue
		}
		sum := sha256.Sum256([]byte(value))
		d := hex.EncodeToString(sum[:])
		out[strings.ToLower(key)+"\x00"+d] = d
	}
	return out
}
