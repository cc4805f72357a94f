package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// knownAgents maps an executable (or bin) name to the gen_ai.agent.name we
// report.
// knownAgent names the agent an executable is, also as a packaged binary
// (npm's @anthropic-ai/claude-code execs bin/claude.exe).
func knownAgent(base string) (string, bool) {
	a, ok := knownAgents[strings.TrimSuffix(base, ".exe")]
	return a, ok
}

var knownAgents = map[string]string{
	"claude":       "claude",
	"claude-code":  "claude",
	"codex":        "codex",
	"aider":        "aider",
	"gemini":       "gemini",
	"cursor-agent": "cursor-agent",
	"goose":        "goose",
	"opencode":     "opencode",
	"amp":          "amp",
	"copilot":      "copilot",
}

// agentPackages maps the npm / PyPI package an agent ships in to its name,
// for `npx @anthropic-ai/claude-code` and node_modules script paths.
var agentPackages = map[string]string{
	"@anthropic-ai/claude-code": "claude",
	"@openai/codex":             "codex",
	"aider-chat":                "aider",
	"aider-install":             "aider",
	"@google/gemini-cli":        "gemini",
	"opencode-ai":               "opencode",
	"@sourcegraph/amp":          "amp",
	"@github/copilot":           "copilot",
	"@block/goose":              "goose",
}

// AgentName detects the agent from the command given to `agentwatch run`,
// seeing through wrappers (env, sudo, nice, timeout, stdbuf, nohup, npx and
// friends, node/bun/deno/python script paths, sh -c "…"). A known agent
// gives its canonical name; anything else gives the innermost command's
// base name.
func AgentName(argv []string) string {
	return agentName(argv, 0)
}

func agentName(argv []string, depth int) string {
	if len(argv) == 0 || depth > 8 {
		return ""
	}
	base := path.Base(argv[0])
	if a, ok := knownAgent(base); ok {
		return a
	}
	inner, ok := unwrapArgv(argv)
	if !ok {
		if isVersion(base) {
			// Native installers keep versioned binaries, e.g.
			// ~/.local/share/claude/versions/2.0.31: name by the directory.
			segs := strings.Split(path.Dir(argv[0]), "/")
			for i := len(segs) - 1; i >= 0; i-- {
				if a, ok := knownAgents[segs[i]]; ok {
					return a
				}
			}
		}
		return base
	}
	if len(inner) == 0 {
		return base // a wrapper that wraps nothing: env, node -e, npm ci
	}
	switch in := inner[0]; in.kind {
	case runsCommand:
		return agentName(in.argv, depth+1)
	case runsPackage:
		return packageAgentName(base, in, depth)
	case runsScript:
		return scriptAgent(in.argv[0])
	case runsModule:
		mod := strings.SplitN(in.argv[0], ".", 2)[0]
		if a := packageAgent(mod); a != "" {
			return a
		}
		return mod
	case runsShell:
		return shellAgent(base, inner, depth)
	}
	return base // runsBin: yarn's own command or a bin, who knows
}

// packageAgentName names what an npx-style runner runs: the package
// (--package's or the first word) when it is an agent's, else the bin.
func packageAgentName(runner string, in innerArgv, depth int) string {
	if in.pkg != "" {
		if a := packageAgent(in.pkg); a != "" {
			return a
		}
	}
	if len(in.argv) == 0 {
		if in.pkg != "" {
			return packageBase(in.pkg)
		}
		return runner
	}
	if a := packageAgent(in.argv[0]); a != "" {
		return a
	}
	return agentName(append([]string{packageBase(in.argv[0])}, in.argv[1:]...), depth+1)
}

// stripVersion removes "@1.2.3" / "==1.2" from a package spec, keeping a
// leading scope "@".
func stripVersion(spec string) string {
	if i := strings.LastIndex(spec, "@"); i > 0 {
		spec = spec[:i]
	}
	if i := strings.IndexAny(spec, "=<>~!["); i > 0 {
		spec = spec[:i]
	}
	return spec
}

