//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// agentwatch's kernel side: process lifecycle (fork/exec/exit), file
// changes (open-for-write, unlink, rename, chmod, truncate, mkdir), read
// opens of the few files Go put in the secrets map, and
// network destinations (connect, sendto/sendmsg) of the tasks in one run's
// cgroup, written to one ring buffer as variable-length records that start
// with a one-byte kind. ebpf/decode.go is the other half of every layout here.
//
// Attach points are tp_btf only: no tracefs, no fentry/fexit, no BPF-LSM
// (the last two are refused on the reference kernel).

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_tracing.h"
#include "bpf_endian.h"

char __license[] SEC("license") = "Dual MIT/GPL";

// Set from Go before load (Config.CgroupID / CgroupLevel).
volatile const __u64 target_cgroup_id = 0;
volatile const __u32 target_cgroup_level = 0;
// Pending bytes above which a record wakes the reader; below it the reader
// polls on a short deadline, so a burst costs one wakeup, not one per record.
volatile const __u64 wakeup_bytes = 256 * 1024;

#define PATH_MAX_LEN 4096
#define ARGV_MAX 8192
#define ENV_PART 8192
#define MAX_PATH_COMPONENTS 96
#define HEAP_SZ 32768
#define POS_MASK 16383 // every string starts below 16 KiB; the heap leaves room after it

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_WRITE_INTENT (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)
#define FMODE_READ 0x1
#define FMODE_WRITE 0x2
#define FMODE_CREATED 0x100000
#define S_IFMT 0170000
#define S_IFREG 0100000
#define EPERM 1
#define EACCES 13
#define EBUSY 16
#define EROFS 30
#define EISDIR 21
#define EBADF 9
#define ENOTSOCK 88
#define EINPROGRESS 115
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2

// x86_64 syscall numbers: the programs are built for amd64 only.
#define NR_open 2
#define NR_connect 42
#define NR_sendto 44
#define NR_sendmsg 46
#define NR_truncate 76
#define NR_ftruncate 77
#define NR_rename 82
#define NR_mkdir 83
#define NR_rmdir 84
#define NR_creat 85
#define NR_unlink 87
#define NR_chmod 90
#define NR_fchmod 91
#define NR_openat 257
#define NR_mkdirat 258
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_fchmodat 268
#define NR_renameat2 316
#define NR_openat2 437
#define NR_fchmodat2 452
#define NR_link 86
#define NR_symlink 88
#define NR_utime 132
#define NR_mknod 133
#define NR_setxattr 188
#define NR_lsetxattr 189
#define NR_fsetxattr 190
#define NR_removexattr 197
#define NR_lremovexattr 198
#define NR_fremovexattr 199
#define NR_utimes 235
#define NR_mknodat 259
#define NR_futimesat 261
#define NR_linkat 265
#define NR_symlinkat 266
#define NR_utimensat 280
#define NR_io_uring_setup 425
#define NR_setxattrat 463 // 6.13+: not in older uapi headers
#define NR_removexattrat 466
#define NR_chown 92
#define NR_fchown 93
#define NR_lchown 94
#define NR_fchownat 260
#define UNIX_PATH_MAX 108

enum rec_kind {
	AW_KIND_FORK = 1,
	AW_KIND_EXEC = 2,
	AW_KIND_EXIT = 3,
	AW_KIND_FILE = 4,
	AW_KIND_NET = 5,
	AW_KIND_ENV = 6,
	AW_KIND_UNIX = 7,
	AW_KIND_URING = 8,
};

// Values match event.FileOp.
enum file_op {
	AW_OP_CREATE = 1,
	AW_OP_WRITE = 2,
	AW_OP_TRUNCATE = 3,
	AW_OP_DELETE = 4,
	AW_OP_RENAME = 5,
	AW_OP_CHMOD = 6,
	AW_OP_READ = 7,
	AW_OP_MKDIR = 8,
	AW_OP_SYMLINK = 9,
	AW_OP_LINK = 10,
	AW_OP_MKNOD = 11,
	AW_OP_SETXATTR = 12,
	AW_OP_REMOVEXATTR = 13,
	AW_OP_UTIMES = 14,
	AW_OP_CHOWN = 15,
};

// Values match event.NetOp / event.Transport.
enum net_op { AW_NET_CONNECT = 1, AW_NET_SENDTO = 2 };
enum transport { AW_T_TCP = 1, AW_T_UDP = 2, AW_T_UNIX = 3, AW_T_OTHER = 4 };

struct rec_hdr {
	__u8 kind;
	__u8 _pad[3];
	__u32 tgid;
	__u64 ts_ns; // bpf_ktime_get_boot_ns
};

struct fork_rec {
	struct rec_hdr h;
	__u32 ppid;
	__u32 _pad;
};

struct exit_rec {
	struct rec_hdr h;
	__u32 exit_code; // task->exit_code: status<<8 | core<<7 | signal
	__u32 _pad;
};

// Followed by filename_len + argv_len + cwd_len bytes, in that order.
struct exec_rec {
	struct rec_hdr h;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u16 filename_len;
	__u16 argv_len;
	__u16 cwd_len;
	__u8 argv_truncated;
	__u8 _pad;
	__u16 interp_len; // a script's interpreter (bprm->interp), 0 for a binary
	__u16 _pad2;
};

