package store

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/agentwatch/agentwatch/fileclass"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"google.golang.org/protobuf/proto"
)

// The store classes evidence-only paths as the recorder classes file spans: the
// class a file span carries is the one the store gives the same path when
// only the workspace evidence names it.
func TestClassifyMatchesRecorder(t *testing.T) {
	paths := []string{
		"main.go", "pkg/x/y.go", "pkg/x/y_test.go", "tests/helpers.py", "test_app.py", "web/app.spec.ts", "src/FooTest.java",
		"go.mod", "go.sum", "package.json", "package-lock.json", "yarn.lock", "Cargo.toml", "Cargo.lock", "requirements.txt",
		".github/workflows/ci.yml", ".gitlab-ci.yml", "Jenkinsfile", ".circleci/config.yml",
		"config/app.yaml", "settings.toml", "Makefile", "Dockerfile", ".gitignore", "tsconfig.json",
		"README.md", "docs/design.rst", "docs/img.png", "LICENSE", "CHANGELOG", "notes.txt",
		"node_modules/x/index.js", "vendor/a/b.go", "dist/app.min.js", "api.pb.go", "zz_generated.deepcopy.go", "x.o",
		"data.bin", "image.png", "Gemfile", "pyproject.toml", "src/testdata/in.json",
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := recorder.New(recorder.RunInfo{RunID: "classes", Argv: []string{"sh"}, Start: t0, RootPID: 10, Workspace: "/w"})
	r.Add(event.Exec{Header: event.Header{Time: t0, PID: 10}, Filename: "/bin/sh", Argv: []string{"sh"}, Cwd: "/w"})
	for i, p := range paths {
		r.Add(event.File{Header: event.Header{Time: t0.Add(time.Duration(i+1) * time.Millisecond), PID: 10},
			Source: event.SourceEBPF, Op: event.FileCreate, Path: "/w/" + p})
	}
	tr := r.Finish(recorder.End{Time: t0.Add(time.Second)})
	seen := 0
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Type() != telemetry.SpanFileWrite {
			continue
		}
		v, _ := s.Attr(telemetry.FilePath)
		rel := strings.TrimPrefix(v.AsString(), "/w/")
		want, _ := s.Attr(telemetry.FileClass)
		if got := classifyRel(rel); got != want.AsString() {
			t.Errorf("%s: store classes it %s, the recorder %s", rel, got, want.AsString())
		}
		seen++
	}
	if seen != len(paths) {
		t.Errorf("%d file spans for %d paths", seen, len(paths))
	}
	for _, p := range []string{".env", "app/.env.local", "certs/server.pem", "keys/id_rsa.pub"} {
		if got := classifyRel(p); got != fileclass.Secret {
			t.Errorf("%s: %s, want secret (the built-in files.secrets)", p, got)
		}
	}
}

