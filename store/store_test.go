package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// runTrace builds a two-span run: agent_run and one bash_command.
func runTrace(id string, start time.Time, exit int, extra ...attribute.KeyValue) *telemetry.Trace {
	var tid trace.TraceID
	copy(tid[:], fmt.Sprintf("%-16s", id))
	root := trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	attrs := []attribute.KeyValue{
		telemetry.SpanType.String(telemetry.SpanAgentRun),
		telemetry.RunID.String(id),
		telemetry.CommandLine.String(`claude -p "fix the flaky test"`),
		telemetry.GenAIAgentName.String("claude"),
	}
	if exit >= 0 {
		attrs = append(attrs, telemetry.ProcessExitCode.Int(exit))
	}
	attrs = append(attrs, extra...)
	return &telemetry.Trace{
		RunID:    id,
		Resource: []attribute.KeyValue{telemetry.ServiceName.String("agentwatch")},
		Spans: []telemetry.Span{
			{TraceID: tid, SpanID: root, Name: telemetry.SpanAgentRun, Start: start, End: start.Add(3 * time.Second), Attrs: attrs},
			{TraceID: tid, SpanID: trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9}, ParentID: root, Name: telemetry.SpanBashCommand,
				Start: start.Add(time.Second), End: start.Add(2 * time.Second),
				Attrs: []attribute.KeyValue{telemetry.ProcessCommandLine.String("go test ./..."), telemetry.ProcessExitCode.Int(0)}},
		},
	}
}

func open(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "agentwatch")
	open(t, dir)
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("store dir mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
}

func TestSaveListLoad(t *testing.T) { eachBackend(t, testSaveListLoad) }

func testSaveListLoad(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)

	// Saved out of order; List sorts by start, newest first.
	for i, id := range []string{"20260301-120100-bbbbbb", "20260301-120000-aaaaaa", "20260301-120200-cccccc"} {
		exit := i // 0, 1, 2
		if err := s.Save(ctx, runTrace(id, base.Add(time.Duration([]int{1, 0, 2}[i])*time.Minute), exit)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(ctx, runTrace("20260301-120300-dddddd", base.Add(3*time.Minute), -1)); err != nil {
		t.Fatal(err)
	}

	runs, err := s.List(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	if want := "20260301-120300-dddddd 20260301-120200-cccccc 20260301-120100-bbbbbb"; strings.Join(ids, " ") != want {
		t.Errorf("List(3) = %v, want %s", ids, want)
	}
	r := runs[1]
	if r.Command != `claude -p "fix the flaky test"` || r.Agent != "claude" || r.ExitCode != 2 || r.Spans != 2 ||
		!r.Start.Equal(base.Add(2*time.Minute)) || !r.End.Equal(base.Add(2*time.Minute+3*time.Second)) || r.Exported {
		t.Errorf("summary = %+v", r)
	}
	if runs[0].ExitCode != -1 {
		t.Errorf("run without process.exit.code: ExitCode = %d, want -1", runs[0].ExitCode)
	}
	if all, _ := s.List(ctx, 0); len(all) != 4 {
		t.Errorf("List(0) returned %d runs, want all 4", len(all))
	}

	tr, run, err := s.Load(ctx, "20260301-120100-bbbbbb")
	if err != nil {
		t.Fatal(err)
	}
	want := runTrace("20260301-120100-bbbbbb", base.Add(time.Minute), 0)
	if tr.RunID != want.RunID || len(tr.Spans) != 2 || run.ID != want.RunID {
		t.Fatalf("Load = %+v, %+v", tr, run)
	}
	got := tr.Spans[1]
	if got.ParentID != want.Spans[0].SpanID || got.Name != "bash_command" || !got.Start.Equal(want.Spans[1].Start) {
		t.Errorf("loaded span = %+v, want %+v", got, want.Spans[1])
	}
	if v, _ := got.Attr(telemetry.ProcessCommandLine); v.AsString() != "go test ./..." {
		t.Errorf("loaded attribute = %q", v.AsString())
	}
	if run.TraceID != want.Spans[0].TraceID.String() {
		t.Errorf("trace id = %s, want %s", run.TraceID, want.Spans[0].TraceID)
	}
}

func TestOddDirectoryName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "100% sure?#x")
	s := open(t, dir)
	if err := s.Save(context.Background(), runTrace("odd", base, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); err != nil {
		t.Errorf("database not at %s: %v", filepath.Join(dir, store.FileName), err)
	}
}

func TestSaveRejectsTraceWithoutRoot(t *testing.T) { eachBackend(t, testSaveRejectsTraceWithoutRoot) }

func testSaveRejectsTraceWithoutRoot(t *testing.T, newStore newStoreFunc) {
	s := newStore(t)
	err := s.Save(context.Background(), &telemetry.Trace{RunID: "x"})
	if err == nil || !strings.Contains(err.Error(), "no root span") {
		t.Errorf("Save(empty trace) = %v, want a no-root error", err)
	}
}

func TestLoadByPrefix(t *testing.T) { eachBackend(t, testLoadByPrefix) }

func testLoadByPrefix(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	ids := []string{"20260301-120000-aaaaaa", "20260301-120000-aabbbb", "20260301-130000-cccccc", "run1", "run10"}
	for i, id := range ids {
		if err := s.Save(ctx, runTrace(id, base.Add(time.Duration(i)*time.Minute), 0)); err != nil {
			t.Fatal(err)
		}
	}
	traceOfC := runTrace("20260301-130000-cccccc", base, 0).Spans[0].TraceID.String()
	for _, tc := range []struct {
		query, want, err string
	}{
		{query: "20260301-120000-aaaaaa", want: "20260301-120000-aaaaaa"},
		{query: "20260301-13", want: "20260301-130000-cccccc"},
		{query: "20260301-120000-aab", want: "20260301-120000-aabbbb"},
		{query: "run1", want: "run1"}, // exact id, though it prefixes run10
		{query: "run10", want: "run10"},
		{query: traceOfC, want: "20260301-130000-cccccc"},
		{query: store.Latest, want: "run10"}, // the newest start
		{query: "20260301-120000-aa", err: `run id prefix "20260301-120000-aa" is ambiguous: 2 runs match`},
		{query: "2026", err: "3 runs match"},
		{query: "nosuch", err: "no such run"},
		{query: "2026%", err: "no such run"}, // % is literal, not a wildcard
		{query: "", err: "empty run id"},
	} {
		_, r, err := s.Load(ctx, tc.query)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Load(%q) = %v, %v; want error containing %q", tc.query, r.ID, err, tc.err)
			}
		case err != nil || r.ID != tc.want:
			t.Errorf("Load(%q) = %q, %v; want %q", tc.query, r.ID, err, tc.want)
		}
	}
	if _, _, err := newStore(t).Load(ctx, store.Latest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load(latest) on an empty store: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Load(ctx, "nosuch"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load(nosuch) error %v is not ErrNotFound", err)
	}
}