// The environment of a new image, sent just before its exec record (the
// same program, so the reader sees it first): head_len bytes from its start,
// then, when it is longer than ENV_PART, tail_len bytes up to its end. Go
// keeps only the tool-call variables out of it (Config.ExecContext) and
// drops the rest at once; reading it here, in the process's own context at
// exec time, costs a copy, where reading /proc/PID/environ later cost three
// syscalls and the child's mmap lock, and missed short-lived processes.
struct env_rec {
	struct rec_hdr h;
	__u16 head_len;
	__u16 tail_len;
	__u32 total_len;
};

// Followed by the strings of len[0..3] in order: path, dir, path2, dir2.
// path is what the process passed (or empty for fd-based calls), dir is the
// kernel-resolved absolute directory it is relative to (empty when path is
// absolute), or the full path resolved from an fd when path is empty.
struct file_rec {
	struct rec_hdr h;
	__u8 op;
	__u8 _pad[3];
	__s32 err; // positive errno, 0 on success
	__u32 mode;
	__u16 len[4];
	__u32 _pad2;
};

struct net_rec {
	struct rec_hdr h;
	__u8 op;
	__u8 transport;
	__u16 family;
	__s32 err;
	__u16 port; // host order
	__u16 _pad;
	__u32 _pad2;
	__u8 addr[16];
};

// A Unix-socket destination: the socket's path (sun_path as passed; an
// abstract name starts with a NUL) and, for a connected stream, the pid of
// the process that listens on it (the peer credentials the kernel took at
// connect). Unix sockets are a way out of the run (a forwarder, an agent's
// server outside it), so they are recorded like network destinations.
struct unix_rec {
	struct rec_hdr h;
	__u8 op;
	__u8 transport;
	__u16 path_len;
	__s32 err;
	__u32 peer_pid;
	__u32 _pad;
	__u8 path[UNIX_PATH_MAX];
};

// io_uring_setup: a ring's operations never cross the syscall tracepoints.
struct uring_rec {
	struct rec_hdr h;
	__u32 entries;
	__s32 err;
};

struct sys_args {
	__u64 id;
	__u64 a[6];
};

// A file by identity, not by name: a secret read through a symlink, a
// hard link or a relative path is still the same (device, inode). dev is
// the kernel's encoding (MAJOR << 20 | MINOR) of the super block's s_dev.
struct secret_key {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

struct dest_key {
	__u32 tgid;
	__u16 family;
	__u16 port;
	__u8 addr[16];
};

struct heap {
	__u8 buf[HEAP_SZ];
};

struct pathbuf {
	char buf[PATH_MAX_LEN * 2];
	__u32 off;
};

// Force BTF for the record layouts so bpf2go can generate Go types that
// the decoder's layout test compares against.
const struct fork_rec *unused_fork_rec __attribute__((unused));
const struct exit_rec *unused_exit_rec __attribute__((unused));
const struct exec_rec *unused_exec_rec __attribute__((unused));
const struct env_rec *unused_env_rec __attribute__((unused));
const struct file_rec *unused_file_rec __attribute__((unused));
const struct net_rec *unused_net_rec __attribute__((unused));
const struct unix_rec *unused_unix_rec __attribute__((unused));
const struct uring_rec *unused_uring_rec __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); // resized from Go (Config.RingBytes)
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct heap);
} heaps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathbuf);
} pathbufs SEC(".maps");

// Destinations a process already sent to: sendto/sendmsg report the first
// datagram per destination, not every packet.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct dest_key);
	__type(value, __u8);
} sent_to SEC(".maps");

// files.secrets that existed when the run started, filled from Go
// (Sensor.WatchReads). Read opens are reported for these files only: all
// reads would flood the ring with every header a compiler touches.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct secret_key);
	__type(value, __u8);
} secrets SEC(".maps");

static __always_inline bool in_run(void)
{
	return bpf_get_current_ancestor_cgroup_id(target_cgroup_level) == target_cgroup_id;
}

// The child of a fork started with CLONE_INTO_CGROUP (how the supervisor
// launches the run) is in the run's cgroup while its parent is not, so a
// fork is judged by the child's cgroup.
static __always_inline bool task_in_run(struct task_struct *t)
{
	struct cgroup *cg = BPF_CORE_READ(t, cgroups, dfl_cgrp);
	if (!cg)
		return false;
	if (BPF_CORE_READ(cg, level) < (int)target_cgroup_level)
		return false;
	struct cgroup *anc = NULL;
	bpf_core_read(&anc, sizeof(anc), &cg->ancestors[target_cgroup_level & 0xff]);
	if (!anc)
		return false;
	return BPF_CORE_READ(anc, kn, id) == target_cgroup_id;
}

static __always_inline struct heap *get_heap(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&heaps, &zero);
}

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&dropped, &zero);
	if (n)
		*n += 1;
}

