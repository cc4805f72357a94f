package ebpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// Record kinds: the first byte of every ring-buffer record (enum rec_kind in
// bpf/agentwatch.c).
const (
	kindFork = 1
	kindExec = 2
	kindExit = 3
	kindFile = 4
	kindNet  = 5
	kindEnv  = 6
	kindUnix = 7
	kindRing = 8
)

// Fixed parts of the records (struct *_rec in bpf/agentwatch.c); layout_test
// compares them with the bpf2go-generated types.
const (
	hdrSize       = 16
	forkSize      = 24
	exitSize      = 24
	execFixedSize = 40
	envFixedSize  = 24
	fileFixedSize = 40
	netSize       = 48
	unixSize      = 144
	uringSize     = 24
	unixPathMax   = 108
)

const (
	afInet  = 2
	afInet6 = 10
)

var errShort = errors.New("record too short")

// decode turns one ring-buffer record into an event. bootOffset is wall
// clock minus CLOCK_BOOTTIME in nanoseconds (see measureBootOffset). It is a
// pure function of its input so it is tested without a kernel.
func decode(b []byte, bootOffset int64) (event.Event, error) {
	if len(b) < hdrSize {
		return nil, fmt.Errorf("decoding record of %d bytes: %w", len(b), errShort)
	}
	ne := binary.NativeEndian
	hdr := event.Header{
		PID:  ne.Uint32(b[4:8]),
		Time: time.Unix(0, int64(ne.Uint64(b[8:16]))+bootOffset),
	}
	switch kind := b[0]; kind {
	case kindFork:
		if len(b) < forkSize {
			return nil, fmt.Errorf("decoding fork record: %w", errShort)
		}
		return event.Fork{Header: hdr, PPID: ne.Uint32(b[16:20])}, nil

	case kindExit:
		if len(b) < exitSize {
			return nil, fmt.Errorf("decoding exit record: %w", errShort)
		}
		code := ne.Uint32(b[16:20])
		// task->exit_code is a wait status: (status & 0xff) << 8 for exit(),
		// the signal number (| 0x80 when it dumped core) for a kill.
		return event.Exit{Header: hdr, Code: int(code>>8) & 0xff, Signal: int(code & 0x7f)}, nil

	case kindEnv:
		if len(b) < envFixedSize {
			return nil, fmt.Errorf("decoding environment record: %w", errShort)
		}
		lens := [4]int{int(ne.Uint16(b[16:18])), int(ne.Uint16(b[18:20]))}
		parts, err := splitData(b[envFixedSize:], &lens)
		if err != nil {
			return nil, fmt.Errorf("decoding environment record: %w", err)
		}
		return execEnv{Header: hdr, head: parts[0], tail: parts[1], truncated: int(ne.Uint32(b[20:24])) > lens[0]+lens[1]}, nil
	case kindExec:
		if len(b) < execFixedSize {
			return nil, fmt.Errorf("decoding exec record: %w", errShort)
		}
		lens := [4]int{int(ne.Uint16(b[28:30])), int(ne.Uint16(b[30:32])), int(ne.Uint16(b[32:34])), int(ne.Uint16(b[36:38]))}
		strs, err := splitData(b[execFixedSize:], &lens)
		if err != nil {
			return nil, fmt.Errorf("decoding exec record: %w", err)
		}
		ev := event.Exec{
			Header:        hdr,
			PPID:          ne.Uint32(b[16:20]),
			UID:           ne.Uint32(b[20:24]),
			GID:           ne.Uint32(b[24:28]),
			Filename:      cstring(strs[0]),
			Argv:          splitArgv(strs[1]),
			ArgvTruncated: b[34] != 0,
			Cwd:           cstring(strs[2]),
			Interpreter:   cstring(strs[3]),
		}
		if ev.Filename != "" && !filepath.IsAbs(ev.Filename) && ev.Cwd != "" {
			ev.Filename = filepath.Join(ev.Cwd, ev.Filename)
		}
		return ev, nil

	case kindFile:
		if len(b) < fileFixedSize {
			return nil, fmt.Errorf("decoding file record: %w", errShort)
		}
		var lens [4]int
		for i := range lens {
			lens[i] = int(ne.Uint16(b[28+2*i:]))
		}
		strs, err := splitData(b[fileFixedSize:], &lens)
		if err != nil {
			return nil, fmt.Errorf("decoding file record: %w", err)
		}
		ev := event.File{
			Header: hdr,
			Source: event.SourceEBPF,
			Op:     event.FileOp(b[16]),
			Errno:  int32(ne.Uint32(b[20:24])),
			Mode:   ne.Uint32(b[24:28]),
			Path:   joinPath(cstring(strs[1]), cstring(strs[0])),
		}
		switch ev.Op {
		case event.FileRename, event.FileLink:
			ev.NewPath = joinPath(cstring(strs[3]), cstring(strs[2]))
		case event.FileSymlink:
			ev.NewPath = cstring(strs[2]) // the target as written
		case event.FileSetxattr, event.FileRemovexattr:
			ev.Detail = cstring(strs[2])
		}
		return ev, nil

	case kindUnix:
		if len(b) < unixSize {
			return nil, fmt.Errorf("decoding unix record: %w", errShort)
		}
		n := min(int(ne.Uint16(b[18:20])), unixPathMax)
		return event.Connect{
			Header:    hdr,
			Source:    event.SourceEBPF,
			Op:        event.NetOp(b[16]),
			Transport: event.Unix,
			Errno:     int32(ne.Uint32(b[20:24])),
			UnixPath:  unixPath(b[32 : 32+n]),
			PeerPID:   ne.Uint32(b[24:28]),
		}, nil

	case kindRing:
		if len(b) < uringSize {
			return nil, fmt.Errorf("decoding io_uring record: %w", errShort)
		}
		return event.IOURing{Header: hdr, Entries: ne.Uint32(b[16:20]), Errno: int32(ne.Uint32(b[20:24]))}, nil

	case kindNet:
		if len(b) < netSize {
			return nil, fmt.Errorf("decoding net record: %w", errShort)
		}
		var addr netip.Addr
		switch fam := ne.Uint16(b[18:20]); fam {
		case afInet:
			addr = netip.AddrFrom4([4]byte(b[32:36]))
		case afInet6:
			addr = netip.AddrFrom16([16]byte(b[32:48]))
		default:
			return nil, fmt.Errorf("decoding net record: address family %d", fam)
		}
		return event.Connect{
			Header:    hdr,
			Source:    event.SourceEBPF,
			Op:        event.NetOp(b[16]),
			Transport: event.Transport(b[17]),
			Errno:     int32(ne.Uint32(b[20:24])),
			Addr:      netip.AddrPortFrom(addr, ne.Uint16(b[24:26])),
		}, nil

	default:
		return nil, fmt.Errorf("decoding record: unknown kind %d", kind)
	}
}

