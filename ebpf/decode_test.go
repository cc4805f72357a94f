package ebpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/agentwatch/agentwatch/event"
)

// The decoder's offsets must be the C structs' offsets; bpf2go generates the
// Go mirror of those structs from the object's BTF, so compare with it.
func TestLayoutMatchesBPFObject(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"rec_hdr", unsafe.Sizeof(agentwatchRecHdr{}), hdrSize},
		{"fork_rec", unsafe.Sizeof(agentwatchForkRec{}), forkSize},
		{"exit_rec", unsafe.Sizeof(agentwatchExitRec{}), exitSize},
		{"exec_rec", unsafe.Sizeof(agentwatchExecRec{}), execFixedSize},
		{"env_rec", unsafe.Sizeof(agentwatchEnvRec{}), envFixedSize},
		{"env.head_len", unsafe.Offsetof(agentwatchEnvRec{}.HeadLen), 16},
		{"env.tail_len", unsafe.Offsetof(agentwatchEnvRec{}.TailLen), 18},
		{"env.total_len", unsafe.Offsetof(agentwatchEnvRec{}.TotalLen), 20},
		{"file_rec", unsafe.Sizeof(agentwatchFileRec{}), fileFixedSize},
		{"net_rec", unsafe.Sizeof(agentwatchNetRec{}), netSize},
		{"unix_rec", unsafe.Sizeof(agentwatchUnixRec{}), unixSize},
		{"uring_rec", unsafe.Sizeof(agentwatchUringRec{}), uringSize},
		{"hdr.tgid", unsafe.Offsetof(agentwatchRecHdr{}.Tgid), 4},
		{"hdr.ts_ns", unsafe.Offsetof(agentwatchRecHdr{}.TsNs), 8},
		{"fork.ppid", unsafe.Offsetof(agentwatchForkRec{}.Ppid), 16},
		{"exit.exit_code", unsafe.Offsetof(agentwatchExitRec{}.ExitCode), 16},
		{"exec.ppid", unsafe.Offsetof(agentwatchExecRec{}.Ppid), 16},
		{"exec.uid", unsafe.Offsetof(agentwatchExecRec{}.Uid), 20},
		{"exec.gid", unsafe.Offsetof(agentwatchExecRec{}.Gid), 24},
		{"exec.filename_len", unsafe.Offsetof(agentwatchExecRec{}.FilenameLen), 28},
		{"exec.argv_len", unsafe.Offsetof(agentwatchExecRec{}.ArgvLen), 30},
		{"exec.cwd_len", unsafe.Offsetof(agentwatchExecRec{}.CwdLen), 32},
		{"exec.argv_truncated", unsafe.Offsetof(agentwatchExecRec{}.ArgvTruncated), 34},
		{"exec.interp_len", unsafe.Offsetof(agentwatchExecRec{}.InterpLen), 36},
		{"file.op", unsafe.Offsetof(agentwatchFileRec{}.Op), 16},
		{"file.err", unsafe.Offsetof(agentwatchFileRec{}.Err), 20},
		{"file.mode", unsafe.Offsetof(agentwatchFileRec{}.Mode), 24},
		{"file.len", unsafe.Offsetof(agentwatchFileRec{}.Len), 28},
		{"net.op", unsafe.Offsetof(agentwatchNetRec{}.Op), 16},
		{"net.transport", unsafe.Offsetof(agentwatchNetRec{}.Transport), 17},
		{"net.family", unsafe.Offsetof(agentwatchNetRec{}.Family), 18},
		{"net.err", unsafe.Offsetof(agentwatchNetRec{}.Err), 20},
		{"net.port", unsafe.Offsetof(agentwatchNetRec{}.Port), 24},
		{"net.addr", unsafe.Offsetof(agentwatchNetRec{}.Addr), 32},
		{"unix.path_len", unsafe.Offsetof(agentwatchUnixRec{}.PathLen), 18},
		{"unix.err", unsafe.Offsetof(agentwatchUnixRec{}.Err), 20},
		{"unix.peer_pid", unsafe.Offsetof(agentwatchUnixRec{}.PeerPid), 24},
		{"unix.path", unsafe.Offsetof(agentwatchUnixRec{}.Path), 32},
		{"uring.entries", unsafe.Offsetof(agentwatchUringRec{}.Entries), 16},
		{"uring.err", unsafe.Offsetof(agentwatchUringRec{}.Err), 20},
	} {
		if c.got != c.want {
			t.Errorf("%s: BPF object has %d, decoder assumes %d", c.name, c.got, c.want)
		}
	}
}