static __always_inline void submit(void *rec, __u64 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	// Records never reach HEAP_SZ (see POS_MASK); the mask is for the
	// verifier. barrier_var keeps clang from dropping it where it can prove
	// the bound itself (put_path's result) and the verifier cannot.
	barrier_var(size);
	size &= HEAP_SZ - 1;
	if (size == 0)
		return;
	if (bpf_ringbuf_output(&events, rec, size, flags))
		count_drop();
}

static __always_inline void fill_hdr(struct rec_hdr *h, __u8 kind, __u32 tgid)
{
	h->kind = kind;
	h->tgid = tgid;
	h->ts_ns = bpf_ktime_get_boot_ns();
}

// bpf_rdonly_cast (a kfunc, Linux 6.3+) turns an address into a pointer
// of a kernel type that the program may load from directly: the JIT makes
// each load one instruction with a fault fixup, where BPF_CORE_READ calls
// bpf_probe_read_kernel. (libbpf's bpf_core_cast, newer than our headers.)
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define core_cast(p, type) ((type *)bpf_rdonly_cast((const void *)(p), bpf_core_type_id_kernel(type)))

// path_walk is put_path's state between bpf_loop iterations.
struct path_walk {
	struct dentry *dentry;
	struct mount *mnt;
	struct pathbuf *pb;
};

// path_step prepends one component of w's dentry to the buffer, or crosses
// to the parent mount; 1 stops the walk. Its loads are direct (see
// core_cast): a path is ~3 of them per component.
static long path_step(__u64 i, struct path_walk *w)
{
	struct dentry *dentry = w->dentry;
	struct mount *mnt = w->mnt;
	struct dentry *parent = dentry->d_parent;
	struct dentry *mnt_root = mnt->mnt.mnt_root;
	if (dentry == mnt_root || dentry == parent) {
		struct mount *mnt_parent = mnt->mnt_parent;
		if (dentry != mnt_root || mnt == mnt_parent)
			return 1; // global root, or a detached tree
		w->dentry = mnt->mnt_mountpoint;
		w->mnt = mnt_parent;
		return 0;
	}
	struct pathbuf *pb = w->pb;
	__u32 len = dentry->d_name.len & 0xff;
	__u32 off = pb->off;
	if (off > PATH_MAX_LEN - 1 || len + 2 > off)
		return 1;
	off -= len;
	bpf_probe_read_kernel(&pb->buf[off & (PATH_MAX_LEN - 1)], len, dentry->d_name.name);
	off -= 1;
	pb->buf[off & (PATH_MAX_LEN - 1)] = '/';
	pb->off = off;
	w->dentry = parent;
	return 0;
}

// put_path writes the absolute path of (dentry, vfsmnt) into the heap at
// pos (room for PATH_MAX_LEN bytes) and returns its length including the
// NUL. It walks dentries to the mount root and crosses to the parent mount
// through struct mount, like d_path but relative to the global root (not the
// task's chroot). Paths deeper than MAX_PATH_COMPONENTS lose their leading
// components.
//
// It is a global function so the verifier checks it once, not at each of
// its ~30 call sites; that is also why it takes scalars, not pointers. The
// walk is a bpf_loop, whose callback the verifier checks once rather than
// once per iteration: unrolled, the 96 iterations were ~17,000 verified
// instructions in every program that names a path (~20 ms of each run's
// start). The kernel inlines the loop, so it costs no call per component.
__noinline int put_path(__u64 dentry_p, __u64 vfsmnt_p, __u32 pos)
{
	__u32 zero = 0;
	struct pathbuf *pb = bpf_map_lookup_elem(&pathbufs, &zero);
	struct heap *hp = bpf_map_lookup_elem(&heaps, &zero);
	if (!pb || !hp || !dentry_p || !vfsmnt_p)
		return 0;

	struct path_walk w = {};
	w.dentry = core_cast(dentry_p, struct dentry);
	w.mnt = core_cast(vfsmnt_p - bpf_core_field_offset(struct mount, mnt), struct mount);
	w.pb = pb;
	pb->off = PATH_MAX_LEN - 1;
	pb->buf[PATH_MAX_LEN - 1] = 0;
	bpf_loop(MAX_PATH_COMPONENTS, path_step, &w, 0);

	__u32 off = pb->off;
	if (off == PATH_MAX_LEN - 1) {
		off -= 1;
		pb->buf[off & (PATH_MAX_LEN - 1)] = '/';
	}
	off &= PATH_MAX_LEN - 1;
	__u32 n = PATH_MAX_LEN - off;
	if (n > PATH_MAX_LEN)
		return 0;
	bpf_probe_read_kernel(&hp->buf[pos & POS_MASK], n, &pb->buf[off]);
	return n;
}

