package supervisor

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/redact"
)

// supervisorEnv are the variables the supervisor sets itself: the target
// user's identity, whatever env.allow says (a child without HOME writes
// dotfiles into the working directory).
var supervisorEnv = []string{"HOME", "USER", "LOGNAME"}

// policyEnv builds the child's environment from env (agentwatch's own, or
// Options.Env) under pol:
//   - enforce: only what env.allow keeps, then env.set;
//   - observe: everything (block nothing), then env.set; the names enforce
//     would drop are still reported, as what this policy would drop;
//
// then HOME, USER and LOGNAME of the target user (childEnv). It returns the
// environment, the EnvFiltered event for the recorder (names only), and the
// dropped variables whose values the child does not have anyway: which of
// them are secrets to redact is redact.Secrets' decision (by name, shape
// and what is public in the run).
func policyEnv(pol *policy.Policy, env []string, t Account, now time.Time) ([]string, event.EnvFiltered, []redact.Dropped) {
	// agentwatch's own settings are the operator's, never the agent's: in
	// either mode, whatever env.allow says (AGENTWATCH_STORE may hold a
	// database password).
	all := env
	var own []string
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		if isOwnEnv(name) {
			own = append(own, name)
			return true
		}
		return false
	})
	filtered, kept, dropped, set := pol.FilterEnv(env)
	dropped = append(dropped, own...)
	slices.Sort(dropped)
	dropped = slices.Compact(dropped)
	child := filtered
	if pol.Mode != policy.Enforce {
		child = withSet(env, pol.Env.Set)
	}
	// The supervisor's own variables: the target's when the user changes,
	// else the invoking user's, restored if the allowlist dropped them.
	var restored []string
	if !t.Switch {
		for _, name := range supervisorEnv {
			if lookupEnv(child, name) == "" {
				if v := lookupEnv(env, name); v != "" {
					child = append(child, name+"="+v)
					restored = append(restored, name)
				}
			}
		}
	} else {
		restored = supervisorEnv
	}
	child = childEnv(child, t)
	// The child always has the supervisor's variables: not dropped, in
	// either mode.
	dropped = slices.DeleteFunc(dropped, func(n string) bool { return slices.Contains(supervisorEnv, n) })
	set = append(set, restored...)
	slices.Sort(set)
	set = slices.Compact(set)

	// Values the child has through a kept, set or supervisor variable are
	// not secrets to hide from it; in observe mode the rest of its
	// environment still is, in the record.
	has := map[string]bool{}
	for _, kv := range append(filtered, childEnv(nil, t)...) {
		_, v, _ := strings.Cut(kv, "=")
		has[v] = true
	}
	for _, name := range supervisorEnv {
		has[lookupEnv(child, name)] = true
	}
	var out []redact.Dropped
	for _, kv := range all {
		name, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" || has[v] || !isOwnEnv(name) && (pol.AllowsEnv(name) || slices.Contains(supervisorEnv, name)) {
			continue
		}
		out = append(out, redact.Dropped{Name: name, Value: v})
	}
	ev := event.EnvFiltered{
		Header:  event.Header{Time: now},
		Kept:    kept,
		Dropped: dropped,
		Set:     set,
	}
	return child, ev, out
}

// isOwnEnv: agentwatch's own variables (AGENTWATCH_STORE, the profiling
// switches), which the child never gets.
func isOwnEnv(name string) bool { return strings.HasPrefix(name, "AGENTWATCH_") }

// withSet is env with env.set applied: overridden names replaced in place,
// new names appended (sorted, so the environment is reproducible).
func withSet(env []string, set map[string]string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, over := set[name]; !over {
			out = append(out, kv)
		}
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		out = append(out, k+"="+set[k])
	}
	return out
}

// publicMetadata is what the run shows anyway and the child could not
// choose: the working directory and workspace, the user and home, the
// repository URL, branch and commit taken before the child started. A
// dropped value inside one of them is an identifier, not a secret
// (redact.Secrets), unless it has a credential's shape.
func publicMetadata(info recorder.RunInfo, dir string) []string {
	pub := []string{dir, info.Workspace, info.Home, info.User}
	if b := info.Before; b != nil {
		pub = append(pub, b.Root, b.RemoteURL, b.Branch, b.Head)
	}
	// The CI job's run, pipeline and repository, and the labels: recorded
	// on purpose, chosen by the operator's side (ci.go).
	for _, k := range slices.Sorted(maps.Keys(info.CI)) {
		pub = append(pub, info.CI[k])
	}
	for _, k := range slices.Sorted(maps.Keys(info.Attributes)) {
		pub = append(pub, info.Attributes[k])
	}
	return pub
}
