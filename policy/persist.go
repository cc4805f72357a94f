package policy

// Persistence: files whose change runs code later, outside the run — a
// git hook, a shell start-up file, a cron table, a systemd user unit, an
// authorized key, git's own configuration. Two lists, both data:
//
//   - BuiltinProtect: in enforce mode, with files.builtin_protect (true
//     by default), these are protected (read-only) in addition to
//     files.protect. A policy opts out with files.builtin_protect: false.
//     Observe mode protects nothing, so the list does not apply there;
//     the persistence alert (below) still fires.
//   - PersistencePaths: a write, create, rename, link or symlink into any
//     of them is the recorder's `persistence` alert (high), in every mode,
//     whatever the policy says. System paths (cron) are here but not in
//     BuiltinProtect: the child runs as an unprivileged user with
//     no_new_privs, and agentwatch never remounts system directories.

import "strings"

// BuiltinProtect are the built-in protected paths of enforce mode
// (files.builtin_protect).
var BuiltinProtect = []string{
	".git/hooks/**",
	"~/.bashrc",
	"~/.bash_profile",
	"~/.bash_login",
	"~/.profile",
	"~/.bash_logout",
	"~/.zshrc",
	"~/.zshenv",
	"~/.zprofile",
	"~/.zlogin",
	"~/.config/fish/config.fish",
	"~/.config/fish/conf.d/**",
	"~/.config/autostart/**",
	"~/.config/systemd/user/**",
	"~/.local/share/systemd/user/**",
	"~/.ssh/authorized_keys",
	"~/.ssh/rc",
	"~/.gitconfig",
	"~/.config/git/**",
}

// PersistencePath is one pattern of the persistence rule and what a
// change there makes run later.
type PersistencePath struct {
	Pattern string
	What    string
}

// PersistencePaths are the paths of the persistence rule.
var PersistencePaths = []PersistencePath{
	{".git/hooks/**", "a git hook"},
	{"~/.bashrc", "a shell start-up file"},
	{"~/.bash_profile", "a shell start-up file"},
	{"~/.bash_login", "a shell start-up file"},
	{"~/.profile", "a shell start-up file"},
	{"~/.bash_logout", "a shell start-up file"},
	{"~/.zshrc", "a shell start-up file"},
	{"~/.zshenv", "a shell start-up file"},
	{"~/.zprofile", "a shell start-up file"},
	{"~/.zlogin", "a shell start-up file"},
	{"~/.config/fish/config.fish", "a shell start-up file"},
	{"~/.config/fish/conf.d/**", "a shell start-up file"},
	{"~/.config/autostart/**", "a desktop autostart entry"},
	{"/var/spool/cron/**", "a cron table"},
	{"/etc/cron*/**", "a cron table"},
	{"~/.config/systemd/user/**", "a systemd user unit"},
	{"~/.local/share/systemd/user/**", "a systemd user unit"},
	{"~/.ssh/authorized_keys", "an SSH authorized key"},
	{"~/.ssh/rc", "an SSH login script"},
	{"~/.ssh/config", "SSH client configuration"},
	{"~/.gitconfig", "git configuration"},
	{"~/.config/git/config", "git configuration"},
	{"~/.config/git/attributes", "git attributes (filter and diff drivers)"},
}

var (
	builtinProtectGlobs = mustGlobs(BuiltinProtect)
	persistenceGlobs    = func() []Glob {
		out := make([]Glob, len(PersistencePaths))
		for i, p := range PersistencePaths {
			out[i] = MustGlob(p.Pattern)
		}
		return out
	}()
	builtinProtectIdx = newGlobIndex(builtinProtectGlobs)
	persistenceIdx    = newGlobIndex(persistenceGlobs)
)

func mustGlobs(patterns []string) []Glob {
	out := make([]Glob, len(patterns))
	for i, s := range patterns {
		out[i] = MustGlob(s)
	}
	return out
}

// Persistence reports whether a change of path (absolute) runs code later,
// and what it is: the persistence rule. workspace anchors .git/hooks; home
// anchors the "~/" paths, which match nothing when it is empty.
func Persistence(path, workspace, home string) (pattern, what string, ok bool) {
	if i := matchIndexed(persistenceIdx, persistenceGlobs, path, workspace, home); i >= 0 {
		return PersistencePaths[i].Pattern, PersistencePaths[i].What, true
	}
	return "", "", false
}

// ProtectGlobs are the patterns protected in this run: files.protect, and
// in enforce mode with files.builtin_protect the BuiltinProtect list,
// without repeats. The supervisor plans its read-only binds from it.
func (p *Policy) ProtectGlobs() []Glob {
	if p == nil {
		return nil
	}
	if !p.builtinProtectApplies() {
		return p.Protect
	}
	out := make([]Glob, 0, len(p.Protect)+len(builtinProtectGlobs))
	seen := make(map[string]bool, cap(out))
	for _, g := range append(append([]Glob(nil), p.Protect...), builtinProtectGlobs...) {
		if !seen[g.String()] {
			seen[g.String()] = true
			out = append(out, g)
		}
	}
	return out
}

// builtinProtectApplies: the BuiltinProtect list is protected in this run.
func (p *Policy) builtinProtectApplies() bool { return p.Mode == Enforce && p.BuiltinProtect }

// gitExecKeys are git configuration keys whose value git runs as a
// command later (git help config), lower-case; "*" stands for one
// subsection name.
var gitExecKeys = []string{
	"core.hookspath", "core.fsmonitor", "core.sshcommand", "core.pager", "core.editor",
	"core.askpass", "core.gitproxy", "sequence.editor", "diff.external", "gpg.program",
	"gpg.*.program", "credential.helper", "credential.*.helper", "uploadpack.packobjectshook",
	"include.path", "includeif.*.path", "filter.*.clean", "filter.*.smudge", "filter.*.process",
	"diff.*.textconv", "diff.*.command", "merge.*.driver", "mergetool.*.cmd", "difftool.*.cmd",
	"pager.*", "remote.*.receivepack", "remote.*.uploadpack", "web.browser", "browser.*.cmd",
	"protocol.ext.allow", "ssh.variant",
}

// GitConfigExecutes reports whether a git configuration entry makes git
// run a command later: one of gitExecKeys, or an alias whose value starts
// with "!" (a shell command). key is as `git config --list` prints it.
func GitConfigExecutes(key, value string) bool {
	k := strings.ToLower(key)
	if strings.HasPrefix(k, "alias.") {
		return strings.HasPrefix(strings.TrimSpace(value), "!")
	}
	for _, pat := range gitExecKeys {
		if gitKeyMatch(pat, k) {
			return true
		}
	}
	return false
}

// gitKeyMatch matches section.*.name against section.sub.name (the
// subsection may contain dots) and section.* against section.anything.
func gitKeyMatch(pat, k string) bool {
	before, after, wild := strings.Cut(pat, "*")
	if !wild {
		return pat == k
	}
	return strings.HasPrefix(k, before) && strings.HasSuffix(k, after) && len(k) > len(before)+len(after)
}
