package policy

import (
	"slices"
	"strings"
)

// AllowsEnv reports whether the variable name is kept by env.allow: an exact
// name, a PREFIX* pattern, or * (everything).
func (p *Policy) AllowsEnv(name string) bool {
	if p == nil {
		return true
	}
	for _, a := range p.Env.Allow {
		if prefix, ok := strings.CutSuffix(a, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == a {
			return true
		}
	}
	return false
}

// FilterEnv builds the child's environment from environ ("NAME=value"
// entries): variables env.allow keeps, in their order, then env.set added
// or overriding. kept, dropped and set are sorted variable NAMES, never
// values: they are what the run record may show. A name both dropped and
// set is in both lists (its original value was dropped). Entries without
// '=' are dropped under their whole text, which holds no value to leak.
//
// Mode does not matter here: whether the child gets out (enforce) or its
// full environment (observe) is the supervisor's choice.
func (p *Policy) FilterEnv(environ []string) (out []string, kept, dropped, set []string) {
	var setMap map[string]string
	if p != nil {
		setMap = p.Env.Set
	}
	for _, kv := range environ {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			dropped = append(dropped, kv)
			continue
		}
		if !p.AllowsEnv(name) {
			dropped = append(dropped, name)
			continue
		}
		if _, over := setMap[name]; over {
			continue
		}
		out = append(out, kv)
		kept = append(kept, name)
	}
	for _, name := range sortedMapKeys(setMap) {
		out = append(out, name+"="+setMap[name])
		set = append(set, name)
	}
	return out, uniqSorted(kept), uniqSorted(dropped), set
}

// DroppedValues returns the values of the variables FilterEnv drops from
// environ, for the recorder to redact wherever they show up (a command line
// that echoes a secret the child was not given, or was given in observe
// mode). Left out, because redacting them would wreck the trace and they
// are not secrets:
//   - values shorter than MinRedactedValue bytes ("1", "true", "dev"):
//     replacing every "true" in every command line protects nothing;
//   - absolute paths and path lists (PWD, OLDPWD, SSH_AUTH_SOCK,
//     XDG_RUNTIME_DIR): they name where files are, and every file path in
//     the workspace would be redacted;
//   - values the child legitimately has through a kept or set variable.
func (p *Policy) DroppedValues(environ []string) []string {
	out, _, _, _ := p.FilterEnv(environ)
	legit := map[string]bool{}
	for _, kv := range out {
		_, v, _ := strings.Cut(kv, "=")
		legit[v] = true
	}
	var vals []string
	for _, kv := range environ {
		name, v, ok := strings.Cut(kv, "=")
		if !ok || p.AllowsEnv(name) || len(v) < MinRedactedValue || legit[v] || isPathList(v) {
			continue
		}
		vals = append(vals, v)
	}
	return uniqSorted(vals)
}

// MinRedactedValue is the shortest dropped value DroppedValues returns.
// API keys and tokens are far longer.
const MinRedactedValue = 8

// isPathList reports whether v is an absolute path or a ':'-separated list
// of them, with no blanks (a command line with arguments is not a path).
func isPathList(v string) bool {
	for _, part := range strings.Split(v, ":") {
		if !strings.HasPrefix(part, "/") || strings.ContainsAny(part, " \t\n") {
			return false
		}
	}
	return true
}

func sortedMapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func uniqSorted(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
