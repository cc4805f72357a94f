package recorder

import (
	"path"
	"strings"
	"unicode/utf8"
)

// Span names are for people reading a backend's trace list and timeline
// (docs/telemetry.md, "Span names"): low-cardinality, saying what each row
// is. What a span records stays in agentwatch.span.type (telemetry.Span
// Type), which every query and every part of agentwatch asks instead.

// maxNameBytes bounds the part of a span name taken from the run (an
// executable's name is the agent's to choose).
const maxNameBytes = 64

// subcommandTools are the executables whose first positional word names
// what they do (git status, go test, npm install): their spans are named
// with it.
var subcommandTools = map[string]bool{
	"git": true, "go": true, "npm": true, "pnpm": true, "yarn": true, "bun": true, "cargo": true,
	"pip": true, "uv": true, "poetry": true, "pipenv": true, "pdm": true, "conda": true, "mamba": true,
	"gem": true, "bundle": true, "composer": true, "apt-get": true, "apt": true, "dnf": true, "yum": true,
	"apk": true, "gh": true, "dotnet": true, "docker": true, "podman": true, "kubectl": true, "helm": true,
	"terraform": true, "gradle": true, "mvn": true, "rustup": true, "brew": true, "deno": true, "npx": true,
}

// processSpanName names a process span by its executable, and for
// subcommandTools its subcommand when that is a plain word: "git status",
// "go test", "python3", "curl".
func processSpanName(exe string, args []string) string {
	name := path.Base(exe)
	if exe == "" && len(args) > 0 {
		name = path.Base(args[0])
	}
	name = nameText(name)
	if name == "" || name == "." || name == "/" {
		return "process"
	}
	if a, ok := knownAgent(name); ok {
		name = a // claude.exe, npm's packaged binary, is claude
	}
	tool := toolName(name)
	if subcommandTools[tool] && len(args) > 1 {
		if pos := positionals(args[1:], valueOptions[tool]); len(pos) > 0 && isPlainWord(pos[0]) {
			return name + " " + pos[0]
		}
	}
	return name
}

// fileSpanName names a file span by its main operation and the file's
// class: "write source", "create test", "read secret".
func fileSpanName(op, class string) string {
	if op == "" {
		op = "change"
	}
	if class == "" {
		class = ClassOther
	}
	return op + " " + class
}

// isPlainWord: a subcommand, not a path, a value or a secret (short,
// lower-case letters, digits, - and _).
func isPlainWord(s string) bool {
	if s == "" || len(s) > 24 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s[0] != '-'
}

// nameText keeps a name from the run printable and bounded: control
// characters become "?", invalid UTF-8 is replaced, and it is cut at
// maxNameBytes on a rune boundary.
func nameText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > maxNameBytes {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
