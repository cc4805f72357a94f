package netwatch

// What the DNS proxy forwards is built by the proxy, never copied from the
// child: the child is an adversary, and every byte of its message that
// reached the upstream would be a channel out of the run (extra records,
// EDNS options, bytes after the message, the id, the letter case of the
// name, header bits nobody sets). parseQuery accepts exactly one shape —
// header, one question, at most one option-less OPT record, nothing after —
// and forwardMessage writes that shape afresh. Everything else is refused
// with a reason the trace keeps.
//
// The parser is hand-written rather than dnsmessage's because dnsmessage
// accepts what must be refused here: it ignores trailing bytes, drops the
// header's Z bit, follows compression pointers and lets a label contain a
// dot ("x.allowed" + "test" reads as x.allowed.test, which a wildcard rule
// for *.allowed.test would allow, while the upstream resolves a name under
// test.).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	// maxQueryLen bounds a query. One question (at most 255 bytes of name)
	// and one OPT record with a DNS cookie fit in well under 512 bytes.
	maxQueryLen = 512

	optCookie = 10 // EDNS option code of a DNS cookie (RFC 7873)
	typeOPT   = 41
)

// A query as the proxy understood it: all it will forward.
type parsedQuery struct {
	id       uint16 // the client's id, restored in the answer it gets
	flags    uint16 // the client's header flags (echoed in a refusal)
	rd       bool
	question dnsmessage.Question // its name lower-cased
	wire     []byte              // the question name in wire form, as the client cased it
	name     string              // lower-case, without the trailing dot
	edns     bool
	udpSize  uint16 // quantized (see ednsSize)
	do       bool
}

// queryError is why a message is not forwarded.
type queryError struct {
	why   string
	rcode dnsmessage.RCode
	// header: the message had a full header, so a refusal can carry its
	// id; question: the question parsed (it is echoed and recorded).
	header, question bool
}

func (e *queryError) Error() string { return e.why }

