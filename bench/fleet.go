package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/agentwatch/agentwatch/fileclass"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// fleetRuns is the size of the synthetic fleet `report` is timed over
// (W2.6: ≤ 1 s over 100,000 runs).
const fleetRuns = 100_000

// fleet fills a store with n synthetic runs through the store's own Save
// (so their facts are computed as a real run's are), then times
// `agentwatch report` over all of them as a user runs it, and prints the
// store's size per run.
func (h *harness) fleet(n, reps int) error {
	fmt.Printf("== agentwatch report over %d synthetic runs (median of %d)\n", n, reps)
	dir := filepath.Join(filepath.Dir(h.work), "fleet-store")
	if keep := os.Getenv("BENCH_FLEET_KEEP"); keep != "" {
		dir = keep // kept afterwards, for profiling `report` (AGENTWATCH_CPUPROFILE)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	st, err := store.Open(dir)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	t0 := time.Now().Add(-time.Duration(n) * time.Second) // one run a second, ending now
	for i := range n {
		if err := st.Save(context.Background(), synthRun(rng, i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			st.Close()
			return fmt.Errorf("saving synthetic run %d: %w", i, err)
		}
	}
	saved := time.Since(start)
	if err := st.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(filepath.Join(dir, store.FileName))
	if err != nil {
		return err
	}
	var times []time.Duration
	for range reps {
		cmd := exec.Command(h.agentwatch, "report", "--store", dir, "--since", "", "--json")
		cmd.Stderr = os.Stderr
		s := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("agentwatch report: %w", err)
		}
		times = append(times, time.Since(s))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("   saving the runs: %.0f µs per run\n", float64(saved.Microseconds())/float64(n))
	fmt.Printf("   report --since '' --json: %.2f s (target ≤ 1 s)\n", times[len(times)/2].Seconds())
	fmt.Printf("   store: %.1f KB per run, traces included (the facts alone: store/TestFactsSize)\n\n", float64(fi.Size())/float64(n)/1024)
	return nil
}

var (
	synthTeams  = []string{"payments", "search", "platform", "mobile", "data", "infra", "web", "security"}
	synthRepos  = []string{"acme/api", "acme/web", "acme/ios", "acme/infra", "acme/billing", "acme/search", "acme/docs", "acme/etl", "acme/auth", "acme/cli", "acme/sdk", "acme/ml"}
	synthModels = []string{"claude-opus-5-5", "claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o"}
	synthFails  = []string{telemetry.FailureNone, telemetry.FailureNone, telemetry.FailureNone, telemetry.FailureTestFailure, telemetry.FailureDependency, telemetry.FailurePolicyBlock, telemetry.FailureToolAPI}
	synthFiles  = []string{"src/main.go", "src/handler_test.go", "go.sum", ".github/workflows/ci.yml", "config/app.yaml", "README.md", ".env"}
)

// synthRun is a small but complete run: a root with labels, repository,
// model spend and a failure class, a test run, a model call, a few file
// writes and sometimes an alert — what the facts are computed from.
func synthRun(rng *rand.Rand, i int, start time.Time) *telemetry.Trace {
	var tid trace.TraceID
	for j := range tid {
		tid[j] = byte(rng.IntN(256))
	}
	sid := func(k int) trace.SpanID {
		var s trace.SpanID
		s[0], s[1], s[2], s[7] = byte(i>>16), byte(i>>8), byte(i), byte(k+1)
		return s
	}
	id := fmt.Sprintf("synth-%07d", i)
	team := synthTeams[rng.IntN(len(synthTeams))]
	repo := synthRepos[rng.IntN(len(synthRepos))]
	model := synthModels[rng.IntN(len(synthModels))]
	in, out := int64(1000+rng.IntN(200_000)), int64(100+rng.IntN(20_000))
	cost := float64(in)*3/1e6 + float64(out)*15/1e6
	if rng.IntN(100) == 0 {
		cost *= 20 // a spike
	}
	end := start.Add(time.Duration(1+rng.IntN(600)) * time.Second)
	root := telemetry.Span{TraceID: tid, SpanID: sid(0), Name: "invoke_agent claude", Start: start, End: end, Attrs: []attribute.KeyValue{
		telemetry.SpanType.String(telemetry.SpanAgentRun),
		telemetry.RunID.String(id),
		telemetry.GenAIAgentName.String("claude"),
		telemetry.CommandLine.String("claude -p 'fix the flaky test'"),
		telemetry.ProcessExitCode.Int(0),
		telemetry.VCSRepositoryURLFull.String("https://github.com/" + repo),
		telemetry.VCSRefHeadName.String("agent/" + id),
		telemetry.VCSRefHeadRevision.String(fmt.Sprintf("%040x", i)),
		attribute.String(telemetry.LabelPrefix+"team", team),
		attribute.String(telemetry.LabelPrefix+"org", "acme"),
		telemetry.GenAIConversationID.String(fmt.Sprintf("session-%d", i/3)),
		telemetry.CostUSD.Float64(cost),
		telemetry.GenAIUsageInputTokens.Int64(in),
		telemetry.GenAIUsageOutputTokens.Int64(out),
		telemetry.LLMCalls.Int(1),
		telemetry.FailureClass.String(synthFails[rng.IntN(len(synthFails))]),
		telemetry.Sensors.StringSlice([]string{"ebpf", "netwatch", "llm"}),
		telemetry.TelemetryGaps.StringSlice(nil),
		telemetry.EvalSecurityScan.String("clean"),
		telemetry.Workspace.String("/ws"),
	}}
	spans := []telemetry.Span{root}
	child := func(k int, name, typ string, attrs ...attribute.KeyValue) {
		s := telemetry.Span{TraceID: tid, SpanID: sid(k), ParentID: sid(0), Name: name, Start: start.Add(time.Duration(k) * time.Millisecond),
			End: start.Add(time.Duration(k+1) * time.Millisecond), Attrs: append([]attribute.KeyValue{telemetry.SpanType.String(typ)}, attrs...)}
		spans = append(spans, s)
	}
	child(1, "chat "+model, telemetry.SpanLLMCall, telemetry.GenAIRequestModel.String(model), telemetry.GenAIResponseModel.String(model),
		telemetry.GenAIProviderName.String("anthropic"), telemetry.GenAIUsageInputTokens.Int64(in), telemetry.GenAIUsageOutputTokens.Int64(out),
		telemetry.CostUSD.Float64(cost))
	if rng.IntN(2) == 0 {
		outcome := "passed"
		if rng.IntN(4) == 0 {
			outcome = "failed"
		}
		child(2, "go test", telemetry.SpanTestRun, telemetry.CommandLine.String("go test ./..."), telemetry.TestOutcome.String(outcome))
	}
	for k := range 1 + rng.IntN(3) {
		f := synthFiles[rng.IntN(len(synthFiles))]
		child(3+k, "create "+f, telemetry.SpanFileWrite, telemetry.FilePath.String("/ws/"+f), telemetry.FileInWorkspace.Bool(true),
			telemetry.FileClass.String(fileclass.Classify("/ws/"+f, f, fileclass.LikelySecret(filepath.Base(f)))))
	}
	return &telemetry.Trace{RunID: id, Spans: spans}
}
