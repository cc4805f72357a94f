package journal

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

func TestFileRecordRoundTrip(t *testing.T) {
	for _, ev := range []event.File{
		{Header: event.Header{Time: time.Unix(1700000000, 123456789), PID: 4242}, Source: event.SourceEBPF, Op: event.FileRename,
			Path: "/ws/a b/ü.txt", NewPath: "/ws/b", Mode: 0o100644, Errno: 30, Detail: "user.x"},
		{Header: event.Header{Time: time.Date(2026, 12, 4, 1, 2, 3, 4, time.UTC), PID: 1<<32 - 1}, Source: event.SourceFSWatch, Op: event.FileDelete, Errno: -1},
		{Header: event.Header{Time: time.Unix(0, 1)}},
	} {
		b, ok := appendFile(nil, ev)
		if !ok || b[0] != recFile {
			t.Fatalf("%+v: not encoded in the file layout", ev)
		}
		got, err := decodeFile(b[1:])
		if err != nil || !reflect.DeepEqual(got, ev) {
			t.Errorf("round trip:\n got  %#v (%v)\n want %#v", got, err, ev)
		}
		for n := 1; n < len(b)-1; n++ {
			if _, err := decodeFile(b[1:n]); err == nil {
				t.Errorf("%+v cut at %d decodes", ev, n)
			}
		}
	}
	// What the layout cannot hold goes through gob.
	if _, ok := appendFile(nil, event.File{}); ok {
		t.Error("the zero time took the file layout")
	}
	if _, ok := appendFile(nil, event.File{Header: event.Header{Time: time.Unix(5, 0).In(time.FixedZone("X", 3600))}}); ok {
		t.Error("a fixed zone took the file layout")
	}
}

// FuzzDecodeFile: any body decodes or fails without panicking, and what
// decodes encodes back to the same bytes.
func FuzzDecodeFile(f *testing.F) {
	b, _ := appendFile(nil, event.File{Header: event.Header{Time: time.Unix(1, 2), PID: 3}, Op: event.FileWrite, Path: "/p"})
	f.Add(b[1:])
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := decodeFile(body)
		if err != nil {
			return
		}
		again, ok := appendFile(nil, ev)
		if !ok {
			t.Fatalf("decoded %+v does not encode", ev)
		}
		if !bytes.Equal(again[1:], body) {
			// Non-minimal varints decode too; re-decoding must agree.
			ev2, err := decodeFile(again[1:])
			if err != nil || !reflect.DeepEqual(ev, ev2) {
				t.Fatalf("re-encoding changed %+v to %+v (%v)", ev, ev2, err)
			}
		}
	})
}