// fd_file returns the current task's open file at fd, or NULL. The
// pointer chain is loaded directly (see core_cast), the array slot with one
// helper (a variable offset the verifier does not allow in a direct load).
static __always_inline struct file *fd_file(long fd)
{
	struct task_struct *t = bpf_get_current_task_btf();
	// task_struct's own field by helper: a direct load from it costs the
	// verifier ~4 ms (its BTF is huge), every other direct load little.
	struct fdtable *fdt = core_cast(BPF_CORE_READ(t, files), struct files_struct)->fdt;
	if (!fdt || fd < 0 || fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	__u64 f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return NULL;
	return core_cast(f, struct file);
}

// put_path_of names a struct path: one copy gives put_path its two
// pointers as the scalars a global function takes.
static __always_inline __u32 put_path_of(const struct path *p, __u32 pos)
{
	struct {
		__u64 mnt, dentry;
	} pp = {};
	_Static_assert(sizeof(pp) == sizeof(struct path), "struct path is (mnt, dentry)");
	bpf_probe_read_kernel(&pp, sizeof(pp), p);
	return put_path(pp.dentry, pp.mnt, pos);
}

static __always_inline __u32 put_file_path(struct file *f, __u32 pos)
{
	if (!f)
		return 0;
	return put_path_of(&f->f_path, pos);
}

// put_fd_path writes the path of the current task's file at fd (see
// put_path); 0 when fd is not an open file. Global: verified once for its
// call sites.
__noinline __u32 put_fd_path(__u64 fd, __u32 pos)
{
	return put_file_path(fd_file((int)fd), pos);
}

static __always_inline __u32 put_cwd(__u32 pos)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return put_path_of(&BPF_CORE_READ(t, fs)->pwd, pos); // (see fd_file)
}

// put_dir writes the directory a relative path given with dirfd is resolved
// against: the cwd for AT_FDCWD, else the fd's path.
static __always_inline __u32 put_dir(long dirfd, __u32 pos)
{
	if ((int)dirfd == AT_FDCWD)
		return put_cwd(pos);
	return put_fd_path(dirfd, pos);
}

// file_lens returns the len array of the file_rec at the start of the heap.
static __always_inline __u16 *file_lens(struct heap *hp)
{
	return ((struct file_rec *)hp->buf)->len;
}

// put_user_path copies a user path to the heap at pos and, when it is
// relative, the directory it is relative to; their lengths go to the heap's
// file_rec len[at] and len[at+1]. Returns the new position. Global, like
// put_path: sys_exit calls it from ~30 places, and inlined each call
// multiplied the verifier's states by its branches.
__noinline __u32 put_user_path(__u32 pos, __u32 at, __u64 dirfd, __u64 upath)
{
	__u32 zero = 0;
	struct heap *hp = bpf_map_lookup_elem(&heaps, &zero);
	if (!hp)
		return pos;
	long n = bpf_probe_read_user_str(&hp->buf[pos & POS_MASK], PATH_MAX_LEN, (const char *)upath);
	if (n < 0)
		n = 0;
	char first = hp->buf[pos & POS_MASK];
	__u16 *lens = file_lens(hp);
	lens[at & 2] = n;
	pos += n;
	__u32 d = 0;
	if (n > 0 && first != '/')
		d = put_dir(dirfd, pos);
	lens[(at & 2) + 1] = d;
	return pos + d;
}

// put_raw_str copies a user string as is (a symlink's target, an xattr's
// name) to the heap at pos, its length to the file_rec's len[at]. Returns
// the new position. Global for the same reason as put_user_path.
__noinline __u32 put_raw_str(__u32 pos, __u32 at, __u64 ustr)
{
	__u32 zero = 0;
	struct heap *hp = bpf_map_lookup_elem(&heaps, &zero);
	if (!hp)
		return pos;
	__u32 p = pos;
	barrier_var(p); // keep the mask: the verifier needs it (see submit)
	p &= POS_MASK;
	long n = bpf_probe_read_user_str(&hp->buf[p], PATH_MAX_LEN, (const char *)ustr);
	if (n < 0)
		n = 0;
	file_lens(hp)[at & 3] = n;
	return pos + n;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	// Threads share the process: only a new thread group is a new process.
	if (child->pid != child->tgid)
		return 0;
	if (!task_in_run(child))
		return 0;
	struct fork_rec r = {};
	fill_hdr(&r.h, AW_KIND_FORK, child->tgid);
	r.ppid = parent->tgid;
	submit(&r, sizeof(r));
	return 0;
}