// parseQuery checks a client's message. On error, pq holds what was parsed
// before the problem (id and flags with e.header, the question with
// e.question).
func parseQuery(msg []byte) (pq parsedQuery, e *queryError) {
	bad := func(rcode dnsmessage.RCode, format string, args ...any) (parsedQuery, *queryError) {
		return pq, &queryError{why: fmt.Sprintf(format, args...), rcode: rcode, header: true, question: pq.wire != nil}
	}
	formerr := dnsmessage.RCodeFormatError
	if len(msg) < 12 {
		return pq, &queryError{why: fmt.Sprintf("short header (%d bytes)", len(msg)), rcode: formerr}
	}
	pq.id = binary.BigEndian.Uint16(msg)
	pq.flags = binary.BigEndian.Uint16(msg[2:])
	pq.rd = pq.flags&0x0100 != 0
	if len(msg) > maxQueryLen {
		return bad(formerr, "over-long message (%d bytes)", len(msg))
	}
	f := pq.flags
	switch {
	case f&0x8000 != 0:
		return bad(formerr, "QR bit set (a response, not a query)")
	case (f>>11)&0xf != 0:
		return bad(dnsmessage.RCodeRefused, "opcode %d (only QUERY is forwarded)", (f>>11)&0xf)
	case f&0x0400 != 0:
		return bad(formerr, "AA bit set in a query")
	case f&0x0200 != 0:
		return bad(formerr, "TC bit set in a query")
	case f&0x0080 != 0:
		return bad(formerr, "RA bit set in a query")
	case f&0x0040 != 0:
		return bad(formerr, "reserved Z bit set")
	case f&0x000f != 0:
		return bad(formerr, "rcode %d in a query", f&0xf)
	}
	// AD and CD (0x0020, 0x0010) are what real clients set (dig sets AD):
	// accepted, and not forwarded.
	qd, an := binary.BigEndian.Uint16(msg[4:]), binary.BigEndian.Uint16(msg[6:])
	ns, ar := binary.BigEndian.Uint16(msg[8:]), binary.BigEndian.Uint16(msg[10:])
	switch {
	case qd != 1:
		return bad(formerr, "%d questions (exactly one is forwarded)", qd)
	case an != 0:
		return bad(formerr, "%d answer records in a query", an)
	case ns != 0:
		return bad(formerr, "%d authority records in a query", ns)
	case ar > 1:
		return bad(formerr, "%d additional records (at most one OPT)", ar)
	}

	off := 12
	wire, name, why := parseName(msg, off)
	if why != "" {
		return bad(formerr, "%s", why)
	}
	off += len(wire)
	if len(msg)-off < 4 {
		return bad(formerr, "question cut short")
	}
	qtype := dnsmessage.Type(binary.BigEndian.Uint16(msg[off:]))
	qclass := dnsmessage.Class(binary.BigEndian.Uint16(msg[off+2:]))
	off += 4
	nm, err := dnsmessage.NewName(name + ".")
	if name == "" {
		nm, err = dnsmessage.NewName(".")
	}
	if err != nil {
		return bad(formerr, "name: %v", err)
	}
	pq.wire, pq.name = wire, name
	pq.question = dnsmessage.Question{Name: nm, Type: qtype, Class: qclass}
	if qclass != dnsmessage.ClassINET {
		return bad(dnsmessage.RCodeRefused, "class %d (only IN is forwarded)", qclass)
	}
	switch qtype {
	case typeOPT, 249, 250, 251, 252: // OPT, TKEY, TSIG, IXFR, AXFR: not a lookup
		return bad(dnsmessage.RCodeRefused, "query type %d", qtype)
	}

	if ar == 1 {
		// The only additional record accepted: OPT, owner the root.
		if len(msg)-off < 11 {
			return bad(formerr, "additional record cut short")
		}
		if msg[off] != 0 {
			return bad(formerr, "additional record that is not OPT (owner not the root)")
		}
		if t := binary.BigEndian.Uint16(msg[off+1:]); t != typeOPT {
			return bad(formerr, "additional record of type %d (only OPT)", t)
		}
		size := binary.BigEndian.Uint16(msg[off+3:])
		extRcode, version := msg[off+5], msg[off+6]
		eflags := binary.BigEndian.Uint16(msg[off+7:])
		rdlen := int(binary.BigEndian.Uint16(msg[off+9:]))
		off += 11
		switch {
		case extRcode != 0:
			return bad(formerr, "EDNS extended rcode %d in a query", extRcode)
		case version != 0:
			return bad(formerr, "EDNS version %d", version)
		case eflags&0x7fff != 0:
			return bad(formerr, "EDNS reserved flags %#x", eflags&0x7fff)
		case rdlen > len(msg)-off:
			return bad(formerr, "OPT data cut short")
		}
		if why := checkOptions(msg[off : off+rdlen]); why != "" {
			return bad(formerr, "%s", why)
		}
		off += rdlen
		pq.edns, pq.udpSize, pq.do = true, ednsSize(size), eflags&0x8000 != 0
	}
	if off != len(msg) {
		return bad(formerr, "trailing bytes (%d after the message)", len(msg)-off)
	}
	return pq, nil
}

// parseName reads an uncompressed name at off: its wire bytes and its
// lower-case text. Only letters, digits, '-' and '_' (SRV, DKIM labels) are
// accepted in a label: anything else — a dot, a NUL, a space, binary — is
// either a parser confusion or data, never a host name.
func parseName(msg []byte, off int) (wire []byte, name string, why string) {
	start := off
	var sb strings.Builder
	for {
		if off >= len(msg) {
			return nil, "", "name cut short"
		}
		l := int(msg[off])
		switch {
		case l&0xc0 == 0xc0:
			// Nothing precedes the question to point at.
			return nil, "", "compression pointer in the question"
		case l&0xc0 != 0:
			return nil, "", fmt.Sprintf("label type %#x", l&0xc0)
		}
		off++
		if l == 0 {
			break
		}
		if off+l > len(msg) {
			return nil, "", "label cut short"
		}
		if off+l-start+1 > 255 {
			return nil, "", "name longer than 255 bytes"
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		for _, c := range msg[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
				sb.WriteByte(c)
			case c >= 'A' && c <= 'Z':
				sb.WriteByte(c + 'a' - 'A')
			default:
				return nil, "", fmt.Sprintf("byte %#02x in a label", c)
			}
		}
		off += l
	}
	return msg[start:off], sb.String(), ""
}

