//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// agentwatch's network enforcement: cgroup sock_addr programs attached to
// one run's cgroup (so they see only that run's sockets, with no filter of
// their own), plus a sockops program that hands the splice proxy the
// original destination of a connection steered to it.
//
//  - DNS: any UDP or TCP destination on port 53, or on the proxy's upstream
//    address and port (`dns_up`, `dns_up_local`), is rewritten to the run's
//    DNS proxy on loopback; recvmsg/getpeername rewrite the proxy's address
//    back to the resolver the child asked, because resolvers (glibc) drop a
//    reply that comes from another address than the one they asked.
//  - Addresses: a destination is allowed when the DNS proxy put it in
//    `allowed` (from an allowed name's answer, with the TTL as expiry), when
//    it is in `cidrs` (allow_cidrs), or when it is loopback (unless
//    allow_loopback is off: then only the supervisor's own endpoints in
//    `self`). Anything else is refused (return 0: EPERM) in enforce mode,
//    allowed and reported in observe mode.
//  - Inspection: a TCP connect to an allowed address on an inspected port is
//    rewritten to the splice proxy, which checks the TLS SNI / HTTP Host.
//    The original destination is kept by socket cookie (`orig`); once the
//    kernel picked the client's local port (sockops TCP_CONNECT_CB, before
//    the SYN), it is re-keyed by that local address and port (`splice`),
//    which is all the proxy can see of the accepted connection.
//
// ebpf/netwatch.go is the other half of every layout here. Addresses are
// kept as 16 bytes, IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d), so one key type
// serves both families.

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"

char __license[] SEC("license") = "Dual MIT/GPL";

// Set from Go before load.
volatile const __u8 enforce = 0;        // 1: refuse; 0: observe (allow and report)
volatile const __u8 allow_loopback = 1; // 0: only `self` endpoints on loopback
volatile const __u16 dns4_udp_port = 0; // DNS proxy on 127.0.0.1 (host order)
volatile const __u16 dns4_tcp_port = 0;
volatile const __u16 dns6_udp_port = 0; // DNS proxy on ::1; 0: not listening
volatile const __u16 dns6_tcp_port = 0;
volatile const __u16 splice4_port = 0; // splice proxy on 127.0.0.1; 0: no inspection
volatile const __u16 splice6_port = 0; // splice proxy on ::1

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define LOOPBACK4 0x7f000001 // 127.0.0.1, host order
#define DNS_PORT 53

enum nw_verdict { V_ALLOW = 1, V_DENY = 2, V_AUDIT = 3 };

enum nw_reason {
	R_NAME = 1,         // resolved from an allowed name (map `allowed`)
	R_CIDR = 2,         // allow_cidrs
	R_UNRESOLVED = 3,   // no allowed name resolved to it
	R_LOOPBACK = 4,     // loopback with allow_loopback: false
	R_DNS_REDIRECT = 5, // port 53, sent to the DNS proxy instead
	R_UDP_INSPECT = 6,  // UDP (QUIC) to an allowed address on an inspected port
};

enum nw_op { OP_CONNECT = 1, OP_SENDMSG = 2 };
enum nw_proto { P_TCP = 1, P_UDP = 2 };

#define F_SPLICE 1 // steered to the splice proxy

// One decision. Fixed size; kind first like every agentwatch record.
struct nw_rec {
	__u8 kind; // 1: decision
	__u8 verdict;
	__u8 reason;
	__u8 op;
	__u8 proto;
	__u8 flags;
	__u16 port; // original destination port, host order
	__u32 tgid;
	__u32 pad;
	__u64 ts_ns; // bpf_ktime_get_boot_ns
	__u64 cookie;
	__u32 addr[4]; // original destination, network order, v4-mapped
};

struct allow_key {
	__u32 addr[4];
	__u32 port; // host order; 0: any port
};

struct allow_val {
	__u64 expires_ns; // boot-time ns; the entry is ignored after it
};

struct cidr_key {
	__u32 prefixlen; // of the v4-mapped form: IPv4 /n is /96+n
	__u32 addr[4];
};

