package recorder

import (
	"path"
	"strings"
)

// knownAgents maps an executable (or bin) name to the gen_ai.agent.name we
// report.
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
	if a, ok := knownAgents[base]; ok {
		return a
	}
	rest := argv[1:]
	switch base {
	case "env":
		return agentNameOr(base, skipEnv(rest), depth)
	case "sudo", "doas":
		return agentNameOr(base, skipAssignments(skipOptions(rest, "ugCDhprtUTR", []string{"--user", "--group", "--chdir", "--host", "--prompt", "--role", "--type", "--other-user", "--command-timeout", "--chroot"})), depth)
	case "nice":
		return agentNameOr(base, skipOptions(rest, "n", []string{"--adjustment"}), depth)
	case "ionice":
		return agentNameOr(base, skipOptions(rest, "cnp", []string{"--class", "--classdata", "--pid"}), depth)
	case "nohup", "setsid", "time", "command", "exec", "builtin":
		return agentNameOr(base, skipOptions(rest, "", nil), depth)
	case "stdbuf":
		return agentNameOr(base, skipOptions(rest, "ioe", []string{"--input", "--output", "--error"}), depth)
	case "timeout":
		args := skipOptions(rest, "sk", []string{"--signal", "--kill-after"})
		if len(args) > 0 {
			args = args[1:] // the duration
		}
		return agentNameOr(base, args, depth)
	case "npx", "bunx":
		return packageRunner(base, rest, depth)
	case "pnpm", "yarn", "npm", "bun":
		if len(rest) > 0 && (rest[0] == "dlx" || rest[0] == "exec" || rest[0] == "x") {
			return packageRunner(base, rest[1:], depth)
		}
		if base == "bun" {
			return scriptRunner(base, rest)
		}
		return base
	case "uvx", "pipx", "uv":
		args := rest
		if base == "uv" && len(args) > 1 && args[0] == "tool" && args[1] == "run" {
			args = args[2:]
		} else if base != "uvx" && len(args) > 0 && args[0] == "run" {
			args = args[1:]
		} else if base != "uvx" {
			return base
		}
		return packageRunner(base, args, depth)
	case "node", "nodejs", "deno", "tsx", "ts-node":
		return scriptRunner(base, rest)
	case "sh", "bash", "zsh", "dash", "ksh", "ash", "fish":
		return shellAgent(base, rest, depth)
	}
	if strings.HasPrefix(base, "python") {
		return pythonAgent(base, rest)
	}
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

// agentNameOr recurses into a wrapped command, or names the wrapper itself
// when it wraps nothing.
func agentNameOr(wrapper string, rest []string, depth int) string {
	if len(rest) == 0 {
		return wrapper
	}
	return agentName(rest, depth+1)
}

// skipOptions drops leading options. short lists single-letter options that
// take a value (separate, "-u dev", or attached, "-udev"); long lists long
// options that take a value ("--user dev" or "--user=dev").
func skipOptions(args []string, short string, long []string) []string {
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--":
			return args[1:]
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a, "=")
			args = args[1:]
			if !hasValue && contains(long, name) && len(args) > 0 {
				args = args[1:]
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			args = args[1:]
			switch {
			case short == "":
			case strings.IndexByte(short, a[1]) >= 0:
				// "-u dev" has its value next; "-udev", "-oL" carry it.
				if len(a) == 2 && len(args) > 0 {
					args = args[1:]
				}
			case strings.IndexByte(short, a[len(a)-1]) >= 0 && len(args) > 0:
				args = args[1:] // a cluster ending in a value option: -Hu dev
			}
		default:
			return args
		}
	}
	return args
}

func skipAssignments(args []string) []string {
	for len(args) > 0 && isAssignment(args[0]) {
		args = args[1:]
	}
	return args
}

func isAssignment(s string) bool {
	name, _, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return false
	}
	for i, c := range name {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// skipEnv handles env's options, including -S "split string".
func skipEnv(args []string) []string {
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--":
			return skipAssignments(args[1:])
		case a == "-S" || a == "--split-string":
			if len(args) < 2 {
				return nil
			}
			return skipEnv(append(shellWords(args[1]), args[2:]...))
		case strings.HasPrefix(a, "--split-string="):
			return skipEnv(append(shellWords(strings.TrimPrefix(a, "--split-string=")), args[1:]...))
		case strings.HasPrefix(a, "-S"):
			return skipEnv(append(shellWords(a[2:]), args[1:]...))
		case a == "-u" || a == "-C" || a == "--unset" || a == "--chdir":
			if len(args) < 2 {
				return nil
			}
			args = args[2:]
		case strings.HasPrefix(a, "-"):
			args = args[1:]
		case isAssignment(a):
			args = args[1:]
		default:
			return args
		}
	}
	return args
}

