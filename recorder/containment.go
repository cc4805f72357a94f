package recorder

// Containment evidence (wave 2): persistence, unix sockets, io_uring, the
// new file operations.
//
// Decisions a reader of the trace should know:
//   - persistence (high; medium when the kernel refused the operation):
//     a create, write, truncate or chmod of a policy.PersistencePaths
//     path, a rename, hard link or symlink whose new name is one, or a
//     symlink whose target is one (writing through the link would write
//     it). One alert per file span and outcome; the message names the
//     operation, the path and what runs later. Code-executing git
//     configuration keys added or changed during the run (workspace
//     evidence) raise it too, on the root, naming the key and the file,
//     never the value. It is raised whatever the policy says: the paths
//     are built in.
//   - unix_socket_outside_run (medium): a successful connect to a unix
//     socket whose listener (the kernel's peer credentials) is not a
//     process the run's sensors saw: a forwarder, an agent (ssh-agent,
//     gpg-agent), a daemon (docker, dbus) outside the run is an escape
//     route. A peer pid of 0 (unknown) is not judged. The span is a
//     network_call with network.transport=unix and network.peer.address
//     (and server.address) the socket path ("@name" for an abstract one).
//   - io_uring: high when io_uring_setup succeeded — its file and network
//     operations are not observed; low when it was refused (ENOSYS, EPERM:
//     enforce mode's seccomp filter; runtimes such as libuv try it and
//     fall back) or failed otherwise. On the process span, which also
//     gets agentwatch.process.io_uring = used | refused | failed.
//   - Without RunInfo.Home the ~/ patterns match nothing; gapNoHome is on
//     agentwatch.telemetry.gaps. It is a missing policy input, not a
//     missing sensor, so it does not raise missing_telemetry.

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/telemetry"
)

// gapNoHome is the telemetry gap of a run without RunInfo.Home.
const gapNoHome = "policy: the child's home directory is unknown: ~/ patterns (secrets, protected and persistence paths) match nothing"

const maxXattrs = 8 // agentwatch.file.xattr names per file span

// persistsAt says whether op puts content at its Path (newName false) or
// at its NewPath (newName true) that can run later.
func persistsAt(op event.FileOp, newName bool) bool {
	if newName {
		switch op {
		case event.FileRename, event.FileLink, event.FileSymlink:
			return true
		}
		return false
	}
	switch op {
	case event.FileCreate, event.FileWrite, event.FileTruncate, event.FileChmod, event.FileSymlink:
		return true
	}
	return false
}

func (r *Recorder) persistenceAlert(fs *fileSpan, e event.File, np, pattern string) {
	what := pattern
	for _, pp := range policy.PersistencePaths {
		if pp.Pattern == pattern {
			what = pp.What
		}
	}
	target := r.shown(fs.path)
	if np != "" && e.Op != event.FileSymlink {
		target += " → " + r.shown(np)
	} else if np != "" {
		target += " → " + e.NewPath
	}
	if e.Errno != 0 {
		r.raise(fs.id, e.Time, telemetry.AlertPersistence, telemetry.SeverityMedium, "attempt",
			fmt.Sprintf("%s of %s refused (%s): %s runs code later, outside the run", e.Op, target, errnoName(e.Errno), what))
		return
	}
	r.raise(fs.id, e.Time, telemetry.AlertPersistence, telemetry.SeverityHigh, "changed",
		fmt.Sprintf("%s of %s: %s runs code later, outside the run", e.Op, target, what))
}

// unixConnect records a connection to a unix socket as a network_call
// under the process, keyed by the socket path.
func (r *Recorder) unixConnect(e event.Connect) {
	if e.UnixPath == "" {
		return
	}
	owner := r.activeSpan(e.PID)
	key := netKey{transport: event.Unix, unixPath: e.UnixPath}
	ns := owner.nets[key]
	inside := e.PeerPID == 0 || r.procs[e.PeerPID] != nil || e.PeerPID == r.info.RootPID
	if ns == nil && (inside && !r.netBudget(owner) || !inside && !r.alertingBudget()) {
		r.aggregateConnect(owner, key, e) // a listener outside the run keeps its span, up to the evidence ceiling
		if !inside {
			a := r.netAggregate(owner, e.Time)
			a.alerting++
			r.aggregatedEvidence(a, e.Time, telemetry.AlertUnixOutsideRun, fmt.Sprintf("%s, pid %d", e.UnixPath, e.PeerPID))
		}
		return
	}
	if ns == nil {
		owner.nNetSpans++
		r.nNetSpans++
		if !inside {
			r.alertingSpans++
		}
		id, seq := r.nextSpanID()
		ns = &netSpan{id: id, seq: seq, key: key, start: e.Time, end: e.Time}
		if owner.nets == nil {
			owner.nets = make(map[netKey]*netSpan)
		}
		owner.nets[key] = ns
		owner.netOrder = append(owner.netOrder, ns)
	}
	ns.add(e)
	if e.PeerPID == 0 {
		return
	}
	ns.peerPID = e.PeerPID
	if p := r.procs[e.PeerPID]; p != nil || e.PeerPID == r.info.RootPID {
		return
	}
	ns.outside = true
	if e.Errno != 0 && syscall.Errno(abs32(e.Errno)) != syscall.EINPROGRESS {
		return
	}
	r.raise(ns.id, e.Time, telemetry.AlertUnixOutsideRun, telemetry.SeverityMedium, "",
		fmt.Sprintf("connection to unix socket %s, served by pid %d, which is not a process of the run: a way out of the run's policy", e.UnixPath, e.PeerPID))
}

func (r *Recorder) ioURing(e event.IOURing) {
	owner := r.activeSpan(e.PID)
	errno := syscall.Errno(abs32(e.Errno))
	switch {
	case e.Errno == 0:
		owner.ioURing = "used"
		msg := "io_uring in use: its file and network operations are not observed"
		if !r.observe() {
			msg += " (enforce mode did not refuse it)"
		}
		r.raise(owner.id, e.Time, telemetry.AlertIOURing, telemetry.SeverityHigh, "used",
			fmt.Sprintf("%s (%d entries)", msg, e.Entries))
	case errno == syscall.ENOSYS || errno == syscall.EPERM:
		if owner.ioURing == "" {
			owner.ioURing = "refused"
		}
		r.raise(owner.id, e.Time, telemetry.AlertIOURing, telemetry.SeverityLow, "refused",
			fmt.Sprintf("io_uring_setup refused (%s): attempt recorded, nothing bypassed the sensors", errnoName(e.Errno)))
	default:
		if owner.ioURing == "" {
			owner.ioURing = "failed"
		}
		r.raise(owner.id, e.Time, telemetry.AlertIOURing, telemetry.SeverityLow, "failed",
			fmt.Sprintf("io_uring_setup failed (%s)", errnoName(e.Errno)))
	}
}

// noteDetail keeps an op's detail (xattr names) on the span.
func (fs *fileSpan) noteDetail(e event.File) {
	switch e.Op {
	case event.FileSetxattr, event.FileRemovexattr:
		d := strings.TrimSpace(e.Detail)
		if d == "" || len(fs.xattrs) >= maxXattrs {
			return
		}
		for _, x := range fs.xattrs {
			if x == d {
				return
			}
		}
		fs.xattrs = append(fs.xattrs, d)
	case event.FileSymlink:
		if e.NewPath != "" {
			fs.symlinkTarget = e.NewPath
		}
	case event.FileLink:
		if e.NewPath != "" {
			fs.linkedTo = cleanPath(e.NewPath)
		}
	}
}