struct self_key {
	__u32 addr[4];
	__u32 port; // host order
};

struct orig_val {
	__u32 addr[4];
	__u16 port; // network order, as the socket address holds it
	__u8 flags;
	__u8 pad;
	__u32 tgid;
};

struct splice_key {
	__u32 addr[4]; // the client's local address (v4-mapped)
	__u32 port;    // the client's local port, host order
};

struct sent_val {
	__u32 addr[4];
	__u32 port;
};

const struct nw_rec *unused_nw_rec __attribute__((unused));
const struct allow_key *unused_allow_key __attribute__((unused));
const struct cidr_key *unused_cidr_key __attribute__((unused));
const struct orig_val *unused_orig_val __attribute__((unused));
const struct splice_key *unused_splice_key __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} decisions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nw_dropped SEC(".maps");

// Filled by the DNS proxy. A plain hash, not LRU: evicting an allowed
// address under pressure would turn into a spurious deny; Go sweeps
// expired entries instead. Not preallocated: 65536 preallocated entries
// cost ~10 ms of every run's start for a map that holds tens of addresses;
// entries are allocated when the proxy adds them (from user space, never
// in the programs' hot path).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct allow_key);
	__type(value, struct allow_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} allowed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct cidr_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cidrs SEC(".maps");

// The supervisor's own endpoints (DNS proxy, splice proxy, LLM proxy, OTLP
// receiver): reachable even with allow_loopback: false.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct self_key);
	__type(value, __u8);
} self SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32); // port, host order
	__type(value, __u8);
} inspect SEC(".maps");

// The DNS proxy's upstream resolvers (address and port): redirected to the
// proxy like port 53, so a child that knows where the proxy forwards (a
// local resolver on 127.0.0.1:5353, say) cannot ask it directly, whatever
// allow_loopback says.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); // the upstream's port on every address of the host
	__type(key, struct self_key);
	__type(value, __u8);
} dns_up SEC(".maps");

// Ports of upstreams on this host: any local destination (loopback, the
// unspecified address) on them is redirected too, since a resolver bound to
// 0.0.0.0 or [::] answers on all of them.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32); // port, host order
	__type(value, __u8);
} dns_up_local SEC(".maps");

// Original destination of a redirected socket, by socket cookie. LRU maps
// are preallocated (65536 entries took ~15 ms of every run's start);
// 16384 live redirected sockets in one run is far beyond what an agent
// holds open, and only the least recently used — long closed — are evicted.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct orig_val);
} orig SEC(".maps");

// Original destination of a connection steered to the splice proxy, by the
// client's local address and port (read and deleted by the proxy).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct splice_key);
	__type(value, struct orig_val);
} splice SEC(".maps");

// Last destination reported per unconnected socket: sendmsg reports a
// destination once, not every datagram.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sent_val);
} sent SEC(".maps");

static __always_inline void emit(__u8 verdict, __u8 reason, __u8 op, __u8 proto, __u8 flags,
				 __u32 addr[4], __u16 port_nbo, __u64 cookie)
{
	if (op == OP_SENDMSG) {
		struct sent_val sv = {};
		sv.addr[0] = addr[0];
		sv.addr[1] = addr[1];
		sv.addr[2] = addr[2];
		sv.addr[3] = addr[3];
		sv.port = port_nbo;
		struct sent_val *prev = bpf_map_lookup_elem(&sent, &cookie);
		if (prev && prev->addr[0] == sv.addr[0] && prev->addr[1] == sv.addr[1] &&
		    prev->addr[2] == sv.addr[2] && prev->addr[3] == sv.addr[3] && prev->port == sv.port)
			return;
		bpf_map_update_elem(&sent, &cookie, &sv, BPF_ANY);
	}
	struct nw_rec r = {};
	r.kind = 1;
	r.verdict = verdict;
	r.reason = reason;
	r.op = op;
	r.proto = proto;
	r.flags = flags;
	r.port = bpf_ntohs(port_nbo);
	r.tgid = bpf_get_current_pid_tgid() >> 32;
	r.ts_ns = bpf_ktime_get_boot_ns();
	r.cookie = cookie;
	r.addr[0] = addr[0];
	r.addr[1] = addr[1];
	r.addr[2] = addr[2];
	r.addr[3] = addr[3];
	if (bpf_ringbuf_output(&decisions, &r, sizeof(r), 0)) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&nw_dropped, &zero);
		if (n)
			*n += 1;
	}
}