// syntheticFacts is run i of a fleet: 3 labels, 2 alerts, 4 changed
// paths, a handful of missing fields, a realistic command line.
func syntheticFacts(i int, start time.Time) Facts {
	teams := []string{"payments", "search", "infra", "mobile", "data"}
	repos := []string{"acme/api", "acme/web", "acme/mobile", "acme/infra", "acme/ml", "acme/docs", "acme/cli"}
	id := fmt.Sprintf("%s-%06x", start.UTC().Format("20060102-150405"), i)
	f := Facts{
		RunID: id, Start: start, End: start.Add(time.Duration(30+i%600) * time.Second), Status: StatusComplete,
		Agent: []string{"claude", "codex", "aider"}[i%3], Command: fmt.Sprintf(`claude -p "fix the flaky test in pkg/%d and open a PR"`, i%97),
		User: "dev" + fmt.Sprint(i%40), Host: fmt.Sprintf("ci-runner-%d", i%25), ExitCode: i % 3,
		Repo: repos[i%len(repos)], RepoURL: "https://github.com/" + repos[i%len(repos)], Branch: fmt.Sprintf("agent/task-%d", i),
		BaseSHA: fmt.Sprintf("%040x", i*7919), SessionID: fmt.Sprintf("sess-%08x", i), Task: fmt.Sprintf("ENG-%d", i%5000),
		Team: teams[i%len(teams)], Org: "acme",
		Labels:      map[string]string{"team": teams[i%len(teams)], "org": "acme", "env": []string{"prod", "dev"}[i%2]},
		PRURL:       fmt.Sprintf("https://github.com/%s/pull/%d", repos[i%len(repos)], i),
		Environment: []string{"ci", "local"}[i%2], Model: []string{"claude-sonnet-4", "gpt-5", "claude-haiku"}[i%3], Provider: "anthropic",
		CostUSD: float64(i%1000) / 97, HasCost: i%10 != 0, InputTokens: int64(i % 100000), OutputTokens: int64(i % 7000), HasTokens: true,
		CacheReadTokens: int64(i % 5000), LLMCalls: i % 40, RetryCalls: i % 3, RetryWasteTokens: int64(i % 3 * 1200), RetryWasteUSD: float64(i%3) * 0.01,
		FailureClass: telemetry.FailureClasses[i%len(telemetry.FailureClasses)], TestRuns: i % 4, TestRunsPassed: i % 2,
		SecretScan: "clean", ChangedCode: 2, ChangedTests: i % 2, ChangedDocs: 1,
		ChangedPaths: []Change{
			{fmt.Sprintf("pkg/m%d/handler.go", i%300), ChangeCode}, {fmt.Sprintf("pkg/m%d/service.go", i%300), ChangeCode},
			{fmt.Sprintf("pkg/m%d/handler_test.go", i%300), ChangeTests}, {"README.md", ChangeDocs},
		},
		DiffFiles: 4, LinesAdded: i % 500, LinesRemoved: i % 80,
		Alerts:  []Alert{{telemetry.AlertRetries, telemetry.SeverityMedium, 1 + i%3}, {telemetry.AlertUnknownDomain, telemetry.SeverityMedium, 1}},
		Missing: []string{"agent_spans", "sensors", "review", "security_scan", "pr_link", "test_output"}[:2+i%5],
		Spans:   100 + i%900,
	}
	slices.SortFunc(f.ChangedPaths, func(a, b Change) int { return strings.Compare(a.Path, b.Path) }) // as ExtractFacts gives them
	return f
}

