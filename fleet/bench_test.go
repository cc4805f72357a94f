package fleet

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/agentwatch/agentwatch/store"
)

// BenchmarkBuild100k: the report's own computation over 100,000 runs'
// facts (what store.Facts returns; its own cost is store's
// BenchmarkFacts100k and BenchmarkFactsPostgres100k).
func BenchmarkBuild100k(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	teams := []string{"payments", "search", "platform", "mobile", "data", "infra", "web", "security"}
	facts := make([]store.Facts, 100_000)
	for i := range facts {
		facts[i] = fact(fmt.Sprintf("r%06d", i), i, func(f *store.Facts) {
			priced(rng.Float64() * 2)(f)
			f.Team, f.Repo, f.Org = teams[rng.IntN(len(teams))], fmt.Sprintf("acme/r%d", rng.IntN(40)), "acme"
			f.SessionID = fmt.Sprintf("s%d", i/3)
			f.Model = "claude-opus-5-5"
			f.ChangedCode = rng.IntN(3)
			f.Missing = []string{"review", "pr_link"}
			if rng.IntN(10) == 0 {
				f.FailureClass = "test_failure"
			}
			if rng.IntN(20) == 0 {
				f.PRURL = fmt.Sprintf("https://github.com/acme/r/pull/%d", i/20)
			}
		})
	}
	b.ResetTimer()
	for range b.N {
		Build(facts, Options{})
	}
}
