// Package ebpf loads agentwatch's eBPF programs (bpf/, compiled by bpf2go),
// filters them in the kernel to one run's cgroup, reads the ring buffer and
// decodes records into events. It is the only package that imports
// cilium/ebpf. It observes only: no spans, no policy. It mounts nothing
// (tp_btf programs need neither tracefs nor bpffs).
package ebpf

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/agentwatch/agentwatch/event"
)

const (
	// DefaultRingBytes is the ring buffer size when Config.RingBytes is 0.
	// The ring is mapped twice into this process (the kernel maps the data
	// pages again for wrap-around), so every MiB here costs 2 MiB of the
	// supervisor's RSS once the ring has wrapped: 4 MiB made 8 of the exec
	// loop's ~44 MB (W2.4 asks ≤ 40). 2 MiB holds ~20 ms at 1 M records/s
	// of ~100 bytes (more than this machine's syscalls produce while
	// traced) — the reader's longest sleep (DefaultMaxLatency) — and
	// 80-130 ms at the rates `make bench` measures (~150-250 k/s); its
	// lossless-ceiling step checks that no record is dropped.
	DefaultRingBytes = 2 << 20
	// DefaultMaxLatency is how long a record may wait in the ring before
	// the reader looks, when too little is pending to wake it.
	DefaultMaxLatency = 20 * time.Millisecond
)

// privilegeHint says what the loader needs; callers test the wrapped error
// with errors.Is(err, os.ErrPermission).
const privilegeHint = "needs root, or CAP_BPF and CAP_PERFMON"

// Config selects what the sensor watches.
type Config struct {
	CgroupID    uint64 // cgroup v2 id of the run's cgroup (inode number of its directory)
	CgroupLevel int    // its depth below the cgroup v2 root (root = 0)
	// Emit receives every decoded event, in ring-buffer order, from the
	// reader goroutine (and, during Close, from the closing goroutine after
	// the reader has stopped).
	Emit func(event.Event)
	// RingBytes is the ring buffer size: a power of two, multiple of the
	// page size. 0 means DefaultRingBytes.
	RingBytes int
	// MaxLatency bounds how long a record sits in the ring before it is
	// read. 0 means DefaultMaxLatency.
	MaxLatency time.Duration
	// ContextVars names the environment variables read from every exec'd
	// image's environment (as of the exec), and the only ones: their
	// values ride on that exec's event.Exec. TRACEPARENT fills its
	// TraceParent, any other name its ToolCallID (an agent's tool-call id,
	// such as CODEX_TOOL_CALL_ID). A value longer than 256 bytes counts as
	// absent. Nothing else of the environment is kept. Nil: none read.
	ContextVars []string
}

// Sensor is a loaded, attached set of programs.
type Sensor struct {
	objs       agentwatchObjects
	links      []link.Link
	rd         *ringbuf.Reader
	emit       func(event.Event)
	bootOffset int64
	// mu serializes draining the ring (the reader, Sync, Close): records
	// reach Emit one at a time and in ring order. contextVars and
	// contexts pair an environment record with the exec record that
	// follows it (see env_rec); envRecords counts the environment records
	// handled (for tests, read after Close). drained: Close is done with
	// the ring.
	mu          sync.Mutex
	drained     bool
	contextVars []contextVar
	contexts    map[uint32][2]string
	envRecords  int
	latency     time.Duration
	// wake is the ring's fd (a duplicate) in Go's netpoller: readable
	// when the kernel side wakes the reader.
	wake     *os.File
	wakeConn syscall.RawConn

	closing   atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	// finalDropped keeps the count once the map is gone.
	finalDropped atomic.Uint64
	closed       atomic.Bool
}

// Start loads and attaches the programs and starts reading.
func Start(cfg Config) (*Sensor, error) {
	if cfg.Emit == nil {
		return nil, errors.New("starting eBPF sensor: Config.Emit is nil")
	}
	if cfg.CgroupID == 0 {
		return nil, errors.New("starting eBPF sensor: no cgroup id (the run must have its own cgroup v2)")
	}
	if cfg.CgroupLevel < 0 || cfg.CgroupLevel > 255 {
		return nil, fmt.Errorf("starting eBPF sensor: cgroup level %d out of range", cfg.CgroupLevel)
	}
	ring := cfg.RingBytes
	if ring == 0 {
		ring = DefaultRingBytes
	}
	if ring < os.Getpagesize() || ring&(ring-1) != 0 {
		return nil, fmt.Errorf("starting eBPF sensor: ring size %d is not a power of two of at least a page", ring)
	}
	vars, err := contextVars(cfg.ContextVars)
	if err != nil {
		return nil, err
	}
	s := &Sensor{
		emit:        cfg.Emit,
		contextVars: vars,
		contexts:    map[uint32][2]string{},
		latency:     cfg.MaxLatency,
		done:        make(chan struct{}),
	}
	if s.latency <= 0 {
		s.latency = DefaultMaxLatency
	}
	if err := load(&s.objs, uint64(cfg.CgroupID), uint32(cfg.CgroupLevel), ring); err != nil {
		return nil, err
	}
	if s.bootOffset, err = measureBootOffset(); err != nil {
		s.objs.Close()
		return nil, err
	}
	// The reader exists before anything is attached, so no record can be
	// produced that nobody will read.
	if s.rd, err = ringbuf.NewReader(s.objs.Events); err != nil {
		s.objs.Close()
		return nil, fmt.Errorf("opening ring buffer reader: %w", err)
	}
	if err := s.openWake(); err != nil {
		s.rd.Close()
		s.objs.Close()
		return nil, err
	}
	for _, p := range s.programs() {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog})
		if err != nil {
			s.detach()
			s.wake.Close()
			s.rd.Close()
			s.objs.Close()
			return nil, fmt.Errorf("attaching tp_btf/%s: %w", p.name, err)
		}
		s.links = append(s.links, l)
	}
	go s.read()
	return s, nil
}

