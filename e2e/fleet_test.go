package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/fakemodel"
	"github.com/agentwatch/agentwatch/fleet"
	"github.com/agentwatch/agentwatch/llm"
	"github.com/agentwatch/agentwatch/prices"
	"github.com/agentwatch/agentwatch/privtest"
	"github.com/agentwatch/agentwatch/store"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver: logPostgresSize
)

// fleetModel is the model every fixture run calls; fakemodel answers a
// request that offers no tools with fakemodel.SideUsage.
const fleetModel = "claude-opus-5-5"

// modelScript makes n model calls through the run's proxy (the child's
// ANTHROPIC_BASE_URL), each request body distinct unless same is set (a
// retry: the same request again).
func modelScript(n int, same bool) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(`/usr/bin/python3 - <<'PY'
import json, os, urllib.request
for i in range(%d):
    body = {"model": %q, "max_tokens": 1, "messages": [{"role": "user", "content": "fixture %%s" %% (0 if %s else i)}]}
    req = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-api-key": "sk-ant-fixture", "anthropic-version": "2023-06-01"})
    urllib.request.urlopen(req).read()
PY
`, n, fleetModel, map[bool]string{true: "True", false: "False"}[same])
}

// fleetRun is one fixture run: a script run by `agentwatch run` as the
// test user in workspace ws, with labels and extra environment (a CI job's
// variables).
type fleetRun struct {
	name   string
	ws     string
	shell  string // /bin/sh (agent "sh") unless set
	labels []string
	env    []string
	script string
	calls  int  // model calls the script makes (for the cost check)
	same   bool // they repeat one request
	exit   int  // the script's expected exit code
}

func recordFleet(t *testing.T, bin, storeDir, modelURL string, a account, runs []fleetRun) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, r := range runs {
		shell := r.shell
		if shell == "" {
			shell = "/bin/sh"
		}
		resultFile := filepath.Join(t.TempDir(), "result.json")
		args := []string{"run", "--user", a.Name, "--store", storeDir, "--result-file", resultFile}
		for _, l := range r.labels {
			args = append(args, "--label", l)
		}
		args = append(args, "--", shell, "-c", r.script+modelScript(r.calls, r.same))
		cmd := exec.Command(bin, args...)
		cmd.Dir = r.ws
		cmd.Env = append([]string{
			"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root",
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"ANTHROPIC_BASE_URL=" + modelURL,
		}, r.env...)
		res := run(t, cmd, 60*time.Second)
		if res.Err != nil || res.ExitCode != r.exit {
			t.Fatalf("fixture run %s: exit %d (want %d), %v\n%s", r.name, res.ExitCode, r.exit, res.Err, res.Stderr)
		}
		var result struct {
			RunID string `json:"run_id"`
			Saved bool   `json:"saved"`
		}
		b, err := os.ReadFile(resultFile)
		if err == nil {
			err = json.Unmarshal(b, &result)
		}
		if err != nil || !result.Saved || result.RunID == "" {
			t.Fatalf("fixture run %s: result %s (%v)", r.name, b, err)
		}
		ids[r.name] = result.RunID
	}
	return ids
}

// fleetWorkspace is a git repository owned by the test user whose origin
// is remote.
func fleetWorkspace(t *testing.T, a account, remote string) string {
	t.Helper()
	ws := newWorkspace(t, a)
	os.MkdirAll(filepath.Join(ws, "tests"), 0o755)
	os.WriteFile(filepath.Join(ws, "tests", "test_ok.py"), []byte("import unittest\nclass T(unittest.TestCase):\n    def test_ok(self): pass\n"), 0o644)
	os.WriteFile(filepath.Join(ws, "tests", "__init__.py"), nil, 0o644)
	filepath.Walk(ws, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, int(a.UID), int(a.GID)) })
	for _, args := range [][]string{{"remote", "add", "origin", remote}, {"add", "tests"},
		{"-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-q", "-m", "tests"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = ws
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.UID, Gid: a.GID}}
		cmd.Env = []string{"HOME=" + a.Home, "PATH=/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	return ws
}

func ghaEnv(repo string, pr, run int) []string {
	return []string{"GITHUB_ACTIONS=true", "GITHUB_SERVER_URL=https://github.com", "GITHUB_REPOSITORY=" + repo,
		fmt.Sprintf("GITHUB_RUN_ID=%d", run), "GITHUB_RUN_ATTEMPT=1", "GITHUB_WORKFLOW=agent",
		fmt.Sprintf("GITHUB_REF=refs/pull/%d/merge", pr), "GITHUB_EVENT_NAME=pull_request"}
}

