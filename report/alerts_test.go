package report_test

import (
	"bytes"
	"strings"
	"syscall"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/report"
)

// TestShowListsContainmentAlerts: fixture events through the recorder,
// then `show`'s tree: every wave 2 rule appears with its severity and a
// message, in the Alerts block, and is marked on its span.
func TestShowListsContainmentAlerts(t *testing.T) {
	const ws, home = "/srv/work/app", "/srv/agent-home"
	hdr := func(ms int, pid uint32) event.Header { return event.Header{Time: at(ms), PID: pid} }
	pol, err := policy.Parse("p.yaml", []byte("version: 1\nmode: observe\n"))
	if err != nil {
		t.Fatal(err)
	}
	rec := recorder.New(recorder.RunInfo{RunID: "r-show", Start: at(0), RootPID: 10, UID: 1000, User: "agent",
		Home: home, Workspace: ws, Policy: pol})
	for _, e := range []event.Event{
		event.Fork{Header: hdr(1, 10), PPID: 1},
		event.Exec{Header: hdr(2, 10), PPID: 1, Filename: "/bin/sh", Argv: []string{"sh", "-c", "x"}, Cwd: ws},
		event.File{Header: hdr(3, 10), Source: event.SourceEBPF, Op: event.FileWrite, Path: home + "/.bashrc"},
		event.File{Header: hdr(4, 10), Source: event.SourceEBPF, Op: event.FileSymlink, Path: ws + "/.git/hooks/pre-commit", NewPath: "/tmp/p"},
		event.Connect{Header: hdr(5, 10), Source: event.SourceEBPF, Op: event.NetConnect, Transport: event.Unix,
			UnixPath: "/run/user/1000/gnupg/S.gpg-agent", PeerPID: 999},
		event.IOURing{Header: hdr(6, 10), Entries: 64},
		event.IOURing{Header: hdr(7, 10), Entries: 64, Errno: -int32(syscall.EPERM)},
		event.Exit{Header: hdr(8, 10)},
	} {
		rec.Add(e)
	}
	tr := rec.Finish(recorder.End{Time: at(10)})
	var b bytes.Buffer
	if err := report.Tree(&b, tr); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"\nAlerts (",
		"  high   persistence: write of " + home + "/.bashrc: a shell start-up file",
		"  high   persistence: symlink of .git/hooks/pre-commit → /tmp/p: a git hook",
		"  high   io_uring: io_uring in use: its file and network operations are not observed",
		"  medium unix_socket_outside_run: connection to unix socket /run/user/1000/gnupg/S.gpg-agent, served by pid 999",
		"  low    io_uring: io_uring_setup refused (EPERM)",
		"[network_call /run/user/1000/gnupg/S.gpg-agent unix]",
		"⚠ unix_socket_outside_run",
		"⚠ persistence",
		"⚠ io_uring",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	// Most severe first.
	if h, m := strings.Index(out, "  high "), strings.Index(out, "  medium "); h < 0 || m < 0 || h > m {
		t.Errorf("alerts not ordered by severity:\n%s", out)
	}
}
