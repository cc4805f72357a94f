package recorder

import (
	"path"
	"strings"
)

// The one argv walker. Agent detection (agentName), prompt marking
// (promptWords) and command classification (classifyArgv) all see through
// the same wrappers with the same option tables: unwrapArgv says what a
// command line runs, and each of them names what it finds its own way
// (a package spec is an agent's package to agentName and a tool to the
// classifier).

// argvKind says how a wrapper runs the command line it wraps, and so how
// the first word of that command line is to be read.
type argvKind int

const (
	// runsCommand: a process that starts argv (env, sudo, timeout, nice,
	// uv run, poetry run, npx -c "…").
	runsCommand argvKind = iota
	// runsPackage: argv[0] is a package spec whose bin is run (npx, bunx,
	// uvx, pnpm dlx, npm exec, pipx run); pkg is --package's value.
	runsPackage
	// runsBin: a guess — `yarn jest`, `pnpm vitest`: a word that is not
	// one of the manager's own commands runs the project's bin.
	runsBin
	// runsScript: the wrapper process itself runs the script at path
	// argv[0] (node cli.js, python3 /usr/local/bin/pytest, sh ./gradlew).
	runsScript
	// runsModule: python -m: argv[0] is a module name.
	runsModule
	// runsShell: one simple command of a `sh -c` script.
	runsShell
)

// innerArgv is one command line a wrapper runs.
type innerArgv struct {
	kind argvKind
	argv []string
	pkg  string // runsPackage: the --package (-p) value, "" when none
	// offset is where argv starts in the wrapper's argv when argv is a
	// suffix of it, -1 when it is not (env -S "…" splits a string, npx -c
	// "…"); for runsShell, the index of the script word.
	offset int
}

// argvWrapper unwraps the arguments of one wrapper (argv[1:]). Offsets
// it returns are relative to args; unwrapArgv makes them relative to argv.
type argvWrapper func(args []string) []innerArgv

// unwrapArgv returns what argv runs when argv[0] is a wrapper; ok is false
// when it is not one. A wrapper that runs nothing (`env`, `node -e …`)
// gives ok and no inner command lines.
func unwrapArgv(argv []string) (inner []innerArgv, ok bool) {
	if len(argv) == 0 {
		return nil, false
	}
	w := argvWrappers[wrapperKey(argv[0])]
	if w == nil {
		return nil, false
	}
	inner = w(argv[1:])
	return shift(inner, 1), true
}

// shift makes the offsets of inner, relative to a suffix of some argv
// that starts at n, relative to that argv.
func shift(inner []innerArgv, n int) []innerArgv {
	for i := range inner {
		if inner[i].offset >= 0 {
			inner[i].offset += n
		}
	}
	return inner
}

// wrapperKey is the name argvWrappers knows a wrapper by: the tool name
// (nodejs is node, python3.12 is python), any python* being python.
func wrapperKey(argv0 string) string {
	t := toolName(argv0)
	if _, ok := argvWrappers[t]; !ok && strings.HasPrefix(path.Base(argv0), "python") {
		return "python"
	}
	return t
}

// suffix is rest as an inner command line of args, with its offset when
// rest is a suffix of args.
func suffix(kind argvKind, args, rest []string) []innerArgv {
	if len(rest) == 0 {
		return nil
	}
	off := -1
	if len(rest) <= len(args) && &rest[len(rest)-1] == &args[len(args)-1] {
		off = len(args) - len(rest)
	}
	return []innerArgv{{kind: kind, argv: rest, offset: off}}
}

// sudoOptions are sudo's (and doas's) options that take a value.
var (
	sudoShort = "ugCDhprtUTR"
	sudoLong  = []string{"--user", "--group", "--chdir", "--host", "--prompt", "--role", "--type", "--other-user", "--command-timeout", "--chroot"}
)