// emit_env sends the environment of the image just exec'd (see env_rec).
static __always_inline void emit_env(struct heap *hp, __u32 tgid, struct mm_struct *mm)
{
	__u64 start = BPF_CORE_READ(mm, env_start);
	__u64 end = BPF_CORE_READ(mm, env_end);
	if (end <= start)
		return;
	__u64 total = end - start;
	struct env_rec *r = (struct env_rec *)hp->buf;
	fill_hdr(&r->h, AW_KIND_ENV, tgid);
	r->total_len = total > 0xffffffff ? 0xffffffff : total;
	__u32 pos = sizeof(*r);
	__u64 head = total;
	head &= (ENV_PART * 2 - 1);
	if (total > ENV_PART || head > ENV_PART)
		head = ENV_PART;
	if (bpf_probe_read_user(&hp->buf[pos & POS_MASK], head, (void *)start) < 0)
		head = 0;
	r->head_len = head;
	pos += head;
	__u64 tail = 0;
	if (total > ENV_PART) {
		tail = total - ENV_PART;
		tail &= (ENV_PART * 2 - 1);
		if (total - ENV_PART > ENV_PART || tail > ENV_PART)
			tail = ENV_PART;
		if (bpf_probe_read_user(&hp->buf[pos & POS_MASK], tail, (void *)(end - tail)) < 0)
			tail = 0;
	}
	r->tail_len = tail;
	submit(hp, pos + tail);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (!in_run())
		return 0;
	struct heap *hp = get_heap();
	if (!hp)
		return 0;
	emit_env(hp, p->tgid, BPF_CORE_READ(p, mm));
	struct exec_rec *r = (struct exec_rec *)hp->buf;
	__u64 ugid = bpf_get_current_uid_gid();
	fill_hdr(&r->h, AW_KIND_EXEC, p->tgid);
	r->ppid = BPF_CORE_READ(p, real_parent, tgid);
	r->uid = (__u32)ugid;
	r->gid = ugid >> 32;

	__u32 pos = sizeof(*r);
	const char *filename = BPF_CORE_READ(bprm, filename);
	long n = bpf_probe_read_kernel_str(&hp->buf[pos & POS_MASK], PATH_MAX_LEN, filename);
	if (n < 0)
		n = 0;
	r->filename_len = n;
	pos += n;

	// sched_process_exec runs after the new image is set up, so current->mm
	// is the new mm and its argument area holds the NUL-separated argv.
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 start = BPF_CORE_READ(mm, arg_start);
	__u64 end = BPF_CORE_READ(mm, arg_end);
	__u64 alen = end > start ? end - start : 0;
	r->argv_truncated = 0;
	if (alen > ARGV_MAX) {
		alen = ARGV_MAX;
		r->argv_truncated = 1;
	}
	alen &= (ARGV_MAX * 2 - 1);
	if (alen > ARGV_MAX)
		alen = ARGV_MAX;
	if (bpf_probe_read_user(&hp->buf[pos & POS_MASK], alen, (void *)start) < 0)
		alen = 0;
	r->argv_len = alen;
	pos += alen;

	r->cwd_len = put_cwd(pos);
	pos += r->cwd_len;

	// A script (#!): bprm->interp is the interpreter binfmt_script
	// found, what /proc/PID/exe will point at; for a binary it is the
	// filename itself. Skipped when the record is already at its
	// bound (a full argv and two full paths).
	r->interp_len = 0;
	const char *interp = BPF_CORE_READ(bprm, interp);
	if (interp && interp != filename && pos <= POS_MASK) {
		long m = bpf_probe_read_kernel_str(&hp->buf[pos & POS_MASK], PATH_MAX_LEN, interp);
		if (m > 0) {
			r->interp_len = m;
			pos += m;
		}
	}
	submit(hp, pos);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	// A thread leaving is not the process leaving: signal->live drops to
	// zero (before this tracepoint) only for the last thread.
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	if (!in_run())
		return 0;
	struct exit_rec r = {};
	fill_hdr(&r.h, AW_KIND_EXIT, p->tgid);
	r.exit_code = BPF_CORE_READ(p, exit_code);
	submit(&r, sizeof(r));
	return 0;
}

// A failed file operation is reported only when it was refused: that is
// evidence (a write to a protected path). Other failures (ENOENT from
// probing, EEXIST from mkdir -p, ...) changed nothing and are noise. EBUSY
// is what unlink and rename give for a path that is a mount point, which a
// files.protect path is in enforce mode (a read-only bind onto itself).
static __always_inline bool refused(long ret)
{
	// EISDIR: a files.protect path absent at start is held by an empty
	// directory bound read-only; creating a file there meets it.
	return ret == -EACCES || ret == -EPERM || ret == -EROFS || ret == -EBUSY || ret == -EISDIR;
}

static __always_inline bool tracked(long id)
{
	switch (id) {
	case NR_open:
	case NR_openat:
	case NR_openat2:
	case NR_creat:
	case NR_unlink:
	case NR_unlinkat:
	case NR_rmdir:
	case NR_rename:
	case NR_renameat:
	case NR_renameat2:
	case NR_chmod:
	case NR_fchmod:
	case NR_fchmodat:
	case NR_fchmodat2:
	case NR_truncate:
	case NR_ftruncate:
	case NR_mkdir:
	case NR_mkdirat:
	case NR_connect:
	case NR_sendto:
	case NR_sendmsg:
	case NR_link:
	case NR_linkat:
	case NR_symlink:
	case NR_symlinkat:
	case NR_mknod:
	case NR_mknodat:
	case NR_setxattr:
	case NR_lsetxattr:
	case NR_fsetxattr:
	case NR_removexattr:
	case NR_lremovexattr:
	case NR_fremovexattr:
	case NR_utime:
	case NR_utimes:
	case NR_futimesat:
	case NR_utimensat:
	case NR_io_uring_setup:
	case NR_setxattrat:
	case NR_removexattrat:
	case NR_chown:
	case NR_fchown:
	case NR_lchown:
	case NR_fchownat:
		return true;
	}
	return false;
}

// wants says whether a tracked syscall is one to report: an open only
// with write intent (read opens are only looked at for secrets).
static __always_inline bool wants(struct sys_args *a)
{
	switch (a->id) {
	case NR_open:
		return a->a[1] & O_WRITE_INTENT;
	case NR_openat:
		return a->a[2] & O_WRITE_INTENT;
	case NR_openat2: {
		__u64 flags = 0;
		bpf_probe_read_user(&flags, sizeof(flags), (void *)a->a[2]);
		return flags & O_WRITE_INTENT;
	}
	}
	return true;
}

