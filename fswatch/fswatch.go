// Package fswatch watches the workspace with raw inotify: a cross-check of
// what the eBPF file sensor saw, and the file sensor itself when eBPF is
// unavailable. It cannot tell which process made a change (every event has
// PID 0). It observes only: it never builds spans or decides policy.
//
// It runs inside the supervisor, next to the workload on the same cores, so
// it is built to cost little per change: one goroutine reads the kernel
// queue in batches (see batchInterval), new directories are recognised from
// the event mask rather than a stat, and only one event per open-for-write
// is asked for (IN_CLOSE_WRITE), not one per write(2).
package fswatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentwatch/agentwatch/event"
)

// Skipped lists directories (relative paths, matched at any depth) that are
// not watched: bulky internals whose churn says nothing about what an agent
// changed and would exhaust inotify watches on a real repository.
//   - .git/objects, .git/lfs: content-addressed blobs; commits show up as
//     .git/refs and .git/index changes anyway.
//   - node_modules/.cache, .cache: tool caches (babel, eslint, go build).
//   - __pycache__: bytecode written by every Python import.
var Skipped = []string{
	".git/objects",
	".git/lfs",
	"node_modules/.cache",
	".cache",
	"__pycache__",
}

// watchMask is what each directory is watched for. IN_CLOSE_WRITE stands
// for "written": it fires once per open-for-write, matching the eBPF
// sensor's FileWrite, where IN_MODIFY fires on every write(2) (a 4 KiB
// copy loop of a large file queues thousands). What that leaves out is
// truncate(2) by path and writes through a mapping; the eBPF sensor sees
// truncate, and a file a run wrote through mmap still differs in the
// workspace snapshot.
// IN_EXCL_UNLINK: no events for a file still open after its unlink (a
// temporary file) — it is no longer in the workspace.
const watchMask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE_SELF |
	unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// batchInterval is how long the reader waits after a read that returned
// events before it reads again. Without it a busy workload wakes the
// supervisor for nearly every change (each wakeup a context switch on a
// core the workload wants); with it each read collects what arrived in
// the interval. The kernel queue holds max_queued_events (16384 by
// default, /proc/sys/fs/inotify/max_queued_events), far more than
// arrives in 10 ms even in a tight create+write+delete loop (~3 events
// per file, ~1,500 per 10 ms on this class of machine), and Close is
// delayed by at most one interval.
const batchInterval = 10 * time.Millisecond

// bufSize is the read buffer: 256 KiB holds ~8,000 events with short names,
// all a batch brings at realistic rates, in one read(2).
const bufSize = 256 << 10

// maxEventSize is the largest single event: header plus NAME_MAX+1 bytes.
const maxEventSize = unix.SizeofInotifyEvent + unix.NAME_MAX + 1

// pollTimeout bounds how long the reader sleeps in poll(2) between checks
// of the stop flag; it only matters when Close could not use the sentinel.
const pollTimeout = 100 * time.Millisecond

// drainTimeout bounds Close's wait for the sentinel; it only matters when
// the kernel queue overflowed and dropped the sentinel itself.
const drainTimeout = 2 * time.Second

// Watcher watches a directory tree recursively.
type Watcher struct {
	root     string
	emit     func(event.Event)
	fd       int
	dirs     map[int32]string // watch descriptor -> directory path
	sentinel string           // private directory outside the watched tree, see Close
	sentWD   int32

	stop      atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// Consecutive identical events (a file rewritten in a loop) are
	// folded into one: the recorder keeps one span per path anyway.
	last event.File
}

// Start watches root and every directory below it (skipping Skipped),
// adding directories as they appear. emit is called from one goroutine, in
// the order the kernel queued the changes.
func Start(root string, emit func(event.Event)) (*Watcher, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", root, err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating inotify instance: %w", err)
	}
	sentinel, err := os.MkdirTemp("", "agentwatch-fswatch-")
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("creating drain directory: %w", err)
	}
	w := &Watcher{
		root:     abs,
		emit:     emit,
		fd:       fd,
		dirs:     make(map[int32]string),
		sentinel: sentinel,
		done:     make(chan struct{}),
	}
	w.sentWD, err = w.watch(sentinel)
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("watching drain directory: %w", err)
	}
	if err := w.addTree(abs, false); err != nil {
		w.abort()
		return nil, err
	}
	go w.loop()
	return w, nil
}

func (w *Watcher) abort() {
	unix.Close(w.fd)
	os.RemoveAll(w.sentinel)
}

func (w *Watcher) watch(dir string) (int32, error) {
	wd, err := unix.InotifyAddWatch(w.fd, dir, watchMask)
	if err != nil {
		return -1, err
	}
	// A directory watched again (after a rename) keeps its descriptor:
	// only its path changes.
	w.dirs[int32(wd)] = dir
	return int32(wd), nil
}

