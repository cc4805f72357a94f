package journal

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// fill sets every field of v (a pointer) to a non-zero value derived from
// seed, so a round trip that loses or mixes up any field shows. A field
// kind it does not know fails the test: teach it here, and check the
// journal carries the new kind.
func fill(t testing.TB, v reflect.Value, seed int) {
	t.Helper()
	switch x := v.Addr().Interface().(type) {
	case *time.Time:
		*x = time.Unix(1_700_000_000+int64(seed), int64(123_456_789+seed))
		return
	case *netip.Addr:
		switch seed % 3 {
		case 0:
			*x = netip.AddrFrom4([4]byte{10, 0, byte(seed), 1})
		case 1:
			*x = netip.MustParseAddr(fmt.Sprintf("fe80::%x%%eth%d", seed+1, seed))
		default:
			*x = netip.MustParseAddr(fmt.Sprintf("::ffff:192.0.2.%d", seed%250+1)) // 4in6 stays 4in6
		}
		return
	case *netip.AddrPort:
		var a netip.Addr
		fill(t, reflect.ValueOf(&a).Elem(), seed)
		*x = netip.AddrPortFrom(a, uint16(1000+seed))
		return
	}
	switch v.Kind() {
	case reflect.String:
		// Not valid UTF-8, on purpose: paths and argv are bytes.
		v.SetString(fmt.Sprintf("s%d-\xff\xfe-%s", seed, v.Type().Name()))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(seed + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(seed + 1))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(seed) + 0.25)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(t, s.Index(i), seed*7+i+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMapWithSize(v.Type(), 2)
		for i := 0; i < 2; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, seed*7+i+1)
			fill(t, e, seed*11+i+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				t.Fatalf("fill: %s.%s is unexported", v.Type(), v.Type().Field(i).Name)
			}
			fill(t, v.Field(i), seed*31+i+1)
		}
	default:
		t.Fatalf("fill: %s of kind %s: not known to the round-trip test; teach fill and make sure the journal carries it", v.Type(), v.Kind())
	}
}

func populated(t testing.TB, typ reflect.Type, seed int) event.Event {
	v := reflect.New(typ).Elem()
	fill(t, v, seed)
	return v.Interface().(event.Event)
}

// eventTypesInSource lists the exported struct types in event/*.go that
// embed Header: what the journal must carry.
func eventTypesInSource(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("../event/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no event sources: %v", err)
	}
	var names []string
	for _, fn := range files {
		if strings.HasSuffix(fn, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, fn, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || !ts.Name.IsExported() {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, fld := range st.Fields.List {
				if id, ok := fld.Type.(*ast.Ident); ok && len(fld.Names) == 0 && id.Name == "Header" {
					names = append(names, ts.Name.Name)
				}
			}
			return true
		})
	}
	sort.Strings(names)
	return names
}

func TestEveryEventTypeRegistered(t *testing.T) {
	names := eventTypesInSource(t)
	if len(names) < 10 {
		t.Fatalf("found only %d event types in event/: %v (parser broken?)", len(names), names)
	}
	for _, n := range names {
		if _, ok := typeByNam[n]; !ok {
			t.Errorf("event.%s embeds event.Header but is not in journal.registered: add it (codec.go), or a crashed run loses these events", n)
		}
	}
	if len(registered) != len(names) {
		t.Errorf("registered %d types, event/ has %d: %v", len(registered), len(names), names)
	}
}

