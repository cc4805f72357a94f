package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/protobuf/encoding/protojson"
)

// digest is the documented list digest, computed independently: sha256
// of the sorted entries, each ended by a NUL byte.
func digest(keys []string) string {
	s := slices.Clone(keys)
	sort.Strings(s)
	h := sha256.New()
	for _, k := range s {
		h.Write([]byte(k + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func spansOfType(tr *telemetry.Trace, typ string) []*telemetry.Span {
	var out []*telemetry.Span
	for i := range tr.Spans {
		if v, _ := tr.Spans[i].Attr(telemetry.SpanType); v.AsString() == typ {
			out = append(out, &tr.Spans[i])
		}
	}
	return out
}

func attrString(s *telemetry.Span, k attribute.Key) string {
	v, _ := s.Attr(k)
	return v.Emit()
}

// 100,000 files created and written by one process, seen by eBPF and by
// fswatch: the process's first fileSpansPerProc paths are spans, the rest
// one aggregate whose counts, directories, first paths and digest are
// exact; the run's file list has every path.
func TestAggregateManyFiles(t *testing.T) {
	const n = 100_000
	r := New(runInfo())
	r.Add(fork(1, 200, 100))
	r.Add(exec(1, 200, 100, "/usr/bin/python3", ws, "python3", "gen.py"))
	before := heap()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("%s/gen/%03d/f%06d.txt", ws, i%100, i)
	}
	for i, p := range paths {
		r.Add(file(2+i/100, 200, event.FileCreate, p))
		r.Add(file(2+i/100, 200, event.FileWrite, p))
		r.Add(event.File{Header: hdr(3+i/100, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: p})
	}
	grew := int64(heap()) - int64(before)
	// The path strings themselves (~35 bytes) are the test's; what the
	// recorder adds is a few map entries per path.
	if grew > 300*n {
		t.Errorf("%d paths grew the heap by %d bytes (%d per path)", n, grew, grew/n)
	}
	t.Logf("heap growth %d bytes (%d per path)", grew, grew/n)
	tr := r.Finish(End{Time: at(5000)})

	if want := 2 + fileSpansPerProc + 1; len(tr.Spans) != want {
		t.Fatalf("%d spans, want %d", len(tr.Spans), want)
	}
	if got := len(spansOfType(tr, telemetry.SpanFileWrite)); got != fileSpansPerProc {
		t.Errorf("%d file_write spans, want %d", got, fileSpansPerProc)
	}
	aggs := spansOfType(tr, telemetry.SpanFileAggregate)
	if len(aggs) != 1 {
		t.Fatalf("%d file aggregates", len(aggs))
	}
	agg := aggs[0]
	if agg.ParentID != find(t, tr, "bash_command python3").SpanID {
		t.Error("the aggregate is not under the process that wrote")
	}
	rest := paths[fileSpansPerProc:]
	first := make([]string, aggFirst)
	for i := range first {
		first[i] = strings.TrimPrefix(rest[i], ws+"/")
	}
	m := len(rest)
	wantAttrs(t, agg, map[attribute.Key]string{
		telemetry.AggregatedCount:      fmt.Sprint(m),
		telemetry.AggregatedEvents:     fmt.Sprint(2 * m),
		telemetry.AggregatedOperations: fmt.Sprintf(`["create (%d)","write (%d)"]`, m, m),
		telemetry.AggregatedSHA256:     digest(rest),
		telemetry.AggregatedPartial:    "false",
		telemetry.AggregatedFirst:      `["` + strings.Join(first, `","`) + `"]`,
	})
	// 256 spanned paths are gen/000..gen/099 twice and gen/000..055 a
	// third time: those directories have 997 aggregated paths, the rest 998.
	dirs := agg.Attrs[0]
	for _, kv := range agg.Attrs {
		if kv.Key == telemetry.AggregatedTopDirs {
			dirs = kv
		}
	}
	if got := dirs.Value.AsStringSlice(); len(got) != aggTopDirs || got[0] != "gen/056 (998)" {
		t.Errorf("top dirs = %v", got)
	}
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{
		telemetry.AggregatedSpans: "1",
		telemetry.AggregatedFiles: fmt.Sprint(m),
		telemetry.FilesListCount:  fmt.Sprint(n),
		telemetry.FilesListSHA256: digest(paths),
		telemetry.FilesWritten:    "<unset>",
		telemetry.AggregatedBudgets: fmt.Sprintf(`["file spans: %d per process, %d per run","network spans: %d per process, %d per run","dns spans: %d per process, %d per run","process spans: %d per parent, %d per run"]`,
			fileSpansPerProc, fileSpansPerRun, netSpansPerProc, netSpansPerRun, dnsSpansPerProc, dnsSpansPerRun, procSpansPerParent, procSpansPerRun),
	})
	wantAttrs(t, find(t, tr, "bash_command python3"), map[attribute.Key]string{telemetry.FilesWritten: fmt.Sprint(n)})

	files := r.Files()
	if len(files) != n {
		t.Fatalf("file list has %d entries, want %d", len(files), n)
	}
	sorted := slices.Clone(paths)
	sort.Strings(sorted)
	for i, f := range files {
		if f.Path != sorted[i] || !slices.Equal(f.Ops, []string{"create", "write"}) || f.Source != "ebpf" || f.Failed {
			t.Fatalf("file %d = %+v, want %s create,write from ebpf", i, f, sorted[i])
		}
	}
}

// Many processes share the run budget: once fileSpansPerRun spans exist,
// every process aggregates, and spans plus aggregates account for every
// path.
func TestAggregateRunBudget(t *testing.T) {
	const procs, each = 20, 200
	r := New(runInfo())
	for p := 0; p < procs; p++ {
		pid := uint32(200 + p)
		r.Add(fork(1, pid, 100))
		r.Add(exec(1, pid, 100, "/bin/sh", ws, "sh", fmt.Sprint(p)))
		for i := 0; i < each; i++ {
			r.Add(file(2, pid, event.FileCreate, fmt.Sprintf("%s/p%02d/%03d", ws, p, i)))
		}
	}
	tr := r.Finish(End{Time: at(10)})
	spanned := len(spansOfType(tr, telemetry.SpanFileWrite))
	if spanned != fileSpansPerRun {
		t.Errorf("%d file spans, want the run budget %d", spanned, fileSpansPerRun)
	}
	aggregated := 0
	for _, a := range spansOfType(tr, telemetry.SpanFileAggregate) {
		v, _ := a.Attr(telemetry.AggregatedCount)
		aggregated += int(v.AsInt64())
	}
	if spanned+aggregated != procs*each {
		t.Errorf("%d spanned + %d aggregated, want %d", spanned, aggregated, procs*each)
	}
	if n := len(r.Files()); n != procs*each {
		t.Errorf("file list has %d paths", n)
	}
}

// evidenceEvents are writes and reads that raise alerts: a protected
// workflow, a secret, a persistence location, a secret read.
func evidenceEvents(n int) []event.Event {
	return []event.Event{
		file(n, 101, event.FileWrite, ws+"/.github/workflows/ci.yml"),
		file(n, 101, event.FileCreate, ws+"/config/.env"),
		file(n, 101, event.FileWrite, home+"/.bashrc"),
		file(n, 101, event.FileRead, home+"/.ssh/id_ed25519"),
	}
}

// Aggregation never costs evidence: after the budget is spent, protected,
// secret and persistence paths still get their own spans and every alert
// a run without the flood raises.
func TestAggregateKeepsEvidence(t *testing.T) {
	plain := record(runInfo(), append(agent(), evidenceEvents(10)...), End{Time: at(20)})
	events := agent()
	for i := 0; i < fileSpansPerRun+100; i++ {
		events = append(events, file(5, 101, event.FileCreate, fmt.Sprintf("%s/flood/%05d", ws, i)))
	}
	events = append(events, evidenceEvents(10)...)
	flooded := record(runInfo(), events, End{Time: at(20)})
	if len(spansOfType(flooded, telemetry.SpanFileAggregate)) != 1 {
		t.Fatal("the flood was not aggregated")
	}
	want := alertsOf(plain)
	if len(want) < 4 {
		t.Fatalf("premise: the evidence raises %d alerts: %v", len(want), want)
	}
	got := alertsOf(flooded)
	for _, a := range want {
		if !slices.Contains(got, a) {
			t.Errorf("alert lost to aggregation: %+v", a)
		}
	}
	for _, lbl := range []string{"file_write .github/workflows/ci.yml", "file_write config/.env", "file_write /home/dev/.bashrc", "file_read /home/dev/.ssh/id_ed25519"} {
		find(t, flooded, lbl)
	}
}

// Past alertingSpansPerRun even evidence is aggregated, and the aggregate
// carries the alert: a flood of *.pem files cannot grow the trace without
// bound nor hide.
func TestAggregateAlertingCeiling(t *testing.T) {
	r := New(runInfo())
	for _, e := range agent() {
		r.Add(e)
	}
	const n = alertingSpansPerRun + 10
	for i := 0; i < n; i++ {
		r.Add(file(5, 101, event.FileCreate, fmt.Sprintf("%s/keys/%05d.pem", ws, i)))
	}
	tr := r.Finish(End{Time: at(20)})
	aggs := spansOfType(tr, telemetry.SpanFileAggregate)
	if len(aggs) != 1 {
		t.Fatalf("%d aggregates", len(aggs))
	}
	wantAttrs(t, aggs[0], map[attribute.Key]string{telemetry.AggregatedAlerting: "10", telemetry.AggregatedCount: "10"})
	var onAgg []wantAlert
	for _, a := range alertsOf(tr) {
		if a.span == telemetry.SpanFileAggregate {
			onAgg = append(onAgg, a)
		}
	}
	if len(onAgg) != 1 || onAgg[0].rule != telemetry.AlertSecretAccess || onAgg[0].severity != telemetry.SeverityHigh {
		t.Errorf("alerts on the aggregate: %+v", onAgg)
	}
}

// Connections to thousands of destinations (a scan of loopback ports)
// are netSpansPerProc spans and one aggregate, each attempt counted once
// though the sensor and the enforcer both report it; a refused
// destination past the budget keeps its span and its alert.
func TestAggregateNetwork(t *testing.T) {
	const n = 3000
	denied := []event.Event{netDec(50, 101, event.TCP, "203.0.113.7:443", "", event.Deny, "network.allow", checkAddress)}
	plain := record(policyInfo(t), append(agent(), denied...), End{Time: at(60)})
	events := agent()
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+i)
		events = append(events, netDec(5, 101, event.TCP, addr, "", event.Allow, "loopback", checkAddress),
			conn(5, 101, event.TCP, addr, 111, "")) // ECONNREFUSED
	}
	events = append(events, denied...)
	tr := record(policyInfo(t), events, End{Time: at(60)})
	if got := len(spansOfType(tr, telemetry.SpanNetworkCall)); got != netSpansPerProc+1 {
		t.Errorf("%d network_call spans, want %d and the refused one", got, netSpansPerProc)
	}
	aggs := spansOfType(tr, telemetry.SpanNetworkAggregate)
	if len(aggs) != 1 {
		t.Fatalf("%d network aggregates", len(aggs))
	}
	m := n - netSpansPerProc
	var dests []string
	for i := netSpansPerProc; i < n; i++ {
		dests = append(dests, fmt.Sprintf("tcp 127.0.0.1:%d", 10000+i))
	}
	wantAttrs(t, aggs[0], map[attribute.Key]string{
		telemetry.AggregatedCount:      fmt.Sprint(m),
		telemetry.ConnectionsCount:     fmt.Sprint(m),
		telemetry.AggregatedFailures:   fmt.Sprint(m),
		telemetry.AggregatedOperations: fmt.Sprintf(`["tcp (%d)"]`, m),
		telemetry.AggregatedSHA256:     digest(dests),
	})
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{telemetry.AggregatedDestinations: fmt.Sprint(m)})
	got := alertsOf(tr)
	for _, a := range alertsOf(plain) {
		if !slices.Contains(got, a) {
			t.Errorf("alert lost to aggregation: %+v", a)
		}
	}
	find(t, tr, "network_call tcp 203.0.113.7:443")
}

