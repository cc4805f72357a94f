package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/store"
	"github.com/creack/pty"
)

// longCommand is the argv of showRun's agent: longer than any terminal
// line of the tests.
var longCommand = []string{"claude", "-p", "fix the flaky test in internal/platform/storage and run the whole suite twice, then commit"}

// showRun saves a run whose tree is children+2 lines (the root, the
// agent, and the children it started, each with a hostile argument), and
// returns its store.
func showRun(t *testing.T, children int) string {
	t.Helper()
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := recorder.New(recorder.RunInfo{RunID: "20260301-120000-show01", Argv: longCommand,
		Start: t0, RootPID: 10, Workspace: "/w"})
	r.Add(event.Exec{Header: event.Header{Time: t0, PID: 10}, Filename: "/usr/bin/claude", Argv: longCommand, Cwd: "/w"})
	for i := range children {
		pid := uint32(100 + i)
		at := t0.Add(time.Duration(i+1) * time.Second)
		r.Add(event.Exec{Header: event.Header{Time: at, PID: pid}, PPID: 10, Filename: "/usr/bin/go",
			Argv: []string{"go", "test", fmt.Sprintf("./pkg%02d/...", i), "-run", "Test\x1b]52;c;aGk=\x07\x1b[31m" + strings.Repeat("Long", 12)}, Cwd: "/w"})
		r.Add(event.Exit{Header: event.Header{Time: at.Add(time.Duration(i+1) * time.Millisecond), PID: pid}, Code: i % 2})
	}
	tr := r.Finish(recorder.End{Time: t0.Add(time.Duration(children+2) * time.Second)})
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Save(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	return dir
}

// showEnv clears what show reads from the environment, for the test.
func showEnv(t *testing.T) {
	for _, k := range []string{"COLUMNS", "LINES", "PAGER", "LESS", "NO_COLOR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("TERM", "xterm-256color")
}

func TestShowFlags(t *testing.T) {
	showEnv(t)
	dir := showRun(t, 2)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--width", "-1"}, "--width must be 0 (no limit) or more, got -1"},
		{[]string{"--color", "sometimes"}, `--color "sometimes": want auto, always, never`},
		{[]string{"--width", "wide"}, `invalid argument "wide" for "--width"`},
	} {
		code, _, stderr := execute(t, &fakeRun{}, append([]string{"show", "--store", dir}, tt.args...)...)
		if code != ExitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("show %v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, ExitUsage, tt.want)
		}
	}
	code, stdout, _ := execute(t, &fakeRun{}, "show", "--help")
	for _, want := range []string{"--width N", "--color WHEN", "--no-pager", "NO_COLOR", "PAGER"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("show --help lacks %q:\n%s", want, stdout)
		}
	}
}

// widest is the longest line of out, in runes.
func widest(out string) (int, string) {
	n, line := 0, ""
	for _, l := range strings.Split(out, "\n") {
		if c := len([]rune(l)); c > n {
			n, line = c, l
		}
	}
	return n, line
}

