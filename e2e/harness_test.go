package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/fakemodel"
	"github.com/agentwatch/agentwatch/privtest"
)

// testUser is the unprivileged account claude runs as: Claude Code refuses
// --dangerously-skip-permissions as root, and agentwatch's point is to
// observe an agent running as a developer, not as root.
const testUser = "agentwatch-e2e"

// claudeTimeout bounds one claude run; with the scripted model a run takes
// a few seconds, so this only stops a hang from eating the suite's budget.
const claudeTimeout = 60 * time.Second

var (
	binDir string // TestMain's temp dir for the agentwatch binary

	buildOnce sync.Once
	buildPath string
	buildErr  error

	claudeOnce sync.Once
	claudePath string
	claudeSkip string // reason to skip, outside CI, when npm is unreachable
	claudeErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentwatch-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating temp dir:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("finding repo root: %v", err)
	}
	return root
}

// account is the test user as the tests need it.
type account struct {
	Name     string
	UID, GID uint32
	Home     string
}

// ensureUser creates the test user when missing and checks its home is
// usable (privtest.User), since claude writes its config (~/.claude*) there.
func ensureUser(t *testing.T) account {
	t.Helper()
	// make test-short promises no Claude Code and no users.
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	u := privtest.User(t, testUser, "")
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return account{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
}

// networkFailure matches npm's messages for an unreachable registry.
var networkFailure = regexp.MustCompile(`(?i)ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network|socket hang up`)

// ensureClaude installs the pinned Claude Code CLI once per test binary and
// returns the path of its executable. An unreachable npm registry skips
// the test, except in CI where a skip would hide that nothing ran.
func ensureClaude(t *testing.T) string {
	t.Helper()
	claudeOnce.Do(func() {
		script := filepath.Join(repoRoot(t), "scripts", "install-claude.sh")
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("bash", script)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		switch {
		case err == nil:
			claudePath = strings.TrimSpace(stdout.String())
		case networkFailure.MatchString(stderr.String()):
			claudeSkip = "npm registry unreachable: " + matchingLine(stderr.String(), networkFailure)
		default:
			claudeErr = fmt.Errorf("running %s: %v: %s", script, err, stderr.String())
		}
	})
	switch {
	case claudeErr != nil:
		t.Fatal(claudeErr)
	case claudeSkip != "" && privtest.Strict():
		t.Fatalf("cannot install claude (CI forbids skipping): %s", claudeSkip)
	case claudeSkip != "":
		t.Skip(claudeSkip)
	}
	return claudePath
}

func matchingLine(s string, re *regexp.Regexp) string {
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// buildAgentwatch builds cmd/agentwatch once per test binary.
func buildAgentwatch(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildPath = filepath.Join(binDir, "agentwatch")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/agentwatch")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/agentwatch: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// newWorkspace makes a git repository with one commit, owned by the test
// user. It is not under t.TempDir, whose 0700 parents the user could not
// traverse.
func newWorkspace(t *testing.T, a account) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agentwatch-e2e-ws-")
	if err != nil {
		t.Fatalf("creating workspace: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Resolve symlinks so paths compare equal to what the kernel reports.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatalf("resolving workspace: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("e2e workspace\n"), 0o644); err != nil {
		t.Fatalf("writing README: %v", err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "README.md"},
		{"-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-q", "-m", "initial"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.SysProcAttr = asUser(a)
		cmd.Env = []string{"HOME=" + a.Home, "PATH=/usr/local/bin:/usr/bin:/bin"}
		if err := os.Chown(dir, int(a.UID), int(a.GID)); err != nil {
			t.Fatalf("chown workspace: %v", err)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return dir
}

func asUser(a account) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.UID, Gid: a.GID}}
}

// claudeEnv is the whole environment claude gets: nothing inherited from
// the test process (no CI=true, no real API keys), the model pointed at
// the fake server, and every background call to Anthropic switched off so
// the run needs no network beyond loopback.
func claudeEnv(a account, claude, baseURL string) []string {
	key := make([]byte, 12)
	rand.Read(key)
	path := filepath.Dir(claude) + ":/usr/local/bin:/usr/bin:/bin"
	if node, err := exec.LookPath("node"); err == nil {
		path = filepath.Dir(node) + ":" + path
	}
	return []string{
		"HOME=" + a.Home,
		"USER=" + a.Name,
		"LOGNAME=" + a.Name,
		"SHELL=/bin/bash",
		"PATH=" + path,
		"TERM=dumb",
		"LANG=C.UTF-8",
		"ANTHROPIC_BASE_URL=" + baseURL,
		"ANTHROPIC_API_KEY=sk-ant-test-" + hex.EncodeToString(key),
		"DISABLE_AUTOUPDATER=1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_TELEMETRY=1",
		"DISABLE_ERROR_REPORTING=1",
	}
}

// claudeArgs is the non-interactive invocation: -p runs one prompt and
// exits; skipping permissions lets the Bash tool run without a prompt.
func claudeArgs(prompt string) []string {
	return []string{"-p", prompt, "--dangerously-skip-permissions"}
}

// runResult is one finished command.
type runResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
	Err      error // non-nil when the command could not run or timed out
}

func run(t *testing.T, cmd *exec.Cmd, timeout time.Duration) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return runResult{ExitCode: -1, Err: fmt.Errorf("starting %s: %w", cmd.Path, err)}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var res runResult
	select {
	case err := <-done:
		res.Err = err
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		res.Err = fmt.Errorf("%s timed out after %v", filepath.Base(cmd.Path), timeout)
	}
	res.ExitCode = cmd.ProcessState.ExitCode()
	if ee := (*exec.ExitError)(nil); errors.As(res.Err, &ee) {
		res.Err = nil // a non-zero exit is reported by ExitCode
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	return res
}

// startModel starts the scripted model for the standard task: one Bash
// tool call that writes note.txt, then a final answer.
func startModel(t *testing.T) *fakemodel.Server {
	t.Helper()
	srv := fakemodel.New(
		fakemodel.BashTurn(scriptedCommand, turn1Usage),
		fakemodel.TextTurn("I wrote hello to note.txt.", turn2Usage),
	)
	srv.Logf = t.Logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

const (
	prompt          = "write hello to note.txt"
	scriptedCommand = "printf hello > note.txt"
)

var (
	turn1Usage = fakemodel.Usage{InputTokens: 1234, CacheReadInputTokens: 100, CacheCreationInputTokens: 50, OutputTokens: 56}
	turn2Usage = fakemodel.Usage{InputTokens: 1500, CacheReadInputTokens: 1200, CacheCreationInputTokens: 70, OutputTokens: 21}
)

// checkModelSaw asserts the scripted conversation ran to its end: both
// turns served, the second after a successful tool_result.
func checkModelSaw(t *testing.T, srv *fakemodel.Server) {
	t.Helper()
	var served []int
	var results []fakemodel.ToolResult
	for _, r := range srv.Requests() {
		t.Logf("model request: %s %s model=%s stream=%v max_tokens=%d tools=%d turn=%d status=%d",
			r.Method, r.Path, r.Model, r.Stream, r.MaxTokens, len(r.Tools), r.Turn, r.Status)
		if r.Exhausted {
			t.Errorf("claude asked for more turns than scripted")
		}
		if r.Turn >= 0 && !r.HasAPIKey {
			t.Errorf("model request for turn %d came without an API key", r.Turn)
		}
		if r.Turn >= 0 {
			served = append(served, r.Turn)
		}
		if r.Turn == 1 {
			results = r.ToolResults
		}
		if r.Header.Get("X-Api-Key") != "" || r.Header.Get("Authorization") != "" {
			t.Errorf("recorded request kept the API key header")
		}
	}
	if !containsInt(served, 0) || !containsInt(served, 1) {
		t.Fatalf("scripted turns served = %v, want 0 and 1", served)
	}
	if len(results) != 1 {
		t.Fatalf("turn 2 request carried %d tool_result blocks, want 1: %+v", len(results), results)
	}
	if results[0].IsError {
		t.Errorf("the Bash tool_result is an error: %q", results[0].Content)
	}
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func checkNote(t *testing.T, ws string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ws, "note.txt"))
	if err != nil {
		t.Fatalf("reading note.txt: %v", err)
	}
	if string(b) != "hello" {
		t.Fatalf("note.txt = %q, want %q", b, "hello")
	}
}
