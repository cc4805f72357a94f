package ebpf

import (
	"bytes"
	"fmt"
	"strings"
)

// The agent's tool-call context: the agent tells the commands it runs
// which tool call they belong to through their environment, and the
// sensor reads the variables named in Config.ContextVars, and only those,
// out of the environment record the kernel side copies at exec (see
// env_rec): so even a process that lives a millisecond has its context,
// and the child's memory is never read from /proc.

// traceParentVar is the W3C trace-context variable: its value fills
// event.Exec.TraceParent; every other context variable is a tool-call id.
const traceParentVar = "TRACEPARENT"

// maxContextValue keeps id-sized values: a traceparent is 55 bytes, a
// tool call id a few dozen; anything long is not what these variables
// carry.
const maxContextValue = 256

// contextVar is one variable of Config.ContextVars, as the prefix its
// entries start with.
type contextVar struct {
	prefix      []byte // "NAME="
	traceParent bool
}

func contextVars(names []string) ([]contextVar, error) {
	var vars []contextVar
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, "=\x00") {
			return nil, fmt.Errorf("starting eBPF sensor: context variable %q is not a variable name", n)
		}
		vars = append(vars, contextVar{prefix: []byte(n + "="), traceParent: n == traceParentVar})
	}
	return vars, nil
}

// execContext picks the tool-call context out of an exec'd image's
// environment entries. A variable given twice takes its later value.
func execContext(vars []contextVar, env [][]byte) (traceParent, toolCallID string) {
	for _, kv := range env {
		for _, v := range vars {
			if !bytes.HasPrefix(kv, v.prefix) {
				continue
			}
			if val := boundedValue(kv[len(v.prefix):]); v.traceParent {
				traceParent = val
			} else {
				toolCallID = val
			}
		}
	}
	return traceParent, toolCallID
}

func boundedValue(v []byte) string {
	if len(v) > maxContextValue {
		return ""
	}
	return strings.ToValidUTF8(string(v), "")
}