// program is one of the sensor's programs and the tracepoint it runs on.
type program struct {
	name string
	prog *ebpf.Program
}

// programs lists the sensor's programs in attach order: syscalls
// (sys_exit) first, then exit/exec, fork last, so that a process seen
// forking is never missing its later events.
func (s *Sensor) programs() []program {
	return []program{
		{"sys_exit", s.objs.OnSysExit},
		{"sched_process_exit", s.objs.OnExit},
		{"sched_process_exec", s.objs.OnExec},
		{"sched_process_fork", s.objs.OnFork},
	}
}

// load loads the collection with the run's settings. Verifier errors are
// formatted with %+v: the full log is the only useful clue.
func load(objs *agentwatchObjects, cgroupID uint64, level uint32, ring int) error {
	// A no-op on kernels that charge BPF memory to the cgroup (5.11+); it
	// fails with EPERM without privileges, which is the useful message.
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("preparing to load eBPF programs (%s): %w", privilegeHint, err)
	}
	spec, err := loadAgentwatch()
	if err != nil {
		return fmt.Errorf("reading embedded eBPF object: %w", err)
	}
	for name, v := range map[string]any{
		"target_cgroup_id":    cgroupID,
		"target_cgroup_level": level,
		"wakeup_bytes":        uint64(ring / 16),
	} {
		sv, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("eBPF object has no variable %s", name)
		}
		if err := sv.Set(v); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	spec.Maps["events"].MaxEntries = uint32(ring)
	if err := spec.LoadAndAssign(objs, loadOptions()); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("loading eBPF programs: verifier rejected them: %+v", ve)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("loading eBPF programs (%s): %w", privilegeHint, err)
		}
		return fmt.Errorf("loading eBPF programs (needs a kernel with BTF, ring buffers and tp_btf): %w", err)
	}
	return nil
}

// Check loads every program through the verifier without attaching; doctor
// uses it to say whether the sensor will run here.
func Check() error {
	var objs agentwatchObjects
	// Any cgroup id works for the verifier; the root's id is 1.
	if err := load(&objs, 1, 0, os.Getpagesize()*16); err != nil {
		return err
	}
	return objs.Close()
}

// read runs the reader loop until Close stops it.
//
// Between drains it waits on the ring's fd through Go's netpoller (the
// kernel side wakes it past a fill threshold), with a deadline of the
// latency bound for records submitted without a wakeup. It does not wait
// inside ringbuf.Reader.ReadInto, which holds the reader's lock while it
// blocks: Sync would then wait out the latency behind it.
func (s *Sensor) read() {
	defer close(s.done)
	for {
		s.drain()
		if s.closing.Load() {
			return
		}
		s.wake.SetReadDeadline(time.Now().Add(s.latency))
		// The callback is asked first and again after each readiness
		// event; false parks the goroutine in the netpoller.
		err := s.wakeConn.Read(func(uintptr) bool { return s.closing.Load() || s.rd.AvailableBytes() > 0 })
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// The poller failed (never seen): keep reading on the
			// latency bound rather than stop delivering.
			time.Sleep(s.latency)
		}
	}
}

// drain emits every record in the ring now, without waiting.
func (s *Sensor) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drained {
		return
	}
	var rec ringbuf.Record
	s.rd.SetDeadline(time.Now())
	for s.rd.ReadInto(&rec) == nil {
		s.dispatch(rec.RawSample)
	}
}

// Sync emits, before it returns, every record the kernel side has
// committed so far. A caller about to emit an event from another source
// calls it first: whatever a process did in the kernel before (its exec
// above all) is then on the record before the event that names it, with
// no need to poll the ring often. Safe for concurrent use, and after
// Close (a no-op then). It must not be called from Emit.
func (s *Sensor) Sync() { s.drain() }

