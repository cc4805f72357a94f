package privtest

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"testing"
)

// User returns the unprivileged account name, creating it with useradd
// when it is missing (login shell /bin/bash, home home, or useradd's
// default /home/NAME when home is ""). Its home is made to exist and
// belong to it even when someone else created the account without one,
// since the tests write a real user's dotfiles there. The account is kept
// after the test: the next run reuses it.
//
// User is privileged: it calls Require first.
func User(t testing.TB, name, home string) *user.User {
	t.Helper()
	Require(t)
	u, err := user.Lookup(name)
	if errors.As(err, new(user.UnknownUserError)) {
		args := []string{"-m", "-s", "/bin/bash"}
		if home != "" {
			args = append(args, "-d", home)
		}
		if out, err := exec.Command("useradd", append(args, name)...).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v: %s", name, err, out)
		}
		u, err = user.Lookup(name)
	}
	if err != nil {
		t.Fatalf("looking up %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// useradd -m may have been skipped by whoever made the user.
	if err := os.MkdirAll(u.HomeDir, 0o755); err != nil {
		t.Fatalf("creating home %s: %v", u.HomeDir, err)
	}
	if err := os.Chown(u.HomeDir, uid, gid); err != nil {
		t.Fatalf("chown home %s: %v", u.HomeDir, err)
	}
	return u
}
