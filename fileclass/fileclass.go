// Package fileclass names what kind of file a path is — source, test,
// lockfile, workflow, secret, config, generated, docs, other — by one rule
// table (agentwatch.file.class, docs/telemetry.md). The recorder classes
// the files the sensors saw; the store classes the paths only the
// workspace evidence names; both by this table, so a change counts in the
// same class whoever saw it. Pure: no I/O.
package fileclass

import (
	"path"
	"strings"
)

// The file classes (agentwatch.file.class).
const (
	Source    = "source"
	Test      = "test"
	Lockfile  = "lockfile"
	Workflow  = "workflow"
	Secret    = "secret"
	Config    = "config"
	Generated = "generated"
	Docs      = "docs"
	Other     = "other"
)

var lockfiles = map[string]bool{
	"go.sum": true, "package-lock.json": true, "npm-shrinkwrap.json": true, "yarn.lock": true,
	"pnpm-lock.yaml": true, "bun.lockb": true, "bun.lock": true, "Cargo.lock": true,
	"poetry.lock": true, "Pipfile.lock": true, "uv.lock": true, "pdm.lock": true,
	"Gemfile.lock": true, "composer.lock": true, "mix.lock": true, "flake.lock": true,
	"packages.lock.json": true, "gradle.lockfile": true, "Podfile.lock": true, "pubspec.lock": true,
}

var workflowFiles = map[string]bool{
	".gitlab-ci.yml": true, "Jenkinsfile": true, "azure-pipelines.yml": true,
	".travis.yml": true, "bitbucket-pipelines.yml": true, "cloudbuild.yaml": true,
}

var workflowDirs = []string{".github/workflows/", ".circleci/", ".buildkite/", ".gitlab/ci/", ".woodpecker/", ".forgejo/workflows/", ".gitea/workflows/"}

var generatedDirs = NewSegmentSet("node_modules/", "vendor/", "dist/", "build/", "target/", "__pycache__/", ".next/", "out/", ".venv/", "venv/", "coverage/", ".git/")

// SegmentSet answers "is a segment of this relative path one of these",
// in one pass over the path (it is asked of every file a build writes):
// an entry "name/" is a directory on the path (a segment before the
// last), an entry without the slash any segment that starts with it.
type SegmentSet struct {
	dirs     map[string]bool
	prefixes []string
}

func NewSegmentSet(entries ...string) SegmentSet {
	s := SegmentSet{dirs: map[string]bool{}}
	for _, e := range entries {
		if d, ok := strings.CutSuffix(e, "/"); ok {
			s.dirs[d] = true
		} else {
			s.prefixes = append(s.prefixes, e)
		}
	}
	return s
}

// In reports whether rel (relative, "/"-separated) has such a segment.
func (s SegmentSet) In(rel string) bool {
	for rest := rel; ; {
		seg, more, dir := strings.Cut(rest, "/")
		if dir && s.dirs[seg] {
			return true
		}
		for _, p := range s.prefixes {
			if strings.HasPrefix(seg, p) {
				return true
			}
		}
		if !dir {
			return false
		}
		rest = more
	}
}

var configNames = map[string]bool{
	"go.mod": true, "package.json": true, "Makefile": true, "GNUmakefile": true, "Dockerfile": true,
	"Containerfile": true, ".gitignore": true, ".gitattributes": true, ".editorconfig": true,
	".dockerignore": true, ".npmrc": true, ".agentwatch.yaml": true, "Cargo.toml": true,
	"pyproject.toml": true, "setup.cfg": true, "tsconfig.json": true, "Gemfile": true,
	"requirements.txt": true, "CMakeLists.txt": true, ".envrc": true, "docker-compose.yml": true,
}

var configExts = map[string]bool{
	".yaml": true, ".yml": true, ".toml": true, ".json": true, ".ini": true, ".cfg": true,
	".conf": true, ".properties": true, ".xml": true, ".mk": true,
}

var docExts = map[string]bool{".md": true, ".markdown": true, ".rst": true, ".adoc": true, ".txt": true}

