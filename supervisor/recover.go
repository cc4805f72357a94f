package supervisor

// The run journal and recovery. While a run runs, every event the recorder
// gets is also appended to <store>/journal/<run>.journal (journal package:
// framed, synced in bounded batches, flock-held by this process), with
// meta records for what recovery must undo: the run's cgroup, the pinned
// network hooks, the placeholders of absent protected paths. When the run
// is saved the journal is removed. When the supervisor died instead
// (SIGKILL, OOM, panic) its init died with it and the kernel killed the
// whole run (init.go); the next agentwatch command that opens the store
// finds the journal unlocked and Recover finishes the job: it kills what
// could be left in the cgroup, detaches the pinned hooks, removes the
// placeholders, rebuilds the run from the journaled events and saves it
// as interrupted, with the reason.
//
// A run that ended but could not be saved (full disk, corrupt store) keeps
// its journal too, with the finished run in a last meta record: the next
// command saves exactly that run, evidence and diff included, as saved
// late, with the cause. Until then `agentwatch runs` lists it as unsaved.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/agentwatch/agentwatch/agentotel"
	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/journal"
	"github.com/agentwatch/agentwatch/netwatch"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/redact"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/trace"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// JournalDir is where a store keeps the journals of runs not yet saved.
func JournalDir(storeDir string) string { return store.JournalDir(storeDir) }

// runHeader is what a journal keeps to rebuild its run's RunInfo.
type runHeader struct {
	RunID        string
	TraceID      string
	Argv         []string
	Start        time.Time
	UID          uint32
	User         string
	Home         string
	Workspace    string
	TaskID       string
	TaskURL      string
	CI           map[string]string
	Labels       map[string]string // --label (RunInfo.Attributes)
	Version      string
	Policy       []byte // policy.Marshal: parses back to the same version
	PolicySource string
	// RedactValues are the dropped variables' values: the journal holds
	// the raw events (root-only, 0600 in a 0700 directory, removed once
	// the run is saved), and recovery must redact them like a live run.
	RedactValues []string
}

// Meta record kinds.
const (
	metaCgroup      = "cgroup"      // the run's cgroup directory
	metaNetPin      = "netpin"      // bpffs directory of the pinned network hooks
	metaPlaceholder = "placeholder" // an absent protected path held for the run
	metaLaunched    = "launched"    // the command's host pid
	metaInfo        = "info"        // sensors and gaps at start (runStartInfo)
	metaEnd         = "end"         // the command exited (runEndInfo)
	metaFinished    = "finished"    // the finished run the store could not take (finishedRun, gzipped gob)
)

// finishedRun is a run that ended under agentwatch but was not saved.
type finishedRun struct {
	Cause string // why the store did not take it, one line
	Trace []byte // the proto-marshalled otlp.Request
	Diff  []byte // the workspace diff artifact; nil when none
	Files []recorder.FileChange
}

