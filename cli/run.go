package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/prices"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/supervisor"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"github.com/agentwatch/agentwatch/termtext"
	"github.com/spf13/cobra"
)

// runOptions are the flags of `agentwatch run`.
type runOptions struct {
	argv         []string
	traceFile    string
	otlpEndpoint string
	storeDir     string
	user         string
	task         string
	taskURL      string
	policyFile   string
	mode         string
	pricesFile   string
	captureFull  time.Duration
	fswatch      bool
	noFSWatch    bool
	resultFile   string
	labels       []string // --label key=value, repeatable (labels.go)
}

func (o runOptions) supervisorOptions(env Env) supervisor.Options {
	return supervisor.Options{
		Argv:      o.argv,
		User:      o.user,
		TraceFile: o.traceFile,
		OTLP:      export.Config{Endpoint: o.otlpEndpoint},
		StoreDir:  o.storeDir,
		FSWatch:   o.fswatch,
		TaskID:    o.task,
		TaskURL:   o.taskURL,
		Stdin:     env.Stdin,
		Stdout:    env.Stdout,
		Stderr:    env.Stderr,
		Version:   version(),

		CaptureFull: o.captureFull,
	}
}

func (a *app) runCommand() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command (an agent) under observation and record the run",
		Example: `  sudo agentwatch run -- claude -p "fix the flaky test"
  agentwatch run --trace-file run.json -- make test`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("run: missing command: agentwatch run [flags] -- CMD [ARGS...]")
			}
			return nil
		},
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			o.argv = args
			if o.storeDir == "" {
				return errors.New("finding the run store: no default directory (set XDG_STATE_HOME or HOME, or pass --store)")
			}
			if o.fswatch && o.noFSWatch {
				return usageError{errors.New("--fswatch and --no-fswatch contradict each other: pass one")}
			}
			if o.captureFull < 0 {
				return usageError{fmt.Errorf("--capture-full must be a positive duration (e.g. 30m), got %s", o.captureFull)}
			}
			// Compiled before anything starts: a malformed policy stops
			// the run with file, line, key and reason (exit 125).
			var notes []string
			pol, err := resolvePolicy(o.policyFile, o.mode, "", func(w string) {
				notes = append(notes, w)
				fmt.Fprintf(a.env.Stderr, "agentwatch: %s\n", termtext.Escape(w))
			})
			if err != nil {
				return err
			}
			so := o.supervisorOptions(a.env)
			// Before the child starts: a bad collector setting would
			// otherwise surface only after the run, as a lost export.
			if err := so.OTLP.Validate(); err != nil {
				return configError{err}
			}
			if so.Labels, err = parseLabels(o.labels); err != nil {
				return configError{err}
			}
			so.Policy = pol
			so.PolicyNotes = notes
			if o.pricesFile != "" {
				// Before anything starts, like the policy: a bad price
				// file is the user's to fix, not a run without costs.
				if so.Prices, err = prices.Load(o.pricesFile); err != nil {
					return fmt.Errorf("loading prices: %w", err)
				}
			}
			var res supervisor.Result
			so.Result = &res
			code, err := a.env.Run(cmd.Context(), so)
			a.code = code
			if o.resultFile != "" {
				if werr := writeResult(o.resultFile, code, res, err); werr != nil {
					return errors.Join(err, werr)
				}
			}
			return err
		}),
	}
	// Everything after the command name belongs to the command, even
	// without "--": `agentwatch run ls -la`.
	cmd.Flags().SetInterspersed(false)
	f := cmd.Flags()
	f.StringVar(&o.resultFile, "result-file", "", "write what became of the run to `FILE` as JSON: run_id, exit_code (the command's), saved, error (agentwatch's own failure); for CI")
	f.StringVar(&o.traceFile, "trace-file", "", "also append the trace to `FILE` as OTLP/JSON (one ExportTraceServiceRequest per line)")
	f.StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "send the trace to an OTLP collector at `URL` (grpc://host:port, http://host:port); default: OTEL_EXPORTER_OTLP_* variables")
	storeFlag(cmd, &o.storeDir)
	f.StringVar(&o.user, "user", "", "run the command as `USER` (name or uid); default: the sudo user; root only with --user root")
	f.StringVar(&o.task, "task", "", "task `ID` this run works on (recorded as agentwatch.task.id)")
	f.StringVar(&o.taskURL, "task-url", "", "task `URL` (recorded as agentwatch.task.url)")
	f.StringArrayVar(&o.labels, "label", nil, "label the run `KEY=VALUE` (repeatable; agentwatch.label.KEY on the root and the resource, over the policy's attributes; keys as the policy's)")
	f.StringVar(&o.policyFile, "policy", "", "policy `FILE`; default: .agentwatch.yaml at the workspace's git root, else the built-in (see `agentwatch policy`)")
	f.DurationVar(&o.captureFull, "capture-full", 0, "record prompts, responses, tool arguments and command output (redacted) for `DURATION` (e.g. 30m); default: metadata only")
	f.StringVar(&o.pricesFile, "prices", "", "model price `FILE` (JSON, the shape of prices/prices.json) merged over the built-in table for agentwatch.cost.usd")
	f.BoolVar(&o.fswatch, "fswatch", false, "also run the inotify watcher beside the eBPF sensor, a live cross-check of workspace changes (it costs the agent per file change; by default the end-of-run evidence is the cross-check). Without eBPF it runs anyway, as the file sensor")
	f.BoolVar(&o.noFSWatch, "no-fswatch", false, "the default since the end-of-run evidence became the cross-check: no inotify watcher while the eBPF sensor runs (kept for scripts that pass it)")
	f.StringVar(&o.mode, "mode", "", "observe (record and alert) or enforce (also block); overrides the policy's mode. Enforce refuses to run where it cannot enforce")
	return cmd
}

