package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// Record is one journaled record: an event, or a supervisor meta record.
type Record struct {
	Offset int64       // of the record's frame in the file
	Event  event.Event // nil for a meta record
	Meta   *Meta
}

// Meta is a record the supervisor appended with AppendMeta (or the
// journal's own, e.g. MetaDropped).
type Meta struct {
	Time time.Time // when it was appended
	Kind string
	Data []byte
}

// ReplayStats says what Replay read and what it could not.
type ReplayStats struct {
	Events, Metas int
	// Unknown counts records this build cannot decode but that are
	// intact: event types or record kinds from a newer agentwatch.
	Unknown int
	// Undecodable counts intact records (CRC good) whose content did not
	// decode; they are skipped and reading goes on.
	Undecodable int
	// TruncatedTail: the journal ends in a torn record (crash or full
	// disk mid-write), which is ignored.
	TruncatedTail bool
	// Corrupt: a bad record with data after it; reading stopped there.
	Corrupt bool
	// SkippedBytes is the length of the torn tail or of everything from
	// the corrupt record on.
	SkippedBytes int64
	// ValidBytes is where reading stopped.
	ValidBytes int64
}

// Info is what a journal's file header says.
type Info struct {
	RunID   string
	PID     int       // the writer (supervisor) process
	Created time.Time // when the journal was created
	Header  []byte    // the caller's header given to Create
}

// Orphan is a journal whose writer is gone (the lock could be taken): a
// run that was never saved. It holds the lock until Close or Remove, so
// two agentwatch processes never recover the same run.
type Orphan struct {
	Path    string
	Info    Info
	ModTime time.Time // last write: about when the writer died
	Size    int64
	// Corrupt is set when the file header cannot be read; Info is then
	// zero except RunID (from the file name) and Replay fails.
	Corrupt error

	f         *os.File
	dataStart int64
}

// Pending lists the journals in dir whose writer is dead, oldest first. A
// journal being written (its lock held) is never listed. dir missing is
// not an error. Every Orphan must be closed (Close, or Remove once the
// run is saved).
func Pending(dir string) ([]*Orphan, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing journals: %w", err)
	}
	var out []*Orphan
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			if strings.HasSuffix(name, ".tmp") {
				removeStaleTemp(filepath.Join(dir, name))
			}
			continue
		}
		if !strings.HasSuffix(name, Suffix) || !e.Type().IsRegular() {
			continue
		}
		o, err := openOrphan(filepath.Join(dir, name))
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		if o != nil {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ModTime.Equal(out[j].ModTime) {
			return out[i].ModTime.Before(out[j].ModTime)
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}

// openOrphan locks path; nil, nil when it is live or gone.
func openOrphan(path string) (*Orphan, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening journal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil // live
		}
		return nil, fmt.Errorf("locking journal %s: %w", path, err)
	}
	// The writer may have removed it (run saved) between our open and
	// lock: only the file still at path counts.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	cur, err := os.Lstat(path)
	if err != nil || !os.SameFile(fi, cur) || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil
	}
	o := &Orphan{Path: path, ModTime: fi.ModTime(), Size: fi.Size(), f: f}
	o.Info, o.dataStart, o.Corrupt = readFileHeader(f, fi.Size())
	if o.Corrupt != nil {
		o.Info = Info{RunID: strings.TrimSuffix(filepath.Base(path), Suffix)}
		o.Corrupt = fmt.Errorf("journal %s: %w", path, o.Corrupt)
	}
	return o, nil
}

// removeStaleTemp removes a journal that a crash left under its temporary
// name (between create and link: it has no events).
func removeStaleTemp(path string) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return // being created
	}
	if fi, err := f.Stat(); err == nil && time.Since(fi.ModTime()) > time.Minute {
		os.Remove(path)
	}
}

// Replay reads the journal from the start and calls fn for each record in
// order; fn's error stops it and is returned. A torn tail or a corrupt
// record is not an error: it shows in the stats. Memory is bounded by the
// largest record.
func (o *Orphan) Replay(fn func(Record) error) (ReplayStats, error) {
	if o.Corrupt != nil {
		return ReplayStats{}, o.Corrupt
	}
	if o.f == nil {
		return ReplayStats{}, fmt.Errorf("journal %s: closed", o.Path)
	}
	st, err := replayRecords(o.f, o.dataStart, o.Size, fn)
	if err != nil {
		return st, fmt.Errorf("journal %s: %w", o.Path, err)
	}
	return st, nil
}

// Close releases the lock without removing the journal.
func (o *Orphan) Close() error {
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	return err
}

// Remove deletes the journal (its run is now saved), then releases it.
func (o *Orphan) Remove() error {
	err := os.Remove(o.Path)
	o.Close()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing journal: %w", err)
	}
	syncDir(filepath.Dir(o.Path))
	return nil
}

// MoveAside renames a journal that cannot be read to <path>.corrupt, so
// it stops being listed but is kept for inspection, and releases it.
func (o *Orphan) MoveAside() (string, error) {
	to := o.Path + ".corrupt"
	err := os.Rename(o.Path, to)
	o.Close()
	if err != nil {
		return "", fmt.Errorf("moving journal aside: %w", err)
	}
	return to, nil
}

// ReadFile replays the journal at path without locking it (for tools and
// tests; Pending is how a recovery finds journals).
func ReadFile(path string, fn func(Record) error) (Info, ReplayStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, ReplayStats{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Info{}, ReplayStats{}, err
	}
	info, st, err := Read(f, fi.Size(), fn)
	if err != nil {
		return info, st, fmt.Errorf("journal %s: %w", path, err)
	}
	return info, st, nil
}

