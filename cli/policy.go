package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/termtext"
	"github.com/agentwatch/agentwatch/workspace"
	"github.com/spf13/cobra"
)

// ExitPolicyInvalid is `agentwatch policy check`'s status for a policy that
// does not compile: the check ran and said no, which is neither a usage
// error (2) nor agentwatch failing (125). A run with a bad policy is an
// agentwatch failure (125): the child never started.
const ExitPolicyInvalid = 1

// ExitCheckFailed is doctor's status when a check failed.
const ExitCheckFailed = 1

// policyInvalid marks a failed `policy check`. Its message is every error
// of the file, one per line (Lines); Execute escapes each and prefixes it
// with "agentwatch: ", so each line reads alone (file:line: key: reason). A run prints the one-line form
// (policy.Errors.Error: the first error and how many more).
type policyInvalid struct{ err error }

func (e policyInvalid) Error() string { return strings.Join(e.Lines(), "\n") }

// Lines is what Execute prints, each line escaped and prefixed alone.
func (e policyInvalid) Lines() []string {
	var pe *policy.Errors
	if errors.As(e.err, &pe) {
		return pe.Lines()
	}
	return []string{e.err.Error()}
}
func (e policyInvalid) Unwrap() error { return e.err }

// resolvePolicy finds and compiles the run's policy: --policy FILE, else
// .agentwatch.yaml at the git root of dir, else the built-in; then --mode,
// when given, replaces the file's mode.
//
// The workspace's policy is the base commit's (`git show
// HEAD:.agentwatch.yaml`), never the worktree's: the worktree is what the
// last agent left, and a policy planted there would govern the next run.
// warn receives one line when the worktree's file is ignored.
func resolvePolicy(file, mode, dir string, warn func(string)) (*policy.Policy, error) {
	var m policy.Mode
	if mode != "" {
		var err error
		if m, err = policy.ParseMode(mode); err != nil {
			return nil, usageError{fmt.Errorf("--mode: %w", err)}
		}
	}
	root := ""
	if file == "" {
		if dir == "" {
			wd, err := os.Getwd()
			if err != nil {
				return nil, fmt.Errorf("reading the working directory: %w", err)
			}
			dir = wd
		}
		root = workspace.Root(dir)
	}
	var p *policy.Policy
	var err error
	if file == "" && root != "" {
		p, err = basePolicy(root, warn)
	} else {
		p, err = policy.Lookup(file, root)
	}
	if err != nil {
		return nil, fmt.Errorf("loading policy: %w", err)
	}
	if m != "" && m != p.Mode {
		if p, err = p.WithMode(m); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (a *app) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Print the built-in policy or check a policy file",
		Long: `A policy file (.agentwatch.yaml at the workspace's git root, or --policy FILE)
says what a run may do: the child's environment, the network names and
addresses it may reach, the files it must not touch, and the alert
thresholds. Absent parts take the built-in values ("policy default").

Exit codes of "policy check": 0 valid, 1 invalid (every error in the file,
one line each naming the file, line, key and reason; also a file over
1 MiB), 2 usage error, 125 the file could not be read.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the built-in policy as a policy file",
		Args:  cobra.NoArgs,
		RunE: a.wrap(func(_ *cobra.Command, _ []string) error {
			_, err := a.env.Stdout.Write(policy.Default().Marshal())
			return err
		}),
	}, &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a policy file and print its compiled form and version",
		Long: `Validate FILE (default: the policy a run here would use) and print the
compiled policy as YAML, absent parts filled in, with its version (the sha256
of the canonical compiled form, recorded on every run as
agentwatch.policy.version) in the header comment.`,
		Args: cobra.MaximumNArgs(1),
		RunE: a.wrap(func(_ *cobra.Command, args []string) error {
			var p *policy.Policy
			var err error
			if len(args) == 1 {
				p, err = policy.Load(args[0])
			} else {
				p, err = resolvePolicy("", "", "", func(w string) { fmt.Fprintf(a.env.Stderr, "agentwatch: %s\n", termtext.Escape(w)) })
			}
			var pe *policy.Error
			if errors.As(err, &pe) {
				return policyInvalid{err}
			}
			if err != nil {
				return err
			}
			_, err = a.env.Stdout.Write(p.Marshal())
			return err
		}),
	})
	return cmd
}

// basePolicy is the policy committed at HEAD of the repository at root,
// else the built-in. A worktree file that is not the committed one is
// reported through warn and not used.
func basePolicy(root string, warn func(string)) (*policy.Policy, error) {
	// Plumbing only: cat-file runs no filter, textconv or pager that the
	// repository's (agent-writable) configuration could name, and root
	// reads a repository another user owns (safe.directory).
	cmd := exec.Command("git", "-c", "safe.directory=*", "-C", root, "cat-file", "blob", "HEAD:"+policy.FileName)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_OPTIONAL_LOCKS=0")
	committed, gitErr := boundedOutput(cmd, policy.MaxFileSize+1)
	if len(committed) > policy.MaxFileSize {
		return policy.Parse("HEAD:"+policy.FileName, committed) // refused: too large
	}
	worktree, wtErr := readWorktreePolicy(filepath.Join(root, policy.FileName))
	// A FIFO, symlink or unreadable file in the worktree is there too.
	present := wtErr == nil || !errors.Is(wtErr, os.ErrNotExist)
	switch {
	case gitErr == nil:
		if present && (wtErr != nil || !bytes.Equal(worktree, committed)) && warn != nil {
			warn(fmt.Sprintf("%s differs from the base commit's: using HEAD:%s (pass --policy to use another)", policy.FileName, policy.FileName))
		}
		return policy.Parse("HEAD:"+policy.FileName, committed)
	case present:
		if warn != nil {
			warn(fmt.Sprintf("%s is not in the base commit: using the built-in policy (pass --policy %s to use it)", policy.FileName, policy.FileName))
		}
	}
	return policy.Default(), nil
}

// boundedOutput is cmd.Output reading at most limit bytes: past it the
// command is killed and the bytes read so far returned with no error.
func boundedOutput(cmd *exec.Cmd, limit int64) ([]byte, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	data, readErr := io.ReadAll(io.LimitReader(out, limit))
	if int64(len(data)) >= limit {
		cmd.Process.Kill()
		cmd.Wait()
		return data, nil
	}
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	return data, readErr
}

// readWorktreePolicy reads the worktree's policy file only to compare it
// with the committed one. The worktree is the last agent's: the file may
// be a FIFO that would block the open or the read forever, a symlink, or
// huge. So: no symlink followed, a non-blocking open, regular files only,
// and a bounded read (a file over the limit differs from any committed
// policy, which is at most the limit).
func readWorktreePolicy(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(f, policy.MaxFileSize+1))
}