// skipped reports whether dir is one of the bulky internals, or agentwatch's
// own drain directory (when the workspace contains the temp dir).
func (w *Watcher) skipped(dir string) bool {
	if dir == w.sentinel {
		return true
	}
	rel, err := filepath.Rel(w.root, dir)
	if err != nil || rel == "." {
		return false
	}
	rel = filepath.ToSlash(rel)
	for _, s := range Skipped {
		if rel == s || strings.HasSuffix(rel, "/"+s) {
			return true
		}
	}
	return false
}

// addTree watches dir and the directories below it. With report set (a
// directory that appeared during the run) it also emits a create for every
// entry found: they may have been created before the watch existed, so
// inotify never saw them. A file created just after the watch was added is
// then reported twice, which the recorder folds (one span per path).
func (w *Watcher) addTree(dir string, report bool) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir && !report {
				return fmt.Errorf("walking %s: %w", path, err)
			}
			// Gone or unreadable while walking: nothing to watch there.
			return nil
		}
		if report && path != dir {
			op := event.FileCreate
			if d.IsDir() {
				op = event.FileMkdir
			}
			w.send(now(), op, path, "")
		}
		if !d.IsDir() {
			return nil
		}
		if w.skipped(path) {
			return filepath.SkipDir
		}
		if _, err := w.watch(path); err != nil {
			if path == dir && !report {
				return fmt.Errorf("watching %s: %w", path, err)
			}
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
				return filepath.SkipDir // replaced or removed meanwhile
			}
			// ENOSPC (max_user_watches) or EACCES: say so once per
			// directory, the trace then shows the gap instead of silence.
			w.emit(event.Gap{Header: now(), Sensor: "fswatch", Reason: fmt.Sprintf("watching %s: %v", path, err)})
			return filepath.SkipDir
		}
		return nil
	})
}

// forget stops watching dir and everything below it: it moved out of the
// tree (or into a skipped place), where its changes are none of the run's
// business under a path that no longer exists.
func (w *Watcher) forget(dir string) {
	for wd, p := range w.dirs {
		if wd != w.sentWD && (p == dir || strings.HasPrefix(p, dir+"/")) {
			unix.InotifyRmWatch(w.fd, uint32(wd))
			delete(w.dirs, wd)
		}
	}
}

func now() event.Header { return event.Header{Time: time.Now()} }

func (w *Watcher) send(h event.Header, op event.FileOp, path, newPath string) {
	if op == w.last.Op && path == w.last.Path && newPath == w.last.NewPath {
		return
	}
	w.last = event.File{Header: h, Source: event.SourceFSWatch, Op: op, Path: path, NewPath: newPath}
	w.emit(w.last)
}

// rawEvent is one struct inotify_event.
type rawEvent struct {
	wd     int32
	mask   uint32
	cookie uint32
	name   string // empty for the watched directory itself
}

// parseEvents decodes what one read(2) of an inotify descriptor returned.
// The kernel only returns whole events, so a short one means the buffer was
// not what it returned.
func parseEvents(buf []byte, out []rawEvent) ([]rawEvent, error) {
	for len(buf) > 0 {
		if len(buf) < unix.SizeofInotifyEvent {
			return out, fmt.Errorf("parsing inotify event: %d bytes left, header needs %d", len(buf), unix.SizeofInotifyEvent)
		}
		ev := rawEvent{
			wd:     int32(binary.NativeEndian.Uint32(buf[0:])),
			mask:   binary.NativeEndian.Uint32(buf[4:]),
			cookie: binary.NativeEndian.Uint32(buf[8:]),
		}
		n := int(binary.NativeEndian.Uint32(buf[12:]))
		buf = buf[unix.SizeofInotifyEvent:]
		if n > len(buf) {
			return out, fmt.Errorf("parsing inotify event: name of %d bytes, %d left", n, len(buf))
		}
		// The name is NUL-padded to an aligned length.
		name := buf[:n]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		ev.name = string(name)
		buf = buf[n:]
		out = append(out, ev)
	}
	return out, nil
}

func (w *Watcher) loop() {
	defer close(w.done)
	buf := make([]byte, bufSize)
	var evs []rawEvent
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for !w.stop.Load() {
		n, err := unix.Poll(fds, int(pollTimeout/time.Millisecond))
		if n <= 0 || err != nil {
			continue // timeout or EINTR: check the stop flag
		}
		n, err = unix.Read(w.fd, buf)
		if err != nil || n <= 0 {
			continue // EAGAIN: nothing after all
		}
		evs, err = parseEvents(buf[:n], evs[:0])
		if w.handle(evs) {
			return
		}
		if err != nil {
			w.emit(event.Gap{Header: now(), Sensor: "fswatch", Reason: err.Error()})
			return
		}
		if n < bufSize-maxEventSize {
			// The queue is drained: let the next batch gather. (A full
			// buffer means more is waiting; read it right away.)
			time.Sleep(batchInterval)
		}
	}
}

