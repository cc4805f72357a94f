package recorder

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
)

// cmd is one exec'd command of pid under the agent (pid 100), n its time in ms.
func cmd(n int, pid uint32, code int, argv ...string) []event.Event {
	return []event.Event{
		fork(n, pid, 100),
		exec(n+1, pid, 100, "/usr/bin/"+argv[0], ws, argv...),
		exit(n+5, pid, code, 0),
	}
}

// bashCmd is `bash -c line` (pid) running argv (pid+1), both exiting code.
func bashCmd(n int, pid uint32, code int, line string, argv ...string) []event.Event {
	return []event.Event{
		fork(n, pid, 100),
		exec(n+1, pid, 100, "/usr/bin/bash", ws, "bash", "-c", line),
		fork(n+2, pid+1, pid),
		exec(n+3, pid+1, pid, "/usr/bin/"+argv[0], ws, argv...),
		exit(n+5, pid+1, code, 0),
		exit(n+6, pid, code, 0),
	}
}

func claude() []event.Event {
	return []event.Event{fork(1, 100, 1), exec(2, 100, 1, "/usr/local/bin/claude", ws, "claude", "-p", "x")}
}

func events(parts ...[]event.Event) []event.Event {
	var out []event.Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func rulesOf(alerts []wantAlert, rules ...string) []wantAlert {
	var out []wantAlert
	for _, a := range alerts {
		if slices.Contains(rules, a.rule) {
			out = append(out, a)
		}
	}
	return out
}

// TestWholeRunRules: each rule firing and not firing, from event fixtures.
func TestWholeRunRules(t *testing.T) {
	mine := []string{telemetry.AlertDependencyInstall, telemetry.AlertRetries, telemetry.AlertDeniedLoop,
		telemetry.AlertPRWithoutTests, telemetry.AlertMissingTelemetry}
	write := func(n int, p string) event.Event { return file(n, 100, event.FileWrite, ws+"/"+p) }
	tests := []struct {
		name   string
		extra  string // policy YAML appended (mode observe)
		mode   string
		gaps   []string
		events []event.Event
		end    End
		alerts []wantAlert
	}{
		{
			name:   "npm install names its packages",
			events: events(claude(), cmd(10, 101, 0, "npm", "install", "left-pad", "lodash@4")),
			alerts: []wantAlert{{"dependency_install npm", telemetry.AlertDependencyInstall, telemetry.SeverityMedium, "(npm): left-pad lodash@4"}},
		},
		{
			name:   "pip install -r: from the manifest",
			events: events(claude(), cmd(10, 101, 0, "pip", "install", "-r", "requirements.txt")),
			alerts: []wantAlert{{"dependency_install pip", telemetry.AlertDependencyInstall, telemetry.SeverityMedium, "(pip): from the manifest"}},
		},
		{
			name:   "install alert off in the policy",
			extra:  "alerts: {dependency_install: false}\n",
			events: events(claude(), cmd(10, 101, 0, "npm", "install", "left-pad")),
		},
		{
			name:   "go build is no install",
			events: events(claude(), cmd(10, 101, 0, "go", "build", "./...")),
		},
		{
			name: "failing go test three times, no change: retries",
			events: events(claude(),
				cmd(10, 101, 1, "go", "test", "./..."),
				cmd(20, 102, 1, "go", "test", "./..."),
				cmd(30, 103, 1, "go", "test", "./...")),
			alerts: []wantAlert{{"test_run go", telemetry.AlertRetries, telemetry.SeverityMedium, `"go test ./..." run 3 times in a row with no change`}},
		},
		{
			name: "a loop that edits between runs makes progress: no alert",
			events: events(claude(),
				cmd(10, 101, 1, "go", "test", "./..."), []event.Event{write(17, "main.go")},
				cmd(20, 102, 1, "go", "test", "./..."), []event.Event{write(27, "main.go")},
				cmd(30, 103, 1, "go", "test", "./..."), []event.Event{write(37, "main_test.go")},
				cmd(40, 104, 0, "go", "test", "./...")),
		},
		{
			name: "progress then three idle runs: alert at the third after the last change",
			events: events(claude(),
				cmd(10, 101, 1, "go", "test", "./..."), []event.Event{write(17, "main.go")},
				cmd(20, 102, 1, "go", "test", "./..."),
				cmd(30, 103, 1, "go", "test", "./..."),
				cmd(40, 104, 1, "go", "test", "./...")),
			alerts: []wantAlert{{"test_run go", telemetry.AlertRetries, telemetry.SeverityMedium, "run 3 times"}},
		},
		{
			name: "writes to caches, .git and node_modules are no progress",
			events: events(claude(),
				cmd(10, 101, 1, "pytest", "-x"), []event.Event{write(16, ".pytest_cache/v/cache/lastfailed"), write(17, "pkg/__pycache__/m.pyc")},
				cmd(20, 102, 1, "pytest", "-x"), []event.Event{write(26, ".git/index"), write(27, "node_modules/x/index.js")},
				cmd(30, 103, 1, "pytest", "-x")),
			alerts: []wantAlert{{"test_run pytest", telemetry.AlertRetries, telemetry.SeverityMedium, "pytest -x"}},
		},
		{
			name:  "retries threshold from the policy; whitespace-normalised line",
			extra: "alerts: {retries_without_progress: 2}\n",
			events: events(claude(),
				bashCmd(10, 101, 1, "make  build", "make", "build"),
				bashCmd(20, 103, 1, "make build", "make", "build")),
			// the bash span alerts; make under it does not alert again
			alerts: []wantAlert{{"bash_command bash", telemetry.AlertRetries, telemetry.SeverityMedium, `"bash -c 'make build'" run 2 times`}},
		},
		{
			name:  "retries off (0)",
			extra: "alerts: {retries_without_progress: 0}\n",
			events: events(claude(),
				cmd(10, 101, 1, "go", "test", "./..."), cmd(20, 102, 1, "go", "test", "./..."),
				cmd(30, 103, 1, "go", "test", "./..."), cmd(40, 104, 1, "go", "test", "./...")),
		},
		{
			name: "a successful look-around repeated is no retry",
			events: events(claude(),
				cmd(10, 101, 0, "git", "status"), cmd(20, 102, 0, "git", "status"),
				cmd(30, 103, 0, "git", "status"), cmd(40, 104, 0, "git", "status")),
		},
		{
			name: "the same failing command in two directories is two commands",
			events: events(claude(),
				cmd(10, 101, 1, "python3", "run.py"),
				[]event.Event{fork(20, 102, 100), exec(21, 102, 100, "/usr/bin/python3", ws+"/sub", "python3", "run.py"), exit(25, 102, 1, 0)},
				cmd(30, 103, 1, "python3", "run.py")),
		},
		{
			name: "denied destination three times: denied_loop on its span",
			mode: "enforce",
			events: events(claude(), []event.Event{
				fork(10, 101, 100), exec(11, 101, 100, "/usr/bin/curl", ws, "curl", "https://evil.example"),
				netDec(12, 101, event.TCP, "203.0.113.9:443", "evil.example", event.Deny, "network.allow", checkAddress),
				netDec(13, 101, event.TCP, "203.0.113.9:443", "evil.example", event.Deny, "network.allow", checkAddress),
				netDec(14, 101, event.TCP, "203.0.113.9:443", "evil.example", event.Deny, "network.allow", checkAddress),
				exit(15, 101, 7, 0),
			}),
			alerts: []wantAlert{{"network_call tcp evil.example:443", telemetry.AlertDeniedLoop, telemetry.SeverityMedium, "connection to evil.example:443 refused 3 times"}},
		},
		{
			name: "denied twice: under the threshold",
			mode: "enforce",
			events: events(claude(), []event.Event{
				fork(10, 101, 100), exec(11, 101, 100, "/usr/bin/curl", ws, "curl", "https://evil.example"),
				netDec(12, 101, event.TCP, "203.0.113.9:443", "evil.example", event.Deny, "network.allow", checkAddress),
				netDec(14, 101, event.TCP, "203.0.113.9:443", "evil.example", event.Deny, "network.allow", checkAddress),
				exit(15, 101, 7, 0),
			}),
		},
		{
			name: "refused lookups across processes: A+AAAA is one attempt",
			mode: "enforce",
			events: events(claude(), []event.Event{
				dnsq(10, 100, "evil.example", "A", event.Deny, "network.allow", "NXDOMAIN", false),
				dnsq(11, 100, "evil.example", "AAAA", event.Deny, "network.allow", "NXDOMAIN", false),
				fork(12, 101, 100), exec(13, 101, 100, "/usr/bin/curl", ws, "curl", "evil.example"),
				dnsq(14, 101, "evil.example", "A", event.Deny, "network.allow", "NXDOMAIN", false),
				dnsq(15, 101, "evil.example", "AAAA", event.Deny, "network.allow", "NXDOMAIN", false),
				dnsq(16, 101, "evil.example", "A", event.Deny, "network.allow", "NXDOMAIN", false),
				dnsq(17, 101, "evil.example", "AAAA", event.Deny, "network.allow", "NXDOMAIN", false),
				exit(18, 101, 6, 0),
			}),
			alerts: []wantAlert{{"network_call udp evil.example:53", telemetry.AlertDeniedLoop, telemetry.SeverityMedium, "lookup of evil.example refused 3 times"}},
		},
		{
			name: "protected path refused three times",
			events: events(claude(), []event.Event{
				failedFile(10, 100, event.FileWrite, ws+"/.github/workflows/ci.yml", syscall.EROFS),
				failedFile(11, 100, event.FileWrite, ws+"/.github/workflows/ci.yml", syscall.EROFS),
				failedFile(12, 100, event.FileCreate, ws+"/.github/workflows/ci.yml", syscall.EROFS),
			}),
			alerts: []wantAlert{{"file_write .github/workflows/ci.yml", telemetry.AlertDeniedLoop, telemetry.SeverityMedium, "write to protected path .github/workflows/ci.yml refused 3 times"}},
		},
		{
			name: "pull request after an edit with no test: alert",
			events: events(claude(), cmd(10, 101, 0, "go", "test", "./..."), []event.Event{write(20, "main.go")},
				cmd(30, 102, 0, "gh", "pr", "create", "--fill")),
			alerts: []wantAlert{{"pull_request gh", telemetry.AlertPRWithoutTests, telemetry.SeverityMedium, "after the last workspace change (main.go)"}},
		},
		{
			name: "pull request after a passing test that followed the edit: none",
			events: events(claude(), []event.Event{write(8, "main.go")}, cmd(10, 101, 0, "go", "test", "./..."),
				cmd(30, 102, 0, "gh", "pr", "create", "--fill")),
		},
		{
			name: "pull request after a failing test: alert",
			events: events(claude(), []event.Event{write(8, "main.go")}, cmd(10, 101, 1, "go", "test", "./..."),
				cmd(30, 102, 0, "gh", "pr", "create", "--fill")),
			alerts: []wantAlert{{"pull_request gh", telemetry.AlertPRWithoutTests, telemetry.SeverityMedium, "no passing test_run"}},
		},
		{
			name:   "pull request that failed to open: none",
			events: events(claude(), []event.Event{write(8, "main.go")}, cmd(30, 102, 1, "gh", "pr", "create", "--fill")),
		},
		{
			name:   "gaps: missing_telemetry on the root",
			gaps:   []string{"ebpf: not root"},
			events: claude(),
			end:    End{Time: at(100), Dropped: 4},
			alerts: []wantAlert{{"agent_run", telemetry.AlertMissingTelemetry, telemetry.SeverityMedium, "incomplete: ebpf: not root; 4 events dropped"}},
		},
		{
			name:   "dropped events only",
			events: events(claude(), []event.Event{event.Dropped{Header: hdr(5, 0), Source: event.SourceEBPF, Count: 2}}),
			alerts: []wantAlert{{"agent_run", telemetry.AlertMissingTelemetry, telemetry.SeverityMedium, "2 events dropped"}},
		},
		{
			name:   "complete record: no missing_telemetry",
			events: claude(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := runInfo()
			info.Gaps = nil
			for _, g := range tt.gaps {
				info.Gaps = append(info.Gaps, event.ParseGap(g))
			}
			mode := tt.mode
			if mode == "" {
				mode = "observe"
			}
			info.Policy = mustPolicy(t, mode, tt.extra)
			end := tt.end
			if end.Time.IsZero() {
				end.Time = at(100)
			}
			tr := record(info, tt.events, end)
			tree(t, tr)
			got := rulesOf(alertsOf(tr), mine...)
			if len(got) != len(tt.alerts) {
				t.Errorf("%d alerts, want %d: %+v", len(got), len(tt.alerts), got)
			}
			for _, w := range tt.alerts {
				if !slices.ContainsFunc(got, func(g wantAlert) bool {
					return g.span == w.span && g.rule == w.rule && g.severity == w.severity && strings.Contains(g.message, w.message)
				}) {
					t.Errorf("missing alert %+v in %+v", w, got)
				}
			}
			all := alertsOf(tr)
			if v, _ := tr.Root().Attr(telemetry.AlertsCount); v.AsInt64() != int64(len(all)) {
				t.Errorf("alerts.count %d, %d alert events", v.AsInt64(), len(all))
			}
		})
	}
}
