// Package privtest gates the privileged tests (real eBPF, cgroups, users,
// network namespaces) and holds the fixtures they share: the unprivileged
// test users (User) and a fake upstream resolver (StartDNS).
//
// A privileged test calls Require first. Under -short (make test-short) it
// always skips, in strict mode too: a short run promises to need no root,
// no users and no kernel features. Otherwise, without root it skips —
// unless CI=true or AGENTWATCH_TEST_BPF=1, where a skip would hide a
// regression, so it fails instead.
//
// privtest must not import agentwatch packages: every test package,
// internal tests included, imports it.
package privtest

import (
	"os"
	"testing"
)

// Strict reports whether privileged tests must run (CI, or asked for).
func Strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("AGENTWATCH_TEST_BPF") == "1"
}

// Require skips t under -short or when the process is not root, or fails
// it when not root in strict mode.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("privileged test: skipped with -short")
	}
	if os.Geteuid() == 0 {
		return
	}
	if Strict() {
		t.Fatal("privileged test cannot run: not root (CI=true or AGENTWATCH_TEST_BPF=1 forbids skipping)")
	}
	t.Skip("privileged test: not root")
}
