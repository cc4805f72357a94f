package main

// Realistic workloads, each some 3 s unwrapped: a C build, git work over
// this repository, a tar round trip of it and `go test` of some of its
// packages. Each is timed unwrapped, under agentwatch, under strace -f and
// under a system-wide bpftrace printing every event, interleaved rep by
// rep; the figure is the median of each rep's ratio to that rep's
// unwrapped time, so a slow minute on the shared machine weighs on both
// sides of a ratio.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentwatch/agentwatch/telemetry"
)

// workloadSeconds is what a calibrated workload takes unwrapped.
const workloadSeconds = 3.0

type workload struct {
	name string
	dir  string // the workspace: every variant's working directory
	// script is the sh -c program; k repeats its repeatable part.
	script func(k int) string
	// calibrate: choose k so the script takes workloadSeconds
	// unwrapped; otherwise k is 1.
	calibrate bool
	reset     func() error // untimed, before every timed run; nil: nothing to undo
	// cpuShare: print the supervisor's CPU as a share of the workload's.
	cpuShare bool
}

// timing is one timed run.
type timing struct {
	wall time.Duration
	cpu  time.Duration // user+sys of the command and the children it waited for
	sup  float64       // supervisor CPU seconds, from the trace (agentwatch only)
	drop int64         // events dropped, from the trace (agentwatch only)
	cmd  time.Duration // the command's own span: its time inside the run, without agentwatch's start and end (agentwatch only)
	lost int           // "Lost N events" reports (bpftrace only)
}

const (
	varPlain = iota
	varAgentwatch
	varStrace
	varBpftrace
	nVariants
)

var variantNames = [nVariants]string{"unwrapped", "agentwatch", "strace -f", "bpftrace"}

func (h *harness) workloads(reps int) error {
	fmt.Println("== workloads: wall time / unwrapped, interleaved, median of the reps' ratios (agentwatch target ≤ 1.03, goal ≤ 1.02)")
	base := filepath.Join(filepath.Dir(h.work), "workloads")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(base)
	// On a tmpfs: ext4 makes file creation slower for minutes after many
	// deletions (its inode allocator skips recently deleted inodes, most
	// of tar x's time in a profile here), so each variant's time would
	// depend on what the one before deleted, not on its tracer.
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "size=2g,mode=0755"); err != nil {
		fmt.Printf("  no tmpfs for the workloads (%v): they run on %s's filesystem\n", err, base)
	} else {
		defer unix.Unmount(base, unix.MNT_DETACH)
	}
	bt, note := newBpftrace(base)
	if note != "" {
		fmt.Println("  " + note)
	}
	wls, err := h.workloadSet(base)
	if err != nil {
		return err
	}
	fmt.Printf("  %-44s %10s %10s %10s\n", "", "agentwatch", "strace -f", "bpftrace")
	for _, w := range wls {
		if err := h.measure(w, reps, bt); err != nil {
			return err
		}
	}
	fmt.Println()
	return nil
}