// rec builds records the way bpf/agentwatch.c lays them out.
type rec struct{ b []byte }

func newRec(kind byte, tgid uint32, ts uint64, fixed int) *rec {
	b := make([]byte, fixed)
	b[0] = kind
	binary.NativeEndian.PutUint32(b[4:], tgid)
	binary.NativeEndian.PutUint64(b[8:], ts)
	return &rec{b}
}

func (r *rec) u8(off int, v uint8) *rec   { r.b[off] = v; return r }
func (r *rec) u16(off int, v uint16) *rec { binary.NativeEndian.PutUint16(r.b[off:], v); return r }
func (r *rec) u32(off int, v uint32) *rec { binary.NativeEndian.PutUint32(r.b[off:], v); return r }

func (r *rec) bytes(off int, v string) *rec { copy(r.b[off:], v); return r }

// strs appends strings and stores their lengths as u16 from lenOff on.
// A string ending in "\x00" is stored as is, like bpf_probe_read_str does.
func (r *rec) strs(lenOff int, ss ...string) *rec {
	for i, s := range ss {
		r.u16(lenOff+2*i, uint16(len(s)))
		r.b = append(r.b, s...)
	}
	return r
}

func TestDecode(t *testing.T) {
	const off = int64(1_700_000_000_000_000_000) // wall - boot
	const ts = 5_000_000_123
	hdr := event.Header{PID: 4242, Time: time.Unix(0, off+ts)}
	long := strings.Repeat("y", 1500)
	bashC := "set -e; cd /work && " + strings.Repeat("echo step && ", 40) + "make test"

	v4 := make([]byte, 16)
	copy(v4, []byte{127, 0, 0, 1})
	v6 := netip.MustParseAddr("2001:db8::1").As16()

	tests := []struct {
		name string
		in   []byte
		want event.Event
	}{
		{"fork",
			newRec(kindFork, 4242, ts, forkSize).u32(16, 100).b,
			event.Fork{Header: hdr, PPID: 100}},
		{"exit 3",
			newRec(kindExit, 4242, ts, exitSize).u32(16, 3<<8).b,
			event.Exit{Header: hdr, Code: 3}},
		{"killed by SIGTERM",
			newRec(kindExit, 4242, ts, exitSize).u32(16, 15).b,
			event.Exit{Header: hdr, Signal: 15}},
		{"SIGSEGV with core dump",
			newRec(kindExit, 4242, ts, exitSize).u32(16, 0x80|11).b,
			event.Exit{Header: hdr, Signal: 11}},
		{"exec bash -c with a long line",
			newRec(kindExec, 4242, ts, execFixedSize).u32(16, 100).u32(20, 1000).u32(24, 1001).
				strs(28, "/usr/bin/bash\x00", "bash\x00-c\x00"+bashC+"\x00", "/work/repo\x00").b,
			event.Exec{Header: hdr, PPID: 100, UID: 1000, GID: 1001, Filename: "/usr/bin/bash",
				Argv: []string{"bash", "-c", bashC}, Cwd: "/work/repo"}},
		{"exec relative filename is made absolute against cwd",
			newRec(kindExec, 4242, ts, execFixedSize).strs(28, "./x.sh\x00", "./x.sh\x00"+long+"\x00", "/w\x00").b,
			event.Exec{Header: hdr, Filename: "/w/x.sh", Argv: []string{"./x.sh", long}, Cwd: "/w"}},
		{"exec with truncated argv keeps the partial last argument",
			newRec(kindExec, 4242, ts, execFixedSize).u8(34, 1).strs(28, "/bin/echo\x00", "echo\x00aaa\x00bb", "/\x00").b,
			event.Exec{Header: hdr, Filename: "/bin/echo", Argv: []string{"echo", "aaa", "bb"}, ArgvTruncated: true, Cwd: "/"}},
		{"exec with empty argv",
			newRec(kindExec, 4242, ts, execFixedSize).strs(28, "/bin/x\x00", "", "/\x00").b,
			event.Exec{Header: hdr, Filename: "/bin/x", Cwd: "/"}},
		{"create resolved from the fd",
			newRec(kindFile, 4242, ts, fileFixedSize).u8(16, uint8(event.FileCreate)).u32(24, 0o644).
				strs(28, "", "/work/repo/new.txt\x00").b,
			event.File{Header: hdr, Source: event.SourceEBPF, Op: event.FileCreate, Path: "/work/repo/new.txt", Mode: 0o644}},
		{"refused open keeps the errno and joins the cwd",
			newRec(kindFile, 4242, ts, fileFixedSize).u8(16, uint8(event.FileWrite)).u32(20, 30).
				strs(28, "../etc/passwd\x00", "/work/repo\x00").b,
			event.File{Header: hdr, Source: event.SourceEBPF, Op: event.FileWrite, Path: "/work/etc/passwd", Errno: 30}},
		{"absolute path ignores the dir",
			newRec(kindFile, 4242, ts, fileFixedSize).u8(16, uint8(event.FileDelete)).
				strs(28, "/tmp//a/./b\x00", "").b,
			event.File{Header: hdr, Source: event.SourceEBPF, Op: event.FileDelete, Path: "/tmp/a/b"}},
		{"rename with both paths relative to different dirs",
			newRec(kindFile, 4242, ts, fileFixedSize).u8(16, uint8(event.FileRename)).
				strs(28, "a.txt\x00", "/w/src\x00", "../dst/b.txt\x00", "/w/src\x00").b,
			event.File{Header: hdr, Source: event.SourceEBPF, Op: event.FileRename, Path: "/w/src/a.txt", NewPath: "/w/dst/b.txt"}},
		{"chmod",
			newRec(kindFile, 4242, ts, fileFixedSize).u8(16, uint8(event.FileChmod)).u32(24, 0o755).
				strs(28, "run.sh\x00", "/w\x00").b,
			event.File{Header: hdr, Source: event.SourceEBPF, Op: event.FileChmod, Path: "/w/run.sh", Mode: 0o755}},
		{"symlink: the target as written, the link resolved",
			newRec(kindFile, 4242, ts, fileFixedSize).u8(16, uint8(event.FileSymlink)).
				strs(28, "ci.yml\x00", "/w\x00", "../.github/workflows/ci.yml\x00", "").b,
			event.File{Header: hdr, Source: event.SourceEBPF, Op: event.FileSymlink, Path: "/w/ci.yml", NewPath: "../.github/workflows/ci.yml"}},
		{"setxattr name",
			newRec(kindFile, 4242, ts, fileFixedSize).u8(16, uint8(event.FileSetxattr)).
				strs(28, "", "/w/f\x00", "security.capability\x00", "").b,
			event.File{Header: hdr, Source: event.SourceEBPF, Op: event.FileSetxattr, Path: "/w/f", Detail: "security.capability"}},
		{"unix connect with peer",
			newRec(kindUnix, 4242, ts, unixSize).u8(16, uint8(event.NetConnect)).u8(17, uint8(event.Unix)).
				u16(18, 9).u32(24, 77).bytes(32, "/run/x.s\x00").b,
			event.Connect{Header: hdr, Source: event.SourceEBPF, Op: event.NetConnect, Transport: event.Unix, UnixPath: "/run/x.s", PeerPID: 77}},
		{"abstract unix socket",
			newRec(kindUnix, 4242, ts, unixSize).u8(16, uint8(event.NetConnect)).u8(17, uint8(event.Unix)).
				u16(18, 5).u32(20, 111).bytes(32, "\x00tmux").b,
			event.Connect{Header: hdr, Source: event.SourceEBPF, Op: event.NetConnect, Transport: event.Unix, UnixPath: "@tmux", Errno: 111}},
		{"io_uring setup refused",
			newRec(kindRing, 4242, ts, uringSize).u32(16, 8).u32(20, 38).b,
			event.IOURing{Header: hdr, Entries: 8, Errno: 38}},
		{"tcp connect v4",
			newRec(kindNet, 4242, ts, netSize).u8(16, uint8(event.NetConnect)).u8(17, uint8(event.TCP)).
				u16(18, afInet).u16(24, 443).b,
			event.Connect{Header: hdr, Source: event.SourceEBPF, Op: event.NetConnect, Transport: event.TCP,
				Addr: netip.MustParseAddrPort("127.0.0.1:443")}},
		{"refused udp sendto v6",
			newRec(kindNet, 4242, ts, netSize).u8(16, uint8(event.NetSendTo)).u8(17, uint8(event.UDP)).
				u16(18, afInet6).u32(20, 111).u16(24, 53).b,
			event.Connect{Header: hdr, Source: event.SourceEBPF, Op: event.NetSendTo, Transport: event.UDP,
				Addr: netip.MustParseAddrPort("[2001:db8::1]:53"), Errno: 111}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if tt.name == "tcp connect v4" {
				copy(in[32:], v4)
			}
			if tt.name == "refused udp sendto v6" {
				copy(in[32:], v6[:])
			}
			got, err := decode(in, off)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decode:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"header cut", []byte{kindFork, 0, 0, 0, 1, 0}},
		{"fork cut", newRec(kindFork, 1, 1, forkSize).b[:20]},
		{"exec string past end", newRec(kindExec, 1, 1, execFixedSize).u16(28, 50).b},
		{"file string past end", append(newRec(kindFile, 1, 1, fileFixedSize).u16(30, 9).b, "abc"...)},
		{"unknown kind", newRec(99, 1, 1, 64).b},
		{"net unknown family", newRec(kindNet, 1, 1, netSize).u16(18, 1).b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev, err := decode(tt.in, 0); err == nil {
				t.Fatalf("decode(%q) = %#v, want an error", tt.in, ev)
			}
		})
	}
	if _, err := decode(nil, 0); !errors.Is(err, errShort) {
		t.Errorf("decode(nil) error %v, want errShort", err)
	}
}