// runResult is the --result-file document.
type runResult struct {
	ExitCode int `json:"exit_code"` // the command's status (128+N: signal N); -1: it did not run
	supervisor.Result
}

// writeResult writes the --result-file: the command's status beside what
// became of its record, so a CI job tells "the tests failed" from
// "agentwatch could not save the run" (saved=false, error).
func writeResult(path string, code int, res supervisor.Result, runErr error) error {
	var re *supervisor.RecordError
	out := runResult{ExitCode: code, Result: res}
	if runErr != nil && !errors.As(runErr, &re) {
		out.ExitCode = -1 // the command did not run
		out.Error = strings.Join(strings.Fields(runErr.Error()), " ")
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing result file: %w", err)
	}
	return nil
}

// StoreEnv sets the default of every --store flag (a directory or a
// PostgreSQL URL); unset, it is store.DefaultDir().
const StoreEnv = "AGENTWATCH_STORE"

// defaultStore is the default of --store.
func defaultStore() string {
	if v := os.Getenv(StoreEnv); v != "" {
		return v
	}
	return store.DefaultDir()
}

// storeFlag adds --store to a command. The help shows the default
// without a URL's password.
func storeFlag(cmd *cobra.Command, dir *string) {
	def := defaultStore()
	cmd.Flags().StringVar(dir, "store", def, "run store: a `DIR`, or a PostgreSQL URL postgres://user@host/db; default $"+StoreEnv+", else the state directory")
	cmd.Flags().Lookup("store").DefValue = store.Redact(def)
}

// openStore opens the store a reading command reads, after saving the
// runs whose agentwatch died before it could (supervisor.Recover): the
// runs a reader lists include them.
func (a *app) openStore(dir string) (*store.Store, error) {
	if dir == "" {
		return nil, errors.New("finding the run store: no default directory (pass --store)")
	}
	st, err := store.Open(dir)
	if err != nil && store.IsURL(dir) {
		return nil, fmt.Errorf("opening store %s: %w", store.Redact(dir), err)
	}
	if errors.Is(err, store.ErrNotWritable) {
		// A full disk or a read-only mount: what the store holds is still
		// readable; its unsaved runs wait in the journal.
		ro, rerr := store.OpenReadOnly(dir)
		if rerr != nil {
			return nil, fmt.Errorf("opening store %s: %w (and read-only: %v)", dir, err, rerr)
		}
		fmt.Fprintf(a.env.Stderr, "agentwatch: store %s is read-only for now (%s); showing what it holds\n", termtext.Escape(dir), termtext.Escape(strings.Join(strings.Fields(err.Error()), " ")))
		return ro, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", dir, err)
	}
	a.recover(st, dir)
	return st, nil
}

// unsaved lists the runs kept in the store's journal that are not in the
// store (yet), as rows for `runs`.
func (a *app) unsaved(dir string) []store.Run {
	list, err := supervisor.ListUnsaved(dir)
	if err != nil {
		// The stored runs are still listed; the journal's trouble is said.
		fmt.Fprintf(a.env.Stderr, "agentwatch: listing unsaved runs: %s\n", termtext.Escape(strings.Join(strings.Fields(err.Error()), " ")))
		return nil
	}
	var out []store.Run
	for _, u := range list {
		out = append(out, store.Run{
			ID: u.RunID, Start: u.Start, ExitCode: u.ExitCode, Command: u.Command,
			Status: store.StatusUnsaved, StatusReason: u.Cause,
		})
	}
	return out
}

