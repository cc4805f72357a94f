// Package fswatch watches the workspace with fsnotify: a cross-check of
// what the eBPF file sensor saw, and the file sensor itself when eBPF is
// unavailable. It cannot tell which process made a change (every event has
// PID 0). It observes only: it never builds spans or decides policy.
package fswatch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/fsnotify/fsnotify"
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

// drainTimeout bounds Close's wait for the sentinel; it only matters when
// the kernel queue overflowed and dropped the sentinel itself.
const drainTimeout = 2 * time.Second

// Watcher watches a directory tree recursively.
type Watcher struct {
	root     string
	emit     func(event.Event)
	fsw      *fsnotify.Watcher
	sentinel string // private directory outside the watched tree, see Close

	drained   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// Consecutive identical events (a write() loop on one file) are folded
	// into one: the recorder keeps one span per path anyway.
	lastOp   event.FileOp
	lastPath string
}

// Start watches root and every directory below it (skipping Skipped),
// adding directories as they appear. emit is called from one goroutine, in
// the order the kernel queued the changes.
func Start(root string, emit func(event.Event)) (*Watcher, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", root, err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("creating inotify watcher: %w", err)
	}
	sentinel, err := os.MkdirTemp("", "agentwatch-fswatch-")
	if err != nil {
		fsw.Close()
		return nil, fmt.Errorf("creating drain directory: %w", err)
	}
	w := &Watcher{
		root:     abs,
		emit:     emit,
		fsw:      fsw,
		sentinel: sentinel,
		drained:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := fsw.Add(sentinel); err != nil {
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
	w.fsw.Close()
	os.RemoveAll(w.sentinel)
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
			w.send(op, path)
		}
		if !d.IsDir() {
			return nil
		}
		if w.skipped(path) {
			return filepath.SkipDir
		}
		if err := w.fsw.Add(path); err != nil {
			if path == dir && !report {
				return fmt.Errorf("watching %s: %w", path, err)
			}
			if errors.Is(err, os.ErrNotExist) {
				return filepath.SkipDir
			}
			// ENOSPC (max_user_watches) or EACCES: say so once per
			// directory, the trace then shows the gap instead of silence.
			w.emit(event.Gap{Header: now(), Sensor: "fswatch", Reason: fmt.Sprintf("watching %s: %v", path, err)})
			return filepath.SkipDir
		}
		return nil
	})
}

func now() event.Header { return event.Header{Time: time.Now()} }

func (w *Watcher) send(op event.FileOp, path string) {
	if op == w.lastOp && path == w.lastPath {
		return
	}
	w.lastOp, w.lastPath = op, path
	w.emit(event.File{Header: now(), Source: event.SourceFSWatch, Op: op, Path: path})
}

func (w *Watcher) loop() {
	defer close(w.done)
	events, errs := w.fsw.Events, w.fsw.Errors
	for events != nil || errs != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.handle(ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// The kernel does not say how many were lost: at least one.
				w.lastOp, w.lastPath = 0, ""
				w.emit(event.Dropped{Header: now(), Source: event.SourceFSWatch, Count: 1})
			}
		}
	}
}

func (w *Watcher) handle(ev fsnotify.Event) {
	if ev.Name == w.sentinel || filepath.Dir(ev.Name) == w.sentinel {
		select {
		case <-w.drained:
		default:
			close(w.drained)
		}
		return
	}
	select {
	case <-w.drained:
		return // after Close asked: not part of the run
	default:
	}
	switch {
	case ev.Has(fsnotify.Create):
		fi, err := os.Lstat(ev.Name)
		if err == nil && fi.IsDir() {
			w.send(event.FileMkdir, ev.Name)
			if !w.skipped(ev.Name) {
				_ = w.addTree(ev.Name, true)
			}
			return
		}
		w.send(event.FileCreate, ev.Name)
	case ev.Has(fsnotify.Write):
		w.send(event.FileWrite, ev.Name)
	case ev.Has(fsnotify.Remove):
		w.send(event.FileDelete, ev.Name)
	case ev.Has(fsnotify.Rename):
		// inotify reports the old name here and the new one as a Create
		// in its (watched) directory; the pair is not joined.
		w.send(event.FileRename, ev.Name)
	case ev.Has(fsnotify.Chmod):
		w.send(event.FileChmod, ev.Name)
	}
}

// Close stops watching after delivering what is queued. Changes made before
// Close are already in the kernel's inotify queue; a file created in the
// private drain directory is queued after them, so once it comes back
// everything before it has been emitted — no fixed sleep.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		defer os.RemoveAll(w.sentinel)
		if f, err := os.Create(filepath.Join(w.sentinel, "drain")); err == nil {
			f.Close()
			select {
			case <-w.drained:
			case <-time.After(drainTimeout):
				w.closeErr = errors.New("draining fswatch: timed out")
			}
		}
		if err := w.fsw.Close(); err != nil && w.closeErr == nil {
			w.closeErr = fmt.Errorf("closing inotify watcher: %w", err)
		}
		<-w.done
	})
	return w.closeErr
}