func encodeFinished(tr *telemetry.Trace, ev *workspace.Evidence, files []recorder.FileChange, cause error) []byte {
	fr := finishedRun{Cause: oneLine(cause), Files: files}
	fr.Trace, _ = proto.Marshal(otlp.Request(tr))
	if ev != nil && ev.Absent == "" && ev.DiffSHA256 != "" {
		fr.Diff = ev.Diff
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if gob.NewEncoder(zw).Encode(fr) != nil || zw.Close() != nil {
		return nil
	}
	return buf.Bytes()
}

func decodeFinished(b []byte) (*finishedRun, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var fr finishedRun
	if err := gob.NewDecoder(zr).Decode(&fr); err != nil {
		return nil, err
	}
	return &fr, nil
}

// saveFinished saves a run kept whole in its journal (metaFinished).
func saveFinished(ctx context.Context, st *store.Store, o *journal.Orphan, runID string, fr *finishedRun) (string, error) {
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(fr.Trace, &req); err != nil {
		return "", fmt.Errorf("decoding the finished run: %w", err)
	}
	tr, err := otlp.FromRequest(&req)
	if err != nil {
		return "", fmt.Errorf("decoding the finished run: %w", err)
	}
	tr.RunID = runID
	reason := fmt.Sprintf("saved late: the store could not take the run when it ended (%s); saved from its journal at %s",
		fr.Cause, time.Now().UTC().Format(time.RFC3339))
	// The run says so itself (show's Gaps, the exported trace), not only
	// the store's row.
	if tr.Root() != nil {
		addGap(tr, gapText("store", reason))
		reqLate := otlp.Request(tr)
		req.Reset()
		proto.Merge(&req, reqLate)
	}
	if _, err := st.SaveLate(ctx, tr, &req, reason); err != nil {
		return "", err
	}
	if fr.Diff != nil {
		if err := st.SaveArtifact(ctx, runID, store.ArtifactDiff, fr.Diff); err != nil {
			return "", fmt.Errorf("keeping the workspace diff: %w", err)
		}
	}
	if err := saveFiles(ctx, st, runID, fr.Files); err != nil {
		return "", err
	}
	if err := o.Remove(); err != nil {
		return "", err
	}
	return runID, nil
}

// Unsaved is a run kept in the journal, not (yet) in the store.
type Unsaved struct {
	RunID    string
	Start    time.Time
	Command  string // redacted as the run's own command line would be
	ExitCode int    // -1: unknown (agentwatch died before the command ended)
	Cause    string // why it is not in the store
}

// ListUnsaved lists the runs kept in the store's journal whose agentwatch
// is gone: what Recover could not save (yet). It changes nothing.
func ListUnsaved(storeDir string) ([]Unsaved, error) {
	orphans, err := journal.Pending(JournalDir(storeDir))
	if err != nil {
		return nil, err
	}
	var out []Unsaved
	for _, o := range orphans {
		u := Unsaved{RunID: o.Info.RunID, Start: o.Info.Created, ExitCode: -1,
			Cause: fmt.Sprintf("agentwatch (pid %d) died before saving it", o.Info.PID)}
		var h runHeader
		if json.Unmarshal(o.Info.Header, &h) == nil {
			u.Command = redact.New(h.RedactValues).String(recorder.CommandLine(recorder.RedactArgs(recorder.PromptArgs(h.Argv, false))))
			if !h.Start.IsZero() {
				u.Start = h.Start
			}
		}
		if o.Corrupt != nil {
			u.Cause = "journal unreadable: " + oneLine(o.Corrupt)
		} else {
			_, _ = o.Replay(func(r journal.Record) error {
				if r.Meta == nil {
					return nil
				}
				switch r.Meta.Kind {
				case metaEnd:
					var e runEndInfo
					if json.Unmarshal(r.Meta.Data, &e) == nil {
						u.ExitCode = e.ExitCode
					}
				case metaFinished:
					if fr, err := decodeFinished(r.Meta.Data); err == nil {
						u.Cause = fr.Cause
					}
				}
				return nil
			})
		}
		o.Close()
		out = append(out, u)
	}
	return out, nil
}

type runStartInfo struct {
	Sensors []string
	Gaps    []string // event.Gap.String: the journal's format since before gaps were typed
	// Before is the workspace as the run started (repository, branch,
	// base commit): a recovered run keeps what the fleet groups it by.
	Before *workspace.Snapshot `json:",omitempty"`
}

func newRunStartInfo(sensors []string, gaps []event.Gap) runStartInfo {
	s := runStartInfo{Sensors: sensors}
	for _, g := range gaps {
		s.Gaps = append(s.Gaps, g.String())
	}
	return s
}

func (s runStartInfo) gaps() []event.Gap {
	var out []event.Gap
	for _, g := range s.Gaps {
		out = append(out, event.ParseGap(g))
	}
	return out
}

type runEndInfo struct {
	ExitCode, Signal int
	Time             time.Time
}

func newRunHeader(info recorder.RunInfo, pol *policy.Policy) []byte {
	h := runHeader{
		RunID: info.RunID, TraceID: info.TraceID.String(), Argv: info.Argv, Start: info.Start,
		UID: info.UID, User: info.User, Home: info.Home, Workspace: info.Workspace,
		TaskID: info.TaskID, TaskURL: info.TaskURL, CI: info.CI, Labels: info.Attributes, Version: info.ServiceVersion,
		Policy: pol.Marshal(), PolicySource: pol.Source, RedactValues: info.RedactValues,
	}
	b, _ := json.Marshal(h)
	return b
}

// Recover saves every run whose supervisor died before saving it, and
// undoes what such a run left: it returns the ids saved. It never blocks on
// a live run (its journal is locked) and is safe to call from every
// command that opens the store.
func Recover(ctx context.Context, st *store.Store, storeDir string) ([]Recovered, error) {
	orphans, err := journal.Pending(JournalDir(storeDir))
	if err != nil {
		return nil, err
	}
	var saved []Recovered
	var errs []error
	for _, o := range orphans {
		rec, err := recoverOne(ctx, st, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("recovering run %s from %s: %w", o.Info.RunID, o.Path, err))
			o.Close()
			continue
		}
		saved = append(saved, rec)
	}
	return saved, errors.Join(errs...)
}

