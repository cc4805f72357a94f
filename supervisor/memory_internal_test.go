package supervisor

import (
	"os"
	"runtime/debug"
	"testing"
)

// The soft limit never falls under memoryLimit and stays half again above
// a larger live heap, so the collector never runs without pause.
func TestLimitFor(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int64
	}{
		{0, memoryLimit},
		{40 << 20, memoryLimit},
		{memoryLimit * 2 / 3, memoryLimit},
		{100 << 20, 150 << 20},
		{1 << 30, 3 << 29},
	} {
		if got := limitFor(tt.live); got != tt.want {
			t.Errorf("limitFor(%d) = %d, want %d", tt.live, got, tt.want)
		}
	}
}

func TestLimitMemory(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // unset below: LookupEnv must see it absent
	t.Cleanup(func() { debug.SetMemoryLimit(-1) })
	if err := os.Unsetenv("GOMEMLIMIT"); err != nil {
		t.Fatal(err)
	}
	stop := limitMemory()
	if got := debug.SetMemoryLimit(-1); got != memoryLimit {
		t.Errorf("limit while running = %d, want %d", got, memoryLimit)
	}
	stop()
	if got := debug.SetMemoryLimit(-1); got == memoryLimit {
		t.Error("stop left the limit in place")
	}
}