// Lookups of thousands of allowed names aggregate; a refused unknown name
// keeps its span and its unknown_domain alert.
func TestAggregateDNS(t *testing.T) {
	const n = 2000
	refused := dnsq(50, 101, "exfil.example.net", "A", event.Deny, "network.allow", "NXDOMAIN", false)
	plain := record(policyInfo(t), append(agent(), refused), End{Time: at(60)})
	events := agent()
	for i := 0; i < n; i++ {
		events = append(events, dnsq(5, 101, fmt.Sprintf("h%04d.api.github.com", i), "A", event.Allow, "*.github.com", "NOERROR", true, "140.82.112.3"))
	}
	events = append(events, refused)
	tr := record(policyInfo(t), events, End{Time: at(60)})
	aggs := spansOfType(tr, telemetry.SpanDNSAggregate)
	if len(aggs) != 1 {
		t.Fatalf("%d dns aggregates", len(aggs))
	}
	wantAttrs(t, aggs[0], map[attribute.Key]string{
		telemetry.AggregatedCount: fmt.Sprint(n - dnsSpansPerProc),
		telemetry.DNSLookups:      fmt.Sprint(n - dnsSpansPerProc),
	})
	if len(plain.Spans) < 4 || len(alertsOf(plain)) == 0 {
		t.Fatalf("premise: the refused lookup raises no alert")
	}
	got := alertsOf(tr)
	for _, a := range alertsOf(plain) {
		if !slices.Contains(got, a) {
			t.Errorf("alert lost to aggregation: %+v", a)
		}
	}
	if len(tr.Spans) > 4+dnsSpansPerProc+2 {
		t.Errorf("%d spans", len(tr.Spans))
	}
}

