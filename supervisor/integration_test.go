package supervisor_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/otel/attribute"
)

// TestRecordsProcessTreeAndFiles wraps a real shell script as root with
// the real sensors and asserts the stored trace: every exec'd process nested
// under the one that started it, each file change under the process that
// made it, and the same trace in the OTLP/JSON file.
func TestRecordsProcessTreeAndFiles(t *testing.T) {
	privtest.Require(t)
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "init", "-q", ws).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	script := filepath.Join(ws, "agent.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
mkdir -p src
echo 'package main' > src/main.go
sh -c 'echo draft > notes.tmp; mv notes.tmp NOTES.md'
rm src/main.go
exit 4
`), 0o755); err != nil {
		t.Fatal(err)
	}
	storeDir, traceFile := t.TempDir(), filepath.Join(t.TempDir(), "run.json")
	cmd := agentwatch(t, "run", "--user", "root", "--store", storeDir, "--trace-file", traceFile, "--task", "T-1", "--", "./agent.sh")
	cmd.Dir = ws
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 4 {
		t.Fatalf("exit %d, want the script's 4:\n%s", code, out)
	}
	id := runID(t, string(out))

	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, _, err := st.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	str := func(s *telemetry.Span, k attribute.Key) string { v, _ := s.Attr(k); return v.Emit() }
	byID := map[string]*telemetry.Span{}
	for i := range tr.Spans {
		byID[tr.Spans[i].SpanID.String()] = &tr.Spans[i]
	}
	parent := func(s *telemetry.Span) *telemetry.Span { return byID[s.ParentID.String()] }
	command := func(line string) *telemetry.Span {
		t.Helper()
		for i := range tr.Spans {
			if s := &tr.Spans[i]; s.Type() == telemetry.SpanBashCommand && str(s, telemetry.CommandLine) == line {
				return s
			}
		}
		t.Fatalf("no bash_command span for %q", line)
		return nil
	}
	fileOp := func(path, op string) *telemetry.Span {
		t.Helper()
		for i := range tr.Spans {
			s := &tr.Spans[i]
			if s.Type() == telemetry.SpanFileWrite && str(s, telemetry.FilePath) == path && strings.Contains(str(s, telemetry.FileOperation), op) {
				return s
			}
		}
		t.Fatalf("no file_write span %s %s", op, path)
		return nil
	}

	root := tr.Root()
	if root == nil || root.Type() != telemetry.SpanAgentRun {
		t.Fatalf("root span %+v", root)
	}
	if v, _ := root.Attr(telemetry.ProcessExitCode); v.AsInt64() != 4 {
		t.Errorf("root exit code %v, want 4", v.Emit())
	}
	// fswatch is off beside eBPF by default; the evidence cross-checks,
	// and every change of the script (create, rename, delete) was seen.
	if v, _ := root.Attr(telemetry.Sensors); !slices.Contains(v.AsStringSlice(), "ebpf") || slices.Contains(v.AsStringSlice(), "fswatch") {
		t.Errorf("sensors %v, want ebpf and not fswatch", v.Emit())
	}
	if v, ok := root.Attr(telemetry.FilesUnattributed); !ok || len(v.AsStringSlice()) != 0 {
		t.Errorf("unattributed %v (set %v), want an empty list", v.Emit(), ok)
	}
	if v, _ := root.Attr(telemetry.TelemetryGaps); len(v.AsStringSlice()) != 0 {
		t.Errorf("telemetry gaps %v as root, want none", v.AsStringSlice())
	}
	if got := str(root, telemetry.TaskID); got != "T-1" {
		t.Errorf("task id %q", got)
	}

	shell := command("/bin/sh " + script)
	inner := command("sh -c 'echo draft > notes.tmp; mv notes.tmp NOTES.md'")
	mv := command("mv notes.tmp NOTES.md")
	rm := command("rm src/main.go")
	for _, c := range []struct {
		child, parent *telemetry.Span
		what          string
	}{
		{shell, root, "the script under agent_run"},
		{command("mkdir -p src"), shell, "mkdir under the script"},
		{inner, shell, "sh -c under the script"},
		{mv, inner, "mv under sh -c"},
		{rm, shell, "rm under the script"},
		{fileOp(filepath.Join(ws, "src/main.go"), "create"), shell, "the redirect's create under the script"},
		{fileOp(filepath.Join(ws, "notes.tmp"), "create"), inner, "notes.tmp under sh -c"},
		{fileOp(filepath.Join(ws, "notes.tmp"), "rename"), mv, "the rename under mv"},
		{fileOp(filepath.Join(ws, "src/main.go"), "delete"), rm, "the delete under rm"},
	} {
		if p := parent(c.child); p != c.parent {
			t.Errorf("%s: parent is %+v, want the %s span %s", c.what, p, c.parent.Name, c.parent.SpanID)
		}
	}
	if v, _ := shell.Attr(telemetry.ProcessExitCode); v.AsInt64() != 4 {
		t.Errorf("script span exit code %v", v.Emit())
	}

	reqs, err := export.ReadFile(traceFile)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("trace file: %d requests, %v", len(reqs), err)
	}
	fromFile, err := otlp.FromRequest(reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(fromFile.Spans) != len(tr.Spans) {
		t.Errorf("trace file has %d spans, the store %d", len(fromFile.Spans), len(tr.Spans))
	}
}

// TestDegradedModeWithoutRoot runs agentwatch itself as an unprivileged
// user: no cgroup, no eBPF, yet the run completes, fswatch still sees the
// workspace, and the root span names each missing sensor.
func TestDegradedModeWithoutRoot(t *testing.T) {
	privtest.Require(t) // root is needed to become someone else
	const nobody = 65534
	// Not t.TempDir: its parent is 0700, closed to nobody.
	dir, err := os.MkdirTemp("", "agentwatch-degraded-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The test binary doubles as agentwatch; nobody must be able to run it.
	bin := filepath.Join(dir, "agentwatch")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	ws, storeDir := filepath.Join(dir, "ws"), filepath.Join(dir, "store")
	for _, d := range []string{ws, storeDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// --no-fswatch is ignored here: without eBPF, fswatch is the file
	// sensor, so it runs all the same.
	cmd := exec.Command(bin, "run", "--no-fswatch", "--store", storeDir, "--", "/bin/sh", "-c", "id -u; echo x > made.txt")
	cmd.Dir = ws
	cmd.Env = append(os.Environ(), asAgentwatch+"=1", "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("agentwatch as nobody: %v:\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "65534\n") {
		t.Errorf("child did not run as the unprivileged caller:\n%s", out)
	}
	id := runID(t, string(out))
	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, _, err := st.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	root := tr.Root()
	gaps, _ := root.Attr(telemetry.TelemetryGaps)
	joined := strings.Join(gaps.AsStringSlice(), "\n")
	for _, want := range []string{"cgroup: ", "ebpf: "} {
		if !strings.Contains(joined, want) {
			t.Errorf("gaps %q lack %q", joined, want)
		}
	}
	found := false
	for i := range tr.Spans {
		if v, _ := tr.Spans[i].Attr(telemetry.FilePath); v.AsString() == filepath.Join(ws, "made.txt") {
			found = true
		}
	}
	if !found {
		t.Errorf("fswatch evidence of made.txt missing from the trace")
	}
}

// By default, and with --no-fswatch, eBPF runs without the inotify
// cross-check, which is neither a gap nor a loss of file evidence (eBPF
// reports the change); --fswatch adds it; both flags are refused.
func TestFSWatchFlags(t *testing.T) {
	privtest.Require(t)
	sourcesOf := func(tr *telemetry.Trace, p string) []string {
		var sources []string
		for i := range tr.Spans {
			s := &tr.Spans[i]
			if v, _ := s.Attr(telemetry.FilePath); v.AsString() == p {
				src, _ := s.Attr(telemetry.FileSource)
				sources = append(sources, src.AsString())
			}
		}
		return sources
	}
	for _, flags := range [][]string{nil, {"--no-fswatch"}, {"--fswatch"}} {
		ws := t.TempDir()
		tr := recordRun(t, ws, append(flags, "--", "/bin/sh", "-c", "echo x > made.txt")...)
		root := tr.Root()
		sensors, _ := root.Attr(telemetry.Sensors)
		got := sensors.AsStringSlice()
		wantFSW := slices.Contains(flags, "--fswatch")
		if !slices.Contains(got, "ebpf") || slices.Contains(got, "fswatch") != wantFSW {
			t.Errorf("%q: sensors %q, want ebpf, fswatch %v", flags, got, wantFSW)
		}
		if gaps, ok := root.Attr(telemetry.TelemetryGaps); ok && len(gaps.AsStringSlice()) > 0 {
			t.Errorf("%q: gaps %q: not running the cross-check on request is not a gap", flags, gaps.AsStringSlice())
		}
		if src := sourcesOf(tr, filepath.Join(ws, "made.txt")); !slices.Equal(src, []string{"ebpf"}) {
			t.Errorf("%q: made.txt spans from %q, want one from ebpf", flags, src)
		}
	}
	r := runAgentwatch(t, "run", "--fswatch", "--no-fswatch", "--user", "root", "--", "/bin/true")
	if want := "agentwatch: --fswatch and --no-fswatch contradict each other: pass one\n"; r.code != 2 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("both flags: exit %d, stderr %q; want 2 and first %q", r.code, r.stderr, want)
	}
}

// TestUnattributedChangeFromOutside: a file written into the workspace
// during the run by a process outside it (this test) is what no sensor
// saw: the evidence names it on the root and raises unattributed_change,
// while the run's own write is attributed. With --fswatch the live
// cross-check sees it, so nothing is unattributed.
func TestUnattributedChangeFromOutside(t *testing.T) {
	privtest.Require(t)
	for _, flags := range [][]string{nil, {"--fswatch"}} {
		ws, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("git", "init", "-q", ws).CombinedOutput(); err != nil {
			t.Fatalf("git init: %v %s", err, out)
		}
		storeDir := t.TempDir()
		// The child writes mine.txt, then waits (10 s at most) for the
		// test's file, which it only stats.
		script := "echo a > mine.txt; i=0; while [ ! -e theirs.txt ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done"
		cmd := agentwatch(t, append(append([]string{"run", "--user", "root", "--store", storeDir}, flags...), "--", "/bin/sh", "-c", script)...)
		cmd.Dir = ws
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(ws, "mine.txt")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("the child never wrote mine.txt")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := os.WriteFile(filepath.Join(ws, "theirs.txt"), []byte("outside\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%q: %v\n%s", flags, err, out.String())
		}
		tr := loadRun(t, storeDir, out.String())
		root := tr.Root()
		v, _ := root.Attr(telemetry.FilesUnattributed)
		var rules []string
		for _, e := range root.Events {
			for _, kv := range e.Attrs {
				if kv.Key == telemetry.AlertRule {
					rules = append(rules, kv.Value.AsString())
				}
			}
		}
		if len(flags) == 0 {
			if got := v.AsStringSlice(); !slices.Equal(got, []string{"theirs.txt"}) {
				t.Errorf("unattributed %q, want [theirs.txt]", got)
			}
			if !slices.Contains(rules, telemetry.AlertUnattributed) {
				t.Errorf("root alerts %q lack %s", rules, telemetry.AlertUnattributed)
			}
			if !strings.Contains(out.String(), "unattributed_change") {
				t.Errorf("the summary does not show the alert:\n%s", out.String())
			}
			continue
		}
		if got := v.AsStringSlice(); len(got) != 0 || slices.Contains(rules, telemetry.AlertUnattributed) {
			t.Errorf("--fswatch: unattributed %q, alerts %q; want none", got, rules)
		}
	}
}

// TestToolContextOfRealRun: a command started with the variable (here by
// env(1), which execs /bin/true with it) gets the agent's tool-call id on
// its process span; the kernel side copies the environment at exec time,
// so even a process that exits at once has it.
func TestToolContextOfRealRun(t *testing.T) {
	privtest.Require(t)
	tr := recordRun(t, t.TempDir(), "--", "/usr/bin/env", "CODEX_TOOL_CALL_ID=call_9", "GITHUB_TOKEN=ghp_notrecorded", "/bin/true")
	var ids []string
	for i := range tr.Spans {
		if v, ok := tr.Spans[i].Attr(telemetry.AgentToolCallID); ok {
			ids = append(ids, v.AsString())
		}
		for _, kv := range tr.Spans[i].Attrs {
			if strings.Contains(kv.Value.Emit(), "ghp_notrecorded") {
				t.Errorf("span %s carries another variable's value: %s", tr.Spans[i].Name, kv.Key)
			}
		}
	}
	if !slices.Equal(ids, []string{"call_9"}) {
		t.Errorf("tool call ids on the trace %q, want [call_9]", ids)
	}
}
