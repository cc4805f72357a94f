package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
)

// --prices merges a price file over the built-in table before the run
// starts; a bad file stops the run (exit 125) before anything launches.
func TestPricesFlag(t *testing.T) {
	dir := t.TempDir()
	good, bad := dir+"/prices.json", dir+"/bad.json"
	if err := os.WriteFile(good, []byte(`{"version":"team-7","providers":{"anthropic":{"claude-inhouse-1":{"input":2,"output":10}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"version":"x","providers":{"anthropic":{"m":{"input":1,"output":1,"cache_reads":1}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fakeRun{}
	if code, _, stderr := execute(t, f, "run", "--store", "/s", "--prices", good, "--", "true"); code != 0 || !f.called {
		t.Fatalf("exit %d, called %v: %s", code, f.called, stderr)
	}
	usd, ok := f.opts.Prices.Cost(event.LLMCall{Provider: "anthropic", RequestModel: "claude-inhouse-1", UsageKnown: true, InputTokens: 1e6, OutputTokens: 1e5})
	if !ok || usd != 3 {
		t.Errorf("cost with the file's price = %v (%v), want 3", usd, ok)
	}
	if _, ok := f.opts.Prices.Lookup("anthropic", "claude-sonnet-4-5"); !ok {
		t.Errorf("the built-in models are gone after merging the file")
	}
	if !strings.HasSuffix(f.opts.Prices.Version, "+team-7") {
		t.Errorf("version %q", f.opts.Prices.Version)
	}

	f = &fakeRun{}
	if code, _, _ := execute(t, f, "run", "--store", "/s", "--", "true"); code != 0 || f.opts.Prices != nil {
		t.Errorf("without --prices: exit %d, prices %v (want nil: the built-in table)", code, f.opts.Prices)
	}
	for _, file := range []string{bad, dir + "/missing.json"} {
		f = &fakeRun{}
		code, _, stderr := execute(t, f, "run", "--store", "/s", "--prices", file, "--", "true")
		if code != ExitFailure || f.called || !strings.Contains(stderr, "agentwatch: ") {
			t.Errorf("--prices %s: exit %d, called %v, stderr %q", file, code, f.called, stderr)
		}
		t.Logf("--prices %s: %s", file, strings.TrimSpace(stderr))
	}
}
