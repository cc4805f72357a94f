package supervisor

import (
	"errors"
	"fmt"
	"github.com/agentwatch/agentwatch/event"
	"net/netip"
	"path/filepath"

	"github.com/agentwatch/agentwatch/ebpf"
	"github.com/agentwatch/agentwatch/netwatch"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
)

// startNetwork starts the run's network enforcement (DNS proxy, splice
// proxy, cgroup hooks) on the run's cgroup, before the child exists. The
// child needs nothing for it: the hooks redirect its DNS whatever its
// resolver configuration says.
//
// On failure it returns the gap to record and an error; the caller refuses
// to start the child in enforce mode (a policy that cannot be enforced must
// not silently become observe) and records the gap otherwise.
func startNetwork(pol *policy.Policy, s *sensors, sink *sink) (_ event.Gap, err error) {
	if s.cgroup == nil {
		err = errors.New("no run cgroup to attach to")
	} else {
		s.net, err = netwatch.Start(netwatch.Config{Policy: pol, CgroupPath: s.cgroup.Path, Emit: sink.add})
		if err == nil {
			// Pinned, the hooks outlive agentwatch: if it dies, no process
			// of the run ever connects with the policy lifted (the init
			// takes the processes down; recovery unpins).
			dir := filepath.Join(ebpf.BPFFS, "agentwatch", filepath.Base(s.cgroup.Path))
			sink.meta(metaNetPin, []byte(dir))
			if err = s.net.Pin(dir); err != nil {
				s.net.Close()
				s.net = nil
				err = fmt.Errorf("pinning the network hooks: %w", err)
			}
		}
	}
	if err != nil {
		return gap("netwatch", err), fmt.Errorf("starting network enforcement: %w", err)
	}
	return event.Gap{}, nil
}

// stopNetwork detaches the hooks (the decisions still queued reach the
// recorder) and stops the proxies; the run's processes are gone by then.
func (s *sensors) stopNetwork(end *recorder.End) {
	if s.net == nil {
		return
	}
	dropped := s.net.Dropped()
	if err := s.net.Close(); err != nil {
		end.Gaps = append(end.Gaps, gap("netwatch", err))
	}
	end.Dropped += dropped
}

// systemResolvers are the nameservers the child's configuration points at:
// DNS the hooks redirected from any other address is flagged as a bypass.
func systemResolvers() []netip.Addr {
	ns, _ := netwatch.Nameservers("/etc/resolv.conf")
	return ns
}
