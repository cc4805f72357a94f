package ebpf

// The network enforcer (bpf/netwatch.c) is the one part of this package
// that acts rather than observes: its programs refuse and redirect
// connections. It still decides nothing by itself — what is allowed is
// whatever netwatch puts in its maps (addresses of allowed names, CIDRs,
// the supervisor's endpoints) — and it reports every decision as an event.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/agentwatch/agentwatch/event"
)

// Rules the network enforcer puts in event.NetDecision.Rule. The loader
// knows only why the kernel decided; netwatch replaces RuleAllowedName and
// RuleAllowedCIDR with the policy rule (the network.allow pattern, the CIDR).
const (
	RuleAllowedName = "allowed-name"          // an allowed name resolved to the address
	RuleAllowedCIDR = "allow_cidrs"           // network.allow_cidrs
	RuleUnresolved  = "unresolved-address"    // no allowed name resolved to it (IP literal, --resolve, hard-coded, DNS elsewhere)
	RuleLoopback    = "loopback-denied"       // loopback with network.allow_loopback: false
	RuleDNSRedirect = "dns-redirect"          // port 53, answered by the run's DNS proxy instead
	RuleUDPInspect  = "udp-on-inspected-port" // QUIC to an allowed address: its name would skip the splice check
)

// Checks in event.NetDecision.Check from the kernel hooks.
const (
	CheckAddress     = "address"
	CheckDNSRedirect = "dns-redirect"
)

// NetConfig configures the run's network enforcement. Ports are of the
// run's proxies on 127.0.0.1 and ::1; 0 means that proxy is not there (then
// DNS of that family cannot be redirected and is refused in enforce mode,
// and connections of that family are not inspected).
type NetConfig struct {
	CgroupPath    string // the run's cgroup v2 directory; the programs see its sockets only
	Enforce       bool   // refuse (EPERM); false: allow and report (observe)
	AllowLoopback bool   // false: only AllowEndpoint'ed loopback endpoints
	DNS4UDP       uint16
	DNS4TCP       uint16
	DNS6UDP       uint16
	DNS6TCP       uint16
	Splice4       uint16
	Splice6       uint16
	InspectPorts  []int // TCP ports steered to the splice proxy
	// DNSUpstreams are where the DNS proxy forwards: redirected to the
	// proxy like port 53 (UDP and TCP), so the run never reaches them
	// directly. DNSUpstreamLocalPorts are their ports when they are on this
	// host: any loopback or unspecified destination on such a port is
	// redirected too.
	DNSUpstreams          []netip.AddrPort
	DNSUpstreamLocalPorts []uint16
	// Emit receives one event.NetDecision per decision, from the reader
	// goroutine (and from Close while it drains). Name is empty: the
	// kernel does not know it.
	Emit func(event.NetDecision)
}