// workloadSet builds (untimed) every workload's directory.
func (h *harness) workloadSet(base string) ([]workload, error) {
	cb, err := cBuild(filepath.Join(base, "cbuild"), 150)
	if err != nil {
		return nil, err
	}
	wls := []workload{cb}
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").CombinedOutput()
	if err != nil {
		fmt.Printf("  the bench runs outside a git repository (git rev-parse --show-toplevel: %s): git, tar and go test are left out\n", lastLine(out))
		return wls, nil
	}
	top := strings.TrimSpace(string(out))

	gitDir := filepath.Join(base, "git")
	if err := os.MkdirAll(gitDir, 0o755); err != nil {
		return nil, err
	}
	wls = append(wls, workload{
		name:      "git: clone, log -p, grep, commit, diff",
		dir:       gitDir,
		script:    func(k int) string { return gitScript(top, k) },
		calibrate: true,
		reset:     func() error { return os.RemoveAll(filepath.Join(gitDir, "clone")) },
	})

	tarDir := filepath.Join(base, "tar")
	if err := os.MkdirAll(tarDir, 0o755); err != nil {
		return nil, err
	}
	if err := git(tarDir, "clone", "-q", "--no-hardlinks", top, "src"); err != nil {
		return nil, err
	}
	wls = append(wls, workload{
		name: "tar: c of a clone, x, rm -rf",
		dir:  tarDir,
		script: func(k int) string {
			return fmt.Sprintf(`set -e
i=0
while [ $i -lt %d ]; do
  tar cf src.tar src
  mkdir x
  tar xf src.tar -C x
  rm -rf x src.tar
  i=$((i+1))
done
`, k)
		},
		calibrate: true,
	})

	goDir := filepath.Join(base, "gotest")
	// A clone, so that the packages are the committed ones, not a
	// working tree someone is editing.
	if err := git(base, "clone", "-q", "--no-hardlinks", top, "gotest"); err != nil {
		return nil, err
	}
	// Packages without privileged tests, CPU-bound ones (fswatch's burst
	// test varies by seconds from run to run), k runs of them to reach
	// workloadSeconds.
	pkgs := "./policy ./redact ./termtext ./secretscan ./report ./telemetry/otlp ./fakemodel ./event ./prices"
	wls = append(wls, workload{
		name: "go test -count=1, 9 packages, warm cache",
		dir:  goDir,
		script: func(k int) string {
			return fmt.Sprintf("set -e\ni=0\nwhile [ $i -lt %d ]; do\n  go test -count=1 %s >/dev/null\n  i=$((i+1))\ndone\n", k, pkgs)
		},
		calibrate: true,
	})
	return wls, nil
}

// gitScript is one rep of the git workload: a local clone of top, then in
// it k rounds of log -p and grep (the repeatable part), status, a branch,
// an edit committed, and the diff of that commit.
func gitScript(top string, k int) string {
	return fmt.Sprintf(`set -e
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git clone -q --no-hardlinks %s clone
cd clone
i=0
while [ $i -lt %d ]; do
  git log -p >/dev/null
  for w in func error span return; do git grep -n -w -e "$w" >/dev/null || [ $? = 1 ]; done
  i=$((i+1))
done
git status >/dev/null
git branch bench-branch
git branch >/dev/null
f=$(git ls-files | head -n 1)
echo "bench edit" >>"$f"
git -c user.name=bench -c user.email=bench@localhost commit -q -a -m "bench edit"
git diff HEAD~1 >/dev/null
`, shellQuote(top), k)
}

// cBuild writes n C files of a few functions each, a main that calls them
// and a Makefile linking them into one binary; make -j2 builds it, make
// clean (untimed) undoes it.
func cBuild(dir string, n int) (workload, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return workload{}, err
	}
	var main bytes.Buffer
	main.WriteString("#include <stdio.h>\n\n")
	for i := range n {
		src := fmt.Sprintf(`#include <stdlib.h>
#include <string.h>

struct rec%[1]d { int id; char name[32]; double v[8]; };

static int cmp%[1]d(const void *a, const void *b)
{
	const struct rec%[1]d *x = a, *y = b;
	return x->id - y->id;
}

int sort%[1]d(struct rec%[1]d *r, int n)
{
	qsort(r, n, sizeof *r, cmp%[1]d);
	return r[0].id;
}

double sum%[1]d(const struct rec%[1]d *r, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < 8; j++)
			s += r[i].v[j] * (j + %[1]d);
	return s;
}

int run%[1]d(int n)
{
	struct rec%[1]d *r = calloc(n, sizeof *r);
	if (!r)
		return -1;
	for (int i = 0; i < n; i++) {
		r[i].id = (i * 7919 + %[1]d) %% n;
		memset(r[i].name, 'a' + i %% 26, 8);
	}
	int s = sort%[1]d(r, n) + (int)sum%[1]d(r, n);
	free(r);
	return s;
}
`, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.c", i)), []byte(src), 0o644); err != nil {
			return workload{}, err
		}
		fmt.Fprintf(&main, "int run%d(int);\n", i)
	}
	main.WriteString("\nint main(void)\n{\n\tlong s = 0;\n")
	for i := range n {
		fmt.Fprintf(&main, "\ts += run%d(100);\n", i)
	}
	main.WriteString("\tprintf(\"%ld\\n\", s);\n\treturn 0;\n}\n")
	if err := os.WriteFile(filepath.Join(dir, "main.c"), main.Bytes(), 0o644); err != nil {
		return workload{}, err
	}
	mk := "CFLAGS = -O2 -Wall\nOBJS = $(patsubst %.c,%.o,$(wildcard *.c))\n\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\nclean:\n\trm -f $(OBJS) prog\n\n.PHONY: clean\n"
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644); err != nil {
		return workload{}, err
	}
	return workload{
		name:   fmt.Sprintf("C build: %d files, make -j2", n+1),
		dir:    dir,
		script: func(int) string { return "make -s -j2" },
		reset: func() error {
			out, err := exec.Command("make", "-s", "-C", dir, "clean").CombinedOutput()
			if err != nil {
				return fmt.Errorf("make clean: %v: %s", err, lastLine(out))
			}
			return nil
		},
		cpuShare: true,
	}, nil
}