static __always_inline void emit_open(struct heap *hp, struct sys_args *a, long ret, long dirfd, const char *upath,
				      __u64 flags, __u32 mode)
{
	struct file_rec *r = (struct file_rec *)hp->buf;
	__u32 pos = sizeof(*r);
	r->mode = mode;
	if (ret >= 0) {
		// The fd names the file that was really opened: symlinks and
		// ".." are already resolved, so report that, not the argument.
		struct file *f = fd_file(ret);
		if (!f)
			return;
		// `>/dev/null`, ttys and pipes are not file changes; only
		// regular files are.
		if ((f->f_inode->i_mode & S_IFMT) != S_IFREG)
			return;
		__u32 fmode = f->f_mode;
		if (fmode & FMODE_CREATED)
			r->op = AW_OP_CREATE;
		else if (flags & O_TRUNC)
			r->op = AW_OP_TRUNCATE;
		else
			r->op = AW_OP_WRITE;
		r->err = 0;
		r->len[0] = 0;
		r->len[1] = put_file_path(f, pos);
		pos += r->len[1];
	} else {
		if (!refused(ret))
			return;
		// Whether the file existed is unknown here (checking would cost a
		// lookup), so a refused open is reported as the attempt to write.
		r->op = AW_OP_WRITE;
		r->err = -ret;
		pos = put_user_path(pos, 0, dirfd, (__u64)upath);
	}
	r->len[2] = 0;
	r->len[3] = 0;
	submit(hp, pos);
}

static __always_inline void emit_unix(long ret, __u8 op, int fd, const void *uaddr, long addrlen)
{
	struct heap *hp = get_heap();
	if (!hp)
		return;
	struct unix_rec *r = (struct unix_rec *)hp->buf;
	__builtin_memset(r, 0, sizeof(*r));
	long n = addrlen - 2; // sun_family
	if (n <= 0)
		return; // unnamed: nothing to connect to
	if (n > UNIX_PATH_MAX)
		n = UNIX_PATH_MAX;
	if (bpf_probe_read_user(r->path, n & 127, (const char *)uaddr + 2) < 0) // n <= 108: the mask is for the verifier
		return;
	r->path_len = n;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (op == AW_NET_SENDTO) {
		// First datagram per (process, path), like sent_to for addresses.
		struct dest_key k = {};
		k.tgid = tgid;
		k.family = AF_UNIX;
		k.port = n;
		__builtin_memcpy(k.addr, r->path, 16);
		__u8 one = 1;
		if (bpf_map_update_elem(&sent_to, &k, &one, BPF_NOEXIST) != 0)
			return;
	}
	r->op = op;
	r->transport = AW_T_UNIX;
	r->err = (ret < 0 && ret != -EINPROGRESS) ? -ret : 0;
	if (ret == 0 && op == AW_NET_CONNECT) {
		struct file *f = fd_file(fd);
		if (f) {
			struct socket *sock = BPF_CORE_READ(f, private_data);
			struct pid *peer = BPF_CORE_READ(sock, sk, sk_peer_pid);
			if (peer)
				r->peer_pid = BPF_CORE_READ(peer, numbers[0].nr);
		}
	}
	fill_hdr(&r->h, AW_KIND_UNIX, tgid);
	submit(hp, sizeof(*r));
}

static __always_inline void emit_net(struct sys_args *a, long ret, __u8 op, int fd, const void *uaddr, long addrlen)
{
	if (!uaddr)
		return;
	if (ret < 0 && ret != -EINPROGRESS && op == AW_NET_SENDTO)
		return;
	if (ret == -EBADF || ret == -ENOTSOCK)
		return; // not a socket: nothing was contacted
	__u16 family = 0;
	bpf_probe_read_user(&family, sizeof(family), uaddr);
	if (family == AF_UNIX) {
		emit_unix(ret, op, fd, uaddr, addrlen);
		return;
	}
	if (family != AF_INET && family != AF_INET6)
		return; // netlink and friends are not destinations
	struct net_rec r = {};
	r.op = op;
	r.family = family;
	r.err = (ret < 0 && ret != -EINPROGRESS) ? -ret : 0;
	if (family == AF_INET) {
		struct sockaddr_in sa = {};
		bpf_probe_read_user(&sa, sizeof(sa), uaddr);
		r.port = bpf_ntohs(sa.sin_port);
		__builtin_memcpy(r.addr, &sa.sin_addr, 4);
	} else {
		struct sockaddr_in6 sa = {};
		bpf_probe_read_user(&sa, sizeof(sa), uaddr);
		r.port = bpf_ntohs(sa.sin6_port);
		__builtin_memcpy(r.addr, &sa.sin6_addr, 16);
	}
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (op == AW_NET_SENDTO) {
		struct dest_key k = {};
		k.tgid = tgid;
		k.family = family;
		k.port = r.port;
		__builtin_memcpy(k.addr, r.addr, 16);
		__u8 one = 1;
		if (bpf_map_update_elem(&sent_to, &k, &one, BPF_NOEXIST) != 0)
			return; // already reported this destination
	}
	r.transport = AW_T_OTHER;
	struct file *f = fd_file(fd);
	if (f) {
		struct socket *sock = BPF_CORE_READ(f, private_data);
		short type = BPF_CORE_READ(sock, type);
		if (type == SOCK_STREAM)
			r.transport = AW_T_TCP;
		else if (type == SOCK_DGRAM)
			r.transport = AW_T_UDP;
	}
	fill_hdr(&r.h, AW_KIND_NET, tgid);
	submit(&r, sizeof(r));
}