// insertSynthetic stores n synthetic runs (a minimal runs row each) and
// their facts in one transaction.
func insertSynthetic(t testing.TB, s *Store, n int, withFacts bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		f := syntheticFacts(i, t0.Add(time.Duration(i)*time.Minute))
		if _, err := tx.ExecContext(ctx, `INSERT INTO runs (id, trace_id, start_ns, end_ns, command, agent, exit_code, span_count, created_ns, trace)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, x'00')`, f.RunID, fmt.Sprintf("%032x", i), nanos(f.Start), nanos(f.End), f.Command, f.Agent, f.ExitCode, f.Spans, nanos(f.End)); err != nil {
			t.Fatal(err)
		}
		if withFacts {
			if err := factsQueries.writeFacts(ctx, tx, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func dbBytes(t testing.TB, s *Store) int64 {
	t.Helper()
	var pages, size int64
	if err := s.db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	return pages * size
}

// TestFactsSize measures what the facts tables add per run: the same
// 10,000 synthetic runs stored without and with their facts (page_count
// × page_size of each file), the figure in factsSchema's comment.
func TestFactsSize(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 runs")
	}
	const n = 10000
	var sizes [2]int64
	for i, with := range []bool{false, true} {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		insertSynthetic(t, s, n, with)
		if _, err := s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		sizes[i] = dbBytes(t, s)
		s.Close()
	}
	per := float64(sizes[1]-sizes[0]) / n
	t.Logf("facts tables: %d bytes for %d runs (%d without, %d with): %.0f bytes per run", sizes[1]-sizes[0], n, sizes[0], sizes[1], per)
	if per > 20*1024 {
		t.Errorf("facts take %.0f bytes per run, want <= 20 KB", per)
	}
}

var bench100k struct {
	once sync.Once
	dir  string
	err  error
}

// BenchmarkFacts100k reads the facts of all of 100,000 runs (built once,
// by direct inserts in one transaction), and of a filtered, limited
// selection.
func BenchmarkFacts100k(b *testing.B) {
	bench100k.once.Do(func() {
		bench100k.dir, bench100k.err = os.MkdirTemp("", "agentwatch-facts-bench-")
		if bench100k.err != nil {
			return
		}
		s, err := Open(bench100k.dir)
		if err != nil {
			bench100k.err = err
			return
		}
		insertSynthetic(b, s, 100000, true)
		s.Close()
	})
	if bench100k.err != nil {
		b.Fatal(bench100k.err)
	}
	s, err := Open(bench100k.dir)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		f    FactsFilter
		want int
	}{
		{"all", FactsFilter{}, 100000},
		{"all-without-paths", FactsFilter{WithoutPaths: true}, 100000},
		{"team", FactsFilter{Team: "payments"}, 20000},
		{"repo-since-limit", FactsFilter{Repo: "acme/api", Since: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Limit: 100}, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				list, err := s.Facts(ctx, bc.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(list) != bc.want {
					b.Fatalf("%d runs, want %d", len(list), bc.want)
				}
			}
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench100k.dir != "" {
		os.RemoveAll(bench100k.dir)
	}
	stopSharedPostgres()
	os.Exit(code)
}

func TestPackFacts(t *testing.T) {
	f := syntheticFacts(12345, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	f.Command = "a:b;c 12:34; ünïcode \x00\x1f 7:"
	f.ExitCode, f.CostUSD, f.RetryWasteUSD = -1, 0.1+0.2, 1e-300
	f.Gaps = []string{"fswatch: not running", ""}
	f.Labels["k:3;"] = ""
	f.Start = time.Time{}
	var got Facts
	if err := unpackFacts(packFacts(f), &got); err != nil {
		t.Fatal(err)
	}
	got.End = got.End.UTC()
	if d := factsDiff(got, f); d != "" {
		t.Errorf("round trip: %s", d)
	}
	empty := Facts{}
	if err := unpackFacts(packFacts(empty), &got); err != nil || !reflect.DeepEqual(got, Facts{}) {
		t.Errorf("zero Facts: %+v, %v", got, err)
	}
	p := packFacts(f)
	for _, bad := range []string{"", "F0;" + p[3:], p[:len(p)-1], p + "1;", strings.Replace(p, "F1;", "F1;99999:", 1)} {
		if err := unpackFacts(bad, &got); err == nil {
			t.Errorf("unpacked malformed %.40q", bad)
		}
	}
}

// A run whose packed facts are another version's (or damaged) is read
// from its columns: Facts answers the same.
func TestFactsStalePacked(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	insertSynthetic(t, s, 3, true)
	want, err := s.Facts(ctx, FactsFilter{})
	if err != nil || len(want) != 3 {
		t.Fatalf("Facts: %d, %v", len(want), err)
	}
	if _, err := s.db.Exec(`UPDATE run_facts SET packed = 'F0;old' WHERE run_id = ?`, want[1].RunID); err != nil {
		t.Fatal(err)
	}
	got, err := s.Facts(ctx, FactsFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if d := factsDiff(got[i], want[i]); d != "" {
			t.Errorf("with a stale packed row, run %d: %s", i, d)
		}
	}
}

// factsDiff names the fields where a and b differ ("" when equal).
func factsDiff(a, b Facts) string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, fmt.Sprintf("%s: %#v != %#v", va.Type().Field(i).Name, va.Field(i).Interface(), vb.Field(i).Interface()))
		}
	}
	return strings.Join(out, "; ")
}

