package recorder

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const (
	ws   = "/home/dev/app"
	home = "/home/dev"
)

// Secrets planted in the fixture's command lines: none may appear anywhere
// in the trace.
var planted = []string{
	"sk-ant-api03-Zq8xV2mN4pL7rT1wY6uB3cD9",
	"ghp_0123456789abcdefghijABCDEFGHIJ012345",
	"hunter2secret",
	"AKIAIOSFODNN7EXAMPLE",
	"s3cr3t-db-pass",
}

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// at is t0 plus n milliseconds: the fixture's clock.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func hdr(n int, pid uint32) event.Header { return event.Header{Time: at(n), PID: pid} }

func fork(n int, pid, ppid uint32) event.Fork { return event.Fork{Header: hdr(n, pid), PPID: ppid} }

func exec(n int, pid, ppid uint32, file, cwd string, argv ...string) event.Exec {
	return event.Exec{Header: hdr(n, pid), PPID: ppid, UID: 1000, GID: 1000, Filename: file, Argv: argv, Cwd: cwd}
}

func exit(n int, pid uint32, code, sig int) event.Exit {
	return event.Exit{Header: hdr(n, pid), Code: code, Signal: sig}
}

func file(n int, pid uint32, op event.FileOp, p string) event.File {
	return event.File{Header: hdr(n, pid), Source: event.SourceEBPF, Op: op, Path: p}
}

func conn(n int, pid uint32, tr event.Transport, addr string, errno syscall.Errno, name string) event.Connect {
	op := event.NetConnect
	if tr == event.UDP {
		op = event.NetSendTo
	}
	return event.Connect{Header: hdr(n, pid), Source: event.SourceEBPF, Op: op, Transport: tr,
		Addr: netip.MustParseAddrPort(addr), Errno: -int32(errno), Name: name}
}

func runInfo() RunInfo {
	return RunInfo{
		RunID:     "run-7f3a",
		Argv:      []string{"claude", "-p", "fix the flaky test", "--api-key", planted[0]},
		Start:     at(0),
		RootPID:   100,
		UID:       1000,
		User:      "dev",
		Home:      home,
		Workspace: ws,
		TaskID:    "ENG-42",
		TaskURL:   "https://tracker.example/ENG-42",
		Before: &workspace.Snapshot{Root: ws, IsGit: true, RemoteURL: "https://github.com/acme/app.git",
			Branch: "main", Head: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Dirty: false},
		Sensors:        []string{"ebpf", "fswatch"},
		Gaps:           []event.Gap{{Sensor: "cgroup", Reason: "hybrid hierarchy"}},
		CI:             map[string]string{"cicd.pipeline.run.id": "9876"},
		Attributes:     map[string]string{"team": "platform"},
		ServiceVersion: "0.1.0",
		Host:           "ci-runner-7",
	}
}

