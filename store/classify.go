package store

import (
	"path"
	"strings"
)

// The file classes of agentwatch.file.class (recorder/classify.go). File
// spans carry theirs; a path only the workspace evidence names (git saw
// it changed, no sensor did) is classed here by the same rule table, so a
// change no sensor saw is counted in the same class. The tables are a copy
// of the recorder's (the store does not import the recorder);
// TestClassifyMatchesRecorder checks them against it.
const (
	classSource    = "source"
	classTest      = "test"
	classLockfile  = "lockfile"
	classWorkflow  = "workflow"
	classSecret    = "secret"
	classConfig    = "config"
	classGenerated = "generated"
	classDocs      = "docs"
	classOther     = "other"
)

var lockfileNames = map[string]bool{
	"go.sum": true, "package-lock.json": true, "npm-shrinkwrap.json": true, "yarn.lock": true,
	"pnpm-lock.yaml": true, "bun.lockb": true, "bun.lock": true, "Cargo.lock": true,
	"poetry.lock": true, "Pipfile.lock": true, "uv.lock": true, "pdm.lock": true,
	"Gemfile.lock": true, "composer.lock": true, "mix.lock": true, "flake.lock": true,
	"packages.lock.json": true, "gradle.lockfile": true, "Podfile.lock": true, "pubspec.lock": true,
}

var workflowNames = map[string]bool{
	".gitlab-ci.yml": true, "Jenkinsfile": true, "azure-pipelines.yml": true,
	".travis.yml": true, "bitbucket-pipelines.yml": true, "cloudbuild.yaml": true,
}

var workflowDirPrefixes = []string{".github/workflows/", ".circleci/", ".buildkite/", ".gitlab/ci/", ".woodpecker/", ".forgejo/workflows/", ".gitea/workflows/"}

var generatedDirNames = map[string]bool{
	"node_modules": true, "vendor": true, "dist": true, "build": true, "target": true, "__pycache__": true,
	".next": true, "out": true, ".venv": true, "venv": true, "coverage": true, ".git": true,
}

var configFileNames = map[string]bool{
	"go.mod": true, "package.json": true, "Makefile": true, "GNUmakefile": true, "Dockerfile": true,
	"Containerfile": true, ".gitignore": true, ".gitattributes": true, ".editorconfig": true,
	".dockerignore": true, ".npmrc": true, ".agentwatch.yaml": true, "Cargo.toml": true,
	"pyproject.toml": true, "setup.cfg": true, "tsconfig.json": true, "Gemfile": true,
	"requirements.txt": true, "CMakeLists.txt": true, ".envrc": true, "docker-compose.yml": true,
}

var configFileExts = map[string]bool{
	".yaml": true, ".yml": true, ".toml": true, ".json": true, ".ini": true, ".cfg": true,
	".conf": true, ".properties": true, ".xml": true, ".mk": true,
}

var docFileExts = map[string]bool{".md": true, ".markdown": true, ".rst": true, ".adoc": true, ".txt": true}

var sourceFileExts = map[string]bool{
	".go": true, ".py": true, ".js": true, ".mjs": true, ".cjs": true, ".ts": true, ".tsx": true,
	".jsx": true, ".rs": true, ".c": true, ".h": true, ".cc": true, ".cpp": true, ".hpp": true,
	".java": true, ".kt": true, ".kts": true, ".rb": true, ".php": true, ".sh": true, ".bash": true,
	".swift": true, ".cs": true, ".scala": true, ".sql": true, ".lua": true, ".ex": true, ".exs": true,
	".erl": true, ".hs": true, ".ml": true, ".zig": true, ".vue": true, ".svelte": true, ".css": true,
	".scss": true, ".html": true, ".proto": true, ".m": true, ".dart": true, ".r": true, ".pl": true,
}

// classifyRel classes a workspace-relative path like the recorder's
// classifyFile, with the built-in files.secrets patterns that apply inside
// a workspace (**/.env, **/.env.*, **/*.pem, **/id_rsa*) for "secret".
func classifyRel(rel string) string {
	base := path.Base(rel)
	if base == ".env" || strings.HasPrefix(base, ".env.") || strings.HasSuffix(base, ".pem") || strings.HasPrefix(base, "id_rsa") {
		return classSecret
	}
	ext := strings.ToLower(path.Ext(base))
	for _, d := range workflowDirPrefixes {
		if strings.HasPrefix(rel, d) {
			return classWorkflow
		}
	}
	if workflowNames[base] {
		return classWorkflow
	}
	if lockfileNames[base] {
		return classLockfile
	}
	if dir := path.Dir(rel); dir != "." {
		for _, seg := range strings.Split(dir, "/") {
			if generatedDirNames[seg] {
				return classGenerated
			}
		}
	}
	switch {
	case strings.HasSuffix(base, ".pb.go"), strings.HasSuffix(base, "_gen.go"),
		strings.HasPrefix(base, "zz_generated"), strings.Contains(base, "_generated."),
		strings.HasSuffix(base, ".min.js"), strings.HasSuffix(base, ".min.css"),
		strings.HasSuffix(base, "_bpfel.go"), strings.HasSuffix(base, "_bpfeb.go"),
		ext == ".o", ext == ".a", ext == ".so", ext == ".pyc", ext == ".class", ext == ".map":
		return classGenerated
	}
	if sourceFileExts[ext] && isTestPath(base, rel) {
		return classTest
	}
	if configFileNames[base] {
		return classConfig
	}
	if sourceFileExts[ext] {
		return classSource
	}
	if configFileExts[ext] {
		return classConfig
	}
	if docFileExts[ext] || strings.HasPrefix(rel, "docs/") ||
		strings.HasPrefix(base, "LICENSE") || strings.HasPrefix(base, "README") || base == "CHANGELOG" {
		return classDocs
	}
	return classOther
}

func isTestPath(base, rel string) bool {
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

// isDependencyManifest reports whether base names a file that declares
// dependencies: a change to it is a dependency change (ChangeDeps) even
// though agentwatch.file.class calls most of them config.
func isDependencyManifest(base string) bool {
	switch base {
	case "package.json", "go.mod", "pyproject.toml", "Cargo.toml", "Gemfile", "pom.xml", "Pipfile",
		"setup.py", "composer.json", "mix.exs", "pubspec.yaml", "Podfile":
		return true
	}
	return strings.HasPrefix(base, "requirements") && strings.HasSuffix(base, ".txt") ||
		strings.HasPrefix(base, "build.gradle")
}

// changeClass maps a file class to its change class (ChangeClasses, or
// ChangeOther); "" for generated files, which are not counted.
func changeClass(rel, fileClass string) string {
	if fileClass != classSecret && isDependencyManifest(path.Base(rel)) {
		return ChangeDeps
	}
	switch fileClass {
	case classSource:
		return ChangeCode
	case classTest:
		return ChangeTests
	case classLockfile:
		return ChangeDeps
	case classWorkflow:
		return ChangeWorkflows
	case classSecret:
		return ChangeSecrets
	case classConfig:
		return ChangeConfig
	case classDocs:
		return ChangeDocs
	case classGenerated:
		return ""
	}
	return ChangeOther
}