// Without eBPF, fswatch is the file evidence: its paths are root spans (it
// knows no process) up to the root's budget, then an aggregate; a protected path among them keeps
// its span and alert, and the file list has every path.
func TestAggregateFSWatchOnly(t *testing.T) {
	const n = 10_000
	info := runInfo()
	info.Sensors = []string{"fswatch"}
	r := New(info)
	r.Add(fork(1, 100, 1))
	r.Add(exec(1, 100, 1, "/bin/sh", ws, "sh"))
	var paths []string
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("%s/out/%05d", ws, i)
		paths = append(paths, p)
		r.Add(event.File{Header: hdr(2, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: p})
	}
	wf := ws + "/.github/workflows/zz.yml"
	paths = append(paths, wf)
	r.Add(event.File{Header: hdr(3, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: wf})
	tr := r.Finish(End{Time: at(10)})
	if got := len(spansOfType(tr, telemetry.SpanFileWrite)); got != fileSpansPerProc+1 {
		t.Errorf("%d file spans, want %d and the workflow", got, fileSpansPerProc)
	}
	aggs := spansOfType(tr, telemetry.SpanFileAggregate)
	if len(aggs) != 1 || aggs[0].ParentID != tr.Spans[0].SpanID {
		t.Fatalf("want one aggregate on the root, got %d", len(aggs))
	}
	wantAttrs(t, aggs[0], map[attribute.Key]string{
		telemetry.AggregatedCount:      fmt.Sprint(n - fileSpansPerProc),
		telemetry.AggregatedOperations: fmt.Sprintf(`["create (%d)"]`, n-fileSpansPerProc),
	})
	var workflow bool
	for _, a := range alertsOf(tr) {
		workflow = workflow || a.span == "file_write .github/workflows/zz.yml" && a.rule == telemetry.AlertWorkflowEdit
	}
	if !workflow {
		t.Errorf("no workflow_edit alert on the fswatch-only workflow: %v", alertsOf(tr))
	}
	files := r.Files()
	if len(files) != n+1 || files[0].Source != "fswatch" {
		t.Fatalf("file list: %d entries", len(files))
	}
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{telemetry.FilesListSHA256: digest(paths)})
}

