package supervisor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// ErrCommandNotFound: the command is not on the child's PATH (or the path
// given does not exist).
var ErrCommandNotFound = errors.New("command not found")

// ErrCannotExecute: the command exists but cannot be executed (no execute
// permission, a directory, a bad binary format).
var ErrCannotExecute = errors.New("cannot execute")

// interruptWindow: a second SIGINT this soon after the first kills the
// whole run instead of being forwarded again.
const interruptWindow = 2 * time.Second

// outputDrain bounds the wait for the PTY output after the child exited;
// a process that escaped the cgroup may hold the terminal open forever.
const outputDrain = 2 * time.Second

// LookPath resolves name the way the child's execve(2)+PATH search would,
// using the child's PATH (not agentwatch's) and dir for relative paths.
func LookPath(name, pathEnv, dir string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty command", ErrCommandNotFound)
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("%w: %s", ErrCommandNotFound, name)
			}
			return "", fmt.Errorf("%w %s: %v", ErrCannotExecute, name, err)
		}
		return p, nil
	}
	var denied error
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "." // an empty PATH entry means the current directory
		}
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		err := executable(p)
		if err == nil {
			return p, nil
		}
		// A directory of PATH this user cannot search holds nothing for
		// the search (a shell skips it too): root's PATH under su.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		// Like a shell: found, but not runnable, is 126 not 127.
		return "", fmt.Errorf("%w %s: %v", ErrCannotExecute, name, denied)
	}
	return "", fmt.Errorf("%w: %s", ErrCommandNotFound, name)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fs.ErrNotExist
		}
		return errors.Unwrap(err)
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return errors.New("permission denied")
	}
	return nil
}

// startError maps a failed execve to the shell's distinction.
func startError(name string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT:
			return fmt.Errorf("%w: %s", ErrCommandNotFound, name)
		case syscall.EACCES, syscall.ENOEXEC, syscall.EISDIR, syscall.EPERM, syscall.ETXTBSY:
			return fmt.Errorf("%w %s: %v", ErrCannotExecute, name, errno)
		}
	}
	return fmt.Errorf("starting %s: %w", name, err)
}

// startNoNewPrivs starts cmd from a thread that has no_new_privs set, so the
// forked child inherits it without a shim exec. The thread stays locked
// until the child is reaped: Pdeathsig fires when the forking *thread*
// exits, not the process. The goroutine then returns still locked, so the
// runtime discards the thread instead of reusing it with no_new_privs set
// (or in the child's mount namespace).
//
// prepare, when not nil, runs first on that thread: it may change
// per-thread state the child must inherit (protect.go's mount namespace).
// If it fails, nothing is started and the thread is discarded all the same.
func startNoNewPrivs(cmd *exec.Cmd, prepare func() error) (<-chan error, error) {
	started := make(chan error, 1)
	waited := make(chan error, 1)
	launch := func() {
		runtime.LockOSThread()
		if prepare != nil {
			if err := prepare(); err != nil {
				started <- err
				return
			}
		}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			started <- fmt.Errorf("setting no_new_privs: %w", err)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			launch() // returns still locked: the runtime discards this thread
			return
		}
		// The main thread is never discarded (the runtime parks it for
		// good instead), and it is what /proc/self shows: it must not keep
		// the child's no_new_privs and mount namespace. Holding it locked,
		// hand the launch to a goroutine that therefore runs elsewhere.
		done := make(chan struct{})
		go func() {
			defer close(done)
			launch()
		}()
		<-done
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}

// exitStatus is the shell convention: the code, or 128+signal.
func exitStatus(ps *os.ProcessState) (code, sig int) {
	if ps == nil {
		return -1, 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ps.ExitCode(), 0
}

// terminal is the PTY side of a run whose stdin is a terminal.
type terminal struct {
	stdin   *os.File
	ptmx    *os.File
	restore func()
	outDone chan struct{}
}

// isTerminal reports whether r is a terminal the child should get a PTY for.
func isTerminal(r io.Reader) (*os.File, bool) {
	f, ok := r.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}

// openTerminal prepares cmd to run on a new PTY sized like stdin's
// terminal, its slave owned by the child's user.
func openTerminal(cmd *exec.Cmd, stdin *os.File, t Account) (*terminal, *os.File, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("opening pty: %w", err)
	}
	_ = pty.InheritSize(stdin, ptmx) // no size known: the kernel default stands
	if t.Switch {
		if err := os.Chown(tty.Name(), int(t.UID), -1); err != nil {
			ptmx.Close()
			tty.Close()
			return nil, nil, fmt.Errorf("giving the pty to uid %d: %w", t.UID, err)
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0 // the child's fd 0
	return &terminal{stdin: stdin, ptmx: ptmx, restore: func() {}, outDone: make(chan struct{})}, tty, nil
}

// attach puts the user's terminal in raw mode (the child's PTY does the
// line discipline now) and starts copying both ways.
func (tm *terminal) attach(stdout io.Writer) error {
	old, err := term.MakeRaw(int(tm.stdin.Fd()))
	if err != nil {
		return fmt.Errorf("making the terminal raw: %w", err)
	}
	var once sync.Once
	tm.restore = func() {
		once.Do(func() { _ = term.Restore(int(tm.stdin.Fd()), old) })
	}
	// Not waited for at exit: it blocks in read until the next keystroke.
	go func() { _, _ = io.Copy(tm.ptmx, tm.stdin) }()
	go func() {
		defer close(tm.outDone)
		_, _ = io.Copy(stdout, tm.ptmx) // ends with EIO once every slave fd is closed
	}()
	return nil
}

// finish waits (bounded) for the child's last output, then gives the user
// the terminal back.
func (tm *terminal) finish() {
	select {
	case <-tm.outDone:
	case <-time.After(outputDrain):
	}
	tm.restore()
	tm.ptmx.Close()
}

// catchSignals starts queueing the signals the supervisor forwards. It is
// called before the child starts, so a signal sent as soon as the child
// runs is queued rather than lost.
func catchSignals() (chan os.Signal, func()) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGWINCH)
	return sigs, func() { signal.Stop(sigs) }
}

// forwardSignals relays what the supervisor receives to the child until
// waited delivers, and returns the child's wait result. A second SIGINT
// within interruptWindow calls kill (the whole cgroup).
func forwardSignals(sigs <-chan os.Signal, pid int, group bool, tm *terminal, waited <-chan error, kill func()) error {
	if tm != nil {
		_ = pty.InheritSize(tm.stdin, tm.ptmx)
	}
	var lastInt time.Time
	for {
		select {
		case err := <-waited:
			return err
		case s := <-sigs:
			sig := s.(syscall.Signal)
			switch {
			case sig == syscall.SIGWINCH:
				if tm != nil {
					_ = pty.InheritSize(tm.stdin, tm.ptmx)
				}
				continue
			case sig == syscall.SIGINT && !lastInt.IsZero() && time.Since(lastInt) < interruptWindow:
				kill()
				continue
			case sig == syscall.SIGINT:
				lastInt = time.Now()
			}
			target := pid
			if group {
				target = -pid // the child leads its own process group
			}
			_ = syscall.Kill(target, sig)
		}
	}
}
