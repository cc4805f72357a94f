package recorder

import (
	"testing"

	"github.com/agentwatch/agentwatch/event"
)

// TestLaunchedAfterFirstEvents: the sensors read the command's first
// events while the supervisor's start call returns, so they can come before
// event.Launched. The command's span still hangs under agent_run, and its
// pid, exited before Launched said it was the root, is not forgotten with
// the other exited pids (model calls are attributed to it).
func TestLaunchedAfterFirstEvents(t *testing.T) {
	info := runInfo()
	info.RootPID = 0
	rec := New(info)
	const root = 4242
	rec.Add(exec(1, root, 1, "/bin/sh", ws, "sh", "-c", "true"))
	rec.Add(exit(2, root, 0, 0))
	rec.Add(event.Launched{Header: hdr(3, root)})
	for pid := uint32(10000); pid < 10000+keptExited+10; pid++ {
		rec.Add(fork(4, pid, 1))
		rec.Add(exit(5, pid, 0, 0))
	}
	rec.mu.Lock()
	p := rec.procs[root]
	rec.mu.Unlock()
	if p == nil || p.cur == nil {
		t.Fatalf("the root command's pid was forgotten after %d other exits", keptExited+10)
	}
	if p.cur.parent != rec.RootSpanID() {
		t.Errorf("the command's span hangs under %s, want agent_run %s", p.cur.parent, rec.RootSpanID())
	}
	if rec.info.RootPID != root {
		t.Errorf("RootPID %d, want %d", rec.info.RootPID, root)
	}
}