// The file list is redacted like the trace: a dropped variable's value or
// a token in a file name never reaches the store through it, and the
// digest is of the redacted list.
func TestFileListRedacted(t *testing.T) {
	info := runInfo()
	info.RedactValues = []string{"s3cr3t-db-pass"}
	tok := "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	r := New(info)
	r.Add(exec(1, 100, 1, "/bin/sh", ws, "sh"))
	r.Add(file(2, 100, event.FileCreate, ws+"/dir-s3cr3t-db-pass/a"))
	r.Add(file(2, 100, event.FileCreate, ws+"/dir-"+tok+"/b"))
	r.Finish(End{Time: at(3)})
	for _, f := range r.Files() {
		if strings.Contains(f.Path, "s3cr3t") || strings.Contains(f.Path, tok) {
			t.Errorf("secret in the file list: %s", f.Path)
		}
		if !strings.Contains(f.Path, "[REDACTED") {
			t.Errorf("%s: not marked redacted", f.Path)
		}
	}
}

func policyInfo(t *testing.T) RunInfo {
	info := runInfo()
	info.Policy = mustPolicy(t, "enforce", "")
	return info
}

// A loop of 20,000 short commands: procSpansPerParent spans, then one
// process aggregate (distinct command lines, top executables, failed
// exits); a test run and a commit past the budget keep their spans; the
// files the aggregated commands write are their parent's; and the pids of
// exited processes are forgotten past keptExited.
func TestAggregateProcesses(t *testing.T) {
	const n = 20_000
	r := New(runInfo())
	// Every process inherits the TRACEPARENT naming agent_run: that is no
	// tool call of its own.
	inherited := "00-" + r.traceID.String() + "-" + r.root.id.String() + "-01"
	ex := func(n int, pid, ppid uint32, file string, argv ...string) event.Exec {
		e := exec(n, pid, ppid, file, ws, argv...)
		e.TraceParent = inherited
		return e
	}
	r.Add(fork(1, 100, 1))
	r.Add(ex(1, 100, 1, "/bin/bash", "bash", "loop.sh"))
	for i := 0; i < n; i++ {
		pid := uint32(1000 + i)
		r.Add(fork(2, pid, 100))
		if i%2 == 0 {
			r.Add(ex(2, pid, 100, "/usr/bin/curl", "curl", fmt.Sprintf("http://127.0.0.1:8080/%d", i%10)))
		} else {
			r.Add(ex(2, pid, 100, "/bin/true", "true"))
		}
		r.Add(file(3, pid, event.FileCreate, fmt.Sprintf("%s/out/%05d", ws, i)))
		r.Add(exit(4, pid, i%4/3, 0)) // every fourth fails
	}
	if len(r.procs) > keptExited+2 {
		t.Errorf("%d pids still known after %d exits", len(r.procs), n)
	}
	r.Add(fork(5, 90001, 100))
	r.Add(exec(5, 90001, 100, "/usr/local/go/bin/go", ws, "go", "test", "./..."))
	r.Add(fork(5, 90002, 100))
	r.Add(exec(5, 90002, 100, "/usr/bin/git", ws, "git", "commit", "-m", "x"))
	// A tool call of the agent (its own TRACEPARENT) keeps its span.
	tool := exec(5, 90003, 100, "/usr/bin/jq", ws, "jq", ".")
	tool.TraceParent = "00-" + r.traceID.String() + "-00f067aa0ba902b7-01"
	r.Add(fork(5, 90003, 100))
	r.Add(tool)
	tr := r.Finish(End{Time: at(10)})

	aggs := spansOfType(tr, telemetry.SpanProcessAggregate)
	if len(aggs) != 1 || aggs[0].ParentID != find(t, tr, "bash_command bash").SpanID {
		t.Fatalf("%d process aggregates, want one under bash", len(aggs))
	}
	m := n - procSpansPerParent
	var lines []string
	for i := 0; i < 10; i += 2 {
		lines = append(lines, fmt.Sprintf("curl http://127.0.0.1:8080/%d", i))
	}
	lines = append(lines, "true")
	wantAttrs(t, aggs[0], map[attribute.Key]string{
		telemetry.AggregatedEvents:         fmt.Sprint(m),
		telemetry.AggregatedCount:          "6",
		telemetry.AggregatedSHA256:         digest(lines),
		telemetry.AggregatedTopExecutables: fmt.Sprintf(`["curl (%d)","true (%d)"]`, m/2, m/2),
		telemetry.AggregatedFailures:       fmt.Sprint(m / 4),
	})
	find(t, tr, "test_run go")
	find(t, tr, "commit git")
	find(t, tr, "bash_command jq")
	if got := len(spansOfType(tr, telemetry.SpanBashCommand)); got != procSpansPerParent+2 {
		t.Errorf("%d bash_command spans, want bash, %d and jq", got, procSpansPerParent)
	}
	wantAttrs(t, &tr.Spans[0], map[attribute.Key]string{telemetry.AggregatedCommands: "6"})
	// The aggregated commands' files are bash's: one aggregate under it.
	fileAggs := spansOfType(tr, telemetry.SpanFileAggregate)
	if len(fileAggs) == 0 || fileAggs[0].ParentID != find(t, tr, "bash_command bash").SpanID {
		t.Errorf("the aggregated commands' files are not under their parent")
	}
	if len(r.Files()) != n {
		t.Errorf("file list has %d paths, want %d", len(r.Files()), n)
	}
}