// TestFleetReport records a small fleet of varied real runs through
// `agentwatch run` (code, dependency, workflow and secret changes, a retry
// loop, pull requests with and without tests, two teams and two
// repositories with different spend, a repeated failure class) and asserts
// every section of `agentwatch report --json` exactly.
func TestFleetReport(t *testing.T) {
	a := ensureUser(t)
	bin := buildAgentwatch(t)
	srv := fakemodel.New()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	api := fleetWorkspace(t, a, "https://github.com/acme/api.git")
	web := fleetWorkspace(t, a, "git@github.com:acme/web.git")
	storeDir := t.TempDir()

	alpha, beta := "team=alpha", "team=beta"
	failing := `printf 'import unittest\nclass F(unittest.TestCase):\n    def test_no(self): self.fail("x")\n' > tests/test_fail.py; /usr/bin/python3 -m unittest discover -s tests -t . ; rm tests/test_fail.py; exit 1
`
	runs := []fleetRun{
		{name: "code", ws: api, labels: []string{alpha, "org=acme"}, script: "echo 'print(1)' > main.py\n", calls: 2},
		{name: "deps", ws: api, labels: []string{alpha, "org=acme"}, script: "echo '{}' > package-lock.json\n", calls: 1},
		{name: "workflow", ws: web, labels: []string{beta, "org=acme"}, script: "mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml\n", calls: 1},
		{name: "secret", ws: web, labels: []string{beta, "org=acme"}, script: "echo 'TOKEN=x' > .env\n", calls: 1},
		{name: "retry", ws: api, labels: []string{alpha, "org=acme"}, script: "for i in 1 2 3 4 5 6; do ls nothing-here 2>/dev/null; done; true\n", calls: 3, same: true},
		{name: "pr-tests", ws: api, labels: []string{alpha, "org=acme"}, env: ghaEnv("acme/api", 7, 101),
			script: "/usr/bin/python3 -m unittest discover -s tests -t . 2>/dev/null\n", calls: 1},
		{name: "pr-notests", ws: api, labels: []string{alpha, "org=acme"}, env: ghaEnv("acme/api", 8, 102), script: "echo more >> README.md\n", calls: 20},
		{name: "fail-sh", ws: web, labels: []string{beta, "org=acme"}, script: failing, exit: 1},
		{name: "fail-bash", ws: web, shell: "/bin/bash", labels: []string{beta, "org=acme"}, script: failing, exit: 1},
	}
	ids := recordFleet(t, bin, storeDir, srv.URL(), a, runs)
	ids["interrupted"] = interruptedRun(t, bin, storeDir, web, a)
	out, err := exec.Command(bin, "annotate", ids["pr-tests"], "--store", storeDir, "--review", "approved", "--reviewer", "lead").CombinedOutput()
	if err != nil {
		t.Fatalf("annotate: %v: %s", err, out)
	}

	rep := fleetReport(t, bin, "--store", storeDir)
	checkFleetReport(t, rep, ids, runs)

	// The fleet's PostgreSQL store: synced into, it answers the same.
	pg := privtest.StartPostgres(t)
	syncOut := func() string {
		t.Helper()
		out, err := exec.Command(bin, "sync", "--store", storeDir, "--to", pg.DSN).CombinedOutput()
		if err != nil {
			t.Fatalf("sync: %v: %s", err, out)
		}
		return string(out)
	}
	n := len(ids)
	if out := syncOut(); !strings.HasSuffix(out, fmt.Sprintf(": %d runs: %d copied, 0 already there\n", n, n)) {
		t.Errorf("first sync: %q", out)
	}
	if got := fleetReport(t, bin, "--store", pg.DSN); !reflect.DeepEqual(got, rep) {
		a, _ := json.MarshalIndent(rep, "", " ")
		b, _ := json.MarshalIndent(got, "", " ")
		t.Errorf("the PostgreSQL store's report differs from the SQLite store's:\nSQLite:\n%s\nPostgreSQL:\n%s", a, b)
	}
	if out := syncOut(); !strings.HasSuffix(out, fmt.Sprintf(": %d runs: 0 copied, %d already there\n", n, n)) {
		t.Errorf("second sync copied something: %q", out)
	}
	logPostgresSize(t, pg.DSN, n)
}

