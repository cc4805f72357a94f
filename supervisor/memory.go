package supervisor

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryLimit is the soft limit of the supervisor's Go heap. What a run
// keeps is bounded (the recorder's span budgets, a few map entries per
// distinct path); what it throws away while finishing (a 100,000-path
// file list redacted, sorted, encoded and stored) is not, and with the
// default GOGC the heap doubles over what is live before it is collected.
// The limit makes the collector run earlier instead.
//
// A fixed limit below the live heap would have the collector run without
// pause (a run of 300,000 files keeps some 100 MB live), so the limit
// follows the live heap: never under memoryLimit, else half again what is
// live (GOGC 50 for the large run). GOMEMLIMIT, when set, is left to
// decide.
const (
	memoryLimit    = 80 << 20
	memoryInterval = 250 * time.Millisecond
)

// limitMemory sets the soft limit and keeps it above the live heap until
// stop is called.
func limitMemory() (stop func()) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return func() {}
	}
	debug.SetMemoryLimit(memoryLimit)
	done := make(chan struct{})
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		t := time.NewTicker(memoryInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				return // the runtime no longer reports it: keep the fixed limit
			}
			debug.SetMemoryLimit(limitFor(sample[0].Value.Uint64()))
		}
	}()
	return func() {
		close(done)
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

// limitFor is the soft limit for a live heap of live bytes.
func limitFor(live uint64) int64 {
	return max(memoryLimit, int64(live+live/2))
}
