package llm

import "bytes"

// sseParser splits a server-sent event stream into events incrementally, as
// bytes arrive, so a stream is metered without ever being held whole. It
// follows the WHATWG event-stream rules the SDKs use: lines end in \n, \r\n
// or \r; "event:" names the event, "data:" lines are joined with \n, a blank
// line dispatches, a line starting with ":" is a comment, one space after
// the colon is dropped. An event still open when the stream ends is
// discarded, as clients do.
type sseParser struct {
	onEvent func(name string, data []byte)
	max     int // largest line or event kept; beyond it the parser gives up

	buf      []byte // bytes not yet split into lines
	name     string
	data     []byte
	hasData  bool
	overflow bool // an event exceeded max: metering stops (the stream still flows)
	events   int
}

func (p *sseParser) feed(b []byte) {
	if p.overflow {
		return
	}
	p.buf = append(p.buf, b...)
	start := 0
	for {
		i := bytes.IndexAny(p.buf[start:], "\r\n")
		if i < 0 {
			break
		}
		end := start + i
		next := end + 1
		if p.buf[end] == '\r' {
			if next == len(p.buf) {
				break // a \r at the end may be half of \r\n: wait for the next byte
			}
			if p.buf[next] == '\n' {
				next++
			}
		}
		p.line(p.buf[start:end])
		start = next
		if p.overflow {
			return
		}
	}
	// Keep the partial line, compacting so the buffer does not grow with
	// the stream.
	rest := copy(p.buf, p.buf[start:])
	p.buf = p.buf[:rest]
	if len(p.buf) > p.max {
		p.giveUp()
	}
}

func (p *sseParser) giveUp() {
	p.overflow = true
	p.buf, p.data = nil, nil
}

func (p *sseParser) line(l []byte) {
	if len(l) == 0 {
		if p.hasData {
			p.events++
			p.onEvent(p.name, p.data)
		}
		p.name, p.data, p.hasData = "", p.data[:0], false
		return
	}
	if l[0] == ':' {
		return
	}
	field, value := l, []byte(nil)
	if i := bytes.IndexByte(l, ':'); i >= 0 {
		field, value = l[:i], l[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		p.name = string(value)
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
		p.hasData = true
		if len(p.data) > p.max {
			p.giveUp()
		}
	}
}
