package llm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// sock_diag wire format (linux/inet_diag.h); x/sys/unix has the constants
// but not these structs.
const (
	sizeofNlmsghdr     = 16
	sizeofInetDiagReq  = 56 // inet_diag_req_v2
	sizeofInetDiagMsg  = 72 // inet_diag_msg, without attributes
	inetDiagMsgUIDOff  = 64
	inetDiagMsgInodOff = 68
)

// socketInode asks the kernel (sock_diag, one exact-match request) for the
// TCP socket whose local address is local and whose peer is remote, and
// returns its inode and owner uid. Both addresses must be of one family.
func socketInode(local, remote netip.AddrPort) (inode, uid uint32, err error) {
	la, ra := local.Addr().Unmap(), remote.Addr().Unmap()
	family := byte(unix.AF_INET)
	if la.Is6() || ra.Is6() {
		family = unix.AF_INET6
		la, ra = netip.AddrFrom16(la.As16()), netip.AddrFrom16(ra.As16())
	}
	req := make([]byte, sizeofNlmsghdr+sizeofInetDiagReq)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1) // seq
	r := req[sizeofNlmsghdr:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 0xffffffff) // every state
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], local.Port())
	binary.BigEndian.PutUint16(id[2:], remote.Port())
	copy(id[4:20], la.AsSlice())
	copy(id[20:36], ra.AsSlice())
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(id[44:], 0xffffffff)

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, 0, fmt.Errorf("opening sock_diag: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, 0, fmt.Errorf("querying sock_diag: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("reading sock_diag: %w", err)
	}
	buf = buf[:n]
	if len(buf) < sizeofNlmsghdr {
		return 0, 0, errors.New("reading sock_diag: short reply")
	}
	switch typ := ne.Uint16(buf[4:]); typ {
	case unix.NLMSG_ERROR:
		if len(buf) >= sizeofNlmsghdr+4 {
			if errno := -int32(ne.Uint32(buf[sizeofNlmsghdr:])); errno != 0 {
				return 0, 0, fmt.Errorf("querying sock_diag: %w", syscall.Errno(errno))
			}
		}
		return 0, 0, errors.New("querying sock_diag: no socket")
	case unix.SOCK_DIAG_BY_FAMILY:
		msg := buf[sizeofNlmsghdr:]
		if len(msg) < sizeofInetDiagMsg {
			return 0, 0, errors.New("reading sock_diag: short message")
		}
		return ne.Uint32(msg[inetDiagMsgInodOff:]), ne.Uint32(msg[inetDiagMsgUIDOff:]), nil
	default:
		return 0, 0, fmt.Errorf("reading sock_diag: unexpected message type %d", typ)
	}
}