// resetDir undoes the last run, if w has anything to undo.
func (w workload) resetDir() error {
	if w.reset == nil {
		return nil
	}
	return w.reset()
}

// measure calibrates w, warms it up and prints its row.
func (h *harness) measure(w workload, reps int, bt *bpftrace) error {
	k, err := h.calibrateK(w)
	if err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	argv := []string{"/bin/sh", "-c", w.script(k)}
	name := w.name
	if w.calibrate {
		name = fmt.Sprintf("%s (×%d)", w.name, k)
	}
	var runs [][nVariants]*timing
	for range reps {
		var r [nVariants]*timing
		for v := range nVariants {
			if v == varBpftrace && (bt == nil || bt.failed) {
				continue
			}
			if h.noPeers && (v == varStrace || v == varBpftrace) {
				continue
			}
			t, err := h.variant(w, v, argv, bt)
			if err != nil {
				fmt.Printf("  %s: %s failed: %v\n", w.name, variantNames[v], err)
				if v == varBpftrace {
					fmt.Println("  bpftrace is left out from here on")
					bt.failed = true
				}
				continue
			}
			r[v] = &t
		}
		runs = append(runs, r)
	}
	var ratio [nVariants][]float64
	var plain, share, inner []float64
	var drops int64
	lost := 0
	for _, r := range runs {
		if r[varPlain] == nil {
			continue
		}
		plain = append(plain, r[varPlain].wall.Seconds())
		for v := varAgentwatch; v < nVariants; v++ {
			if r[v] != nil {
				ratio[v] = append(ratio[v], r[v].wall.Seconds()/r[varPlain].wall.Seconds())
			}
		}
		if a := r[varAgentwatch]; a != nil {
			drops += a.drop
			if a.cmd > 0 {
				inner = append(inner, a.cmd.Seconds()/r[varPlain].wall.Seconds())
			}
			if r[varPlain].cpu > 0 {
				share = append(share, a.sup/r[varPlain].cpu.Seconds())
			}
		}
		if b := r[varBpftrace]; b != nil {
			lost += b.lost
		}
	}
	if len(plain) == 0 {
		fmt.Printf("  %-44s (no unwrapped sample)\n", name)
		return nil
	}
	col := func(v int) string {
		if len(ratio[v]) == 0 {
			return "-"
		}
		return strconv.FormatFloat(median(ratio[v]), 'f', 3, 64)
	}
	fmt.Printf("  %-44s %10s %10s %10s   (unwrapped %.2f s)\n", name, col(varAgentwatch), col(varStrace), col(varBpftrace), median(plain))
	if len(inner) > 0 {
		// What a long session sees: the command's own time under
		// agentwatch, without the fixed start and end (the startup
		// section's figure).
		fmt.Printf("  %-44s the command's time inside the run / unwrapped %.3f\n", "", median(inner))
	}
	if w.cpuShare && len(share) > 0 {
		var cpu []float64
		for _, r := range runs {
			if r[varPlain] != nil {
				cpu = append(cpu, r[varPlain].cpu.Seconds())
			}
		}
		fmt.Printf("  %-44s supervisor CPU %.2f%% of the build's own CPU (target ≤ 3%%)   (build %.2f s CPU)\n", "", 100*median(share), median(cpu))
	}
	if drops > 0 {
		fmt.Printf("  %-44s agentwatch dropped %d events over the reps\n", "", drops)
	}
	if lost > 0 {
		fmt.Printf("  %-44s bpftrace reported lost events %d times over the reps\n", "", lost)
	}
	return nil
}

