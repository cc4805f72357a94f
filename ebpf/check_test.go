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

// Both program sets load from one decode of the kernel's BTF, and releasing
// the cache drops it.
func TestSharedKernelTypes(t *testing.T) {
	privtest.Require(t)
	PreloadKernelTypes()
	c := loadOptions().Cache
	if err := Check(); err != nil {
		t.Fatalf("%+v", err)
	}
	if err := CheckNet(); err != nil {
		t.Fatalf("%+v", err)
	}
	if got := loadOptions().Cache; got != c {
		t.Fatal("the second load did not use the shared cache")
	}
	ReleaseKernelTypes()
	if kernelTypes != nil {
		t.Fatal("ReleaseKernelTypes kept the cache")
	}
}