// Piped: whole lines, no colour, no pager — byte for byte report.Tree's
// output, whatever COLUMNS says; --width fits it; --color always colours it.
func TestShowPipe(t *testing.T) {
	showEnv(t)
	dir := showRun(t, 3)
	t.Setenv("PAGER", "false") // must not run
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, _, _, err := loadWithReviews(context.Background(), st, store.Latest)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	report.Tree(&want, tr)

	code, stdout, stderr := execute(t, &fakeRun{}, "show", "--store", dir)
	if code != 0 || stdout != want.String() {
		t.Fatalf("show: exit %d, stderr %q\n--- got\n%s--- want\n%s", code, stderr, stdout, want.String())
	}
	if w, _ := widest(stdout); w <= 80 {
		t.Errorf("piped output is cut to %d columns", w)
	}

	for _, tt := range []struct {
		args    []string
		columns string
		width   int
	}{
		{[]string{"--width", "50"}, "", 50},
		{nil, "64", 0}, // a pipe: COLUMNS is the shell's, not a request
		{[]string{"--width", "64"}, "", 64},
		{[]string{"--width", "0"}, "64", 0}, // the flag wins: no limit
		{nil, "zero", 0},                    // not a width: ignored
	} {
		t.Setenv("COLUMNS", tt.columns)
		code, stdout, stderr := execute(t, &fakeRun{}, append([]string{"show", "--store", dir}, tt.args...)...)
		if code != 0 {
			t.Fatalf("show %v: exit %d: %s", tt.args, code, stderr)
		}
		w, line := widest(stdout)
		if tt.width == 0 && stdout != want.String() || tt.width > 0 && (w > tt.width || w < tt.width-5) {
			t.Errorf("show %v COLUMNS=%q: widest line %d (%q), want width %d:\n%s", tt.args, tt.columns, w, line, tt.width, stdout)
		}
		if strings.ContainsRune(stdout, 0x1b) {
			t.Errorf("show %v: an ESC in uncoloured output", tt.args)
		}
	}
	t.Setenv("COLUMNS", "")

	t.Setenv("NO_COLOR", "1") // --color always wins over NO_COLOR
	_, stdout, _ = execute(t, &fakeRun{}, "show", "--store", dir, "--color", "always")
	if !strings.Contains(stdout, "\x1b[31mexit 1 ✗\x1b[0m") || !strings.Contains(stdout, "\x1b[2m") {
		t.Errorf("--color always: no colour:\n%q", stdout)
	}
	if strings.Contains(stdout, "\x1b]") || strings.Contains(stdout, "\x1b[31mLong") {
		t.Errorf("--color always: the run's own escape reached the output:\n%q", stdout)
	}
}

// ptyShow runs show with a pseudo-terminal of rows×cols as stdout and
// returns what the terminal received (\r\n as \n).
func ptyShow(t *testing.T, rows, cols uint16, args ...string) (code int, screen, stderr string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	read := make(chan string)
	go func() {
		var b bytes.Buffer
		_, err := io.Copy(&b, ptmx)
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the terminal's side closed
			t.Errorf("reading the pty: %v", err)
		}
		read <- b.String()
	}()
	var errb bytes.Buffer
	code = Execute(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: tty, Stderr: &errb, Run: (&fakeRun{}).run})
	tty.Close()
	select {
	case screen = <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the pty did not close")
	}
	return code, strings.ReplaceAll(screen, "\r\n", "\n"), errb.String()
}

// On a terminal, show reads its width (TIOCGWINSZ) and colours; COLUMNS
// does not override the terminal.
func TestShowTerminalWidth(t *testing.T) {
	showEnv(t)
	dir := showRun(t, 3)
	t.Setenv("COLUMNS", "200")
	t.Setenv("PAGER", "false") // short output: not paged
	code, screen, stderr := ptyShow(t, 60, 50, "show", "--store", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(screen, "\x1b[31mexit 1 ✗\x1b[0m") {
		t.Errorf("no colour on a terminal:\n%q", screen)
	}
	plain := screen
	for _, c := range []string{"\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[0m"} {
		plain = strings.ReplaceAll(plain, c, "")
	}
	if strings.ContainsRune(plain, 0x1b) {
		t.Errorf("an ESC that is not show's colour:\n%q", screen)
	}
	w, line := widest(plain)
	if w > 50 || w < 45 {
		t.Errorf("widest line %d (%q), want 50 at most (and close):\n%s", w, line, plain)
	}
	for _, want := range []string{
		"Command    claude -p '[prompt: 90 chars\n           sha256:", // a header value wraps
		"agent_run  claude -p '[prompt: 90 chars sh…  5.00s\n",        // a label is cut
		"    ├── test_run  go test ./pkg01/…  2ms  exit 1 ✗\n",        // before the marks
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, plain)
		}
	}

	// NO_COLOR, TERM=dumb and --color never: not one ESC.
	for _, tt := range []struct{ env, val, flag string }{{"NO_COLOR", "1", "auto"}, {"TERM", "dumb", "auto"}, {"TERM", "xterm", "never"}} {
		t.Setenv(tt.env, tt.val)
		_, screen, _ := ptyShow(t, 60, 50, "show", "--store", dir, "--color", tt.flag)
		if strings.ContainsRune(screen, 0x1b) || !strings.Contains(screen, "agent_run") {
			t.Errorf("%s=%s --color %s: %q", tt.env, tt.val, tt.flag, screen)
		}
		showEnv(t)
	}
}