func packageAgent(spec string) string {
	pkg := stripVersion(spec)
	if a, ok := agentPackages[pkg]; ok {
		return a
	}
	if a, ok := knownAgents[pkg]; ok {
		return a
	}
	return ""
}

// packageBase is the unscoped name of a package: @scope/x@1 → x.
func packageBase(spec string) string {
	return path.Base(stripVersion(spec))
}

// scriptAgent names the agent from a script path:
// /usr/lib/node_modules/@anthropic-ai/claude-code/cli.js → claude.
func scriptAgent(p string) string {
	if i := strings.LastIndex(p, "node_modules/"); i >= 0 {
		segs := strings.Split(p[i+len("node_modules/"):], "/")
		pkg := segs[0]
		if strings.HasPrefix(pkg, "@") && len(segs) > 1 {
			pkg += "/" + segs[1]
		}
		if a := packageAgent(pkg); a != "" {
			return a
		}
		if pkg == ".bin" && len(segs) > 1 {
			return scriptAgent(segs[1])
		}
		return path.Base(pkg)
	}
	base := path.Base(p)
	for _, ext := range []string{".js", ".mjs", ".cjs", ".ts", ".mts", ".py"} {
		base = strings.TrimSuffix(base, ext)
	}
	if a, ok := knownAgents[base]; ok {
		return a
	}
	return base
}

// shellAgent names a sh -c "…" run: a known agent anywhere in the script
// names it; otherwise a one-command script is named by that command, and a
// real script (several commands) by the shell — its first command (a
// mkdir, a cd) says nothing about what ran.
func shellAgent(shell string, cmds []innerArgv, depth int) string {
	var names []string
	for _, in := range cmds {
		cmd := skipAssignments(in.argv)
		if len(cmd) == 0 {
			continue
		}
		name := agentName(cmd, depth+1)
		if _, known := knownAgentValue(name); known {
			return name
		}
		names = append(names, name)
	}
	if len(names) == 1 {
		return names[0]
	}
	return shell
}

func knownAgentValue(name string) (string, bool) {
	for _, v := range knownAgents {
		if v == name {
			return v, true
		}
	}
	return "", false
}

func isVersion(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return strings.Contains(s, ".")
}

// promptSpec says where an agent's command line carries a prompt: content,
// which metadata mode keeps only as length and digest.
type promptSpec struct {
	// prompt options: their value is a prompt (aider --message "…",
	// gemini -p "…"), as is that of --append-system-prompt.
	prompt []string
	// value options whose value is not content (--model sonnet): skipped,
	// so it is not taken for a positional prompt. An option not listed
	// here is taken as a switch; its value, if it has one, is then
	// digested as if it were a prompt — the safe mistake.
	values []string
	// positional: the words that are not options are the prompt.
	positional bool
	// subcommands (the first positional) after which nothing is a prompt
	// (claude mcp add …, codex login).
	noPrompt []string
	// promptSub: subcommands whose positionals are the prompt (opencode
	// run "…"); when set, positionals elsewhere are not.
	promptSub []string
	// passSub: subcommands that keep positional prompts (codex exec "…"
	// as codex "…").
	passSub []string
}

