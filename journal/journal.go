// Package journal is the run journal: an append-only file per running run
// that holds every event the supervisor fed the recorder, so that a run
// whose supervisor died (SIGKILL, OOM, panic) or could not be saved (full
// disk, corrupt store) is not lost. The next agentwatch command finds it
// with Pending, replays it into a recorder and saves it as interrupted.
//
// File format (all integers little-endian):
//
//	header  "AWJOURNL" | version u16 | reserved u16 | pid u32 | created unix-ns i64 |
//	        runID len u16 | runID | header len u32 | header | crc32c u32 (of all before)
//	records len u32 | crc32c(body) u32 | body[len]
//	body    'T' prelude: type names and gob type descriptors (always the first record)
//	        'E' event:   uvarint type index | one gob value message
//	        'M' meta:    unix-ns i64 | uvarint kind len | kind | data
//
// A record whose frame runs past the end of the file, or whose CRC fails
// on the last record, is a torn tail (crash or full disk mid-write) and is
// ignored. A bad record followed by more data is corruption: reading stops
// there and reports how many bytes were skipped.
//
// Liveness: the writer holds an exclusive flock on the file for its whole
// life (the descriptor is close-on-exec, so the child never inherits it).
// The kernel drops the lock when the supervisor dies, however it dies, so a
// journal whose lock can be taken has no writer. The file is created under
// a temporary name, locked, then linked into place, so no reader ever sees
// an unlocked journal of a live run.
//
// Encoding: encoding/gob, one stream per journal, with a zero value of
// every registered event type in the prelude so that each event record is
// one self-contained value message. Strings are kept as raw bytes (paths
// need not be UTF-8), times keep their instant and zone (not the monotonic
// reading), netip values their zone. One deviation: gob does not transmit
// empty values, so an empty non-nil slice reads back as nil.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"golang.org/x/sys/unix"
)

// Suffix ends every journal file's name: <runID>.journal.
const Suffix = ".journal"

const (
	magic          = "AWJOURNL"
	formatVersion  = 1
	frameLen       = 8
	maxRunID       = 200
	maxHeader      = 16 << 20
	MaxRecord      = 64 << 20 // largest record body; larger events are dropped and counted
	defaultReserve = 16 << 20
	minReserve     = 1 << 20
	recPrelude     = 'T'
	recEvent       = 'E'
	recMeta        = 'M'
	defaultSync    = 200 * time.Millisecond
	defaultBytes   = 256 << 10
	defaultBuffers = 64 << 20
)

