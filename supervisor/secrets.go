package supervisor

import (
	"fmt"
	"io"
	"os"

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
