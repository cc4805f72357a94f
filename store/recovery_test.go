package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
)

func TestRunStatus(t *testing.T) { eachBackend(t, testRunStatus) }

func testRunStatus(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	done := runTrace("20260301-120000-aaaaaa", base, 0)
	if err := s.Save(ctx, done); err != nil {
		t.Fatal(err)
	}
	// A journal of a run the supervisor did save is stale: recovering it
	// must not replace the complete run.
	if saved, err := s.SaveRecovered(ctx, done, otlp.Request(done), "stale"); err != nil || saved {
		t.Errorf("SaveRecovered over a saved run: saved %v, %v", saved, err)
	}
	lost := runTrace("20260301-130000-bbbbbb", base.Add(time.Hour), 137)
	if saved, err := s.SaveRecovered(ctx, lost, otlp.Request(lost), "supervisor killed — recovered from journal"); err != nil || !saved {
		t.Fatalf("SaveRecovered: %v %v", saved, err)
	}
	runs, err := s.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s %s %q; %s %s %q", runs[0].ID, runs[0].Status, runs[0].StatusReason, runs[1].ID, runs[1].Status, runs[1].StatusReason)
	want := `20260301-130000-bbbbbb interrupted "supervisor killed — recovered from journal"; 20260301-120000-aaaaaa complete ""`
	if got != want {
		t.Errorf("List = %s\nwant %s", got, want)
	}
}

func TestStoreFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "st")
	s := open(t, dir)
	if err := s.Save(context.Background(), runTrace("20260301-120000-aaaaaa", base, 0)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, s.Path(), s.Path() + "-wal", s.Path() + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", p, fi.Mode().Perm())
		}
	}
}

func TestCorruptStoreSaysSoInOneLine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	for i := 0; i < 40; i++ {
		if err := s.Save(ctx, runTrace(fmt.Sprintf("20260301-12%04d-aaaaaa", i), base.Add(time.Duration(i)*time.Minute), 0)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // checkpoints the WAL into runs.db
	path := filepath.Join(dir, store.FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", 1024))
	for off := 4096; off+len(junk) <= len(data); off += 8192 { // every other page after the first
		copy(data[off:], junk)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := store.Open(dir)
	if err == nil {
		_, err = s2.List(ctx, 0)
		s2.Close()
	}
	if err == nil {
		t.Fatal("a corrupt store opened and listed without error")
	}
	msg := err.Error()
	if !errors.Is(err, store.ErrCorrupt) || strings.Contains(msg, "\n") || !strings.Contains(msg, path) || !strings.Contains(msg, "agentwatch store repair") {
		t.Errorf("error = %q: want one line wrapping ErrCorrupt, naming %s and the way out", msg, path)
	}
	t.Log(msg)
}
