package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"

	"github.com/agentwatch/agentwatch/secretscan"
	"github.com/agentwatch/agentwatch/workspace"
)

// maxScannedFile bounds a written secret file read for the values to
// redact elsewhere (ScanRun has its own bound for the findings).
const maxScannedFile = 4 << 20

// ScanSecrets is the end-of-run secret scan (the secret_scan span): the
// added lines of the final diff, and the files matching files.secrets
// that the run wrote and the diff does not hold (an ignored .env,
// ~/.aws/credentials), read with read (the caller's I/O: it must not
// follow a symlink the agent planted). What it finds is redacted
// wherever else it appears in the trace, and the diff in ev is replaced
// by the redacted one (with its digest): the artifact a sink may keep.
//
// Finish runs it when End.ReadFile is set and End.SecretScan is not.
func (r *Recorder) ScanSecrets(ev *workspace.Evidence, read func(string) ([]byte, error)) *secretscan.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scanSecrets(ev, read)
}

func (r *Recorder) scanSecrets(ev *workspace.Evidence, read func(string) ([]byte, error)) *secretscan.Result {
	var diff []byte
	root := ""
	if ev != nil && ev.Absent == "" {
		diff, root = ev.Diff, ev.Root
	}
	written := r.secretWrites()
	res := secretscan.ScanRun(diff, root, written, read)
	// What the scan found is redacted wherever else it appears (an
	// argument, a path), not only where its context gave it away.
	found := secretscan.Values(diff)
	for _, p := range written {
		if data, err := read(p); err == nil && len(data) <= maxScannedFile {
			found = append(found, secretscan.Values(data)...)
		}
	}
	r.redactAlso(found)
	if len(diff) > 0 {
		// What the scan found, and the dropped values the child wrote
		// into a file, must not survive in the kept diff either: it is
		// the one the run's redactor made, the same the trace goes
		// through, and git_diff's digest describes it.
		if red := r.redactor().Bytes(diff); !bytes.Equal(red, diff) {
			sum := sha256.Sum256(red)
			ev.Diff, ev.DiffSHA256 = red, hex.EncodeToString(sum[:])
		}
	}
	return &res
}
