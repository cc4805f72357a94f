// Package cli is agentwatch's command line: the cobra command tree, flag
// parsing, and the one place where errors become exit codes. Commands parse
// flags into an options struct and call an injectable function, so parsing
// is tested without side effects.
//
// It must not do the work itself: running is the supervisor's, rendering is
// report's, sending is export's.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/agentwatch/agentwatch/supervisor"
	"github.com/agentwatch/agentwatch/termtext"
	"github.com/spf13/cobra"
)

// Exit codes of agentwatch itself. Any other code is the child's status
// passed through (128+N when signal N killed it).
const (
	ExitOK            = 0
	ExitUsage         = 2   // unknown flag, missing command or argument
	ExitFailure       = 125 // agentwatch failed; one line on stderr says why
	ExitCannotExecute = 126 // the command exists but cannot be executed
	ExitNotFound      = 127 // the command was not found
)

// Version, Commit and BuildDate are set at build time (make build:
// -ldflags "-X .../cli.Version=v1.2.3 -X .../cli.Commit=… -X .../cli.BuildDate=…");
// without them the module version and the Go toolchain's VCS stamp
// (the commit, its time, uncommitted changes) stand in.
var (
	Version   = ""
	Commit    = ""
	BuildDate = ""
)

// versionLine is what `agentwatch version` and --version print after the
// name: the version, the commit (+dirty when built from a modified tree)
// and when it was built (or committed, when the build date is not set).
func versionLine() string {
	commit, when, whenLabel, dirty := Commit, BuildDate, "built", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				if commit == "" {
					commit = kv.Value
				}
			case "vcs.time":
				if when == "" {
					when, whenLabel = kv.Value, "committed"
				}
			case "vcs.modified":
				dirty = kv.Value == "true" && Commit == ""
			}
		}
	}
	var parts []string
	if c, ok := strings.CutSuffix(commit, "+dirty"); ok {
		commit, dirty = c, true // make build's stamp of a modified tree
	}
	if commit != "" {
		if len(commit) > 12 {
			commit = commit[:12]
		}
		if dirty {
			commit += "+dirty"
		}
		parts = append(parts, "commit "+commit)
	}
	if when != "" {
		parts = append(parts, whenLabel+" "+when)
	}
	if len(parts) == 0 {
		return version()
	}
	return version() + " (" + strings.Join(parts, ", ") + ")"
}

// version returns the version agentwatch reports and records on traces.
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// usageError marks errors made by the caller (flags, arguments): they get
// the usage text and exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// configError is a bad setting the caller made outside the flags (an
// OTEL_EXPORTER_OTLP_* variable) or a flag value checked after parsing:
// exit 2 like a usage error, without the usage text, which would not help.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// ExitCode maps an error returned by a command to agentwatch's exit code.
func ExitCode(err error) int {
	var ue usageError
	var ce configError
	var pi policyInvalid
	var df doctorFailed
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue), errors.As(err, &ce):
		return ExitUsage
	case errors.As(err, &pi):
		return ExitPolicyInvalid
	case errors.As(err, &df):
		return ExitCheckFailed
	case errors.Is(err, supervisor.ErrCommandNotFound):
		return ExitNotFound
	case errors.Is(err, supervisor.ErrCannotExecute):
		return ExitCannotExecute
	}
	return ExitFailure
}

// Env is what the commands use from the outside world; tests replace it.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Run runs a command under observation (supervisor.Run).
	Run func(context.Context, supervisor.Options) (int, error)
}

