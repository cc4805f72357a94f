package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// soak wraps a busy agent loop (exec, file writes and renames and
// deletes, a loopback connection, each iteration) for d and samples the
// supervisor's RSS once a second. A bounded supervisor is flat once warm:
// the figure is the slope of RSS over time after the first tenth (MB per
// minute, least squares) and the ratio of the last minute's RSS to the
// RSS at the end of warm-up, with the peak beside them.
func (h *harness) soak(d time.Duration) error {
	fmt.Printf("== soak: busy agent loop (exec + file writes + loopback connect) for %v under agentwatch\n", d)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	dir := filepath.Join(h.work, "soak")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tf := h.traceFile()
	argv := h.wrap(tf, []string{h.self, "gen", "busy", dir, strconv.FormatFloat(d.Seconds(), 'f', 1, 64), ln.Addr().String()})
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = h.work
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	samples := sampleRSS(cmd.Process.Pid, time.Second)
	waitErr := cmd.Wait()
	rss := <-samples
	if waitErr != nil {
		return fmt.Errorf("soak run: %w", waitErr)
	}
	var r struct {
		Iterations int     `json:"iterations"`
		Elapsed    float64 `json:"elapsed_seconds"`
	}
	if line := lastJSONLine(out.Bytes()); line != nil {
		json.Unmarshal(line, &r)
	}
	if len(rss) < 10 {
		return fmt.Errorf("soak: %d RSS samples, too few to judge", len(rss))
	}
	warm := len(rss) / 10
	slope := slopePerMinute(rss[warm:])
	var peak int64
	for _, s := range rss {
		peak = max(peak, s.rss)
	}
	lastMin := rss[max(warm, len(rss)-60):]
	var sum int64
	for _, s := range lastMin {
		sum += s.rss
	}
	ratio := float64(sum) / float64(len(lastMin)) / float64(rss[warm].rss)
	size := int64(0)
	if fi, err := os.Stat(tf); err == nil {
		size = fi.Size()
	}
	fmt.Printf("  %d iterations (%.0f per second of the loop), %d RSS samples over the run\n",
		r.Iterations, float64(r.Iterations)/max(r.Elapsed, 1e-9), len(rss))
	fmt.Printf("  supervisor RSS slope after warm-up %+.2f MB/min   last minute / end of warm-up %.3f   peak %.1f MB\n",
		slope, ratio, mb(peak))
	fmt.Printf("  trace %.2f MB for %d iterations (%.1f bytes per iteration)   whole command / loop %.3f\n\n",
		mb(size), r.Iterations, float64(size)/max(float64(r.Iterations), 1), time.Since(start).Seconds()/max(r.Elapsed, 1e-9))
	return nil
}

type rssSample struct {
	t   time.Duration
	rss int64 // bytes (VmRSS)
}

// sampleRSS reads VmRSS of pid every interval until it exits.
func sampleRSS(pid int, interval time.Duration) <-chan []rssSample {
	ch := make(chan []rssSample, 1)
	go func() {
		var out []rssSample
		path := fmt.Sprintf("/proc/%d/status", pid)
		start := time.Now()
		for {
			b, err := os.ReadFile(path)
			if err != nil || bytes.Contains(b, []byte("State:\tZ")) {
				break
			}
			out = append(out, rssSample{time.Since(start), statusKB(b, "VmRSS:") * 1024})
			time.Sleep(interval)
		}
		ch <- out
	}()
	return ch
}

// slopePerMinute is the least-squares slope of RSS over time, MB/min.
func slopePerMinute(s []rssSample) float64 {
	n := float64(len(s))
	var sx, sy, sxx, sxy float64
	for _, p := range s {
		x, y := p.t.Minutes(), mb(p.rss)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	if d := n*sxx - sx*sx; d != 0 {
		return (n*sxy - sx*sy) / d
	}
	return 0
}

// busyGen is the soak's child: `gen busy DIR SECONDS ADDR`. Each iteration
// execs /bin/true, writes a file of a rotating set of 1,000 names, renames
// it, deletes every third, and connects to ADDR; a bounded supervisor
// holds steady under it however long it runs.
func busyGen(dir string, seconds float64, addr string) error {
	start := time.Now()
	deadline := start.Add(time.Duration(seconds * float64(time.Second)))
	payload := []byte("agentwatch soak payload\n")
	n := 0
	for ; time.Now().Before(deadline); n++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			return err
		}
		p := filepath.Join(dir, "f"+strconv.Itoa(n%1000))
		if err := os.WriteFile(p, payload, 0o644); err != nil {
			return err
		}
		if err := os.Rename(p, p+".done"); err != nil {
			return err
		}
		if n%3 == 0 {
			os.Remove(p + ".done")
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Write(payload)
			c.Close()
		}
	}
	fmt.Printf(`{"iterations":%d,"elapsed_seconds":%f}`+"\n", n, time.Since(start).Seconds())
	return nil
}
