package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// ErrUnknownUser: --user names nobody in the user database.
var ErrUnknownUser = errors.New("unknown user")

// ErrRootRefused: agentwatch runs as root, was not started through sudo and
// was not told to run the command as root.
var ErrRootRefused = errors.New("refusing to run the command as root")

// Account is the user the child runs as.
type Account struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups, the primary group included
	Name     string
	Home     string
	// Switch: the child's user differs from agentwatch's, so credentials
	// are set on the child and HOME/USER/LOGNAME rewritten.
	Switch bool
}

// ResolveAccount decides who the child runs as. spec is --user (a name or
// a numeric uid, empty when not given); euid is agentwatch's effective uid;
// getenv reads agentwatch's environment (SUDO_UID, SUDO_GID); dir is the
// child's working directory.
//
// As root the child never stays root by accident: without --user the
// invoking sudo user is used; without sudo, the owner of dir (a CI runner
// working in a checkout it does not own); and when dir is root's too, the
// run is refused unless --user root says so explicitly. Without root the child runs as the
// current user and --user may only name that user.
func ResolveAccount(spec string, euid int, getenv func(string) string, dir string) (Account, error) {
	if euid != 0 {
		u, err := lookupUser(strconv.Itoa(euid))
		if err != nil {
			// No passwd entry (containers with an arbitrary uid): the
			// child simply keeps agentwatch's identity.
			u = &user.User{Uid: strconv.Itoa(euid), Gid: strconv.Itoa(os.Getegid()), Username: strconv.Itoa(euid)}
		}
		if spec != "" && spec != u.Username && spec != u.Uid {
			if _, err := lookupUser(spec); err != nil {
				return Account{}, err // a name that is no one's says so first
			}
			return Account{}, fmt.Errorf("running as user %s: --user needs root (agentwatch runs as uid %d)", spec, euid)
		}
		t, err := accountOf(u, "")
		t.Switch = false
		return t, err
	}
	if spec != "" {
		u, err := lookupUser(spec)
		if err != nil {
			return Account{}, err
		}
		t, err := accountOf(u, "")
		t.Switch = t.UID != 0
		return t, err
	}
	if sudoUID := getenv("SUDO_UID"); sudoUID != "" {
		u, err := user.LookupId(sudoUID)
		if err != nil {
			// sudo vouches for the uid even when the database does not
			// know it; keep what sudo told us.
			u = &user.User{Uid: sudoUID, Gid: getenv("SUDO_GID"), Username: getenv("SUDO_USER"), HomeDir: "/"}
			if u.Gid == "" {
				u.Gid = sudoUID
			}
		}
		t, err := accountOf(u, getenv("SUDO_GID"))
		t.Switch = t.UID != 0
		return t, err
	}
	// Root without sudo (a CI runner): the owner of the checkout is the
	// user the job meant to act as.
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			u, err := user.LookupId(strconv.Itoa(int(st.Uid)))
			if err != nil {
				u = &user.User{Uid: strconv.Itoa(int(st.Uid)), Gid: strconv.Itoa(int(st.Gid)), Username: strconv.Itoa(int(st.Uid)), HomeDir: "/"}
			}
			t, err := accountOf(u, "")
			t.Switch = true
			return t, err
		}
	}
	return Account{}, fmt.Errorf("%w: pass --user root to allow it, or --user NAME", ErrRootRefused)
}

func lookupUser(spec string) (*user.User, error) {
	if _, err := strconv.ParseUint(spec, 10, 32); err == nil {
		if u, err := user.LookupId(spec); err == nil {
			return u, nil
		}
	}
	u, err := user.Lookup(spec)
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, spec)
	}
	return u, nil
}

func accountOf(u *user.User, gidOverride string) (Account, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("reading uid of %s: %w", u.Username, err)
	}
	gidStr := u.Gid
	if gidOverride != "" {
		gidStr = gidOverride
	}
	gid, err := strconv.ParseUint(gidStr, 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("reading gid of %s: %w", u.Username, err)
	}
	t := Account{UID: uint32(uid), GID: uint32(gid), Name: u.Username, Home: u.HomeDir}
	seen := map[uint32]bool{t.GID: true}
	t.Groups = append(t.Groups, t.GID)
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			g, err := strconv.ParseUint(s, 10, 32)
			if err != nil || seen[uint32(g)] {
				continue
			}
			seen[uint32(g)] = true
			t.Groups = append(t.Groups, uint32(g))
		}
	}
	return t, nil
}

// childEnv is env with HOME, USER and LOGNAME of t when the user changes,
// so the child does not write into root's home through a sudo-kept HOME.
func childEnv(env []string, t Account) []string {
	if !t.Switch {
		return env
	}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "USER" || k == "LOGNAME" {
			continue
		}
		out = append(out, kv)
	}
	home := t.Home
	if home == "" {
		home = "/"
	}
	return append(out, "HOME="+home, "USER="+t.Name, "LOGNAME="+t.Name)
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}
