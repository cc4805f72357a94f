package ebpf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/privtest"
)

func TestParseMountinfoDev(t *testing.T) {
	for _, tc := range []struct {
		line string
		id   uint64
		dev  uint32
		ok   bool
	}{
		{"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue", 36, 98<<20 | 0, true},
		{"29 1 8:3 / / rw,relatime shared:1 - ext4 /dev/sda3 rw", 29, 8<<20 | 3, true},
		// minor numbers above 255 (anonymous devices of btrfs, tmpfs
		// instances) keep all 20 bits.
		{"41 29 0:1234 / /tmp rw - tmpfs tmpfs rw", 41, 1234, true},
		{"41 29 0:x / /tmp rw - tmpfs tmpfs rw", 0, 0, false},
		{"garbage", 0, 0, false},
	} {
		id, dev, ok := parseMountinfoDev(tc.line)
		if id != tc.id || dev != tc.dev || ok != tc.ok {
			t.Errorf("parseMountinfoDev(%q) = %d, %#x, %v; want %d, %#x, %v", tc.line, id, dev, ok, tc.id, tc.dev, tc.ok)
		}
	}
}

// TestSensorReportsSecretReadsOnly: read opens are reported for the watched
// files only, by identity (a symlink or hard link to a secret is the
// secret), and only for the run's processes; a read-write open stays a
// write.
func TestSensorReportsSecretReadsOnly(t *testing.T) {
	privtest.Require(t)
	cg := newCgroup(t)
	s, col := startSensor(t, cg)

	w := realDir(t, t.TempDir())
	for _, f := range []string{"credentials", ".env", "README.md"} {
		if err := os.WriteFile(filepath.Join(w, f), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("credentials", filepath.Join(w, "creds-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(w, ".env"), filepath.Join(w, "env-hardlink")); err != nil {
		t.Fatal(err)
	}
	n, err := s.WatchReads([]string{
		w + "/credentials", w + "/.env",
		w + "/missing", // does not exist: skipped
		w,              // a directory: skipped
	})
	if err != nil || n != 2 {
		t.Fatalf("WatchReads = %d, %v; want 2 files", n, err)
	}
	// The test process is outside the cgroup: its read is not the run's.
	if _, err := os.ReadFile(w + "/credentials"); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"set -e",
		"cd " + w,
		"cat credentials >/dev/null",   // openat(O_RDONLY): read
		"cat README.md >/dev/null",     // not a secret: nothing
		"read l < .env",                // the shell's own redirect: read
		"cat creds-link >/dev/null",    // through a symlink: the file it names
		"cat env-hardlink >/dev/null",  // a hard link is the same inode
		"echo y >> .env",               // O_WRONLY|O_APPEND: a write, not a read
		"ls -l credentials >/dev/null", // stat, no open: nothing
	}, "\n")
	run(t, cg.command("/bin/bash", "-c", script))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"read " + w + "/credentials",
		"read " + w + "/.env",
		"read " + w + "/credentials",
		"read " + w + "/env-hardlink",
		"write " + w + "/.env",
	}
	var got []string
	for _, ev := range col.events() {
		if f, ok := ev.(event.File); ok {
			got = append(got, fileLine(f))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("file events:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}
