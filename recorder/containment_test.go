package recorder

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

func link(n int, pid uint32, op event.FileOp, p, np string) event.File {
	e := file(n, pid, op, p)
	e.NewPath = np
	return e
}

func unixConn(n int, pid uint32, sock string, peer uint32, errno syscall.Errno) event.Connect {
	return event.Connect{Header: hdr(n, pid), Source: event.SourceEBPF, Op: event.NetConnect, Transport: event.Unix,
		UnixPath: sock, PeerPID: peer, Errno: -int32(errno)}
}

// TestContainmentRules: the wave 2 rules from event fixtures — rule name,
// severity, span and message of each alert, and the span attributes.
func TestContainmentRules(t *testing.T) {
	const agentHome = "/srv/agent-home"
	tests := []struct {
		name   string
		mode   string
		info   func(*RunInfo)
		events []event.Event
		alerts []wantAlert
		check  func(t *testing.T, tr *telemetry.Trace)
	}{
		{
			name: "home from RunInfo: a home outside /home is matched",
			mode: "observe",
			info: func(i *RunInfo) { i.Home = agentHome },
			events: []event.Event{
				file(5, 101, event.FileRead, agentHome+"/.aws/credentials"),
				file(6, 101, event.FileWrite, agentHome+"/.bashrc"),
				file(7, 101, event.FileWrite, home+"/.bashrc"), // the guessed /home/<user>: not the child's home
			},
			alerts: []wantAlert{
				{"file_read " + agentHome + "/.aws/credentials", "secret_access", "high", "read of secret file " + agentHome + "/.aws/credentials"},
				{"file_write " + agentHome + "/.bashrc", "workflow_edit", "high", "protected path " + agentHome + "/.bashrc changed"},
				{"file_write " + agentHome + "/.bashrc", "persistence", "high", "write of " + agentHome + "/.bashrc: a shell start-up file"},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				if slices.Contains(labels(tr), "file_write "+home+"/.bashrc") {
					t.Error("a path under the guessed home was treated as the child's")
				}
				if gaps := attrs(tr.Root(), telemetry.TelemetryGaps)[telemetry.TelemetryGaps]; strings.Contains(gaps, "home") {
					t.Errorf("gap with a known home: %s", gaps)
				}
			},
		},
		{
			name: "no home: ~/ patterns match nothing and the run says so",
			mode: "observe",
			info: func(i *RunInfo) { i.Home = "" },
			events: []event.Event{
				file(5, 101, event.FileRead, home+"/.aws/credentials"),
				file(6, 101, event.FileWrite, home+"/.bashrc"),
				file(7, 101, event.FileWrite, ws+"/.git/hooks/pre-commit"), // workspace-anchored: still matched
			},
			alerts: []wantAlert{
				{"file_write .git/hooks/pre-commit", "workflow_edit", "high", "protected path .git/hooks/pre-commit changed"},
				{"file_write .git/hooks/pre-commit", "persistence", "high", "write of .git/hooks/pre-commit: a git hook"},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				if gaps := attrs(tr.Root(), telemetry.TelemetryGaps)[telemetry.TelemetryGaps]; !strings.Contains(gaps, "home directory is unknown") {
					t.Errorf("gaps %s", gaps)
				}
			},
		},
		{
			name: "persistence paths: cron, systemd, authorized_keys, rename and link into hooks, refused attempt",
			mode: "enforce",
			events: []event.Event{
				file(5, 101, event.FileCreate, "/var/spool/cron/crontabs/dev"),
				file(6, 101, event.FileCreate, home+"/.config/systemd/user/evil.service"),
				file(7, 101, event.FileWrite, home+"/.ssh/authorized_keys"),
				link(8, 101, event.FileRename, ws+"/tmp-hook", ws+"/.git/hooks/post-checkout"),
				link(9, 101, event.FileLink, "/tmp/payload", ws+"/.git/hooks/pre-push"),
				failedFile(10, 101, event.FileWrite, home+"/.zshrc", syscall.EROFS),
				file(11, 101, event.FileDelete, ws+"/.git/hooks/pre-commit.sample"), // removing a hook persists nothing
			},
			alerts: []wantAlert{
				{"file_write /var/spool/cron/crontabs/dev", "persistence", "high", "create of /var/spool/cron/crontabs/dev: a cron table"},
				{"file_write " + home + "/.config/systemd/user/evil.service", "persistence", "high", "a systemd user unit"},
				{"file_write " + home + "/.ssh/authorized_keys", "persistence", "high", "an SSH authorized key"},
				{"file_write " + home + "/.ssh/authorized_keys", "secret_access", "high", "write of secret file"},
				{"file_write " + home + "/.ssh/authorized_keys", "workflow_edit", "high", "protected path"}, // built-in protect (enforce)
				{"file_write " + home + "/.config/systemd/user/evil.service", "workflow_edit", "high", "protected path"},
				{"file_write tmp-hook", "persistence", "high", "rename of tmp-hook → .git/hooks/post-checkout: a git hook"},
				{"file_write tmp-hook", "workflow_edit", "high", "protected path"},
				{"file_write /tmp/payload", "persistence", "high", "link of /tmp/payload → .git/hooks/pre-push: a git hook"},
				{"file_write /tmp/payload", "workflow_edit", "high", "protected path"},
				{"file_write " + home + "/.zshrc", "persistence", "medium", "write of " + home + "/.zshrc refused (EROFS)"},
				{"file_write " + home + "/.zshrc", "workflow_edit", "medium", "refused (EROFS)"},
				{"file_write .git/hooks/pre-commit.sample", "workflow_edit", "high", "protected path .git/hooks/pre-commit.sample changed (delete)"},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, find(t, tr, "file_write /tmp/payload"), map[attribute.Key]string{
					telemetry.FileOperation:   "link",
					telemetry.FileLinkedTo:    ws + "/.git/hooks/pre-push",
					telemetry.FilePersistence: ".git/hooks/**",
				})
			},
		},
		{
			name: "new file ops: symlink of a secret, xattr, utimes, mknod",
			mode: "observe",
			events: []event.Event{
				link(5, 101, event.FileSymlink, ws+"/creds", "../../dev/.ssh/id_ed25519"), // relative target: resolved against the link's directory
				link(6, 101, event.FileSymlink, ws+"/x/.bashrc-link", home+"/.bashrc"),    // target a persistence file
				func() event.File {
					e := file(7, 101, event.FileSetxattr, ws+"/main.go")
					e.Detail = "user.agentwatch"
					return e
				}(),
				func() event.File {
					e := file(8, 101, event.FileRemovexattr, ws+"/main.go")
					e.Detail = "security.capability"
					return e
				}(),
				file(9, 101, event.FileUtimes, ws+"/main.go"),
				file(10, 101, event.FileMknod, ws+"/fifo"),
			},
			alerts: []wantAlert{
				{"file_write creds", "secret_access", "high", "symlink of secret file creds → ../../dev/.ssh/id_ed25519"},
				{"file_write x/.bashrc-link", "persistence", "high", "symlink of x/.bashrc-link → " + home + "/.bashrc"},
				{"file_write x/.bashrc-link", "workflow_edit", "high", "protected path"},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, find(t, tr, "file_write creds"), map[attribute.Key]string{
					telemetry.FileOperation:     "symlink",
					telemetry.FileSymlinkTarget: "../../dev/.ssh/id_ed25519",
				})
				wantAttrs(t, find(t, tr, "file_write main.go"), map[attribute.Key]string{
					telemetry.FileOperation:  "setxattr",
					telemetry.FileOperations: `["setxattr","removexattr","utimes"]`,
					telemetry.FileXattrs:     `["user.agentwatch","security.capability"]`,
				})
				wantAttrs(t, find(t, tr, "file_write fifo"), map[attribute.Key]string{telemetry.FileOperation: "mknod"})
			},
		},
		{
			name: "unix sockets: inside the run, outside it, unknown peer, refused",
			mode: "observe",
			events: []event.Event{
				unixConn(5, 101, "/tmp/inside.sock", 100, 0),
				unixConn(6, 101, "/run/user/1000/ssh-agent.sock", 4242, 0),
				unixConn(7, 101, "/run/user/1000/ssh-agent.sock", 4242, 0),
				unixConn(8, 101, "@abstract", 0, 0),
				unixConn(9, 101, "/var/run/docker.sock", 777, syscall.ECONNREFUSED),
			},
			alerts: []wantAlert{
				{"network_call unix /run/user/1000/ssh-agent.sock:", "unix_socket_outside_run", "medium",
					"connection to unix socket /run/user/1000/ssh-agent.sock, served by pid 4242, which is not a process of the run"},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, find(t, tr, "network_call unix /run/user/1000/ssh-agent.sock:"), map[attribute.Key]string{
					telemetry.NetworkTransport:   "unix",
					telemetry.NetworkPeerAddress: "/run/user/1000/ssh-agent.sock",
					telemetry.UnixPeerPID:        "4242",
					telemetry.UnixPeerOutsideRun: "true",
					telemetry.ConnectionsCount:   "2",
				})
				wantAttrs(t, find(t, tr, "network_call unix /tmp/inside.sock:"), map[attribute.Key]string{
					telemetry.UnixPeerPID:        "100",
					telemetry.UnixPeerOutsideRun: "false",
				})
				if _, ok := find(t, tr, "network_call unix @abstract:").Attr(telemetry.UnixPeerPID); ok {
					t.Error("unknown peer pid recorded")
				}
			},
		},
		{
			name: "io_uring used in observe mode, refused in enforce-like errno, failed",
			mode: "observe",
			events: []event.Event{
				event.IOURing{Header: hdr(5, 101), Entries: 256},
				event.IOURing{Header: hdr(6, 100), Entries: 8, Errno: -int32(syscall.ENOSYS)},
			},
			alerts: []wantAlert{
				{"bash_command curl", "io_uring", "high", "io_uring in use: its file and network operations are not observed (256 entries)"},
				{"bash_command claude", "io_uring", "low", "io_uring_setup refused (ENOSYS)"},
			},
			check: func(t *testing.T, tr *telemetry.Trace) {
				wantAttrs(t, find(t, tr, "bash_command curl"), map[attribute.Key]string{telemetry.ProcessIOURing: "used"})
				wantAttrs(t, find(t, tr, "bash_command claude"), map[attribute.Key]string{telemetry.ProcessIOURing: "refused"})
			},
		},
		{
			name:   "io_uring that enforce mode failed to refuse",
			mode:   "enforce",
			events: []event.Event{event.IOURing{Header: hdr(5, 101), Entries: 4}},
			alerts: []wantAlert{{"bash_command curl", "io_uring", "high", "(enforce mode did not refuse it)"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := runInfo()
			info.Gaps = nil
			info.Policy = mustPolicy(t, tt.mode, "")
			if tt.info != nil {
				tt.info(&info)
			}
			tr := record(info, append(agent(), tt.events...), End{Time: at(100)})
			tree(t, tr)
			got := alertsOf(tr)
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
			if tt.check != nil {
				tt.check(t, tr)
			}
		})
	}
}

func labels(tr *telemetry.Trace) []string {
	var out []string
	for i := range tr.Spans {
		out = append(out, label(&tr.Spans[i]))
	}
	return out
}