// handle emits one batch of events in order. It reports whether the
// sentinel was seen: what follows it happened after Close was called.
func (w *Watcher) handle(evs []rawEvent) (sentinel bool) {
	h := now() // one clock read per batch: they arrived within batchInterval
	for i, ev := range evs {
		if ev.mask&unix.IN_Q_OVERFLOW != 0 {
			// The kernel does not say how many were lost: at least one.
			w.last = event.File{}
			w.emit(event.Dropped{Header: h, Source: event.SourceFSWatch, Count: 1})
			continue
		}
		if ev.wd == w.sentWD {
			return true
		}
		if ev.mask&unix.IN_IGNORED != 0 {
			delete(w.dirs, ev.wd) // removed, or its filesystem unmounted
			continue
		}
		dir, ok := w.dirs[ev.wd]
		if !ok || ev.mask == 0 {
			continue // forgotten watch, or the MOVED_TO of a joined rename
		}
		path := dir
		if ev.name != "" {
			path = dir + "/" + ev.name
		}
		isDir := ev.mask&unix.IN_ISDIR != 0
		switch {
		case ev.mask&unix.IN_CREATE != 0 && isDir:
			w.send(h, event.FileMkdir, path, "")
			if !w.skipped(path) {
				_ = w.addTree(path, true)
			}
		case ev.mask&unix.IN_CREATE != 0:
			w.send(h, event.FileCreate, path, "")
		case ev.mask&unix.IN_CLOSE_WRITE != 0:
			w.send(h, event.FileWrite, path, "")
		case ev.mask&unix.IN_DELETE != 0:
			w.send(h, event.FileDelete, path, "")
		case ev.mask&unix.IN_MOVED_FROM != 0:
			to, ok := w.moveTarget(evs[i+1:], ev.cookie)
			w.send(h, event.FileRename, path, to)
			if isDir {
				switch {
				case ok && w.skipped(to):
					w.forget(path)
				case ok:
					// Its watches followed the inode; watching the tree
					// again under the new name returns the same
					// descriptors and so renames them (and watches it
					// if it was skipped where it came from).
					_ = w.addTree(to, false)
				default:
					w.forget(path) // left the tree, or its pair is in the next read
				}
			}
		case ev.mask&unix.IN_MOVED_TO != 0:
			// Moved in from outside the tree: to the workspace it is new.
			if isDir {
				w.send(h, event.FileMkdir, path, "")
				if !w.skipped(path) {
					_ = w.addTree(path, true)
				}
			} else {
				w.send(h, event.FileCreate, path, "")
			}
		case ev.mask&unix.IN_ATTRIB != 0:
			w.send(h, event.FileChmod, path, "")
		case ev.mask&unix.IN_DELETE_SELF != 0:
			delete(w.dirs, ev.wd) // IN_IGNORED follows; nothing more comes from it
		}
	}
	return false
}

// moveTarget finds the IN_MOVED_TO paired with cookie later in the batch,
// returns its path and marks it consumed (mask 0). The kernel queues the
// pair back to back, but another change may slip between them; a pair split
// across two reads stays unjoined.
func (w *Watcher) moveTarget(rest []rawEvent, cookie uint32) (string, bool) {
	for j := range rest {
		ev := &rest[j]
		if ev.mask&unix.IN_MOVED_TO == 0 || ev.cookie != cookie {
			continue
		}
		dir, ok := w.dirs[ev.wd]
		ev.mask = 0
		if !ok {
			return "", false
		}
		return dir + "/" + ev.name, true
	}
	return "", false
}

// Close stops watching after delivering what is queued. Changes made before
// Close are already in the kernel's inotify queue; a file created in the
// private drain directory is queued after them, so once it comes back
// everything before it has been emitted — no fixed sleep.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		defer os.RemoveAll(w.sentinel)
		f, err := os.Create(filepath.Join(w.sentinel, "drain"))
		if err == nil {
			f.Close()
			select {
			case <-w.done:
			case <-time.After(drainTimeout):
				w.closeErr = errors.New("draining fswatch: timed out")
			}
		} else {
			w.closeErr = fmt.Errorf("draining fswatch: %w", err)
		}
		w.stop.Store(true)
		<-w.done
		if err := unix.Close(w.fd); err != nil && w.closeErr == nil {
			w.closeErr = fmt.Errorf("closing inotify instance: %w", err)
		}
	})
	return w.closeErr
}