// Main runs agentwatch with os.Args and returns the process exit code.
func Main() int {
	// Caught here so that nothing below dies of them: the supervisor
	// forwards them to the child and still records the run.
	ctx, stop := signal.NotifyContext(context.Background(),
		syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	// Development aids for `make bench` investigations: a CPU profile of
	// the whole invocation, and its allocations.
	if path := os.Getenv("AGENTWATCH_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	if path := os.Getenv("AGENTWATCH_MEMPROFILE"); path != "" {
		defer func() {
			if f, err := os.Create(path); err == nil {
				runtime.GC() // the profile is as of the last GC: include the end of the run
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	return Execute(ctx, os.Args[1:], Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Run:    supervisor.Run,
	})
}

// app carries the outcome of one invocation across cobra's callbacks.
type app struct {
	env     Env
	code    int  // exit status to return when the command succeeded
	started bool // a RunE began: errors from here on are not usage errors
}

// Execute parses args, runs the command and returns the exit code. Errors
// are printed once, as "agentwatch: <error>", plus the usage text for
// usage errors.
func Execute(ctx context.Context, args []string, env Env) int {
	a := &app{env: env}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		if !a.started {
			err = usageError{err}
		}
		for _, line := range errorLines(err) {
			fmt.Fprintf(env.Stderr, "agentwatch: %s\n", line)
		}
		var re *supervisor.RecordError
		if errors.As(err, &re) {
			// The command ran and agentwatch could not record all of
			// it: the command's status stands (CI keeps its meaning);
			// the failure is on stderr, in the run and in --result-file.
			return a.code
		}
		if code := ExitCode(err); code == ExitUsage && !errors.As(err, new(configError)) {
			fmt.Fprint(env.Stderr, cmd.UsageString())
			return code
		}
		return ExitCode(err)
	}
	return a.code
}

// errorLines is err made safe for the terminal: its message quotes run
// data (paths, names, a collector's reply), so each line is escaped with
// termtext and a newline inside a message shows as \n instead of forging
// a line. Only the joins of errors.Join are kept as separate lines, one per
// error; wrappers that add no text (usageError, policyInvalid) are looked
// through to find them.
func errorLines(err error) []string {
	for {
		if l, ok := err.(interface{ Lines() []string }); ok {
			var lines []string
			for _, line := range l.Lines() {
				lines = append(lines, termtext.Escape(line))
			}
			return lines
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			var lines []string
			for _, e := range j.Unwrap() {
				if e != nil {
					lines = append(lines, errorLines(e)...)
				}
			}
			return lines
		}
		inner := errors.Unwrap(err)
		if inner == nil || inner.Error() != err.Error() {
			return []string{termtext.Escape(err.Error())}
		}
		err = inner
	}
}

// wrap marks the start of a command's own work (see app.started).
func (a *app) wrap(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		return f(cmd, args)
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "agentwatch",
		Short: "Observe everything a coding agent's process tree does, as one OpenTelemetry trace",
		Long: `agentwatch wraps a coding agent (or any command), watches its whole process
tree with eBPF and inotify, and records one OpenTelemetry trace per run.

Exit codes: the command's own status (128+N when killed by signal N),
also when agentwatch could not record all of a run that ran (it says so
on stderr; --result-file tells a CI job); 2 usage error (also: a bad
OTEL_EXPORTER_OTLP_* setting; the command did not start); 125 agentwatch
failed before the command started (also: a malformed policy, or enforce
mode on a machine that cannot enforce); 126 cannot execute; 127 not
found. "policy check" exits 1 for an invalid file, "doctor" when a check
fails.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// `agentwatch completion bash|zsh|fish|powershell` (cobra's).
		CompletionOptions: cobra.CompletionOptions{},
		Version:           versionLine(),
	}
	root.SetVersionTemplate("agentwatch {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		a.runCommand(),
		a.runsCommand(),
		a.showCommand(),
		a.reportCommand(),
		a.syncCommand(),
		a.exportCommand(),
		a.annotateCommand(),
		a.doctorCommand(),
		a.policyCommand(),
		a.storeCommand(),
		a.versionCommand(),
	)
	return root
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print agentwatch's version",
		Args:  cobra.NoArgs,
		RunE: a.wrap(func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.env.Stdout, "agentwatch %s\n", versionLine())
			return nil
		}),
	}
}