func writeAll(t *testing.T, dir, runID string, evs []event.Event, metas map[int]Meta) string {
	t.Helper()
	w, err := Create(dir, runID, []byte(`{"run":"`+runID+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if m, ok := metas[i]; ok {
			w.AppendMeta(m.Kind, m.Data)
		}
		w.Append(ev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Path()
}

func readAll(t *testing.T, path string) (Info, []Record, ReplayStats) {
	t.Helper()
	var recs []Record
	info, st, err := ReadFile(path, func(r Record) error { recs = append(recs, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return info, recs, st
}

func TestRoundTripEveryType(t *testing.T) {
	var evs []event.Event
	for seed, ev := range registered {
		typ := reflect.TypeOf(ev)
		evs = append(evs, populated(t, typ, seed), populated(t, typ, seed+100), reflect.Zero(typ).Interface().(event.Event))
	}
	// Realistic values beside the synthetic ones.
	now := time.Now().Round(0)
	evs = append(evs,
		event.Exec{Header: event.Header{Time: now, PID: 42}, PPID: 1, Filename: "/usr/bin/git", Argv: []string{"git", "commit", "-m", "x"}, Cwd: "/w"},
		event.Connect{Header: event.Header{Time: now.UTC(), PID: 43}, Source: event.SourceEBPF, Transport: event.Unix, UnixPath: "@abstract", PeerPID: 7},
		event.DNSQuery{Header: event.Header{Time: now}, Name: "example.com", Answers: []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")}, Verdict: event.Deny},
		event.LLMCall{Header: event.Header{Time: now}, Start: now, End: now.Add(time.Second), ToolCalls: []event.ToolCall{{ID: "a", Name: "Bash"}, {ID: "b", Name: "Edit", Arguments: `{"x":1}`}}},
		event.AgentTelemetry{Header: event.Header{Time: now}, Signal: "traces", Payload: bytes.Repeat([]byte{0, 1, 2, 255}, 1000)},
	)
	metas := map[int]Meta{0: {Kind: "pin", Data: []byte("/some/dir")}, 5: {Kind: "placeholder", Data: nil}, len(evs) - 1: {Kind: "end", Data: []byte{0, 1}}}
	// A pointer event decodes as the value.
	ptr := populated(t, reflect.TypeOf(event.File{}), 9).(event.File)
	evs = append(evs, &ptr)

	dir := t.TempDir()
	path := writeAll(t, dir, "run-1", evs, metas)
	info, recs, st := readAll(t, path)
	if info.RunID != "run-1" || string(info.Header) != `{"run":"run-1"}` || info.PID != os.Getpid() {
		t.Errorf("info = %+v", info)
	}
	if st.TruncatedTail || st.Corrupt || st.Unknown != 0 || st.Undecodable != 0 {
		t.Errorf("stats = %+v", st)
	}
	var got []event.Event
	var gotMeta []string
	for _, r := range recs {
		if r.Meta != nil {
			gotMeta = append(gotMeta, fmt.Sprintf("%d:%s:%q", len(got), r.Meta.Kind, r.Meta.Data))
			continue
		}
		got = append(got, r.Event)
	}
	wantMeta := []string{`0:pin:"/some/dir"`, `5:placeholder:""`, fmt.Sprintf(`%d:end:"\x00\x01"`, len(evs)-2)}
	if !reflect.DeepEqual(gotMeta, wantMeta) {
		t.Errorf("metas (at event index) = %v, want %v", gotMeta, wantMeta)
	}
	if len(got) != len(evs) {
		t.Fatalf("read %d events, wrote %d", len(got), len(evs))
	}
	evs[len(evs)-1] = ptr
	for i := range evs {
		if !reflect.DeepEqual(got[i], evs[i]) {
			t.Errorf("event %d (%T) did not round-trip:\n got  %#v\n want %#v", i, evs[i], got[i], evs[i])
		}
	}
}

// Every event record must decode with only the prelude before it: that is
// what makes dropping a record (buffer full, too large) safe.
func TestRecordsIndependentOfEachOther(t *testing.T) {
	var evs []event.Event
	for seed, ev := range registered {
		evs = append(evs, populated(t, reflect.TypeOf(ev), seed))
	}
	path := writeAll(t, t.TempDir(), "r", evs, nil)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, start, err := readFileHeader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	frames := splitFrames(data[start:])
	if len(frames) != len(evs)+1 {
		t.Fatalf("%d frames, want prelude + %d", len(frames), len(evs))
	}
	for i := range evs {
		// prelude + record i alone
		one := append(append([]byte(nil), data[:start]...), frames[0]...)
		one = append(one, frames[i+1]...)
		var got []event.Event
		_, st, err := Read(bytes.NewReader(one), int64(len(one)), func(r Record) error { got = append(got, r.Event); return nil })
		if err != nil || st.Undecodable != 0 || len(got) != 1 || !reflect.DeepEqual(got[0], evs[i]) {
			t.Errorf("%T alone after the prelude: got %v, stats %+v, err %v", evs[i], got, st, err)
		}
	}
}

// splitFrames cuts well-formed record bytes into frames.
func splitFrames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= frameLen {
		n := int(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
		if frameLen+n > len(b) {
			break
		}
		out = append(out, b[:frameLen+n])
		b = b[frameLen+n:]
	}
	return out
}

func seqEvents(n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.File{Header: event.Header{Time: time.Unix(1_700_000_000, int64(i)), PID: uint32(i)}, Op: event.FileWrite, Path: fmt.Sprintf("/w/f%05d", i)}
	}
	return evs
}

func TestTornTailIsIgnored(t *testing.T) {
	const n = 200
	path := writeAll(t, t.TempDir(), "torn", seqEvents(n), nil)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, start, _ := readFileHeader(bytes.NewReader(data), int64(len(data)))
	frames := splitFrames(data[start:])
	last := len(frames[len(frames)-1])
	for cut := 1; cut < last; cut += 2 {
		d := data[:len(data)-cut]
		var pids []uint32
		_, st, err := Read(bytes.NewReader(d), int64(len(d)), func(r Record) error {
			pids = append(pids, r.Event.Process())
			return nil
		})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if !st.TruncatedTail || st.Corrupt || st.SkippedBytes <= 0 || st.ValidBytes+st.SkippedBytes != int64(len(d)) {
			t.Errorf("cut %d: stats %+v", cut, st)
		}
		if len(pids) != n-1 { // every cut here falls in the last record
			t.Errorf("cut %d: %d events, want %d", cut, len(pids), n-1)
		}
		for i, p := range pids {
			if p != uint32(i) {
				t.Fatalf("cut %d: event %d has pid %d", cut, i, p)
			}
		}
	}
	// A crash can leave zeros after the last record: torn, not corrupt.
	d := append(append([]byte(nil), data...), make([]byte, 4096)...)
	_, st, err := Read(bytes.NewReader(d), int64(len(d)), func(Record) error { return nil })
	if err != nil || !st.TruncatedTail || st.Corrupt || st.Events != n || st.SkippedBytes != 4096 {
		t.Errorf("zero tail: stats %+v, err %v", st, err)
	}
	// Garbage in the last record's body, length intact: torn too.
	d = append([]byte(nil), data...)
	d[len(d)-2] ^= 0xff
	_, st, _ = Read(bytes.NewReader(d), int64(len(d)), func(Record) error { return nil })
	if !st.TruncatedTail || st.Events != n-1 {
		t.Errorf("garbled last record: stats %+v", st)
	}
}

func TestCorruptMiddleStopsAndReportsSkipped(t *testing.T) {
	const n = 200
	path := writeAll(t, t.TempDir(), "mid", seqEvents(n), nil)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, start, _ := readFileHeader(bytes.NewReader(data), int64(len(data)))
	frames := splitFrames(data[start:])
	// Corrupt one byte inside event record 100 (frame 101: after the prelude).
	off := int(start)
	for _, f := range frames[:101] {
		off += len(f)
	}
	d := append([]byte(nil), data...)
	d[off+frameLen+3] ^= 0x55
	var got int
	_, st, err := Read(bytes.NewReader(d), int64(len(d)), func(Record) error { got++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !st.Corrupt || st.TruncatedTail || got != 100 || st.ValidBytes != int64(off) || st.SkippedBytes != int64(len(d)-off) {
		t.Errorf("got %d events, stats %+v; want 100 events, corrupt at %d, %d bytes skipped", got, st, off, len(d)-off)
	}
	// A damaged file header: an error naming the problem, no events.
	d = append([]byte(nil), data...)
	d[30] ^= 1
	if _, _, err := Read(bytes.NewReader(d), int64(len(d)), func(Record) error { return nil }); !errors.Is(err, errBadHeader) {
		t.Errorf("damaged header: err = %v", err)
	}
}

func TestPendingListsOnlyDeadJournals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	live, err := Create(dir, "live", []byte("L"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()
	dead, err := Create(dir, "dead", []byte("D"))
	if err != nil {
		t.Fatal(err)
	}
	dead.Append(event.Gap{Sensor: "ebpf", Reason: "x"})
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	saved, err := Create(dir, "saved", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := saved.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, "dead", nil); err == nil {
		t.Error("Create over an existing journal succeeded")
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if _, err := Create(dir, bad, nil); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(live.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, %v", fi.Mode(), err)
	}

	ps, err := Pending(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Info.RunID != "dead" || string(ps[0].Info.Header) != "D" || ps[0].Info.PID != os.Getpid() {
		t.Fatalf("Pending = %+v, want only the dead journal", ps)
	}
	// While one recoverer holds it, another does not see it.
	if again, err := Pending(dir); err != nil || len(again) != 0 {
		t.Errorf("second Pending while the first holds the journal: %v %v", again, err)
	}
	st, err := ps[0].Replay(func(r Record) error {
		if g, ok := r.Event.(event.Gap); !ok || g.Reason != "x" {
			t.Errorf("record %+v", r)
		}
		return nil
	})
	if err != nil || st.Events != 1 {
		t.Errorf("Replay: %+v %v", st, err)
	}
	if err := ps[0].Remove(); err != nil {
		t.Fatal(err)
	}
	if ps, _ := Pending(dir); len(ps) != 0 {
		t.Errorf("after Remove: %v", ps)
	}
	if ps, err := Pending(filepath.Join(dir, "missing")); err != nil || ps != nil {
		t.Errorf("missing dir: %v %v", ps, err)
	}
}

func TestSyncMakesRecordsDurableAndErrStaysNil(t *testing.T) {
	w, err := CreateWith(t.TempDir(), "s", nil, Options{SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Remove()
	for _, ev := range seqEvents(10) {
		w.Append(ev)
	}
	w.AppendMeta("end", []byte("0"))
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	_, st, err := ReadFile(w.Path(), func(Record) error { return nil })
	if err != nil || st.Events != 10 || st.Metas != 1 {
		t.Errorf("after Sync: %+v %v", st, err)
	}
	if s := w.Stats(); s.Records != 11 || s.Dropped != 0 || s.Buffered != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestUnregisteredTypeIsCountedNotJournaled(t *testing.T) {
	w, err := Create(t.TempDir(), "u", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Remove()
	w.Append(notRegistered{})
	w.Append(event.Exit{Code: 3})
	if err := w.Sync(); err == nil || !strings.Contains(err.Error(), "not registered") || !strings.Contains(err.Error(), w.Path()) {
		t.Errorf("Err = %v", err)
	}
	var got []Record
	ReadFile(w.Path(), func(r Record) error { got = append(got, r); return nil })
	if len(got) != 2 || got[0].Meta == nil || got[0].Meta.Kind != MetaDropped || string(got[0].Meta.Data) != "1" || got[1].Event.(event.Exit).Code != 3 {
		t.Errorf("records %+v", got)
	}
}

type notRegistered struct{ event.Header }
