package recorder

import (
	"path"
	"strings"
)

// File classes (agentwatch.file.class).
const (
	ClassSource    = "source"
	ClassTest      = "test"
	ClassLockfile  = "lockfile"
	ClassWorkflow  = "workflow"
	ClassSecret    = "secret"
	ClassConfig    = "config"
	ClassGenerated = "generated"
	ClassDocs      = "docs"
	ClassOther     = "other"
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

var generatedDirs = newSegmentSet("node_modules/", "vendor/", "dist/", "build/", "target/", "__pycache__/", ".next/", "out/", ".venv/", "venv/", "coverage/", ".git/")

// segmentSet answers "is a segment of this relative path one of these",
// in one pass over the path (it is asked of every file a build writes):
// an entry "name/" is a directory on the path (a segment before the
// last), an entry without the slash any segment that starts with it.
type segmentSet struct {
	dirs     map[string]bool
	prefixes []string
}

func newSegmentSet(entries ...string) segmentSet {
	s := segmentSet{dirs: map[string]bool{}}
	for _, e := range entries {
		if d, ok := strings.CutSuffix(e, "/"); ok {
			s.dirs[d] = true
		} else {
			s.prefixes = append(s.prefixes, e)
		}
	}
	return s
}

// in reports whether rel (relative, "/"-separated) has such a segment.
func (s segmentSet) in(rel string) bool {
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

// classifyFile is the first-match rule table for agentwatch.file.class.
// rel is the path relative to the workspace ("" outside it, where only the
// secret and base-name rules apply). Order matters: a secret is a secret
// whatever its extension; a generated file under vendor/ is not source;
// a test is source that tests.
func classifyFile(abs, rel string, secret bool) string {
	if secret {
		return ClassSecret
	}
	base := path.Base(abs)
	ext := strings.ToLower(path.Ext(base))
	if rel != "" {
		for _, d := range workflowDirs {
			if strings.HasPrefix(rel, d) {
				return ClassWorkflow
			}
		}
	}
	if workflowFiles[base] {
		return ClassWorkflow
	}
	if lockfiles[base] {
		return ClassLockfile
	}
	if rel != "" && generatedDirs.in(rel) {
		return ClassGenerated
	}
	switch {
	case strings.HasSuffix(base, ".pb.go"), strings.HasSuffix(base, "_gen.go"),
		strings.HasPrefix(base, "zz_generated"), strings.Contains(base, "_generated."),
		strings.HasSuffix(base, ".min.js"), strings.HasSuffix(base, ".min.css"),
		strings.HasSuffix(base, "_bpfel.go"), strings.HasSuffix(base, "_bpfeb.go"),
		ext == ".o", ext == ".a", ext == ".so", ext == ".pyc", ext == ".class", ext == ".map":
		return ClassGenerated
	}
	if sourceExts[ext] && isTestName(base, rel) {
		return ClassTest
	}
	if configNames[base] {
		return ClassConfig
	}
	if sourceExts[ext] {
		return ClassSource
	}
	if configExts[ext] {
		return ClassConfig
	}
	if docExts[ext] || rel != "" && strings.HasPrefix(rel, "docs/") ||
		strings.HasPrefix(base, "LICENSE") || strings.HasPrefix(base, "README") || base == "CHANGELOG" {
		return ClassDocs
	}
	return ClassOther
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