// packageRunner handles npx-style runners: the first non-option argument
// (or --package) names a package whose bin is run.
func packageRunner(runner string, args []string, depth int) string {
	var pkg string
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--":
			args = args[1:]
		case a == "-p" || a == "--package":
			if len(args) > 1 && pkg == "" {
				pkg = args[1]
			}
			args = args[2:]
			continue
		case strings.HasPrefix(a, "--package="):
			if pkg == "" {
				pkg = strings.TrimPrefix(a, "--package=")
			}
			args = args[1:]
			continue
		case a == "-c" || a == "--call":
			if len(args) > 1 {
				return agentName(shellWords(args[1]), depth+1)
			}
			return runner
		case strings.HasPrefix(a, "-"):
			args = args[1:]
			continue
		}
		break
	}
	if pkg != "" {
		if a := packageAgent(pkg); a != "" {
			return a
		}
	}
	if len(args) == 0 {
		if pkg != "" {
			return packageBase(pkg)
		}
		return runner
	}
	if a := packageAgent(args[0]); a != "" {
		return a
	}
	return agentName(append([]string{packageBase(args[0])}, args[1:]...), depth+1)
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

// scriptRunner handles node/bun/deno: runtime options, then a script path
// that usually lives in the agent's package.
func scriptRunner(runtime string, args []string) string {
	if runtime == "deno" && len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	if runtime == "bun" && len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--":
			args = args[1:]
		case a == "-e" || a == "--eval" || a == "-p" || a == "--print":
			return runtime // inline code: no script to name the agent by
		case a == "-r" || a == "--require" || a == "--import" || a == "--loader" || a == "--experimental-loader" || a == "--env-file" || a == "--config" || a == "-c":
			args = args[min(2, len(args)):]
			continue
		case strings.HasPrefix(a, "-"):
			args = args[1:]
			continue
		}
		break
	}
	if len(args) == 0 {
		return runtime
	}
	return scriptAgent(args[0])
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

func pythonAgent(python string, args []string) string {
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "-m" && len(args) > 1:
			mod := strings.SplitN(args[1], ".", 2)[0]
			if a := packageAgent(mod); a != "" {
				return a
			}
			return mod
		case a == "-c":
			return python
		case strings.HasPrefix(a, "-"):
			args = args[1:]
			continue
		}
		return scriptAgent(a)
	}
	return python
}

// shellAgent looks into sh -c "…": the first simple command that is a known
// agent, else the first command.
func shellAgent(shell string, args []string, depth int) string {
	script := ""
	found := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "+o" || a == "-O" || a == "+O":
			i++ // bash -o pipefail -c "…"
			continue
		case a == "--":
		case strings.HasPrefix(a, "--"):
			continue // --login, --norc
		case strings.HasPrefix(a, "-") || strings.HasPrefix(a, "+"):
			if !strings.Contains(a[1:], "c") {
				continue
			}
			// The command string is the first non-option argument after
			// the options (bash -c -e 'cmd' works too).
			for j := i + 1; j < len(args); j++ {
				if !strings.HasPrefix(args[j], "-") && !strings.HasPrefix(args[j], "+") {
					script, found = args[j], true
					break
				}
			}
		}
		break
	}
	if !found {
		// A script file (bash run-agent.sh) or an interactive shell.
		rest := skipOptions(args, "o", nil)
		if len(rest) == 0 {
			return shell
		}
		return scriptAgent(rest[0])
	}
	// A known agent anywhere in the script names the run; otherwise a
	// one-command script is named by that command, and a real script
	// (several commands) by the shell — its first command (a mkdir, a cd)
	// says nothing about what ran.
	var names []string
	for _, cmd := range simpleCommands(script) {
		cmd = skipAssignments(cmd)
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// shellWords splits one simple command like a POSIX shell would, for the
// cases that matter here: quotes and backslashes; no expansion.
func shellWords(s string) []string {
	cmds := splitShell(s)
	var words []string
	for _, c := range cmds {
		words = append(words, c...)
	}
	return words
}

// simpleCommands splits a shell script into simple commands at ; & | && ||
// newlines and parentheses.
func simpleCommands(s string) [][]string {
	return splitShell(s)
}

func splitShell(s string) [][]string {
	var (
		cmds  [][]string
		cur   []string
		word  strings.Builder
		inW   bool
		quote byte
	)
	flushWord := func() {
		if inW {
			cur = append(cur, word.String())
			word.Reset()
			inW = false
		}
	}
	flushCmd := func() {
		flushWord()
		if len(cur) > 0 {
			cmds = append(cmds, cur)
			cur = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				word.WriteByte(c)
			}
		case quote == '"':
			if c == '"' {
				quote = 0
			} else if c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
				i++
				word.WriteByte(s[i])
			} else {
				word.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inW = c, true
		case c == '\\' && i+1 < len(s):
			i++
			word.WriteByte(s[i])
			inW = true
		case c == ' ' || c == '\t':
			flushWord()
		case c == ';' || c == '&' || c == '|' || c == '\n' || c == '(' || c == ')':
			flushCmd()
		default:
			word.WriteByte(c)
			inW = true
		}
	}
	flushCmd()
	return cmds
}
