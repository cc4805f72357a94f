package netwatch

// The plain-HTTP side of the splice proxy's check: the host a request head
// is for (parseHost), and requestStream, which follows HTTP/1.x request
// framing so that every request on a keep-alive connection is checked.

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// parseHost returns the host an HTTP/1.x request at the start of b is for:
// the Host header, or the authority of an absolute-form (proxy style) or
// authority-form (CONNECT) target, without port. It waits for the whole
// request head, because a second Host later in the head would be read by
// some servers and not others. errNotHTTP comes as early as the bytes
// prove it, so a non-HTTP client is not kept waiting for the timeout.
func parseHost(b []byte) (string, error) {
	line, rest, complete := cutLine(b)
	if err := checkRequestLinePrefix(line, complete); err != nil {
		return "", err
	}
	if !complete {
		if len(b) > helloLimit {
			return "", errTooLarge
		}
		return "", errNeedMore
	}
	end := headEnd(rest)
	if end < 0 {
		if len(b) > helloLimit {
			return "", errTooLarge
		}
		return "", errNeedMore
	}
	if len(line)+end > helloLimit {
		return "", errTooLarge
	}
	_, target, _ := strings.Cut(string(line), " ")
	target, _, _ = strings.Cut(target, " ")

	var targetHost string
	switch {
	case strings.Contains(target, "://"):
		u, err := url.Parse(target)
		if err != nil || u.Host == "" {
			return "", errMalformedHTTP
		}
		h, ok := splitHostPort(u.Host)
		if !ok {
			return "", errMalformedHTTP
		}
		targetHost = h
	case !strings.HasPrefix(target, "/") && target != "*":
		h, ok := splitHostPort(target) // CONNECT host:port
		if !ok {
			return "", errMalformedHTTP
		}
		targetHost = h
	}

	var host string
	seen := false
	head := rest[:end]
	for len(head) > 0 {
		var l []byte
		l, head, _ = cutLine(head)
		if len(l) == 0 {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			return "", errMalformedHTTP // obs-fold: servers disagree on it
		}
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok || len(k) == 0 || !isToken(k) {
			return "", errMalformedHTTP // includes "Host :" (RFC 9112 §5.1)
		}
		if !strings.EqualFold(string(k), "host") {
			continue
		}
		if seen {
			return "", errMalformedHTTP
		}
		seen = true
		hv := strings.TrimSpace(string(v))
		if hv == "" {
			continue // HTTP/1.1 allows an empty Host with an absolute target
		}
		h, ok := splitHostPort(hv)
		if !ok {
			return "", errMalformedHTTP
		}
		host = h
	}
	switch {
	case targetHost != "" && host != "" && host != targetHost:
		return "", errMalformedHTTP
	case targetHost != "":
		return targetHost, nil
	case host != "":
		return host, nil
	}
	return "", errNoHost
}

// cutLine splits b at the first LF, dropping a CR before it.
func cutLine(b []byte) (line, rest []byte, complete bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil, false
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:], true
}

// headEnd is the offset in b (the bytes after the request line) of the
// empty line ending the head, or -1. b may start with it: no headers.
func headEnd(b []byte) int {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return -1
		}
		if line := b[off : off+i]; len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return off
		}
		off += i + 1
	}
}

// checkRequestLinePrefix says whether line can be (complete: is) an
// HTTP/1.x request line "METHOD SP target SP HTTP/1.x".
func checkRequestLinePrefix(line []byte, complete bool) error {
	sp := bytes.IndexByte(line, ' ')
	method := line
	if sp >= 0 {
		method = line[:sp]
	}
	if len(method) > 32 || !isToken(method) || (sp == 0) {
		return errNotHTTP
	}
	if !complete {
		if sp < 0 {
			return nil
		}
		// A CR may be the last byte so far: its LF is still in flight.
		if hasControl(bytes.TrimSuffix(line[sp+1:], []byte("\r"))) {
			return errNotHTTP
		}
		return nil
	}
	if sp < 0 {
		return errNotHTTP
	}
	target, version, ok := bytes.Cut(line[sp+1:], []byte(" "))
	if !ok || len(target) == 0 || hasControl(target) || bytes.IndexByte(target, ' ') >= 0 {
		return errNotHTTP
	}
	if string(version) != "HTTP/1.1" && string(version) != "HTTP/1.0" {
		return errNotHTTP // HTTP/0.9, the HTTP/2 preface "PRI * HTTP/2.0"
	}
	return nil
}

