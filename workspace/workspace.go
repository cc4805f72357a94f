// Package workspace takes evidence of the repository an agent works in,
// from the real git repository: root, remote, branch, HEAD, worktree status.
// It reads; it never changes the repository.
package workspace

// Snapshot is the state of the workspace at one moment.
type Snapshot struct {
	Root      string // git top-level, or the directory when not in git
	IsGit     bool
	Absent    string // why there is no git evidence, when IsGit is false
	RemoteURL string // credentials stripped
	Branch    string // empty when detached
	Head      string // commit SHA, empty for an unborn branch
	Dirty     bool
	Untracked int
}

// Root returns the git top-level containing dir, or dir itself when it is
// not inside a git work tree.
func Root(dir string) string { return dir }

// Take snapshots the workspace at dir. It never fails: missing evidence is
// reported in Absent.
func Take(dir string) *Snapshot { return &Snapshot{Root: dir, Absent: "not implemented"} }
