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
	"slices"
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
	noPeers    bool     // workloads without strace -f and bpftrace (-peers=false)
}

// section is one part of the bench, selectable with -only NAME; `make
// bench` runs them all in this order.
type section struct {
	name, about string
	run         func() error
}

func bench() error {
	aw := flag.String("agentwatch", "bin/agentwatch", "agentwatch binary")
	reps := flag.Int("reps", 5, "repetitions per measurement (median reported); startup takes 10 unless set")
	soakFor := flag.Duration("soak", 10*time.Minute, "how long the soak section's busy agent loop runs (its RSS slope is the figure)")
	fleetN := flag.Int("fleet-runs", fleetRuns, "synthetic runs the fleet section's report is timed over")
	startupReps := 10
	h := &harness{}
	sections := []section{
		{"exec", "exec loop: overhead, supervisor CPU per exec, peak RSS", func() error { return h.execLoop(*reps) }},
		{"files", "file loop (eBPF alone, and --fswatch), 20,000 kept files' peak RSS", func() error { return h.fileLoop(*reps) }},
		{"startup", "run -- true: plain dir, git repo, 10,000-file repo and its end-of-run evidence", func() error { return h.startup(startupReps) }},
		{"burst", "3000 files created and deleted: paths in the trace", func() error { return h.burst(3000) }},
		{"capture", "generator manifest vs trace, every kind of action", func() error { return h.capture(200) }},
		{"network", "DNS lookups and TCP connects under enforcement", func() error { return h.network(500, *reps) }},
		{"llm", "the model-call proxy", func() error { return h.llmProxy(300, *reps) }},
		{"workloads", "C build, git, tar, go test: agentwatch, strace -f and bpftrace against unwrapped", func() error { return h.workloads(*reps) }},
		{"ceiling", "lossless event rate ceiling", func() error { return h.ceiling() }},
		{"fleet", "agentwatch report over 100,000 synthetic runs", func() error { return h.fleet(*fleetN, min(*reps, 3)) }},
		{"soak", "supervisor RSS over a long busy run", func() error { return h.soak(*soakFor) }},
	}
	var names []string
	usage := "run one section:"
	for _, s := range sections {
		names = append(names, s.name)
		usage += "\n  " + s.name + ": " + s.about
	}
	only := flag.String("only", "", usage)
	peers := flag.Bool("peers", true, "time the workloads under strace -f and bpftrace too (false: agentwatch against unwrapped only, for quicker iterations)")
	flag.Parse()
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "reps" {
			startupReps = *reps
		}
	})
	if *reps < 1 {
		return fmt.Errorf("-reps %d: want at least 1", *reps)
	}
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (choose a section with -only NAME)", flag.Arg(0))
	}
	run := sections
	if *only != "" {
		i := slices.Index(names, *only)
		if i < 0 {
			return fmt.Errorf("-only %q: want one of %s", *only, strings.Join(names, ", "))
		}
		run = sections[i : i+1]
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the eBPF sensors need it")
	}
	if _, err := exec.LookPath("strace"); err != nil {
		return fmt.Errorf("strace is needed as the reference peer: apt-get install strace")
	}
	awPath, err := filepath.Abs(*aw)
	if err != nil {
		return err
	}
	if _, err := os.Stat(awPath); err != nil {
		return fmt.Errorf("agentwatch binary: %w (make build)", err)
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
	*h = harness{agentwatch: awPath, self: filepath.Join(tmp, "bench"), work: filepath.Join(tmp, "ws"), store: filepath.Join(tmp, "store"), noPeers: !*peers}
	if err := copyFile(self, h.self); err != nil {
		return err
	}
	if err := os.MkdirAll(h.work, 0o755); err != nil {
		return err
	}

	fmt.Printf("agentwatch bench — ratios measured side by side, median of %d\n\n", *reps)
	for _, s := range run {
		if err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
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

// loop is a generator workload measured by overhead: wrapped, unwrapped
// and under strace -f, with the supervisor's CPU per unit of work.
type loop struct {
	name      string
	argv      []string
	units     int     // units of work per run (exec'd processes, file events)
	unit      string  // what one is
	cpuTarget float64 // µs of supervisor CPU per unit; 0: no target
	rssTarget float64 // MB of agentwatch peak RSS; 0: no target
}

// overhead runs l interleaved (unwrapped, wrapped, strace -f, and a wrapped
// /bin/true in the same workspace with the same flags), so that the
// supervisor CPU per unit is the run's less the fixed cost of any run:
// start, sensors' load, drain and store.
func (h *harness) overhead(l loop, reps int) {
	fmt.Printf("== %s\n", l.name)
	var plain, wrapped, strace []sample
	var cpu, fixed []float64
	wrappedCPU := func(argv []string, into *[]float64) (sample, error) {
		tf := h.traceFile()
		s, err := h.run(h.wrap(tf, argv))
		if err != nil {
			return s, err
		}
		tr, err := readTrace(tf)
		if err != nil {
			return s, err
		}
		c, err := supervisorCPU(tr)
		if err != nil {
			return s, err
		}
		*into = append(*into, c)
		return s, nil
	}
	for i := 0; i < reps; i++ {
		if s, err := h.run(l.argv); err == nil {
			plain = append(plain, s)
		} else {
			fmt.Println("  unwrapped failed:", err)
		}
		if s, err := wrappedCPU(l.argv, &cpu); err == nil {
			wrapped = append(wrapped, s)
		} else {
			fmt.Println("  wrapped failed:", err)
		}
		if s, err := h.run(append([]string{"strace", "-f", "-qq", "-o", "/dev/null", "--"}, l.argv...)); err == nil {
			strace = append(strace, s)
		} else {
			fmt.Println("  strace failed:", err)
		}
		if _, err := wrappedCPU([]string{"/bin/true"}, &fixed); err != nil {
			fmt.Println("  wrapped /bin/true failed:", err)
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
	if len(cpu) > 0 && len(fixed) > 0 {
		c, f := median(cpu), median(fixed)
		fmt.Printf("  supervisor CPU %.1f µs per %s%s   (run %.3f s − run -- /bin/true %.3f s, over %d)\n",
			(c-f)/float64(l.units)*1e6, l.unit, target(l.cpuTarget, "µs"), c, f, l.units)
	}
	fmt.Printf("  peak RSS       agentwatch %.1f MB%s   strace %.1f MB\n\n", mb(maxRSS(wrapped)), target(l.rssTarget, "MB"), mb(maxRSS(strace)))
}

// target is the " (target ≤ N unit)" printed beside a figure, or nothing.
func target(v float64, unit string) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(" (target ≤ %g %s)", v, unit)
}

// supervisorCPU is the root span's agentwatch.supervisor.cpu_seconds.
func supervisorCPU(tr *telemetry.Trace) (float64, error) {
	v, ok := tr.Root().Attr(telemetry.SupervisorCPUSeconds)
	if !ok {
		return 0, fmt.Errorf("run %s: the root span has no %s", tr.RunID, telemetry.SupervisorCPUSeconds)
	}
	return v.AsFloat64(), nil
}

const execLoopN = 5000

func (h *harness) execLoop(reps int) error {
	h.overhead(loop{
		name:      fmt.Sprintf("exec loop (%s × fork+exec /bin/true from sh)", thousands(execLoopN)),
		argv:      []string{h.self, "gen", "execloop", strconv.Itoa(execLoopN)},
		units:     execLoopN,
		unit:      "exec'd process",
		cpuTarget: 40,
		rssTarget: 40,
	}, reps)
	return nil
}

const fileLoopN = 20_000

// fileLoop measures the file loop with eBPF alone (the default) and with
// --fswatch beside it, whose inotify cost stays visible by difference;
// then the memory of a run that leaves 20,000 files.
func (h *harness) fileLoop(reps int) error {
	argv := []string{h.self, "gen", "files", h.work, strconv.Itoa(fileLoopN)}
	h.overhead(loop{
		name:      fmt.Sprintf("file loop (%s × create+write+delete = %s file events), eBPF alone (the default)", thousands(fileLoopN), thousands(2*fileLoopN)),
		argv:      argv,
		units:     2 * fileLoopN,
		unit:      "file event",
		cpuTarget: 4,
	}, reps)
	h.flags = []string{"--fswatch"}
	h.overhead(loop{
		name:  "file loop, --fswatch (inotify beside eBPF)",
		argv:  argv,
		units: 2 * fileLoopN,
		unit:  "file event",
	}, reps)
	h.flags = nil
	return h.keptFiles(fileLoopN, reps)
}

// keptFiles is the memory of a large file list: a child that creates n
// distinct files in the workspace and keeps them, so the recorder holds n
// paths to the end (its spans past the per-process budget aggregated).
func (h *harness) keptFiles(n, reps int) error {
	fmt.Printf("== %s files created and kept in the workspace\n", thousands(n))
	dir := filepath.Join(h.work, "kept")
	var rss []float64
	var spans int
	var drops int64
	for range reps {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		tf := h.traceFile()
		s, err := h.run(h.wrap(tf, []string{h.self, "gen", "keep", dir, strconv.Itoa(n)}))
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
		tr, err := readTrace(tf)
		if err != nil {
			return err
		}
		rss = append(rss, mb(s.peakRSS))
		spans, drops = len(spansOf(tr, telemetry.SpanFileWrite)), dropped(tr)
	}
	fmt.Printf("  peak RSS agentwatch %.1f MB (target ≤ 100 MB)   file spans in the trace %d (the rest aggregated past the span budget)   events dropped %d\n\n", median(rss), spans, drops)
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
		if s.Type() == telemetry.SpanNetworkCall {
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
	fmt.Println("== lossless ceiling: fchmod events from 2 worker processes (one per core), 5 s per step")
	dir := filepath.Join(h.work, "rate")
	os.MkdirAll(dir, 0o755)
	best := 0.0
	var bestCPU float64
	for _, r := range []int{100_000, 250_000, 500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000} {
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
	if best == 0 {
		fmt.Println("  highest rate with 0 drops: none, the lowest step dropped events")
	} else {
		fmt.Printf("  highest rate with 0 drops: %.0f events/s (supervisor %.0f%% of one core)\n", best, bestCPU)
	}
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

// spansOf lists the spans of a type (agentwatch.span.type; names are for
// people).
func spansOf(tr *telemetry.Trace, typ string) []*telemetry.Span {
	var out []*telemetry.Span
	for i := range tr.Spans {
		if tr.Spans[i].Type() == typ {
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

// thousands prints n with comma separators: 20,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
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
