package supervisor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// childSpec is the command a run starts, and how.
type childSpec struct {
	path    string
	argv    []string
	env     []string
	dir     string
	target  Account
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	cgroup  *Cgroup       // nil: none could be made
	ns      *protectPlan  // the child's mount namespace (binds; may be empty)
	filter  seccompPolicy // enforce-mode refusals
	stdinT  *os.File      // a terminal stdin: the child gets a PTY
	useInit bool          // root: start the run's init (init.go) in a new PID namespace
}

// child is a started command.
type child struct {
	pid     int // the command, as the host (and the sensors) number it
	initPID int // the run's init; 0 when the command was started directly
	proc    *exec.Cmd
	tm      *terminal
	waited  <-chan error // the started process (init or command) was reaped
	final   chan initReport
}

// groupSignals says whether the supervisor signals the started process's
// group (direct start, pipe mode) or the process alone (the init forwards
// itself; a PTY's foreground group gets the terminal's own signals).
func (c *child) groupSignals() bool { return c.initPID == 0 && c.tm == nil }

// signalled returns the pid the supervisor forwards signals to.
func (c *child) signalled() int {
	if c.initPID != 0 {
		return c.initPID
	}
	return c.pid
}

// status is the command's exit status once waited has delivered.
func (c *child) status() (code, sig int, known bool) {
	if c.initPID != 0 {
		select {
		case r, ok := <-c.final:
			if ok && r.Exited {
				return exitStatusOf(syscall.WaitStatus(r.Status))
			}
		case <-time.After(time.Second):
		}
		// The init died without a word (killed): the command died with it.
		if c.proc.ProcessState == nil {
			return -1, 0, false
		}
		code, sig = exitStatus(c.proc.ProcessState)
		return code, sig, true
	}
	if c.proc.ProcessState == nil {
		return -1, 0, false
	}
	code, sig = exitStatus(c.proc.ProcessState)
	return code, sig, true
}

func exitStatusOf(ws syscall.WaitStatus) (int, int, bool) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal()), true
	}
	return ws.ExitStatus(), 0, true
}

// startChild starts the command: through the run's init as root, else
// directly (agentwatch without privileges: no namespaces to make). Either
// way the command has a session of its own — never the operator's
// controlling terminal, from which TIOCSTI could type into the operator's
// shell — and in PTY mode the PTY is its only terminal.
func startChild(s childSpec) (*child, error) {
	top := &exec.Cmd{
		Stdin:  s.stdin,
		Stdout: s.stdout,
		Stderr: s.stderr,
		// Only matters when a stream is not an *os.File: a background
		// process that keeps the pipe open must not hang the run.
		WaitDelay:   time.Second,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true},
	}
	c := &child{proc: top}
	var tty *os.File
	if s.stdinT != nil {
		var err error
		if c.tm, tty, err = openTerminal(top, s.stdinT, s.target); err != nil {
			return nil, err
		}
	}
	closeTTY := func() {
		if tty != nil {
			// Only the child may hold the slave: the master then reads
			// EIO once the child's side is gone, which ends the output copy.
			tty.Close()
			tty = nil
		}
	}
	fail := func(err error) (*child, error) {
		closeTTY()
		if c.tm != nil {
			c.tm.ptmx.Close()
		}
		return nil, err
	}
	if !s.useInit {
		top.Path, top.Args, top.Env, top.Dir = s.path, s.argv, s.env, s.dir
		if s.target.Switch {
			top.SysProcAttr.Credential = &syscall.Credential{Uid: s.target.UID, Gid: s.target.GID, Groups: s.target.Groups}
		}
		if s.cgroup != nil {
			// CLONE_INTO_CGROUP: born in the run's cgroup, so the very
			// first exec is already inside the eBPF filter.
			top.SysProcAttr.UseCgroupFD = true
			top.SysProcAttr.CgroupFD = s.cgroup.FD()
		}
		var prepare func() error
		if s.ns.enforced() {
			prepare = s.ns.enterProtectedNamespace
		}
		waited, err := startNoNewPrivs(top, prepare)
		closeTTY()
		if err != nil {
			return fail(err)
		}
		c.pid, c.waited = top.Process.Pid, waited
		return c, nil
	}

	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("starting the run's init: %w", err))
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return fail(fmt.Errorf("starting the run's init: %w", err))
	}
	top.Path, top.Args, top.Env, top.Dir = "/proc/self/exe", []string{initArg0}, []string{}, "/"
	top.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	top.ExtraFiles = []*os.File{cfgR, statusW}
	if s.cgroup != nil {
		top.ExtraFiles = append(top.ExtraFiles, s.cgroup.dir)
	}
	waited, err := startNoNewPrivs(top, s.ns.enterProtectedNamespace)
	closeTTY()
	cfgR.Close()
	statusW.Close()
	if err != nil {
		cfgW.Close()
		statusR.Close()
		return fail(err)
	}
	cfg := initConfig{
		Path: s.path, Argv: s.argv, Env: s.env, Dir: s.dir,
		UID: s.target.UID, GID: s.target.GID, Groups: s.target.Groups, Switch: s.target.Switch,
		Terminal: c.tm != nil, Group: c.tm == nil, Cgroup: s.cgroup != nil, Seccomp: s.filter,
	}
	err = json.NewEncoder(cfgW).Encode(cfg)
	defer cfgW.Close() // lets the init reap: after onlyChild
	lines := bufio.NewScanner(statusR)
	var first initReport
	if err == nil {
		if !lines.Scan() {
			err = errors.New("the run's init exited before starting the command")
		} else if err = json.Unmarshal(lines.Bytes(), &first); err == nil && first.Err != "" {
			err = initStartError{msg: first.Err, errno: syscall.Errno(first.Errno)}
		}
	}
	if err == nil {
		c.pid, err = onlyChild(top.Process.Pid)
	}
	if err != nil {
		statusR.Close()
		_ = top.Process.Kill()
		<-waited
		return fail(err)
	}
	c.initPID, c.waited = top.Process.Pid, waited
	cfgW.Close()
	c.final = make(chan initReport, 1)
	go func() {
		defer statusR.Close()
		defer close(c.final)
		for lines.Scan() {
			var r initReport
			if json.Unmarshal(lines.Bytes(), &r) == nil && r.Exited {
				c.final <- r
				return
			}
		}
	}()
	return c, nil
}

// initStartError is the init's report that the command did not start; its
// errno keeps the shell's 126/127 distinction (startError).
type initStartError struct {
	msg   string
	errno syscall.Errno
}

func (e initStartError) Error() string { return e.msg }
func (e initStartError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

// onlyChild returns the host pid of the init's one child, the command: the
// init reports the namespace's numbering, the sensors see the host's.
func onlyChild(initPID int) (int, error) {
	p := "/proc/" + strconv.Itoa(initPID) + "/task/" + strconv.Itoa(initPID) + "/children"
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("finding the command's pid: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("finding the command's pid: the run's init has no child")
	}
	return strconv.Atoi(f[0])
}
