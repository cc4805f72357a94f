package workspace

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// maxIgnoredEntries bounds the ignored-entry list kept from the start
// (directories count once, so this is rarely reached).
const maxIgnoredEntries = 20000

// baseline is the start of the run as Evidence needs it: the worktree as a
// tree object (tracked, modified and untracked files, ignored ones left
// out) in a temporary object directory, and the ignored entries.
type baseline struct {
	loc     repoLoc
	tmp     string // temporary directory: objects/ and the index copy
	tree    string // the worktree at the start; empty when it could not be taken
	err     string // why tree is empty
	ignored map[string]bool
	big     map[string]bool // untracked files too large to hash, left out of tree
	once    sync.Once
}

func newBaseline(loc repoLoc) *baseline {
	b := &baseline{loc: loc}
	if err := b.mkTemp(); err != nil {
		b.err = err.Error()
		return b
	}
	var err error
	b.tree, b.big, err = b.writeTree(DefaultLimits().MaxFileBytes)
	if err != nil {
		b.err = "worktree at start: " + absentReason(err)
	}
	b.ignored = ignoredEntries(loc.top, maxIgnoredEntries)
	return b
}

func (b *baseline) mkTemp() error {
	tmp, err := os.MkdirTemp("", "agentwatch-worktree-*")
	if err != nil {
		return fmt.Errorf("creating temporary object directory: %w", err)
	}
	b.tmp = tmp
	if err := os.Mkdir(filepath.Join(tmp, "objects"), 0o700); err != nil {
		return fmt.Errorf("creating temporary object directory: %w", err)
	}
	return nil
}

func (b *baseline) close() {
	b.once.Do(func() {
		if b.tmp != "" {
			os.RemoveAll(b.tmp)
		}
	})
}

// env points git at the temporary index and object directory, with the
// repository's objects as an alternate: new blobs and trees land in tmp,
// never in the repository.
func (b *baseline) env() []string {
	return []string{
		"GIT_INDEX_FILE=" + filepath.Join(b.tmp, "index"),
		"GIT_OBJECT_DIRECTORY=" + filepath.Join(b.tmp, "objects"),
		"GIT_ALTERNATE_OBJECT_DIRECTORIES=" + b.loc.objects,
	}
}

// writeTree records the worktree as it is now as a tree object. It starts
// from a copy of the user's index so that git re-hashes only files whose
// stat data changed. Untracked files larger than maxFile are left out (a
// stray multi-gigabyte dump must not be copied into /tmp); they are
// returned so Evidence can still name them.
func (b *baseline) writeTree(maxFile int64) (string, map[string]bool, error) {
	idx := filepath.Join(b.tmp, "index")
	os.Remove(idx)
	if err := copyFile(b.loc.index, idx); err != nil && !os.IsNotExist(err) {
		return "", nil, err
	}
	big := map[string]bool{}
	var specs []string
	if out, err := gitRaw(b.loc.top, "ls-files", "-z", "--others", "--exclude-standard"); err == nil {
		for _, p := range splitNUL(out) {
			if fi, err := os.Lstat(filepath.Join(b.loc.top, p)); err == nil && fi.Mode().IsRegular() && fi.Size() > maxFile {
				big[p] = true
				specs = append(specs, ":(exclude,literal)"+p)
			}
		}
	}
	// Clean filters (git-lfs) would run external programs that write into
	// .git/lfs: switch every configured one off. The content is hashed
	// as it is on disk.
	args := []string{"add", "-A", "--ignore-errors"}
	args = append(b.noFilters(), args...)
	var stdin []byte
	if len(specs) > 0 {
		args = append(args, "--pathspec-from-file=-", "--pathspec-file-nul")
		stdin = []byte(":/\x00" + strings.Join(specs, "\x00") + "\x00")
	} else {
		args = append(args, "--", ":/")
	}
	if _, err := gitEnv(b.loc.top, b.env(), stdin, args...); err != nil {
		return "", big, err
	}
	tree, err := gitEnv(b.loc.top, b.env(), nil, "write-tree")
	if err != nil {
		return "", big, err
	}
	return strings.TrimSpace(string(tree)), big, nil
}

// noFilters returns -c options that disable the repository's configured
// clean/process filters.
func (b *baseline) noFilters() []string {
	out, err := gitRaw(b.loc.top, "config", "-z", "--get-regexp", `^filter\..*\.(clean|process)$`)
	if err != nil {
		return nil
	}
	var opts []string
	for _, rec := range splitNUL(out) {
		key, _, _ := strings.Cut(rec, "\n")
		opts = append(opts, "-c", key+"=")
		if driver, ok := strings.CutSuffix(key, ".clean"); ok {
			opts = append(opts, "-c", driver+".required=false")
		} else if driver, ok := strings.CutSuffix(key, ".process"); ok {
			opts = append(opts, "-c", driver+".required=false")
		}
	}
	return opts
}

// ignoredEntries lists what git ignores, a wholly ignored directory once
// (node_modules/), bounded by max.
func ignoredEntries(top string, max int) map[string]bool {
	out, err := gitRaw(top, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory", "--no-empty-directory")
	if err != nil {
		return nil
	}
	m := map[string]bool{}
	for _, p := range splitNUL(out) {
		if len(m) >= max {
			break
		}
		m[p] = true
	}
	return m
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func splitNUL(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(b, []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}