func hasControl(b []byte) bool {
	for _, ch := range b {
		if ch < 0x20 || ch == 0x7f {
			return true
		}
	}
	return false
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

// splitHostPort takes "host", "host:port", "[v6]" or "[v6]:port" and
// returns the normalized host.
func splitHostPort(s string) (string, bool) {
	host := s
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, ']')
		if i < 0 {
			return "", false
		}
		host = s[1:i]
		if rest := s[i+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") || !validPort(rest[1:]) {
				return "", false
			}
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", false
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host = s[:i]
		if !validPort(s[i+1:]) || strings.IndexByte(host, ':') >= 0 {
			return "", false
		}
	}
	return normalizeName(host)
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535 && s != "" && s[0] != '+' && s[0] != '-'
}

// errStopInspecting: the check accepted a head it could not frame
// (observe mode); the rest of the connection is forwarded unread.
var errStopInspecting = errors.New("stop inspecting")

type streamState uint8

const (
	stHead streamState = iota
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailer
	stOpaque
)

// requestStream forwards the client side of a plain-HTTP connection to w,
// following HTTP/1.x request framing (Content-Length, chunked) so that
// every request head is seen — and bytes inside bodies are never taken for
// one. A head is held back until check approved its host, so a refused
// request never reaches the server complete.
type requestStream struct {
	w     io.Writer
	check func(host string, err error) error

	state   streamState
	pending []byte // an incomplete request head
	remain  int64  // body or chunk bytes left
	line    []byte // the chunk-size or trailer line being read
}

func (s *requestStream) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		var err error
		switch s.state {
		case stOpaque:
			_, err = s.w.Write(b)
			b = nil
		case stHead:
			b, err = s.head(b)
		case stBody, stChunkData:
			k := int(min(s.remain, int64(len(b))))
			_, err = s.w.Write(b[:k])
			b, s.remain = b[k:], s.remain-int64(k)
			if s.remain == 0 {
				if s.state == stBody {
					s.state = stHead
				} else {
					s.state = stChunkEnd
				}
			}
		case stChunkSize, stChunkEnd, stTrailer:
			b, err = s.framingLine(b)
		}
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// head collects a request head; once complete it is checked, forwarded,
// and the body framing taken from it. It returns the bytes after the head.
func (s *requestStream) head(b []byte) ([]byte, error) {
	s.pending = append(s.pending, b...)
	// Empty lines between requests are ignored by servers (RFC 9112 §2.2).
	for {
		k := 0
		switch {
		case bytes.HasPrefix(s.pending, []byte("\n")):
			k = 1
		case bytes.HasPrefix(s.pending, []byte("\r\n")):
			k = 2
		}
		if k == 0 {
			break
		}
		if _, err := s.w.Write(s.pending[:k]); err != nil {
			return nil, err
		}
		s.pending = s.pending[k:]
	}
	hl := headLen(s.pending)
	if hl < 0 {
		if len(s.pending) > helloLimit {
			return nil, s.stop(errTooLarge)
		}
		if len(s.pending) > 0 && !bytes.Equal(s.pending, []byte("\r")) {
			// Say "not HTTP" as soon as the bytes do, not at 16 KiB.
			if line, _, complete := cutLine(s.pending); checkRequestLinePrefix(line, complete) != nil {
				return nil, s.stop(errNotHTTP)
			}
		}
		return nil, nil
	}
	head := s.pending[:hl]
	host, err := parseHost(head)
	var st streamState
	var length int64
	if err == nil {
		st, length, err = requestFraming(head)
	}
	if err != nil {
		return nil, s.stop(err)
	}
	if err := s.check(host, nil); err != nil {
		return nil, err
	}
	if _, err := s.w.Write(head); err != nil {
		return nil, err
	}
	rest := s.pending[hl:]
	s.pending = nil
	s.state, s.remain = st, length
	if st == stBody && length == 0 {
		s.state = stHead
	}
	return rest, nil
}