// Meta kinds the journal writes itself.
const (
	// MetaDropped: Data is the decimal count of events the writer dropped
	// (buffer full while writes failed, or an event too large) before
	// this record.
	MetaDropped = "journal.dropped"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBufferFull = errors.New("buffer full while the journal could not be written")

// Options tune a Writer; zero fields take the defaults.
type Options struct {
	// SyncInterval bounds how long an appended record waits before it is
	// written and fdatasync'd (default 200ms): what a crash can lose.
	SyncInterval time.Duration
	// SyncBytes starts a write and sync early once this much is buffered
	// (default 256 KiB).
	SyncBytes int
	// MaxBuffered bounds the memory held for records not yet written
	// (default 64 MiB). Past it, while writes fail, events are dropped
	// and counted (a MetaDropped record follows when writing resumes);
	// Append never blocks.
	MaxBuffered int
	// Reserve is the disk space allocated for the journal when it is
	// created (fallocate, FALLOC_FL_KEEP_SIZE; default 16 MiB, halved
	// down to 1 MiB when the disk has less): writes into it succeed even
	// after the disk fills, so a full disk does not cost the run its
	// journal. Negative: none.
	Reserve int64
}

// Writer appends one run's events to its journal. Append and AppendMeta
// are safe for concurrent use.
type Writer struct {
	path     string
	reserved int64 // bytes allocated ahead (Options.Reserve)
	f        *os.File
	opt      Options

	mu       sync.Mutex
	enc      *encoder
	pending  []byte // framed records not yet taken by the flusher
	inflight int    // bytes the flusher holds unwritten
	records  uint64 // records accepted
	dropped  uint64 // events dropped, total
	unnoted  uint64 // dropped since the last MetaDropped record
	writeErr error  // outstanding write/sync failure, nil once caught up
	dropErr  error  // why the first event was dropped
	closed   bool

	kick    chan struct{}
	syncReq chan chan error
	stop    chan struct{}
	done    chan struct{}
}

// Stats is a snapshot of a Writer's counters.
type Stats struct {
	Records  uint64 // records accepted (events and metas)
	Dropped  uint64 // events not journaled
	Buffered int    // bytes in memory not yet written
	Written  int64  // bytes in the file
}

// Create starts the journal of run runID in dir: dir/<runID>.journal, with
// header (opaque to the journal: what the caller needs to rebuild the
// run) and the calling process's pid. dir is created 0700, the file 0600.
// It fails when a journal for runID already exists.
func Create(dir, runID string, header []byte) (*Writer, error) {
	return CreateWith(dir, runID, header, Options{})
}

// CreateWith is Create with options.
func CreateWith(dir, runID string, header []byte, o Options) (*Writer, error) {
	if err := validRunID(runID); err != nil {
		return nil, err
	}
	if len(header) > maxHeader {
		return nil, fmt.Errorf("journal header for run %s: %d bytes, more than %d", runID, len(header), maxHeader)
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = defaultSync
	}
	if o.SyncBytes <= 0 {
		o.SyncBytes = defaultBytes
	}
	if o.MaxBuffered <= 0 {
		o.MaxBuffered = defaultBuffers
	}
	if err := privateDir(dir); err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	path := filepath.Join(dir, runID+Suffix)
	enc, prelude, err := newEncoder()
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+runID+".*.tmp") // 0600, O_EXCL, close-on-exec
	if err != nil {
		return nil, fmt.Errorf("creating journal %s: %w", path, err)
	}
	fail := func(err error) (*Writer, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("creating journal %s: %w", path, err)
	}
	if err := syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fail(fmt.Errorf("locking: %w", err))
	}
	b := encodeFileHeader(os.Getpid(), time.Now(), runID, header)
	b = appendRecord(b, prelude)
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	reserved := reserve(tmp, int64(len(b)), o.Reserve)
	if err := syscall.Fdatasync(int(tmp.Fd())); err != nil {
		return fail(fmt.Errorf("syncing: %w", err))
	}
	if err := os.Link(tmp.Name(), path); err != nil { // fails when path exists: O_EXCL for the final name
		return fail(err)
	}
	os.Remove(tmp.Name())
	syncDir(dir)
	w := &Writer{
		path:     path,
		reserved: reserved,
		f:        tmp,
		opt:      o,
		enc:      enc,
		kick:     make(chan struct{}, 1),
		syncReq:  make(chan chan error),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go w.loop()
	return w, nil
}

// reserve allocates up to want bytes past the header (from), keeping the
// file's size: the blocks are the journal's whatever else fills the disk.
// It returns what it got; 0 when the filesystem cannot (the journal then
// works as before, writing into whatever space there is).
func reserve(f *os.File, from, want int64) int64 {
	if want < 0 {
		return 0
	}
	if want == 0 {
		want = defaultReserve
	}
	for n := want; n >= minReserve; n /= 2 {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, from, n)
		if err == nil {
			return n
		}
		if !errors.Is(err, syscall.ENOSPC) {
			return 0 // EOPNOTSUPP and the like: no smaller size helps
		}
	}
	return 0
}

// Reserved is the disk space allocated ahead for the journal.
func (w *Writer) Reserved() int64 { return w.reserved }

// Path is the journal file.
func (w *Writer) Path() string { return w.path }