// calibrateK is how many times w's repeatable part runs so that it takes
// at least workloadSeconds unwrapped. One run warms up (page cache, Go
// build cache); then the script at k=1 and k=3 gives the fixed part and
// the cost of a round. None of these runs is in the results.
func (h *harness) calibrateK(w workload) (int, error) {
	run := func(k int) (float64, error) {
		if err := w.resetDir(); err != nil {
			return 0, err
		}
		t, err := h.timed(w.dir, []string{"/bin/sh", "-c", w.script(k)})
		return t.wall.Seconds(), err
	}
	if _, err := run(1); err != nil || !w.calibrate {
		return 1, err
	}
	t1, err := run(1)
	if err != nil {
		return 1, err
	}
	t3, err := run(3)
	if err != nil {
		return 1, err
	}
	round := (t3 - t1) / 2
	if round <= 0 { // noise swamped the rounds: treat it all as repeatable
		round = t1
	}
	fixed := max(0, t1-round)
	return int(min(1000, max(1, math.Ceil((workloadSeconds-fixed)/round)))), nil
}

// variant is one timed run of w: reset (untimed), then the command
// unwrapped, under agentwatch, under strace -f, or unwrapped with
// bpftrace attached.
func (h *harness) variant(w workload, v int, argv []string, bt *bpftrace) (timing, error) {
	if err := w.resetDir(); err != nil {
		return timing{}, err
	}
	switch v {
	case varAgentwatch:
		tf := h.traceFile()
		t, err := h.timed(w.dir, h.wrap(tf, argv))
		if err != nil {
			return t, err
		}
		tr, err := readTrace(tf)
		if err != nil {
			return t, err
		}
		t.drop = dropped(tr)
		t.cmd = commandTime(tr)
		t.sup, err = supervisorCPU(tr)
		return t, err
	case varStrace:
		return h.timed(w.dir, append([]string{"strace", "-f", "-qq", "-o", "/dev/null", "--"}, argv...))
	case varBpftrace:
		stop, err := bt.start()
		if err != nil {
			return timing{}, err
		}
		t, err := h.timed(w.dir, argv)
		lost, stopErr := stop()
		t.lost = lost
		return t, errors.Join(err, stopErr)
	}
	return h.timed(w.dir, argv)
}

// commandTime is how long the run's command ran (exec to exit): the
// span the root's first child is. 0 when the trace has none.
func commandTime(tr *telemetry.Trace) time.Duration {
	root := tr.Root()
	var first *telemetry.Span
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if root != nil && s.ParentID == root.SpanID && (first == nil || s.Start.Before(first.Start)) {
			first = s
		}
	}
	if first == nil {
		return 0
	}
	return first.End.Sub(first.Start)
}

// timed runs argv in dir with stdin and stdout on /dev/null; an error
// carries the last line of its stderr.
func (h *harness) timed(dir string, argv []string) (timing, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	var stderr tail
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	t := timing{wall: time.Since(start)}
	if err != nil {
		return t, fmt.Errorf("%v: %s", err, lastLine(stderr.b))
	}
	t.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return t, nil
}

// tail keeps the last 4 KiB written to it.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append(t.b[:0], t.b[len(t.b)-4096:]...)
	}
	return len(p), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// bpftrace is the peer that does what a tracer printing every event must:
// the same syscalls traced system-wide, one line per event, read and
// discarded by the bench.
type bpftrace struct {
	path, prog string
	marker     string // a path the bench opens until bpftrace prints it: attached
	n          int
	failed     bool // a run failed: left out from then on
}