static __always_inline bool is_v4mapped(__u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

// Loopback, and the unspecified address (connect to 0.0.0.0 or :: reaches
// the local host too, so it must not slip past allow_loopback: false).
static __always_inline bool is_local(__u32 a[4])
{
	if (is_v4mapped(a)) {
		__u32 h = bpf_ntohl(a[3]);
		return (h >> 24) == 127 || h == 0;
	}
	return a[0] == 0 && a[1] == 0 && a[2] == 0 && (a[3] == bpf_htonl(1) || a[3] == 0);
}

static __always_inline bool name_allowed(__u32 a[4], __u16 port)
{
	struct allow_key k = {};
	k.addr[0] = a[0];
	k.addr[1] = a[1];
	k.addr[2] = a[2];
	k.addr[3] = a[3];
	k.port = port;
	__u64 now = bpf_ktime_get_boot_ns();
	struct allow_val *v = bpf_map_lookup_elem(&allowed, &k);
	if (v && v->expires_ns > now)
		return true;
	k.port = 0;
	v = bpf_map_lookup_elem(&allowed, &k);
	return v && v->expires_ns > now;
}

static __always_inline bool cidr_allowed(__u32 a[4])
{
	struct cidr_key k = {};
	k.prefixlen = 128;
	k.addr[0] = a[0];
	k.addr[1] = a[1];
	k.addr[2] = a[2];
	k.addr[3] = a[3];
	return bpf_map_lookup_elem(&cidrs, &k) != NULL;
}

static __always_inline bool is_self(__u32 a[4], __u16 port)
{
	struct self_key k = {};
	k.addr[0] = a[0];
	k.addr[1] = a[1];
	k.addr[2] = a[2];
	k.addr[3] = a[3];
	k.port = port;
	return bpf_map_lookup_elem(&self, &k) != NULL;
}

static __always_inline bool is_local(__u32 a[4]);

static __always_inline bool is_upstream(__u32 a[4], __u16 port)
{
	struct self_key k = {};
	k.addr[0] = a[0];
	k.addr[1] = a[1];
	k.addr[2] = a[2];
	k.addr[3] = a[3];
	k.port = port;
	if (bpf_map_lookup_elem(&dns_up, &k))
		return true;
	__u32 p32 = port;
	return is_local(a) && bpf_map_lookup_elem(&dns_up_local, &p32);
}

static __always_inline void remember(__u64 cookie, __u32 a[4], __u16 port_nbo, __u8 flags)
{
	struct orig_val o = {};
	o.addr[0] = a[0];
	o.addr[1] = a[1];
	o.addr[2] = a[2];
	o.addr[3] = a[3];
	o.port = port_nbo;
	o.flags = flags;
	o.tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_map_update_elem(&orig, &cookie, &o, BPF_ANY);
}

// Where to send a socket instead; port 0: nowhere (the proxy is absent).
struct target {
	__u16 port; // host order
	bool v6;    // ::1 rather than 127.0.0.1
};

static __always_inline void rewrite(struct bpf_sock_addr *ctx, struct target t)
{
	if (t.v6) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	} else {
		ctx->user_ip4 = bpf_htonl(LOOPBACK4);
	}
	ctx->user_port = bpf_htons(t.port);
}