// Append journals an event. It never blocks on I/O and never fails: a
// problem (unregistered type, write failure, buffer full) shows in Err and
// Stats.
func (w *Writer) Append(ev event.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || !w.room(0) {
		w.drop(nil)
		return
	}
	w.noteDropped()
	start := len(w.pending)
	w.pending = append(w.pending, make([]byte, frameLen)...)
	var err error
	w.pending, err = w.enc.encodeEvent(w.pending, ev)
	if err == nil && len(w.pending)-start-frameLen > MaxRecord {
		err = fmt.Errorf("%T of %d bytes is larger than the journal's record limit", ev, len(w.pending)-start-frameLen)
	}
	if err == nil && !w.room(0) {
		err = errBufferFull
	}
	if err != nil {
		// Dropping an encoded record is safe: the prelude holds every
		// type descriptor, so no later record depends on this one.
		w.pending = w.pending[:start]
		w.drop(err)
		return
	}
	w.frame(start)
}

// AppendMeta journals a supervisor record that is not an event (kind says
// what it is, e.g. "end", "placeholder"); Replay yields it in order with
// the events.
func (w *Writer) AppendMeta(kind string, data []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || frameLen+1+8+10+len(kind)+len(data) > MaxRecord || !w.room(len(kind)+len(data)) {
		w.drop(fmt.Errorf("meta record %q not journaled", kind))
		return
	}
	w.noteDropped()
	w.appendMetaLocked(kind, data)
}

func (w *Writer) appendMetaLocked(kind string, data []byte) {
	start := len(w.pending)
	w.pending = append(w.pending, make([]byte, frameLen)...)
	w.pending = append(w.pending, recMeta)
	w.pending = binary.LittleEndian.AppendUint64(w.pending, uint64(time.Now().UnixNano()))
	w.pending = binary.AppendUvarint(w.pending, uint64(len(kind)))
	w.pending = append(w.pending, kind...)
	w.pending = append(w.pending, data...)
	w.frame(start)
}

// room reports whether about n more bytes fit under MaxBuffered.
func (w *Writer) room(n int) bool {
	return len(w.pending)+w.inflight+n <= w.opt.MaxBuffered
}

func (w *Writer) drop(why error) {
	w.dropped++
	w.unnoted++
	if w.dropErr == nil {
		switch {
		case why != nil:
		case w.closed:
			why = errors.New("appended after Close")
		default:
			why = errBufferFull
		}
		if why == errBufferFull && w.writeErr != nil {
			why = fmt.Errorf("%w: %w", why, w.writeErr)
		}
		w.dropErr = why
	}
}

// noteDropped writes the MetaDropped record owed, before the next record.
func (w *Writer) noteDropped() {
	if w.unnoted == 0 {
		return
	}
	n := w.unnoted
	w.unnoted = 0
	w.appendMetaLocked(MetaDropped, []byte(fmt.Sprint(n)))
}