// packageRunnerValues are a package runner's options that take a value
// (npx -p pkg, uvx --from pkg --with dep --python 3.12).
var packageRunnerValues = []string{"-p", "--package", "--from", "--with", "--python", "--spec",
	"--directory", "--project", "--with-requirements", "--index", "--index-url", "--extra-index-url", "--cache-dir", "--config-file"}

// runPackage is what an npx-style runner runs: its options skipped, a
// package spec first; `npx -c "…"` runs a command string.
func runPackage(args []string) []innerArgv {
	all := args
	pkg := ""
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--":
			args = args[1:]
		case a == "-c" || a == "--call":
			if len(args) > 1 {
				return []innerArgv{{kind: runsCommand, argv: shellWords(args[1]), offset: -1}}
			}
			return nil
		case strings.HasPrefix(a, "--package="):
			if pkg == "" {
				pkg = strings.TrimPrefix(a, "--package=")
			}
			args = args[1:]
			continue
		case contains(packageRunnerValues, a):
			if (a == "-p" || a == "--package") && len(args) > 1 && pkg == "" {
				pkg = args[1]
			}
			args = args[min(2, len(args)):]
			continue
		case strings.HasPrefix(a, "-"):
			args = args[1:]
			continue
		}
		break
	}
	if len(args) == 0 && pkg == "" {
		return nil
	}
	off := -1
	if len(args) > 0 {
		off = len(all) - len(args)
	}
	return []innerArgv{{kind: runsPackage, argv: args, pkg: pkg, offset: off}}
}

// scriptArgs skips a runtime's options up to the script path. short and
// long are the options that take a value ("-r x", "--require x"; attached
// "-rx", "--require=x" take none); after an inline option (node -e: code
// given on the command line) there is no script.
func scriptArgs(args []string, short string, long, inline []string) []string {
	for len(args) > 0 {
		a := args[0]
		name, _, attached := strings.Cut(a, "=")
		switch {
		case contains(inline, name):
			return nil
		case a == "--":
			return args[1:]
		case strings.HasPrefix(a, "--"):
			if !attached && contains(long, a) {
				args = args[min(2, len(args)):]
			} else {
				args = args[1:]
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			if len(a) == 2 && strings.IndexByte(short, a[1]) >= 0 {
				args = args[min(2, len(args)):]
			} else {
				args = args[1:]
			}
		default:
			return args
		}
	}
	return nil
}

// script is the script a runtime runs, as an inner command line of args.
func script(args []string, short string, long, inline []string) []innerArgv {
	rest := scriptArgs(args, short, long, inline)
	return suffix(runsScript, args, rest)
}

// subcommand runs what follows one of subs (poetry run X, uv tool run X),
// options skipped by valueOpts.
func subcommand(kind argvKind, valueOpts string, subs ...string) argvWrapper {
	return func(args []string) []innerArgv {
		rest := firstPositional(args, valueOpts)
		for _, s := range subs {
			words := strings.Fields(s)
			if len(rest) >= len(words) && strings.Join(rest[:len(words)], " ") == s {
				rest = rest[len(words):]
				if kind == runsPackage {
					return shift(runPackage(rest), len(args)-len(rest))
				}
				return suffix(kind, args, firstPositional(rest, valueOpts))
			}
		}
		return nil
	}
}

// shellKeywords start a simple command without being the command
// (`if go test ./...; then`, `for …; do pytest; done`).
var shellKeywords = map[string]bool{
	"if": true, "then": true, "else": true, "elif": true, "while": true, "until": true,
	"do": true, "!": true, "{": true, "time": true, "exec": true, "command": true, "builtin": true,
}

// shellScript finds the script of `sh -c SCRIPT` (bash -o pipefail -c,
// bash -e -c -x: the first non-option word after the options); idx is -1
// when there is none, and rest is then the script file the shell runs
// (`sh ./gradlew test`), if any.
func shellScript(args []string) (idx int, rest []string) {
	rest = args
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-o" || a == "+o" || a == "-O" || a == "+O" {
			i++
			continue
		}
		if a == "--" || !strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "+") {
			rest = args[i:]
			if a == "--" {
				rest = args[i+1:]
			}
			return -1, rest
		}
		if !strings.HasPrefix(a, "--") && strings.Contains(a[1:], "c") {
			for j := i + 1; j < len(args); j++ {
				if !strings.HasPrefix(args[j], "-") && !strings.HasPrefix(args[j], "+") {
					return j, nil
				}
			}
			return -1, nil
		}
		rest = nil
	}
	return -1, rest
}

