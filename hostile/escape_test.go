package hostile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
)

// escapeProbe puts terminal sequences everywhere an agent's strings reach
// the record: file names (ESC/OSC 52, title, screen clear, CR, LF, RLO,
// 8-bit CSI as a C1 rune and as a raw byte), a git hook whose name carries
// OSC 52 (an alert the end-of-run summary prints), the argv of a command,
// a DNS query with ESC in a label, and a span of its own telemetry whose
// name and status message do the same. It prints nothing itself.
const escapeProbe = `
import json, os, socket, struct, subprocess, urllib.request
names = [
    "osc52-\x1b]52;c;aGk=\x07",
    "title-\x1b]0;pwned\x07",
    "clear-\x1b[2J\x1b[H",
    "cr-evil\rREADME",
    "lf-x\nFORGED-LINE",
    "rlo-\u202egpj.sh",
    "csi8-\x9b2J",
]
for n in names:
    with open(n, "w") as f:
        f.write("x\n")
with open(b"raw-\x9b2J", "w") as f:
    f.write("x\n")
with open(".git/hooks/pre-commit\x1b]52;c;aGk=\x07", "w") as f:
    f.write("#!/bin/sh\n")
subprocess.run(["/bin/true", "argv-\x1b]52;c;aGk=\x07", "argv-\rCR", "argv-\nFORGED-LINE", "argv-\u202eRLO"])

ns = "127.0.0.1"
for l in open("/etc/resolv.conf"):
    if l.startswith("nameserver"):
        ns = l.split()[1]
        break
msg = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
for label in [b"dns-\x1b]0;t\x07", b"example"]:
    msg += bytes([len(label)]) + label
msg += b"\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(msg, (ns, 53))
try:
    s.recv(1500)
except OSError:
    pass

tp = os.environ.get("TRACEPARENT", "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01").split("-")
span = {"traceId": tp[1], "spanId": "1122334455667788", "parentSpanId": tp[2],
        "name": "tool \x1b]52;c;aGk=\x07 \u202eotlp", "kind": 1,
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
        "status": {"code": 2, "message": "otlp-fail\r\nFORGED-LINE"}}
body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "claude-code"}}]},
        "scopeSpans": [{"spans": [span]}]}]}
req = urllib.request.Request(os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=5).read()
`

// TestRunTextReachesTheTerminalEscaped: a real run of that probe, then
// what the operator's terminal gets from agentwatch — the end-of-run
// summary on stderr, `show`, `show --json`, `runs` — holds no raw control,
// C1 or bidi character and no line the run forged, and shows the probe's
// strings in termtext's notation.
func TestRunTextReachesTheTerminalEscaped(t *testing.T) {
	privtest.Require(t)
	u := privtest.User(t, agent, agentHome)
	w := newWorkspace(t, u)
	up := privtest.StartDNS(t, map[string][4]byte{"allowed.test.": {127, 0, 0, 2}})
	pol := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(pol, []byte("version: 1\nmode: observe\nnetwork:\n  allow: [allowed.test]\n  dns:\n    upstream: "+up.Addr+"\n"), 0o644)
	storeDir := t.TempDir()

	// The script itself starts with a no-op holding raw sequences, so the
	// run's own command line (the COMMAND column of `runs`) is hostile too.
	script := ": '\x1b]52;c;aGk=\x07\x1b[2J\r\u202e'; /usr/bin/python3 -c '" + strings.ReplaceAll(escapeProbe, "'", `'\''`) + "'"
	stdout, stderr, code := aw(t, w.dir, "run", "--user", agent, "--mode", "observe", "--store", storeDir, "--policy", pol, "--", "/bin/bash", "-c", script)
	m := recordedRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no run recorded (exit %d):\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if code != 0 {
		t.Errorf("the probe failed (exit %d): stderr:\n%s", code, stderr)
	}
	runID := m[1]

	// The premise: the raw strings are in the record (so the outputs below
	// had something to escape).
	st, err := store.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	tr, _, err := st.Load(context.Background(), runID)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	text := traceText(run{trace: tr})
	for _, raw := range []string{"osc52-\x1b]52;c;aGk=\x07", "cr-evil\rREADME", "rlo-\u202egpj.sh", "argv-\nFORGED-LINE", "tool \x1b]52;c;aGk=\x07"} {
		if !strings.Contains(text, raw) {
			t.Errorf("premise: the trace lacks %q", raw)
		}
	}

	show, showErr, code := aw(t, w.dir, "show", "--store", storeDir, runID)
	if code != 0 {
		t.Fatalf("show: exit %d: %s", code, showErr)
	}
	showJSON, _, _ := aw(t, w.dir, "show", "--json", "--store", storeDir, runID)
	runs, _, _ := aw(t, w.dir, "runs", "--store", storeDir)
	runsJSON, _, _ := aw(t, w.dir, "runs", "--json", "--store", storeDir)
	exportJSON, _, _ := aw(t, w.dir, "export", runID, "--format", "otlp-json", "--store", storeDir)
	t.Logf("run stderr:\n%s\nshow:\n%s\nruns:\n%s", stderr, show, runs)

	for what, out := range map[string]string{"run stderr": stderr, "show": show, "show --json": showJSON, "runs": runs,
		"runs --json": runsJSON, "export --format otlp-json": exportJSON} {
		terminalSafe(t, what, out)
	}
	for what, c := range map[string]struct {
		out  string
		want []string
	}{
		"show": {show, []string{
			`osc52-\x1b]52;c;aGk=\x07`, `title-\x1b]0;pwned\x07`, `clear-\x1b[2J\x1b[H`, `cr-evil\rREADME`,
			`lf-x\nFORGED-LINE`, `rlo-\u202egpj.sh`, `csi8-\u009b2J`,
			"raw-\ufffd2J", // the record keeps valid UTF-8: the raw byte is U+FFFD before show sees it
			`/bin/true 'argv-\x1b]52;c;aGk=\x07' 'argv-\rCR' 'argv-\nFORGED-LINE' 'argv-\u202eRLO'`,
			`.git/hooks/pre-commit\x1b]52;c;aGk=\x07`,
			`\x1b]52;c;aGk=\x07 \u202eotlp`, `otlp-fail\r\nFORGED-LINE`,
		}},
		"runs":        {runs, []string{`/bin/bash -c ': '\''\x1b]52;c;aGk=\x07\x1b[2J\r\u202e'\''; /usr/bin/python`}},
		"run stderr":  {stderr, []string{`.git/hooks/pre-commit\x1b]52;c;aGk=\x07`}},
		"show --json": {showJSON, []string{`osc52-\u001b]52;c;aGk=\u0007`, `rlo-\u202egpj.sh`, `csi8-\u009b2J`}},
	} {
		for _, want := range c.want {
			if !strings.Contains(c.out, want) {
				t.Errorf("%s lacks %q", what, want)
			}
		}
	}
}

// terminalSafe fails on what a terminal would act on or not show, and on
// a line that starts with text the probe tried to forge.
func terminalSafe(t *testing.T, what, out string) {
	t.Helper()
	if out == "" {
		t.Errorf("%s is empty", what)
	}
	if !utf8.ValidString(out) {
		t.Errorf("%s is not valid UTF-8", what)
	}
	for i, r := range out {
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			t.Errorf("%s holds %U at byte %d: %q", what, r, i, out[max(0, i-40):min(len(out), i+40)])
			break
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "FORGED") {
			t.Errorf("%s has a line the run forged: %q", what, l)
		}
	}
}

// aw runs the agentwatch command (this test binary as main) in dir.
func aw(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(gitEnv(), asAgentwatch+"=1")
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running agentwatch %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}
