package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// report refuses what would mislead or name people by accident, each in
// one line with exit 2; an empty store answers every section with zeros.
func TestReportFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--group-by", "user"}, "--group-by user names people: add --by-user"},
		{[]string{"--group-by", "team,colour"}, `--group-by "colour": want one of team, repo, org, session, pr, model, agent, user`},
		{[]string{"--format", "yaml"}, `--format "yaml": want text, json or markdown`},
		{[]string{"--json", "--format", "markdown"}, "--json and --format markdown disagree"},
		{[]string{"--since", "yesterday"}, `--since: "yesterday"`},
	} {
		code, stdout, stderr := execute(t, &fakeRun{}, append([]string{"report", "--store", dir}, tt.args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("report %v: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tt.args, code, stdout, stderr, tt.want)
		}
	}
	code, stdout, stderr := execute(t, &fakeRun{}, "report", "--store", dir, "--json", "--group-by", "user", "--by-user")
	if code != 0 {
		t.Fatalf("report --by-user: exit %d: %s", code, stderr)
	}
	var r struct {
		Runs int `json:"runs"`
		Cost struct {
			Groups []struct {
				By string `json:"by"`
			} `json:"groups"`
		} `json:"cost"`
		Missing []struct {
			Field string  `json:"field"`
			Share float64 `json:"share"`
		} `json:"missing_fields"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("report --json: %v\n%s", err, stdout)
	}
	if r.Runs != 0 || len(r.Cost.Groups) != 1 || r.Cost.Groups[0].By != "user" || len(r.Missing) == 0 {
		t.Errorf("empty store report: %+v", r)
	}
	code, stdout, _ = execute(t, &fakeRun{}, "report", "--store", dir, "--format", "markdown")
	if code != 0 || !strings.HasPrefix(stdout, "# agentwatch report") || !strings.Contains(stdout, "## 6. Telemetry fields missing") {
		t.Errorf("markdown: exit %d:\n%s", code, stdout)
	}
}
