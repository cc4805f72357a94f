package ebpf

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxWatchedReads is how many files WatchReads can watch in one run (the
// size of the kernel's secrets map).
const MaxWatchedReads = 16384

// ErrTooManyReads: WatchReads was given more files than the map holds; the
// ones that fit are watched.
var ErrTooManyReads = errors.New("too many files to watch for reads")

// WatchReads makes successful read-only opens of these files by the run's
// processes reported as event.FileRead (the path the kernel resolved for the
// open). Files are matched by identity (device and inode), so a read
// through a symlink, a hard link or a relative path is seen too; a path that
// does not exist (or is not a regular file) is skipped, since a file created
// later is reported as a write anyway. It returns how many files are
// watched; it may be called again to add more.
func (s *Sensor) WatchReads(paths []string) (int, error) {
	if len(paths) == 0 {
		return 0, nil
	}
	devs, err := mountDevs()
	if err != nil {
		return 0, err
	}
	n := 0
	one := uint8(1)
	for _, p := range paths {
		k, ok := secretKeyOf(p, devs)
		if !ok {
			continue
		}
		if err := s.objs.Secrets.Update(k, one, 0); err != nil {
			if errors.Is(err, unix.E2BIG) {
				return n, fmt.Errorf("watching reads of %s: %w (at most %d)", p, ErrTooManyReads, MaxWatchedReads)
			}
			return n, fmt.Errorf("watching reads of %s: %w", p, err)
		}
		n++
	}
	return n, nil
}

// secretKeyOf is the kernel's identity of the regular file at p. The device
// is the super block's (what f_inode->i_sb->s_dev holds), taken from the
// mount the file is on: stat's st_dev is not always that (btrfs reports a
// per-subvolume device), mountinfo's major:minor is.
func secretKeyOf(p string, devs map[uint64]uint32) (agentwatchSecretKey, bool) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_TYPE|unix.STATX_INO|unix.STATX_MNT_ID, &stx); err != nil {
		return agentwatchSecretKey{}, false
	}
	if stx.Mode&unix.S_IFMT != unix.S_IFREG {
		return agentwatchSecretKey{}, false
	}
	dev, ok := devs[stx.Mnt_id]
	if !ok || stx.Mask&unix.STATX_MNT_ID == 0 {
		dev = kernelDev(stx.Dev_major, stx.Dev_minor)
	}
	return agentwatchSecretKey{Ino: stx.Ino, Dev: dev}, true
}

// kernelDev is the kernel-internal dev_t (MKDEV): 12 bits major, 20 minor.
func kernelDev(major, minor uint32) uint32 { return major<<20 | minor&0xfffff }

// mountDevs maps mount ids to their super block's device, from
// /proc/self/mountinfo ("36 35 98:0 / /mnt ...": id, parent, major:minor).
func mountDevs() (map[uint64]uint32, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	devs := map[uint64]uint32{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		id, dev, ok := parseMountinfoDev(sc.Text())
		if ok {
			devs[id] = dev
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	return devs, nil
}

func parseMountinfoDev(line string) (id uint64, dev uint32, ok bool) {
	fields := strings.SplitN(line, " ", 4)
	if len(fields) < 4 {
		return 0, 0, false
	}
	id, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	ma, mi, found := strings.Cut(fields[2], ":")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.ParseUint(ma, 10, 32)
	minor, err2 := strconv.ParseUint(mi, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return id, kernelDev(uint32(major), uint32(minor)), true
}
