package export_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/otel/attribute"
)

// smallTmpfs mounts a real, small file system for full-disk faults.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	privtest.Require(t)
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if exec.Command("umount", dir).Run() != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

func paddedTrace(n int) *telemetry.Trace {
	tr := sampleTrace()
	tr.Spans[0].Attrs = append(tr.Spans[0].Attrs, attribute.String("padding", strings.Repeat("p", n)))
	return tr
}

// A full disk under --trace-file: the failed line is cut off, the file
// keeps only whole lines, and the next run appends a readable line.
func TestTraceFileFullDiskLeavesNoPartialLine(t *testing.T) {
	mnt := smallTmpfs(t, "256k")
	path := filepath.Join(mnt, "trace.jsonl")
	w, err := export.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(otlp.Request(sampleTrace())); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("trace file mode %v, want 0600", fi.Mode().Perm())
	}
	err = w.Write(otlp.Request(paddedTrace(400 << 10))) // more than the file system
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing past a full disk: %v, want ENOSPC", err)
	}
	w.Close()
	data, _ := os.ReadFile(path)
	if len(data) == 0 || data[len(data)-1] != '\n' || strings.Count(string(data), "\n") != 1 {
		t.Fatalf("after a failed write the file holds %d bytes, %d lines, last byte %q: a partial line is left",
			len(data), strings.Count(string(data), "\n"), data[len(data)-1:])
	}

	// The next run appends, and every line reads.
	w2, err := export.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Write(otlp.Request(sampleTrace())); err != nil {
		t.Fatal(err)
	}
	w2.Close()
	reqs, err := export.ReadFile(path)
	if err != nil || len(reqs) != 2 {
		t.Fatalf("read back %d requests: %v", len(reqs), err)
	}
}

// A partial line left by a writer that died mid-write is removed before
// the next run appends.
func TestTraceFilePartialLineFromACrashIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	w, _ := export.OpenFile(path)
	w.Write(otlp.Request(sampleTrace()))
	w.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"resourceSpans":[{"resource":{"attr`) // the crash
	f.Close()
	w2, err := export.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Repaired != int64(len(`{"resourceSpans":[{"resource":{"attr`)) {
		t.Errorf("Repaired = %d", w2.Repaired)
	}
	w2.Write(otlp.Request(sampleTrace()))
	w2.Close()
	if reqs, err := export.ReadFile(path); err != nil || len(reqs) != 2 {
		t.Fatalf("read back %d requests: %v", len(reqs), err)
	}
}

// A file that is not a trace file and does not end in a newline is not cut:
// OpenFile refuses it, leaving it as it was.
func TestTraceFileNotATraceIsNotCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	const text = "line one\nno newline at the end"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := export.OpenFile(path); err == nil || !strings.Contains(err.Error(), "not a trace") {
		t.Fatalf("OpenFile = %v, want a refusal naming why", err)
	}
	if b, _ := os.ReadFile(path); string(b) != text {
		t.Errorf("the file was changed: %q", b)
	}
}
