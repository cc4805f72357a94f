package supervisor

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/agentwatch/agentwatch/recorder"
	"github.com/agentwatch/agentwatch/redact"
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
	written := rec.SecretWrites()
	res := secretscan.ScanRun(diff, root, written, readSecretFile)
	// What the scan found is redacted wherever else it appears (an
	// argument, a path), not only where its context gave it away.
	found := secretscan.Values(diff)
	for _, p := range written {
		if data, err := readSecretFile(p); err == nil && len(data) <= 4<<20 {
			found = append(found, secretscan.Values(data)...)
		}
	}
	rec.RedactAlso(found)
	if len(diff) > 0 {
		// What the scan found, and the dropped values the child wrote
		// into a file, must not survive in the stored diff either: the
		// diff kept (and hashed on the git_diff span) is the one the
		// run's redactor made, the same redactor the trace goes through.
		if red := rec.Redactor().Bytes(diff); !bytes.Equal(red, diff) {
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
