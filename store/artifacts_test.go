package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"

	"github.com/agentwatch/agentwatch/store"
)

func TestArtifacts(t *testing.T) { eachBackend(t, testArtifacts) }

func testArtifacts(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Save(ctx, runTrace("20260301-120000-aaaaaa", base, 0)); err != nil {
		t.Fatal(err)
	}
	diff := []byte("diff --git a/x b/x\n+\x00binary-safe\n")
	tests := []struct {
		name    string
		run     string
		art     string
		data    []byte
		wantErr error
	}{
		{"diff", "20260301-120000-aaaaaa", store.ArtifactDiff, diff, nil},
		{"empty content is kept", "20260301-120000-aaaaaa", "empty", nil, nil},
		{"unknown run", "20990101-000000-ffffff", store.ArtifactDiff, diff, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SaveArtifact(ctx, tt.run, tt.art, tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SaveArtifact = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			a, err := s.Artifact(ctx, "20260301", tt.art) // a prefix resolves like Load
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(tt.data)
			if !bytes.Equal(a.Content, tt.data) || a.Size != int64(len(tt.data)) || a.SHA256 != hex.EncodeToString(sum[:]) ||
				a.RunID != tt.run || a.Created.IsZero() {
				t.Errorf("got %+v", a)
			}
		})
	}

	// Saving again replaces.
	if err := s.SaveArtifact(ctx, "20260301-120000-aaaaaa", store.ArtifactDiff, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Artifact(ctx, store.Latest, store.ArtifactDiff); string(a.Content) != "v2" || a.Size != 2 {
		t.Errorf("after replace: %+v", a)
	}
	if _, err := s.Artifact(ctx, store.Latest, "nope"); !errors.Is(err, store.ErrNoArtifact) {
		t.Errorf("missing artifact: %v", err)
	}
	list, err := s.Artifacts(ctx, store.Latest)
	if err != nil || len(list) != 2 || list[0].Name != store.ArtifactDiff || list[1].Name != "empty" || list[0].Content != nil {
		t.Errorf("Artifacts = %+v, %v", list, err)
	}
}

// TestArtifactsMigrateOldStore: a store made before artifacts existed
// (schema version 1, with a run) gains the table and keeps its run.
func TestArtifactsMigrateOldStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Save(ctx, runTrace("20260301-120000-bbbbbb", base, 0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE artifacts; DROP TABLE IF EXISTS annotations; UPDATE schema_version SET version = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = open(t, dir)
	if err := s.SaveArtifact(ctx, "20260301-120000-bbbbbb", store.ArtifactDiff, []byte("d")); err != nil {
		t.Fatalf("after migrating a version-1 store: %v", err)
	}
	if _, _, err := s.Load(ctx, "20260301-120000-bbbbbb"); err != nil {
		t.Errorf("run lost in migration: %v", err)
	}
}
