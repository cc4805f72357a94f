package main

// Model-call proxy cost: the time to the first byte of a streamed Messages
// response and to the whole of a non-streamed one, through the run's
// metering proxy (as `agentwatch run` wires it: sock_diag pid lookup and
// metering included) against the same calls straight to the server. The
// server is the scripted fakemodel on loopback; the generator times each
// call itself and reports medians, so agentwatch's start and drain are not
// in the figures.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/fakemodel"
)

// llmTiming is what one llmloop run reports (microseconds, medians).
type llmTiming struct {
	Elapsed    float64 `json:"elapsed_seconds"`
	FirstByte  float64 `json:"stream_first_byte_us"`
	StreamDone float64 `json:"stream_whole_us"`
	JSONWhole  float64 `json:"json_whole_us"`
}

// llmProxy prints the added latency as ratios, median of reps runs of n
// calls of each kind.
func (h *harness) llmProxy(n, reps int) error {
	fmt.Printf("== model-call proxy: %d streamed + %d JSON Messages calls on loopback (median per call)\n", n, n)
	srv := fakemodel.New(fakemodel.TextTurn("ok", fakemodel.Usage{InputTokens: 1200, CacheReadInputTokens: 800, OutputTokens: 40}))
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Close()
	argv := []string{h.self, "gen", "llmloop", strconv.Itoa(n)}
	var plain, wrapped []llmTiming
	for range reps {
		// The same variable both ways: the user's ANTHROPIC_BASE_URL is the
		// server; under agentwatch the child gets the proxy instead.
		os.Setenv("ANTHROPIC_BASE_URL", srv.URL())
		if s, err := h.run(argv); err == nil {
			plain = append(plain, parseTiming(s.out))
		} else {
			fmt.Println("  direct failed:", err)
		}
		if s, err := h.run(h.wrap(h.traceFile(), argv)); err == nil {
			wrapped = append(wrapped, parseTiming(s.out))
		} else {
			fmt.Println("  wrapped failed:", err)
		}
	}
	os.Unsetenv("ANTHROPIC_BASE_URL")
	if len(plain) == 0 || len(wrapped) == 0 {
		fmt.Println("  (not enough samples)")
		return nil
	}
	for _, m := range []struct {
		name string
		of   func(llmTiming) float64
	}{
		{"stream, first byte", func(t llmTiming) float64 { return t.FirstByte }},
		{"stream, whole", func(t llmTiming) float64 { return t.StreamDone }},
		{"JSON, whole", func(t llmTiming) float64 { return t.JSONWhole }},
	} {
		p, q := medianOf(plain, m.of), medianOf(wrapped, m.of)
		fmt.Printf("  %-20s proxied/direct %.3f   added %+.0f µs per call (direct %.0f µs)\n", m.name, q/p, q-p, p)
	}
	fmt.Println()
	return nil
}

func parseTiming(out []byte) llmTiming {
	var t llmTiming
	if line := lastJSONLine(out); line != nil {
		json.Unmarshal(line, &t)
	}
	return t
}

func medianOf(ts []llmTiming, of func(llmTiming) float64) float64 {
	v := make([]float64, len(ts))
	for i, t := range ts {
		v[i] = of(t)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// llmGen is the workload: n streamed and n JSON calls to
// $ANTHROPIC_BASE_URL/v1/messages on one keep-alive connection, as an SDK
// makes them.
func llmGen(n int) error {
	base := os.Getenv("ANTHROPIC_BASE_URL")
	if base == "" {
		return fmt.Errorf("gen llmloop: ANTHROPIC_BASE_URL is not set")
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	body := func(stream bool) string {
		return `{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":` + strconv.FormatBool(stream) +
			`,"system":"You are a benchmark.","tools":[{"name":"Bash","input_schema":{"type":"object"}}],` +
			`"messages":[{"role":"user","content":"` + strings.Repeat("context ", 512) + `"}]}`
	}
	call := func(stream bool) (first, whole time.Duration, err error) {
		req, _ := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(body(stream)))
		req.Header.Set("content-type", "application/json")
		req.Header.Set("anthropic-version", "2023-06-01")
		req.Header.Set("x-api-key", "sk-ant-bench")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadByte(); err != nil {
			return 0, 0, err
		}
		first = time.Since(start)
		if _, err := io.Copy(io.Discard, br); err != nil {
			return 0, 0, err
		}
		if resp.StatusCode != 200 {
			return 0, 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return first, time.Since(start), nil
	}
	for _, s := range []bool{true, false} { // warm up the connection, fail loudly
		if _, _, err := call(s); err != nil {
			return err
		}
	}
	var fb, sw, jw []float64
	start := time.Now()
	for range n {
		f, w, err := call(true)
		if err != nil {
			return err
		}
		fb, sw = append(fb, us(f)), append(sw, us(w))
		if _, w, err = call(false); err != nil {
			return err
		}
		jw = append(jw, us(w))
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	b, _ := json.Marshal(llmTiming{Elapsed: time.Since(start).Seconds(), FirstByte: med(fb), StreamDone: med(sw), JSONWhole: med(jw)})
	fmt.Println(string(b))
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