// fixture is one realistic run of `claude -p …`: it runs
// `bash -c 'go test ./... && … git push …'`, whose subshell forks without
// exec, go test builds outside the workspace and runs a failing test
// binary, git push is refused and killed; claude edits files (create,
// write, rename, delete, chmod, a refused workflow edit, a protected
// dotfile), reads a secret, talks to its API and to DNS over UDP; an env
// wrapper re-execs python; a process of unknown parent and a connect of an
// unknown pid; fswatch sees one path eBPF missed; events were dropped.
func fixture() []event.Event {
	bashScript := "go test ./... && GITHUB_TOKEN=" + planted[1] + " git push https://dev:" + planted[2] + "@github.com/acme/app.git"
	return []event.Event{
		fork(1, 100, 1), // from the supervisor, which is not traced
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "fix the flaky test"),
		conn(3, 100, event.TCP, "160.79.104.10:443", syscall.EINPROGRESS, "api.anthropic.com"),
		conn(4, 100, event.TCP, "160.79.104.10:443", 0, ""),
		conn(5, 100, event.UDP, "[2001:4860:4860::8888]:53", 0, ""),

		fork(10, 101, 100),
		exec(11, 101, 100, "/usr/bin/bash", ws, "bash", "-c", bashScript),
		// a subshell: forks, never execs; its writes and its children
		// belong to bash
		fork(12, 102, 101),
		file(13, 102, event.FileCreate, ws+"/out.log"),
		file(14, 102, event.FileWrite, ws+"/out.log"),
		fork(15, 103, 102),
		exec(16, 103, 102, "/usr/bin/sort", ws, "sort", "-u"),
		exit(17, 103, 0, 0),
		exit(18, 102, 0, 0),

		fork(20, 104, 101),
		exec(21, 104, 101, "/usr/local/go/bin/go", ws, "go", "test", "./..."),
		file(22, 104, event.FileCreate, "/root/.cache/go-build/ab/abc-d"),
		file(23, 104, event.FileCreate, "/root/.cache/go-build/cd/cde-d"),
		file(24, 104, event.FileCreate, "/tmp/go-build123/b001/_testmain.go"),
		file(25, 104, event.FileWrite, "/tmp/go-build123/b001/_testmain.go"),
		file(26, 104, event.FileWrite, "/dev/null"),
		fork(27, 105, 104),
		exec(28, 105, 104, "/tmp/go-build123/b001/app.test", ws+"/pkg", "/tmp/go-build123/b001/app.test", "-test.paniconexit0", "-test.timeout=10m0s"),
		exit(29, 105, 1, 0),
		exit(30, 104, 1, 0),

		fork(31, 106, 101),
		exec(32, 106, 101, "/usr/bin/git", ws, "git", "push", "https://dev:"+planted[2]+"@github.com/acme/app.git"),
		conn(33, 106, event.TCP, "140.82.112.3:443", syscall.ECONNREFUSED, ""),
		exit(34, 106, 0, int(syscall.SIGTERM)),
		exit(35, 101, 1, 0),

		// claude's own file work
		file(40, 100, event.FileCreate, ws+"/src/main.go"),
		file(41, 100, event.FileWrite, ws+"/src/main.go"),
		file(42, 100, event.FileWrite, ws+"/src/main.go"),
		file(43, 100, event.FileChmod, ws+"/src/main.go"),
		event.File{ // rename src/tmp.go → src/util.go
			Header: hdr(44, 100), Source: event.SourceEBPF, Op: event.FileRename,
			Path: ws + "/src/tmp.go", NewPath: ws + "/src/util.go",
		},
		file(45, 100, event.FileDelete, ws+"/old_test.go"),
		func() event.Event { // refused: the workflow is mounted read-only
			e := file(46, 100, event.FileWrite, ws+"/.github/workflows/ci.yml")
			e.Errno = -int32(syscall.EROFS)
			return e
		}(),
		file(47, 100, event.FileRead, home+"/.aws/credentials"),
		file(48, 100, event.FileRead, ws+"/README.md"), // not a secret: no span
		file(49, 100, event.FileWrite, home+"/.bashrc"),
		file(50, 100, event.FileCreate, "/tmp/claude-1000/scratch.txt"),
		file(51, 100, event.FileWrite, "/proc/self/oom_score_adj"),

		// env re-execs python in the same pid
		fork(60, 107, 100),
		exec(61, 107, 100, "/usr/bin/env", ws, "env", "AWS_ACCESS_KEY_ID="+planted[3], "python3", "script.py"),
		exec(62, 107, 100, "/usr/bin/python3", ws, "python3", "script.py", "--db-password", planted[4]),
		exit(63, 107, 0, 0),

		// a process whose parent was never seen; it never exits
		exec(70, 200, 999, "/usr/bin/sleep", "/", "sleep", "1000"),
		// a connect from a pid whose exec has not been seen yet
		conn(71, 300, event.TCP, "10.0.0.5:5432", 0, ""),

		// fswatch: one path eBPF covered, one it missed, one outside
		event.File{Header: hdr(80, 0), Source: event.SourceFSWatch, Op: event.FileWrite, Path: ws + "/src/main.go"},
		event.File{Header: hdr(81, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: ws + "/gen/only_fswatch.txt"},
		event.File{Header: hdr(82, 0), Source: event.SourceFSWatch, Op: event.FileWrite, Path: ws + "/gen/only_fswatch.txt"},
		event.File{Header: hdr(83, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: "/tmp/elsewhere"},

		event.Dropped{Header: hdr(90, 0), Source: event.SourceEBPF, Count: 3},
		event.Gap{Header: hdr(91, 0), Sensor: "netwatch", Reason: "dns proxy not started"},
		exit(95, 100, 0, 0),
	}
}

func fixtureEnd() End {
	return End{
		Time:     at(100),
		ExitCode: 1,
		Dropped:  2,
		Gaps:     []event.Gap{{Sensor: "ebpf", Reason: "ring buffer resized"}},
		After:    &workspace.Snapshot{Root: ws, IsGit: true, Branch: "main", Head: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Dirty: true},
	}
}

func record(info RunInfo, events []event.Event, end End) *telemetry.Trace {
	r := New(info)
	for _, e := range events {
		r.Add(e)
	}
	return r.Finish(end)
}

// label names a span for the tree view: its name plus what identifies it.
func label(s *telemetry.Span) string {
	str := func(k attribute.Key) string {
		v, _ := s.Attr(k)
		return v.Emit()
	}
	// By type, not name: names are for people (names.go).
	typ := s.Type()
	if _, proc := s.Attr(telemetry.ProcessExecutableName); proc && typ != telemetry.SpanAgentRun {
		return typ + " " + str(telemetry.ProcessExecutableName) // bash_command, test_run, commit, …
	}
	switch typ {
	case telemetry.SpanFileWrite, telemetry.SpanFileRead:
		return typ + " " + strings.TrimPrefix(str(telemetry.FilePath), ws+"/")
	case telemetry.SpanNetworkCall:
		return typ + " " + str(telemetry.NetworkTransport) + " " + str(telemetry.ServerAddress) + ":" + str(telemetry.ServerPort)
	}
	return typ
}

// tree renders the trace as indented labels, children in trace order.
func tree(t *testing.T, tr *telemetry.Trace) string {
	t.Helper()
	children := map[trace.SpanID][]*telemetry.Span{}
	ids := map[trace.SpanID]bool{}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if ids[s.SpanID] {
			t.Errorf("duplicate span id %s", s.SpanID)
		}
		ids[s.SpanID] = true
		if s.TraceID != tr.Spans[0].TraceID {
			t.Errorf("span %q in another trace", s.Name)
		}
		children[s.ParentID] = append(children[s.ParentID], s)
	}
	for i := range tr.Spans[1:] {
		if !ids[tr.Spans[i+1].ParentID] {
			t.Errorf("span %q has a parent that is not in the trace", label(&tr.Spans[i+1]))
		}
	}
	var b strings.Builder
	var walk func(s *telemetry.Span, depth int)
	walk = func(s *telemetry.Span, depth int) {
		fmt.Fprintf(&b, "%s%s\n", strings.Repeat("  ", depth), label(s))
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	roots := children[trace.SpanID{}]
	if len(roots) != 1 {
		t.Fatalf("%d root spans", len(roots))
	}
	walk(roots[0], 0)
	return b.String()
}

func find(t *testing.T, tr *telemetry.Trace, lbl string) *telemetry.Span {
	t.Helper()
	var found *telemetry.Span
	for i := range tr.Spans {
		if label(&tr.Spans[i]) == lbl {
			if found != nil {
				t.Fatalf("two spans labelled %q", lbl)
			}
			found = &tr.Spans[i]
		}
	}
	if found == nil {
		t.Fatalf("no span %q", lbl)
	}
	return found
}

// attrs is a compact view of chosen attributes for comparison.
func attrs(s *telemetry.Span, keys ...attribute.Key) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, k := range keys {
		if v, ok := s.Attr(k); ok {
			m[k] = v.Emit()
		} else {
			m[k] = "<unset>"
		}
	}
	return m
}

