package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/recorder"
)

const scanRepo = "git@github.com:acme/api"

func scanSink() (*prSink, *[]string) {
	var got []string
	k := newPRSink(scanRepo, func(ev event.Event) { got = append(got, ev.(event.OutputURL).URL) })
	return k, &got
}

// scanChunks writes chunks to one stream and flushes it.
func scanChunks(chunks ...string) []string {
	k, got := scanSink()
	s := k.stream()
	for _, c := range chunks {
		s.Write([]byte(c))
	}
	s.Flush()
	return *got
}

func TestPRScanner(t *testing.T) {
	const u = "https://github.com/acme/api/pull/42"
	tests := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"plain line", []string{"Created " + u + "\n"}, []string{u}},
		{"split across two writes", []string{"PR: https://github.com/acme/a", "pi/pull/42\r\n"}, []string{u}},
		{"split inside the number", []string{"PR: " + u[:len(u)-1], "2 done"}, []string{u}},
		{"split in every byte", strings.Split("see "+u+".", ""), []string{u}},
		{"the output ends on it", []string{"x " + u}, []string{u}},
		{"SGR colour inside is what the screen shows", []string{"\x1b[1;34mhttps://github.com/acme/\x1b[0m\x1b[4mapi/pull/42\x1b[0m\n"}, []string{u}},
		{"an SGR sequence split across writes", []string{"https://github.com/acme/api/\x1b[3", "8;5;12mpull/42\n"}, []string{u}},
		{"a cursor move ends it", []string{"https://github.com/acme/api/pull/4\x1b[10G2\n"}, []string{"https://github.com/acme/api/pull/4"}},
		{"OSC 8 hyperlink", []string{"\x1b]8;;" + u + "\x1b\\#42\x1b]8;;\x1b\\\n"}, []string{u}},
		{"OSC terminated by BEL", []string{"\x1b]8;;" + u + "\x07link\x1b]8;;\x07"}, []string{u}},
		{"followed by a letter: not a PR URL", []string{u + "abc\n"}, nil},
		{"sub-page", []string{u + "/files#diff-1\n"}, []string{u}},
		{"markdown", []string{"[#42](" + u + ")"}, []string{u}},
		{"once however often printed", []string{u + "\n", u + "\n" + u + "\n"}, []string{u}},
		{"GitLab", []string{"https://gitlab.example/grp/sub/api/-/merge_requests/7 opened"}, []string{"https://gitlab.example/grp/sub/api/-/merge_requests/7"}},
		{"not a PR", []string{"https://github.com/acme/api/issues/42 https://github.com/acme/api\n"}, nil},
		{"two", []string{"https://github.com/evil/x/pull/1 and " + u + "\n"}, []string{"https://github.com/evil/x/pull/1", u}},
		{"a URL longer than the window is given up", []string{"https://github.com/" + strings.Repeat("a", 2000) + "/api/pull/1\n", u + "\n"}, []string{u}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scanChunks(tt.chunks...); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("found %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPRScannerLongOutput: a URL after megabytes of output, split where
// one write ends, in writes larger than the scan chunk.
func TestPRScannerLongOutput(t *testing.T) {
	const u = "https://github.com/acme/api/pull/7"
	big := strings.Repeat("compiling… \x1b[2K\r", 200000)
	got := scanChunks(big+"https://github.com/ac", "me/api/pull/7\n"+big)
	if !reflect.DeepEqual(got, []string{u}) {
		t.Errorf("found %q", got)
	}
}

// TestPRScannerCaps: past the caps nothing is reported, and printing
// other repositories' URLs does not use up the run's own.
func TestPRScannerCaps(t *testing.T) {
	k, got := scanSink()
	s := k.stream()
	for i := range 500 {
		fmt.Fprintf(s, "https://github.com/spam/r/pull/%d\n", i)
	}
	for i := range 20 {
		fmt.Fprintf(s, "https://github.com/acme/api/pull/%d\n", i)
	}
	s.Flush()
	if len(*got) != recorder.MaxOwnURLs+recorder.MaxOtherURLs {
		t.Fatalf("%d URLs reported, want %d", len(*got), recorder.MaxOwnURLs+recorder.MaxOtherURLs)
	}
	if last := (*got)[len(*got)-1]; last != fmt.Sprintf("https://github.com/acme/api/pull/%d", recorder.MaxOwnURLs-1) {
		t.Errorf("last reported %q", last)
	}
	// Full: later writes are not scanned; after Flush neither.
	fmt.Fprintf(s, "https://github.com/other/r/pull/1\n")
	if len(*got) != recorder.MaxOwnURLs+recorder.MaxOtherURLs {
		t.Error("reported past the caps")
	}
}

// TestPRScannerTimes: a URL carries the time of the write that completed
// it; one the output ended on, the time of the last write.
func TestPRScannerTimes(t *testing.T) {
	var evs []event.OutputURL
	k := newPRSink(scanRepo, func(ev event.Event) { evs = append(evs, ev.(event.OutputURL)) })
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	k.now = func() time.Time { return clock }
	s := k.stream()
	s.Write([]byte("https://github.com/acme/api/pu"))
	clock = clock.Add(time.Second)
	s.Write([]byte("ll/1 https://github.com/acme/api/pull/2"))
	clock = clock.Add(time.Hour)
	s.Flush()
	if len(evs) != 2 || !evs[0].Time.Equal(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)) || !evs[1].Time.Equal(evs[0].Time) {
		t.Errorf("events %+v", evs)
	}
}

// TestPRScannerPassThrough: what reaches the terminal is the bytes written,
// unchanged, with the writer's own result; an *os.File given to the child
// directly stays so.
func TestPRScannerPassThrough(t *testing.T) {
	k, got := scanSink()
	var term bytes.Buffer
	w := k.stream().tee(&term)
	in := "\x1b[1mhttps://github.com/acme/api/pull/9\x1b[0m\r\n\x00\xff\xc2\x9b tail"
	for _, c := range []string{in[:10], in[10:], ""} {
		if n, err := w.Write([]byte(c)); n != len(c) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if term.String() != in {
		t.Errorf("terminal got %q, want %q", term.String(), in)
	}
	if len(*got) != 1 {
		t.Errorf("found %q", *got)
	}

	// A failing terminal: its error and count come back, only what it
	// took is scanned.
	fail := k.stream().tee(shortWriter{n: 5})
	if n, err := fail.Write([]byte("https://github.com/acme/api/pull/10\n")); n != 5 || !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("Write = %d, %v; want the writer's 5, short write", n, err)
	}

	s := k.stream()
	if s.pipe(os.Stdout) != io.Writer(os.Stdout) {
		t.Error("an *os.File is wrapped in pipe mode")
	}
	if s.pipe(nil) != nil {
		t.Error("nil wrapped in pipe mode")
	}
	if _, ok := s.pipe(&term).(*scanWriter); !ok {
		t.Error("a copied stream is not scanned in pipe mode")
	}
	if _, ok := s.tee(os.Stdout).(*scanWriter); !ok {
		t.Error("the PTY's output is not scanned")
	}
}

type shortWriter struct{ n int }

func (w shortWriter) Write(p []byte) (int, error) { return min(w.n, len(p)), io.ErrShortWrite }

// BenchmarkPRScanner: the scan's cost per byte of terminal output.
func BenchmarkPRScanner(b *testing.B) {
	k, _ := scanSink()
	s := k.stream()
	chunk := []byte(strings.Repeat("\x1b[32m✓\x1b[0m ok  \tgithub.com/acme/api/internal/thing\t0.123s\r\n", 400))
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		s.Write(chunk)
	}
}
