package fileclass

import "testing"

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		abs, rel string
		secret   bool
		want     string
	}{
		{"/w/main.go", "main.go", false, Source},
		{"/w/main_test.go", "main_test.go", false, Test},
		{"/w/tests/helpers.py", "tests/helpers.py", false, Test},
		{"/w/go.sum", "go.sum", false, Lockfile},
		{"/w/.github/workflows/ci.yml", ".github/workflows/ci.yml", false, Workflow},
		{"/w/main.go", "main.go", true, Secret}, // a secret whatever its extension
		{"/w/vendor/a/b.go", "vendor/a/b.go", false, Generated},
		{"/w/go.mod", "go.mod", false, Config},
		{"/w/docs/x.png", "docs/x.png", false, Docs},
		{"/w/data.bin", "data.bin", false, Other},
		{"/etc/passwd", "", false, Other}, // outside the workspace: base-name rules only
		{"/tmp/vendor/x.go", "", false, Source},
	} {
		if got := Classify(tc.abs, tc.rel, tc.secret); got != tc.want {
			t.Errorf("Classify(%q, %q, %v) = %s, want %s", tc.abs, tc.rel, tc.secret, got, tc.want)
		}
	}
}

func TestLikelySecretAndManifests(t *testing.T) {
	for base, want := range map[string]bool{".env": true, ".env.local": true, "server.pem": true, "id_rsa.pub": true, "env": false, "x.env": false} {
		if LikelySecret(base) != want {
			t.Errorf("LikelySecret(%q) = %v", base, !want)
		}
	}
	for base, want := range map[string]bool{"package.json": true, "go.mod": true, "requirements-dev.txt": true, "build.gradle.kts": true, "go.sum": false, "README.md": false} {
		if IsDependencyManifest(base) != want {
			t.Errorf("IsDependencyManifest(%q) = %v", base, !want)
		}
	}
}