func wantAttrs(t *testing.T, s *telemetry.Span, want map[attribute.Key]string) {
	t.Helper()
	keys := make([]attribute.Key, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	got := attrs(s, keys...)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: %s = %q, want %q", label(s), k, got[k], want[k])
		}
	}
}

func TestFixtureTree(t *testing.T) {
	tr := record(runInfo(), fixture(), fixtureEnd())
	want := `agent_run
  bash_command claude
    network_call tcp api.anthropic.com:443
    network_call udp 2001:4860:4860::8888:53
    bash_command bash
      file_write out.log
      bash_command sort
      test_run go
        bash_command app.test
      bash_command git
        network_call tcp 140.82.112.3:443
    file_write src/main.go
    file_write src/tmp.go
    file_write old_test.go
    file_write .github/workflows/ci.yml
    file_read /home/dev/.aws/credentials
    file_write /home/dev/.bashrc
    bash_command env
      bash_command python3
  bash_command sleep
  network_call tcp 10.0.0.5:5432
  file_write gen/only_fswatch.txt
`
	if got := tree(t, tr); got != want {
		t.Errorf("span tree:\n%s\nwant:\n%s", got, want)
	}
	if tr.RunID != "run-7f3a" || tr.Spans[0].Type() != telemetry.SpanAgentRun {
		t.Errorf("trace run id %q, first span %q", tr.RunID, tr.Spans[0].Name)
	}
	for i := 2; i < len(tr.Spans); i++ {
		if tr.Spans[i].Start.Before(tr.Spans[i-1].Start) {
			t.Errorf("spans not in start order at %d", i)
		}
	}
}

