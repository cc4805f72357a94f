package supervisor

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/agentwatch/agentwatch/redact"
	"golang.org/x/sys/unix"
)

// readSecretFile is End.ReadFile, for the recorder's secret scan: it
// reads a file the agent wrote, as root, without following
// a symlink the agent may have planted there (to make us read
// /etc/shadow) and without blocking on a FIFO; only regular files, at
// most a little over ScanRun's bound.
func readSecretFile(p string) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: not a regular file", p)
	}
	return io.ReadAll(io.LimitReader(f, 4<<20+1))
}

// runRedactor is the content redactor the model proxy holds from before
// the child starts. The values it redacts are decided once the start
// snapshot says what is public (publicMetadata); until then it redacts
// the wider set decided without it.
type runRedactor struct {
	p atomic.Pointer[redact.Redactor]
}

func newRunRedactor(values []string) *runRedactor {
	r := &runRedactor{}
	r.p.Store(redact.New(values))
	return r
}

func (r *runRedactor) content(s string) string { return r.p.Load().Content(s) }

// setValues replaces the values, before the child starts.
func (c capturePlan) setValues(values []string) { c.values.p.Store(redact.New(values)) }