// Recovered is a run Recover saved from its journal.
type Recovered struct {
	RunID string
	// Late: the run had ended under agentwatch and was kept whole
	// (the store could not take it then); else agentwatch died.
	Late bool
}

// Message is the line the CLI prints for it.
func (r Recovered) Message() string {
	if r.Late {
		return fmt.Sprintf("run %s, not saved when it ended, is saved now from its journal", r.RunID)
	}
	return fmt.Sprintf("run %s was interrupted (agentwatch died); recovered from its journal", r.RunID)
}

func recoverOne(ctx context.Context, st *store.Store, o *journal.Orphan) (Recovered, error) {
	if o.Corrupt != nil {
		return Recovered{}, o.Corrupt
	}
	var h runHeader
	if err := json.Unmarshal(o.Info.Header, &h); err != nil {
		return Recovered{}, fmt.Errorf("reading the run header: %w", err)
	}
	// A policy this agentwatch no longer accepts (written by an older
	// one, e.g. allow: ["*"]) must not cost the run: it is judged against
	// the built-in policy instead, and says so.
	var policyGap string
	pol, err := policy.Parse(h.PolicySource, h.Policy)
	if err != nil {
		pol = policy.Default()
		policyGap = "the run's policy does not parse now (" + oneLine(err) + "); its alerts are judged against the built-in policy"
	}
	// First the metas: what to undo, the command's pid, the start info.
	var cgroups, pins, placeholders []string
	var rootPID uint32
	var start runStartInfo
	var end *runEndInfo
	var finished *finishedRun
	last := o.ModTime
	stats, err := o.Replay(func(r journal.Record) error {
		if r.Meta == nil {
			return nil
		}
		switch r.Meta.Kind {
		case metaCgroup:
			cgroups = append(cgroups, string(r.Meta.Data))
		case metaNetPin:
			pins = append(pins, string(r.Meta.Data))
		case metaPlaceholder:
			placeholders = append(placeholders, string(r.Meta.Data))
		case metaLaunched:
			n, _ := strconv.ParseUint(string(r.Meta.Data), 10, 32)
			rootPID = uint32(n)
		case metaInfo:
			_ = json.Unmarshal(r.Meta.Data, &start)
		case metaEnd:
			end = &runEndInfo{}
			_ = json.Unmarshal(r.Meta.Data, end)
		case metaFinished:
			finished, _ = decodeFinished(r.Meta.Data) // undecodable: rebuilt from the events below
		}
		return nil
	})
	if err != nil {
		return Recovered{}, err
	}
	gaps := undoRun(cgroups, pins, placeholders)
	if finished != nil {
		id, err := saveFinished(ctx, st, o, h.RunID, finished)
		return Recovered{RunID: id, Late: true}, err
	}

	traceID, _ := trace.TraceIDFromHex(h.TraceID)
	rec := recorder.New(recorder.RunInfo{
		RunID: h.RunID, TraceID: traceID, Argv: h.Argv, Start: h.Start, RootPID: rootPID,
		UID: h.UID, User: h.User, Home: h.Home, Workspace: h.Workspace, TaskID: h.TaskID, TaskURL: h.TaskURL,
		CI: h.CI, Attributes: h.Labels, ServiceVersion: h.Version, Policy: pol, RedactValues: h.RedactValues,
		Sensors: start.Sensors, Gaps: start.gaps(), Before: start.Before,
	})
	if _, err := o.Replay(func(r journal.Record) error {
		if r.Event != nil {
			rec.Add(withAgentLogs(r.Event))
			if t := r.Event.When(); t.After(last) {
				last = t
			}
		}
		return nil
	}); err != nil {
		return Recovered{}, err
	}
	e := recorder.End{Time: last, ExitCode: -1}
	reason := fmt.Sprintf("run interrupted: agentwatch (pid %d) died before saving it; the run's processes died with it; recovered from its journal at %s",
		o.Info.PID, time.Now().UTC().Format(time.RFC3339))
	if end != nil {
		e.ExitCode, e.Signal, e.Time = end.ExitCode, end.Signal, end.Time
		reason = fmt.Sprintf("run not saved when it ended: agentwatch (pid %d) died while saving it; recovered from its journal at %s",
			o.Info.PID, time.Now().UTC().Format(time.RFC3339))
	}
	e.Gaps = append([]event.Gap{gapText("recovery", reason), gapText("evidence", "not taken (the run did not end under agentwatch)")}, gaps...)
	if policyGap != "" {
		e.Gaps = append(e.Gaps, gapText("recovery", policyGap))
	}
	if stats.TruncatedTail || stats.Corrupt {
		e.Gaps = append(e.Gaps, gapf("journal", "%d bytes at its end could not be read", stats.SkippedBytes))
	}
	tr := rec.Finish(e)
	// A run the dead agentwatch had saved after all is left as it is.
	saved, err := st.SaveRecovered(ctx, tr, otlp.Request(tr), reason)
	if err != nil {
		return Recovered{}, err
	}
	if saved {
		if err := saveFiles(ctx, st, tr.RunID, rec.Files()); err != nil {
			return Recovered{}, err
		}
	}
	if err := o.Remove(); err != nil {
		return Recovered{}, err
	}
	return Recovered{RunID: tr.RunID}, nil
}

