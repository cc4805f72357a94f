package journal

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// recFile is an event.File in a fixed binary layout instead of gob: file
// events are most of what a build journals, and gob's reflection was an
// eighth of the supervisor's CPU per file event (make bench). Layout, after
// the kind byte: time (int64 Unix ns, little endian), its location (0
// Local, 1 UTC), then uvarints PID, Source, Op, Mode, a varint Errno, and
// Path, NewPath, Detail as uvarint length + bytes. A File whose time is in
// another location, or outside what int64 nanoseconds hold, goes through
// gob, which keeps it.
const recFile = 'F'

// appendFile appends ev's record body to dst; ok is false when the layout
// cannot hold it.
func appendFile(dst []byte, ev event.File) ([]byte, bool) {
	var loc byte
	switch ev.Time.Location() {
	case time.Local:
	case time.UTC:
		loc = 1
	default:
		return dst, false
	}
	ns := ev.Time.UnixNano()
	if !time.Unix(0, ns).Equal(ev.Time) {
		return dst, false // outside int64 nanoseconds (the zero time)
	}
	dst = append(dst, recFile)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(ns))
	dst = append(dst, loc)
	dst = binary.AppendUvarint(dst, uint64(ev.PID))
	dst = binary.AppendUvarint(dst, uint64(ev.Source))
	dst = binary.AppendUvarint(dst, uint64(ev.Op))
	dst = binary.AppendUvarint(dst, uint64(ev.Mode))
	dst = binary.AppendVarint(dst, int64(ev.Errno))
	for _, s := range []string{ev.Path, ev.NewPath, ev.Detail} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst, true
}

var errBadFile = errors.New("malformed file record")

// decodeFile reads a recFile body (after the kind byte).
func decodeFile(b []byte) (event.File, error) {
	var ev event.File
	if len(b) < 9 {
		return ev, errBadFile
	}
	t := time.Unix(0, int64(binary.LittleEndian.Uint64(b)))
	switch b[8] {
	case 0:
	case 1:
		t = t.UTC()
	default:
		return ev, errBadFile
	}
	ev.Time = t
	b = b[9:]
	uv := func(limit uint64) uint64 {
		v, k := binary.Uvarint(b)
		if k <= 0 || v > limit {
			b = nil
			return 0
		}
		b = b[k:]
		return v
	}
	str := func() string {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			b = nil
			return ""
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s
	}
	ev.PID = uint32(uv(1<<32 - 1))
	ev.Source = event.Source(uv(255))
	ev.Op = event.FileOp(uv(255))
	ev.Mode = uint32(uv(1<<32 - 1))
	if b == nil {
		return ev, errBadFile
	}
	errno, k := binary.Varint(b)
	if k <= 0 || errno < -1<<31 || errno > 1<<31-1 {
		return ev, errBadFile
	}
	ev.Errno = int32(errno)
	b = b[k:]
	ev.Path = str()
	if b == nil {
		return ev, errBadFile
	}
	ev.NewPath = str()
	if b == nil {
		return ev, errBadFile
	}
	ev.Detail = str()
	if b == nil || len(b) != 0 {
		return ev, errBadFile
	}
	return ev, nil
}
