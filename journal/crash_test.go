package journal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/privtest"
)

const childEnv = "AGENTWATCH_JOURNAL_CRASH_CHILD"

// TestCrashChild is the supervisor stand-in of TestCrashRecovery: it
// journals events forever, saying on stdout how many were certainly
// synced, until the parent SIGKILLs it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	const interval = 50 * time.Millisecond
	w, err := CreateWith(dir, "crashed", []byte(`{"argv":["agent"]}`), Options{SyncInterval: interval})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	const synced = 2000
	i := 0
	for ; i < synced; i++ {
		w.Append(seqEvent(i))
	}
	w.AppendMeta("placeholder", []byte("/w/.env"))
	time.Sleep(4 * interval) // the flusher has written and synced them
	fmt.Printf("synced %d\n", synced)
	for ; ; i++ {
		w.Append(seqEvent(i))
		if i%100 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

func seqEvent(i int) event.Event {
	return event.Exec{Header: event.Header{Time: time.Unix(1_700_000_000, int64(i)), PID: uint32(i)}, Filename: "/bin/true", Argv: []string{"true", strconv.Itoa(i)}}
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %q %v", line, err)
	}
	var synced int
	if _, err := fmt.Sscanf(line, "synced %d", &synced); err != nil {
		t.Fatalf("child said %q", line)
	}
	// Alive: its lock is held, so it is not pending.
	if ps, err := Pending(dir); err != nil || len(ps) != 0 {
		t.Fatalf("live journal listed as pending: %v %v", ps, err)
	}
	time.Sleep(120 * time.Millisecond) // let it append (and sync some) past the synced mark
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	ps, err := Pending(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("Pending after SIGKILL: %d journals", len(ps))
	}
	o := ps[0]
	defer o.Close()
	if o.Info.RunID != "crashed" || o.Info.PID != cmd.Process.Pid || string(o.Info.Header) != `{"argv":["agent"]}` || o.Corrupt != nil {
		t.Errorf("orphan %+v (child pid %d)", o, cmd.Process.Pid)
	}
	next, metaAt := 0, -1
	st, err := o.Replay(func(r Record) error {
		if r.Meta != nil {
			if r.Meta.Kind == "placeholder" && string(r.Meta.Data) == "/w/.env" {
				metaAt = next
			}
			return nil
		}
		want := seqEvent(next)
		if !reflect.DeepEqual(r.Event, want) {
			return fmt.Errorf("event %d = %+v, want %+v", next, r.Event, want)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next < synced {
		t.Errorf("recovered %d events, the child had synced %d", next, synced)
	}
	if metaAt != synced {
		t.Errorf("placeholder meta after event %d, want %d", metaAt, synced)
	}
	if st.Corrupt {
		t.Errorf("stats %+v", st)
	}
	t.Logf("recovered %d events (%d synced before the kill), torn tail %v (%d bytes)", next, synced, st.TruncatedTail, st.SkippedBytes)
}

// mountTmpfs mounts a 64 KiB tmpfs: a real full disk.
func mountTmpfs(t *testing.T) string { return mountTmpfsSize(t, "64k") }

func mountTmpfsSize(t *testing.T, size string) string {
	t.Helper()
	privtest.Require(t) // mounting a small tmpfs needs root
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		skip("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if exec.Command("umount", dir).Run() != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// fillDisk writes path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 512)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDiskFullKeepsEventsAndRecovers(t *testing.T) {
	mnt := mountTmpfs(t)
	w, err := CreateWith(filepath.Join(mnt, "journal"), "full", []byte("h"), Options{SyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() }) // before the unmount
	ballast := filepath.Join(mnt, "ballast")
	fillDisk(t, ballast)

	const n = 600 // about 30 KiB: more than is free, less than the file system
	var slowest time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		w.Append(seqEvent(i))
		if d := time.Since(t0); d > slowest {
			slowest = d
		}
		if i%100 == 0 {
			time.Sleep(15 * time.Millisecond) // let the flusher hit the full disk
		}
	}
	if slowest > 20*time.Millisecond {
		t.Errorf("an Append took %v on a full disk", slowest)
	}
	waitFor(t, "Err to report ENOSPC", func() bool { return errors.Is(w.Err(), syscall.ENOSPC) })
	msg := w.Err().Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, w.Path()) || !strings.Contains(msg, "no space left on device") {
		t.Errorf("Err = %q: want one line naming %s and the cause", msg, w.Path())
	}
	t.Logf("Err on a full disk: %s", msg)
	if s := w.Stats(); s.Buffered == 0 || s.Dropped != 0 {
		t.Errorf("stats on a full disk %+v: want events buffered, none dropped", s)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backlog to be written", func() bool { return w.Err() == nil })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := 0
	_, st, err := ReadFile(w.Path(), func(r Record) error {
		if !reflect.DeepEqual(r.Event, seqEvent(next)) {
			return fmt.Errorf("event %d = %+v", next, r.Event)
		}
		next++
		return nil
	})
	if err != nil || next != n || st.TruncatedTail || st.Corrupt {
		t.Errorf("read back %d of %d events, stats %+v, err %v", next, n, st, err)
	}
}

func TestDiskFullPastTheBufferDropsAndCounts(t *testing.T) {
	mnt := mountTmpfs(t)
	w, err := CreateWith(filepath.Join(mnt, "journal"), "drops", nil, Options{SyncInterval: 10 * time.Millisecond, MaxBuffered: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	fillDisk(t, ballast)
	t.Cleanup(func() { w.Close() }) // before the unmount
	// Append until the flusher hits the full disk (the journal's last
	// page has some room), then 600 more: far past MaxBuffered.
	n := 0
	for ; !errors.Is(w.Err(), syscall.ENOSPC); n++ {
		if n > 5000 {
			t.Fatalf("no ENOSPC after %d events: %v", n, w.Err())
		}
		w.Append(seqEvent(n))
		time.Sleep(100 * time.Microsecond)
	}
	for end := n + 600; n < end; n++ {
		w.Append(seqEvent(n))
	}
	s := w.Stats()
	if s.Dropped == 0 || s.Buffered > 5<<10 {
		t.Fatalf("stats %+v: want drops and at most about MaxBuffered kept", s)
	}
	os.Remove(ballast)
	waitFor(t, "the backlog to be written", func() bool { w.Sync(); return w.Stats().Buffered == 0 })
	err = w.Err()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d events not journaled", s.Dropped)) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Err after drops = %v", err)
	}
	w.Append(seqEvent(n)) // the drop note goes before it
	if err := w.Close(); err == nil {
		t.Error("Close after drops: nil error")
	}
	events, dropped := 0, 0
	_, st, rerr := ReadFile(w.Path(), func(r Record) error {
		if r.Meta != nil && r.Meta.Kind == MetaDropped {
			k, _ := strconv.Atoi(string(r.Meta.Data))
			dropped += k
		} else if r.Event != nil {
			events++
		}
		return nil
	})
	if rerr != nil || st.Corrupt || events+dropped != n+1 || uint64(dropped) != s.Dropped {
		t.Errorf("read %d events + %d dropped (writer said %d), want %d in all; stats %+v %v", events, dropped, s.Dropped, n+1, st, rerr)
	}
}

// fixCRCs recomputes every checksum in a journal so that a fuzzed body
// reaches the record decoders, not only the frame check.
func fixCRCs(data []byte) []byte {
	d := append([]byte(nil), data...)
	const fixed = len(magic) + 18
	if len(d) < fixed {
		return d
	}
	idLen := int(binary.LittleEndian.Uint16(d[24:]))
	if fixed+idLen+4 > len(d) {
		return d
	}
	hEnd := fixed + idLen + 4 + int(binary.LittleEndian.Uint32(d[fixed+idLen:]))
	if hEnd < 0 || hEnd+4 > len(d) {
		return d
	}
	binary.LittleEndian.PutUint32(d[hEnd:], crc32.Checksum(d[:hEnd], castagnoli))
	for off := hEnd + 4; off+frameLen <= len(d); {
		n := int(binary.LittleEndian.Uint32(d[off:]))
		if n <= 0 || n > len(d)-off-frameLen {
			break
		}
		body := d[off+frameLen : off+frameLen+n]
		binary.LittleEndian.PutUint32(d[off+4:], crc32.Checksum(body, castagnoli))
		off += frameLen + n
	}
	return d
}

func journalBytes(f *testing.F, evs []event.Event) []byte {
	dir := f.TempDir()
	w, err := Create(dir, "fuzz", []byte("hdr"))
	if err != nil {
		f.Fatal(err)
	}
	for _, ev := range evs {
		w.Append(ev)
	}
	w.AppendMeta("end", []byte("x"))
	w.Close()
	b, err := os.ReadFile(w.Path())
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func FuzzJournalRead(f *testing.F) {
	var evs []event.Event
	for seed, ev := range registered {
		evs = append(evs, populated(f, reflect.TypeOf(ev), seed))
	}
	full := journalBytes(f, evs)
	f.Add(full)
	f.Add(full[:len(full)/2])
	f.Add(journalBytes(f, nil))
	f.Add(journalBytes(f, []event.Event{event.DNSQuery{Answers: []netip.Addr{netip.MustParseAddr("::1")}}}))
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range [][]byte{data, fixCRCs(data)} {
			var n int
			_, st, err := Read(bytes.NewReader(d), int64(len(d)), func(r Record) error {
				if (r.Event == nil) == (r.Meta == nil) {
					t.Fatalf("record with neither or both: %+v", r)
				}
				n++
				return nil
			})
			if err != nil {
				continue // bad header: an error, never a panic
			}
			if st.Events+st.Metas != n || st.ValidBytes+st.SkippedBytes != int64(len(d)) || (st.Corrupt && st.TruncatedTail) {
				t.Fatalf("inconsistent stats %+v for %d records of %d bytes", st, n, len(d))
			}
		}
	})
}

func benchAppend(b *testing.B, ev event.Event) {
	w, err := Create(b.TempDir(), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Remove()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Append(ev)
	}
	b.StopTimer()
	if err := w.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(w.Stats().Written)/float64(b.N), "B/event")
}

var benchNow = time.Now().Round(0)

func BenchmarkAppendFile(b *testing.B) {
	benchAppend(b, event.File{Header: event.Header{Time: benchNow, PID: 4242}, Source: event.SourceEBPF, Op: event.FileWrite, Path: "/home/user/work/project/src/internal/module/file.go", Mode: 0o644})
}

func BenchmarkAppendExec(b *testing.B) {
	benchAppend(b, event.Exec{Header: event.Header{Time: benchNow, PID: 4242}, PPID: 4200, UID: 1000, GID: 1000, Filename: "/usr/bin/git",
		Argv: []string{"git", "commit", "-m", "fix the flaky test in the scheduler"}, Cwd: "/home/user/work/project", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
}

func BenchmarkAppendConnect(b *testing.B) {
	benchAppend(b, event.Connect{Header: event.Header{Time: benchNow, PID: 4242}, Source: event.SourceEBPF, Op: event.NetConnect, Transport: event.TCP, Addr: netip.MustParseAddrPort("93.184.216.34:443"), Name: "example.com"})
}

func BenchmarkAppendLLMCall(b *testing.B) {
	benchAppend(b, event.LLMCall{Header: event.Header{Time: benchNow}, Start: benchNow, FirstByte: benchNow, End: benchNow, Provider: "anthropic", API: "messages", Method: "POST", Path: "/v1/messages",
		Status: 200, Stream: true, RequestModel: "claude-x", ResponseModel: "claude-x", ResponseID: "msg_0123456789", FinishReasons: []string{"tool_use"},
		InputTokens: 12000, OutputTokens: 800, UsageKnown: true, RequestBytes: 50000, ResponseBytes: 4000, PromptSHA256: strings.Repeat("a", 64),
		ToolsOffered: []string{"Bash", "Edit", "Read", "Write", "Grep"}, ToolCalls: []event.ToolCall{{ID: "toolu_1", Name: "Bash"}}})
}

func BenchmarkAppendFileParallel(b *testing.B) {
	w, err := Create(b.TempDir(), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Remove()
	ev := event.File{Header: event.Header{Time: benchNow, PID: 4242}, Source: event.SourceEBPF, Op: event.FileWrite, Path: "/home/user/work/project/src/internal/module/file.go"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Append(ev)
		}
	})
}

// The space reserved at Create is the journal's: a disk filled after the
// run started (by the agent, in its workspace on the same file system)
// does not stop the journal.
func TestReservedSpaceOutlivesAFullDisk(t *testing.T) {
	mnt := mountTmpfsSize(t, "4m")
	w, err := CreateWith(filepath.Join(mnt, "journal"), "reserved", []byte("h"), Options{SyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if w.Reserved() < 1<<20 {
		t.Fatalf("reserved %d bytes on a 4 MiB file system, want at least 1 MiB", w.Reserved())
	}
	fillDisk(t, filepath.Join(mnt, "ballast"))
	const n = 5000 // about 250 KiB, all past the full disk
	for i := 0; i < n; i++ {
		w.Append(seqEvent(i))
	}
	if err := w.Sync(); err != nil {
		t.Fatalf("journal on a full disk with %d bytes reserved: %v", w.Reserved(), err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := 0
	_, st, err := ReadFile(w.Path(), func(r Record) error {
		if !reflect.DeepEqual(r.Event, seqEvent(next)) {
			return fmt.Errorf("event %d = %+v", next, r.Event)
		}
		next++
		return nil
	})
	if err != nil || next != n || st.TruncatedTail || st.Corrupt {
		t.Errorf("read back %d of %d events, stats %+v, err %v", next, n, st, err)
	}
}
