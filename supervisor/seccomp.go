package supervisor

// The run's seccomp filter, installed by the run's init (init.go) before it
// starts the command, inherited by every process of the run and kept across
// exec (no_new_privs is set). It only refuses; observing stays with eBPF.
//
//   - io_uring (enforce mode): io_uring_setup/enter/register fail with
//     ENOSYS, the answer of a kernel built without it, which every io_uring
//     user (liburing, tokio-uring, Node's libuv) handles by falling back to
//     ordinary syscalls — the ones the sensors see. Operations submitted
//     through a ring never cross the syscall tracepoints, so a ring would
//     be a blind channel for file and network work.
//   - foreign syscall ABIs (enforce mode): a 64-bit process can still enter
//     the kernel through int 0x80 (the i386 table) or with the x32 bit set;
//     the sensor reads x86_64 numbers, so `open` as i386 number 5 would be
//     read as fstat. Both fail with ENOSYS.

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

type seccompPolicy struct {
	DenyIOURing    bool
	DenyForeignABI bool
}

func (p seccompPolicy) empty() bool { return !p.DenyIOURing && !p.DenyForeignABI }

const (
	auditArchX86_64 = 0xc000003e
	x32SyscallBit   = 0x40000000
	// Offsets into struct seccomp_data.
	seccompDataNr   = 0
	seccompDataArch = 4
)

// seccompProgram assembles the classic BPF filter for p.
func seccompProgram(p seccompPolicy) []unix.SockFilter {
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
		deny = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	var prog []unix.SockFilter
	stmt := func(code uint16, k uint32) { prog = append(prog, unix.SockFilter{Code: code, K: k}) }
	jump := func(code uint16, k uint32, jt, jf uint8) {
		prog = append(prog, unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf})
	}
	stmt(ldW, seccompDataArch)
	if p.DenyForeignABI {
		jump(jeq, auditArchX86_64, 1, 0)
		stmt(ret, deny)
	} else {
		// Another ABI has other numbers: nothing below applies to it.
		jump(jeq, auditArchX86_64, 1, 0)
		stmt(ret, allow)
	}
	stmt(ldW, seccompDataNr)
	if p.DenyForeignABI {
		jump(jge, x32SyscallBit, 0, 1)
		stmt(ret, deny)
	}
	if p.DenyIOURing {
		for _, nr := range []uint32{unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER} {
			jump(jeq, nr, 0, 1)
			stmt(ret, deny)
		}
	}
	stmt(ret, allow)
	return prog
}

// installSeccomp loads p's filter for every thread of this process
// (TSYNC: the Go runtime may fork the command from any of them).
func installSeccomp(p seccompPolicy) error {
	if p.empty() {
		return nil
	}
	prog := seccompProgram(p)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("installing the run's seccomp filter: %w", errno)
	}
	return nil
}
