package recorder

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Memory grows with distinct processes and paths, not with events: a
// million writes to one file are one span, 20,000 files are the budget's
// spans plus one aggregate, and 200,000 build outputs outside the
// workspace are a summary.
func TestScaleBounded(t *testing.T) {
	r := New(runInfo())
	r.Add(exec(1, 100, 1, "/usr/bin/python3", ws, "python3", "gen.py"))
	start := time.Now()

	before := heap()
	const repeated = 1_000_000
	r.Add(file(3, 100, event.FileCreate, ws+"/big.log"))
	for i := 0; i < repeated; i++ {
		r.Add(event.File{Header: event.Header{Time: at(4 + i/1000), PID: 100}, Source: event.SourceEBPF, Op: event.FileWrite, Path: ws + "/big.log"})
	}
	if grew := int64(heap()) - int64(before); grew > 1<<20 {
		t.Errorf("1M writes to one path grew the heap by %d bytes", grew)
	}

	const distinct = 20000
	for i := 0; i < distinct; i++ {
		r.Add(file(5+i/1000, 100, event.FileCreate, fmt.Sprintf("%s/gen/%03d/f%05d.txt", ws, i%100, i)))
	}

	const outside = 200000
	before = heap()
	for i := 0; i < outside; i++ {
		r.Add(file(5000, 100, event.FileCreate, fmt.Sprintf("/root/.cache/go-build/%02x/%08d-d", i%256, i)))
	}
	// One hash per distinct path (~40 bytes with map overhead), nothing
	// that keeps the path strings.
	if grew := int64(heap()) - int64(before); grew > 64*outside {
		t.Errorf("%d outside paths grew the heap by %d bytes", outside, grew)
	}
	elapsed := time.Since(start)
	tr := r.Finish(End{Time: at(6000)})

	// Generous: about a second on the 2-core reference machine; the bound
	// catches per-event work that is accidentally quadratic.
	if elapsed > 30*time.Second {
		t.Errorf("%d events took %v", distinct+repeated+outside, elapsed)
	}
	t.Logf("%d events in %v (%v/event), %d spans", distinct+repeated+outside+1, elapsed,
		elapsed/time.Duration(distinct+repeated+outside), len(tr.Spans))

	if want := 2 + fileSpansPerProc + 1; len(tr.Spans) != want {
		t.Fatalf("%d spans, want %d (root, python3, big.log and %d files, one aggregate)", len(tr.Spans), want, fileSpansPerProc-1)
	}
	if n := len(r.Files()); n != distinct+1 {
		t.Errorf("file list has %d paths, want %d", n, distinct+1)
	}
	big := find(t, tr, "file_write big.log")
	wantAttrs(t, big, map[attribute.Key]string{
		telemetry.FileOperations:      `["create","write"]`,
		telemetry.FileOperationsCount: fmt.Sprint(repeated + 1),
	})
	wantAttrs(t, find(t, tr, "bash_command python3"), map[attribute.Key]string{
		telemetry.FilesWritten:          fmt.Sprint(distinct + 1 + outside),
		telemetry.FilesOutsideWorkspace: fmt.Sprint(outside),
		telemetry.FilesOutsideTopDirs:   fmt.Sprintf(`["/root/.cache/go-build (%d)"]`, outside),
	})
}

// The operations list stays capped whatever the pattern of operations,
// and keeps the latest one visible.
func TestFileOpsCapped(t *testing.T) {
	r := New(runInfo())
	r.Add(exec(1, 100, 1, "/bin/sh", ws, "sh"))
	for i := 0; i < 1000; i++ {
		op := event.FileWrite
		if i%2 == 1 {
			op = event.FileChmod
		}
		r.Add(file(2, 100, op, ws+"/flip"))
	}
	r.Add(file(3, 100, event.FileDelete, ws+"/flip"))
	tr := r.Finish(End{Time: at(4)})
	s := find(t, tr, "file_write flip")
	v, _ := s.Attr(telemetry.FileOperations)
	ops := v.AsStringSlice()
	if len(ops) != maxFileOps || ops[len(ops)-1] != "delete" || ops[0] != "write" {
		t.Errorf("operations = %v", ops)
	}
	wantAttrs(t, s, map[attribute.Key]string{
		telemetry.FileOperation:       "delete",
		telemetry.FileOperationsCount: "1001",
	})
}

// Several sensors add concurrently (run with -race).
func TestConcurrentAdd(t *testing.T) {
	r := New(runInfo())
	r.Add(exec(1, 100, 1, "/bin/sh", ws, "sh"))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				switch g {
				case 0:
					r.Add(file(2, 100, event.FileWrite, fmt.Sprintf("%s/a%d", ws, i%50)))
				case 1:
					r.Add(conn(2, 100, event.TCP, "127.0.0.1:8080", 0, ""))
				case 2:
					pid := uint32(1000 + i)
					r.Add(fork(2, pid, 100))
					r.Add(exec(3, pid, 100, "/bin/true", ws, "true"))
					r.Add(exit(4, pid, 0, 0))
				case 3:
					r.Add(event.File{Header: event.Header{Time: at(2)}, Source: event.SourceFSWatch, Op: event.FileWrite, Path: fmt.Sprintf("%s/a%d", ws, i%60)})
				}
			}
		}(g)
	}
	wg.Wait()
	tr := r.Finish(End{Time: at(10)})
	// root, sh, the first procSpansPerParent of 2000 true and an
	// aggregate of the rest, 50 files by sh, 10 fswatch-only, 1 destination
	if want := 2 + procSpansPerParent + 1 + 50 + 10 + 1; len(tr.Spans) != want {
		t.Errorf("%d spans, want %d", len(tr.Spans), want)
	}
	wantAttrs(t, find(t, tr, "network_call tcp 127.0.0.1:8080"), map[attribute.Key]string{
		telemetry.ConnectionsCount: "2000",
	})
}
