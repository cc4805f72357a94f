// Command bench measures agentwatch's overhead and capture quality as
// ratios taken side by side in one run (wrapped / unwrapped, agentwatch /
// strace -f), because absolute times on a shared 2-core machine are noise.
// `make bench` runs it as root. It is also its own workload generator
// (`bench gen ...`), so the wrapped child and the unwrapped one are the same
// program.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/telemetry/otlp"
	"go.opentelemetry.io/otel/attribute"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "gen" {
		if err := gen(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench gen:", err)
			os.Exit(1)
		}
		return
	}
	if err := bench(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type harness struct {
	agentwatch string
	self       string
	work       string // workspace for every workload
	store      string
	n          int      // trace file counter
	flags      []string // extra `agentwatch run` flags for the next measurements
}

func bench() error {
	aw := flag.String("agentwatch", "bin/agentwatch", "agentwatch binary")
	reps := flag.Int("reps", 5, "repetitions per overhead measurement (median reported)")
	only := flag.String("only", "", "run one section: exec, llm (the model-call proxy), startup, files (the file loop with and without fswatch), ceiling, soak")
	soakFor := flag.Duration("soak", 10*time.Minute, "how long the soak section's busy agent loop runs (its RSS slope is the figure)")
	flag.Parse()
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the eBPF sensors need it")
	}
	awPath, err := filepath.Abs(*aw)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The bench binary may live in a private build cache; copy it where the
	// child can exec it.
	tmp, err := os.MkdirTemp("", "agentwatch-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	genBin := filepath.Join(tmp, "bench")
	if err := copyFile(self, genBin); err != nil {
		return err
	}
	h := &harness{agentwatch: awPath, self: genBin, work: filepath.Join(tmp, "ws"), store: filepath.Join(tmp, "store")}
	os.MkdirAll(h.work, 0o755)
	if _, err := exec.LookPath("strace"); err != nil {
		return fmt.Errorf("strace is needed as the reference peer: apt-get install strace")
	}

	fmt.Printf("agentwatch bench — ratios measured side by side, median of %d\n\n", *reps)
	switch *only {
	case "":
	case "llm":
		return h.llmProxy(300, *reps)
	case "exec":
		h.overhead("exec loop (2000 × fork+exec /bin/true from sh)", []string{h.self, "gen", "execloop", "2000"}, *reps)
		return nil
	case "startup":
		return h.startup(10)
	case "ceiling":
		return h.ceiling()
	case "soak":
		return h.soak(*soakFor)
	case "files":
		h.overhead("file loop (20,000 × create+write+delete)", []string{h.self, "gen", "files", h.work, "20000"}, *reps)
		h.flags = []string{"--no-fswatch"}
		h.overhead("file loop, --no-fswatch (eBPF only)", []string{h.self, "gen", "files", h.work, "20000"}, *reps)
		return nil
	default:
		return fmt.Errorf("-only %q: want exec, files, startup, llm, ceiling or soak", *only)
	}
	h.overhead("exec loop (2000 × fork+exec /bin/true from sh)", []string{h.self, "gen", "execloop", "2000"}, *reps)
	h.overhead("file loop (20,000 × create+write+delete)", []string{h.self, "gen", "files", h.work, "20000"}, *reps)
	// The same loop without the inotify cross-check: what eBPF alone costs,
	// and by difference what fswatch does.
	h.flags = []string{"--no-fswatch"}
	h.overhead("file loop, --no-fswatch (eBPF only)", []string{h.self, "gen", "files", h.work, "20000"}, *reps)
	h.flags = nil
	if err := h.startup(10); err != nil {
		return err
	}
	if err := h.burst(3000); err != nil {
		return err
	}
	if err := h.capture(200); err != nil {
		return err
	}
	if err := h.network(500, *reps); err != nil {
		return err
	}
	if err := h.llmProxy(300, *reps); err != nil {
		return err
	}
	if err := h.ceiling(); err != nil {
		return err
	}
	return h.soak(*soakFor)
}

type sample struct {
	wall     time.Duration // whole command, start to finish
	workload float64       // seconds, as the generator measured itself
	peakRSS  int64         // bytes, of the top process (agentwatch or strace)
	out      []byte
}

func (h *harness) traceFile() string {
	h.n++
	return filepath.Join(filepath.Dir(h.work), fmt.Sprintf("trace-%d.json", h.n))
}

func (h *harness) wrap(traceFile string, argv []string) []string {
	args := append([]string{h.agentwatch, "run", "--user", "root", "--store", h.store, "--trace-file", traceFile}, h.flags...)
	return append(append(args, "--"), argv...)
}

func (h *harness) run(argv []string) (sample, error) { return h.runIn(h.work, argv) }

func (h *harness) runIn(dir string, argv []string) (sample, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	peak := pollPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	s := sample{wall: time.Since(start), peakRSS: <-peak, out: out.Bytes()}
	if err != nil {
		return s, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	var r struct {
		Elapsed float64 `json:"elapsed_seconds"`
	}
	if line := lastJSONLine(out.Bytes()); line != nil {
		json.Unmarshal(line, &r)
	}
	s.workload = r.Elapsed
	return s, nil
}

// pollPeakRSS reads VmHWM of pid until it exits: the same method for
// agentwatch and strace, so their peaks compare fairly.
func pollPeakRSS(pid int) <-chan int64 {
	ch := make(chan int64, 1)
	go func() {
		var peak int64
		path := fmt.Sprintf("/proc/%d/status", pid)
		for {
			b, err := os.ReadFile(path)
			if err != nil {
				break
			}
			if v := statusKB(b, "VmHWM:"); v*1024 > peak {
				peak = v * 1024
			}
			if bytes.Contains(b, []byte("State:\tZ")) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		ch <- peak
	}()
	return ch
}

func (h *harness) overhead(name string, argv []string, reps int) {
	fmt.Printf("== %s\n", name)
	var plain, wrapped, strace []sample
	for i := 0; i < reps; i++ {
		if s, err := h.run(argv); err == nil {
			plain = append(plain, s)
		} else {
			fmt.Println("  unwrapped failed:", err)
		}
		if s, err := h.run(h.wrap(h.traceFile(), argv)); err == nil {
			wrapped = append(wrapped, s)
		} else {
			fmt.Println("  wrapped failed:", err)
		}
		if s, err := h.run(append([]string{"strace", "-f", "-qq", "-o", "/dev/null", "--"}, argv...)); err == nil {
			strace = append(strace, s)
		} else {
			fmt.Println("  strace failed:", err)
		}
	}
	if len(plain) == 0 || len(wrapped) == 0 || len(strace) == 0 {
		fmt.Println("  (not enough samples)")
		return
	}
	pw, ww, sw := medianWork(plain), medianWork(wrapped), medianWork(strace)
	pt, wt, st := medianWall(plain), medianWall(wrapped), medianWall(strace)
	fmt.Printf("  workload time  agentwatch/unwrapped %.3f   strace/unwrapped %.3f   agentwatch/strace %.3f\n", ww/pw, sw/pw, ww/sw)
	fmt.Printf("  whole command  agentwatch/unwrapped %.3f   strace/unwrapped %.3f   (includes agentwatch start, drain, store)\n", wt/pt, st/pt)
	fmt.Printf("  peak RSS       agentwatch %.1f MB   strace %.1f MB\n\n", mb(maxRSS(wrapped)), mb(maxRSS(strace)))
}

// startup times `agentwatch run -- true` in the plain workspace and in a
// git repository, where the start and end snapshots (git processes) add
// to it — where agents really run.
func (h *harness) startup(reps int) error {
	fmt.Println("== agentwatch run -- true, start to finish")
	repo := filepath.Join(filepath.Dir(h.work), "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("git", "init", "-q", repo).CombinedOutput(); err != nil {
		return fmt.Errorf("git init: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(repo, "main.go"), []byte("package main\n"), 0o644); err != nil {
		return err
	}
	commit := exec.Command("git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-C", repo, "commit", "-qm", "init", "--allow-empty")
	if out, err := exec.Command("git", "-C", repo, "add", "-A").CombinedOutput(); err != nil {
		return fmt.Errorf("git add: %v: %s", err, out)
	}
	if out, err := commit.CombinedOutput(); err != nil {
		return fmt.Errorf("git commit: %v: %s", err, out)
	}
	for _, where := range []struct{ name, dir string }{{"plain directory", h.work}, {"git repository", repo}} {
		var plain, wrapped []sample
		for i := 0; i < reps; i++ {
			s, err := h.runIn(where.dir, []string{"/bin/true"})
			if err != nil {
				return err
			}
			plain = append(plain, s)
			s, err = h.runIn(where.dir, h.wrap(h.traceFile(), []string{"/bin/true"}))
			if err != nil {
				return err
			}
			wrapped = append(wrapped, s)
		}
		fmt.Printf("  %-16s median %.1f ms (unwrapped /bin/true %.1f ms)\n", where.name, medianWall(wrapped)*1000, medianWall(plain)*1000)
	}
	fmt.Println()
	return nil
}

func (h *harness) burst(n int) error {
	fmt.Printf("== burst: %d files created and deleted in the workspace\n", n)
	dir := filepath.Join(h.work, "burst")
	os.MkdirAll(dir, 0o755)
	tf := h.traceFile()
	if _, err := h.run(h.wrap(tf, []string{h.self, "gen", "files", dir, strconv.Itoa(n)})); err != nil {
		return err
	}
	tr, err := readTrace(tf)
	if err != nil {
		return err
	}
	re := regexp.MustCompile("^" + regexp.QuoteMeta(dir) + "/f[0-9]+$")
	paths := map[string]bool{}
	for _, s := range spansOf(tr, telemetry.SpanFileWrite) {
		if p := str(s, telemetry.FilePath); re.MatchString(p) {
			paths[p] = true
		}
	}
	fmt.Printf("  paths in trace %d / %d   events dropped %d\n\n", len(paths), n, dropped(tr))
	return nil
}

func (h *harness) capture(n int) error {
	fmt.Printf("== capture ratio: generator manifest (%d of each kind) vs trace\n", n)
	dir := filepath.Join(h.work, "mixed")
	os.MkdirAll(dir, 0o755)
	man := filepath.Join(filepath.Dir(h.work), "manifest.json")
	tf := h.traceFile()
	if _, err := h.run(h.wrap(tf, []string{h.self, "gen", "mixed", dir, strconv.Itoa(n), man})); err != nil {
		return err
	}
	var m manifest
	b, err := os.ReadFile(man)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	tr, err := readTrace(tf)
	if err != nil {
		return err
	}
	ops := map[string]map[string]bool{} // path -> operations seen
	for _, s := range spansOf(tr, telemetry.SpanFileWrite) {
		p := str(s, telemetry.FilePath)
		if ops[p] == nil {
			ops[p] = map[string]bool{}
		}
		if v, ok := s.Attr(telemetry.FileOperations); ok {
			for _, op := range v.AsStringSlice() {
				ops[p][op] = true
			}
		}
		ops[p][str(s, telemetry.FileOperation)] = true
	}
	args := map[string]bool{}
	ports := map[string]bool{}
	for _, s := range tr.Spans {
		if v, ok := s.Attr(telemetry.ProcessCommandArgs); ok {
			for _, a := range v.AsStringSlice() {
				args[a] = true
			}
		}
		if s.Name == telemetry.SpanNetworkCall {
			port, _ := s.Attr(telemetry.ServerPort)
			ports[fmt.Sprintf("%s:%d", str(&s, telemetry.NetworkPeerAddress), port.AsInt64())] = true
		}
	}
	ratio := func(kind string, want []string, have func(string) bool) {
		got := 0
		for _, w := range want {
			if have(w) {
				got++
			}
		}
		fmt.Printf("  %-8s %4d / %4d   %.3f\n", kind, got, len(want), float64(got)/float64(max(len(want), 1)))
	}
	ratio("exec", m.Execs, func(s string) bool { return args[s] })
	ratio("create", m.Creates, func(p string) bool { return ops[p]["create"] })
	ratio("write", m.Writes, func(p string) bool { return ops[p]["write"] || ops[p]["create"] && ops[p]["write"] })
	ratio("rename", m.Renames, func(p string) bool { return ops[p]["rename"] })
	ratio("unlink", m.Unlinks, func(p string) bool { return ops[p]["delete"] })
	ratio("connect", m.Connects, func(a string) bool { return ports[a] })
	fmt.Printf("  events dropped %d\n\n", dropped(tr))
	return nil
}

func (h *harness) ceiling() error {
	fmt.Println("== lossless ceiling: fchmod events from 2 workers on both cores, 5 s per step")
	dir := filepath.Join(h.work, "rate")
	os.MkdirAll(dir, 0o755)
	best := 0.0
	var bestCPU float64
	for _, r := range []int{250_000, 500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000} {
		tf := h.traceFile()
		s, err := h.run(h.wrap(tf, []string{h.self, "gen", "rate", dir, strconv.Itoa(r), "5", "2"}))
		if err != nil {
			return err
		}
		var g struct {
			Elapsed float64 `json:"elapsed_seconds"`
			Events  int     `json:"events"`
		}
		json.Unmarshal(lastJSONLine(s.out), &g)
		tr, err := readTrace(tf)
		if err != nil {
			return err
		}
		achieved := float64(g.Events) / g.Elapsed
		cpu := floatAttr(tr, telemetry.SupervisorCPUSeconds)
		d := dropped(tr)
		fmt.Printf("  target %8d/s  achieved %9.0f/s  dropped %d  supervisor CPU %.2f s (%.0f%% of one core)\n", r, achieved, d, cpu, 100*cpu/s.wall.Seconds())
		if d == 0 && achieved > best {
			best, bestCPU = achieved, 100*cpu/s.wall.Seconds()
		}
		if d > 0 {
			break
		}
	}
	fmt.Printf("  highest rate with 0 drops: %.0f events/s (supervisor %.0f%% of one core)\n", best, bestCPU)
	return nil
}

func readTrace(path string) (*telemetry.Trace, error) {
	reqs, err := export.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s: no trace", path)
	}
	return otlp.FromRequest(reqs[len(reqs)-1])
}

func spansOf(tr *telemetry.Trace, name string) []*telemetry.Span {
	var out []*telemetry.Span
	for i := range tr.Spans {
		if tr.Spans[i].Name == name {
			out = append(out, &tr.Spans[i])
		}
	}
	return out
}

func str(s *telemetry.Span, k attribute.Key) string {
	v, _ := s.Attr(k)
	return v.Emit()
}

func dropped(tr *telemetry.Trace) int64 {
	v, _ := tr.Root().Attr(telemetry.EventsDropped)
	return v.AsInt64()
}

func floatAttr(tr *telemetry.Trace, k attribute.Key) float64 {
	v, _ := tr.Root().Attr(k)
	return v.AsFloat64()
}

func medianWork(s []sample) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = s[i].workload
	}
	return median(v)
}

func medianWall(s []sample) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = s[i].wall.Seconds()
	}
	return median(v)
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func maxRSS(s []sample) int64 {
	var m int64
	for _, x := range s {
		m = max(m, x.peakRSS)
	}
	return m
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func statusKB(status []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func lastJSONLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if bytes.HasPrefix(lines[i], []byte("{")) {
			return lines[i]
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
