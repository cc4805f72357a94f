package recorder

import (
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

func mustPolicy(t *testing.T, mode string, extra string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("test.yaml", []byte(`version: 1
mode: `+mode+`
network:
  allow: [api.anthropic.com, "*.github.com"]
env:
  allow: [PATH, HOME]
attributes: {org: acme}
`+extra))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dnsq(n int, pid uint32, name, qtype string, v event.Verdict, rule, rcode string, forwarded bool, answers ...string) event.DNSQuery {
	q := event.DNSQuery{Header: hdr(n, pid), Name: name, QType: qtype, Transport: event.UDP, Verdict: v, Rule: rule,
		RCode: rcode, Forwarded: forwarded, Client: netip.MustParseAddrPort("127.0.0.1:40000")}
	for _, a := range answers {
		q.Answers = append(q.Answers, netip.MustParseAddr(a))
	}
	return q
}

func netDec(n int, pid uint32, tr event.Transport, addr, name string, v event.Verdict, rule, check string) event.NetDecision {
	op := event.NetConnect
	if tr == event.UDP {
		op = event.NetSendTo
	}
	return event.NetDecision{Header: hdr(n, pid), Op: op, Transport: tr, Addr: netip.MustParseAddrPort(addr),
		Name: name, Verdict: v, Rule: rule, Check: check}
}

func failedFile(n int, pid uint32, op event.FileOp, p string, errno syscall.Errno) event.File {
	e := file(n, pid, op, p)
	e.Errno = -int32(errno)
	return e
}

// agent is the start of every policy fixture: the agent and a curl it runs.
func agent() []event.Event {
	return []event.Event{
		fork(1, 100, 1),
		exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x"),
		fork(3, 101, 100),
		exec(4, 101, 100, "/usr/bin/curl", ws, "curl", "https://example"),
	}
}

type wantAlert struct {
	span     string // label of the span carrying it
	rule     string
	severity string
	message  string // a substring
}

func alertsOf(tr *telemetry.Trace) []wantAlert {
	var out []wantAlert
	for i := range tr.Spans {
		s := &tr.Spans[i]
		for _, e := range s.Events {
			if e.Name != telemetry.EventAlert {
				continue
			}
			a := wantAlert{span: label(s)}
			for _, kv := range e.Attrs {
				switch kv.Key {
				case telemetry.AlertRule:
					a.rule = kv.Value.AsString()
				case telemetry.AlertSeverity:
					a.severity = kv.Value.AsString()
				case telemetry.AlertMessage:
					a.message = kv.Value.AsString()
				}
			}
			out = append(out, a)
		}
	}
	return out
}

func TestPolicyRules(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		extra  string
		info   func(*RunInfo)
		events []event.Event
		alerts []wantAlert
		check  func(t *testing.T, tr *telemetry.Trace)
	}{
		{
			name: "allowed name: lookup span, its address names the connection, no alert",
			mode: "enforce",
			events: []event.Event{
				dnsq(5, 101, "API.anthropic.com.", "A", event.Allow, "api.anthropic.com", "NOERROR", true, "160.79.104.10"),
				dnsq(6, 101, "api.anthropic.com", "AAAA", event.Allow, "api.anthropic.com", "NOERROR", true, "2607:6bc0::10"),
				netDec(7, 101, event.TCP, "160.79.104.10:443", "", event.Allow, "api.anthropic.com", "address"),
				conn(8, 101, event.TCP, "160.79.104.10:443", syscall.EINPROGRESS, ""),
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				d := find(t, tr, "network_call udp api.anthropic.com:53")
				if d.ParentID != find(t, tr, "bash_command curl").SpanID {
					t.Error("lookup not under the process that made it")
				}
				wantAttrs(t, d, map[attribute.Key]string{
					telemetry.DNSQuestionName:  "api.anthropic.com",
					telemetry.DNSQuestionType:  `["A","AAAA"]`,
					telemetry.DNSAnswers:       `["160.79.104.10","2607:6bc0::10"]`,
					telemetry.DNSLookups:       "2",
					telemetry.DNSForwarded:     "true",
					telemetry.DNSResponseCode:  "NOERROR",
					telemetry.PolicyDecision:   "allow",
					telemetry.PolicyRule:       "api.anthropic.com",
					telemetry.SpanType:         "network_call",
					telemetry.NetworkTransport: "udp",
				})
				c := find(t, tr, "network_call tcp api.anthropic.com:443")
				wantAttrs(t, c, map[attribute.Key]string{
					telemetry.NetworkPeerAddress: "160.79.104.10",
					telemetry.PolicyDecision:     "allow",
					telemetry.PolicyRule:         "api.anthropic.com",
					telemetry.ConnectionsCount:   "1", // the decision and the connect are one attempt
				})
				if len(c.Events) != 1 || c.Events[0].Name != telemetry.EventPolicyDecision {
					t.Errorf("decision events %+v", c.Events)
				}
				root := tr.Root()
				wantAttrs(t, root, map[attribute.Key]string{
					telemetry.AlertsCount:   "0",
					telemetry.AlertsRules:   "[]",
					telemetry.NetworkDenied: "<unset>",
				})
			},
		},
		{
			name: "unknown name refused in enforce mode, TXT never forwarded",
			mode: "enforce",
			events: []event.Event{
				dnsq(5, 101, "exfil.evil.example", "TXT", event.Deny, "not-allowed", "REFUSED", false),
				dnsq(6, 101, "exfil.evil.example", "TXT", event.Deny, "not-allowed", "REFUSED", false),
			},
			alerts: []wantAlert{{"network_call udp exfil.evil.example:53", "unknown_domain", "medium",
				"lookup of exfil.evil.example (TXT) is not in network.allow: refused with REFUSED, never sent upstream"}},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, find(t, tr, "network_call udp exfil.evil.example:53"), map[attribute.Key]string{
					telemetry.PolicyDecision: "deny",
					telemetry.DNSForwarded:   "false",
					telemetry.DNSLookups:     "2",
				})
				wantAttrs(t, tr.Root(), map[attribute.Key]string{
					telemetry.NetworkDenied: "2",
					telemetry.AlertsCount:   "1",
					telemetry.AlertsRules:   `["unknown_domain"]`,
					attribute.Key(telemetry.AlertsRulePrefix + "unknown_domain"): "1",
				})
			},
		},
		{
			name: "unknown name resolved in observe mode",
			mode: "observe",
			events: []event.Event{
				dnsq(5, 101, "example.org", "A", event.Audit, "not-allowed", "NOERROR", true, "93.184.216.34"),
				netDec(6, 101, event.TCP, "93.184.216.34:443", "", event.Audit, "unresolved-address", "address"),
				conn(7, 101, event.TCP, "93.184.216.34:443", 0, ""),
			},
			alerts: []wantAlert{
				{"network_call udp example.org:53", "unknown_domain", "medium", "example.org (A) is not in network.allow (observe mode: resolved)"},
				{"network_call tcp example.org:443", "policy_bypass", "high", "observe mode: allowed"},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				c := find(t, tr, "network_call tcp example.org:443")
				wantAttrs(t, c, map[attribute.Key]string{telemetry.PolicyDecision: "audit", telemetry.PolicyRule: "unresolved-address"})
				if c.Status == codes.Error {
					t.Error("an audited connection that succeeded has error status")
				}
			},
		},
		{
			name:  "unknown_domain switched off",
			mode:  "enforce",
			extra: "alerts: {unknown_domain: false}\n",
			events: []event.Event{
				dnsq(5, 101, "example.org", "A", event.Deny, "not-allowed", "NXDOMAIN", false),
			},
		},
		{
			name: "allowed name refused for its record type is a decision, not an unknown domain",
			mode: "enforce",
			events: []event.Event{
				dnsq(5, 101, "x.github.com", "ANY", event.Deny, "qtype ANY", "REFUSED", false),
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, find(t, tr, "network_call udp x.github.com:53"), map[attribute.Key]string{
					telemetry.PolicyDecision: "deny", telemetry.PolicyRule: "qtype ANY"})
			},
		},
		{
			name: "IP literal refused in the hook before any connect event",
			mode: "enforce",
			events: []event.Event{
				netDec(5, 101, event.TCP, "93.184.216.34:443", "", event.Deny, "unresolved-address", "address"),
			},
			alerts: []wantAlert{{"network_call tcp 93.184.216.34:443", "policy_bypass", "high",
				"connect to 93.184.216.34:443: no allowed name resolved to this address"}},
			check: func(t *testing.T, tr *telemetry.Trace) {
				c := find(t, tr, "network_call tcp 93.184.216.34:443")
				if c.ParentID != find(t, tr, "bash_command curl").SpanID {
					t.Error("refused connect not under its process")
				}
				if c.Status != codes.Error || !strings.Contains(c.StatusMessage, "denied by policy") {
					t.Errorf("status %v %q", c.Status, c.StatusMessage)
				}
				wantAttrs(t, c, map[attribute.Key]string{telemetry.ConnectionsCount: "1", telemetry.PolicyDecision: "deny"})
			},
		},
		{
			name: "IPv6 literal refused, the sensor's EPERM on the same span",
			mode: "enforce",
			events: []event.Event{
				netDec(5, 101, event.TCP, "[2606:2800:220:1::1]:80", "", event.Deny, "unresolved-address", "address"),
				conn(6, 101, event.TCP, "[2606:2800:220:1::1]:80", syscall.EPERM, ""),
				netDec(7, 101, event.TCP, "[2606:2800:220:1::1]:80", "", event.Deny, "unresolved-address", "address"),
				conn(8, 101, event.TCP, "[2606:2800:220:1::1]:80", syscall.EPERM, ""),
			},
			alerts: []wantAlert{{"network_call tcp 2606:2800:220:1::1:80", "policy_bypass", "high", "refused"}},
			check: func(t *testing.T, tr *telemetry.Trace) {
				c := find(t, tr, "network_call tcp 2606:2800:220:1::1:80")
				wantAttrs(t, c, map[attribute.Key]string{
					telemetry.ConnectionsCount:   "2",
					telemetry.ConnectionFailures: "2",
					telemetry.ErrorType:          "EPERM",
					telemetry.NetworkType:        "ipv6",
				})
				wantAttrs(t, tr.Root(), map[attribute.Key]string{telemetry.NetworkDenied: "2"})
			},
		},
		{
			name: "SNI mismatch on an allowed (shared) address, decision without a pid",
			mode: "enforce",
			events: []event.Event{
				dnsq(5, 101, "api.github.com", "A", event.Allow, "*.github.com", "NOERROR", true, "140.82.112.5"),
				netDec(6, 101, event.TCP, "140.82.112.5:443", "", event.Allow, "*.github.com", "address"),
				conn(7, 101, event.TCP, "140.82.112.5:443", 0, ""),
				netDec(8, 0, event.TCP, "140.82.112.5:443", "evil.example", event.Deny, "not-allowed", "sni"),
			},
			alerts: []wantAlert{{"network_call tcp evil.example:443", "policy_bypass", "high",
				"TLS server name evil.example on a connection to 140.82.112.5:443 does not match network.allow (not-allowed): refused"}},
			check: func(t *testing.T, tr *telemetry.Trace) {
				c := find(t, tr, "network_call tcp evil.example:443")
				if c.ParentID != find(t, tr, "bash_command curl").SpanID {
					t.Error("the splice decision did not find the process's span")
				}
				wantAttrs(t, c, map[attribute.Key]string{telemetry.PolicyDecision: "deny", telemetry.PolicyRule: "not-allowed"})
				if len(c.Events) != 3 { // two decisions, one alert
					t.Errorf("events %+v", c.Events)
				}
			},
		},
		{
			name: "DNS sent to another resolver is redirected and flagged; the system resolver is not",
			mode: "enforce",
			info: func(i *RunInfo) { i.Resolvers = []netip.Addr{netip.MustParseAddr("10.255.255.53")} },
			events: []event.Event{
				netDec(5, 101, event.UDP, "10.255.255.53:53", "", event.Allow, "dns-redirect", "dns-redirect"),
				netDec(6, 101, event.UDP, "8.8.8.8:53", "", event.Allow, "dns-redirect", "dns-redirect"),
				netDec(7, 101, event.TCP, "[2001:4860:4860::8888]:53", "", event.Allow, "dns-redirect", "dns-redirect"),
			},
			alerts: []wantAlert{
				{"network_call udp 8.8.8.8:53", "policy_bypass", "medium", "DNS sent to 8.8.8.8:53 instead of the system resolver"},
				{"network_call tcp 2001:4860:4860::8888:53", "policy_bypass", "medium", "DNS sent to [2001:4860:4860::8888]:53"},
			},
		},
		{
			name: "protected paths: refused write, change, creation; root list",
			mode: "enforce",
			events: []event.Event{
				event.ProtectedPath{Header: hdr(0, 0), Path: ws + "/.github/workflows", Pattern: ".github/workflows/**", Existed: true, ReadOnly: true},
				event.ProtectedPath{Header: hdr(0, 0), Path: ws + "/.gitlab-ci.yml", Pattern: ".gitlab-ci.yml", Existed: false},
				failedFile(5, 101, event.FileWrite, ws+"/.github/workflows/ci.yml", syscall.EROFS),
				failedFile(6, 101, event.FileWrite, ws+"/.github/workflows/ci.yml", syscall.EROFS),
				failedFile(7, 101, event.FileCreate, ws+"/.github/workflows/new.yml", syscall.EROFS),
				file(8, 100, event.FileWrite, ws+"/.gitlab-ci.yml"), // absent at start: created
				file(9, 100, event.FileWrite, home+"/.bashrc"),
			},
			alerts: []wantAlert{
				{"file_write .github/workflows/ci.yml", "workflow_edit", "medium", "write of protected path .github/workflows/ci.yml refused (EROFS)"},
				{"file_write .github/workflows/new.yml", "workflow_edit", "medium", "create of protected path .github/workflows/new.yml refused"},
				{"file_write .gitlab-ci.yml", "workflow_edit", "high", "protected path .gitlab-ci.yml created during the run (absent at start)"},
				{"file_write /home/dev/.bashrc", "workflow_edit", "high", "protected path /home/dev/.bashrc changed (write)"},
				// ~/.bashrc is also a persistence path (wave 2).
				{"file_write /home/dev/.bashrc", "persistence", "high", "write of /home/dev/.bashrc: a shell start-up file"},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, tr.Root(), map[attribute.Key]string{
					telemetry.FilesProtected: `["` + ws + `/.github/workflows","` + ws + `/.gitlab-ci.yml"]`,
					telemetry.AlertsCount:    "5",
					telemetry.AlertsRules:    `["workflow_edit","persistence"]`,
					attribute.Key(telemetry.AlertsRulePrefix + "workflow_edit"): "4",
					attribute.Key(telemetry.AlertsRulePrefix + "persistence"):   "1",
				})
			},
		},
		{
			name:  "workflow_edit switched off",
			mode:  "observe",
			extra: "alerts: {workflow_edit: false}\n",
			events: []event.Event{
				file(5, 101, event.FileWrite, ws+"/.github/workflows/ci.yml"),
			},
		},
		{
			name: "protected path created, seen by fswatch only",
			mode: "observe",
			events: []event.Event{
				event.File{Header: hdr(5, 0), Source: event.SourceFSWatch, Op: event.FileCreate, Path: ws + "/.github/workflows/x.yml"},
			},
			alerts: []wantAlert{{"file_write .github/workflows/x.yml", "workflow_edit", "high", "created during the run"}},
		},
		{
			name: "secrets read and written",
			mode: "enforce",
			events: []event.Event{
				file(5, 101, event.FileRead, home+"/.ssh/id_ed25519"),
				file(6, 101, event.FileRead, home+"/.ssh/id_ed25519"),
				file(7, 100, event.FileWrite, ws+"/.env"),
				failedFile(8, 100, event.FileRead, home+"/.aws/credentials", syscall.EACCES),
				file(9, 100, event.FileRead, ws+"/README.md"),
			},
			alerts: []wantAlert{
				{"file_read /home/dev/.ssh/id_ed25519", "secret_access", "high", "read of secret file /home/dev/.ssh/id_ed25519"},
				{"file_write .env", "secret_access", "high", "write of secret file .env"},
				{"file_read /home/dev/.aws/credentials", "secret_access", "high", "(refused: EACCES)"},
			},
		},
		{
			name: "environment in enforce mode: names on the root, no alert",
			mode: "enforce",
			events: []event.Event{
				event.EnvFiltered{Header: hdr(0, 0), Kept: []string{"HOME", "PATH"}, Dropped: []string{"AWS_SECRET_ACCESS_KEY", "DISPLAY"}, Set: []string{"CI"}},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, tr.Root(), map[attribute.Key]string{
					telemetry.EnvKept:                      `["HOME","PATH"]`,
					telemetry.EnvDropped:                   `["AWS_SECRET_ACCESS_KEY","DISPLAY"]`,
					telemetry.EnvSet:                       `["CI"]`,
					telemetry.EnvFiltered:                  "true",
					telemetry.PolicyMode:                   "enforce",
					telemetry.PolicySource:                 "test.yaml",
					attribute.Key("agentwatch.label.org"):  "acme",
					attribute.Key("agentwatch.label.team"): "platform", // RunInfo's
					telemetry.PolicyVersion:                mustPolicy(t, "enforce", "").Version,
					telemetry.CaptureContent:               "metadata",
				})
			},
		},
		{
			name: "environment in observe mode: secret-looking names the child kept are alerted",
			mode: "observe",
			events: []event.Event{
				event.EnvFiltered{Header: hdr(0, 0), Kept: []string{"PATH"}, Dropped: []string{"AWS_SECRET_ACCESS_KEY", "DISPLAY", "GH_TOKEN"}},
			},
			alerts: []wantAlert{{"agent_run", "env_secret_exposed", "medium", "observe mode passed AWS_SECRET_ACCESS_KEY, GH_TOKEN to the child"}},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, tr.Root(), map[attribute.Key]string{telemetry.EnvFiltered: "false", telemetry.EnvSet: "[]"})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := runInfo()
			info.Gaps = nil // a complete record: missing_telemetry is rules_test.go's
			info.Policy = mustPolicy(t, tt.mode, tt.extra)
			if tt.info != nil {
				tt.info(&info)
			}
			tr := record(info, append(agent(), tt.events...), End{Time: at(100)})
			tree(t, tr) // structural checks: one root, known parents, unique ids
			got := alertsOf(tr)
			if len(got) != len(tt.alerts) {
				t.Errorf("%d alerts, want %d: %+v", len(got), len(tt.alerts), got)
			}
			for _, w := range tt.alerts {
				ok := slices.ContainsFunc(got, func(g wantAlert) bool {
					return g.span == w.span && g.rule == w.rule && g.severity == w.severity && strings.Contains(g.message, w.message)
				})
				if !ok {
					t.Errorf("missing alert %+v in %+v", w, got)
				}
			}
			if v, _ := tr.Root().Attr(telemetry.AlertsCount); v.AsInt64() != int64(len(got)) {
				t.Errorf("alerts.count %d, %d alert events", v.AsInt64(), len(got))
			}
			if tt.check != nil {
				tt.check(t, tr)
			}
		})
	}
}