// unixPath is a sun_path as a name: up to its NUL for a path, "@" and
// the name (its NULs kept visible as "@") for an abstract socket.
func unixPath(b []byte) string {
	if len(b) > 0 && b[0] == 0 {
		return "@" + strings.ReplaceAll(string(bytes.TrimRight(b[1:], "\x00")), "\x00", "@")
	}
	return cstring(b)
}

// splitData cuts the variable part of a record into consecutive strings of
// the given lengths (unused trailing lengths are 0). Fixed-size arrays keep
// the reader's per-record allocations to the event and its strings.
func splitData(data []byte, lens *[4]int) ([4][]byte, error) {
	var out [4][]byte
	off := 0
	for i, n := range lens {
		if off+n > len(data) {
			return out, fmt.Errorf("string %d (%d bytes at %d) past end of %d bytes: %w", i, n, off, len(data), errShort)
		}
		out[i] = data[off : off+n]
		off += n
	}
	return out, nil
}

// cstring returns b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// splitArgv splits the NUL-separated argument area of a process. A
// truncated area ends without a NUL; its last argument is kept as far as it
// was read.
func splitArgv(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	return strings.Split(string(b), "\x00")
}

// joinPath makes the path a process passed absolute against the directory
// the kernel resolved for it (its cwd or dirfd). An empty path means dir is
// already the full path (resolved from a file descriptor).
func joinPath(dir, path string) string {
	switch {
	case path == "":
		return dir
	case filepath.IsAbs(path):
		return filepath.Clean(path)
	case dir == "":
		return path // the kernel could not resolve the directory
	}
	return filepath.Join(dir, path)
}

// execEnv is the environment of the image an exec record (which follows)
// started: its first bytes and, when it is longer than the kernel side
// copies whole, its last bytes. It aliases the ring buffer's memory and
// never leaves the sensor: the reader picks Config.ContextVars out of
// it at once.
type execEnv struct {
	event.Header
	head, tail []byte
	truncated  bool // the middle was not copied
}

// entries returns the NUL-separated entries of the environment that were
// copied whole. When head and tail cover it all they are one block; when
// the middle is missing, the head's last entry and the tail's first may be
// cut and are left out.
func (e execEnv) entries() [][]byte {
	split := func(b []byte) [][]byte {
		b = bytes.TrimSuffix(b, []byte{0})
		if len(b) == 0 {
			return nil
		}
		return bytes.Split(b, []byte{0})
	}
	if !e.truncated {
		return split(append(slices.Clip(e.head), e.tail...))
	}
	head, tail := split(e.head), split(e.tail)
	if len(head) > 0 && !bytes.HasSuffix(e.head, []byte{0}) {
		head = head[:len(head)-1]
	}
	if len(tail) > 0 {
		tail = tail[1:]
	}
	return append(head, tail...)
}
