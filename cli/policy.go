package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/workspace"
	"github.com/spf13/cobra"
)

// ExitPolicyInvalid is `agentwatch policy check`'s status for a policy that
// does not compile: the check ran and said no, which is neither a usage
// error (2) nor agentwatch failing (125). A run with a bad policy is an
// agentwatch failure (125): the child never started.
const ExitPolicyInvalid = 1

// policyInvalid marks a failed `policy check`.
type policyInvalid struct{ err error }

func (e policyInvalid) Error() string { return e.err.Error() }
func (e policyInvalid) Unwrap() error { return e.err }

// resolvePolicy finds and compiles the run's policy: --policy FILE, else
// .agentwatch.yaml at the git root of dir, else the built-in; then --mode,
// when given, replaces the file's mode.
func resolvePolicy(file, mode, dir string) (*policy.Policy, error) {
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
	p, err := policy.Lookup(file, root)
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

Exit codes of "policy check": 0 valid, 1 invalid (one line names the file,
line, key and reason), 2 usage error, 125 the file could not be read.`,
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
				p, err = resolvePolicy("", "", "")
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
