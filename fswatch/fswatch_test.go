package fswatch

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentwatch/agentwatch/event"
)

type collector struct {
	mu     sync.Mutex
	events []event.Event
}

func (c *collector) add(ev event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
}

// has reports whether a File event with op on path was seen.
func (c *collector) has(op event.FileOp, path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.events {
		if f, ok := ev.(event.File); ok && f.Op == op && f.Path == path {
			return true
		}
	}
	return false
}

func (c *collector) paths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ev := range c.events {
		if f, ok := ev.(event.File); ok {
			out = append(out, f.Op.String()+" "+f.Path)
		}
	}
	return out
}

// lines renders every event, file events with their rename target.
func (c *collector) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ev := range c.events {
		switch e := ev.(type) {
		case event.File:
			l := e.Op.String() + " " + e.Path
			if e.NewPath != "" {
				l += " -> " + e.NewPath
			}
			out = append(out, l)
		case event.Dropped:
			out = append(out, fmt.Sprintf("dropped %d %s", e.Count, e.Source))
		default:
			out = append(out, fmt.Sprintf("%T", ev))
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWatcherOperations(t *testing.T) {
	root := t.TempDir()
	existing := filepath.Join(root, "existing.txt")
	must(t, os.WriteFile(existing, []byte("x"), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, ".git", "objects", "ab"), 0o755))

	var c collector
	w, err := Start(root, c.add)
	must(t, err)

	created := filepath.Join(root, "sub", "new.go")
	renamedTo := filepath.Join(root, "sub", "renamed.go")
	nested := filepath.Join(root, "a", "b", "c")
	nestedFile := filepath.Join(nested, "early.txt")
	skippedFile := filepath.Join(root, ".git", "objects", "ab", "blob")

	must(t, os.WriteFile(created, []byte("package main\n"), 0o644))
	f, err := os.OpenFile(existing, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	for range 50 {
		_, err = f.WriteString("more\n")
		must(t, err)
	}
	must(t, f.Close())
	must(t, os.Chmod(existing, 0o600))
	must(t, os.Rename(created, renamedTo))
	must(t, os.Remove(renamedTo))
	// A nested directory with a file made at once: the file exists before
	// the watcher can add a watch on c, so only the scan can find it.
	must(t, os.MkdirAll(nested, 0o755))
	must(t, os.WriteFile(nestedFile, []byte("early"), 0o644))
	must(t, os.WriteFile(skippedFile, []byte("blob"), 0o644))

	must(t, w.Close())

	for _, want := range []struct {
		op   event.FileOp
		path string
	}{
		{event.FileCreate, created},
		{event.FileWrite, existing},
		{event.FileChmod, existing},
		{event.FileRename, created}, // joined with its target, see TestRename
		{event.FileDelete, renamedTo},
		{event.FileMkdir, filepath.Join(root, "a")},
		{event.FileMkdir, nested},
		{event.FileCreate, nestedFile},
	} {
		if !c.has(want.op, want.path) {
			t.Errorf("missing %s %s; got %q", want.op, want.path, c.paths())
		}
	}
	writes := 0
	for _, ev := range c.events {
		f, ok := ev.(event.File)
		if !ok {
			continue
		}
		if f.Source != event.SourceFSWatch || f.PID != 0 || !filepath.IsAbs(f.Path) {
			t.Errorf("bad event %+v", f)
		}
		if f.Path == skippedFile {
			t.Errorf("event inside .git/objects: %+v", f)
		}
		if f.Op == event.FileWrite && f.Path == existing {
			writes++
		}
		if f.Op == event.FileRename && f.NewPath != renamedTo {
			t.Errorf("rename %s reported with target %q, want %s", f.Path, f.NewPath, renamedTo)
		}
	}
	if writes != 1 {
		t.Errorf("50 consecutive writes gave %d write events, want 1 (folded)", writes)
	}
}

func TestCloseDeliversQueuedBurst(t *testing.T) {
	root := t.TempDir()
	var c collector
	w, err := Start(root, c.add)
	must(t, err)
	const n = 500
	for i := range n {
		must(t, os.WriteFile(filepath.Join(root, "f"+strconv.Itoa(i)), nil, 0o644))
	}
	must(t, w.Close()) // no sleep: Close itself must drain
	got := 0
	for _, ev := range c.events {
		if f, ok := ev.(event.File); ok && f.Op == event.FileCreate {
			got++
		}
	}
	if got != n {
		t.Fatalf("got %d create events after Close, want %d", got, n)
	}
	if _, err := os.Stat(w.sentinel); !os.IsNotExist(err) {
		t.Errorf("drain directory %s left behind", w.sentinel)
	}
}

func TestStartMissingRoot(t *testing.T) {
	if _, err := Start(filepath.Join(t.TempDir(), "nope"), func(event.Event) {}); err == nil {
		t.Fatal("Start on a missing directory succeeded")
	}
}

// TestRename checks real renames: a pair inside the tree is one event with
// its target, a move across the tree's edge is what the workspace saw (a
// new file, or one gone), and a renamed directory keeps being watched
// under its new name.
func TestRename(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   []string // directories (trailing /) and files under root, or under outside when prefixed "out:"
		act     func(root, out string) error
		want    []string // with ROOT and OUT replaced
		notWant []string
	}{
		{
			name:  "file in one directory",
			setup: []string{"a.txt"},
			act:   func(r, _ string) error { return os.Rename(r+"/a.txt", r+"/b.txt") },
			want:  []string{"rename ROOT/a.txt -> ROOT/b.txt"},
			// The target must not also come as a create.
			notWant: []string{"create ROOT/b.txt"},
		},
		{
			name:  "file across directories",
			setup: []string{"x/", "y/", "x/f"},
			act:   func(r, _ string) error { return os.Rename(r+"/x/f", r+"/y/g") },
			want:  []string{"rename ROOT/x/f -> ROOT/y/g"},
		},
		{
			name:  "directory, then changes inside it",
			setup: []string{"d/", "d/inner/"},
			act: func(r, _ string) error {
				if err := os.Rename(r+"/d", r+"/e"); err != nil {
					return err
				}
				if err := os.WriteFile(r+"/e/new.txt", nil, 0o644); err != nil {
					return err
				}
				return os.WriteFile(r+"/e/inner/deep.txt", nil, 0o644)
			},
			want:    []string{"rename ROOT/d -> ROOT/e", "create ROOT/e/new.txt", "create ROOT/e/inner/deep.txt"},
			notWant: []string{"create ROOT/d/new.txt", "create ROOT/d/inner/deep.txt"},
		},
		{
			name:  "file moved in from outside",
			setup: []string{"out:in.txt"},
			act:   func(r, o string) error { return os.Rename(o+"/in.txt", r+"/in.txt") },
			want:  []string{"create ROOT/in.txt"},
		},
		{
			name:  "directory moved in from outside, with its files",
			setup: []string{"out:pkg/", "out:pkg/mod.go"},
			act: func(r, o string) error {
				if err := os.Rename(o+"/pkg", r+"/pkg"); err != nil {
					return err
				}
				return os.WriteFile(r+"/pkg/later.go", nil, 0o644)
			},
			want: []string{"mkdir ROOT/pkg", "create ROOT/pkg/mod.go", "create ROOT/pkg/later.go"},
		},
		{
			name:  "directory moved out is no longer watched",
			setup: []string{"gone/"},
			act: func(r, o string) error {
				if err := os.Rename(r+"/gone", o+"/gone"); err != nil {
					return err
				}
				return os.WriteFile(o+"/gone/after.txt", nil, 0o644)
			},
			want:    []string{"rename ROOT/gone"},
			notWant: []string{"create ROOT/gone/after.txt"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, out := t.TempDir(), t.TempDir()
			for _, p := range tc.setup {
				base := root
				if q, ok := strings.CutPrefix(p, "out:"); ok {
					base, p = out, q
				}
				if p[len(p)-1] == '/' {
					must(t, os.MkdirAll(filepath.Join(base, p), 0o755))
				} else {
					must(t, os.WriteFile(filepath.Join(base, p), nil, 0o644))
				}
			}
			var c collector
			w, err := Start(root, c.add)
			must(t, err)
			must(t, tc.act(root, out))
			must(t, w.Close())
			got := c.lines()
			expand := strings.NewReplacer("ROOT", root, "OUT", out).Replace
			for _, want := range tc.want {
				if !slices.Contains(got, expand(want)) {
					t.Errorf("missing %q; got %q", expand(want), got)
				}
			}
			for _, bad := range tc.notWant {
				if slices.Contains(got, expand(bad)) {
					t.Errorf("unexpected %q; got %q", expand(bad), got)
				}
			}
		})
	}
}

// encode lays events out as read(2) returns them: header, then the name
// NUL-padded to a multiple of the header size, as the kernel pads it.
func encode(evs ...rawEvent) []byte {
	var b []byte
	for _, ev := range evs {
		n := 0
		if ev.name != "" {
			n = (len(ev.name) + 1 + unix.SizeofInotifyEvent - 1) / unix.SizeofInotifyEvent * unix.SizeofInotifyEvent
		}
		b = binary.NativeEndian.AppendUint32(b, uint32(ev.wd))
		b = binary.NativeEndian.AppendUint32(b, ev.mask)
		b = binary.NativeEndian.AppendUint32(b, ev.cookie)
		b = binary.NativeEndian.AppendUint32(b, uint32(n))
		name := make([]byte, n)
		copy(name, ev.name)
		b = append(b, name...)
	}
	return b
}

// TestHandleBatch feeds batches as bytes, for what the kernel does not do
// on demand: a queue overflow, a rename pair with another change between
// its halves, a watch that went away.
func TestHandleBatch(t *testing.T) {
	const ws, sub, sentinel = 1, 2, 99
	for _, tc := range []struct {
		name     string
		batch    []rawEvent
		want     []string
		sentinel bool
	}{
		{
			name:  "overflow",
			batch: []rawEvent{{wd: -1, mask: unix.IN_Q_OVERFLOW}},
			want:  []string{"dropped 1 fswatch"},
		},
		{
			name: "overflow breaks folding",
			batch: []rawEvent{
				{wd: ws, mask: unix.IN_CLOSE_WRITE, name: "a"},
				{wd: -1, mask: unix.IN_Q_OVERFLOW},
				{wd: ws, mask: unix.IN_CLOSE_WRITE, name: "a"},
			},
			want: []string{"write /ws/a", "dropped 1 fswatch", "write /ws/a"},
		},
		{
			name: "rename pair joined across another change",
			batch: []rawEvent{
				{wd: ws, mask: unix.IN_MOVED_FROM, cookie: 7, name: "a"},
				{wd: sub, mask: unix.IN_CREATE, name: "x"},
				{wd: sub, mask: unix.IN_MOVED_TO, cookie: 7, name: "b"},
				{wd: sub, mask: unix.IN_DELETE, name: "b"},
			},
			want: []string{"rename /ws/a -> /ws/sub/b", "create /ws/sub/x", "delete /ws/sub/b"},
		},
		{
			name: "cookies differ: not a pair",
			batch: []rawEvent{
				{wd: ws, mask: unix.IN_MOVED_FROM, cookie: 1, name: "a"},
				{wd: ws, mask: unix.IN_MOVED_TO, cookie: 2, name: "b"},
			},
			want: []string{"rename /ws/a", "create /ws/b"},
		},
		{
			name: "a watch removed then silent",
			batch: []rawEvent{
				{wd: sub, mask: unix.IN_DELETE_SELF},
				{wd: sub, mask: unix.IN_IGNORED},
				{wd: sub, mask: unix.IN_CREATE, name: "late"},
				{wd: ws, mask: unix.IN_DELETE | unix.IN_ISDIR, name: "sub"},
			},
			want: []string{"delete /ws/sub"},
		},
		{
			name: "sentinel ends the batch",
			batch: []rawEvent{
				{wd: ws, mask: unix.IN_CREATE, name: "before"},
				{wd: sentinel, mask: unix.IN_CREATE, name: "drain"},
				{wd: ws, mask: unix.IN_CREATE, name: "after"},
			},
			want:     []string{"create /ws/before"},
			sentinel: true,
		},
		{
			name: "chmod of the watched directory itself, and folding",
			batch: []rawEvent{
				{wd: ws, mask: unix.IN_ATTRIB | unix.IN_ISDIR},
				{wd: ws, mask: unix.IN_ATTRIB | unix.IN_ISDIR},
				{wd: sub, mask: unix.IN_ATTRIB, name: "a-rather-long-file-name.txt"},
			},
			want: []string{"chmod /ws", "chmod /ws/sub/a-rather-long-file-name.txt"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c collector
			w := &Watcher{
				root: "/ws", emit: c.add, fd: -1, sentWD: sentinel,
				dirs: map[int32]string{ws: "/ws", sub: "/ws/sub", sentinel: "/tmp/drain"},
			}
			evs, err := parseEvents(encode(tc.batch...), nil)
			must(t, err)
			if got := w.handle(evs); got != tc.sentinel {
				t.Errorf("handle reported sentinel %v, want %v", got, tc.sentinel)
			}
			if got := c.lines(); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseEvents(t *testing.T) {
	in := []rawEvent{
		{wd: 3, mask: unix.IN_CREATE, name: "exactly-16-bytes"}, // padded to 32
		{wd: 4, mask: unix.IN_MOVED_TO, cookie: 9, name: "b"},
		{wd: -1, mask: unix.IN_Q_OVERFLOW},
	}
	b := encode(in...)
	got, err := parseEvents(b, nil)
	must(t, err)
	if !slices.Equal(got, in) {
		t.Errorf("parsed %+v, want %+v", got, in)
	}
	for _, bad := range [][]byte{b[:8], b[:unix.SizeofInotifyEvent+4]} {
		if _, err := parseEvents(bad, nil); err == nil {
			t.Errorf("parsing %d truncated bytes succeeded", len(bad))
		}
	}
}

// TestBurstDelivered: 3,000 files created and deleted as fast as the test
// can, every change delivered in order (no overflow at the batch interval).
func TestBurstDelivered(t *testing.T) {
	root := t.TempDir()
	var c collector
	w, err := Start(root, c.add)
	must(t, err)
	const n = 3000
	for i := range n {
		p := filepath.Join(root, "f"+strconv.Itoa(i))
		must(t, os.WriteFile(p, []byte("x"), 0o644))
		must(t, os.Remove(p))
	}
	must(t, w.Close())
	created, deleted := make(map[string]int), make(map[string]int)
	for i, ev := range c.events {
		switch e := ev.(type) {
		case event.Dropped:
			t.Fatalf("events dropped: %+v", e)
		case event.File:
			switch e.Op {
			case event.FileCreate:
				created[e.Path] = i
			case event.FileDelete:
				if _, ok := created[e.Path]; !ok {
					t.Fatalf("delete of %s before its create", e.Path)
				}
				deleted[e.Path] = i
			}
		}
	}
	if len(created) != n || len(deleted) != n {
		t.Fatalf("got %d creates and %d deletes, want %d each", len(created), len(deleted), n)
	}
}

// BenchmarkWatchCreateWriteDelete is the bench workload's loop with the
// watcher running: compare against -bench with the watcher stopped
// (the Unwatched sub-benchmark) for its cost to the workload.
func BenchmarkWatchCreateWriteDelete(b *testing.B) {
	loop := func(b *testing.B, dir string) {
		buf := []byte("agentwatch bench payload\n")
		i := 0
		for b.Loop() {
			p := filepath.Join(dir, "f"+strconv.Itoa(i))
			i++
			fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			unix.Write(fd, buf)
			unix.Close(fd)
			if err := unix.Unlink(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("Unwatched", func(b *testing.B) { loop(b, b.TempDir()) })
	b.Run("Watched", func(b *testing.B) {
		dir := b.TempDir()
		var events int
		w, err := Start(dir, func(event.Event) { events++ })
		if err != nil {
			b.Fatal(err)
		}
		loop(b, dir)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(events)/float64(b.N), "events/op")
	})
}
