package ebpf

import (
	"bytes"
	"strings"
	"testing"
)

func TestToolContextFromEnviron(t *testing.T) {
	vars, err := contextVars([]string{"TRACEPARENT", "CODEX_TOOL_CALL_ID"})
	if err != nil {
		t.Fatal(err)
	}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name, environ, tp, id string
	}{
		{"claude bash tool", "PATH=/bin\x00TRACEPARENT=" + tp + "\x00HOME=/h\x00", tp, ""},
		{"codex", "CODEX_TOOL_CALL_ID=call_8f2\x00AWS_SECRET_ACCESS_KEY=x", "", "call_8f2"},
		{"last without NUL", "A=1\x00TRACEPARENT=" + tp, tp, ""},
		{"names are exact", "XTRACEPARENT=1\x00TRACEPARENTS=2\x00MY_CODEX_TOOL_CALL_ID=3", "", ""},
		{"oversized value ignored", "TRACEPARENT=" + strings.Repeat("a", 300), "", ""},
		{"empty", "", "", ""},
	} {
		gotTP, gotID := execContext(vars, bytes.Split([]byte(tc.environ), []byte{0}))
		if gotTP != tc.tp || gotID != tc.id {
			t.Errorf("%s: got (%q, %q), want (%q, %q)", tc.name, gotTP, gotID, tc.tp, tc.id)
		}
	}
}

func TestContextVarsRejectsNonNames(t *testing.T) {
	for _, n := range []string{"", "A=B", "A\x00B"} {
		if _, err := contextVars([]string{"TRACEPARENT", n}); err == nil {
			t.Errorf("context variable %q accepted", n)
		}
	}
}