// A store made by an agentwatch from before the facts: only migrations
// 1-5 applied, runs written the way that version's saveTx wrote them
// (runs, run_status, run_costs), an annotation. Opened by this version,
// it gains every run's facts, the same ExtractFacts gives.
func TestFactsBackfillFromVersion5(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (5)`); err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:5] {
		if _, err := db.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var traces []*telemetry.Trace
	for i := range 3 {
		id := fmt.Sprintf("20260301-12000%d-old%03d", i, i)
		r := recorder.New(recorder.RunInfo{RunID: id, Argv: []string{"claude", "-p", "fix"}, Start: t0, RootPID: 10, Workspace: "/w",
			Sensors: []string{"ebpf"}, Attributes: map[string]string{"team": "payments"}})
		r.Add(event.Exec{Header: event.Header{Time: t0, PID: 10}, Filename: "/usr/bin/claude", Argv: []string{"claude", "-p", "fix"}, Cwd: "/w"})
		r.Add(event.File{Header: event.Header{Time: t0.Add(time.Second), PID: 10}, Source: event.SourceEBPF, Op: event.FileCreate, Path: "/w/main.go"})
		tr := r.Finish(recorder.End{Time: t0.Add(2 * time.Second), ExitCode: i})
		traces = append(traces, tr)
		run, err := Summarize(tr)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := proto.Marshal(otlp.Request(tr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO runs (id, trace_id, start_ns, end_ns, command, agent, exit_code, span_count, exported, export_error, created_ns, trace)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, '', ?, ?)`, run.ID, run.TraceID, nanos(run.Start), nanos(run.End), run.Command, run.Agent,
			nullableExit(run.ExitCode), run.Spans, time.Now().UnixNano(), blob); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT OR REPLACE INTO run_status (run_id, status, reason) VALUES (?, 'complete', '')`, run.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT OR REPLACE INTO run_costs (run_id, cost_usd, input_tokens, output_tokens) VALUES (?, NULL, NULL, NULL)`, run.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO annotations (run_id, seq, created_ns, review, reviewer, pr_url) VALUES (?, 1, 1, 'approved', 'ana', 'https://x/pull/1')`, traces[2].RunID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(dir)
	if err != nil {
		t.Fatalf("opening a version-5 store: %v", err)
	}
	defer s.Close()
	list, err := s.Facts(ctx, FactsFilter{})
	if err != nil || len(list) != 3 {
		t.Fatalf("Facts after backfill: %d, %v", len(list), err)
	}
	for i, got := range list {
		tr := traces[2-i] // newest first: same start, ids descending
		var anns []Annotation
		if i == 0 {
			anns = []Annotation{{Seq: 1, Review: "approved", Reviewer: "ana", PRURL: "https://x/pull/1"}}
		}
		want := ExtractFacts(tr, StatusComplete, anns)
		got.Start, got.End, want.Start, want.End = got.Start.UTC(), got.End.UTC(), want.Start.UTC(), want.End.UTC()
		if d := factsDiff(got, want); d != "" {
			t.Errorf("%s: %s", tr.RunID, d)
		}
		if got.Team != "payments" || got.ChangedCode != 1 || got.ExitCode != 2-i {
			t.Errorf("%s: team %q, code changes %d, exit %d", got.RunID, got.Team, got.ChangedCode, got.ExitCode)
		}
	}
	if list[0].Review != "approved" || list[0].PRURL != "https://x/pull/1" {
		t.Errorf("annotation not in the backfilled facts: %+v", list[0])
	}
}

// Open backfills for openBackfill at most (a run must not wait for an old
// store's every trace); Facts finishes the queue before it answers.
func TestBackfillBoundedAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const n = 3*factsBatch + 5
	for i := range n {
		id := fmt.Sprintf("r-%03d", i)
		r := recorder.New(recorder.RunInfo{RunID: id, Argv: []string{"sh"}, Start: t0, RootPID: 10, Workspace: "/w"})
		if err := s.Save(ctx, r.Finish(recorder.End{Time: t0.Add(time.Second)})); err != nil {
			t.Fatal(err)
		}
	}
	// As an upgrade leaves it: every run queued, none with facts.
	if _, err := s.db.Exec(`DELETE FROM run_facts; INSERT INTO run_facts_pending (run_id) SELECT id FROM runs`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	defer func(d time.Duration) { openBackfill = d }(openBackfill)
	openBackfill = time.Nanosecond // one batch, then stop
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pending := func() (k int) {
		if err := s.db.QueryRow(`SELECT count(*) FROM run_facts_pending`).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := pending(); k != n-factsBatch {
		t.Errorf("after Open: %d runs queued, want %d (one batch done)", k, n-factsBatch)
	}
	list, err := s.Facts(ctx, FactsFilter{})
	if err != nil || len(list) != n {
		t.Fatalf("Facts: %d runs, %v; want all %d", len(list), err, n)
	}
	if k := pending(); k != 0 {
		t.Errorf("after Facts: %d runs still queued", k)
	}
}