func TestFixtureRoot(t *testing.T) {
	tr := record(runInfo(), fixture(), fixtureEnd())
	root := tr.Root()
	if root.Kind != trace.SpanKindInternal || !root.Start.Equal(at(0)) || !root.End.Equal(at(100)) {
		t.Errorf("root kind %v, %v..%v", root.Kind, root.Start, root.End)
	}
	if root.Status != codes.Error {
		t.Errorf("root status %v with exit code 1", root.Status)
	}
	wantAttrs(t, root, map[attribute.Key]string{
		telemetry.SpanType:                     "agent_run",
		telemetry.OpenInferenceKind:            "AGENT",
		telemetry.GenAIOperationName:           "invoke_agent",
		telemetry.RunID:                        "run-7f3a",
		telemetry.SessionID:                    "run-7f3a",
		telemetry.GenAIAgentName:               "claude",
		telemetry.CommandLine:                  "claude -p " + shellQuote(PromptMarker("fix the flaky test")) + " --api-key [REDACTED]",
		telemetry.ProcessExitCode:              "1",
		telemetry.ErrorType:                    "1",
		telemetry.ProcessSignal:                "<unset>",
		telemetry.VCSRepositoryURLFull:         "https://github.com/acme/app", // the convention's form: no .git
		telemetry.VCSRepositoryName:            "app",
		telemetry.VCSRefHeadType:               "branch",
		telemetry.VCSRefHeadName:               "main",
		telemetry.VCSRefHeadRevision:           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		telemetry.WorktreeDirtyBefore:          "false",
		telemetry.WorktreeDirtyAfter:           "true",
		telemetry.HeadAfter:                    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		telemetry.TaskID:                       "ENG-42",
		telemetry.TaskURL:                      "https://tracker.example/ENG-42",
		telemetry.PolicyVersion:                policy.Default().Version,
		telemetry.PolicyMode:                   "observe",
		telemetry.CaptureContent:               "metadata",
		telemetry.EventsDropped:                "5",
		telemetry.TelemetryGaps:                `["cgroup: hybrid hierarchy","netwatch: dns proxy not started","ebpf: ring buffer resized","events dropped: 5"]`,
		telemetry.Sensors:                      `["ebpf","fswatch"]`,
		telemetry.Workspace:                    ws,
		telemetry.RunUser:                      "dev",
		telemetry.ProcessUserID:                "1000",
		telemetry.CICDPipelineRunID:            "9876",
		attribute.Key("agentwatch.label.team"): "platform",
		telemetry.ConnectionsCount:             "1", // the unknown pid's connect
		telemetry.FilesWritten:                 "<unset>",
		telemetry.FilesOutsideWorkspace:        "<unset>",
	})
	// The resource describes the run: a backend's search list shows it.
	res := map[attribute.Key]string{}
	for _, kv := range tr.Resource {
		res[kv.Key] = kv.Value.Emit()
	}
	for k, want := range map[attribute.Key]string{
		telemetry.ServiceName: "agentwatch", telemetry.ServiceVersion: "0.1.0", telemetry.ServiceInstanceID: "run-7f3a",
		telemetry.GenAIAgentName: "claude", telemetry.VCSRepositoryURLFull: "https://github.com/acme/app",
		telemetry.VCSRepositoryName: "app", attribute.Key("agentwatch.label.team"): "platform", telemetry.HostName: "ci-runner-7",
	} {
		if res[k] != want {
			t.Errorf("resource %s = %q, want %q (resource %v)", k, res[k], want, tr.Resource)
		}
	}
}