// shell is what a shell runs: the simple commands of its -c script
// (shell keywords dropped), or the script file it runs.
func shell(args []string) []innerArgv {
	idx, rest := shellScript(args)
	if idx < 0 {
		return suffix(runsScript, args, rest)
	}
	var inner []innerArgv
	for _, cmd := range simpleCommands(args[idx]) {
		for len(cmd) > 0 && shellKeywords[cmd[0]] {
			cmd = cmd[1:]
		}
		if len(cmd) > 0 {
			inner = append(inner, innerArgv{kind: runsShell, argv: cmd, offset: idx})
		}
	}
	return inner
}

// argvWrappers is the one table of commands that run another command,
// keyed by toolName.
var argvWrappers map[string]argvWrapper

func init() {
	prefix := func(skip func([]string) []string) argvWrapper {
		return func(args []string) []innerArgv { return suffix(runsCommand, args, skip(args)) }
	}
	opts := func(short string, long ...string) argvWrapper {
		return prefix(func(a []string) []string { return skipOptions(a, short, long) })
	}
	sudo := prefix(func(a []string) []string { return skipAssignments(skipOptions(a, sudoShort, sudoLong)) })
	runner := func(args []string) []innerArgv { return runPackage(args) }
	// managerRunner: pnpm dlx, yarn exec, npm x … run a package; bin,
	// when set, takes any other word for a bin of the project.
	managerRunner := func(tool string, subs string, bin bool) argvWrapper {
		return func(args []string) []innerArgv {
			rest := firstPositional(args, valueOptions[tool])
			if len(rest) > 0 && contains(strings.Fields(subs), rest[0]) {
				return shift(runPackage(rest[1:]), len(args)-len(rest)+1)
			}
			if bin {
				return suffix(runsBin, args, rest)
			}
			return nil
		}
	}
	nodeShort, nodeLong := "rC", []string{"--require", "--import", "--loader", "--experimental-loader", "--env-file", "--conditions", "--title", "--inspect-port"}
	jsInline := []string{"-e", "--eval", "-p", "--print"}
	argvWrappers = map[string]argvWrapper{
		"env":       prefix(skipEnv),
		"sudo":      sudo,
		"doas":      sudo,
		"nice":      opts("n", "--adjustment"),
		"ionice":    opts("cnp", "--class", "--classdata", "--pid"),
		"nohup":     opts(""),
		"setsid":    opts(""),
		"time":      opts("fo", "--format", "--output"),
		"command":   opts(""),
		"exec":      opts("a"),
		"builtin":   opts(""),
		"stdbuf":    opts("ioe", "--input", "--output", "--error"),
		"chronic":   opts(""),
		"unbuffer":  opts(""),
		"xvfb-run":  opts("nsfewp", "--server-num", "--server-args", "--auth-file", "--error-file", "--xauth-protocol"),
		"cross-env": prefix(skipAssignments),
		"timeout": prefix(func(a []string) []string {
			a = skipOptions(a, "sk", []string{"--signal", "--kill-after"})
			if len(a) > 0 {
				a = a[1:] // the duration
			}
			return a
		}),
		"dotenv": prefix(func(a []string) []string {
			for i, w := range a {
				if w == "--" {
					return a[i+1:]
				}
			}
			return nil
		}),

		"npx": runner, "bunx": runner, "uvx": runner,
		"npm":    managerRunner("npm", "dlx exec x", false),
		"yarn":   managerRunner("yarn", "dlx exec x run", true),
		"pnpm":   managerRunner("pnpm", "dlx exec x run", true),
		"pipx":   subcommand(runsPackage, "", "run"),
		"uv":     multi(subcommand(runsPackage, valueOptions["uv"], "tool run"), subcommand(runsCommand, valueOptions["uv"], "run")),
		"poetry": subcommand(runsCommand, valueOptions["poetry"], "run"),
		"pipenv": subcommand(runsCommand, "", "run"),
		"pdm":    subcommand(runsCommand, "", "run"),
		"hatch":  subcommand(runsCommand, "", "run"),
		"rye":    subcommand(runsCommand, "", "run"),
		"bundle": subcommand(runsCommand, "", "exec"),
		"mise":   subcommand(runsCommand, "", "exec"),
		"asdf":   subcommand(runsCommand, "", "exec"),
		"direnv": func(args []string) []innerArgv {
			rest := firstPositional(args, "")
			if len(rest) >= 2 && rest[0] == "exec" {
				return suffix(runsCommand, args, rest[2:]) // direnv exec DIR cmd
			}
			return nil
		},

		// Runtimes: the process is the tool whose script it runs.
		"bun": func(args []string) []innerArgv {
			rest := firstPositional(args, valueOptions["bun"])
			if len(rest) > 0 && (rest[0] == "x" || rest[0] == "dlx" || rest[0] == "exec") {
				return managerRunner("bun", rest[0], false)(args)
			}
			if len(rest) > 0 && rest[0] == "run" {
				rest = firstPositional(rest[1:], valueOptions["bun"])
			}
			return suffix(runsScript, args, rest)
		},
		"node": func(args []string) []innerArgv {
			return script(args, nodeShort, nodeLong, jsInline)
		},
		"deno": func(args []string) []innerArgv {
			rest := firstPositional(args, "")
			if len(rest) > 0 && rest[0] == "run" {
				rest = firstPositional(rest[1:], "--config -c --import-map --env-file")
			}
			return suffix(runsScript, args, rest)
		},
		"tsx": func(args []string) []innerArgv {
			return script(args, nodeShort, append(nodeLong, "--tsconfig"), jsInline)
		},
		"ts-node": func(args []string) []innerArgv {
			return script(args, nodeShort, append(nodeLong, "--project"), jsInline)
		},
		"python": func(args []string) []innerArgv {
			all := args
			for len(args) > 0 {
				a := args[0]
				switch {
				case a == "-m" && len(args) > 1:
					return suffix(runsModule, all, args[1:])
				case a == "-c":
					return nil // inline code: no tool to name
				case a == "-W" || a == "-X":
					args = args[min(2, len(args)):]
				case strings.HasPrefix(a, "-"):
					args = args[1:]
				default:
					return suffix(runsScript, all, args)
				}
			}
			return nil
		},
		"ruby": func(args []string) []innerArgv { return script(args, "ICrE", nil, nil) },
		"php":  func(args []string) []innerArgv { return script(args, "dcf", nil, nil) },
		"perl": func(args []string) []innerArgv { return script(args, "", nil, nil) },
	}
}

// shells run sh -c scripts (and script files) the same way.
var shells = []string{"sh", "bash", "zsh", "dash", "ksh", "ash", "fish"}

func init() {
	for _, sh := range shells {
		argvWrappers[sh] = shell
	}
}

func isShell(base string) bool { return contains(shells, base) }

// multi tries wrappers in turn; the first that runs something wins.
func multi(ws ...argvWrapper) argvWrapper {
	return func(args []string) []innerArgv {
		for _, w := range ws {
			if inner := w(args); len(inner) > 0 {
				return inner
			}
		}
		return nil
	}
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

// splitShell is shellCommandWords (tools.go) without the quoting marks.
func splitShell(s string) [][]string {
	cmds := shellCommandWords(s)
	out := make([][]string, len(cmds))
	for i, c := range cmds {
		out[i] = make([]string, len(c))
		for j, w := range c {
			out[i][j] = w.text
		}
	}
	return out
}