// withAgentLogs decodes the log records of an agent-telemetry event
// journaled by an agentwatch that sent only the payload (the recorder
// reads AgentTelemetry.Logs).
func withAgentLogs(ev event.Event) event.Event {
	at, ok := ev.(event.AgentTelemetry)
	if !ok || at.Signal != event.SignalLogs || len(at.Logs) > 0 || len(at.Payload) == 0 {
		return ev
	}
	var req collogspb.ExportLogsServiceRequest
	if proto.Unmarshal(at.Payload, &req) == nil {
		at.Logs = agentotel.LogsToEvents(&req)
	}
	return at
}

// undoRun kills what is left in a dead run's cgroup and removes it,
// detaches its pinned network hooks and removes its placeholders. What it
// could not undo is returned as gaps.
func undoRun(cgroups, pins, placeholders []string) []event.Gap {
	var gaps []event.Gap
	for _, p := range cgroups {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		c := &Cgroup{Path: p}
		if err := c.Kill(cgroupKillTimeout); err != nil {
			gaps = append(gaps, gap("recovery", err))
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			gaps = append(gaps, gapText("recovery", "removing cgroup: "+oneLine(err)))
		}
	}
	for _, p := range pins {
		if err := unpinNetwork(p); err != nil {
			gaps = append(gaps, gap("recovery", err))
		}
	}
	for i := len(placeholders) - 1; i >= 0; i-- {
		if err := removePlaceholder(placeholders[i]); err != nil {
			gaps = append(gaps, gap("recovery", err))
		}
	}
	return gaps
}

// removePlaceholder removes a placeholder only while it is what agentwatch
// made: root-owned and empty.
func removePlaceholder(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != 0 {
		return fmt.Errorf("placeholder %s is no longer agentwatch's (not root-owned): left in place", p)
	}
	if !fi.IsDir() && fi.Size() > 0 {
		return fmt.Errorf("placeholder %s is no longer empty: left in place", p)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("removing placeholder %s: %w", p, err)
	}
	return nil
}

// unpinNetwork detaches a dead run's network hooks.
func unpinNetwork(dir string) error { return netwatch.UnpinNetwork(dir) }