func TestFixtureProcesses(t *testing.T) {
	tr := record(runInfo(), fixture(), fixtureEnd())
	root := tr.Root()

	claude := find(t, tr, "bash_command claude")
	if claude.ParentID != root.SpanID || !claude.Start.Equal(at(2)) || !claude.End.Equal(at(95)) {
		t.Errorf("claude: parent %s, %v..%v", claude.ParentID, claude.Start, claude.End)
	}
	wantAttrs(t, claude, map[attribute.Key]string{
		telemetry.SpanType:                "bash_command",
		telemetry.OpenInferenceKind:       "TOOL",
		telemetry.ProcessPID:              "100",
		telemetry.ProcessParentPID:        "1",
		telemetry.ProcessExecutableName:   "claude",
		telemetry.ProcessExecutablePath:   "/usr/local/bin/claude",
		telemetry.ProcessCommandArgs:      `["claude","-p","` + PromptMarker("fix the flaky test") + `"]`,
		telemetry.ProcessWorkingDirectory: ws,
		telemetry.ProcessUserID:           "1000",
		telemetry.ProcessExitCode:         "0",
		telemetry.ErrorType:               "<unset>",
		telemetry.CommandArgsTruncated:    "false",
		// src/main.go, src/tmp.go, old_test.go, .bashrc, scratch.txt; not
		// the refused workflow write, not the reads, not /proc
		telemetry.FilesWritten:          "5",
		telemetry.ConnectionsCount:      "3",
		telemetry.FilesOutsideWorkspace: "1",
		telemetry.FilesOutsideTopDirs:   `["/tmp/claude-1000 (1)"]`,
	})
	if claude.Status != codes.Unset {
		t.Errorf("claude status %v", claude.Status)
	}

	bash := find(t, tr, "bash_command bash")
	wantAttrs(t, bash, map[attribute.Key]string{
		telemetry.ProcessExitCode: "1",
		telemetry.ErrorType:       "1",
		telemetry.FilesWritten:    "1", // out.log, written by its forked subshell
	})
	if bash.Status != codes.Error {
		t.Errorf("bash status %v, want error", bash.Status)
	}
	sortSpan := find(t, tr, "bash_command sort")
	wantAttrs(t, sortSpan, map[attribute.Key]string{
		telemetry.ProcessPID:       "103",
		telemetry.ProcessParentPID: "102", // the real parent, though the span hangs under bash
	})

	goSpan := find(t, tr, "test_run go")
	wantAttrs(t, goSpan, map[attribute.Key]string{
		telemetry.CommandLine:           "go test ./...",
		telemetry.ProcessExitCode:       "1",
		telemetry.FilesWritten:          "3",
		telemetry.FilesOutsideWorkspace: "3",
		telemetry.FilesOutsideTopDirs:   `["/root/.cache/go-build (2)","/tmp/go-build123/b001 (1)"]`,
	})
	testBin := find(t, tr, "bash_command app.test")
	wantAttrs(t, testBin, map[attribute.Key]string{
		telemetry.ProcessWorkingDirectory: ws + "/pkg",
		telemetry.ProcessExitCode:         "1",
	})

	git := find(t, tr, "bash_command git")
	wantAttrs(t, git, map[attribute.Key]string{
		telemetry.CommandLine:     "git push https://dev:[REDACTED:url-password]@github.com/acme/app.git",
		telemetry.ProcessSignal:   "SIGTERM",
		telemetry.ProcessExitCode: "143",
		telemetry.ErrorType:       "SIGTERM",
	})
	if git.Status != codes.Error {
		t.Errorf("killed git status %v", git.Status)
	}

	env := find(t, tr, "bash_command env")
	py := find(t, tr, "bash_command python3")
	if py.ParentID != env.SpanID || !env.End.Equal(at(62)) || !py.Start.Equal(at(62)) || !py.End.Equal(at(63)) {
		t.Errorf("re-exec: python parent %s (env %s), env ends %v, python %v..%v", py.ParentID, env.SpanID, env.End, py.Start, py.End)
	}
	wantAttrs(t, env, map[attribute.Key]string{
		telemetry.ProcessReplaced: "true",
		telemetry.ProcessExitCode: "<unset>",
		telemetry.ProcessPID:      "107",
	})
	wantAttrs(t, py, map[attribute.Key]string{
		telemetry.ProcessPID:       "107",
		telemetry.ProcessParentPID: "100",
		telemetry.ProcessExitCode:  "0",
		telemetry.CommandLine:      "python3 script.py --db-password [REDACTED]",
	})

	sleep := find(t, tr, "bash_command sleep")
	if sleep.ParentID != root.SpanID || !sleep.End.Equal(at(100)) {
		t.Errorf("unknown-parent sleep: parent %s, end %v", sleep.ParentID, sleep.End)
	}
	wantAttrs(t, sleep, map[attribute.Key]string{
		telemetry.ProcessStillRunning: "true",
		telemetry.ProcessExitCode:     "<unset>",
		telemetry.ProcessParentPID:    "999",
	})
}

