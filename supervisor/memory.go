package supervisor

import (
	"os"
	"runtime/debug"
)

// memoryLimit is the soft limit of the supervisor's Go heap. What a run
// keeps is bounded (the recorder's span budgets, a few map entries per
// distinct path); what it throws away while finishing (a 100,000-path
// file list redacted, sorted, encoded and stored) is not, and with the
// default GOGC the heap doubles over what is live before it is collected.
// The limit makes the collector run earlier instead; a run whose live heap
// exceeds it still works, at the cost of more GC (capped by the runtime at
// half the CPU). GOMEMLIMIT, when set, is left to decide.
const memoryLimit = 80 << 20

func limitMemory() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(memoryLimit)
	}
}