// promptSpecs are the agents of knownAgents whose command line takes a
// prompt, from each CLI's --help.
var promptSpecs = map[string]promptSpec{
	"claude": {
		prompt: []string{"--append-system-prompt", "--system-prompt"},
		values: []string{"--model", "--output-format", "--input-format", "--allowedTools", "--allowed-tools",
			"--disallowedTools", "--disallowed-tools", "--permission-mode", "--mcp-config", "--add-dir",
			"--session-id", "--max-turns", "--settings", "--setting-sources", "--fallback-model",
			"--permission-prompt-tool", "--agents", "--betas", "--plugin-dir", "--max-budget-usd",
			"--json-schema", "--tools", "--agent", "-r", "--resume"},
		positional: true,
		noPrompt:   []string{"mcp", "config", "update", "doctor", "install", "migrate-installer", "setup-token", "plugin"},
	},
	"codex": {
		values: []string{"-m", "--model", "-c", "--config", "-p", "--profile", "-s", "--sandbox",
			"-a", "--ask-for-approval", "-C", "--cd", "-i", "--image", "--output-schema", "--color",
			"-o", "--output-last-message", "--add-dir", "--enable", "--disable", "--local-provider"},
		positional: true,
		passSub:    []string{"exec", "e"},
		noPrompt: []string{"login", "logout", "mcp", "mcp-server", "proto", "completion", "debug", "apply", "a",
			"cloud", "app-server", "sandbox", "help", "features", "generate-ts", "resume"},
	},
	"aider": {
		prompt: []string{"-m", "--message", "--msg"},
	},
	"gemini": {
		prompt: []string{"-p", "--prompt", "-i", "--prompt-interactive"},
		values: []string{"-m", "--model", "--approval-mode", "--allowed-tools", "--allowed-mcp-server-names",
			"-e", "--extensions", "--include-directories", "--output-format", "--telemetry-target",
			"--telemetry-otlp-endpoint", "--proxy"},
		positional: true,
		noPrompt:   []string{"mcp", "extensions"},
	},
	"cursor-agent": {
		values:     []string{"-m", "--model", "--output-format", "--resume", "--api-key"},
		positional: true,
		noPrompt:   []string{"login", "logout", "status", "mcp", "update", "upgrade", "ls", "resume", "create-chat", "install-shell-integration", "uninstall-shell-integration", "help"},
	},
	"opencode": {
		prompt:    []string{"-p", "--prompt"},
		values:    []string{"-m", "--model", "--agent", "-s", "--session", "--format", "-f", "--file", "--port", "--hostname"},
		promptSub: []string{"run"},
	},
	"amp":     {prompt: []string{"-x", "--execute"}},
	"goose":   {prompt: []string{"-t", "--text"}},
	"copilot": {prompt: []string{"-p", "--prompt"}, values: []string{"--model", "--add-dir", "--log-dir", "--log-level", "--resume", "--allow-tool", "--deny-tool"}},
}

// PromptMarker is what metadata mode keeps of a prompt: its length in
// characters and the first 16 hex digits of its sha256 (of the text as
// the trace would hold it, credentials already redacted), so two runs
// with the same prompt can be matched without the text.
func PromptMarker(s string) string {
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("[prompt: %d chars sha256:%s]", utf8.RuneCountInString(s), hex.EncodeToString(sum[:8]))
}

// PromptArgs returns argv with the prompts on an agent's command line
// (claude -p "…", codex exec "…", aider --message "…", also inside
// sh -c "claude -p '…'") replaced by PromptMarker, unless full (content
// capture is on: then argv is returned as it is). The input is not
// modified.
func PromptArgs(argv []string, full bool) []string {
	out := slices.Clone(argv)
	if full {
		return out
	}
	promptWords(out, 0, func(i int) { out[i] = PromptMarker(out[i]) })
	return out
}