// emit_secret_read reports a successful read-only open of a file in the
// secrets map. It needs no sys_enter state: the open file itself says how
// it was opened (f_mode) and what it is (f_inode), so read opens cost the
// run's processes nothing at sys_enter.
static __always_inline void emit_secret_read(long fd, __u32 tgid)
{
	struct file *f = fd_file(fd);
	if (!f)
		return;
	// O_PATH opens have no FMODE_READ (nothing can be read through them);
	// read-write opens are reported as writes by emit_open.
	__u32 fmode = f->f_mode;
	if (!(fmode & FMODE_READ) || (fmode & FMODE_WRITE))
		return;
	struct inode *ino = f->f_inode;
	struct secret_key k = {};
	k.ino = ino->i_ino;
	k.dev = ino->i_sb->s_dev;
	if (!bpf_map_lookup_elem(&secrets, &k))
		return;
	struct heap *hp = get_heap();
	if (!hp)
		return;
	struct file_rec *r = (struct file_rec *)hp->buf;
	fill_hdr(&r->h, AW_KIND_FILE, tgid);
	r->op = AW_OP_READ;
	r->err = 0;
	r->mode = 0;
	__builtin_memset(r->len, 0, sizeof(r->len));
	__u32 n = put_file_path(f, sizeof(*r));
	if (n == 0)
		return;
	r->len[1] = n;
	submit(hp, sizeof(*r) + n);
}

