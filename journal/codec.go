package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/agentwatch/agentwatch/event"
)

// registered lists every concrete event type the journal can carry, as
// values. A type missing here is not journaled (the Writer counts it and
// Err says so); TestEveryEventTypeRegistered parses event/*.go and fails
// when an exported struct embedding event.Header is not in this list.
var registered = []event.Event{
	event.Fork{},
	event.Launched{},
	event.Exec{},
	event.Exit{},
	event.File{},
	event.Connect{},
	event.IOURing{},
	event.Dropped{},
	event.Gap{},
	event.DNSQuery{},
	event.NetDecision{},
	event.EnvFiltered{},
	event.ProtectedPath{},
	event.LLMCall{},
	event.AgentTelemetry{},
	event.OutputURL{},
}

var (
	typeIndex = map[reflect.Type]int{}    // concrete value type -> index in registered
	typeNames = make([]string, 0, 16)     // index -> Go type name, written to the prelude
	typeByNam = map[string]reflect.Type{} // Go type name -> value type, for readers
)

func init() {
	for i, ev := range registered {
		t := reflect.TypeOf(ev)
		if t.Kind() != reflect.Struct {
			panic(fmt.Sprintf("journal: registered event %T is not a struct value", ev))
		}
		if _, dup := typeByNam[t.Name()]; dup {
			panic("journal: event type registered twice: " + t.Name())
		}
		typeIndex[t] = i
		typeNames = append(typeNames, t.Name())
		typeByNam[t.Name()] = t
	}
}

// encoder is one journal's gob stream. The prelude (written at Create)
// carries a zero value of every registered type, so gob's type
// descriptors are all in it and every later event record is a single
// self-contained value message: a record can be dropped (buffer full,
// too large) without breaking the ones after it.
type encoder struct {
	buf bytes.Buffer
	enc *gob.Encoder
}

func newEncoder() (*encoder, []byte, error) {
	e := &encoder{}
	e.enc = gob.NewEncoder(&e.buf)
	body := []byte{recPrelude}
	body = binary.AppendUvarint(body, uint64(len(typeNames)))
	for _, n := range typeNames {
		body = binary.AppendUvarint(body, uint64(len(n)))
		body = append(body, n...)
	}
	for _, ev := range registered {
		if err := e.enc.Encode(ev); err != nil {
			return nil, nil, fmt.Errorf("encoding the %T prelude: %w", ev, err)
		}
	}
	body = append(body, e.buf.Bytes()...)
	e.buf.Reset()
	return e, body, nil
}

var errUnregistered = errors.New("event type not registered in the journal")

// encodeEvent appends the body of an event record to dst.
func (e *encoder) encodeEvent(dst []byte, ev event.Event) ([]byte, error) {
	if f, ok := ev.(event.File); ok {
		if out, ok := appendFile(dst, f); ok {
			return out, nil
		}
	}
	v := reflect.ValueOf(ev)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return dst, fmt.Errorf("nil %T", ev)
		}
		v = v.Elem()
	}
	idx, ok := typeIndex[v.Type()]
	if !ok {
		return dst, fmt.Errorf("%w: %T", errUnregistered, ev)
	}
	e.buf.Reset()
	if err := e.enc.EncodeValue(v); err != nil {
		return dst, fmt.Errorf("encoding %T: %w", ev, err)
	}
	dst = append(dst, recEvent)
	dst = binary.AppendUvarint(dst, uint64(idx))
	return append(dst, e.buf.Bytes()...), nil
}

// payload serves one record's gob bytes to the shared gob.Decoder. It is
// an io.ByteReader so gob reads exactly the messages it needs, never
// ahead into the next record.
type payload struct {
	b   []byte
	off int
}

func (p *payload) Read(b []byte) (int, error) {
	if p.off >= len(p.b) {
		return 0, io.EOF
	}
	n := copy(b, p.b[p.off:])
	p.off += n
	return n, nil
}

func (p *payload) ReadByte() (byte, error) {
	if p.off >= len(p.b) {
		return 0, io.EOF
	}
	c := p.b[p.off]
	p.off++
	return c, nil
}

func (p *payload) set(b []byte) { p.b, p.off = b, 0 }

// decoder is the reading side of one journal's gob stream.
type decoder struct {
	src   payload
	dec   *gob.Decoder
	types []reflect.Type // by the journal's index; nil: unknown to this build
	ready bool           // the prelude was read
}

func newDecoder() *decoder {
	d := &decoder{}
	d.dec = gob.NewDecoder(&d.src)
	return d
}

// prelude reads the type table and the gob type descriptors.
func (d *decoder) prelude(b []byte) error {
	if d.ready {
		return errors.New("second prelude record")
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return errors.New("bad type count")
	}
	b = b[k:]
	types := make([]reflect.Type, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return errors.New("bad type name")
		}
		types = append(types, typeByNam[string(b[k:k+int(l)])])
		b = b[k+int(l):]
	}
	d.src.set(b)
	for _, t := range types {
		var err error
		if t == nil {
			err = d.dec.DecodeValue(reflect.Value{}) // a type this build does not know: skip its zero value
		} else {
			err = d.dec.DecodeValue(reflect.New(t))
		}
		if err != nil {
			return fmt.Errorf("reading type descriptors: %w", err)
		}
	}
	d.types, d.ready = types, true
	return nil
}

var errUnknownType = errors.New("event type unknown to this build")

// event decodes the body of an event record (after its kind byte).
func (d *decoder) event(b []byte) (event.Event, error) {
	if !d.ready {
		return nil, errors.New("event record before the prelude")
	}
	idx, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad type index")
	}
	if idx >= uint64(len(d.types)) {
		return nil, fmt.Errorf("type index %d out of range", idx)
	}
	d.src.set(b[k:])
	t := d.types[idx]
	if t == nil {
		if err := d.dec.DecodeValue(reflect.Value{}); err != nil {
			return nil, err
		}
		return nil, errUnknownType
	}
	v := reflect.New(t)
	if err := d.dec.DecodeValue(v); err != nil {
		return nil, err
	}
	ev, ok := v.Elem().Interface().(event.Event)
	if !ok {
		return nil, fmt.Errorf("%s is not an event", t)
	}
	return ev, nil
}