func TestAlertRuleNames(t *testing.T) {
	// The issue asks for rule names containing these words.
	for _, w := range []string{"unknown_domain", "policy_bypass", "workflow_edit", "secret_access"} {
		found := false
		for _, r := range []string{telemetry.AlertUnknownDomain, telemetry.AlertPolicyBypass, telemetry.AlertWorkflowEdit, telemetry.AlertSecretAccess} {
			found = found || strings.Contains(r, w)
		}
		if !found {
			t.Errorf("no rule named for %s", w)
		}
	}
}

// A dropped variable's value must not appear anywhere in the trace, even
// where no credential pattern would catch it.
func TestDroppedValuesRedacted(t *testing.T) {
	const secret = "plain-looking-value-42" // no token shape: only RedactValues catches it
	pol := mustPolicy(t, "observe", "")
	environ := []string{"PATH=/usr/bin", "MY_SETTING=" + secret, "PWD=" + ws}
	info := runInfo()
	info.Policy = pol
	info.RedactValues = pol.DroppedValues(environ)
	info.Argv = []string{"claude", "-p", "use " + secret}
	events := append(agent(),
		exec(10, 102, 100, "/usr/bin/echo", ws+"/"+secret, "echo", secret, "x"+secret+"y"),
		file(11, 102, event.FileCreate, ws+"/out-"+secret+".txt"),
		dnsq(12, 102, secret+".evil.example", "A", event.Audit, "not-allowed", "NOERROR", true, "203.0.113.7"),
		netDec(13, 102, event.TCP, "203.0.113.7:443", secret+".evil.example", event.Audit, "not-allowed", "sni"),
		failedFile(14, 102, event.FileWrite, ws+"/.github/workflows/"+secret+".yml", syscall.EROFS),
	)
	tr := record(info, events, End{Time: at(100)})
	var all strings.Builder
	dump := func(kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			all.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	dump(tr.Resource)
	for _, s := range tr.Spans {
		all.WriteString(s.Name + " " + s.StatusMessage + "\n")
		dump(s.Attrs)
		for _, e := range s.Events {
			dump(e.Attrs)
		}
	}
	text := all.String()
	if strings.Contains(text, secret) {
		t.Errorf("a dropped value leaked into the trace:\n%s", text)
	}
	for _, want := range []string{"echo [REDACTED] x[REDACTED]y", "out-[REDACTED].txt", "[REDACTED].evil.example", ws + "/[REDACTED]"} {
		if !strings.Contains(text, want) {
			t.Errorf("%q missing from the trace", want)
		}
	}
	if !strings.Contains(text, ws+"\n") {
		t.Error("the workspace path (PWD's value) was redacted")
	}
}
