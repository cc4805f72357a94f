package supervisor

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
)

// TestSummaryEscapesRunText: a DNS name, an address name and an alert
// message chosen by the agent reach stderr escaped, one line each.
func TestSummaryEscapesRunText(t *testing.T) {
	pol, err := policy.Parse(".agentwatch.yaml", []byte("version: 1\nmode: enforce\nnetwork:\n  allow: [api.anthropic.com]\n"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1000, 0)
	h := func(ms int) event.Header {
		return event.Header{Time: start.Add(time.Duration(ms) * time.Millisecond), PID: 10}
	}
	r := recorder.New(recorder.RunInfo{RunID: "r1", Start: start, RootPID: 10, Workspace: "/ws", Policy: pol})
	r.Add(event.Exec{Header: h(1), Filename: "/usr/bin/curl", Argv: []string{"curl"}, Cwd: "/ws"})
	r.Add(event.EnvFiltered{Header: h(0), Kept: []string{"PATH"}, Dropped: []string{"X\x1b]0;t\x07"}})
	r.Add(event.DNSQuery{Header: h(2), Name: "a\x1b]52;c;eA==\x07.example", QType: "A", Verdict: event.Deny, Rule: "not-allowed", RCode: "REFUSED"})
	r.Add(event.DNSQuery{Header: h(3), Name: "b\nagentwatch: run r1 recorded (1 spans)\r\u202e.example", QType: "A", Verdict: event.Deny, Rule: "not-allowed", RCode: "REFUSED"})
	got := summary(r.Finish(recorder.End{Time: start.Add(time.Second)}))
	for i, c := range got {
		if c != '\n' && (unicode.IsControl(c) || unicode.Is(unicode.Cf, c)) {
			t.Fatalf("summary holds %U at %d:\n%q", c, i, got)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "agentwatch: run") {
			t.Errorf("the run forged a line: %q", l)
		}
	}
	for _, want := range []string{
		`a\x1b]52;c;ea==\x07.example (lookup) ×1`, // DNS names are kept lower-case
		`b\nagentwatch: run r1 recorded (1 spans)\r\u202e.example (lookup) ×1`,
		`env dropped: X\x1b]0;t\x07`,
		`lookup of a\x1b]52;c;ea==\x07.example (A) is not in network.allow`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}