// Everything is done at sys_exit, from the registers the syscall was
// entered with: on x86_64 the syscall leaves pt_regs' argument registers as
// they were (only ax takes the result), so nothing has to be carried from
// sys_enter. That spares every syscall on the machine a sys_enter program
// and the run's tracked syscalls a per-thread hash update, lookup and
// delete. The user memory the arguments point at is the process's own and
// read the same way at either end.
SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	// regs is a trusted BTF pointer here: a direct load, no helper call.
	long id = regs->orig_ax;
	// Cheapest tests first: most syscalls are none of ours, and most
	// failures changed nothing.
	if (!tracked(id))
		return 0;
	if (ret < 0 && !refused(ret) && id != NR_connect && id != NR_sendto && id != NR_sendmsg && id != NR_io_uring_setup)
		return 0;
	if (!in_run())
		return 0;
	__u64 key = bpf_get_current_pid_tgid();
	struct sys_args args;
	args.id = id;
	args.a[0] = regs->di;
	args.a[1] = regs->si;
	args.a[2] = regs->dx;
	args.a[3] = regs->r10;
	args.a[4] = regs->r8;
	args.a[5] = regs->r9;
	if (!wants(&args)) {
		// A read open: only successful ones are looked up in the
		// secrets map.
		if (ret >= 0)
			emit_secret_read(ret, key >> 32);
		return 0;
	}

	struct heap *hp = get_heap();
	if (!hp)
		return 0;
	struct file_rec *r = (struct file_rec *)hp->buf;
	fill_hdr(&r->h, AW_KIND_FILE, key >> 32);
	r->mode = 0;
	r->err = ret < 0 ? -ret : 0;
	__builtin_memset(r->len, 0, sizeof(r->len));
	__u32 pos = sizeof(*r);

	switch (args.id) {
	case NR_open:
		emit_open(hp, &args, ret, AT_FDCWD, (const char *)args.a[0], args.a[1], args.a[2]);
		return 0;
	case NR_creat:
		emit_open(hp, &args, ret, AT_FDCWD, (const char *)args.a[0], O_CREAT | O_WRONLY | O_TRUNC, args.a[1]);
		return 0;
	case NR_openat:
		emit_open(hp, &args, ret, args.a[0], (const char *)args.a[1], args.a[2], args.a[3]);
		return 0;
	case NR_openat2: {
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)args.a[2]);
		emit_open(hp, &args, ret, args.a[0], (const char *)args.a[1], how.flags, how.mode);
		return 0;
	}
	case NR_connect:
		emit_net(&args, ret, AW_NET_CONNECT, args.a[0], (const void *)args.a[1], args.a[2]);
		return 0;
	case NR_sendto:
		emit_net(&args, ret, AW_NET_SENDTO, args.a[0], (const void *)args.a[4], args.a[5]);
		return 0;
	case NR_sendmsg: {
		struct user_msghdr msg = {};
		bpf_probe_read_user(&msg, sizeof(msg), (void *)args.a[1]);
		emit_net(&args, ret, AW_NET_SENDTO, args.a[0], msg.msg_name, msg.msg_namelen);
		return 0;
	}
	case NR_io_uring_setup: {
		struct uring_rec *u = (struct uring_rec *)hp->buf;
		fill_hdr(&u->h, AW_KIND_URING, key >> 32);
		u->entries = args.a[0];
		u->err = ret < 0 ? -ret : 0;
		submit(hp, sizeof(*u));
		return 0;
	}
	case NR_symlink:
		r->op = AW_OP_SYMLINK;
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[1]);
		pos = put_raw_str(pos, 2, args.a[0]);
		break;
	case NR_symlinkat:
		r->op = AW_OP_SYMLINK;
		pos = put_user_path(pos, 0, args.a[1], args.a[2]);
		pos = put_raw_str(pos, 2, args.a[0]);
		break;
	case NR_link:
		r->op = AW_OP_LINK;
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		pos = put_user_path(pos, 2, AT_FDCWD, args.a[1]);
		break;
	case NR_linkat:
		r->op = AW_OP_LINK;
		pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		pos = put_user_path(pos, 2, args.a[2], args.a[3]);
		break;
	case NR_mknod:
		r->op = AW_OP_MKNOD;
		r->mode = args.a[1];
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		break;
	case NR_mknodat:
		r->op = AW_OP_MKNOD;
		r->mode = args.a[2];
		pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		break;
	case NR_setxattr:
	case NR_lsetxattr:
	case NR_removexattr:
	case NR_lremovexattr:
		r->op = (args.id == NR_setxattr || args.id == NR_lsetxattr) ? AW_OP_SETXATTR : AW_OP_REMOVEXATTR;
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		pos = put_raw_str(pos, 2, args.a[1]);
		break;
	case NR_fsetxattr:
	case NR_fremovexattr: {
		r->op = args.id == NR_fsetxattr ? AW_OP_SETXATTR : AW_OP_REMOVEXATTR;
		__u32 n = put_fd_path(args.a[0], pos);
		if (n == 0)
			return 0;
		r->len[1] = n;
		pos += n;
		pos = put_raw_str(pos, 2, args.a[1]);
		break;
	}
	case NR_setxattrat:
	case NR_removexattrat:
		// (dirfd, path, at_flags, name, …): the *at forms of 6.13.
		r->op = args.id == NR_setxattrat ? AW_OP_SETXATTR : AW_OP_REMOVEXATTR;
		pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		pos = put_raw_str(pos, 2, args.a[3]);
		break;
	case NR_chown:
	case NR_lchown:
		r->op = AW_OP_CHOWN;
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		break;
	case NR_fchownat:
		r->op = AW_OP_CHOWN;
		pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		break;
	case NR_fchown: {
		r->op = AW_OP_CHOWN;
		__u32 n = put_fd_path(args.a[0], pos);
		if (n == 0)
			return 0;
		r->len[1] = n;
		pos += n;
		break;
	}
	case NR_utime:
	case NR_utimes:
		r->op = AW_OP_UTIMES;
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		break;
	case NR_futimesat:
	case NR_utimensat:
		r->op = AW_OP_UTIMES;
		if (args.a[1] == 0) {
			// utimensat(fd, NULL, …): the file the fd names (futimens).
			__u32 n = put_fd_path(args.a[0], pos);
			if (n == 0)
				return 0;
			r->len[1] = n;
			pos += n;
		} else {
			pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		}
		break;
	case NR_unlink:
	case NR_rmdir:
		r->op = AW_OP_DELETE;
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		break;
	case NR_unlinkat:
		r->op = AW_OP_DELETE;
		pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		break;
	case NR_mkdir:
		r->op = AW_OP_MKDIR;
		r->mode = args.a[1];
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		break;
	case NR_mkdirat:
		r->op = AW_OP_MKDIR;
		r->mode = args.a[2];
		pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		break;
	case NR_rename:
		r->op = AW_OP_RENAME;
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		pos = put_user_path(pos, 2, AT_FDCWD, args.a[1]);
		break;
	case NR_renameat:
	case NR_renameat2:
		r->op = AW_OP_RENAME;
		pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		pos = put_user_path(pos, 2, args.a[2], args.a[3]);
		break;
	case NR_chmod:
		r->op = AW_OP_CHMOD;
		r->mode = args.a[1];
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		break;
	case NR_fchmodat:
	case NR_fchmodat2:
		r->op = AW_OP_CHMOD;
		r->mode = args.a[2];
		pos = put_user_path(pos, 0, args.a[0], args.a[1]);
		break;
	case NR_truncate:
		r->op = AW_OP_TRUNCATE;
		pos = put_user_path(pos, 0, AT_FDCWD, args.a[0]);
		break;
	case NR_fchmod:
	case NR_ftruncate: {
		r->op = args.id == NR_fchmod ? AW_OP_CHMOD : AW_OP_TRUNCATE;
		if (args.id == NR_fchmod)
			r->mode = args.a[1];
		__u32 n = put_fd_path(args.a[0], pos);
		if (n == 0)
			return 0; // not an open file: nothing to name
		r->len[1] = n;
		pos += n;
		break;
	}
	default:
		return 0;
	}
	submit(hp, pos);
	return 0;
}