// The reader decodes every record on one goroutine; this bounds the event
// rate the sensor can sustain.
func BenchmarkDecodeFileRecord(b *testing.B) {
	in := newRec(kindFile, 4242, 1, fileFixedSize).u8(16, uint8(event.FileCreate)).
		strs(28, "", "/home/user/src/project/internal/pkg/file_test.go\x00").b
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(in, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeEnv: an environment record gives the entries copied whole —
// all of them when head and tail cover it, otherwise not the ones cut at
// the gap.
func TestDecodeEnv(t *testing.T) {
	entries := func(head, tail string, total int) []string {
		t.Helper()
		r := newRec(kindEnv, 7, 1, envFixedSize).strs(16, head, tail).u32(20, uint32(total))
		ev, err := decode(r.b, 0)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := ev.(execEnv)
		if !ok || e.PID != 7 {
			t.Fatalf("decoded %#v", ev)
		}
		var out []string
		for _, kv := range e.entries() {
			out = append(out, string(kv))
		}
		return out
	}
	if got := entries("A=1\x00B=2\x00", "", 8); !slices.Equal(got, []string{"A=1", "B=2"}) {
		t.Errorf("whole environment: %q", got)
	}
	// Head and tail adjacent (the environment was at most twice the part
	// size): one block, the entry across the seam kept.
	if got := entries("A=1\x00TRACE", "PARENT=x\x00Z=9\x00", len("A=1\x00TRACEPARENT=x\x00Z=9\x00")); !slices.Equal(got, []string{"A=1", "TRACEPARENT=x", "Z=9"}) {
		t.Errorf("adjacent head and tail: %q", got)
	}
	// A gap between them: the cut entries on both sides are dropped.
	if got := entries("A=1\x00PA", "TH=/bin\x00TRACEPARENT=x\x00", 1000); !slices.Equal(got, []string{"A=1", "TRACEPARENT=x"}) {
		t.Errorf("gap: %q", got)
	}
	if _, err := decode(newRec(kindEnv, 7, 1, envFixedSize).u16(16, 50).b, 0); err == nil {
		t.Error("an environment record shorter than its lengths decoded")
	}
}