func TestMarkExported(t *testing.T) { eachBackend(t, testMarkExported) }

func testMarkExported(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	id := "20260301-120000-aaaaaa"
	if err := s.Save(ctx, runTrace(id, base, 0)); err != nil {
		t.Fatal(err)
	}
	check := func(exported bool, msg string) {
		t.Helper()
		_, r, err := s.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Exported != exported || r.ExportError != msg {
			t.Errorf("exported=%v error=%q, want %v %q", r.Exported, r.ExportError, exported, msg)
		}
	}
	check(false, "")
	if err := s.MarkExported(ctx, id, errors.New("exporting to localhost:4317: connection refused")); err != nil {
		t.Fatal(err)
	}
	check(false, "exporting to localhost:4317: connection refused")
	if err := s.MarkExported(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	check(true, "")
	// Saving again replaces the trace, so the old export no longer counts.
	if err := s.Save(ctx, runTrace(id, base, 1)); err != nil {
		t.Fatal(err)
	}
	check(false, "")
	if err := s.MarkExported(ctx, "nosuch", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkExported(nosuch) = %v, want ErrNotFound", err)
	}
}

func TestSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Reopening applies nothing twice.
	s, err = store.Open(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()

	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v, rows int
	if err := db.QueryRow(`SELECT version, (SELECT count(*) FROM schema_version) FROM schema_version`).Scan(&v, &rows); err != nil {
		t.Fatal(err)
	}
	if v < 1 || rows != 1 {
		t.Errorf("schema_version = %d (%d rows), want >= 1 in one row", v, rows)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	// A store written by a newer agentwatch is refused, not corrupted.
	if _, err := db.Exec(`UPDATE schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(dir); err == nil || !strings.Contains(err.Error(), "newer than this agentwatch") {
		t.Errorf("Open of a newer schema = %v, want a refusal", err)
	}
}

// TestConcurrentProcesses saves from two separate processes and this one
// at the same time, into one fresh directory: the first Opens race on
// creating the schema, then the saves contend for the write lock.
func TestConcurrentProcesses(t *testing.T) {
	const perWriter = 25
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for p := range 2 {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
			cmd.Env = append(os.Environ(), "STORE_HELPER_DIR="+dir, "STORE_HELPER_PREFIX=p"+strconv.Itoa(p), "STORE_HELPER_N="+strconv.Itoa(perWriter))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("writer process %d: %v\n%s", p, err, out)
			}
		})
	}
	wg.Go(func() {
		if err := writeRuns(dir, "self", perWriter); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := open(t, dir)
	runs, err := s.List(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3*perWriter {
		t.Errorf("store holds %d runs, want %d", len(runs), 3*perWriter)
	}
}

// TestHelperWriter is the body of a writer process for
// TestConcurrentProcesses; run directly it does nothing.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv("STORE_HELPER_DIR")
	if dir == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("STORE_HELPER_N"))
	if err := writeRuns(dir, os.Getenv("STORE_HELPER_PREFIX"), n); err != nil {
		t.Fatal(err)
	}
}

func writeRuns(dir, prefix string, n int) error {
	s, err := store.Open(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	for i := range n {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		if err := s.Save(context.Background(), runTrace(id, base.Add(time.Duration(i)*time.Second), 0)); err != nil {
			return err
		}
		if _, err := s.List(context.Background(), 5); err != nil {
			return err
		}
	}
	return nil
}

func TestOpenUnwritable(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"dir is a file":  file,
		"parent is file": filepath.Join(file, "agentwatch"),
		"under /proc":    "/proc/agentwatch-store",
	} {
		t.Run(name, func(t *testing.T) {
			s, err := store.Open(dir)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded", dir)
			}
			if !strings.HasPrefix(err.Error(), "creating store directory: ") && !strings.HasPrefix(err.Error(), "store directory not writable: ") {
				t.Errorf("Open(%s) error %q does not say what failed", dir, err)
			}
		})
	}
}

// TestReadOnlyAndFullDisk uses real filesystems: a read-only tmpfs (root
// ignores permission bits, not a read-only mount) and a tiny tmpfs that
// fills up during Save.
func TestReadOnlyAndFullDisk(t *testing.T) {
	privtest.Require(t)
	mnt := func(t *testing.T, opts string) string {
		t.Helper()
		dir := t.TempDir()
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
			t.Fatalf("mounting tmpfs: %v", err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		return dir
	}

	t.Run("read-only mount", func(t *testing.T) {
		dir := mnt(t, "size=1m")
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
		_, err := store.Open(filepath.Join(dir, "agentwatch"))
		t.Logf("read-only: %v", err)
		if err == nil || !strings.Contains(err.Error(), "read-only file system") {
			t.Errorf("Open on a read-only mount = %v, want a read-only error", err)
		}
	})

	t.Run("disk full during save", func(t *testing.T) {
		dir := mnt(t, "size=256k")
		s := open(t, dir)
		ctx := context.Background()
		if err := s.Save(ctx, runTrace("small", base, 0)); err != nil {
			t.Fatalf("first save: %v", err)
		}
		big := runTrace("big", base.Add(time.Minute), 0,
			attribute.String("padding", strings.Repeat("x", 1<<20)))
		err := s.Save(ctx, big)
		if err == nil {
			t.Fatal("Save of 1 MiB into a 256 KiB filesystem succeeded")
		}
		t.Logf("full disk: %v", err)
		if !strings.HasPrefix(err.Error(), "saving run big: ") || !strings.Contains(err.Error(), "full") {
			t.Errorf("Save error = %q, want one naming the run and a full disk", err)
		}
		// Nothing already recorded is lost.
		if _, r, err := s.Load(ctx, "small"); err != nil || r.ID != "small" {
			t.Errorf("after a failed save, Load(small) = %v, %v", r.ID, err)
		}
		if _, _, err := s.Load(ctx, "big"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the failed run is half-stored: %v", err)
		}
	})
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/var/state")
	if got := store.DefaultDir(); got != "/var/state/agentwatch" {
		t.Errorf("DefaultDir with XDG_STATE_HOME = %q", got)
	}
	t.Setenv("XDG_STATE_HOME", "relative/ignored") // the XDG spec: relative paths are invalid
	t.Setenv("HOME", "/home/dev")
	if got := store.DefaultDir(); got != "/home/dev/.local/state/agentwatch" {
		t.Errorf("DefaultDir with HOME = %q", got)
	}
}