// frame fills in the frame of the record body that starts at
// pending[start+frameLen:].
func (w *Writer) frame(start int) {
	body := w.pending[start+frameLen:]
	binary.LittleEndian.PutUint32(w.pending[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(w.pending[start+4:], crc32.Checksum(body, castagnoli))
	w.records++
	if len(w.pending) >= w.opt.SyncBytes {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// Err is nil while the journal is keeping up. Otherwise it is one line
// naming the file: the outstanding write failure (the records are kept in
// memory and retried), or, once events were dropped, why.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errLocked()
}

func (w *Writer) errLocked() error {
	if w.writeErr != nil {
		return fmt.Errorf("journal %s: %d bytes kept in memory, retrying: %w", w.path, len(w.pending)+w.inflight, w.writeErr)
	}
	if w.dropped > 0 {
		return fmt.Errorf("journal %s: %d events not journaled: %w", w.path, w.dropped, w.dropErr)
	}
	return nil
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	var written int64
	if fi, err := w.f.Stat(); err == nil {
		written = fi.Size()
	}
	return Stats{Records: w.records, Dropped: w.dropped, Buffered: len(w.pending) + w.inflight, Written: written}
}

// Sync writes and fdatasyncs everything appended so far, and returns Err.
// It waits for the disk; the hot path never needs it (the background
// flusher syncs every SyncInterval). Use it after a record that must be
// durable before the next step (e.g. the "end" meta before saving).
func (w *Writer) Sync() error {
	reply := make(chan error, 1)
	select {
	case w.syncReq <- reply:
		return <-reply
	case <-w.done:
		return w.Err()
	}
}

// Close writes and syncs what is buffered, stops the flusher and closes
// the file, which releases the lock: from then on Pending lists the
// journal. Call Remove instead once the run is saved.
func (w *Writer) Close() error {
	if !w.shutdown() {
		return nil
	}
	w.mu.Lock()
	err := w.errLocked()
	if w.writeErr != nil {
		err = fmt.Errorf("journal %s: %d bytes could not be written before close: %w", w.path, len(w.pending)+w.inflight, w.writeErr)
	}
	w.mu.Unlock()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing journal %s: %w", w.path, cerr)
	}
	return err
}

// Remove deletes the journal (the run is saved). The file is unlinked
// while the lock is still held, so no reader can take it for a dead run's
// in between.
func (w *Writer) Remove() error {
	open := w.shutdown()
	err := os.Remove(w.path)
	if err != nil && errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if open {
		w.f.Close()
	}
	if err != nil {
		return fmt.Errorf("removing journal: %w", err)
	}
	syncDir(filepath.Dir(w.path))
	return nil
}

// shutdown stops the flusher after a last write; false when already done.
func (w *Writer) shutdown() bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return true
}

// loop is the flusher: it takes the pending records, writes them and
// fdatasyncs, at most SyncInterval after they were appended (sooner past
// SyncBytes). A failed write keeps the unwritten bytes, in order, and
// retries at the next tick.
func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.opt.SyncInterval)
	defer t.Stop()
	var batch []byte
	unsynced := false
	fd := int(w.f.Fd())
	flush := func() error {
		w.mu.Lock()
		if len(batch) == 0 {
			batch, w.pending = w.pending, batch[:0]
		} else {
			batch = append(batch, w.pending...)
			w.pending = w.pending[:0]
		}
		w.inflight = len(batch)
		w.mu.Unlock()
		if len(batch) == 0 && !unsynced {
			return nil
		}
		var n int
		var err error
		if len(batch) > 0 {
			n, err = w.f.Write(batch)
			if n > 0 {
				unsynced = true
			}
		}
		if err == nil {
			if err = syscall.Fdatasync(fd); err == nil {
				unsynced = false
			} else {
				err = fmt.Errorf("fdatasync: %w", err)
			}
		} else {
			// A partial write leaves the file ending in a torn record;
			// the retry appends exactly the rest, so it becomes whole.
			err = unwrapPath(err)
		}
		batch = batch[:copy(batch, batch[n:])]
		w.mu.Lock()
		w.inflight = len(batch)
		w.writeErr = err
		w.mu.Unlock()
		return err
	}
	for {
		select {
		case <-t.C:
			flush()
		case <-w.kick:
			flush()
		case reply := <-w.syncReq:
			flush()
			reply <- w.Err()
		case <-w.stop:
			flush()
			return
		}
	}
}

// unwrapPath drops the *PathError around a write error: Err already names
// the journal.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func encodeFileHeader(pid int, created time.Time, runID string, header []byte) []byte {
	b := make([]byte, 0, len(magic)+24+len(runID)+len(header))
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, formatVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(pid))
	b = binary.LittleEndian.AppendUint64(b, uint64(created.UnixNano()))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(runID)))
	b = append(b, runID...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(header)))
	b = append(b, header...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendRecord(dst, body []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(body, castagnoli))
	return append(dst, body...)
}

func validRunID(id string) error {
	if id == "" || len(id) > maxRunID || strings.HasPrefix(id, ".") {
		return fmt.Errorf("journal: invalid run id %q", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("journal: invalid run id %q", id)
		}
	}
	return nil
}

// privateDir creates dir 0700, or tightens an existing one of ours that is
// group- or world-accessible. A symlink or non-directory is refused.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s is accessible to other users and cannot be made private: %w", dir, err)
		}
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
