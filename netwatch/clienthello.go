package netwatch

// The TLS side of the splice proxy's check: the server_name (SNI) of the
// ClientHello, read from the client's first records without terminating TLS.

const (
	recordTypeHandshake  = 22
	handshakeClientHello = 1
	extServerName        = 0
	sniHostName          = 0
)

// parseSNI returns the server_name of the TLS ClientHello at the start of
// b, lower-case without a trailing dot. errNeedMore: b is a valid prefix;
// errNoSNI: a complete hello without the extension. A hello fragmented over
// several records is reassembled; records after the hello (0-RTT data) are
// ignored. Ambiguity is malformed: a duplicated extension or two host names
// could make the proxy check one name while the server serves another.
func parseSNI(b []byte) (string, error) {
	var hs []byte
	for pos := 0; ; {
		if len(b)-pos < 5 {
			if pos == 0 && len(b) >= 2 && b[1] != 3 {
				return "", errMalformedTLS
			}
			return "", errNeedMore
		}
		typ, major, minor := b[pos], b[pos+1], b[pos+2]
		n := int(b[pos+3])<<8 | int(b[pos+4])
		if typ != recordTypeHandshake || major != 3 || minor > 4 || n == 0 || n > 1<<14 {
			return "", errMalformedTLS
		}
		frag := b[pos+5:]
		if len(frag) > n {
			frag = frag[:n]
		}
		hs = append(hs, frag...)
		if len(hs) >= 4 {
			if hs[0] != handshakeClientHello {
				return "", errMalformedTLS
			}
			msgLen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if msgLen > helloLimit {
				return "", errTooLarge
			}
			if len(hs) >= 4+msgLen {
				return parseClientHello(hs[4 : 4+msgLen])
			}
		}
		if len(frag) < n {
			return "", errNeedMore
		}
		pos += 5 + n
	}
}

// reader walks a byte string; any read past the end marks it bad, so the
// parse checks once at the end of each step instead of at every field.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16() int {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

func parseClientHello(body []byte) (string, error) {
	r := &reader{b: body}
	r.bytes(2 + 32) // legacy_version, random
	if sid := r.u8(); sid > 32 {
		return "", errMalformedTLS
	} else {
		r.bytes(sid)
	}
	if cs := r.u16(); cs < 2 || cs%2 != 0 {
		return "", errMalformedTLS
	} else {
		r.bytes(cs)
	}
	if cm := r.u8(); cm < 1 {
		return "", errMalformedTLS
	} else {
		r.bytes(cm)
	}
	if r.bad {
		return "", errMalformedTLS
	}
	if len(r.b) == 0 {
		return "", errNoSNI // no extensions at all (SSL 3.0 style)
	}
	if r.u16() != len(r.b) {
		return "", errMalformedTLS
	}
	seen := make(map[int]bool)
	name := ""
	for len(r.b) > 0 {
		typ, n := r.u16(), r.u16()
		data := r.bytes(n)
		if r.bad || seen[typ] {
			return "", errMalformedTLS
		}
		seen[typ] = true
		if typ != extServerName {
			continue
		}
		var err error
		if name, err = parseServerNameExt(data); err != nil {
			return "", err
		}
	}
	if !seen[extServerName] {
		return "", errNoSNI
	}
	return name, nil
}

func parseServerNameExt(data []byte) (string, error) {
	r := &reader{b: data}
	if r.u16() != len(r.b) || len(r.b) == 0 {
		return "", errMalformedTLS
	}
	name := ""
	for len(r.b) > 0 {
		typ := r.u8()
		v := r.bytes(r.u16())
		if r.bad {
			return "", errMalformedTLS
		}
		if typ != sniHostName {
			continue // other name types are undefined; servers ignore them
		}
		if name != "" {
			return "", errMalformedTLS
		}
		var ok bool
		if name, ok = normalizeName(string(v)); !ok {
			return "", errMalformedTLS
		}
	}
	if name == "" {
		return "", errNoSNI
	}
	return name, nil
}
