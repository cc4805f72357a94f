package supervisor

// The run's model-call proxy (llm package): started before the child, its
// URLs given to the child, reachable through netwatch, closed after the
// run's processes are gone and before the recorder finishes.
//
// The child's variables pointing at it (llmBaseVars), set whatever the
// policy's env allowlist says — they are the supervisor's own:
//
//	ANTHROPIC_BASE_URL   Claude Code, the Anthropic SDKs, litellm/aider
//	OPENAI_BASE_URL      the OpenAI SDKs (v1+), most OpenAI-compatible tools
//	OPENAI_API_BASE      the pre-1.0 openai Python SDK, litellm/aider
//
// Codex CLI reads none of them (it takes `-c openai_base_url=…`), so its
// calls go direct and are not metered; its connections are still seen.
//
// The upstream of each provider is what the user had configured in the
// environment agentwatch was given (the same variables), else the
// provider's default.

import (
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/llm"
)

// llmBaseVars are the child's variables naming a provider's base URL, in
// the order their values are preferred as the user's upstream.
var llmBaseVars = map[string][]string{
	llm.Anthropic: {"ANTHROPIC_BASE_URL"},
	llm.OpenAI:    {"OPENAI_BASE_URL", "OPENAI_API_BASE"},
}

// llmCloseTimeout bounds how long the end of a run waits for model calls
// still streaming; by then the run's processes are killed, so their
// connections are closed and this only bounds a stuck upstream.
const llmCloseTimeout = 5 * time.Second

// llmProxy is the run's proxy plus what the supervisor needs around it.
type llmProxy struct {
	proxy     *llm.Proxy
	endpoints []netip.AddrPort
	closeOnce sync.Once
}

// startLLM starts the proxy with upstreams from callerEnv. Emit receives
// the calls; capture is the run's content tier.
func startLLM(callerEnv []string, emit func(event.Event), capture llm.Capture) (*llmProxy, error) {
	ups := map[string]string{}
	for prov, names := range llmBaseVars {
		for _, n := range names {
			if v := strings.TrimSpace(lookupEnv(callerEnv, n)); v != "" {
				ups[prov] = v
				break
			}
		}
	}
	p, err := llm.Start(llm.Config{
		Upstreams:    ups,
		Emit:         emit,
		Capture:      capture,
		CloseTimeout: llmCloseTimeout,
	})
	if err != nil {
		return nil, err
	}
	lp := &llmProxy{proxy: p}
	for _, prov := range []string{llm.Anthropic, llm.OpenAI} {
		u, err := url.Parse(p.URL(prov))
		if err != nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(u.Host); err == nil {
			lp.endpoints = append(lp.endpoints, ap)
		}
	}
	return lp, nil
}

// close stops the proxy: in-flight calls get llmCloseTimeout, and their
// events reach the recorder before it returns. Idempotent.
func (lp *llmProxy) close() error {
	if lp == nil {
		return nil
	}
	var err error
	lp.closeOnce.Do(func() { err = lp.proxy.Close() })
	return err
}
