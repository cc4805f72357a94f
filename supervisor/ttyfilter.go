package supervisor

// ttyFilter relays the child's output to the operator's terminal in pipe
// mode (stdin not a terminal, stdout or stderr one). The child never gets
// the terminal's descriptor — with it, it could change the terminal's
// modes or, had it kept the session, type into the operator's shell with
// TIOCSTI — and what it prints is reduced to text a log shows: printable
// characters, tab, newline, carriage return, backspace, and SGR colour
// sequences. Every other escape sequence is dropped: OSC (clipboard writes
// with OSC 52, titles, hyperlinks), DCS/APC/PM/SOS strings, cursor and
// screen control, and the queries whose answers a terminal types into its
// input — which, in pipe mode, is the operator's shell once the run ends.
// C1 controls (U+0080–U+009F, which some terminals obey like ESC
// sequences) are dropped too.
//
// In PTY mode the output is the agent's terminal UI and is relayed as is:
// answers to its queries go back into the agent's own PTY.

import (
	"io"
	"os"

	"golang.org/x/term"
)

type ttyState uint8

const (
	ttyText   ttyState = iota
	ttyEsc             // after ESC
	ttyCSI             // ESC [ … collecting parameters
	ttyString          // OSC/DCS/SOS/PM/APC: until BEL or ST
	ttyStrEsc          // ESC inside a string (ST is ESC \)
	ttyC2              // a 0xC2 lead byte: C1 controls are C2 80..C2 9F
)

const maxCSI = 64

type ttyFilter struct {
	w     io.Writer
	state ttyState
	csi   []byte
	out   []byte
}

// terminalOutput wraps w in a ttyFilter when it is a terminal.
func terminalOutput(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &ttyFilter{w: w}
	}
	return w
}

func (f *ttyFilter) Write(p []byte) (int, error) {
	f.out = f.out[:0]
	for _, c := range p {
		f.step(c)
	}
	if len(f.out) > 0 {
		if _, err := f.w.Write(f.out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (f *ttyFilter) step(c byte) {
	switch f.state {
	case ttyText:
		switch {
		case c == 0x1b:
			f.state = ttyEsc
		case c == 0xc2:
			f.state = ttyC2
		case c == '\t' || c == '\n' || c == '\r' || c == '\b':
			f.out = append(f.out, c)
		case c < 0x20 || c == 0x7f:
			// other C0 controls: bell, shift in/out, …
		default:
			f.out = append(f.out, c)
		}
	case ttyC2:
		f.state = ttyText
		if c >= 0x80 && c <= 0x9f {
			return // a C1 control
		}
		f.out = append(f.out, 0xc2)
		f.step(c)
	case ttyEsc:
		switch c {
		case '[':
			f.state, f.csi = ttyCSI, f.csi[:0]
		case ']', 'P', 'X', '^', '_':
			f.state = ttyString
		default:
			// A two-byte sequence (ESC c resets the terminal, ESC 7/8,
			// charset designations' first byte …): dropped whole.
			f.state = ttyText
		}
	case ttyCSI:
		switch {
		case c >= 0x40 && c <= 0x7e: // the final byte
			if c == 'm' && sgrParams(f.csi) {
				f.out = append(f.out, 0x1b, '[')
				f.out = append(f.out, f.csi...)
				f.out = append(f.out, 'm')
			}
			f.state = ttyText
		case c >= 0x20 && c <= 0x3f:
			if len(f.csi) < maxCSI {
				f.csi = append(f.csi, c)
			}
		default:
			// Not a CSI byte: the sequence is broken, drop it.
			f.state = ttyText
		}
	case ttyString:
		switch c {
		case 0x07:
			f.state = ttyText
		case 0x1b:
			f.state = ttyStrEsc
		}
	case ttyStrEsc:
		if c == '\\' {
			f.state = ttyText
		} else {
			f.state = ttyString
		}
	}
}

// sgrParams: only digits and separators, as colours and attributes are.
func sgrParams(p []byte) bool {
	if len(p) >= maxCSI {
		return false
	}
	for _, c := range p {
		if (c < '0' || c > '9') && c != ';' && c != ':' {
			return false
		}
	}
	return true
}
