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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/llm"
	"github.com/agentwatch/agentwatch/recorder"
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

// childEnv sets the proxy's URLs in the child's environment, replacing
// what the user had (it became the upstream), and returns the names set.
func (lp *llmProxy) childEnv(env []string) ([]string, []string) {
	var set []string
	for prov, names := range llmBaseVars {
		for _, n := range names {
			env = overrideEnv(env, n, lp.proxy.URL(prov))
			set = append(set, n)
		}
	}
	slices.Sort(set)
	return env, set
}

// strings of the listeners, for the root span.
func (lp *llmProxy) endpointStrings() []string {
	out := make([]string, len(lp.endpoints))
	for i, ap := range lp.endpoints {
		out[i] = ap.String()
	}
	return out
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

// overrideEnv sets name=value in env, replacing every earlier entry of
// name (a duplicate would leave which one wins to the child's libc).
func overrideEnv(env []string, name, value string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, name+"=")
	})
	return append(out, name+"="+value)
}

// startRunLLM starts the run's proxy before the child: the child's
// environment gets its URLs (named in the EnvFiltered event's set list,
// never their values), the recorder its endpoints and price table. A
// proxy that cannot start is a gap, not a failed run: the child then
// talks to its provider directly, unmetered.
func startRunLLM(o Options, callerEnv []string, s *sink, env *[]string, ef *event.EnvFiltered, info *recorder.RunInfo, capture llm.Capture) *llmProxy {
	info.Prices = o.Prices
	lp, err := startLLM(callerEnv, s.add, capture)
	if err != nil {
		s.add(event.Gap{Header: event.Header{Time: time.Now()}, Sensor: "llm", Reason: oneLine(err)})
		return nil
	}
	var set []string
	*env, set = lp.childEnv(*env)
	ef.Set = append(ef.Set, set...)
	slices.Sort(ef.Set)
	ef.Set = slices.Compact(ef.Set)
	info.LLMProxy = lp.endpointStrings()
	return lp
}

// watch points pid resolution at the run's cgroup and keeps the proxy
// reachable through netwatch (allow_loopback: false included). It
// returns the gap to record when netwatch refuses.
func (lp *llmProxy) watch(s *sensors) []event.Gap {
	if lp == nil {
		return nil
	}
	if s.cgroup != nil {
		lp.proxy.WatchCgroup(s.cgroup.Path)
	}
	if s.net == nil {
		return nil
	}
	var gaps []event.Gap
	for _, ap := range lp.endpoints {
		if err := s.net.AllowEndpoint(ap); err != nil {
			gaps = append(gaps, gapText("llm", "allowing the proxy "+ap.String()+": "+oneLine(err)))
		}
	}
	return gaps
}

// stop closes the proxy after the run's processes are gone and before
// the recorder finishes, so every call's event is in the record.
func (lp *llmProxy) stop(end *recorder.End) {
	if lp == nil {
		return
	}
	if err := lp.close(); err != nil {
		end.Gaps = append(end.Gaps, gap("llm", err))
	}
}
