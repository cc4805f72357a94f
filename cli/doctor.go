package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/export"
	"github.com/agentwatch/agentwatch/report"
	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/supervisor"
	"github.com/agentwatch/agentwatch/termtext"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// check is one line of `agentwatch doctor`.
type check struct {
	name   string
	ok     bool
	needed bool   // a failure costs a sensor (otherwise it is informational)
	detail string // what was found
	fix    string // how to fix it, when not ok
}

// Capability bits (linux/capability.h) the eBPF sensors need.
var sensorCaps = []struct {
	name string
	bit  uint
}{
	{"CAP_BPF", 39},
	{"CAP_PERFMON", 38},
	{"CAP_SYS_ADMIN", 21},
	{"CAP_NET_ADMIN", 12},
}

// effectiveCaps reads CapEff from /proc/self/status.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}

func readSysctl(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// doctorChecks inspects this machine. Each check says what it found and,
// when something is missing, the command that fixes it.
func doctorChecks() (checks []check, ebpfOK, cgroupOK, fswatchOK bool) {
	privileged := os.Geteuid() == 0
	caps, capErr := effectiveCaps()
	var missing []string
	for _, c := range sensorCaps {
		if capErr != nil || caps&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	switch {
	case len(missing) == 0:
		detail := "all of CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_NET_ADMIN"
		if privileged {
			detail = "root (" + detail + ")"
		}
		checks = append(checks, check{name: "privileges", ok: true, needed: true, detail: detail})
	default:
		self, _ := os.Executable()
		checks = append(checks, check{name: "privileges", needed: true,
			detail: fmt.Sprintf("uid %d, missing %s", os.Geteuid(), strings.Join(missing, ", ")),
			fix:    fmt.Sprintf("run as root (sudo agentwatch …) or: sudo setcap cap_bpf,cap_perfmon,cap_sys_admin,cap_net_admin+ep %s", self)})
	}

	var uts unix.Utsname
	release := "unknown"
	if unix.Uname(&uts) == nil {
		release = unix.ByteSliceToString(uts.Release[:])
	}
	checks = append(checks, check{name: "kernel", ok: kernelAtLeast(release, 5, 8), needed: true,
		detail: "Linux " + release, fix: "the eBPF sensors need Linux 5.8 or newer (ring buffer)"})

	_, btfErr := os.Stat("/sys/kernel/btf/vmlinux")
	checks = append(checks, check{name: "BTF", ok: btfErr == nil, needed: true,
		detail: "/sys/kernel/btf/vmlinux", fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y"})

	mount, hybrid, cgErr := supervisor.Cgroup2Mount()
	cg := check{name: "cgroup v2", ok: cgErr == nil, needed: true,
		fix: "mount it: sudo mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)"}
	if cgErr != nil {
		cg.detail = cgErr.Error()
	} else {
		cg.detail = mount
		if hybrid {
			cg.detail += " (hybrid: v1 controllers beside it; fine)"
		}
		if !privileged {
			cg.ok = false
			cg.fix = "creating the run's cgroup needs root"
		}
	}
	checks = append(checks, cg)
	cgroupOK = cg.ok

	fsTypes := mountedTypes()
	checks = append(checks,
		check{name: "bpffs", ok: fsTypes["bpf"], detail: mountState(fsTypes["bpf"]),
			fix: "not required; to inspect pinned objects: sudo mount -t bpf bpf /sys/fs/bpf"},
		check{name: "tracefs", ok: fsTypes["tracefs"], detail: mountState(fsTypes["tracefs"]),
			fix: "not required (raw tracepoints need no tracefs); for bpftool/perf: sudo mount -t tracefs tracefs /sys/kernel/tracing"},
	)

	bpfErr, netErr := supervisor.CheckSensors()
	bc := check{name: "eBPF programs", ok: bpfErr == nil, needed: true, detail: "load through the verifier"}
	if bpfErr != nil {
		bc.detail = strings.Join(strings.Fields(bpfErr.Error()), " ")
		bc.fix = "see privileges, kernel and BTF above"
	}
	checks = append(checks, bc)
	ebpfOK = bpfErr == nil && cgroupOK

	// Enforce mode needs the cgroup sock_addr programs too; without them
	// `run --mode enforce` refuses to start rather than silently observe.
	nc := check{name: "enforcement", ok: netErr == nil && cgroupOK, needed: false,
		detail: "cgroup connect/sendmsg hooks load (network policy in enforce mode)"}
	if netErr != nil {
		nc.detail = strings.Join(strings.Fields(netErr.Error()), " ")
		nc.fix = "without them --mode enforce refuses to run; --mode observe still records and alerts"
	} else if !cgroupOK {
		nc.detail = "no cgroup v2: nothing to attach the hooks to"
		nc.fix = "mount cgroup v2 (see above)"
	}
	checks = append(checks, nc)

	watches := readSysctl("/proc/sys/fs/inotify/max_user_watches")
	instances := readSysctl("/proc/sys/fs/inotify/max_user_instances")
	n, _ := strconv.Atoi(watches)
	fswatchOK = watches != "unknown"
	checks = append(checks, check{name: "inotify", ok: fswatchOK && n >= 8192, needed: true,
		detail: fmt.Sprintf("max_user_watches %s, max_user_instances %s", watches, instances),
		fix:    "large workspaces need more watches: sudo sysctl fs.inotify.max_user_watches=524288"})

	git, gitErr := exec.LookPath("git")
	gc := check{name: "git", ok: gitErr == nil, detail: git,
		fix: "install git: without it runs carry no repository evidence (base SHA, dirty state)"}
	if gitErr != nil {
		gc.detail = "not found"
	}
	checks = append(checks, gc)
	return checks, ebpfOK, cgroupOK, fswatchOK
}

func mountState(ok bool) string {
	if ok {
		return "mounted"
	}
	return "not mounted"
}

func mountedTypes() map[string]bool {
	types := map[string]bool{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return types
	}
	defer f.Close()
	mounts, _ := supervisor.ParseMountinfo(f)
	for _, m := range mounts {
		types[m.FSType] = true
	}
	return types
}

// kernelAtLeast compares a uname release ("6.18.0-1-amd64") with major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	minorDigits := parts[1]
	if i := strings.IndexFunc(minorDigits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorDigits = minorDigits[:i] // "10-rc1"
	}
	mi, err2 := strconv.Atoi(minorDigits)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// storeCheck says whether the run store in dir is there, intact and
// writable. A store not made yet is fine: the first run makes it.
func storeCheck(ctx context.Context, dir string) check {
	c := check{name: "store", needed: true}
	if dir == "" {
		c.detail, c.fix = "no default directory", "pass --store DIR"
		return c
	}
	if store.IsURL(dir) {
		// Read-only: doctor never migrates the fleet's database.
		name := store.Redact(dir)
		st, err := store.OpenReadOnly(dir)
		if err != nil {
			c.detail = oneLineText(err.Error())
			c.fix = "check the server, the credentials and the database of " + name + " (runs wait in " + store.JournalDir(dir) + " meanwhile)"
			return c
		}
		defer st.Close()
		runs, err := st.Check(ctx)
		if err != nil {
			c.detail, c.fix = oneLineText(err.Error()), "check the server"
			return c
		}
		c.ok, c.detail = true, fmt.Sprintf("%s: %d runs", name, runs)
		return c
	}
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); errors.Is(err, fs.ErrNotExist) {
		c.ok, c.detail = true, dir+" (none yet: the first run creates it)"
		return c
	}
	st, err := store.OpenReadOnly(dir)
	if err != nil {
		c.detail = oneLineText(err.Error())
		if errors.Is(err, store.ErrCorrupt) {
			c.fix = "agentwatch store repair --store " + dir
		}
		return c
	}
	defer st.Close()
	runs, err := st.Check(ctx)
	if err != nil {
		c.detail = oneLineText(err.Error())
		if errors.Is(err, store.ErrCorrupt) {
			c.fix = "agentwatch store repair --store " + dir
		}
		return c
	}
	c.ok, c.detail = true, fmt.Sprintf("%s: %d runs, intact", dir, runs)
	if err := unix.Access(dir, unix.W_OK); err != nil {
		c.ok, c.detail = false, fmt.Sprintf("%s: %d runs, intact, not writable (%v)", dir, runs, err)
		c.fix = "runs could not be saved: check the directory's owner and mount"
		return c
	}
	var fsst unix.Statfs_t
	if unix.Statfs(dir, &fsst) == nil {
		free := fsst.Bavail * uint64(fsst.Bsize)
		c.detail += fmt.Sprintf(", %d MiB free", free>>20)
		if free < 64<<20 {
			c.ok = false
			c.fix = "free some space: a run that cannot be saved waits in the journal until there is room"
		}
	}
	return c
}

// collectorCheck sends the configured collector an export request without
// spans (export.Probe). No collector configured is fine: runs stay in the
// store (and `agentwatch export` sends them later).
func collectorCheck(ctx context.Context, cfg export.Config) check {
	c := check{name: "collector", needed: true}
	if !cfg.Enabled() {
		c.ok, c.needed = true, false
		c.detail = "none configured (--otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT): runs stay in the local store"
		return c
	}
	if err := export.Probe(ctx, cfg); err != nil {
		c.detail = oneLineText(err.Error())
		c.fix = "check the collector's address, TLS and OTEL_EXPORTER_OTLP_HEADERS; runs are still stored and `agentwatch export RUN` sends one later"
		return c
	}
	c.ok, c.detail = true, cfg.Target()+" accepted an export request"
	return c
}

func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }

// doctorReport is `doctor --json`.
type doctorReport struct {
	Checks []doctorCheckJSON `json:"checks"`
	// Sensors says which sensors `agentwatch run` would start here.
	Sensors struct {
		EBPF    bool `json:"ebpf"`
		Cgroup  bool `json:"cgroup"`
		FSWatch bool `json:"fswatch"`
		Enforce bool `json:"enforce"`
	} `json:"sensors"`
	Failed []string `json:"failed"` // the checks that make doctor exit 1
}

type doctorCheckJSON struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, fail or note
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

func (c check) status() string {
	switch {
	case c.ok:
		return "ok"
	case c.needed:
		return "fail"
	}
	return "note"
}

func enforceOK(checks []check) bool {
	for _, c := range checks {
		if c.name == "enforcement" {
			return c.ok && os.Geteuid() == 0
		}
	}
	return false
}

func failedChecks(checks []check) []string {
	failed := []string{}
	for _, c := range checks {
		if c.status() == "fail" {
			failed = append(failed, c.name)
		}
	}
	return failed
}

func writeDoctorJSON(w io.Writer, checks []check, ebpfOK, cgroupOK, fswatchOK bool) error {
	var r doctorReport
	for _, c := range checks {
		d := doctorCheckJSON{Name: c.name, Status: c.status(), Detail: c.detail}
		if !c.ok {
			d.Fix = c.fix
		}
		r.Checks = append(r.Checks, d)
	}
	r.Sensors.EBPF, r.Sensors.Cgroup, r.Sensors.FSWatch, r.Sensors.Enforce = ebpfOK, cgroupOK, fswatchOK, enforceOK(checks)
	r.Failed = failedChecks(checks)
	return report.WriteJSON(w, r) // details quote paths and error texts
}

func writeDoctor(w io.Writer, checks []check, ebpfOK, cgroupOK, fswatchOK bool) {
	for _, c := range checks {
		mark := "ok  "
		switch {
		case !c.ok && c.needed:
			mark = "FAIL"
		case !c.ok:
			mark = "note"
		}
		// detail and fix quote what the machine said (error texts, paths):
		// escaped like any other text agentwatch did not write.
		fmt.Fprintf(w, "%s  %-14s %s\n", mark, c.name, termtext.Escape(c.detail))
		if !c.ok && c.fix != "" {
			fmt.Fprintf(w, "      %-14s fix: %s\n", "", termtext.Escape(c.fix))
		}
	}
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(w, "\nsensors for `agentwatch run` here:\n")
	fmt.Fprintf(w, "  ebpf     %-3s  processes, files, network of the whole tree\n", yes(ebpfOK))
	fmt.Fprintf(w, "  cgroup   %-3s  the run's own cgroup (filter, cleanup of leftovers)\n", yes(cgroupOK))
	fmt.Fprintf(w, "  fswatch  %-3s  workspace file changes (no process attribution)\n", yes(fswatchOK))
	for _, c := range checks {
		if c.name == "enforcement" {
			fmt.Fprintf(w, "  enforce  %-3s  --mode enforce: network allowlist, protected paths (needs root)\n", yes(c.ok && os.Geteuid() == 0))
		}
	}
	if !ebpfOK {
		fmt.Fprintf(w, "degraded mode: runs still work; the trace lists what is missing in agentwatch.telemetry.gaps\n")
	}
}

// doctorFailed is doctor's exit 1: the checks that failed.
type doctorFailed []string

func (e doctorFailed) Error() string {
	return fmt.Sprintf("doctor: %d %s failed: %s", len(e), plural(len(e), "check", "checks"), strings.Join(e, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

type doctorOptions struct {
	storeDir     string
	otlpEndpoint string
	json         bool
}

func (a *app) doctorCommand() *cobra.Command {
	var o doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check what this machine supports, the store and the collector; exit 1 when a check fails",
		Args:  cobra.NoArgs,
		RunE: a.wrap(func(cmd *cobra.Command, _ []string) error {
			cfg := export.Config{Endpoint: o.otlpEndpoint, Timeout: doctorProbeTimeout}
			if err := cfg.Validate(); err != nil {
				return configError{err}
			}
			checks, ebpfOK, cgroupOK, fswatchOK := doctorChecks()
			checks = append(checks, storeCheck(cmd.Context(), o.storeDir), collectorCheck(cmd.Context(), cfg))
			if o.json {
				if err := writeDoctorJSON(a.env.Stdout, checks, ebpfOK, cgroupOK, fswatchOK); err != nil {
					return err
				}
			} else {
				writeDoctor(a.env.Stdout, checks, ebpfOK, cgroupOK, fswatchOK)
			}
			if failed := failedChecks(checks); len(failed) > 0 {
				return doctorFailed(failed)
			}
			return nil
		}),
	}
	storeFlag(cmd, &o.storeDir)
	cmd.Flags().StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "check the collector at `URL`; default: OTEL_EXPORTER_OTLP_* variables")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the checks as JSON")
	return cmd
}

// doctorProbeTimeout bounds the collector check.
const doctorProbeTimeout = 5 * time.Second