// logPostgresSize logs what the fleet's runs take on PostgreSQL
// (pg_total_relation_size: rows, indexes, TOAST), per run: all tables,
// and the facts tables alone (docs/fleet.md's sizing).
func logPostgresSize(t *testing.T, dsn string, runs int) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var all, traces, stored, spans, artifacts int64
	err = db.QueryRow(`SELECT
		(SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relkind = 'r'),
		sum(length(trace)), sum(pg_column_size(trace)), sum(span_count),
		(SELECT coalesce(sum(pg_column_size(content)), 0) FROM artifacts)
		FROM runs`).Scan(&all, &traces, &stored, &spans, &artifacts)
	if err != nil {
		t.Fatal(err)
	}
	// With a handful of runs the totals are mostly each table's and
	// index's first pages; the per-run figures are the traces'.
	t.Logf("PostgreSQL: %d runs, %d bytes in all tables; per run: %d spans, trace %d bytes (OTLP proto), %d as stored (TOAST-compressed), artifacts %d",
		runs, all, spans/int64(runs), traces/int64(runs), stored/int64(runs), artifacts/int64(runs))
}

// interruptedRun is the fleet's run with gaps: agentwatch is killed (-9)
// while its agent sleeps, and the next agentwatch command saves what the
// journal kept, as interrupted. It returns the run's id.
func interruptedRun(t *testing.T, bin, storeDir, ws string, a account) string {
	t.Helper()
	marker := filepath.Join(ws, ".started")
	cmd := exec.Command(bin, "run", "--user", a.Name, "--store", storeDir, "--label", "team=beta", "--label", "org=acme", "--",
		"/bin/sh", "-c", "touch "+marker+"; echo half > half-done.txt; sleep 60")
	cmd.Dir = ws
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the write reaches the journal
	cmd.Process.Kill()
	cmd.Wait()
	os.Remove(marker)
	out, err := exec.Command(bin, "runs", "--store", storeDir, "--json").Output()
	if err != nil {
		t.Fatalf("runs after the kill: %v", err)
	}
	var runs []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &runs); err != nil {
		t.Fatalf("runs --json: %v\n%s", err, out)
	}
	for _, r := range runs {
		if r.Status == "interrupted" {
			return r.ID
		}
	}
	t.Fatalf("no interrupted run after agentwatch was killed: %s", out)
	return ""
}

func fleetReport(t *testing.T, bin string, args ...string) fleet.Report {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"report", "--since", "", "--json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("report %v: %v: %s", args, err, stderr.String())
	}
	var r fleet.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report --json: %v\n%s", err, stdout.String())
	}
	return r
}

