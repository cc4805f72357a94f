package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/supervisor"
)

// fakeRun records what `run` would have launched.
type fakeRun struct {
	called bool
	opts   supervisor.Options
	code   int
	err    error
}

func (f *fakeRun) run(_ context.Context, o supervisor.Options) (int, error) {
	f.called, f.opts = true, o
	return f.code, f.err
}

func execute(t *testing.T, f *fakeRun, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Execute(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Run: f.run})
	return code, out.String(), errb.String()
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want supervisor.Options // only the fields flags set
	}{
		{
			name: "all flags",
			args: []string{"run", "--trace-file", "t.json", "--otlp-endpoint", "http://127.0.0.1:4318", "--store", "/s",
				"--user", "alice", "--task", "JIRA-1", "--task-url", "https://x/1", "--", "claude", "-p", "fix it"},
			want: supervisor.Options{Argv: []string{"claude", "-p", "fix it"}, TraceFile: "t.json", StoreDir: "/s",
				User: "alice", TaskID: "JIRA-1", TaskURL: "https://x/1"},
		},
		{
			// The command's own flags are not agentwatch's, with or without "--".
			name: "command flags without --",
			args: []string{"run", "--store", "/s", "ls", "-la", "--user", "x"},
			want: supervisor.Options{Argv: []string{"ls", "-la", "--user", "x"}, StoreDir: "/s"},
		},
		{
			name: "flag after -- belongs to the command",
			args: []string{"run", "--store=/s", "--", "make", "--trace-file", "y"},
			want: supervisor.Options{Argv: []string{"make", "--trace-file", "y"}, StoreDir: "/s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRun{}
			code, _, stderr := execute(t, f, tt.args...)
			if code != 0 || !f.called {
				t.Fatalf("exit %d, called %v; stderr:\n%s", code, f.called, stderr)
			}
			got := supervisor.Options{Argv: f.opts.Argv, TraceFile: f.opts.TraceFile, StoreDir: f.opts.StoreDir,
				User: f.opts.User, TaskID: f.opts.TaskID, TaskURL: f.opts.TaskURL}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("options\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	f := &fakeRun{}
	execute(t, f, "run", "--store", "/s", "--otlp-endpoint", "grpc://127.0.0.1:4317", "--", "true")
	if f.opts.OTLP.Endpoint != "grpc://127.0.0.1:4317" || f.opts.Stdin == nil || f.opts.Stderr == nil || f.opts.Version == "" {
		t.Fatalf("options not wired: %+v", f.opts)
	}
	f = &fakeRun{}
	execute(t, f, "run", "--store", "/s", "--capture-full", "30m", "--", "claude", "-p", "x")
	if f.opts.CaptureFull != 30*time.Minute {
		t.Fatalf("--capture-full 30m gave CaptureFull %v", f.opts.CaptureFull)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"run"}, "agentwatch: run: missing command"},
		{[]string{"run", "--store", "/s", "--"}, "agentwatch: run: missing command"},
		{[]string{"run", "--bogus", "--", "true"}, "agentwatch: unknown flag: --bogus"},
		{[]string{"run", "--user"}, "agentwatch: flag needs an argument: --user"},
		{[]string{"frobnicate"}, "agentwatch: unknown command \"frobnicate\""},
		{[]string{"show", "a", "b"}, "agentwatch: accepts at most 1 arg(s), received 2"},
		{[]string{"runs", "-n", "zero"}, "agentwatch: invalid argument \"zero\""},
		{[]string{"runs", "-n", "0", "--store", "/s"}, "agentwatch: -n must be positive, got 0"},
		{[]string{"doctor", "extra"}, "agentwatch: unknown command \"extra\""},
		{[]string{"run", "--store", "/s", "--capture-full", "later", "--", "true"}, "agentwatch: invalid argument \"later\""},
		{[]string{"run", "--store", "/s", "--capture-full", "-5m", "--", "true"}, "agentwatch: --capture-full must be a positive duration"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := &fakeRun{}
			code, stdout, stderr := execute(t, f, tt.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if f.called {
				t.Error("the command ran despite a usage error")
			}
			if !strings.HasPrefix(stderr, tt.msg) || !strings.Contains(stderr, "Usage:") {
				t.Errorf("stderr = %q, want %q then the usage", stderr, tt.msg)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name      string
		childCode int
		err       error
		code      int
		stderr    string
	}{
		{"child success", 0, nil, 0, ""},
		{"child status passes through", 3, nil, 3, ""},
		{"child killed by SIGTERM", 143, nil, 143, ""},
		{"not found", 0, fmt.Errorf("%w: foo", supervisor.ErrCommandNotFound), ExitNotFound, "agentwatch: command not found: foo\n"},
		{"cannot execute", 0, fmt.Errorf("%w ./x: permission denied", supervisor.ErrCannotExecute), ExitCannotExecute, "agentwatch: cannot execute ./x: permission denied\n"},
		{"unknown user", 0, fmt.Errorf("%w %q", supervisor.ErrUnknownUser, "bob"), ExitFailure, "agentwatch: unknown user \"bob\"\n"},
		// The child ran (exit 0) but the run could not be saved: agentwatch's
		// failure must not pass for the child's success.
		{"store failure after the child", 0, errors.New("saving run x: disk full"), ExitFailure, "agentwatch: saving run x: disk full\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRun{code: tt.childCode, err: tt.err}
			code, _, stderr := execute(t, f, "run", "--store", "/s", "--", "cmd")
			if code != tt.code || stderr != tt.stderr {
				t.Fatalf("exit %d stderr %q; want %d %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
}

func TestExitCodeMapping(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usageError{errors.New("x")}, 2},
		{fmt.Errorf("wrapped: %w", usageError{errors.New("x")}), 2},
		{fmt.Errorf("starting: %w", fmt.Errorf("%w: foo", supervisor.ErrCommandNotFound)), 127},
		{fmt.Errorf("%w x", supervisor.ErrCannotExecute), 126},
		{supervisor.ErrRootRefused, 125},
		{errors.New("anything else"), 125},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestKernelAtLeast(t *testing.T) {
	tests := []struct {
		release string
		want    bool
	}{
		{"6.18.44-fc-v782", true},
		{"5.8.0", true},
		{"5.7.19", false},
		{"4.19.0-21-amd64", false},
		{"5.10-rc1", true},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := kernelAtLeast(tt.release, 5, 8); got != tt.want {
			t.Errorf("kernelAtLeast(%q) = %v, want %v", tt.release, got, tt.want)
		}
	}
}

// TestDoctorOnThisMachine checks doctor against what this machine really
// has: a cgroup v2 mount, and an answer for every sensor, the store and
// the collector. As root every needed check passes here (CI); otherwise
// the privileges check fails and doctor says so with exit 1.
func TestDoctorOnThisMachine(t *testing.T) {
	clearOTLPEnv(t)
	code, stdout, stderr := execute(t, &fakeRun{}, "doctor", "--store", t.TempDir())
	if os.Geteuid() == 0 && code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	if os.Geteuid() != 0 && (code != ExitCheckFailed || !strings.Contains(stderr, "privileges")) {
		t.Fatalf("not root: exit %d, stderr %q; want %d naming privileges", code, stderr, ExitCheckFailed)
	}
	mount, _, err := supervisor.Cgroup2Mount()
	for _, want := range []string{"privileges", "kernel", "BTF", "cgroup v2", "bpffs", "tracefs", "eBPF programs", "inotify", "git",
		"store", "none yet: the first run creates it", "collector", "none configured", "  ebpf ", "  fswatch "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, stdout)
		}
	}
	if err == nil && !strings.Contains(stdout, mount) {
		t.Errorf("doctor does not name the cgroup2 mount %s:\n%s", mount, stdout)
	}
}

// doctor checks the store (intact, damaged) and the configured collector
// (a real OTLP receiver, a closed port), exits 1 naming what failed, and
// says the same in --json.
func TestDoctorStoreAndCollector(t *testing.T) {
	clearOTLPEnv(t)
	dir := t.TempDir()
	storedRun(t, dir)
	addr, _ := startReceiver(t)

	failedOf := func(args ...string) (int, doctorReport, string) {
		t.Helper()
		code, stdout, stderr := execute(t, &fakeRun{}, append([]string{"doctor", "--json"}, args...)...)
		var r doctorReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("doctor --json: %v\n%s", err, stdout)
		}
		return code, r, stderr
	}
	statusOf := func(r doctorReport, name string) doctorCheckJSON {
		for _, c := range r.Checks {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("no %s check in %+v", name, r.Checks)
		return doctorCheckJSON{}
	}
	nonStore := func(failed []string) []string {
		var out []string
		for _, f := range failed {
			if f != "store" && f != "collector" {
				out = append(out, f)
			}
		}
		return out
	}

	code, r, _ := failedOf("--store", dir, "--otlp-endpoint", "grpc://"+addr)
	if st := statusOf(r, "store"); st.Status != "ok" || !strings.Contains(st.Detail, "1 runs, intact") {
		t.Errorf("store check: %+v", st)
	}
	if c := statusOf(r, "collector"); c.Status != "ok" || !strings.Contains(c.Detail, "accepted") {
		t.Errorf("collector check with a live receiver: %+v", c)
	}
	// The receiver does not pass a request without spans on to its
	// sink; a bare OTLP/HTTP endpoint shows that the probe is sent.
	var posts atomic.Int32
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(bare.Close)
	if _, r, _ := failedOf("--store", dir, "--otlp-endpoint", bare.URL); statusOf(r, "collector").Status != "ok" || posts.Load() != 1 {
		t.Errorf("probe over HTTP: %+v, %d requests; want ok and one", statusOf(r, "collector"), posts.Load())
	}
	if os.Geteuid() == 0 && (code != 0 || len(r.Failed) != 0) {
		t.Errorf("all good: exit %d, failed %v", code, r.Failed)
	}

	dead := startDeadEndpoint(t)
	code, r, stderr := failedOf("--store", dir, "--otlp-endpoint", "grpc://"+dead)
	if c := statusOf(r, "collector"); c.Status != "fail" || !strings.Contains(c.Detail, "connection refused") || c.Fix == "" {
		t.Errorf("collector check with nothing listening: %+v", c)
	}
	if code != ExitCheckFailed || !slices.Contains(r.Failed, "collector") || !strings.Contains(stderr, "collector") {
		t.Errorf("collector down: exit %d, failed %v, stderr %q", code, r.Failed, stderr)
	}

	// A damaged file: garbage over the pages after the header.
	db := filepath.Join(dir, store.FileName)
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for i := 4096; i < len(b); i++ {
		b[i] = 0xa5
	}
	if err := os.WriteFile(db, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, r, _ = failedOf("--store", dir)
	if st := statusOf(r, "store"); st.Status != "fail" || st.Fix != "agentwatch store repair --store "+dir {
		t.Errorf("damaged store: %+v", st)
	}
	if code != ExitCheckFailed || !slices.Contains(r.Failed, "store") {
		t.Errorf("damaged store: exit %d, failed %v", code, r.Failed)
	}
	if os.Geteuid() == 0 {
		if extra := nonStore(r.Failed); len(extra) > 0 {
			t.Errorf("machine checks failed as root: %v", extra)
		}
	}
}

// version and --version print the same line; the build's stamp is in it.
func TestVersion(t *testing.T) {
	old := Commit
	Commit = "0123456789abcdef0123+dirty"
	t.Cleanup(func() { Commit = old })
	code, stdout, _ := execute(t, &fakeRun{}, "version")
	if code != 0 || !strings.HasPrefix(stdout, "agentwatch ") || !strings.Contains(stdout, "commit 0123456789ab+dirty") {
		t.Fatalf("version: exit %d, %q", code, stdout)
	}
	code, flag, _ := execute(t, &fakeRun{}, "--version")
	if code != 0 || flag != stdout {
		t.Errorf("--version: exit %d, %q; want %q", code, flag, stdout)
	}
}

// completion scripts for the three shells (cobra's), naming agentwatch's
// commands.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_agentwatch", "zsh": "#compdef agentwatch", "fish": "complete -c agentwatch"} {
		code, stdout, stderr := execute(t, &fakeRun{}, "completion", shell)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, stderr %q, script lacks %q", shell, code, stderr, want)
		}
	}
}

// runs --json: one object per run with its figures, hostile strings
// escaped by JSON, absent values null.
func TestRunsJSON(t *testing.T) {
	dir := t.TempDir()
	storedRun(t, dir)
	code, stdout, stderr := execute(t, &fakeRun{}, "runs", "--json", "--store", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var runs []map[string]any
	if err := json.Unmarshal([]byte(stdout), &runs); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	r := runs[0]
	if r["id"] != "20260301-120000-abcdef" || r["status"] != "complete" || r["duration_seconds"] != 3.0 || r["cost_usd"] != nil || r["spans"] == nil {
		t.Errorf("run: %v", r)
	}
	if !strings.HasPrefix(r["command"].(string), "claude -p ") {
		t.Errorf("command %q", r["command"])
	}
	if strings.ContainsRune(stdout, 0x1b) {
		t.Error("raw ESC in the JSON")
	}
}

func TestPolicyFlags(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/good.yaml"
	bad := dir + "/bad.yaml"
	if err := os.WriteFile(good, []byte("version: 1\nmode: enforce\nnetwork:\n  allow: [example.com]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("version: 1\nnetwork:\n  allow:\n    - ok.example\n    - \"*.\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		code     int
		mode     policy.Mode // when the run starts
		source   string
		stderrRe string
	}{
		{[]string{"run", "--store", "/s", "--policy", good, "--", "true"}, 0, policy.Enforce, good, ""},
		{[]string{"run", "--store", "/s", "--policy", good, "--mode", "observe", "--", "true"}, 0, policy.Observe, good, ""},
		{[]string{"run", "--store", "/s", "--mode", "enforce", "--", "true"}, 0, policy.Enforce, "", ""},
		{[]string{"run", "--store", "/s", "--policy", bad, "--", "true"}, ExitFailure, "", "",
			`^agentwatch: loading policy: ` + regexp.QuoteMeta(bad) + `:5: network.allow\[1\]: bad pattern "\*\.": .*\n$`},
		{[]string{"run", "--store", "/s", "--policy", dir + "/missing.yaml", "--", "true"}, ExitFailure, "", "", `missing.yaml: no such file`},
		{[]string{"run", "--store", "/s", "--mode", "block", "--", "true"}, ExitUsage, "", "", `^agentwatch: --mode: unknown mode "block"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := &fakeRun{}
			code, _, stderr := execute(t, f, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if tt.stderrRe != "" && !regexp.MustCompile(tt.stderrRe).MatchString(stderr) {
				t.Errorf("stderr %q does not match %s", stderr, tt.stderrRe)
			}
			if tt.mode == "" {
				if f.called {
					t.Error("the run started despite a bad policy")
				}
				return
			}
			if !f.called || f.opts.Policy == nil || f.opts.Policy.Mode != tt.mode {
				t.Fatalf("policy not passed: %+v", f.opts.Policy)
			}
			if tt.source != "" && f.opts.Policy.Source != tt.source {
				t.Errorf("source %q", f.opts.Policy.Source)
			}
		})
	}
}

func TestPolicyCommand(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("version: 1\nmode: loud\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, def, stderr := execute(t, &fakeRun{}, "policy", "default")
	if code != 0 || stderr != "" {
		t.Fatalf("policy default: exit %d, %s", code, stderr)
	}
	if !strings.Contains(def, "# policy version: "+policy.Default().Version+"\n") || !strings.Contains(def, "mode: observe\n") {
		t.Errorf("policy default output:\n%s", def)
	}
	// The printed default checks back to the same version.
	file := dir + "/default.yaml"
	if err := os.WriteFile(file, []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := execute(t, &fakeRun{}, "policy", "check", file)
	if code != 0 || !strings.Contains(out, "# policy version: "+policy.Default().Version) {
		t.Errorf("policy check of the default: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = execute(t, &fakeRun{}, "policy", "check", bad)
	if code != ExitPolicyInvalid || out != "" || stderr != "agentwatch: "+bad+":2: mode: unknown mode \"loud\" (want observe or enforce)\n" {
		t.Errorf("policy check bad: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = execute(t, &fakeRun{}, "policy", "check", dir+"/missing.yaml")
	if code != ExitFailure || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("policy check missing: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ = execute(t, &fakeRun{}, "policy", "check", "a", "b"); code != ExitUsage {
		t.Errorf("two files: exit %d", code)
	}
}