// newBpftrace finds bpftrace and makes sure tracefs is mounted; nil and a
// one-line note when it cannot run, a note alone when it mounted tracefs.
func newBpftrace(base string) (*bpftrace, string) {
	path, err := exec.LookPath("bpftrace")
	if err != nil {
		return nil, "bpftrace is not installed (apt-get install bpftrace): its column is left out"
	}
	note := ""
	if _, err := os.Stat("/sys/kernel/tracing/events"); err != nil {
		if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
			return nil, fmt.Sprintf("tracefs is not mounted and mounting it on /sys/kernel/tracing failed (%v): bpftrace is left out", err)
		}
		note = "tracefs was not mounted: mounted it on /sys/kernel/tracing for bpftrace"
	}
	// bpftrace 0.20 reads tracepoint fields as args.X; before it, args->X.
	arg := "args->"
	out, _ := exec.Command(path, "--version").Output()
	if m := regexp.MustCompile(`v(\d+)\.(\d+)`).FindSubmatch(out); m != nil {
		major, _ := strconv.Atoi(string(m[1]))
		minor, _ := strconv.Atoi(string(m[2]))
		if major > 0 || minor >= 20 {
			arg = "args."
		}
	}
	prog := strings.ReplaceAll(`tracepoint:syscalls:sys_enter_execve { printf("%d %s %s\n", pid, comm, str(ARGfilename)); }
tracepoint:syscalls:sys_enter_openat { printf("%d %s %s\n", pid, comm, str(ARGfilename)); }
tracepoint:syscalls:sys_enter_unlinkat { printf("%d %s %s\n", pid, comm, str(ARGpathname)); }
tracepoint:syscalls:sys_enter_renameat2 { printf("%d %s %s %s\n", pid, comm, str(ARGoldname), str(ARGnewname)); }
tracepoint:syscalls:sys_enter_connect { printf("%d %s %d\n", pid, comm, ARGfd); }
`, "ARG", arg)
	return &bpftrace{path: path, prog: prog, marker: filepath.Join(base, "bpftrace-attached")}, note
}

// start runs bpftrace until stop, which returns how many "Lost N events"
// reports it printed. It returns once bpftrace prints an openat of a
// marker path the bench opens: its probes are attached.
func (b *bpftrace) start() (stop func() (int, error), err error) {
	b.n++
	marker := fmt.Sprintf("%s-%d", b.marker, b.n)
	cmd := exec.Command(b.path, "-e", b.prog)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr tail
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	attached := make(chan bool, 1)
	lost := make(chan int, 1)
	go func() {
		br := bufio.NewReaderSize(out, 64<<10)
		for {
			line, err := br.ReadSlice('\n')
			if bytes.Contains(line, []byte(marker)) {
				attached <- true
				break
			}
			if err != nil && err != bufio.ErrBufferFull {
				attached <- false
				lost <- 0
				return
			}
		}
		n := 0
		buf := make([]byte, 64<<10)
		for {
			k, err := br.Read(buf)
			n += bytes.Count(buf[:k], []byte("Lost "))
			if err != nil {
				break
			}
		}
		lost <- n
	}()
	fail := func(why string) (func() (int, error), error) {
		cmd.Process.Kill()
		<-lost
		cmd.Wait()
		if s := lastLine(stderr.b); s != "" {
			why += ": " + s
		}
		return nil, errors.New(why)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for waiting := true; waiting; {
		select {
		case ok := <-attached:
			if !ok {
				return fail("bpftrace exited before its probes were attached")
			}
			waiting = false
		case <-tick.C:
			if f, err := os.Open(marker); err == nil {
				f.Close()
			}
		case <-deadline:
			return fail("bpftrace did not attach within 60 s")
		}
	}
	return func() (int, error) {
		cmd.Process.Signal(os.Interrupt)
		n := <-lost
		if err := cmd.Wait(); err != nil {
			return n, fmt.Errorf("bpftrace: %v: %s", err, lastLine(stderr.b))
		}
		return n, nil
	}, nil
}