func checkFleetReport(t *testing.T, r fleet.Report, ids map[string]string, runs []fleetRun) {
	t.Helper()
	names := map[string]string{}
	for n, id := range ids {
		names[id] = n
	}
	named := func(l []string) []string {
		out := []string{}
		for _, id := range l {
			n, ok := names[id]
			if !ok {
				n = "?" + id
			}
			out = append(out, n)
		}
		sort.Strings(out)
		return out
	}
	want := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	want("runs", r.Runs, len(ids))

	// 1. Changes.
	want("code runs", named(r.Changes.Code.IDs), []string{"code"})
	want("dependency runs", named(r.Changes.Deps.IDs), []string{"deps"})
	want("workflow runs", named(r.Changes.Workflows.IDs), []string{"workflow"})
	want("secret runs", named(r.Changes.Secrets.IDs), []string{"secret"})
	want("test-file runs", named(r.Changes.Tests.IDs), []string{"fail-bash", "fail-sh"}) // they wrote tests/test_fail.py
	want("config runs", r.Changes.Config.Runs, 0)

	// 2. Retries: the repeated command and the repeated model request.
	var retried []string
	for _, it := range r.Retries.Items {
		retried = append(retried, it.RunID)
	}
	want("retry runs", named(retried), []string{"retry"})
	if len(r.Retries.Items) == 1 && (r.Retries.Items[0].Calls != 2 || r.Retries.Items[0].Commands == 0) {
		t.Errorf("retry run: %+v, want 2 repeated model calls and repeated commands", r.Retries.Items[0])
	}
	// The second and third identical requests wasted their tokens.
	side := int64(fakemodel.SideUsage.InputTokens + fakemodel.SideUsage.OutputTokens)
	want("retry waste tokens", r.Retries.WasteTokens, 2*side)
	call := callCost(t)
	if d := r.Retries.WasteUSD - 2*call; d > 1e-12 || d < -1e-12 {
		t.Errorf("retry waste $%v, want $%v", r.Retries.WasteUSD, 2*call)
	}

	// 3. Pull requests (from the CI job's variables).
	const pr7, pr8 = "https://github.com/acme/api/pull/7", "https://github.com/acme/api/pull/8"
	urls := func(l []fleet.PRInfo) []string {
		out := []string{}
		for _, p := range l {
			out = append(out, p.URL)
		}
		sort.Strings(out)
		return out
	}
	want("pull requests", r.PRs.Total, 2)
	want("PRs without tests", urls(r.PRs.WithoutTests), []string{pr8})
	want("PRs without approval", urls(r.PRs.WithoutApproval), []string{pr8})
	want("PRs without a scan", urls(r.PRs.WithoutScan), []string{})
	want("runs without a PR link", r.PRs.RunsWithoutPRLink, len(ids)-2)

	// 4. Cost: every call is one side request at the database's price.
	var total float64
	ncalls := 0
	for _, rr := range runs {
		total += float64(rr.calls) * call
		ncalls += rr.calls
	}
	if d := r.Cost.Total.CostUSD - total; d > 1e-9 || d < -1e-9 {
		t.Errorf("total cost $%v, want $%v", r.Cost.Total.CostUSD, total)
	}
	want("model calls", r.Cost.Total.ModelCalls, ncalls)
	team := map[string]fleet.Rollup{}
	for _, g := range r.Cost.Groups {
		if g.By == fleet.ByTeam {
			for _, x := range g.Groups {
				team[x.Key] = x
			}
		}
	}
	want("alpha runs", team["alpha"].Totals.Runs, 5)
	want("beta runs", team["beta"].Totals.Runs, 5) // with the interrupted one
	repo := map[string]int{}
	for _, g := range r.Cost.Groups {
		if g.By == fleet.ByRepo {
			for _, x := range g.Groups {
				repo[x.Key] = x.Totals.Runs
			}
		}
	}
	want("runs per repository", repo, map[string]int{"acme/api": 5, "acme/web": 5})
	// alpha's priced runs cost 2, 1, 3, 1 and 20 calls: p50 2 calls, p99 20.
	want("alpha p50", round(team["alpha"].PerRun.P50/call), 2.0)
	want("alpha p99", round(team["alpha"].PerRun.P99/call), 20.0)
	var spikes []string
	for _, s := range r.Cost.Spikes {
		spikes = append(spikes, s.By+" "+s.Key+" "+strings.Join(named(s.RunIDs), ","))
	}
	want("spikes", spikes, []string{"repo acme/api pr-notests", "team alpha pr-notests"})

	// 5. Failures: test_failure in two runs of two shells.
	if len(r.Failures) == 0 || r.Failures[0].Class != "test_failure" {
		t.Fatalf("failures %+v, want test_failure first", r.Failures)
	}
	f := r.Failures[0]
	want("test_failure runs", named(f.RunIDs), []string{"fail-bash", "fail-sh"})
	want("test_failure agents", f.Agents, []fleet.Count{{Value: "bash", Runs: 1}, {Value: "sh", Runs: 1}})
	want("test_failure environments", f.Environments, []fleet.Count{{Value: "local", Runs: 2}})
	want("test_failure repos", f.Repos, []fleet.Count{{Value: "acme/web", Runs: 2}})
	want("failure classes repeated", len(r.Failures), 1)

	// 6. Missing fields: every field listed; none of these runs has the
	// agent's own spans or a session id of its own.
	got := map[string]int{}
	for _, m := range r.Missing {
		got[m.Field] = m.Runs
	}
	want("missing agent_spans", got["agent_spans"], len(ids))
	want("missing pr_link", got["pr_link"], len(ids)-2)
	want("missing team", got["team"], 0)
	// The interrupted run was rebuilt from its journal: its start snapshot
	// (repository, base) is kept there, but no end-of-run evidence, so no
	// secret scan, and a telemetry gap.
	want("missing repository", got["repository"], 0)
	want("missing base_sha", got["base_sha"], 0)
	want("missing review", got["review"], len(ids)-1)
	want("missing cost", got["cost"], 3) // the failing runs and the interrupted one made no model call
	want("missing model", got["model"], 3)
	want("missing test_output", got["test_output"], len(ids)-3) // pr-tests and the two failing runs ran tests
	want("missing security_scan", got["security_scan"], 1)      // agentwatch's own secret scan ran on every finished run
	want("missing sensors", got["sensors"], 1)
	want("missing fields, in order", fieldsOf(r.Missing), store.MissingFields)
}

func fieldsOf(m []fleet.MissingField) []string {
	var out []string
	for _, f := range m {
		out = append(out, f.Field)
	}
	return out
}

func round(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// callCost is one side request's cost at the built-in database's price.
func callCost(t *testing.T) float64 {
	t.Helper()
	u := fakemodel.SideUsage
	c, ok := prices.Builtin().Cost(event.LLMCall{Provider: llm.Anthropic, RequestModel: fleetModel, ResponseModel: fleetModel,
		UsageKnown: true, InputTokens: int64(u.InputTokens), OutputTokens: int64(u.OutputTokens)})
	if !ok {
		t.Fatalf("the price database does not price %s", fleetModel)
	}
	return c
}