// promptWords calls mark with the index of each prompt word of argv, and
// rewrites shell scripts (sh -c "…") in place.
func promptWords(argv []string, depth int, mark func(int)) {
	if depth > 4 {
		return
	}
	for i := 0; i < len(argv) && i < 16; i++ {
		a := argv[i]
		if i > 0 && (strings.HasPrefix(a, "-") || isAssignment(a) || isVersion(a) || isDuration(a)) {
			continue // a wrapper's option, variable or value (timeout 60)
		}
		base := path.Base(a)
		if name, ok := knownAgents[base]; ok {
			markPrompts(argv[i+1:], promptSpecs[name], func(j int) { mark(i + 1 + j) })
			return
		}
		if name := packageAgent(a); name != "" {
			markPrompts(argv[i+1:], promptSpecs[name], func(j int) { mark(i + 1 + j) })
			return
		}
		if name := scriptAgent(a); i > 0 && strings.Contains(a, "/") {
			if _, ok := knownAgentValue(name); ok {
				markPrompts(argv[i+1:], promptSpecs[name], func(j int) { mark(i + 1 + j) })
				return
			}
		}
		inner, isWrapper := unwrapArgv(argv[i:])
		switch {
		case isShell(base):
			if shellPrompts(argv, i, inner, depth) {
				return
			}
			// sh /path/to/claude -p "…": how the kernel runs a script
			// with a #! line; the script names the agent.
		case isWrapper:
			switch {
			case len(inner) == 0:
				i = len(argv) - 1 // it wraps nothing
			case inner[0].offset >= 0:
				// On to the wrapped command (sudo -u dev claude), the
				// package (npx -y @openai/codex), the script (node -r
				// hook.js …/cli.js) or the module (python3 -m aider).
				i += inner[0].offset - 1
			}
			// Else (env -S "…", npx -c "…") on to the next word.
		case i > 0 && (a == "dlx" || a == "exec" || a == "x" || a == "run" || a == "tool"):
		default:
			return
		}
	}
}

func isDuration(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || c == 's' || c == 'm' || c == 'h') {
			return false
		}
	}
	return s[0] >= '0' && s[0] <= '9'
}

// shellPrompts rewrites the script of argv[sh] -c "…": each prompt word of
// an agent command in it replaced by its marker where the word appears
// verbatim; a script where it does not (escapes inside the prompt) is
// replaced whole by its length and digest.
//
// It reports whether argv has a -c script at all; cmds are its simple
// commands, as unwrapArgv gives them.
func shellPrompts(argv []string, sh int, cmds []innerArgv, depth int) bool {
	if len(cmds) == 0 || cmds[0].kind != runsShell {
		idx, _ := shellScript(argv[sh+1:])
		return idx >= 0 // an empty script, or a script file (sh ./run-claude.sh)
	}
	idx := sh + cmds[0].offset
	script := argv[idx]
	var prompts []string
	for _, in := range cmds {
		cmd := skipAssignments(in.argv)
		words := slices.Clone(cmd)
		promptWords(words, depth+1, func(i int) { prompts = append(prompts, cmd[i]) })
	}
	if len(prompts) == 0 {
		return true
	}
	sort.Slice(prompts, func(a, b int) bool { return len(prompts[a]) > len(prompts[b]) })
	for _, p := range prompts {
		if p == "" {
			continue
		}
		if !strings.Contains(script, p) {
			argv[idx] = strings.Replace(PromptMarker(argv[idx]), "[prompt:", "[script:", 1)
			return true
		}
		script = strings.ReplaceAll(script, p, PromptMarker(p))
	}
	argv[idx] = script
	return true
}

// markPrompts marks the prompt words of an agent's arguments under spec.
func markPrompts(args []string, spec promptSpec, mark func(int)) {
	first := true // no positional seen yet
	positional := spec.positional && len(spec.promptSub) == 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if positional {
				for j := i + 1; j < len(args); j++ {
					mark(j)
				}
			}
			return
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name, val, attached := strings.Cut(a, "=")
			switch {
			case contains(spec.prompt, name):
				if attached {
					args[i] = name + "=" + PromptMarker(val)
				} else if i+1 < len(args) {
					mark(i + 1)
					i++
				}
			case contains(spec.values, name) && !attached:
				i++
			}
			continue
		}
		if first {
			first = false
			if contains(spec.noPrompt, a) {
				return
			}
			if contains(spec.promptSub, a) {
				positional = true
				continue
			}
			if contains(spec.passSub, a) {
				continue
			}
		}
		if positional {
			mark(i)
		}
	}
}
