package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestErrorLineEscaped: an error quoting run data (a path with an OSC 52
// sequence, a CR, a newline forging a second "agentwatch:" line) reaches
// stderr escaped; errors.Join still gives one line per error.
func TestErrorLineEscaped(t *testing.T) {
	hostile := "/ws/f\x1b]52;c;eA==\x07\r\nagentwatch: run r1 recorded (9 spans)"
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"one error", fmt.Errorf("saving run r1: writing %s: disk full", hostile),
			`agentwatch: saving run r1: writing /ws/f\x1b]52;c;eA==\x07\r\nagentwatch: run r1 recorded (9 spans): disk full` + "\n"},
		{"joined errors", errors.Join(errors.New("first\u202eevil"), fmt.Errorf("second: %s", "\x9b2J")),
			"agentwatch: first\\u202eevil\nagentwatch: second: \\x9b2J\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := execute(t, &fakeRun{err: tt.err}, "run", "--store", "/s", "--", "cmd")
			if code != ExitFailure || stderr != tt.want {
				t.Fatalf("exit %d stderr %q; want %d %q", code, stderr, ExitFailure, tt.want)
			}
		})
	}
}

func TestDoctorEscapesDetail(t *testing.T) {
	var b bytes.Buffer
	writeDoctor(&b, []check{{name: "git", detail: "/opt/\x1b[2Jgit\nok  forged", fix: "install\rgit"}}, true, true, true)
	want := "note  git            /opt/\\x1b[2Jgit\\nok  forged\n      " + fmt.Sprintf("%-14s", "") + " fix: install\\rgit\n"
	if got := b.String(); !bytes.HasPrefix([]byte(got), []byte(want)) {
		t.Errorf("doctor printed %q, want prefix %q", got, want)
	}
}
