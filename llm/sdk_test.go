package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/privtest"
)

// networkFailure matches npm's messages for an unreachable registry.
var networkFailure = regexp.MustCompile(`(?i)ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network|socket hang up`)

// sdkClients installs the pinned official npm clients (once per machine,
// under .e2e/) and returns their directory. An unreachable registry skips
// the test — except under CI=true, where a skip would hide that nothing
// ran.
func sdkClients(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("official SDK clients: skipped with -short (needs npm)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		if privtest.Strict() {
			t.Fatal("node not installed (CI forbids skipping)")
		}
		t.Skip("node not installed")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "install-sdk-clients.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	switch {
	case err == nil:
		return strings.TrimSpace(stdout.String())
	case networkFailure.MatchString(stderr.String()) && !privtest.Strict():
		t.Skipf("npm registry unreachable: %s", strings.TrimSpace(stderr.String()))
	}
	t.Fatalf("installing the SDK clients: %v: %s", err, stderr.String())
	return ""
}

// TestOfficialSDKClients drives @anthropic-ai/sdk and openai, streaming and
// not, through the proxy against local fakes: each call works as it would
// directly, and the proxy's usage equals what the SDK itself parsed and
// what the fake sent.
func TestOfficialSDKClients(t *testing.T) {
	dir := sdkClients(t)
	anth := startFake(t)
	oai := startOpenAIFake(t)
	p, calls := startProxy(t, Config{Upstreams: map[string]string{Anthropic: anth.URL(), OpenAI: oai.URL + "/v1"}})

	var stdout, stderr bytes.Buffer
	cmd := exec.Command("node", filepath.Join("testdata", "sdk_clients.cjs"))
	cmd.Env = append(os.Environ(), "SDK_DIR="+dir, "ANTHROPIC_URL="+p.URL(Anthropic), "OPENAI_URL="+p.URL(OpenAI))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node sdk_clients.cjs: %v\n%s", err, stderr.String())
	}

	type sdkUsage struct {
		InputTokens              int64 `json:"input_tokens"`
		OutputTokens             int64 `json:"output_tokens"`
		CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
		CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
		PromptTokens             int64 `json:"prompt_tokens"`
		CompletionTokens         int64 `json:"completion_tokens"`
		PromptTokensDetails      struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		CompletionTokensDetails struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
		InputTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputTokensDetails struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		} `json:"output_tokens_details"`
	}
	// What the SDK parsed, in the GenAI convention: in, out, cache read,
	// cache creation, reasoning.
	sdk := map[string][5]int64{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var l struct {
			Mode  string    `json:"mode"`
			Usage *sdkUsage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Usage == nil {
			t.Fatalf("sdk output line %q: %v", line, err)
		}
		u := l.Usage
		switch {
		case strings.HasPrefix(l.Mode, "anthropic"):
			sdk[l.Mode] = [5]int64{u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens, u.OutputTokens, u.CacheReadInputTokens, u.CacheCreationInputTokens, 0}
		case strings.HasPrefix(l.Mode, "openai.chat"):
			sdk[l.Mode] = [5]int64{u.PromptTokens, u.CompletionTokens, u.PromptTokensDetails.CachedTokens, 0, u.CompletionTokensDetails.ReasoningTokens}
		default:
			sdk[l.Mode] = [5]int64{u.InputTokens, u.OutputTokens, u.InputTokensDetails.CachedTokens, 0, u.OutputTokensDetails.ReasoningTokens}
		}
	}
	tu := turnUsage
	fakeSent := map[string][5]int64{
		"anthropic": {int64(tu.InputTokens + tu.CacheReadInputTokens + tu.CacheCreationInputTokens), int64(tu.OutputTokens), int64(tu.CacheReadInputTokens), int64(tu.CacheCreationInputTokens), 0},
		"openai":    {fakePrompt, fakeOutput, fakeCached, 0, fakeReasoning},
	}
	if len(sdk) != 6 {
		t.Fatalf("the script made %d calls, want 6: %s", len(sdk), stdout.String())
	}
	for range 6 {
		c := calls.next(t)
		mode := c.Provider + "." + map[string]string{"messages": "messages", "chat.completions": "chat", "responses": "responses"}[c.API]
		if c.Stream {
			mode += ".stream"
		}
		got := [5]int64{c.InputTokens, c.OutputTokens, c.CacheReadTokens, c.CacheCreationTokens, c.ReasoningTokens}
		want, ok := sdk[mode]
		if !ok {
			t.Errorf("unexpected call %s %s", c.Method, c.Path)
			continue
		}
		if got != want || got != fakeSent[c.Provider] || !c.UsageKnown || c.ErrorType != "" || c.Status != 200 {
			t.Errorf("%s: proxy recorded %v (known %v, error %q), the SDK parsed %v, the fake sent %v", mode, got, c.UsageKnown, c.ErrorType, want, fakeSent[c.Provider])
		}
		if strings.Contains(fmt.Sprintf("%#v", c), "NEVER-RECORD") {
			t.Errorf("%s: the API key reached the event", mode)
		}
		delete(sdk, mode)
	}
}
