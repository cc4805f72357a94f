package cli

import (
	"errors"
	"slices"
	"testing"

	"github.com/agentwatch/agentwatch/supervisor"
)

// oneLineJoin is an error that joins causes but prints as one line (the
// supervisor's sink failures).
type oneLineJoin []error

func (j oneLineJoin) Error() string   { return j[0].Error() + "; " + j[1].Error() }
func (j oneLineJoin) Unwrap() []error { return j }
func (j oneLineJoin) Lines() []string { return []string{j.Error()} }

// TestErrorLines: errors.Join gives a line per error; an error that says
// how it prints is printed so, also behind a wrapper that adds no text
// (RecordError); every line is escaped.
func TestErrorLines(t *testing.T) {
	a, b := errors.New("saving run r: disk full"), errors.New("writing trace file t:\x1b[2J closed")
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{errors.Join(a, b), []string{"saving run r: disk full", `writing trace file t:\x1b[2J closed`}},
		{oneLineJoin{a, b}, []string{`saving run r: disk full; writing trace file t:\x1b[2J closed`}},
		{&supervisor.RecordError{RunID: "r", Err: oneLineJoin{a, b}}, []string{`saving run r: disk full; writing trace file t:\x1b[2J closed`}},
	} {
		if got := errorLines(tc.err); !slices.Equal(got, tc.want) {
			t.Errorf("errorLines(%T) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
