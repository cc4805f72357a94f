package ebpf

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/agentwatch/agentwatch/event"
)

// decodeSeeds are records as bpf/agentwatch.c lays them out, one or more
// of each kind, built the way TestDecode builds them.
func decodeSeeds() [][]byte {
	return [][]byte{
		newRec(kindFork, 4242, 5, forkSize).u32(16, 100).b,
		newRec(kindExit, 4242, 5, exitSize).u32(16, 0x80|11).b,
		newRec(kindExec, 4242, 5, execFixedSize).u32(16, 100).u32(20, 1000).u32(24, 1001).
			strs(28, "/usr/bin/bash\x00", "bash\x00-c\x00make test\x00", "/work/repo\x00").b,
		newRec(kindExec, 4242, 5, execFixedSize).u8(34, 1).strs(28, "./x.sh\x00", "echo\x00aaa\x00bb", "/w\x00").b,
		newRec(kindEnv, 7, 1, envFixedSize).strs(16, "A=1\x00PA", "TH=/bin\x00TRACEPARENT=00-a-b-01\x00").u32(20, 1000).b,
		newRec(kindEnv, 7, 1, envFixedSize).strs(16, "A=1\x00B=2\x00", "").u32(20, 8).b,
		newRec(kindFile, 4242, 5, fileFixedSize).u8(16, uint8(event.FileCreate)).u32(24, 0o644).strs(28, "", "/work/repo/new.txt\x00").b,
		newRec(kindFile, 4242, 5, fileFixedSize).u8(16, uint8(event.FileRename)).
			strs(28, "a.txt\x00", "/w/src\x00", "../dst/b.txt\x00", "/w/src\x00").b,
		newRec(kindFile, 4242, 5, fileFixedSize).u8(16, uint8(event.FileSymlink)).
			strs(28, "ci.yml\x00", "/w\x00", "../.github/workflows/ci.yml\x00", "").b,
		newRec(kindFile, 4242, 5, fileFixedSize).u8(16, uint8(event.FileSetxattr)).strs(28, "", "/w/f\x00", "security.capability\x00", "").b,
		newRec(kindUnix, 4242, 5, unixSize).u8(16, uint8(event.NetConnect)).u8(17, uint8(event.Unix)).
			u16(18, 9).u32(24, 77).bytes(32, "/run/x.s\x00").b,
		newRec(kindUnix, 4242, 5, unixSize).u16(18, 5).bytes(32, "\x00tmux").b,
		newRec(kindRing, 4242, 5, uringSize).u32(16, 8).u32(20, 38).b,
		newRec(kindNet, 4242, 5, netSize).u8(16, uint8(event.NetConnect)).u8(17, uint8(event.TCP)).
			u16(18, afInet).u16(24, 443).bytes(32, "\x7f\x00\x00\x01").b,
		newRec(kindNet, 4242, 5, netSize).u8(16, uint8(event.NetSendTo)).u8(17, uint8(event.UDP)).
			u16(18, afInet6).u16(24, 53).bytes(32, "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01").b,
	}
}

// FuzzDecode: no ring-buffer record, whatever its bytes, makes decode
// panic; a decoded event owns its strings (the reader reuses the record's
// memory for the next one), except execEnv, which by design aliases it and
// is consumed at once; and its strings come from the record, so they are
// never longer than it.
func FuzzDecode(f *testing.F) {
	for _, b := range decodeSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		ev, err := decode(in, 1_700_000_000_000_000_000)
		if err != nil {
			if ev != nil {
				t.Fatalf("an error (%v) and an event %#v", err, ev)
			}
			return
		}
		if e, ok := ev.(execEnv); ok {
			total := 0
			for _, kv := range e.entries() {
				if bytes.IndexByte(kv, 0) >= 0 {
					t.Fatalf("entry %q holds a NUL", kv)
				}
				total += len(kv)
			}
			if total > len(b) {
				t.Fatalf("entries of %d bytes from a %d-byte record", total, len(b))
			}
			return
		}
		before := reflect.ValueOf(ev).Interface()
		snapshot := deepCopy(before)
		for i := range in {
			in[i] ^= 0xff // the reader's next record
		}
		if !reflect.DeepEqual(snapshot, ev) {
			t.Fatalf("event changed with the record's memory:\n was %#v\n now %#v", snapshot, ev)
		}
		for _, s := range eventStrings(ev) {
			// joinPath may add a '/' between a directory and a name.
			if len(s) > len(b)+1 {
				t.Fatalf("string of %d bytes from a %d-byte record", len(s), len(b))
			}
		}
	})
}

// deepCopy copies the event's strings and slices, so that a later change
// through aliased memory shows as a difference.
func deepCopy(ev any) any {
	switch e := ev.(type) {
	case event.Exec:
		e.Filename, e.Cwd = string([]byte(e.Filename)), string([]byte(e.Cwd))
		argv := make([]string, len(e.Argv))
		for i, a := range e.Argv {
			argv[i] = string([]byte(a))
		}
		if e.Argv == nil {
			argv = nil
		}
		e.Argv = argv
		return e
	case event.File:
		e.Path, e.NewPath, e.Detail = string([]byte(e.Path)), string([]byte(e.NewPath)), string([]byte(e.Detail))
		return e
	case event.Connect:
		e.UnixPath = string([]byte(e.UnixPath))
		return e
	}
	return ev
}

func eventStrings(ev any) []string {
	switch e := ev.(type) {
	case event.Exec:
		return append([]string{e.Filename, e.Cwd}, e.Argv...)
	case event.File:
		return []string{e.Path, e.NewPath, e.Detail}
	case event.Connect:
		return []string{e.UnixPath}
	}
	return nil
}

// FuzzDecodeNetRec: no network-decision record makes decodeNetRec panic,
// and every decoded one has a verdict and a rule.
func FuzzDecodeNetRec(f *testing.F) {
	rec := func(verdict, reason, op, proto byte) []byte {
		b := make([]byte, netRecSize)
		b[0], b[1], b[2], b[3], b[4] = 1, verdict, reason, op, proto
		b[6], b[7] = 0xbb, 0x01 // port 443
		b[8] = 42               // pid
		copy(b[32:], []byte{10, 0, 0, 1})
		return b
	}
	for v := byte(1); v <= 3; v++ {
		for r := byte(1); r <= 6; r++ {
			f.Add(rec(v, r, 1+r%2, 1+v%2))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeNetRec(b, 0)
		if err != nil {
			return
		}
		if d.Verdict == 0 || d.Rule == "" || d.Check == "" {
			t.Fatalf("decoded %+v without a verdict, rule or check", d)
		}
	})
}
