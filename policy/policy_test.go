package policy

import (
	"regexp"
	"testing"
)

const (
	ws   = "/home/dev/src/app"
	home = "/home/dev"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern   string
		path      string
		workspace string
		home      string
		want      bool
	}{
		// unclean paths: the base-name reject runs before cleaning
		{"**/*.pem", ws + "/a/../b/key.pem", ws, home, true},
		{"**/*.pem", ws + "/a/key.pem/..", ws, home, false},
		{"**/*.pem", ws + "/keys/x.pem/.", ws, home, true},
		{".gitlab-ci.yml", ws + "/sub/../.gitlab-ci.yml", ws, home, true},
		// workspace-relative, anchored at the workspace root
		{".gitlab-ci.yml", ws + "/.gitlab-ci.yml", ws, home, true},
		{".gitlab-ci.yml", ws + "/sub/.gitlab-ci.yml", ws, home, false},
		{".gitlab-ci.yml", "/tmp/.gitlab-ci.yml", ws, home, false},
		{".github/workflows/**", ws + "/.github/workflows/ci.yml", ws, home, true},
		{".github/workflows/**", ws + "/.github/workflows/nested/x.yaml", ws, home, true},
		{".github/workflows/**", ws + "/.github/workflows", ws, home, true}, // the directory itself
		{".github/workflows/**", ws + "/.github/dependabot.yml", ws, home, false},
		{".github/workflows/**", ws + "/.github/workflowsX/a", ws, home, false},
		{".git/hooks/**", ws + "/.git/hooks/pre-commit", ws, home, true},
		{".git/hooks/**", ws + "/.git/objects/ab/cdef", ws, home, false},
		// prefix must end at a segment boundary
		{".agentwatch.yaml", ws + "-other/.agentwatch.yaml", ws, home, false},
		// ** at any depth
		{"**/.env", ws + "/.env", ws, home, true},
		{"**/.env", ws + "/services/api/.env", ws, home, true},
		{"**/.env", ws + "/.envrc", ws, home, false},
		{"**/.env.*", ws + "/.env.local", ws, home, true},
		{"**/.env.*", ws + "/.env", ws, home, false},
		{"**/*.pem", ws + "/certs/server.pem", ws, home, true},
		{"**/*.pem", ws + "/certs/server.pem.bak", ws, home, false},
		{"**/id_rsa*", "/home/dev/.ssh/id_rsa.pub", "", home, true},
		{"**/.env", "/srv/other/.env", "", home, true}, // no workspace: from /
		{"src/**/*_test.go", ws + "/src/a/b/x_test.go", ws, home, true},
		{"src/**/*_test.go", ws + "/src/x_test.go", ws, home, true},
		{"src/*.go", ws + "/src/a/x.go", ws, home, false}, // * does not cross /
		{"src/?.go", ws + "/src/a.go", ws, home, true},
		{"src/?.go", ws + "/src/ab.go", ws, home, false},
		// home
		{"~/.ssh/**", "/home/dev/.ssh/id_ed25519", ws, home, true},
		{"~/.ssh/**", "/home/other/.ssh/id_ed25519", ws, home, false},
		{"~/.ssh/**", "/home/dev/.ssh/id_ed25519", ws, "", false}, // unknown home: no match
		{"~/.bashrc", "/home/dev/.bashrc", ws, home, true},
		{"~/.bashrc", "/home/dev/x/.bashrc", ws, home, false},
		{"~/.config/gh/hosts.yml", "/root/.config/gh/hosts.yml", ws, "/root", true},
		// absolute
		{"/etc/**", "/etc/passwd", ws, home, true},
		{"/etc/**", "/home/dev/etc/passwd", ws, home, false},
		// unclean input paths
		{"~/.aws/**", "/home/dev/./.aws//credentials", ws, home, true},
		{"**/.env", "relative/.env", ws, home, false}, // only absolute paths
	}
	for _, tt := range tests {
		g, err := CompileGlob(tt.pattern)
		if err != nil {
			t.Fatalf("CompileGlob(%q): %v", tt.pattern, err)
		}
		if got := g.Match(tt.path, tt.workspace, tt.home); got != tt.want {
			t.Errorf("%q.Match(%q, ws=%q, home=%q) = %v, want %v", tt.pattern, tt.path, tt.workspace, tt.home, got, tt.want)
		}
	}
}

func TestZeroGlob(t *testing.T) {
	if (Glob{}).Match("/x", "", "") {
		t.Error("zero Glob matched")
	}
}

func TestCompileGlobErrors(t *testing.T) {
	for _, p := range []string{"", "~user/.ssh", "a**b/c", "src/[", "/", "a//b", "../x", "~/"} {
		if _, err := CompileGlob(p); err == nil {
			t.Errorf("CompileGlob(%q): no error", p)
		}
	}
}

func TestDefault(t *testing.T) {
	p := Default()
	if p.Mode != Observe {
		t.Errorf("mode = %q", p.Mode)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Version) {
		t.Errorf("version %q is not a sha256", p.Version)
	}
	secret := []string{"/home/dev/.ssh/id_rsa", "/home/dev/.aws/credentials", "/home/dev/.config/gh/hosts.yml",
		ws + "/.env", ws + "/deploy/.env.production", ws + "/tls/key.pem", "/tmp/id_rsa_backup"}
	for _, s := range secret {
		if !p.IsSecret(s, home) {
			t.Errorf("IsSecret(%q) = false", s)
		}
	}
	for _, s := range []string{ws + "/main.go", "/home/dev/.bashrc", ws + "/.envrc", "/home/dev/.config/gh/config.yml"} {
		if p.IsSecret(s, home) {
			t.Errorf("IsSecret(%q) = true", s)
		}
	}
	protected := []string{ws + "/.github/workflows/ci.yml", ws + "/.gitlab-ci.yml", ws + "/.agentwatch.yaml",
		ws + "/.git/hooks/post-checkout", "/home/dev/.bashrc", "/home/dev/.profile"}
	for _, s := range protected {
		if !p.IsProtected(s, ws, home) {
			t.Errorf("IsProtected(%q) = false", s)
		}
	}
	for _, s := range []string{ws + "/main.go", ws + "/.git/config", "/tmp/.gitlab-ci.yml", "/home/dev/.bash_history"} {
		if p.IsProtected(s, ws, home) {
			t.Errorf("IsProtected(%q) = true", s)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.IsSecret("/home/dev/.ssh/id_rsa", home) || nilPolicy.IsProtected(ws+"/.gitlab-ci.yml", ws, home) {
		t.Error("nil policy matched")
	}
}

func TestVersion(t *testing.T) {
	a, err := New(Observe, []string{"a/**", "b"}, []string{"**/.env"})
	if err != nil {
		t.Fatal(err)
	}
	reordered, err := New(Observe, []string{"b", "a/**"}, []string{"**/.env"})
	if err != nil {
		t.Fatal(err)
	}
	enforce, err := New(Enforce, []string{"a/**", "b"}, []string{"**/.env"})
	if err != nil {
		t.Fatal(err)
	}
	moved, err := New(Observe, []string{"a/**"}, []string{"**/.env", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != reordered.Version {
		t.Error("pattern order changed the version")
	}
	if a.Version == enforce.Version || a.Version == moved.Version {
		t.Error("a different policy has the same version")
	}
	if Default().Version != Default().Version {
		t.Error("default version is not stable")
	}
	if _, err := New("block", nil, nil); err == nil {
		t.Error("unknown mode accepted")
	}
	if _, err := New(Observe, []string{"x/a**"}, nil); err == nil {
		t.Error("bad glob accepted")
	}
}
