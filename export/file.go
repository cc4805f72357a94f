package export

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
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
			keep := from + int64(i) + 1
			return size - keep, w.f.Truncate(keep)
		}
		end = from
	}
	return size, w.f.Truncate(0)
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
	line, err := MarshalJSON(req)
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

// MarshalJSON encodes req as one line of OTLP/JSON per the OTLP
// specification's JSON Protobuf Encoding: lowerCamelCase keys, enums as
// integers, 64-bit integers as strings, and trace and span ids as hex
// strings (protojson alone would write them as base64).
func MarshalJSON(req *coltracepb.ExportTraceServiceRequest) ([]byte, error) {
	// Sized once from the protobuf size (OTLP/JSON runs ~2-2.5x larger:
	// hex ids, key names): growing a 20 MB line by appends cost more than
	// encoding it.
	return appendRequestJSON(make([]byte, 0, proto.Size(req)*5/2+4096), req), nil
}

// UnmarshalJSON decodes one OTLP/JSON request. Ids may be hex (the
// specification) or base64 (plain protojson); unknown fields are ignored,
// as the specification asks of receivers.
func UnmarshalJSON(data []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	raw, err := rewriteIDs(data, hexToBase64)
	if err != nil {
		return nil, fmt.Errorf("decoding OTLP/JSON: %w", err)
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, req); err != nil {
		return nil, fmt.Errorf("decoding OTLP/JSON: %w", err)
	}
	return req, nil
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
			req, derr := UnmarshalJSON(line)
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

// rewriteIDs applies conv to every trace/span id field of a JSON request:
// resourceSpans[].scopeSpans[].spans[].{traceId,spanId,parentSpanId} and
// their links[].{traceId,spanId}. Only those paths are touched; an
// attribute that happens to be named spanId is left alone.
func rewriteIDs(data []byte, conv func(string) (string, error)) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep doubleValue and any numbers exactly as written
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	fix := func(obj map[string]any, keys ...string) error {
		for _, k := range keys {
			s, ok := obj[k].(string)
			if !ok || s == "" {
				continue
			}
			c, err := conv(s)
			if err != nil {
				return fmt.Errorf("%s %q: %w", k, s, err)
			}
			obj[k] = c
		}
		return nil
	}
	for _, rs := range objects(doc["resourceSpans"]) {
		for _, ss := range objects(rs["scopeSpans"]) {
			for _, sp := range objects(ss["spans"]) {
				if err := fix(sp, "traceId", "spanId", "parentSpanId"); err != nil {
					return nil, err
				}
				for _, l := range objects(sp["links"]) {
					if err := fix(l, "traceId", "spanId"); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // command lines contain < > & and must stay readable
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func objects(v any) []map[string]any {
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, x := range arr {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// hexToBase64 accepts both encodings: a 16-byte trace id is 32 hex or 24
// base64 characters, an 8-byte span id 16 or 12, so the length tells them
// apart.
func hexToBase64(s string) (string, error) {
	if len(s) != 32 && len(s) != 16 {
		return s, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
