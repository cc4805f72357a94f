package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
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
	case "rate": // rate DIR PERSEC SECONDS WORKERS: chmod at a fixed rate
		return rate(args[1], atoi(args[2]), atof(args[3]), atoi(args[4]))
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
// syscall that makes one: no path lookup) at perSec in total, spread over
// workers goroutines locked to their own threads, for seconds.
func rate(dir string, perSec int, seconds float64, workers int) error {
	start := time.Now()
	deadline := start.Add(time.Duration(seconds * float64(time.Second)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for w := 0; w < workers; w++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("rate-%d", w)))
		if err != nil {
			return err
		}
		defer f.Close()
		fd := int(f.Fd())
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			per := float64(perSec) / float64(workers)
			n := 0
			for {
				now := time.Now()
				if !now.Before(deadline) {
					break
				}
				// Pace in slices of at most 1 ms of work, so a target
				// above what the machine can do ends on time.
				want := min(int(per*now.Sub(start).Seconds()), n+int(per/1000)+1)
				if n >= want {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				for ; n < want; n++ {
					unix.Fchmod(fd, 0o644)
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf(`{"elapsed_seconds":%f,"events":%d}`+"\n", el, total)
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