// NetEnforcer is the run's attached sock_addr and sockops programs.
type NetEnforcer struct {
	objs       netwatchObjects
	links      []link.Link
	linkNames  []string // pin file names, in attach order
	pinDir     string   // "": not pinned
	rd         *ringbuf.Reader
	emit       func(event.NetDecision)
	bootOffset int64
	done       chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// StartNetEnforcer loads the programs with cfg's settings, attaches them to
// the cgroup and starts reading decisions. The maps start empty: nothing
// but loopback (and DNS, redirected) is allowed until AllowAddr/AllowCIDR.
func StartNetEnforcer(cfg NetConfig) (*NetEnforcer, error) {
	if cfg.Emit == nil {
		return nil, errors.New("starting network enforcement: NetConfig.Emit is nil")
	}
	if cfg.CgroupPath == "" {
		return nil, errors.New("starting network enforcement: no cgroup (the run must have its own cgroup v2)")
	}
	e := &NetEnforcer{emit: cfg.Emit, done: make(chan struct{})}
	if err := loadNetPrograms(&e.objs, cfg); err != nil {
		return nil, err
	}
	var err error
	if e.bootOffset, err = measureBootOffset(); err != nil {
		e.objs.Close()
		return nil, err
	}
	one := uint8(1)
	for _, p := range cfg.InspectPorts {
		if p <= 0 || p > 65535 {
			e.objs.Close()
			return nil, fmt.Errorf("starting network enforcement: inspect port %d out of range", p)
		}
		if err := e.objs.Inspect.Put(uint32(p), one); err != nil {
			e.objs.Close()
			return nil, fmt.Errorf("filling inspect ports: %w", err)
		}
	}
	for _, ap := range cfg.DNSUpstreams {
		k := netwatchSelfKey{Addr: key16(ap.Addr()), Port: uint32(ap.Port())}
		if err := e.objs.DnsUp.Put(&k, one); err != nil {
			e.objs.Close()
			return nil, fmt.Errorf("filling DNS upstreams (%s): %w", ap, err)
		}
	}
	for _, p := range cfg.DNSUpstreamLocalPorts {
		if err := e.objs.DnsUpLocal.Put(uint32(p), one); err != nil {
			e.objs.Close()
			return nil, fmt.Errorf("filling DNS upstream ports (%d): %w", p, err)
		}
	}
	if e.rd, err = ringbuf.NewReader(e.objs.Decisions); err != nil {
		e.objs.Close()
		return nil, fmt.Errorf("opening decision ring buffer: %w", err)
	}
	for _, a := range []struct {
		name string
		prog *ebpf.Program
		typ  ebpf.AttachType
	}{
		// The reverse rewrites and sockops first: a redirect is never
		// made that cannot be undone for the child or found by the proxy.
		{"recvmsg4", e.objs.NwRecvmsg4, ebpf.AttachCGroupUDP4Recvmsg},
		{"recvmsg6", e.objs.NwRecvmsg6, ebpf.AttachCGroupUDP6Recvmsg},
		{"getpeername4", e.objs.NwGetpeername4, ebpf.AttachCgroupInet4GetPeername},
		{"getpeername6", e.objs.NwGetpeername6, ebpf.AttachCgroupInet6GetPeername},
		{"sockops", e.objs.NwSockops, ebpf.AttachCGroupSockOps},
		{"connect4", e.objs.NwConnect4, ebpf.AttachCGroupInet4Connect},
		{"connect6", e.objs.NwConnect6, ebpf.AttachCGroupInet6Connect},
		{"sendmsg4", e.objs.NwSendmsg4, ebpf.AttachCGroupUDP4Sendmsg},
		{"sendmsg6", e.objs.NwSendmsg6, ebpf.AttachCGroupUDP6Sendmsg},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cfg.CgroupPath, Attach: a.typ, Program: a.prog})
		if err != nil {
			e.detach()
			e.rd.Close()
			e.objs.Close()
			return nil, fmt.Errorf("attaching cgroup/%s to %s: %w", a.name, cfg.CgroupPath, err)
		}
		e.links = append(e.links, l)
		e.linkNames = append(e.linkNames, a.name)
	}
	go e.read()
	return e, nil
}

func loadNetPrograms(objs *netwatchObjects, cfg NetConfig) error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("preparing to load eBPF programs (%s): %w", netPrivilegeHint, err)
	}
	spec, err := loadNetwatch()
	if err != nil {
		return fmt.Errorf("reading embedded eBPF object: %w", err)
	}
	for name, v := range map[string]any{
		"enforce":        boolByte(cfg.Enforce),
		"allow_loopback": boolByte(cfg.AllowLoopback),
		"dns4_udp_port":  cfg.DNS4UDP,
		"dns4_tcp_port":  cfg.DNS4TCP,
		"dns6_udp_port":  cfg.DNS6UDP,
		"dns6_tcp_port":  cfg.DNS6TCP,
		"splice4_port":   cfg.Splice4,
		"splice6_port":   cfg.Splice6,
	} {
		sv, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("eBPF object has no variable %s", name)
		}
		if err := sv.Set(v); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	if err := spec.LoadAndAssign(objs, loadOptions()); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("loading network eBPF programs: verifier rejected them: %+v", ve)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("loading network eBPF programs (%s): %w", netPrivilegeHint, err)
		}
		return fmt.Errorf("loading network eBPF programs (needs cgroup sock_addr and sockops support): %w", err)
	}
	return nil
}

const netPrivilegeHint = "needs root, or CAP_BPF and CAP_NET_ADMIN"

