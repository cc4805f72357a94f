package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// manifest is what the generator did, written by the generator itself so
// the capture ratio compares the trace against ground truth.
type manifest struct {
	Execs    []string `json:"execs"`   // a unique marker argument per exec
	Creates  []string `json:"creates"` // absolute paths
	Writes   []string `json:"writes"`  // existing files opened for writing
	Renames  []string `json:"renames"` // source paths
	Unlinks  []string `json:"unlinks"`
	Connects []string `json:"connects"` // host:port, one per connection (distinct ports)
	Elapsed  float64  `json:"elapsed_seconds"`
}

// gen is the workload generator. It runs as the wrapped (or unwrapped)
// child and reports its own elapsed time on stdout as JSON.
func gen(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("gen: mode required")
	}
	switch args[0] {
	case "files": // files DIR N: create, write, delete N files
		dir, n := args[1], atoi(args[2])
		start := time.Now()
		buf := []byte("agentwatch bench payload\n")
		for i := 0; i < n; i++ {
			p := filepath.Join(dir, "f"+strconv.Itoa(i))
			fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return err
			}
			unix.Write(fd, buf)
			unix.Close(fd)
			if err := unix.Unlink(p); err != nil {
				return err
			}
		}
		return report(manifest{Elapsed: time.Since(start).Seconds()})
	case "keep": // keep DIR N: create N distinct files and leave them
		dir, n := args[1], atoi(args[2])
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := os.WriteFile(filepath.Join(dir, "k"+strconv.Itoa(i)), []byte("kept\n"), 0o644); err != nil {
				return err
			}
		}
		return report(manifest{Elapsed: time.Since(start).Seconds()})
	case "execloop": // execloop N: a shell loop that runs /bin/true N times
		start := time.Now()
		loop := "i=0; while [ $i -lt " + args[1] + " ]; do /bin/true; i=$((i+1)); done"
		cmd := exec.Command("/bin/sh", "-c", loop)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return err
		}
		return report(manifest{Elapsed: time.Since(start).Seconds()})
	case "mixed": // mixed DIR N MANIFEST: every kind of action, N of each
		return mixed(args[1], atoi(args[2]), args[3])
	case "dnsloop", "connloop": // dnsloop SERVER N | connloop ADDR N (netbench.go)
		return netGen(args[0], args[1], atoi(args[2]))
	case "llmloop": // llmloop N: N streamed and N JSON model calls to $ANTHROPIC_BASE_URL (llmbench.go)
		return llmGen(atoi(args[1]))
	case "busy": // busy DIR SECONDS ADDR: the soak's agent loop (soak.go)
		return busyGen(args[1], atof(args[2]), args[3])
	case "rate": // rate DIR PERSEC SECONDS WORKERS: fchmod at a fixed rate from WORKERS processes
		return rate(args[1], atoi(args[2]), atof(args[3]), atoi(args[4]))
	case "rate-worker": // rate-worker FILE PERSEC SECONDS START_UNIX_NANOS: one of rate's processes
		return rateWorker(args[1], atof(args[2]), atof(args[3]), time.Unix(0, int64(atoi(args[4]))))
	}
	return fmt.Errorf("gen: unknown mode %q", args[0])
}

func mixed(dir string, n int, manifestPath string) error {
	var m manifest
	start := time.Now()
	for i := 0; i < n; i++ {
		marker := fmt.Sprintf("agentwatch-bench-exec-%d", i)
		if err := exec.Command("/bin/true", marker).Run(); err != nil {
			return err
		}
		m.Execs = append(m.Execs, marker)
	}
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("created-%d", i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			return err
		}
		m.Creates = append(m.Creates, p)
	}
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("created-%d", i))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		f.Write([]byte("y"))
		f.Close()
		m.Writes = append(m.Writes, p)
	}
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("created-%d", i))
		if err := os.Rename(p, p+".renamed"); err != nil {
			return err
		}
		m.Renames = append(m.Renames, p)
	}
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("created-%d.renamed", i))
		if err := os.Remove(p); err != nil {
			return err
		}
		m.Unlinks = append(m.Unlinks, p)
	}
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		c.Close()
		ln.Close()
		m.Connects = append(m.Connects, ln.Addr().String())
	}
	m.Elapsed = time.Since(start).Seconds()
	b, _ := json.Marshal(m)
	if err := os.WriteFile(manifestPath, b, 0o644); err != nil {
		return err
	}
	return report(manifest{Elapsed: m.Elapsed})
}

// rate issues fchmod calls (one traced event each, and the cheapest
// syscall that makes one: no path lookup) at perSec in total for seconds,
// spread over workers processes (this binary again, `gen rate-worker`):
// goroutines of one process would share its runtime and scheduler, and the
// generator, not the supervisor, would set the ceiling.
func rate(dir string, perSec int, seconds float64, workers int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// A common start a little ahead, so the workers' paced intervals
	// coincide whatever their exec takes.
	start := time.Now().Add(100 * time.Millisecond)
	per := strconv.FormatFloat(float64(perSec)/float64(workers), 'f', -1, 64)
	cmds := make([]*exec.Cmd, workers)
	outs := make([]bytes.Buffer, workers)
	for w := range cmds {
		cmds[w] = exec.Command(self, "gen", "rate-worker", filepath.Join(dir, fmt.Sprintf("rate-%d", w)), per,
			strconv.FormatFloat(seconds, 'f', -1, 64), strconv.FormatInt(start.UnixNano(), 10))
		cmds[w].Stdout, cmds[w].Stderr = &outs[w], os.Stderr
		if err := cmds[w].Start(); err != nil {
			return err
		}
	}
	total, elapsed := 0, 0.0
	var errs []error
	for w, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("rate worker %d: %w", w, err))
			continue
		}
		var r struct {
			Elapsed float64 `json:"elapsed_seconds"`
			Events  int     `json:"events"`
		}
		if err := json.Unmarshal(lastJSONLine(outs[w].Bytes()), &r); err != nil {
			errs = append(errs, fmt.Errorf("rate worker %d: %w", w, err))
			continue
		}
		total += r.Events
		elapsed = max(elapsed, r.Elapsed)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf(`{"elapsed_seconds":%f,"events":%d}`+"\n", elapsed, total)
	return nil
}

// rateWorker is one process of rate: fchmod of its own file at perSec
// from start for seconds.
func rateWorker(path string, perSec, seconds float64, start time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	time.Sleep(time.Until(start))
	deadline := start.Add(time.Duration(seconds * float64(time.Second)))
	n := 0
	for {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		// Pace in slices of at most 1 ms of work, so a target above
		// what the machine can do ends on time.
		want := min(int(perSec*now.Sub(start).Seconds()), n+int(perSec/1000)+1)
		if n >= want {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for ; n < want; n++ {
			unix.Fchmod(fd, 0o644)
		}
	}
	fmt.Printf(`{"elapsed_seconds":%f,"events":%d}`+"\n", time.Since(start).Seconds(), n)
	return nil
}

func report(m manifest) error {
	fmt.Printf(`{"elapsed_seconds":%f}`+"\n", m.Elapsed)
	return nil
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func atof(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return f
}
