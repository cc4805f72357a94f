package fswatch

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

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
		{event.FileRename, created},
		{event.FileCreate, renamedTo},
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
