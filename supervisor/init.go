package supervisor

// The run's init: agentwatch re-executes itself (/proc/self/exe, argv[0]
// "agentwatch-init") as pid 1 of a new PID namespace, in the child's private
// mount namespace, still root. It
//
//   - mounts a fresh /proc, so the child sees no process outside its run:
//     /proc/PID/root and /proc/PID/cwd of the operator's other processes
//     (a route around every read-only bind) are not there to open;
//   - installs the run's seccomp filter (enforce: no io_uring, whose
//     operations bypass the syscall tracepoints; no 32-bit or x32 syscall
//     numbers, which the sensor would misread);
//   - starts the command as the target user, born in the run's cgroup
//     (CLONE_INTO_CGROUP: the init itself stays outside it, so the sensors
//     never see it), in its own process group, foreground on the run's PTY;
//   - forwards the signals the supervisor sends it, reaps orphans, and
//     reports the command's wait status on a pipe.
//
// Failing closed: the init has PDEATHSIG=SIGKILL from the supervisor's
// launching thread. When the supervisor dies (SIGKILL, OOM, panic) the init
// dies, and the kernel kills every process of the PID namespace with it —
// the whole run, at once, with no user-space step that could be skipped.
// No process can leave a PID namespace, so nothing of the run survives.
// The network hooks are pinned in bpffs (netwatch), so they stay attached
// through that moment; the next agentwatch command unpins them (recover.go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// initArg0 marks the re-exec. It is honoured only as pid 1 (a fresh PID
// namespace), which nothing inside a run can be: the run's init is.
const initArg0 = "agentwatch-init"

// The init's inherited descriptors.
const (
	initConfigFD = 3 // read: the JSON initConfig, then EOF
	initStatusFD = 4 // write: initReport lines
	initCgroupFD = 5 // the run's cgroup directory, when there is one
)

// initConfig is what the supervisor tells the init about the command.
type initConfig struct {
	Path   string
	Argv   []string
	Env    []string
	Dir    string
	UID    uint32
	GID    uint32
	Groups []uint32
	Switch bool // set UID/GID/Groups on the command
	// Terminal: fd 0 is the run's PTY (the init's controlling terminal);
	// the command's process group is made its foreground group, so the
	// PTY's signals (^C) reach the command, not the init.
	Terminal bool
	// Group: forward signals to the command's process group (pipe mode,
	// as a shell would for a job), not only to the command.
	Group    bool
	Cgroup   bool // initCgroupFD is the run's cgroup: the command is born in it
	Seccomp  seccompPolicy
	NoProcFS bool // tests only: leave /proc as it is
}

// initReport is one line on the status pipe.
type initReport struct {
	Started bool   `json:",omitempty"` // the command runs (its pid in the namespace)
	PID     int    `json:",omitempty"`
	Err     string `json:",omitempty"` // the init could not start the command
	Errno   int    `json:",omitempty"` // the start's errno, for the shell's 126/127
	Exited  bool   `json:",omitempty"`
	Status  uint32 `json:",omitempty"` // the command's raw wait status
}

func init() {
	if len(os.Args) == 1 && os.Args[0] == initArg0 && os.Getpid() == 1 {
		os.Exit(runInit())
	}
}

func runInit() int {
	status := os.NewFile(initStatusFD, "status")
	report := func(r initReport) {
		b, _ := json.Marshal(r)
		_, _ = status.Write(append(b, '\n'))
	}
	fail := func(err error) int {
		r := initReport{Err: err.Error()}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			r.Errno = int(errno)
		}
		report(r)
		return 1
	}
	cfgFile := os.NewFile(initConfigFD, "config")
	var cfg initConfig
	dec := json.NewDecoder(io.LimitReader(cfgFile, 64<<20))
	if err := dec.Decode(&cfg); err != nil {
		cfgFile.Close()
		return fail(fmt.Errorf("reading the init's configuration: %w", err))
	}
	syscall.CloseOnExec(initConfigFD)
	// The status pipe and the cgroup must not reach the command.
	syscall.CloseOnExec(initStatusFD)
	if cfg.Cgroup {
		syscall.CloseOnExec(initCgroupFD)
	}
	if !cfg.NoProcFS {
		// Over the copied /proc (still the host's PID namespace): the
		// new instance shows this namespace only.
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fail(fmt.Errorf("mounting the run's /proc: %w", err))
		}
	}
	if err := installSeccomp(cfg.Seccomp); err != nil {
		return fail(err)
	}

	cmd := &exec.Cmd{
		Path:   cfg.Path,
		Args:   cfg.Argv,
		Env:    cfg.Env,
		Dir:    cfg.Dir,
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:    true,
			Foreground: cfg.Terminal,
			Ctty:       0,
		},
	}
	if cfg.Switch {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: cfg.UID, Gid: cfg.GID, Groups: cfg.Groups}
	}
	if cfg.Cgroup {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = initCgroupFD
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT)
	// Our own foreground moves would stop us: a background process group
	// touching the terminal gets SIGTTOU/SIGTTIN.
	signal.Ignore(syscall.SIGTTOU, syscall.SIGTTIN, syscall.SIGTSTP)
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	pid := cmd.Process.Pid
	report(initReport{Started: true, PID: pid})
	// Not reaped before the supervisor has found the command's host pid
	// (its entry in our children list, a zombie at worst): it closes the
	// configuration pipe then, or dies, which closes it too.
	_, _ = io.Copy(io.Discard, cfgFile)
	cfgFile.Close()
	go func() {
		for s := range sigs {
			target := pid
			if cfg.Group {
				target = -pid
			}
			_ = syscall.Kill(target, s.(syscall.Signal))
		}
	}()
	// pid 1 inherits every orphan of the namespace: reap them all, and
	// report the command's own status when it comes.
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("waiting for %s: %w", cfg.Path, err))
		}
		if wpid == pid {
			report(initReport{Exited: true, Status: uint32(ws)})
			// Returning ends the namespace: the kernel kills what is left.
			return 0
		}
	}
}
