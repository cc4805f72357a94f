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

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/journal"
	"github.com/agentwatch/agentwatch/netwatch"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/store"
	"go.opentelemetry.io/otel/trace"
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
)

type runStartInfo struct {
	Sensors []string
	Gaps    []string
}

type runEndInfo struct {
	ExitCode, Signal int
	Time             time.Time
}

func newRunHeader(info recorder.RunInfo, pol *policy.Policy) []byte {
	h := runHeader{
		RunID: info.RunID, TraceID: info.TraceID.String(), Argv: info.Argv, Start: info.Start,
		UID: info.UID, User: info.User, Home: info.Home, Workspace: info.Workspace,
		TaskID: info.TaskID, TaskURL: info.TaskURL, CI: info.CI, Version: info.ServiceVersion,
		Policy: pol.Marshal(), PolicySource: pol.Source, RedactValues: info.RedactValues,
	}
	b, _ := json.Marshal(h)
	return b
}

// Recover saves every run whose supervisor died before saving it, and
// undoes what such a run left: it returns the ids saved. It never blocks on
// a live run (its journal is locked) and is safe to call from every
// command that opens the store.
func Recover(ctx context.Context, st *store.Store, storeDir string) ([]string, error) {
	orphans, err := journal.Pending(JournalDir(storeDir))
	if err != nil {
		return nil, err
	}
	var saved []string
	var errs []error
	for _, o := range orphans {
		id, err := recoverOne(ctx, st, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("recovering run %s from %s: %w", o.Info.RunID, o.Path, err))
			o.Close()
			continue
		}
		saved = append(saved, id)
	}
	return saved, errors.Join(errs...)
}

func recoverOne(ctx context.Context, st *store.Store, o *journal.Orphan) (string, error) {
	if o.Corrupt != nil {
		return "", o.Corrupt
	}
	var h runHeader
	if err := json.Unmarshal(o.Info.Header, &h); err != nil {
		return "", fmt.Errorf("reading the run header: %w", err)
	}
	pol, err := policy.Parse(h.PolicySource, h.Policy)
	if err != nil {
		return "", err
	}
	// First the metas: what to undo, the command's pid, the start info.
	var cgroups, pins, placeholders []string
	var rootPID uint32
	var start runStartInfo
	var end *runEndInfo
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
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	gaps := undoRun(cgroups, pins, placeholders)

	traceID, _ := trace.TraceIDFromHex(h.TraceID)
	rec := recorder.New(recorder.RunInfo{
		RunID: h.RunID, TraceID: traceID, Argv: h.Argv, Start: h.Start, RootPID: rootPID,
		UID: h.UID, User: h.User, Home: h.Home, Workspace: h.Workspace, TaskID: h.TaskID, TaskURL: h.TaskURL,
		CI: h.CI, ServiceVersion: h.Version, Policy: pol, RedactValues: h.RedactValues,
		Sensors: start.Sensors, Gaps: start.Gaps,
	})
	if _, err := o.Replay(func(r journal.Record) error {
		if r.Event != nil {
			rec.Add(r.Event)
			if t := r.Event.When(); t.After(last) {
				last = t
			}
		}
		return nil
	}); err != nil {
		return "", err
	}
	e := recorder.End{Time: last, ExitCode: -1}
	reason := fmt.Sprintf("run interrupted: agentwatch (pid %d) died before saving it; the run's processes died with it; recovered from its journal at %s",
		o.Info.PID, time.Now().UTC().Format(time.RFC3339))
	if end != nil {
		e.ExitCode, e.Signal, e.Time = end.ExitCode, end.Signal, end.Time
		reason = fmt.Sprintf("run not saved when it ended: agentwatch (pid %d) died while saving it; recovered from its journal at %s",
			o.Info.PID, time.Now().UTC().Format(time.RFC3339))
	}
	e.Gaps = append([]string{"recovery: " + reason, "evidence: not taken (the run did not end under agentwatch)"}, gaps...)
	if stats.TruncatedTail || stats.Corrupt {
		e.Gaps = append(e.Gaps, fmt.Sprintf("journal: %d bytes at its end could not be read", stats.SkippedBytes))
	}
	tr := rec.Finish(e)
	// A run the dead agentwatch had saved after all is left as it is.
	saved, err := st.SaveRecovered(ctx, tr, export.Request(tr), reason)
	if err != nil {
		return "", err
	}
	if saved {
		if err := saveFiles(ctx, st, tr.RunID, rec.Files()); err != nil {
			return "", err
		}
	}
	if err := o.Remove(); err != nil {
		return "", err
	}
	return tr.RunID, nil
}

// undoRun kills what is left in a dead run's cgroup and removes it,
// detaches its pinned network hooks and removes its placeholders. What it
// could not undo is returned as gaps.
func undoRun(cgroups, pins, placeholders []string) []string {
	var gaps []string
	for _, p := range cgroups {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		c := &Cgroup{Path: p}
		if err := c.Kill(cgroupKillTimeout); err != nil {
			gaps = append(gaps, "recovery: "+oneLine(err))
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			gaps = append(gaps, "recovery: removing cgroup: "+oneLine(err))
		}
	}
	for _, p := range pins {
		if err := unpinNetwork(p); err != nil {
			gaps = append(gaps, "recovery: "+oneLine(err))
		}
	}
	for i := len(placeholders) - 1; i >= 0; i-- {
		if err := removePlaceholder(placeholders[i]); err != nil {
			gaps = append(gaps, "recovery: "+oneLine(err))
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