// checkOptions accepts no EDNS option but one: a DNS cookie, which dig
// sends by default. It is checked for its RFC 7873 shape and dropped (never
// forwarded); every other option is refused.
func checkOptions(b []byte) string {
	cookie := false
	for len(b) > 0 {
		if len(b) < 4 {
			return "EDNS option cut short"
		}
		code, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if l > len(b)-4 {
			return "EDNS option cut short"
		}
		// A client cookie (8 bytes), alone or with a server cookie (8 to 32).
		if code != optCookie || cookie || !(l == 8 || (l >= 16 && l <= 40)) {
			return fmt.Sprintf("EDNS option %d (%d bytes)", code, l)
		}
		cookie = true
		b = b[4+l:]
	}
	return ""
}

// ednsSize rounds a client's advertised UDP payload size down to one of
// three values: the upstream never sends more than the client takes, and
// the 16 bits the client chose carry at most two to the upstream.
func ednsSize(s uint16) uint16 {
	switch {
	case s >= 4096:
		return 4096
	case s >= 1232:
		return 1232
	}
	return 512
}

// forwardMessage is the query sent upstream in the client's stead: id,
// RD as asked, the question in lower case, the OPT record (payload size
// and DO bit only) when the client had one.
func (pq parsedQuery) forwardMessage(id uint16) []byte {
	b := make([]byte, 12, 12+len(pq.wire)+4+11)
	binary.BigEndian.PutUint16(b, id)
	if pq.rd {
		b[2] = 0x01
	}
	b[5] = 1 // QDCOUNT
	if pq.edns {
		b[11] = 1 // ARCOUNT
	}
	b = append(b, bytes.ToLower(pq.wire)...)
	b = binary.BigEndian.AppendUint16(b, uint16(pq.question.Type))
	b = binary.BigEndian.AppendUint16(b, uint16(pq.question.Class))
	if pq.edns {
		b = append(b, 0) // owner: the root
		b = binary.BigEndian.AppendUint16(b, typeOPT)
		b = binary.BigEndian.AppendUint16(b, pq.udpSize)
		var ttl uint32
		if pq.do {
			ttl = 0x8000
		}
		b = binary.BigEndian.AppendUint32(b, ttl)
		b = binary.BigEndian.AppendUint16(b, 0) // no options
	}
	return b
}

// checkResponse reports why resp is not the upstream's answer to the
// forwarded query with id ("": it is). A response that fails is dropped:
// whatever else reached the proxy's upstream socket is not the answer the
// client is owed.
func (pq parsedQuery) checkResponse(resp []byte, id uint16) string {
	if len(resp) < 12 {
		return "short response"
	}
	f := binary.BigEndian.Uint16(resp[2:])
	switch {
	case binary.BigEndian.Uint16(resp) != id:
		return "another id"
	case f&0x8000 == 0:
		return "not a response"
	case (f>>11)&0xf != 0:
		return "another opcode"
	case binary.BigEndian.Uint16(resp[4:]) != 1:
		return "not one question"
	}
	// The question is the first name of the message, so it cannot be
	// compressed; an upstream may echo it in another case (0x20).
	end := 12 + len(pq.wire) + 4
	if len(resp) < end || !bytes.EqualFold(resp[12:12+len(pq.wire)], pq.wire) {
		return "another question"
	}
	if binary.BigEndian.Uint16(resp[end-4:]) != uint16(pq.question.Type) ||
		binary.BigEndian.Uint16(resp[end-2:]) != uint16(pq.question.Class) {
		return "another question"
	}
	return ""
}

// restore makes a checked upstream response the client's answer: its own
// id back, and its question name as it cased it (resolvers compare it; the
// lengths are equal, so names compressed against it stay valid).
func (pq parsedQuery) restore(resp []byte) []byte {
	out := bytes.Clone(resp)
	binary.BigEndian.PutUint16(out, pq.id)
	copy(out[12:], pq.wire)
	return out
}

// refusal is the response to a query that is not forwarded: the client's
// id and opcode, its question when it parsed, no records.
func refusal(pq parsedQuery, withQuestion bool, rcode dnsmessage.RCode) []byte {
	h := dnsmessage.Header{
		ID:                 pq.id,
		Response:           true,
		OpCode:             dnsmessage.OpCode((pq.flags >> 11) & 0xf),
		RecursionDesired:   pq.rd,
		RecursionAvailable: true,
		RCode:              rcode,
	}
	b := dnsmessage.NewBuilder(nil, h)
	if withQuestion {
		_ = b.StartQuestions()
		_ = b.Question(pq.question)
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	if withQuestion {
		copy(out[12:], pq.wire) // the client's case, as in an answer
	}
	return out
}
