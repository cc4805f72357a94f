package workspace

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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

func (b *baseline) mkTemp() error {
	tmp, err := os.MkdirTemp("", "agentwatch-worktree-*")
	if err != nil {
		return fmt.Errorf("creating temporary object directory: %w", err)
	}
	b.tmp = tmp
	if err := os.Mkdir(filepath.Join(tmp, "objects"), 0o700); err != nil {
		return fmt.Errorf("creating temporary object directory: %w", err)
	}
	// git runs as the repository's owner (gitCmd): it writes here.
	if c := gitCredential(b.loc.top); c != nil {
		for _, p := range []string{tmp, filepath.Join(tmp, "objects")} {
			if err := os.Chown(p, int(c.Uid), int(c.Gid)); err != nil {
				return fmt.Errorf("creating temporary object directory: %w", err)
			}
		}
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
// returned so Evidence can still name them. filters are noFilters'
// options; untracked are status's untracked entries when known.
func (b *baseline) writeTree(maxFile int64, filters, untracked []string, known bool) (string, map[string]bool, error) {
	idx := filepath.Join(b.tmp, "index")
	os.Remove(idx)
	if err := copyFile(b.loc.index, idx); err != nil && !os.IsNotExist(err) {
		return "", nil, err
	} else if c := gitCredential(b.loc.top); err == nil && c != nil {
		if err := os.Chown(idx, int(c.Uid), int(c.Gid)); err != nil {
			return "", nil, err
		}
	}
	big := bigUntracked(b.loc.top, maxFile, untracked, known)
	var specs []string
	for p := range big {
		specs = append(specs, ":(exclude,literal)"+p)
	}
	// Clean filters (git-lfs) would run external programs that write into
	// .git/lfs: switch every configured one off. The content is hashed
	// as it is on disk.
	args := append(slices.Clone(filters), "add", "-A", "--ignore-errors")
	var stdin []byte
	if len(specs) > 0 {
		slices.Sort(specs)
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

// maxUntrackedDirs bounds the untracked directories named to ls-files on
// its command line; beyond it, all untracked files are listed.
const maxUntrackedDirs = 256

// bigUntracked returns the untracked files (as git add -A would add them)
// larger than maxFile. Status names an untracked file itself and an
// untracked directory once ("dir/"), so only the directories need a git
// call to list their files; without status's list every untracked file is
// listed.
func bigUntracked(top string, maxFile int64, untracked []string, known bool) map[string]bool {
	var files, dirs []string
	for _, p := range untracked {
		if strings.HasSuffix(p, "/") {
			dirs = append(dirs, ":(literal)"+p)
		} else {
			files = append(files, p)
		}
	}
	if !known || len(dirs) > 0 {
		args := []string{"ls-files", "-z", "--others", "--exclude-standard"}
		if known && len(dirs) <= maxUntrackedDirs {
			args = append(append(args, "--"), dirs...)
		}
		if out, err := gitRaw(top, args...); err == nil {
			files = append(files, splitNUL(out)...)
		}
	}
	big := map[string]bool{}
	for _, p := range files {
		if fi, err := os.Lstat(filepath.Join(top, p)); err == nil && fi.Mode().IsRegular() && fi.Size() > maxFile {
			big[p] = true
		}
	}
	return big
}

// noFilters returns -c options that disable the given clean/process
// filter keys (filter.<driver>.clean, filter.<driver>.process).
func noFilters(keys []string) []string {
	var opts []string
	for _, key := range keys {
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
