package supervisor

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/redact"
	"github.com/agentwatch/agentwatch/telemetry"
)

func TestPolicyEnv(t *testing.T) {
	const secret = "AKIA-not-a-pattern-secret-value"
	pol := func(mode string) *policy.Policy {
		p, err := policy.Parse("p.yaml", []byte("version: 1\nmode: "+mode+"\nenv:\n  allow: [PATH, LC_*, TERM]\n  set: {CI: 'true'}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := []string{"PATH=/usr/bin", "HOME=/home/dev", "USER=dev", "LC_ALL=C", "AWS_SECRET_ACCESS_KEY=" + secret,
		"CI=false", "PWD=/home/dev/src", "DISPLAY=:0"}
	tests := []struct {
		name        string
		pol         *policy.Policy
		target      Account
		wantEnv     []string
		wantKept    []string
		wantDropped []string
		wantSet     []string
	}{
		{
			name:        "enforce, same user: allowlist, env.set, identity restored",
			pol:         pol("enforce"),
			wantEnv:     []string{"PATH=/usr/bin", "LC_ALL=C", "CI=true", "HOME=/home/dev", "USER=dev"},
			wantKept:    []string{"LC_ALL", "PATH"},
			wantDropped: []string{"AWS_SECRET_ACCESS_KEY", "CI", "DISPLAY", "PWD"},
			wantSet:     []string{"CI", "HOME", "USER"},
		},
		{
			name:        "enforce, switched user: the target's identity",
			pol:         pol("enforce"),
			target:      Account{Switch: true, Name: "alice", Home: "/home/alice"},
			wantEnv:     []string{"PATH=/usr/bin", "LC_ALL=C", "CI=true", "HOME=/home/alice", "USER=alice", "LOGNAME=alice"},
			wantKept:    []string{"LC_ALL", "PATH"},
			wantDropped: []string{"AWS_SECRET_ACCESS_KEY", "CI", "DISPLAY", "PWD"},
			wantSet:     []string{"CI", "HOME", "LOGNAME", "USER"},
		},
		{
			name: "observe: everything passed on, env.set applied, would-drop names reported",
			pol:  pol("observe"),
			wantEnv: []string{"PATH=/usr/bin", "HOME=/home/dev", "USER=dev", "LC_ALL=C", "AWS_SECRET_ACCESS_KEY=" + secret,
				"PWD=/home/dev/src", "DISPLAY=:0", "CI=true"},
			wantKept:    []string{"LC_ALL", "PATH"},
			wantDropped: []string{"AWS_SECRET_ACCESS_KEY", "CI", "DISPLAY", "PWD"},
			wantSet:     []string{"CI"},
		},
		{
			name:    "built-in: nothing dropped",
			pol:     policy.Default(),
			wantEnv: env,
			wantKept: []string{"AWS_SECRET_ACCESS_KEY", "CI", "DISPLAY", "HOME", "LC_ALL", "PATH",
				"PWD", "USER"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ev, dropped := policyEnv(tt.pol, env, tt.target, time.Unix(1, 0))
			redact := redact.Secrets(dropped, nil)
			if !slices.Equal(got, tt.wantEnv) {
				t.Errorf("env\n got %q\nwant %q", got, tt.wantEnv)
			}
			if !slices.Equal(ev.Kept, tt.wantKept) || !slices.Equal(ev.Dropped, tt.wantDropped) || !slices.Equal(ev.Set, tt.wantSet) {
				t.Errorf("event kept %q dropped %q set %q", ev.Kept, ev.Dropped, ev.Set)
			}
			for _, n := range append(append(slices.Clone(ev.Kept), ev.Dropped...), ev.Set...) {
				if strings.Contains(n, "=") || strings.Contains(n, secret) {
					t.Errorf("a value in the event's names: %q", n)
				}
			}
			// The secret is redacted in every mode that drops it (in
			// observe mode the child has it, and may print it).
			wantRedact := len(tt.wantDropped) > 0
			if slices.Contains(redact, secret) != wantRedact {
				t.Errorf("redact %q", redact)
			}
			if slices.Contains(redact, "/home/dev/src") || slices.Contains(redact, "false") {
				t.Errorf("a path or short value would be redacted: %q", redact)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	enforce, err := policy.Parse(".agentwatch.yaml", []byte("version: 1\nmode: enforce\nnetwork:\n  allow: [api.anthropic.com]\n"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1000, 0)
	h := func(ms int, pid uint32) event.Header {
		return event.Header{Time: start.Add(time.Duration(ms) * time.Millisecond), PID: pid}
	}
	run := func(pol *policy.Policy, events ...event.Event) *telemetry.Trace {
		r := recorder.New(recorder.RunInfo{RunID: "r1", Start: start, RootPID: 10, Workspace: "/ws", Policy: pol})
		r.Add(event.Exec{Header: h(1, 10), Filename: "/usr/bin/curl", Argv: []string{"curl"}, Cwd: "/ws"})
		for _, e := range events {
			r.Add(e)
		}
		return r.Finish(recorder.End{Time: start.Add(time.Second), ExitCode: 7})
	}
	deny := func(ms int, addr, name, check string) event.NetDecision {
		return event.NetDecision{Header: h(ms, 10), Op: event.NetConnect, Transport: event.TCP,
			Addr: mustAddrPort(addr), Name: name, Verdict: event.Deny, Rule: "unresolved-address", Check: check}
	}
	tests := []struct {
		name string
		tr   *telemetry.Trace
		want []string // lines, in order; nil: nothing printed
	}{
		{"nothing happened", run(enforce), nil},
		{"built-in policy, full environment kept", run(policy.Default(),
			event.EnvFiltered{Header: h(0, 0), Kept: []string{"HOME", "PATH"}}), nil},
		{"denials, dropped env, alerts", run(enforce,
			event.EnvFiltered{Header: h(0, 0), Kept: []string{"PATH"}, Dropped: []string{"AWS_SECRET_ACCESS_KEY", "DISPLAY"}},
			deny(2, "93.184.216.34:443", "", "address"),
			deny(3, "93.184.216.34:443", "", "address"),
			event.DNSQuery{Header: h(4, 10), Name: "evil.example", QType: "TXT", Verdict: event.Deny, Rule: "not-allowed", RCode: "REFUSED"},
		), []string{
			"agentwatch: policy (enforce, .agentwatch.yaml)",
			"  denied: 93.184.216.34:443 ×2, evil.example (lookup) ×1",
			"  env dropped: AWS_SECRET_ACCESS_KEY, DISPLAY",
			"  alerts: policy_bypass (1), unknown_domain (1)",
			"    high   policy_bypass: connect to 93.184.216.34:443: no allowed name resolved to this address",
			"    medium unknown_domain: lookup of evil.example (TXT) is not in network.allow",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summary(tt.tr)
			if tt.want == nil {
				if got != "" {
					t.Errorf("printed %q, want nothing", got)
				}
				return
			}
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("summary:\n%s\nwant %d lines", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d: %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// agentwatch's own variables never reach the child, in either mode and
// whatever env.allow says: AGENTWATCH_STORE may carry a database password,
// which is then also a value to redact wherever the agent echoes it.
func TestPolicyEnvKeepsOwnVariables(t *testing.T) {
	const dsn = "postgres://agentwatch:pg-s3cret-pw@db:5432/agentwatch"
	env := []string{"PATH=/usr/bin", "AGENTWATCH_STORE=" + dsn, "AGENTWATCH_CPUPROFILE=/tmp/p", "TERM=xterm"}
	allowAll, err := policy.Parse("p.yaml", []byte("version: 1\nmode: enforce\nenv:\n  allow: [PATH, TERM, AGENTWATCH_*]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pol := range []*policy.Policy{policy.Default(), allowAll} {
		got, ev, dropped := policyEnv(pol, env, Account{}, time.Unix(1, 0))
		for _, kv := range got {
			if strings.HasPrefix(kv, "AGENTWATCH_") {
				t.Errorf("%s mode: the child got %s", pol.Mode, kv)
			}
		}
		if !slices.Contains(ev.Dropped, "AGENTWATCH_STORE") || !slices.Contains(ev.Dropped, "AGENTWATCH_CPUPROFILE") {
			t.Errorf("%s mode: dropped %q, want agentwatch's own variables named", pol.Mode, ev.Dropped)
		}
		if r := redact.Secrets(dropped, nil); !slices.Contains(r, dsn) {
			t.Errorf("%s mode: the store URL is not among the values to redact: %q", pol.Mode, r)
		}
	}
}