func TestFixtureFiles(t *testing.T) {
	tr := record(runInfo(), fixture(), fixtureEnd())
	claude := find(t, tr, "bash_command claude")

	main := find(t, tr, "file_write src/main.go")
	if main.ParentID != claude.SpanID || !main.Start.Equal(at(40)) || !main.End.Equal(at(43)) {
		t.Errorf("main.go: parent %s, %v..%v", main.ParentID, main.Start, main.End)
	}
	wantAttrs(t, main, map[attribute.Key]string{
		telemetry.SpanType:            "file_write",
		telemetry.OpenInferenceKind:   "TOOL",
		telemetry.OIToolName:          "file_write",
		telemetry.FilePath:            ws + "/src/main.go",
		telemetry.FileOperation:       "create",
		telemetry.FileOperations:      `["create","write","chmod"]`,
		telemetry.FileOperationsCount: "4",
		telemetry.FileClass:           "source",
		telemetry.FileInWorkspace:     "true",
		telemetry.FileSource:          "ebpf",
		telemetry.FileFailures:        "<unset>",
	})
	wantAttrs(t, find(t, tr, "file_write src/tmp.go"), map[attribute.Key]string{
		telemetry.FileOperation: "rename",
		telemetry.FileRenamedTo: ws + "/src/util.go",
	})
	wantAttrs(t, find(t, tr, "file_write old_test.go"), map[attribute.Key]string{
		telemetry.FileOperation: "delete",
		telemetry.FileClass:     "test",
	})
	wf := find(t, tr, "file_write .github/workflows/ci.yml")
	wantAttrs(t, wf, map[attribute.Key]string{
		telemetry.FileOperation:       "write", // attempted
		telemetry.FileOperations:      `[]`,
		telemetry.FileOperationsCount: "0",
		telemetry.FileFailures:        "1",
		telemetry.ErrorType:           "EROFS",
		telemetry.FileClass:           "workflow",
	})
	// The refusal, then the workflow_edit alert (policy_test.go has the rules).
	if wf.Status != codes.Error || len(wf.Events) != 2 || wf.Events[0].Name != telemetry.EventFileFailed || wf.Events[1].Name != telemetry.EventAlert {
		t.Errorf("refused workflow write: status %v, events %+v", wf.Status, wf.Events)
	}
	wantAttrs(t, find(t, tr, "file_read /home/dev/.aws/credentials"), map[attribute.Key]string{
		telemetry.SpanType:        "file_read",
		telemetry.FileOperation:   "read",
		telemetry.FileClass:       "secret",
		telemetry.FileInWorkspace: "false",
	})
	wantAttrs(t, find(t, tr, "file_write /home/dev/.bashrc"), map[attribute.Key]string{
		telemetry.FileInWorkspace: "false", // protected: spanned though outside
		telemetry.FileClass:       "other",
	})
	out := find(t, tr, "file_write out.log")
	if out.ParentID != find(t, tr, "bash_command bash").SpanID {
		t.Error("the subshell's write is not under bash")
	}
	fsw := find(t, tr, "file_write gen/only_fswatch.txt")
	if fsw.ParentID != tr.Root().SpanID {
		t.Error("fswatch-only path not under agent_run")
	}
	wantAttrs(t, fsw, map[attribute.Key]string{
		telemetry.FileSource:      "fswatch",
		telemetry.FileOperation:   "create",
		telemetry.FileOperations:  `["create","write"]`,
		telemetry.FileInWorkspace: "true",
	})
}

func TestFixtureNetwork(t *testing.T) {
	tr := record(runInfo(), fixture(), fixtureEnd())
	api := find(t, tr, "network_call tcp api.anthropic.com:443")
	if api.Kind != trace.SpanKindClient || api.Status != codes.Unset || !api.Start.Equal(at(3)) || !api.End.Equal(at(4)) {
		t.Errorf("api: kind %v status %v %v..%v", api.Kind, api.Status, api.Start, api.End)
	}
	wantAttrs(t, api, map[attribute.Key]string{
		telemetry.SpanType:           "network_call",
		telemetry.OpenInferenceKind:  "TOOL",
		telemetry.OIToolName:         "network_call",
		telemetry.ServerAddress:      "api.anthropic.com",
		telemetry.ServerPort:         "443",
		telemetry.NetworkPeerAddress: "160.79.104.10",
		telemetry.NetworkPeerPort:    "443",
		telemetry.NetworkTransport:   "tcp",
		telemetry.NetworkType:        "ipv4",
		telemetry.ConnectionsCount:   "2",
		telemetry.ErrorType:          "<unset>", // EINPROGRESS is a successful non-blocking connect
	})
	wantAttrs(t, find(t, tr, "network_call udp 2001:4860:4860::8888:53"), map[attribute.Key]string{
		telemetry.NetworkTransport: "udp",
		telemetry.NetworkType:      "ipv6",
	})
	refused := find(t, tr, "network_call tcp 140.82.112.3:443")
	wantAttrs(t, refused, map[attribute.Key]string{
		telemetry.ErrorType:          "ECONNREFUSED",
		telemetry.ConnectionFailures: "1",
	})
	if refused.Status != codes.Error {
		t.Errorf("refused connect status %v", refused.Status)
	}
	if find(t, tr, "network_call tcp 10.0.0.5:5432").ParentID != tr.Root().SpanID {
		t.Error("connect of an unknown pid not under agent_run")
	}
}