// stop records a head that cannot be framed; in observe mode the rest,
// held-back bytes included, passes unread.
func (s *requestStream) stop(cause error) error {
	err := s.check("", cause)
	if !errors.Is(err, errStopInspecting) {
		if err == nil {
			err = errRefused
		}
		return err
	}
	s.state = stOpaque
	_, err = s.w.Write(s.pending)
	s.pending = nil
	return err
}

// framingLine reads, and forwards, one line of chunked framing.
func (s *requestStream) framingLine(b []byte) ([]byte, error) {
	i := bytes.IndexByte(b, '\n')
	part := b
	if i >= 0 {
		part = b[:i+1]
	}
	if _, err := s.w.Write(part); err != nil {
		return nil, err
	}
	s.line = append(s.line, part...)
	rest := b[len(part):]
	if len(s.line) > 4096 {
		return rest, s.stop(errMalformedHTTP)
	}
	if i < 0 {
		return nil, nil
	}
	line := bytes.TrimSuffix(bytes.TrimSuffix(s.line, []byte("\n")), []byte("\r"))
	s.line = s.line[:0]
	switch s.state {
	case stChunkSize:
		sz, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(sz)), 16, 64)
		if err != nil || n < 0 {
			return rest, s.stop(errMalformedHTTP)
		}
		if n == 0 {
			s.state = stTrailer
		} else {
			s.state, s.remain = stChunkData, n
		}
	case stChunkEnd:
		if len(line) != 0 {
			return rest, s.stop(errMalformedHTTP)
		}
		s.state = stChunkSize
	case stTrailer:
		if len(line) == 0 {
			s.state = stHead
		}
	}
	return rest, nil
}

// headLen is the length of the request head at the start of b, through
// the empty line that ends it, or -1 when incomplete.
func headLen(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return -1
	}
	end := headEnd(b[i+1:])
	if end < 0 {
		return -1
	}
	off := i + 1 + end
	return off + bytes.IndexByte(b[off:], '\n') + 1
}

// requestFraming says how the body after a complete, valid head is
// delimited. Content-Length with Transfer-Encoding, or two different
// lengths, are refused: servers and this proxy could split the stream
// differently (request smuggling), and a request hidden in a body would
// go unchecked.
func requestFraming(head []byte) (streamState, int64, error) {
	line, rest, _ := cutLine(head)
	if bytes.HasPrefix(line, []byte("CONNECT ")) {
		return stOpaque, 0, nil // a tunnel: what follows is not HTTP
	}
	length, chunked, te := int64(-1), false, false
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = cutLine(rest)
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch strings.ToLower(string(k)) {
		case "content-length":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 || v[0] == '+' || (length >= 0 && n != length) {
				return 0, 0, errMalformedHTTP
			}
			length = n
		case "transfer-encoding":
			te = true
			codings := strings.Split(strings.ToLower(string(v)), ",")
			chunked = strings.TrimSpace(codings[len(codings)-1]) == "chunked"
		case "upgrade":
			// After a 101 the connection is another protocol; the proxy
			// does not read responses, so it stops at the first upgrade
			// request. Its host was checked; the tunnel stays with it.
			return stOpaque, 0, nil
		}
	}
	switch {
	case te && (!chunked || length >= 0):
		return 0, 0, errMalformedHTTP
	case te:
		return stChunkSize, 0, nil
	case length > 0:
		return stBody, length, nil
	}
	return stBody, 0, nil
}
