// Package e2e holds the end-to-end tests that wrap the real Claude Code CLI
// (installed from npm by scripts/install-claude.sh) driven by a scripted
// model server (fakemodel) on loopback: first without agentwatch, to prove
// the harness, then under `agentwatch run`, asserting the trace.
//
// The tests are privileged (privtest.Require): they create a test user and
// run claude as that user, as a developer would. The package has no
// non-test code and must not be imported.
package e2e