var sourceExts = map[string]bool{
	".go": true, ".py": true, ".js": true, ".mjs": true, ".cjs": true, ".ts": true, ".tsx": true,
	".jsx": true, ".rs": true, ".c": true, ".h": true, ".cc": true, ".cpp": true, ".hpp": true,
	".java": true, ".kt": true, ".kts": true, ".rb": true, ".php": true, ".sh": true, ".bash": true,
	".swift": true, ".cs": true, ".scala": true, ".sql": true, ".lua": true, ".ex": true, ".exs": true,
	".erl": true, ".hs": true, ".ml": true, ".zig": true, ".vue": true, ".svelte": true, ".css": true,
	".scss": true, ".html": true, ".proto": true, ".m": true, ".dart": true, ".r": true, ".pl": true,
}

// Classify is the first-match rule table for agentwatch.file.class.
// rel is the path relative to the workspace ("" outside it, where only the
// secret and base-name rules apply). Order matters: a secret is a secret
// whatever its extension; a generated file under vendor/ is not source;
// a test is source that tests.
func Classify(abs, rel string, secret bool) string {
	if secret {
		return Secret
	}
	base := path.Base(abs)
	ext := strings.ToLower(path.Ext(base))
	if rel != "" {
		for _, d := range workflowDirs {
			if strings.HasPrefix(rel, d) {
				return Workflow
			}
		}
	}
	if workflowFiles[base] {
		return Workflow
	}
	if lockfiles[base] {
		return Lockfile
	}
	if rel != "" && generatedDirs.In(rel) {
		return Generated
	}
	switch {
	case strings.HasSuffix(base, ".pb.go"), strings.HasSuffix(base, "_gen.go"),
		strings.HasPrefix(base, "zz_generated"), strings.Contains(base, "_generated."),
		strings.HasSuffix(base, ".min.js"), strings.HasSuffix(base, ".min.css"),
		strings.HasSuffix(base, "_bpfel.go"), strings.HasSuffix(base, "_bpfeb.go"),
		ext == ".o", ext == ".a", ext == ".so", ext == ".pyc", ext == ".class", ext == ".map":
		return Generated
	}
	if sourceExts[ext] && isTestName(base, rel) {
		return Test
	}
	if configNames[base] {
		return Config
	}
	if sourceExts[ext] {
		return Source
	}
	if configExts[ext] {
		return Config
	}
	if docExts[ext] || rel != "" && strings.HasPrefix(rel, "docs/") ||
		strings.HasPrefix(base, "LICENSE") || strings.HasPrefix(base, "README") || base == "CHANGELOG" {
		return Docs
	}
	return Other
}

func isTestName(base, rel string) bool {
	stem := strings.TrimSuffix(base, path.Ext(base))
	switch {
	case strings.HasSuffix(stem, "_test"), strings.HasPrefix(stem, "test_"),
		strings.HasSuffix(stem, ".test"), strings.HasSuffix(stem, ".spec"),
		strings.HasSuffix(stem, "Test"), strings.HasSuffix(stem, "Tests"), strings.HasSuffix(stem, "_spec"):
		return true
	}
	for _, d := range []string{"test/", "tests/", "__tests__/", "spec/", "testdata/"} {
		if strings.HasPrefix(rel, d) || strings.Contains(rel, "/"+d) {
			return true
		}
	}
	return false
}

// LikelySecret reports whether a workspace file's name matches the
// built-in files.secrets patterns that apply inside a workspace (**/.env,
// **/.env.*, **/*.pem, **/id_rsa*): the secret rule for a path no policy
// match was recorded for.
func LikelySecret(base string) bool {
	return base == ".env" || strings.HasPrefix(base, ".env.") || strings.HasSuffix(base, ".pem") || strings.HasPrefix(base, "id_rsa")
}

// IsDependencyManifest reports whether base names a file that declares
// dependencies (package.json, go.mod, requirements*.txt, …): a change to
// it is a dependency change even though its class is config.
func IsDependencyManifest(base string) bool {
	switch base {
	case "package.json", "go.mod", "pyproject.toml", "Cargo.toml", "Gemfile", "pom.xml", "Pipfile",
		"setup.py", "composer.json", "mix.exs", "pubspec.yaml", "Podfile":
		return true
	}
	return strings.HasPrefix(base, "requirements") && strings.HasSuffix(base, ".txt") ||
		strings.HasPrefix(base, "build.gradle")
}