// Read replays a journal of size bytes from r.
func Read(r io.ReaderAt, size int64, fn func(Record) error) (Info, ReplayStats, error) {
	info, start, err := readFileHeader(r, size)
	if err != nil {
		return Info{}, ReplayStats{}, err
	}
	st, err := replayRecords(r, start, size, fn)
	return info, st, err
}

var errBadHeader = errors.New("not a journal or its header is damaged")

func readFileHeader(r io.ReaderAt, size int64) (Info, int64, error) {
	const fixed = len(magic) + 2 + 2 + 4 + 8 + 2
	if size < int64(fixed) {
		return Info{}, 0, errBadHeader
	}
	b := make([]byte, fixed)
	if _, err := r.ReadAt(b, 0); err != nil {
		return Info{}, 0, err
	}
	if string(b[:len(magic)]) != magic {
		return Info{}, 0, errBadHeader
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != formatVersion {
		return Info{}, 0, fmt.Errorf("journal format version %d, this agentwatch reads %d", v, formatVersion)
	}
	pid := binary.LittleEndian.Uint32(b[12:])
	created := int64(binary.LittleEndian.Uint64(b[16:]))
	idLen := int(binary.LittleEndian.Uint16(b[24:]))
	if idLen == 0 || idLen > maxRunID || int64(fixed+idLen+4) > size {
		return Info{}, 0, errBadHeader
	}
	b = append(b, make([]byte, idLen+4)...)
	if _, err := r.ReadAt(b[fixed:], int64(fixed)); err != nil {
		return Info{}, 0, err
	}
	hLen := int64(binary.LittleEndian.Uint32(b[fixed+idLen:]))
	end := int64(fixed+idLen+4) + hLen + 4
	if hLen > maxHeader || end > size {
		return Info{}, 0, errBadHeader
	}
	n := len(b)
	b = append(b, make([]byte, hLen+4)...)
	if _, err := r.ReadAt(b[n:], int64(n)); err != nil {
		return Info{}, 0, err
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return Info{}, 0, errBadHeader
	}
	info := Info{
		RunID:   string(b[fixed : fixed+idLen]),
		PID:     int(pid),
		Created: time.Unix(0, created),
		Header:  append([]byte(nil), b[fixed+idLen+4:len(b)-4]...),
	}
	if validRunID(info.RunID) != nil {
		return Info{}, 0, errBadHeader
	}
	return info, end, nil
}

func replayRecords(r io.ReaderAt, start, size int64, fn func(Record) error) (ReplayStats, error) {
	var st ReplayStats
	br := bufio.NewReaderSize(io.NewSectionReader(r, start, size-start), 64<<10)
	dec := newDecoder()
	off := start
	var frame [frameLen]byte
	var body []byte
	// stop ends reading at off: a torn tail, or corruption. zeros: the
	// bytes read so far of the bad record were all zero, so the tail is
	// torn when the rest is zero too (what a crash leaves after allocated
	// but unwritten blocks).
	stop := func(torn, zeros bool) (ReplayStats, error) {
		st.ValidBytes, st.SkippedBytes = off, size-off
		if !torn && zeros {
			z, err := allZero(br)
			if err != nil {
				return st, err
			}
			torn = z
		}
		st.TruncatedTail, st.Corrupt = torn, !torn
		return st, nil
	}
	for off < size {
		rem := size - off
		if rem < frameLen {
			return stop(true, false)
		}
		if _, err := io.ReadFull(br, frame[:]); err != nil {
			return st, err
		}
		n := int64(binary.LittleEndian.Uint32(frame[:]))
		sum := binary.LittleEndian.Uint32(frame[4:])
		if n == 0 || n > MaxRecord {
			return stop(false, n == 0 && sum == 0)
		}
		if frameLen+n > rem {
			return stop(true, false)
		}
		if int64(cap(body)) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return st, err
		}
		if crc32.Checksum(body, castagnoli) != sum {
			return stop(off+frameLen+n == size, false) // torn when it is the last record
		}
		rec := Record{Offset: off}
		off += frameLen + n
		switch body[0] {
		case recPrelude:
			if err := dec.prelude(body[1:]); err != nil {
				// Without type descriptors no event can be read.
				st.Undecodable++
				off -= frameLen + n
				st.ValidBytes, st.SkippedBytes, st.Corrupt = off, size-off, true
				return st, nil
			}
			continue
		case recEvent:
			ev, err := dec.event(body[1:])
			switch {
			case errors.Is(err, errUnknownType):
				st.Unknown++
				continue
			case err != nil:
				st.Undecodable++
				continue
			}
			rec.Event = ev
			st.Events++
		case recFile:
			ev, err := decodeFile(body[1:])
			if err != nil {
				st.Undecodable++
				continue
			}
			rec.Event = ev
			st.Events++
		case recMeta:
			m, ok := decodeMeta(body[1:])
			if !ok {
				st.Undecodable++
				continue
			}
			rec.Meta = m
			st.Metas++
		default:
			st.Unknown++
			continue
		}
		if err := fn(rec); err != nil {
			st.ValidBytes = off
			return st, err
		}
	}
	st.ValidBytes = off
	return st, nil
}

func decodeMeta(b []byte) (*Meta, bool) {
	if len(b) < 8 {
		return nil, false
	}
	t := int64(binary.LittleEndian.Uint64(b))
	b = b[8:]
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) {
		return nil, false
	}
	m := &Meta{Time: time.Unix(0, t), Kind: string(b[k : k+int(l)])}
	if rest := b[k+int(l):]; len(rest) > 0 {
		m.Data = append([]byte(nil), rest...)
	}
	return m, true
}

func allZero(r io.Reader) (bool, error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}