// The worst a run can do to the trace's size, every budget overrun at
// once: 2,500 processes with 8 KiB command lines, each writing 100
// workspace files, connecting to 70 destinations, looking up 70 names,
// refused 3 connections and 3 lookups, writing a secret. The OTLP/JSON
// trace (what --trace-file holds) stays under 10 MB and the evidence is
// all there: the refusals and secrets of the first processes as spans,
// the rest as alerts on aggregates.
func TestTraceSizeWorstCase(t *testing.T) {
	if testing.Short() {
		t.Skip("800,000 events")
	}
	info := policyInfo(t)
	r := New(info)
	r.Add(fork(1, 100, 1))
	r.Add(exec(1, 100, 1, "/usr/local/bin/claude", ws, "claude"))
	long := strings.Repeat("x", 8000)
	for i := 0; i < 2500; i++ {
		pid := uint32(1000 + i)
		r.Add(fork(2, pid, 100))
		r.Add(exec(2, pid, 100, "/usr/bin/python3", ws, "python3", "-c", fmt.Sprintf("%d%s", i, long)))
		for j := 0; j < 100; j++ {
			r.Add(file(3, pid, event.FileCreate, fmt.Sprintf("%s/out/p%04d/f%03d.txt", ws, i, j)))
		}
		for j := 0; j < 70; j++ {
			addr := fmt.Sprintf("127.0.%d.%d:%d", i%250, j, 8000+j)
			r.Add(netDec(4, pid, event.TCP, addr, "", event.Allow, "loopback", checkAddress))
			r.Add(conn(4, pid, event.TCP, addr, 0, ""))
			r.Add(dnsq(4, pid, fmt.Sprintf("h%d-%d.api.github.com", i, j), "A", event.Allow, "*.github.com", "NOERROR", true, "140.82.112.3"))
		}
		for j := 0; j < 3; j++ {
			r.Add(netDec(5, pid, event.TCP, fmt.Sprintf("203.0.%d.%d:443", i%250, j), "", event.Deny, "network.allow", checkAddress))
			r.Add(dnsq(5, pid, fmt.Sprintf("x%d-%d.exfil.example", i, j), "A", event.Deny, "network.allow", "NXDOMAIN", false))
		}
		r.Add(file(6, pid, event.FileCreate, fmt.Sprintf("%s/keys/%04d.pem", ws, i)))
		r.Add(exit(7, pid, 0, 0))
	}
	tr := r.Finish(End{Time: at(10)})
	b, err := protojson.Marshal(otlp.Request(tr))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d spans, %.2f MB OTLP/JSON, %d aggregates", len(tr.Spans), float64(len(b))/(1<<20), r.aggSpans)
	if len(b) > 10<<20 {
		t.Errorf("trace is %d bytes of OTLP/JSON, want <= 10 MB", len(b))
	}
	rules := map[string]int{}
	for _, a := range alertsOf(tr) {
		rules[a.rule]++
		if a.span == telemetry.SpanNetworkAggregate || a.span == telemetry.SpanDNSAggregate || a.span == telemetry.SpanFileAggregate {
			rules[a.rule+" on aggregate"]++
		}
	}
	for _, want := range []string{telemetry.AlertPolicyBypass + " on aggregate", telemetry.AlertUnknownDomain + " on aggregate", telemetry.AlertSecretAccess + " on aggregate"} {
		if rules[want] == 0 {
			t.Errorf("no %s alert: %v", want, rules)
		}
	}
	// Every evidence span up to the ceiling has its alert, beside the ones
	// on aggregates.
	onSpans := rules[telemetry.AlertSecretAccess] + rules[telemetry.AlertPolicyBypass] + rules[telemetry.AlertUnknownDomain] - 3
	if onSpans < alertingSpansPerRun {
		t.Errorf("%d evidence alerts on spans, want the ceiling %d: %v", onSpans, alertingSpansPerRun, rules)
	}
	if n := len(r.Files()); n != 2500*101 {
		t.Errorf("file list has %d paths, want %d", n, 2500*101)
	}
}

// Past maxAggKeys distinct keys in the run's aggregates, an aggregate
// stops remembering new ones and says its count and digest are partial;
// its events still count.
func TestAggregateKeysBounded(t *testing.T) {
	r := New(runInfo())
	r.Add(exec(1, 100, 1, "/bin/sh", ws, "sh"))
	r.aggKeys = maxAggKeys - 5 // as if the run's other aggregates held the rest
	const n = fileSpansPerProc + 20
	for i := 0; i < n; i++ {
		r.Add(file(2, 100, event.FileCreate, fmt.Sprintf("%s/f%04d", ws, i)))
	}
	tr := r.Finish(End{Time: at(3)})
	aggs := spansOfType(tr, telemetry.SpanFileAggregate)
	if len(aggs) != 1 {
		t.Fatalf("%d aggregates", len(aggs))
	}
	wantAttrs(t, aggs[0], map[attribute.Key]string{
		telemetry.AggregatedCount:   "5",
		telemetry.AggregatedEvents:  "20",
		telemetry.AggregatedPartial: "true",
	})
	if len(r.Files()) != n {
		t.Errorf("the file list lost paths: %d of %d", len(r.Files()), n)
	}
}
