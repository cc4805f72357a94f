package supervisor_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/telemetry"
)

// TestRetriesWithoutProgressForReal wraps real scripts under real eBPF: a
// command that fails again and again with nothing changed in the
// workspace raises retries_without_progress; the same failures with an
// edit between each attempt do not.
func TestRetriesWithoutProgressForReal(t *testing.T) {
	privtest.Require(t)
	for _, tc := range []struct {
		name   string
		script string
		want   int // retries_without_progress alerts
	}{
		{"stuck", "/bin/false\n/bin/false\n/bin/false\n/bin/false\nexit 0\n", 1},
		{"progress", "/bin/false\necho 1 > fix.txt\n/bin/false\necho 2 > fix.txt\n/bin/false\necho 3 > fix.txt\n/bin/false\nexit 0\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ws, "agent.sh"), []byte("#!/bin/sh\n"+tc.script), 0o755); err != nil {
				t.Fatal(err)
			}
			tr := recordRun(t, ws, "--", "./agent.sh")
			got := 0
			for _, s := range tr.Spans {
				for _, e := range s.Events {
					if e.Name != telemetry.EventAlert {
						continue
					}
					for _, kv := range e.Attrs {
						if kv.Key == telemetry.AlertRule && kv.Value.AsString() == telemetry.AlertRetries {
							got++
						}
					}
				}
			}
			if got != tc.want {
				t.Errorf("%d retries_without_progress alerts, want %d", got, tc.want)
			}
		})
	}
}
