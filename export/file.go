package export

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/agentwatch/agentwatch/telemetry/otlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// FileWriter appends requests to an OTLP/JSON file, one per line — the
// OpenTelemetry Collector file exporter's format, so jq and OTLP tooling
// read it. A line is whole or absent: a write that fails (a full disk) is
// cut back off, and a partial last line an earlier writer left (it died
// mid-write) is removed before the first append, so one failure never
// makes the next run's line unreadable too. Writers of one file take an
// flock around each change, so concurrent runs do not cut each other's.
type FileWriter struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	regular bool // fsync only regular files; a pipe refuses it
	// Repaired is how many bytes of a partial last line OpenFile removed.
	Repaired int64
}

// OpenFile creates (0600) or appends to path; it fails at once when the
// file cannot be written, so a run never starts with an unwritable trace
// file.
func OpenFile(path string) (*FileWriter, error) {
	// 0600: the trace names the user's files and commands.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		// A FIFO or /dev/stdout may be write-only.
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return nil, fmt.Errorf("opening trace file: %w", err)
		}
	}
	// Not only regular files: --trace-file /dev/stdout | jq is a fine use.
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening trace file: %w", err)
	}
	w := &FileWriter{f: f, path: path, regular: st.Mode().IsRegular()}
	if w.regular {
		if w.Repaired, err = w.cutPartialLine(); err != nil {
			f.Close()
			return nil, fmt.Errorf("opening trace file: %w", err)
		}
	}
	return w, nil
}

// cutPartialLine truncates the file after its last newline when the last
// line is not whole; it returns the bytes removed.
func (w *FileWriter) cutPartialLine() (int64, error) {
	unlock := w.lock()
	defer unlock()
	st, err := w.f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, err
	}
	size := st.Size()
	last := make([]byte, 1)
	if _, err := w.f.ReadAt(last, size-1); err != nil {
		return 0, nil // write-only: nothing to check
	}
	if last[0] == '\n' {
		return 0, nil
	}
	// Back to the last newline, 64 KiB at a time.
	end := size
	buf := make([]byte, 64<<10)
	for end > 0 {
		from := max(end-int64(len(buf)), 0)
		n, err := w.f.ReadAt(buf[:end-from], from)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return w.cutTail(from+int64(i)+1, size)
		}
		end = from
	}
	return w.cutTail(0, size)
}

// tracePrefix starts every line MarshalJSON writes.
var tracePrefix = []byte(`{"resourceSpans"`)

// cutTail truncates the file to keep bytes when what follows is the start
// of a trace line; anything else (the path names a file that is not a
// trace file) is left alone and refused.
func (w *FileWriter) cutTail(keep, size int64) (int64, error) {
	head := make([]byte, len(tracePrefix))
	n, _ := w.f.ReadAt(head, keep)
	if !bytes.HasPrefix(tracePrefix, head[:n]) { // head[:n] is the tail's start, at most the prefix's length
		return 0, fmt.Errorf("%s does not end in a whole line and its last line is not a trace: not appending to it", w.path)
	}
	return size - keep, w.f.Truncate(keep)
}

// lock takes the file's flock (regular files only); the returned function
// releases it.
func (w *FileWriter) lock() func() {
	if !w.regular || syscall.Flock(int(w.f.Fd()), syscall.LOCK_EX) != nil {
		return func() {}
	}
	return func() { syscall.Flock(int(w.f.Fd()), syscall.LOCK_UN) }
}

// Write appends one request as a line of OTLP/JSON, in a single write. If
// the write fails, what it wrote of the line is cut off again.
func (w *FileWriter) Write(req *coltracepb.ExportTraceServiceRequest) error {
	line, err := otlp.MarshalJSON(req)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("writing trace file %s: %w", w.path, os.ErrClosed)
	}
	unlock := w.lock()
	defer unlock()
	var before int64 = -1
	if w.regular {
		if st, err := w.f.Stat(); err == nil {
			before = st.Size()
		}
	}
	if _, err := w.f.Write(line); err != nil {
		if before >= 0 {
			if terr := w.f.Truncate(before); terr != nil {
				return fmt.Errorf("writing trace file: %w (and cutting the partial line off: %v)", err, terr)
			}
		}
		return fmt.Errorf("writing trace file: %w", err)
	}
	return nil
}

// Close flushes and closes the file. The data is synced first: the file is
// the run's record and must survive the machine going down right after.
func (w *FileWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	var syncErr error
	if w.regular {
		syncErr = f.Sync()
	}
	if err := errors.Join(syncErr, f.Close()); err != nil {
		return fmt.Errorf("closing trace file: %w", err)
	}
	return nil
}

// ReadFile reads every request of an OTLP/JSON lines file. Blank lines are
// skipped; a bad line is an error naming its line number.
func ReadFile(path string) ([]*coltracepb.ExportTraceServiceRequest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading trace file: %w", err)
	}
	defer f.Close()
	var reqs []*coltracepb.ExportTraceServiceRequest
	// bufio.Reader, not Scanner: one request for a long run is megabytes,
	// far past Scanner's default token limit.
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			req, derr := otlp.UnmarshalJSON(line)
			if derr != nil {
				return nil, fmt.Errorf("reading trace file %s line %d: %w", path, n, derr)
			}
			reqs = append(reqs, req)
		}
		if errors.Is(err, io.EOF) {
			return reqs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading trace file: %w", err)
		}
	}
}
