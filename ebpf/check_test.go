package ebpf

import (
	"testing"

	"github.com/agentwatch/agentwatch/privtest"
)

// Loading every program through the verifier is the single most valuable
// privileged test: it is what breaks first on another kernel.
func TestCheckLoadsEveryProgram(t *testing.T) {
	privtest.Require(t)
	if err := Check(); err != nil {
		t.Fatalf("%+v", err)
	}
}
