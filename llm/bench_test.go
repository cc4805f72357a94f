package llm

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkAddedLatency measures what the proxy adds on loopback, direct and
// proxied requests alternating against the same scripted model: time to
// the first byte of a streamed response, and time to the whole of a
// non-streamed one. Reported as medians and their ratio (the goal:
// under 1 ms added at the median). Quote with:
//
//	go test -run '^$' -bench AddedLatency -benchtime 2000x ./llm/
func BenchmarkAddedLatency(b *testing.B) {
	for _, tc := range []struct {
		name   string
		stream bool
	}{{"stream-first-byte", true}, {"json-whole", false}} {
		b.Run(tc.name, func(b *testing.B) {
			up := startFake(b)
			p, calls := startProxy(b, Config{Upstreams: map[string]string{Anthropic: up.URL()}})
			go func() {
				for range calls.ch {
				}
			}()
			body := claudeRequest(tc.stream)
			direct, proxied := &http.Client{Transport: &http.Transport{}}, &http.Client{Transport: &http.Transport{}}
			one := func(c *http.Client, base string) time.Duration {
				req, _ := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(body))
				for k, v := range claudeHeaders {
					req.Header.Set(k, v)
				}
				start := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var d time.Duration
				if tc.stream {
					br := bufio.NewReader(resp.Body)
					if _, err := br.ReadByte(); err != nil {
						b.Fatal(err)
					}
					d = time.Since(start)
					io.Copy(io.Discard, br)
				} else {
					io.Copy(io.Discard, resp.Body)
					d = time.Since(start)
				}
				resp.Body.Close()
				return d
			}
			one(direct, up.URL()) // warm both connections
			one(proxied, p.URL(Anthropic))
			var ds, ps []time.Duration
			b.ResetTimer()
			for range b.N {
				ds = append(ds, one(direct, up.URL()))
				ps = append(ps, one(proxied, p.URL(Anthropic)))
			}
			b.StopTimer()
			md, mp := median(ds), median(ps)
			b.ReportMetric(float64(md.Microseconds()), "direct-µs")
			b.ReportMetric(float64(mp.Microseconds()), "proxied-µs")
			b.ReportMetric(float64((mp - md).Microseconds()), "added-µs")
			b.ReportMetric(float64(mp)/float64(md), "ratio")
		})
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