// No planted secret may appear anywhere in the trace: attributes, slices,
// events, status messages.
func TestFixtureRedaction(t *testing.T) {
	tr := record(runInfo(), fixture(), fixtureEnd())
	var all strings.Builder
	dump := func(kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			all.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	dump(tr.Resource)
	for _, s := range tr.Spans {
		all.WriteString(s.Name + " " + s.StatusMessage + "\n")
		dump(s.Attrs)
		for _, e := range s.Events {
			dump(e.Attrs)
		}
	}
	text := all.String()
	for _, secret := range planted {
		if strings.Contains(text, secret) {
			t.Errorf("planted secret %q leaked into the trace", secret)
		}
	}
	if !strings.Contains(text, "GITHUB_TOKEN=[REDACTED:github-token] git push https://dev:[REDACTED:url-password]@github.com") {
		t.Errorf("bash -c script not redacted as expected:\n%s", text)
	}
	if !strings.Contains(text, "AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key-id]") {
		t.Error("env assignment not redacted")
	}
}

func TestDeterministicIDs(t *testing.T) {
	a := record(runInfo(), fixture(), fixtureEnd())
	b := record(runInfo(), fixture(), fixtureEnd())
	if len(a.Spans) != len(b.Spans) {
		t.Fatal("different span counts")
	}
	for i := range a.Spans {
		if a.Spans[i].SpanID != b.Spans[i].SpanID || a.Spans[i].ParentID != b.Spans[i].ParentID || a.Spans[i].TraceID != b.Spans[i].TraceID {
			t.Fatalf("span %d ids differ between identical runs", i)
		}
	}
	other := runInfo()
	other.RunID = "run-other"
	c := record(other, fixture(), fixtureEnd())
	if c.Spans[0].TraceID == a.Spans[0].TraceID || c.Spans[0].SpanID == a.Spans[0].SpanID {
		t.Error("another run id gave the same ids")
	}
	given := runInfo()
	given.TraceID = trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	d := record(given, fixture(), fixtureEnd())
	for _, s := range d.Spans {
		if s.TraceID != given.TraceID {
			t.Fatal("RunInfo.TraceID not used")
		}
	}
}

// Degraded mode: no eBPF at all, only fswatch and the gap; and no
// workspace evidence.
func TestFSWatchOnly(t *testing.T) {
	info := runInfo()
	info.Sensors = []string{"fswatch"}
	info.Gaps = []event.Gap{{Sensor: "ebpf", Reason: "not root"}}
	info.Before = nil
	tr := record(info, []event.Event{
		event.File{Header: hdr(5, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: ws + "/b.go"},
		event.File{Header: hdr(6, 0), Source: event.SourceFSWatch, Op: event.FileRename, Path: ws + "/a.go", NewPath: ws + "/c.go"},
		event.File{Header: hdr(7, 0), Source: event.SourceFSWatch, Op: event.FileDelete, Path: ws + "/.env"},
	}, End{Time: at(10)})
	want := "agent_run\n  file_write b.go\n  file_write a.go\n  file_write c.go\n  file_write .env\n"
	if got := tree(t, tr); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	wantAttrs(t, find(t, tr, "file_write .env"), map[attribute.Key]string{
		telemetry.FileClass:     "secret",
		telemetry.FileOperation: "delete",
	})
	wantAttrs(t, tr.Root(), map[attribute.Key]string{
		telemetry.TelemetryGaps:       `["ebpf: not root"]`,
		telemetry.EventsDropped:       "0",
		telemetry.VCSRefHeadRevision:  "<unset>",
		telemetry.WorktreeDirtyBefore: "<unset>",
		telemetry.FilesWritten:        "<unset>",
		telemetry.ProcessExitCode:     "0",
	})
	if tr.Root().Status != codes.Unset {
		t.Error("exit 0 root has error status")
	}
}

func TestRootSignal(t *testing.T) {
	tr := record(runInfo(), nil, End{Time: at(5), ExitCode: 130, Signal: int(syscall.SIGINT)})
	wantAttrs(t, tr.Root(), map[attribute.Key]string{
		telemetry.ProcessSignal:   "SIGINT",
		telemetry.ProcessExitCode: "130",
		telemetry.ErrorType:       "SIGINT",
	})
	if tr.Root().Status != codes.Error {
		t.Error("killed run not an error")
	}
}

// Pid reuse: after 300 exits, a new fork of pid 300 is a new process, and
// late events of a process that exited still find its span.
func TestPidReuseAndLateEvents(t *testing.T) {
	tr := record(runInfo(), []event.Event{
		exec(1, 100, 1, "/bin/sh", ws, "sh", "-c", "make"),
		fork(2, 300, 100),
		exec(3, 300, 100, "/usr/bin/make", ws, "make"),
		exit(4, 300, 0, 0),
		file(5, 300, event.FileWrite, ws+"/late.txt"), // delivered after the exit
		fork(6, 300, 100),
		exec(7, 300, 100, "/usr/bin/cc", ws, "cc", "-c", "x.c"),
		exit(8, 300, 0, 0),
	}, End{Time: at(10)})
	want := "agent_run\n  bash_command sh\n    bash_command make\n      file_write late.txt\n    bash_command cc\n"
	if got := tree(t, tr); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}

func TestAddAfterFinishIgnored(t *testing.T) {
	r := New(runInfo())
	first := r.Finish(End{Time: at(1)})
	r.Add(exec(2, 100, 1, "/bin/true", ws, "true"))
	if again := r.Finish(End{Time: at(3)}); again != first || len(again.Spans) != 1 {
		t.Error("Finish is not idempotent or Add after Finish changed the trace")
	}
}

// git's object store is summarised like a build cache; refs and hooks
// inside .git stay spans (a hook is a protected path); a file moved out of
// the workspace is still a workspace change.
func TestGitInternalsAndMoves(t *testing.T) {
	tr := record(runInfo(), []event.Event{
		exec(1, 100, 1, "/usr/bin/git", ws, "git", "commit", "-m", "x"),
		file(2, 100, event.FileCreate, ws+"/.git/objects/ab/cdef0123"),
		file(3, 100, event.FileCreate, ws+"/.git/objects/12/3456789a"),
		file(4, 100, event.FileWrite, ws+"/.git/refs/heads/main"),
		file(5, 100, event.FileCreate, ws+"/.git/hooks/pre-commit"),
		event.File{Header: hdr(6, 100), Source: event.SourceEBPF, Op: event.FileRename, Path: ws + "/notes.md", NewPath: "/tmp/notes.md"},
		file(7, 100, event.FileWrite, "/dev/tty"),
		event.File{Header: hdr(8, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: ws + "/.git/objects/ff/00"},
		event.File{Header: hdr(9, 0), Source: event.SourceFSWatch, Op: event.FileDelete, Path: ws + "/notes.md"},
		exit(10, 100, 0, 0),
	}, End{Time: at(11)})
	want := "agent_run\n  commit git\n    file_write .git/refs/heads/main\n    file_write .git/hooks/pre-commit\n    file_write notes.md\n"
	if got := tree(t, tr); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	wantAttrs(t, find(t, tr, "commit git"), map[attribute.Key]string{
		telemetry.FilesWritten:          "5",
		telemetry.FilesOutsideWorkspace: "2",
		telemetry.FilesOutsideTopDirs:   `["` + ws + `/.git/objects (2)"]`,
	})
	wantAttrs(t, find(t, tr, "file_write notes.md"), map[attribute.Key]string{
		telemetry.FileRenamedTo:   "/tmp/notes.md",
		telemetry.FileInWorkspace: "true",
		telemetry.FileClass:       "docs",
	})
}

// TestFileSizeAfter: file.size is the size after the run, read through the
// injected End.FileSize (of the rename target when the path moved away);
// deleted paths and reads get none.
func TestFileSizeAfter(t *testing.T) {
	end := fixtureEnd()
	sizes := map[string]int64{ws + "/src/main.go": 120, ws + "/src/util.go": 7}
	end.FileSize = func(p string) (int64, bool) { n, ok := sizes[p]; return n, ok }
	tr := record(runInfo(), fixture(), end)
	wantAttrs(t, find(t, tr, "file_write src/main.go"), map[attribute.Key]string{telemetry.FileSize: "120"})
	wantAttrs(t, find(t, tr, "file_write src/tmp.go"), map[attribute.Key]string{telemetry.FileSize: "7"})
	wantAttrs(t, find(t, tr, "file_write old_test.go"), map[attribute.Key]string{telemetry.FileSize: "<unset>"})
	wantAttrs(t, find(t, tr, "file_read /home/dev/.aws/credentials"), map[attribute.Key]string{telemetry.FileSize: "<unset>"})
}