// decide is the policy for one connect or datagram destination a (v4-mapped
// for IPv4). v6 says the socket address is IPv6, so a redirect must use ::1.
static __always_inline int decide(struct bpf_sock_addr *ctx, __u32 a[4], bool v6, __u8 op)
{
	__u8 proto;
	if (ctx->type == SOCK_STREAM)
		proto = P_TCP;
	else if (ctx->type == SOCK_DGRAM)
		proto = P_UDP;
	else
		return 1; // raw sockets need CAP_NET_RAW, which the child never has
	__u16 port_nbo = ctx->user_port;
	__u16 port = bpf_ntohs(port_nbo);
	__u64 cookie = bpf_get_socket_cookie(ctx);

	if ((port == DNS_PORT || is_upstream(a, port)) && !is_self(a, port)) {
		struct target t = {.v6 = v6};
		if (proto == P_TCP)
			t.port = v6 ? dns6_tcp_port : dns4_tcp_port;
		else
			t.port = v6 ? dns6_udp_port : dns4_udp_port;
		if (t.port == 0) {
			emit(enforce ? V_DENY : V_AUDIT, R_DNS_REDIRECT, op, proto, 0, a, port_nbo, cookie);
			return enforce ? 0 : 1;
		}
		remember(cookie, a, port_nbo, 0);
		emit(V_ALLOW, R_DNS_REDIRECT, op, proto, 0, a, port_nbo, cookie);
		rewrite(ctx, t);
		return 1;
	}

	// An allowed name may resolve to a loopback address (a local service),
	// so names and CIDRs are asked before the loopback rule.
	__u8 reason, verdict = V_ALLOW;
	if (name_allowed(a, port))
		reason = R_NAME;
	else if (cidr_allowed(a))
		reason = R_CIDR;
	else if (is_local(a)) {
		if (allow_loopback || is_self(a, port))
			return 1; // not a decision worth a record: the file/connect sensor has it
		reason = R_LOOPBACK;
		verdict = enforce ? V_DENY : V_AUDIT;
	} else {
		reason = R_UNRESOLVED;
		verdict = enforce ? V_DENY : V_AUDIT;
	}

	// QUIC (UDP 443) to an allowed address would carry its server name
	// past the splice proxy, which sees TCP only: refused in enforce mode,
	// so clients fall back to TCP, where the name is checked.
	__u32 p32 = port;
	if (proto == P_UDP && reason == R_NAME && bpf_map_lookup_elem(&inspect, &p32)) {
		reason = R_UDP_INSPECT;
		verdict = enforce ? V_DENY : V_AUDIT;
	}

	__u8 flags = 0;
	// allow_cidrs are literal-address exceptions with no name to check, so
	// they are not inspected; in observe mode an unresolved address is, so
	// the trace still gets the name the child asked for.
	if (proto == P_TCP && op == OP_CONNECT && reason != R_CIDR && reason != R_LOOPBACK && verdict != V_DENY) {
		struct target t = {.v6 = v6, .port = v6 ? splice6_port : splice4_port};
		if (t.port != 0 && bpf_map_lookup_elem(&inspect, &p32)) {
			flags = F_SPLICE;
			remember(cookie, a, port_nbo, F_SPLICE);
			rewrite(ctx, t);
		}
	}
	emit(verdict, reason, op, proto, flags, a, port_nbo, cookie);
	return verdict == V_DENY ? 0 : 1;
}

static __always_inline void load4(__u32 a[4], __u32 ip4)
{
	a[0] = 0;
	a[1] = 0;
	a[2] = bpf_htonl(0xffff);
	a[3] = ip4;
}

static __always_inline void load6(__u32 a[4], struct bpf_sock_addr *ctx)
{
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
}

SEC("cgroup/connect4")
int nw_connect4(struct bpf_sock_addr *ctx)
{
	__u32 a[4];
	load4(a, ctx->user_ip4);
	return decide(ctx, a, false, OP_CONNECT);
}

SEC("cgroup/connect6")
int nw_connect6(struct bpf_sock_addr *ctx)
{
	__u32 a[4];
	load6(a, ctx);
	return decide(ctx, a, true, OP_CONNECT);
}