// fakePager is a PAGER script that records its stdin and LESS.
func fakePager(t *testing.T) (pager, got string) {
	dir := t.TempDir()
	got = filepath.Join(dir, "stdin")
	pager = filepath.Join(dir, "pager")
	script := fmt.Sprintf("#!/bin/sh\ncat > %s\nprintf '%%s' \"${LESS-unset}\" > %s.less\necho PAGED\n", got, got)
	if err := os.WriteFile(pager, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return pager, got
}

// Longer than the terminal: show goes through $PAGER, which receives the
// rendered, escaped output (coloured unless NO_COLOR), with LESS=FRX
// unless LESS is set. --no-pager, PAGER=cat, PAGER= and a missing pager
// print directly.
func TestShowPager(t *testing.T) {
	showEnv(t)
	dir := showRun(t, 30) // some 30 header and audit rows, 32 tree lines
	pager, got := fakePager(t)

	t.Setenv("PAGER", pager)
	code, screen, stderr := ptyShow(t, 24, 80, "show", "--store", dir)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	in, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("the pager did not run: %v (screen %q)", err, screen)
	}
	if !strings.Contains(screen, "PAGED") || strings.Contains(screen, "agent_run") {
		t.Errorf("the output went around the pager: %q", screen)
	}
	if !bytes.Contains(in, []byte("agent_run  claude -p")) || !bytes.Contains(in, []byte("\x1b[31mexit 1 ✗\x1b[0m")) {
		t.Errorf("the pager got %q", in)
	}
	if bytes.Contains(in, []byte("\x1b]")) || !bytes.Contains(in, []byte(`Test\x1b]52;c;aGk=\x07`)) {
		t.Errorf("the pager got the run's raw escapes: %q", in)
	}
	if less, _ := os.ReadFile(got + ".less"); string(less) != "FRX" {
		t.Errorf("LESS = %q, want FRX", less)
	}
	var lines int
	for _, l := range strings.Split(string(in), "\n") {
		lines++
		if n := len([]rune(strings.NewReplacer("\x1b[31m", "", "\x1b[33m", "", "\x1b[2m", "", "\x1b[0m", "").Replace(l))); n > 80 {
			t.Errorf("paged line of %d columns: %q", n, l)
		}
	}
	if lines <= 24 {
		t.Errorf("paged %d lines: short output needs no pager", lines)
	}

	// NO_COLOR: the pager gets no ESC at all; a set LESS stays.
	os.Remove(got)
	t.Setenv("NO_COLOR", "1")
	t.Setenv("LESS", "-S")
	ptyShow(t, 24, 80, "show", "--store", dir)
	in, err = os.ReadFile(got)
	if err != nil || bytes.ContainsRune(in, 0x1b) || !bytes.Contains(in, []byte("agent_run")) {
		t.Errorf("NO_COLOR: the pager got %q (%v)", in, err)
	}
	if less, _ := os.ReadFile(got + ".less"); string(less) != "-S" {
		t.Errorf("LESS = %q, want the user's -S", less)
	}

	// No pager: the output reaches the terminal directly, no error.
	for _, tt := range []struct {
		pager string
		args  []string
	}{
		{pager, []string{"--no-pager"}},
		{"cat", nil},
		{"", nil},
		{"/nonexistent/pager -R", nil},
		{"no-such-pager-program", nil},
	} {
		os.Remove(got)
		t.Setenv("PAGER", tt.pager)
		code, screen, stderr := ptyShow(t, 24, 80, append([]string{"show", "--store", dir}, tt.args...)...)
		if code != 0 || stderr != "" || !strings.Contains(screen, "agent_run  claude -p") || strings.Contains(screen, "PAGED") {
			t.Errorf("PAGER=%q %v: exit %d, stderr %q, screen %q", tt.pager, tt.args, code, stderr, screen)
		}
		if _, err := os.Stat(got); err == nil {
			t.Errorf("PAGER=%q %v: the pager ran", tt.pager, tt.args)
		}
	}
}

func TestPagerRows(t *testing.T) {
	out := []byte("ab\n\x1b[31mexit 1 ✗\x1b[0m  \x1b[2m4ms\x1b[0m\n" + strings.Repeat("x", 25) + "\n")
	if got := rows(out, 15); got != 4 { // 1 + 1 (13 runes once the SGR codes are left out) + 2
		t.Errorf("rows = %d, want 4", got)
	}
	if got := rows(out, 0); got != 3 {
		t.Errorf("rows without a width = %d, want 3", got)
	}
}
