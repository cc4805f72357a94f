package recorder

import (
	"strconv"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
)

// BenchmarkFileLoop is the supervisor's share of `make bench`'s file loop
// without the kernel: one process creating and deleting distinct
// workspace files (two events each), Finish included (the file list, its
// redaction, its digest). The figure is per event.
func BenchmarkFileLoop(b *testing.B) {
	info := runInfo()
	info.Policy = policy.Default()
	rec := New(info)
	rec.Add(exec(1, 100, 1, "/usr/bin/gen", ws, "gen", "files"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := ws + "/fl/f" + strconv.Itoa(i)
		rec.Add(file(2, 100, event.FileCreate, p))
		rec.Add(file(3, 100, event.FileDelete, p))
	}
	rec.Add(exit(4, 100, 0, 0))
	rec.Finish(End{Time: at(5)})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/event")
}
