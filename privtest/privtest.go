// Package privtest gates the privileged tests (real eBPF, cgroups, users,
// network namespaces). A test calls Require first: without root it skips —
// unless CI=true or AGENTWATCH_TEST_BPF=1, where a skip would hide a
// regression, so it fails instead.
package privtest

import (
	"os"
	"testing"
)

// Strict reports whether privileged tests must run (CI, or asked for).
func Strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("AGENTWATCH_TEST_BPF") == "1"
}

// Require skips t when the process is not root, or fails it in strict mode.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if Strict() {
		t.Fatal("privileged test cannot run: not root (CI=true or AGENTWATCH_TEST_BPF=1 forbids skipping)")
	}
	t.Skip("privileged test: not root")
}