func (s *Sensor) dispatch(b []byte) {
	ev, err := decode(b, s.bootOffset)
	if err != nil {
		// Only a layout mismatch between bpf/ and decode.go gets here,
		// which layout_test catches; count it rather than crash a run.
		s.finalDropped.Add(1)
		return
	}
	switch e := ev.(type) {
	case execEnv:
		s.noteEnv(e)
		return
	case event.Exec:
		if c, ok := s.contexts[e.PID]; ok {
			e.TraceParent, e.ToolCallID = c[0], c[1]
			delete(s.contexts, e.PID)
			ev = e
		}
	}
	s.emit(ev)
}

// maxPendingContexts bounds contexts: an exec record lost to a full ring
// leaves its environment's entry behind.
const maxPendingContexts = 4096

func (s *Sensor) noteEnv(e execEnv) {
	s.envRecords++
	if s.contextVars == nil {
		return
	}
	tp, id := execContext(s.contextVars, e.entries())
	if tp == "" && id == "" {
		delete(s.contexts, e.PID)
		return
	}
	if len(s.contexts) >= maxPendingContexts {
		clear(s.contexts)
	}
	s.contexts[e.PID] = [2]string{tp, id}
}

// openWake puts a duplicate of the ring's fd in Go's netpoller.
func (s *Sensor) openWake() error {
	fd, err := unix.FcntlInt(uintptr(s.objs.Events.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("duplicating the ring buffer fd: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("making the ring buffer fd non-blocking: %w", err)
	}
	s.wake = os.NewFile(uintptr(fd), "ringbuf")
	if s.wakeConn, err = s.wake.SyscallConn(); err != nil {
		s.wake.Close()
		return fmt.Errorf("polling the ring buffer fd: %w", err)
	}
	// A file the netpoller refused (not pollable) would make Read spin;
	// a deadline only works on one it accepted.
	if err := s.wake.SetReadDeadline(time.Time{}); err != nil {
		s.wake.Close()
		return fmt.Errorf("polling the ring buffer fd: %w", err)
	}
	return nil
}

// Dropped returns how many records were lost so far: not queued by the
// kernel (ring buffer full), or (never expected) not decodable.
func (s *Sensor) Dropped() uint64 {
	if s.closed.Load() {
		return s.finalDropped.Load()
	}
	return s.finalDropped.Load() + s.kernelDropped()
}

func (s *Sensor) kernelDropped() uint64 {
	var perCPU []uint64
	if err := s.objs.Dropped.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// Close drains what is left in the ring buffer, detaches and frees
// everything. Events already in the ring are emitted before it returns.
func (s *Sensor) Close() error {
	s.closeOnce.Do(func() {
		// Everything queued so far reaches Emit before detaching (the
		// reader drains once more when it sees closing)...
		s.closing.Store(true)
		s.wake.SetReadDeadline(time.Now())
		<-s.done
		s.detach()
		// ...and so does what was committed while detaching.
		s.drain()
		s.mu.Lock()
		s.drained = true
		s.mu.Unlock()
		s.finalDropped.Add(s.kernelDropped())
		s.closed.Store(true)
		s.closeErr = errors.Join(s.wake.Close(), s.rd.Close(), s.objs.Close())
	})
	return s.closeErr
}

func (s *Sensor) detach() {
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
}

// CgroupID returns the id the kernel uses for the cgroup v2 directory at
// path (what bpf_get_current_cgroup_id returns): its inode number.
func CgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("reading cgroup id of %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("reading cgroup id of %s: %w", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("reading cgroup id of %s: not on a cgroup v2 file system", path)
	}
	return st.Ino, nil
}

// measureBootOffset returns wall clock minus CLOCK_BOOTTIME (what
// bpf_ktime_get_boot_ns reads), taking the tightest of a few samples.
func measureBootOffset() (int64, error) {
	best, bestSpan := int64(0), int64(-1)
	for range 5 {
		var a, b unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &a); err != nil {
			return 0, fmt.Errorf("reading CLOCK_BOOTTIME: %w", err)
		}
		wall := time.Now().UnixNano()
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &b); err != nil {
			return 0, fmt.Errorf("reading CLOCK_BOOTTIME: %w", err)
		}
		span := b.Nano() - a.Nano()
		if bestSpan < 0 || span < bestSpan {
			best, bestSpan = wall-(a.Nano()+span/2), span
		}
	}
	return best, nil
}

// ProgramStat is one attached program's kernel-side cost so far.
type ProgramStat struct {
	Name    string
	Runs    uint64
	Runtime time.Duration
}

// ProgramStats reports each program's run count and time in the kernel.
// Both stay 0 unless BPF statistics are on (sysctl
// kernel.bpf_stats_enabled=1, which costs a little on every run): a
// development aid for `make bench` investigations.
func (s *Sensor) ProgramStats() []ProgramStat {
	var out []ProgramStat
	for _, p := range s.programs() {
		st, err := p.prog.Stats()
		if err != nil {
			continue
		}
		out = append(out, ProgramStat{Name: p.name, Runs: st.RunCount, Runtime: st.Runtime})
	}
	return out
}
