package supervisor

// The output scanner: pull and merge request URLs in what the supervisor
// relays from the run to the operator — the PTY's output, or in pipe mode
// the streams it copies (a terminal's filter, full capture's copy). A
// stream handed to the child as is (pipe mode to a file or a pipe, no
// full capture) passes the supervisor by and is not scanned.
//
// The scanner sees the bytes after they were written on: it never changes,
// delays past its own scan, or fails what reaches the terminal. Its memory
// is a small window (the carried tail plus one chunk) and a capped set of
// URLs. It reads text as a terminal shows it: SGR colour sequences are
// skipped (text on both sides is adjacent on screen), every other control
// or escape sequence ends a URL; a URL split across writes is joined
// through the tail. What it finds is only what the run printed: the
// recorder judges it (recorder/pr.go).

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/recorder"
)

const (
	scanTail  = 512       // clean text carried into the next write: longer than any PR URL
	scanChunk = 32 << 10  // a write is scanned this much at a time
	scanCSI   = 64        // a longer CSI sequence is given up on
	scanSep   = byte(' ') // what a control or a non-SGR sequence becomes
)

// prSink is the run's set of URLs found, shared by its streams.
type prSink struct {
	mu          sync.Mutex
	seen        map[string]bool
	own, others int
	isOwn       func(url string) bool
	emit        func(event.Event)
	now         func() time.Time
}

func newPRSink(repoURL string, emit func(event.Event)) *prSink {
	return &prSink{
		seen:  map[string]bool{},
		isOwn: func(u string) bool { return recorder.OwnPR(repoURL, u) },
		emit:  emit,
		now:   time.Now,
	}
}

// found reports url once, within the caps (the recorder's).
func (k *prSink) found(url string, t time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seen[url] {
		return
	}
	own := k.isOwn(url)
	if own && k.own >= recorder.MaxOwnURLs || !own && k.others >= recorder.MaxOtherURLs {
		return
	}
	if own {
		k.own++
	} else {
		k.others++
	}
	k.seen[url] = true
	k.emit(event.OutputURL{Header: event.Header{Time: t}, URL: url})
}

// full: nothing more can be reported.
func (k *prSink) full() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.own >= recorder.MaxOwnURLs && k.others >= recorder.MaxOtherURLs
}

type escState uint8

const (
	escText escState = iota
	escEsc           // after ESC
	escCSI           // ESC [ …
)

// prStream scans one stream.
type prStream struct {
	mu    sync.Mutex // the relay's copy writes; Flush may come while a late copy still does
	sink  *prSink
	done  bool // flushed: later writes pass unscanned
	state escState
	csi   int       // bytes of the CSI sequence so far
	win   []byte    // clean text: the tail carried, then the new
	last  time.Time // when the text in win last grew
}

func (k *prSink) stream() *prStream { return &prStream{sink: k} }

// tee returns w with the scanner behind it: for a stream the supervisor
// copies anyway (the PTY's output).
func (s *prStream) tee(w io.Writer) io.Writer {
	if w == nil {
		w = io.Discard
	}
	return &scanWriter{w: w, s: s}
}

// pipe is tee for a pipe-mode stream, which exec copies only when it is
// not an *os.File: an *os.File (or nil) is returned as is — the child gets
// it directly, and scanning it would make the supervisor copy a stream it
// does not copy now.
func (s *prStream) pipe(w io.Writer) io.Writer {
	if _, ok := w.(*os.File); ok || w == nil {
		return w
	}
	return s.tee(w)
}

// scanWriter writes to w, then scans what w took.
type scanWriter struct {
	w io.Writer
	s *prStream
}

func (t *scanWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if n > 0 {
		t.s.Write(p[:min(n, len(p))])
	}
	return n, err
}

// Write scans p; it never fails.
func (s *prStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || s.sink.full() {
		return len(p), nil
	}
	s.last = s.sink.now()
	for off := 0; off < len(p); off += scanChunk {
		s.add(p[off:min(off+scanChunk, len(p))])
		s.scan(false)
	}
	return len(p), nil
}

// Flush reports a URL the stream ended on (no byte after it).
func (s *prStream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done && !s.sink.full() {
		s.scan(true)
	}
	s.done, s.win = true, nil
}

// add appends p to the window as text a terminal shows.
func (s *prStream) add(p []byte) {
	for _, c := range p {
		switch s.state {
		case escText:
			switch {
			case c == 0x1b:
				s.state = escEsc
			case c < 0x20 || c == 0x7f:
				s.win = append(s.win, scanSep)
			default:
				s.win = append(s.win, c)
			}
		case escEsc:
			if c == '[' {
				s.state, s.csi = escCSI, 0
				continue
			}
			// OSC, DCS, a two-byte sequence, ST: a boundary. The body of
			// an OSC string (an OSC 8 hyperlink's URL) reads as text.
			s.win = append(s.win, scanSep)
			s.state = escText
			if c == 0x1b {
				s.state = escEsc
			}
		case escCSI:
			s.csi++
			switch {
			case c >= 0x40 && c <= 0x7e: // the final byte
				if c != 'm' { // SGR is colour: transparent; the rest moves the cursor or the screen
					s.win = append(s.win, scanSep)
				}
				s.state = escText
			case c >= 0x20 && c <= 0x3f && s.csi <= scanCSI: // parameters, intermediates
			default: // a control, DEL, a high byte or too long: not a sequence after all
				s.win = append(s.win, scanSep)
				s.state = escText
				if c == 0x1b {
					s.state = escEsc
				}
			}
		}
	}
}

// scan reports the complete URLs in the window and keeps its tail. A URL
// that touches the window's end may go on in the next write: it waits,
// unless final.
func (s *prStream) scan(final bool) {
	cut := max(len(s.win)-scanTail, 0)
	for _, m := range recorder.PRURLRegexp.FindAllIndex(s.win, -1) {
		a, b := m[0], m[1]
		if b == len(s.win) {
			if !final {
				cut = min(cut, a) // carried whole into the next write
			} else {
				s.sink.found(string(s.win[a:b]), s.last)
			}
			break
		}
		if c := s.win[b]; c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' {
			continue // pull/12abc is not a pull request URL
		}
		s.sink.found(string(s.win[a:b]), s.last)
	}
	if len(s.win)-cut > scanTail*2 {
		cut = len(s.win) - scanTail // a "URL" that long is no PR's
	}
	s.win = s.win[:copy(s.win, s.win[cut:])]
}
