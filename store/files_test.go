package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/agentwatch/agentwatch/store"
)

// The file list round-trips through the store, names with newlines,
// quotes and markup included, at 100,000 entries; a run without one says
// so.
func TestFiles(t *testing.T) { eachBackend(t, testFiles) }

func testFiles(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Save(ctx, runTrace("20260301-120000-aaaaaa", base, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Files(ctx, "20260301-120000-aaaaaa"); !errors.Is(err, store.ErrNoArtifact) {
		t.Fatalf("Files before any list = %v, want ErrNoArtifact", err)
	}
	want := []store.FileEntry{
		{Path: "/ws/a\nb", Ops: []string{"create", "write"}, Source: "ebpf"},
		{Path: `/ws/"quoted" <b>`, Ops: []string{"delete"}, Source: "fswatch"},
		{Path: "/ws/.github/workflows/ci.yml", Failed: true, Source: "ebpf"},
	}
	for i := 0; i < 100_000; i++ {
		want = append(want, store.FileEntry{Path: fmt.Sprintf("/ws/gen/%03d/f%06d.txt", i%100, i), Ops: []string{"create"}, Source: "ebpf"})
	}
	if err := s.SaveFiles(ctx, "20260301-120000-aaaaaa", want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Files(ctx, "20260301") // a prefix resolves like Load
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %d entries, want %d; first %+v", len(got), len(want), got[:min(3, len(got))])
	}
	if err := s.SaveFiles(ctx, "20990101-000000-ffffff", want[:1]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SaveFiles of an unknown run = %v", err)
	}
}