// CheckNet loads the network programs through the verifier without
// attaching (doctor, tests).
func CheckNet() error {
	var objs netwatchObjects
	if err := loadNetPrograms(&objs, NetConfig{DNS4UDP: 1, DNS4TCP: 1, Splice4: 1}); err != nil {
		return err
	}
	return objs.Close()
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// key16 is an address as the programs key it: 16 bytes, IPv4 v4-mapped,
// as four network-order words in native memory order.
func key16(a netip.Addr) [4]uint32 {
	b := a.As16() // v4-mapped for IPv4
	var k [4]uint32
	for i := range k {
		k[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return k
}

func addrOf(k [4]uint32) netip.Addr {
	var b [16]byte
	for i, w := range k {
		binary.NativeEndian.PutUint32(b[4*i:], w)
	}
	return netip.AddrFrom16(b).Unmap()
}

// AllowAddr lets the run connect to addr on port (0: any port) until
// expires. Called by the DNS proxy for the answers of an allowed name; a
// later call for the same key replaces the expiry.
func (e *NetEnforcer) AllowAddr(addr netip.Addr, port int, expires time.Time) error {
	k := netwatchAllowKey{Addr: key16(addr), Port: uint32(port)}
	v := netwatchAllowVal{ExpiresNs: uint64(expires.UnixNano() - e.bootOffset)}
	if err := e.objs.Allowed.Put(&k, &v); err != nil {
		return fmt.Errorf("allowing %s: %w", addr, err)
	}
	return nil
}

// SweepExpired deletes allowed addresses that expired before now, so the
// (non-LRU) map cannot fill up in a long run. It returns how many it
// deleted.
func (e *NetEnforcer) SweepExpired(now time.Time) int {
	cutoff := uint64(now.UnixNano() - e.bootOffset)
	var k netwatchAllowKey
	var v netwatchAllowVal
	var dead []netwatchAllowKey
	it := e.objs.Allowed.Iterate()
	for it.Next(&k, &v) {
		if v.ExpiresNs <= cutoff {
			dead = append(dead, k)
		}
	}
	for i := range dead {
		_ = e.objs.Allowed.Delete(&dead[i])
	}
	return len(dead)
}

// AllowCIDR adds a network.allow_cidrs prefix.
func (e *NetEnforcer) AllowCIDR(p netip.Prefix) error {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	k := netwatchCidrKey{Prefixlen: uint32(bits), Addr: key16(p.Addr())}
	if err := e.objs.Cidrs.Put(&k, uint8(1)); err != nil {
		return fmt.Errorf("allowing %s: %w", p, err)
	}
	return nil
}

// AllowEndpoint keeps one of the supervisor's own loopback endpoints (LLM
// proxy, OTLP receiver) reachable when allow_loopback is false.
func (e *NetEnforcer) AllowEndpoint(ap netip.AddrPort) error {
	k := netwatchSelfKey{Addr: key16(ap.Addr()), Port: uint32(ap.Port())}
	if err := e.objs.Self.Put(&k, uint8(1)); err != nil {
		return fmt.Errorf("allowing endpoint %s: %w", ap, err)
	}
	return nil
}

// SpliceOrigDst returns the original destination of a connection the
// connect hook steered to the splice proxy, given the client's address as
// the proxy sees it (the accepted connection's remote address), and the
// process that connected. The entry is consumed.
func (e *NetEnforcer) SpliceOrigDst(client netip.AddrPort) (dst netip.AddrPort, pid uint32, ok bool) {
	k := netwatchSpliceKey{Addr: key16(client.Addr()), Port: uint32(client.Port())}
	var v netwatchOrigVal
	if err := e.objs.Splice.LookupAndDelete(&k, &v); err != nil {
		return netip.AddrPort{}, 0, false
	}
	// Port is in network order as the socket address held it.
	var pb [2]byte
	binary.NativeEndian.PutUint16(pb[:], v.Port)
	return netip.AddrPortFrom(addrOf(v.Addr), binary.BigEndian.Uint16(pb[:])), v.Tgid, true
}

// Dropped is how many decision records the ring buffer could not take.
func (e *NetEnforcer) Dropped() uint64 {
	var perCPU []uint64
	if err := e.objs.NwDropped.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

func (e *NetEnforcer) read() {
	defer close(e.done)
	var rec ringbuf.Record
	for {
		err := e.rd.ReadInto(&rec)
		if err != nil {
			return // ErrFlushed (Close) or closed
		}
		if d, err := decodeNetRec(rec.RawSample, e.bootOffset); err == nil {
			e.emit(d)
		}
	}
}

const netRecSize = 48

// decodeNetRec turns one nw_rec into a decision; a pure function of bytes.
func decodeNetRec(b []byte, bootOffset int64) (event.NetDecision, error) {
	if len(b) < netRecSize || b[0] != 1 {
		return event.NetDecision{}, fmt.Errorf("decoding network decision: bad record (%d bytes)", len(b))
	}
	var addr [4]uint32
	for i := range addr {
		addr[i] = binary.NativeEndian.Uint32(b[32+4*i:])
	}
	d := event.NetDecision{
		Header: event.Header{
			Time: time.Unix(0, int64(binary.NativeEndian.Uint64(b[16:]))+bootOffset),
			PID:  binary.NativeEndian.Uint32(b[8:]),
		},
		Op:        event.NetConnect,
		Transport: event.TCP,
		Addr:      netip.AddrPortFrom(addrOf(addr), binary.NativeEndian.Uint16(b[6:])),
		Check:     CheckAddress,
	}
	switch b[1] {
	case 1:
		d.Verdict = event.Allow
	case 2:
		d.Verdict = event.Deny
	case 3:
		d.Verdict = event.Audit
	default:
		return event.NetDecision{}, fmt.Errorf("decoding network decision: bad verdict %d", b[1])
	}
	switch b[2] {
	case 1:
		d.Rule = RuleAllowedName
	case 2:
		d.Rule = RuleAllowedCIDR
	case 3:
		d.Rule = RuleUnresolved
	case 4:
		d.Rule = RuleLoopback
	case 5:
		d.Rule, d.Check = RuleDNSRedirect, CheckDNSRedirect
	case 6:
		d.Rule = RuleUDPInspect
	default:
		return event.NetDecision{}, fmt.Errorf("decoding network decision: bad reason %d", b[2])
	}
	if b[3] == 2 {
		d.Op = event.NetSendTo
	}
	if b[4] == 2 {
		d.Transport = event.UDP
	}
	return d, nil
}

// BPFFS is where bpffs is mounted when Pin finds none.
const BPFFS = "/sys/fs/bpf"

// Pin pins every attached link under dir (in bpffs, created 0700), so the
// hooks stay on the run's cgroup when this process dies — a kill -9 of the
// supervisor must not lift the run's network policy. The links hold the
// programs and the programs their maps, so nothing else needs a pin; with
// the supervisor gone the DNS proxy is gone too, and redirected DNS fails.
// bpffs is mounted at /sys/fs/bpf first if it is not. Pinning again to the
// same dir is a no-op. Close unpins; after a crash, UnpinNetwork(dir).
func (e *NetEnforcer) Pin(dir string) error {
	if e.pinDir == dir {
		return nil
	}
	if e.pinDir != "" {
		return fmt.Errorf("pinning network hooks to %s: already pinned to %s", dir, e.pinDir)
	}
	if err := ensureBPFFS(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pinning network hooks: %w", err)
	}
	if err := onBPFFS(dir); err != nil {
		return fmt.Errorf("pinning network hooks: %w", err)
	}
	for i, l := range e.links {
		if err := l.Pin(filepath.Join(dir, e.linkNames[i])); err != nil {
			for _, l := range e.links[:i] {
				_ = l.Unpin()
			}
			_ = os.Remove(dir)
			return fmt.Errorf("pinning network hook %s: %w", e.linkNames[i], err)
		}
	}
	e.pinDir = dir
	return nil
}

// UnpinNetwork removes the pins Pin left under dir and dir itself, which
// detaches the hooks unless a live process still holds them (a running
// supervisor's Close does that itself). A missing dir is not an error; a
// dir that is not in bpffs is refused, never emptied.
func UnpinNetwork(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unpinning network hooks: %w", err)
	}
	if err := onBPFFS(dir); err != nil {
		return fmt.Errorf("unpinning network hooks: %w", err)
	}
	var errs []error
	// Reverse of attach order: connect and sendmsg first, so no redirect
	// is made after its reverse rewrite is gone; then anything else.
	names := []string{"sendmsg6", "sendmsg4", "connect6", "connect4", "sockops", "getpeername6", "getpeername4", "recvmsg6", "recvmsg4"}
	for _, e := range entries {
		if !slices.Contains(names, e.Name()) {
			names = append(names, e.Name())
		}
	}
	for _, name := range names {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unpinning network hooks: %w", err)
	}
	return nil
}

func onBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	if uint32(st.Type) != unix.BPF_FS_MAGIC {
		return fmt.Errorf("%s is not in a bpf filesystem", dir)
	}
	return nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf unless mountinfo has one there.
func ensureBPFFS() error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("looking for bpffs: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if ok && len(f) > 4 && f[4] == BPFFS && strings.HasPrefix(post, "bpf ") {
			return nil
		}
	}
	if err := unix.Mount("bpf", BPFFS, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting bpffs at %s: %w", BPFFS, err)
	}
	return nil
}

// Close detaches the programs (removing the pins, if Pin made any), emits
// the decisions still queued and frees everything.
func (e *NetEnforcer) Close() error {
	e.closeOnce.Do(func() {
		if e.pinDir != "" {
			if err := UnpinNetwork(e.pinDir); err != nil {
				e.closeErr = err
			}
		}
		e.detach()
		if err := e.rd.Flush(); err != nil {
			e.rd.Close()
		}
		<-e.done
		e.closeErr = errors.Join(e.closeErr, e.rd.Close(), e.objs.Close())
	})
	return e.closeErr
}

func (e *NetEnforcer) detach() {
	for _, l := range e.links {
		l.Close()
	}
	e.links = nil
}
