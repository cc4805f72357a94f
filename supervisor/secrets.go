package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/secretscan"
	"github.com/agentwatch/agentwatch/workspace"
	"golang.org/x/sys/unix"
)

// scanSecrets is the end-of-run secret scan (the secret_scan span): the
// added lines of the final diff, and the files matching files.secrets
// that the run wrote and the diff does not hold (an ignored .env,
// ~/.aws/credentials). It runs after the sensors stopped, so nothing of
// the run changes the files under it.
func scanSecrets(rec *recorder.Recorder, ev *workspace.Evidence) *secretscan.Result {
	var diff []byte
	root := ""
	if ev != nil && ev.Absent == "" {
		diff, root = ev.Diff, ev.Root
	}
	res := secretscan.ScanRun(diff, root, rec.SecretWrites(), readSecretFile)
	if len(diff) > 0 {
		// What the scan found must not survive in the stored diff either:
		// the diff kept (and hashed on the git_diff span) is the redacted
		// one.
		if red, n := secretscan.Redact(diff); n > 0 {
			sum := sha256.Sum256(red)
			ev.Diff, ev.DiffSHA256 = red, hex.EncodeToString(sum[:])
		}
	}
	return &res
}

// readSecretFile reads a file the agent wrote, as root, without following
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