SEC("cgroup/sendmsg4")
int nw_sendmsg4(struct bpf_sock_addr *ctx)
{
	__u32 a[4];
	load4(a, ctx->user_ip4);
	return decide(ctx, a, false, OP_SENDMSG);
}

SEC("cgroup/sendmsg6")
int nw_sendmsg6(struct bpf_sock_addr *ctx)
{
	__u32 a[4];
	load6(a, ctx);
	return decide(ctx, a, true, OP_SENDMSG);
}

// is_proxy reports whether the source/peer a:port is one of our proxies a
// socket may have been redirected to.
static __always_inline bool is_proxy(__u32 a[4], __u16 port)
{
	if (port == 0)
		return false;
	if (is_v4mapped(a)) {
		if (a[3] != bpf_htonl(LOOPBACK4))
			return false;
		return port == dns4_udp_port || port == dns4_tcp_port || port == splice4_port;
	}
	if (a[0] || a[1] || a[2] || a[3] != bpf_htonl(1))
		return false;
	return port == dns6_udp_port || port == dns6_tcp_port || port == splice6_port;
}

// unrewrite puts the original destination back where the child reads the
// peer of a redirected socket (recvmsg source, getpeername).
static __always_inline struct orig_val *unrewrite(struct bpf_sock_addr *ctx, __u32 a[4])
{
	if (!is_proxy(a, bpf_ntohs(ctx->user_port)))
		return NULL;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	return bpf_map_lookup_elem(&orig, &cookie);
}

static __always_inline int restore4(struct bpf_sock_addr *ctx)
{
	__u32 a[4];
	load4(a, ctx->user_ip4);
	struct orig_val *o = unrewrite(ctx, a);
	if (o && is_v4mapped(o->addr)) {
		ctx->user_ip4 = o->addr[3];
		ctx->user_port = o->port;
	}
	return 1;
}

static __always_inline int restore6(struct bpf_sock_addr *ctx)
{
	__u32 a[4];
	load6(a, ctx);
	struct orig_val *o = unrewrite(ctx, a);
	if (o) {
		ctx->user_ip6[0] = o->addr[0];
		ctx->user_ip6[1] = o->addr[1];
		ctx->user_ip6[2] = o->addr[2];
		ctx->user_ip6[3] = o->addr[3];
		ctx->user_port = o->port;
	}
	return 1;
}

SEC("cgroup/recvmsg4")
int nw_recvmsg4(struct bpf_sock_addr *ctx) { return restore4(ctx); }

SEC("cgroup/recvmsg6")
int nw_recvmsg6(struct bpf_sock_addr *ctx) { return restore6(ctx); }

SEC("cgroup/getpeername4")
int nw_getpeername4(struct bpf_sock_addr *ctx) { return restore4(ctx); }

SEC("cgroup/getpeername6")
int nw_getpeername6(struct bpf_sock_addr *ctx) { return restore6(ctx); }

SEC("sockops")
int nw_sockops(struct bpf_sock_ops *ctx)
{
	if (ctx->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_val *o = bpf_map_lookup_elem(&orig, &cookie);
	if (!o || !(o->flags & F_SPLICE))
		return 1;
	// Every context field is read unconditionally: clang would otherwise
	// merge the two branches into one access at a computed offset, which
	// the verifier refuses for a context pointer.
	__u32 family = ctx->family, ip4 = ctx->local_ip4, port = ctx->local_port;
	__u32 ip6_0 = ctx->local_ip6[0], ip6_1 = ctx->local_ip6[1];
	__u32 ip6_2 = ctx->local_ip6[2], ip6_3 = ctx->local_ip6[3];
	struct splice_key k = {};
	if (family == AF_INET) {
		k.addr[2] = bpf_htonl(0xffff);
		k.addr[3] = ip4;
	} else {
		k.addr[0] = ip6_0;
		k.addr[1] = ip6_1;
		k.addr[2] = ip6_2;
		k.addr[3] = ip6_3;
	}
	k.port = port;
	struct orig_val v = *o;
	bpf_map_update_elem(&splice, &k, &v, BPF_ANY);
	return 1;
}