// recover saves interrupted runs and says so on stderr; a run it cannot
// save stays in its journal and is reported, never blocking the command.
func (a *app) recover(st *store.Store, dir string) {
	ids, err := supervisor.Recover(context.Background(), st, dir)
	for _, id := range ids {
		fmt.Fprintf(a.env.Stderr, "agentwatch: %s\n", termtext.Escape(id.Message()))
	}
	if err != nil {
		fmt.Fprintf(a.env.Stderr, "agentwatch: %s\n", termtext.Escape(strings.Join(strings.Fields(err.Error()), " ")))
	}
}

type exportOptions struct {
	storeDir     string
	otlpEndpoint string
	format       string // "" (send to the collector) or otlp-json
	output       string // with --format: a file, or - for stdout
}

// exportJSON writes a stored run (its review spans included) as one
// OTLP/JSON line: to stdout, or appended to a file the way --trace-file
// appends (whole lines, synced).
func (a *app) exportJSON(ctx context.Context, o exportOptions, id string) error {
	st, err := a.openStore(o.storeDir)
	if err != nil {
		return err
	}
	defer st.Close()
	tr, run, _, err := loadWithReviews(ctx, st, id)
	if err != nil {
		return fmt.Errorf("loading run %s: %w", id, err)
	}
	req := otlp.Request(tr)
	if o.output == "" || o.output == "-" {
		line, err := otlp.MarshalJSON(req)
		if err != nil {
			return fmt.Errorf("encoding run %s: %w", run.ID, err)
		}
		// Often read on a terminal: the run's strings as \u escapes
		// there, as in show --json.
		_, err = a.env.Stdout.Write(termtext.JSON(append(line, '\n')))
		return err
	}
	f, err := export.OpenFile(o.output)
	if err != nil {
		return fmt.Errorf("opening %s: %w", o.output, err)
	}
	if err := f.Write(req); err != nil {
		f.Close()
		return fmt.Errorf("writing run %s to %s: %w", run.ID, o.output, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing run %s to %s: %w", run.ID, o.output, err)
	}
	fmt.Fprintf(a.env.Stderr, "agentwatch: run %s written to %s (%d spans)\n", run.ID, termtext.Escape(o.output), len(tr.Spans))
	return nil
}

func (a *app) exportCommand() *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export RUN",
		Short: "Send a stored run to an OTLP collector (retry after a failed export), or write it as OTLP/JSON",
		Long: `export sends a stored run, with its review spans, to the OTLP collector
(--otlp-endpoint or OTEL_EXPORTER_OTLP_*), and marks it exported.

With --format otlp-json it writes the run instead, as one OTLP/JSON line
(the format of run --trace-file and of the OpenTelemetry Collector's file
exporter) to --output FILE (appended) or stdout (-o -, the default);
nothing is sent and the run's export status is unchanged.`,
		Args: cobra.ExactArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			switch o.format {
			case "":
			case "otlp-json":
				return a.exportJSON(cmd.Context(), o, args[0])
			default:
				return usageError{fmt.Errorf("--format %q: want otlp-json (or no --format to send to a collector)", o.format)}
			}
			if o.output != "" {
				return usageError{errors.New("--output goes with --format otlp-json")}
			}
			cfg := export.Config{Endpoint: o.otlpEndpoint}
			if !cfg.Enabled() {
				return usageError{errors.New("export: no collector: pass --otlp-endpoint URL or set OTEL_EXPORTER_OTLP_ENDPOINT (or --format otlp-json to write the run)")}
			}
			if err := cfg.Validate(); err != nil {
				return configError{err}
			}
			st, err := a.openStore(o.storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			tr, run, reviews, err := loadWithReviews(cmd.Context(), st, args[0]) // review spans go along
			if err != nil {
				return fmt.Errorf("loading run %s: %w", args[0], err)
			}
			upErr := export.Upload(cmd.Context(), cfg, otlp.Request(tr))
			if err := st.MarkExported(cmd.Context(), run.ID, upErr); err != nil {
				return fmt.Errorf("recording the export of run %s: %w", run.ID, err)
			}
			for _, rv := range reviews {
				if err := st.MarkAnnotationExported(cmd.Context(), run.ID, rv.Seq, upErr); err != nil {
					return err
				}
			}
			if upErr != nil {
				return fmt.Errorf("exporting run %s: %w", run.ID, upErr)
			}
			fmt.Fprintf(a.env.Stderr, "agentwatch: run %s exported (%d spans)\n", run.ID, len(tr.Spans))
			return nil
		}),
	}
	cmd.Flags().StringVar(&o.format, "format", "", "write the run instead of sending it: `otlp-json`")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "with --format: append to `FILE` (- or unset: stdout)")
	storeFlag(cmd, &o.storeDir)
	cmd.Flags().StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "collector `URL`; default: OTEL_EXPORTER_OTLP_* variables")
	return cmd
}
