package recorder

import (
	"path"
	"strings"

	"github.com/agentwatch/agentwatch/telemetry"
)

// Command classes name a process span by what the command is for:
// test_run, lint_run, dependency_install, commit, pull_request,
// patch_apply, git_diff, secret_scan, code_scan. Everything else is a
// bash_command.
//
// Which span carries the class: the process that IS the tool. A command
// line is unwrapped first — env/sudo/nice/timeout, an interpreter running
// the tool's script (`python3 /usr/local/bin/pytest`, `node
// …/node_modules/jest/bin/jest.js`), package runners (npx, pnpm dlx, uv
// run, bundle exec), and `sh -c` scripts whose classified commands agree
// on one class (`cd x && go test ./...`). A span that got its class only
// that way — through a wrapper that starts another process, or from a
// script-runner rule (`npm test`, `make test`, `tox`) — is indirect: it
// keeps the class only when no process below it has the same class. The
// real tool is usually seen as its own exec, so `bash -c 'go test ./...'`
// stays a bash_command with a test_run child, as telemetry.md draws it;
// when it is not seen (`npm test` running `node test.js`), the runner is
// the best evidence of the step and keeps the class. A direct tool span
// (go test itself) is never demoted, so a test that runs `go test` inside
// gives nested test_runs. The go toolchain's own children (compile, link,
// vet, $WORK/b001/pkg.test) match no rule and stay bash_command.

// commandClass is what the rules found about one command line.
type commandClass struct {
	class    string   // span name: telemetry.SpanTestRun, …
	tool     string   // agentwatch.command.tool: "go test", "pytest", "npm install"
	manager  string   // dependency_install: npm, pip, go, …
	packages []string // dependency_install: package specs named on the command line
	indirect bool     // classified through a wrapper or a script runner: an inner tool of the same class takes it
	sha      string   // commit: the commit this process made, matched at Finish
}

// commandRule is one row of the rule table. All set conditions must hold.
// Alternatives are written "a|b"; each alternative is a path.Match
// pattern ("test:*", "*:test").
type commandRule struct {
	class string
	tool  string // executable name after toolName
	sub   string // leading positional words, space-separated alternatives ("pr create", "run|run-script test|test:*")
	bare  bool   // also match when there is no positional word at all (`yarn`, `bundle`)
	arg   string // some positional word matches (make, mvn, gradle targets)
	flag  string // some argument matches (--check; "--check=…" too)
	// runner: the tool runs project-defined steps (npm test, make test);
	// the class is indirect.
	runner  bool
	manager string // dependency_install: the manager; the positional words after sub are the packages
	match   func(pos []string) bool
	name    string // agentwatch.command.tool; default: tool plus the matched sub words
}

const (
	maxUnwrap   = 8  // wrapper depth: sudo env nice timeout npx … never nests deeper in practice
	maxPackages = 32 // agentwatch.dependency.packages entries
)

// commandRules is the table. First match wins, so a more specific row
// comes before a broader one of the same tool.
var commandRules = []commandRule{
	// test_run
	{class: telemetry.SpanTestRun, tool: "go", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "gotestsum"},
	{class: telemetry.SpanTestRun, tool: "ginkgo", match: notSub("bootstrap|generate|version|help")},
	{class: telemetry.SpanTestRun, tool: "pytest"},
	{class: telemetry.SpanTestRun, tool: "unittest"}, // python -m unittest
	{class: telemetry.SpanTestRun, tool: "nose2"},
	{class: telemetry.SpanTestRun, tool: "tox", runner: true},
	{class: telemetry.SpanTestRun, tool: "nox", runner: true},
	{class: telemetry.SpanTestRun, tool: "manage", sub: "test"}, // python manage.py test
	{class: telemetry.SpanTestRun, tool: "hatch", sub: "test", runner: true},
	{class: telemetry.SpanTestRun, tool: "npm", sub: "test|t|tst|test:*", runner: true},
	{class: telemetry.SpanTestRun, tool: "npm", sub: "run|run-script test|test:*|test-*|tests", runner: true},
	{class: telemetry.SpanTestRun, tool: "yarn", sub: "test|test:*|tests", runner: true},
	{class: telemetry.SpanTestRun, tool: "yarn", sub: "run test|test:*|test-*|tests", runner: true},
	{class: telemetry.SpanTestRun, tool: "pnpm", sub: "test|t|tst|test:*", runner: true},
	{class: telemetry.SpanTestRun, tool: "pnpm", sub: "run test|test:*|test-*|tests", runner: true},
	{class: telemetry.SpanTestRun, tool: "bun", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "bun", sub: "run test|test:*|test-*|tests", runner: true},
	{class: telemetry.SpanTestRun, tool: "deno", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "jest"},
	{class: telemetry.SpanTestRun, tool: "vitest", match: notSub("init|list|bench")},
	{class: telemetry.SpanTestRun, tool: "mocha"},
	{class: telemetry.SpanTestRun, tool: "ava"},
	{class: telemetry.SpanTestRun, tool: "jasmine"},
	{class: telemetry.SpanTestRun, tool: "karma", sub: "start|run"},
	{class: telemetry.SpanTestRun, tool: "playwright", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "cypress", sub: "run"},
	{class: telemetry.SpanTestRun, tool: "cargo", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "cargo", sub: "nextest run"},
	{class: telemetry.SpanTestRun, tool: "make", arg: "test|tests|check|test-*|test_*|*-test|*-tests|unittest|unit-test|integration-test|e2e", runner: true},
	{class: telemetry.SpanTestRun, tool: "ninja", arg: "test|check", runner: true},
	{class: telemetry.SpanTestRun, tool: "gradle", arg: "test|check|*:test|*:check|*Test|*Tests", runner: true},
	{class: telemetry.SpanTestRun, tool: "mvn", arg: "test|verify|integration-test|surefire:test", runner: true},
	{class: telemetry.SpanTestRun, tool: "sbt", arg: "test|testOnly*|*/test", runner: true},
	{class: telemetry.SpanTestRun, tool: "bazel", sub: "test", runner: true},
	{class: telemetry.SpanTestRun, tool: "rspec"},
	{class: telemetry.SpanTestRun, tool: "rake", arg: "test|spec|test:*|spec:*", runner: true},
	{class: telemetry.SpanTestRun, tool: "rails", sub: "test|test:*"},
	{class: telemetry.SpanTestRun, tool: "phpunit"},
	{class: telemetry.SpanTestRun, tool: "pest"},
	{class: telemetry.SpanTestRun, tool: "artisan", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "dotnet", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "ctest"},
	{class: telemetry.SpanTestRun, tool: "meson", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "swift", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "mix", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "zig", sub: "build", arg: "test", runner: true},
	{class: telemetry.SpanTestRun, tool: "stack", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "cabal", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "dune", sub: "test|runtest"},
	{class: telemetry.SpanTestRun, tool: "flutter", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "dart", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "lein", sub: "test"},
	{class: telemetry.SpanTestRun, tool: "bats"},
	{class: telemetry.SpanTestRun, tool: "prove"},

	// lint_run
	{class: telemetry.SpanLintRun, tool: "go", sub: "vet"},
	{class: telemetry.SpanLintRun, tool: "golangci-lint", match: notSub("version|help|completion|cache|config|linters|formatters|fmt")},
	{class: telemetry.SpanLintRun, tool: "staticcheck"},
	{class: telemetry.SpanLintRun, tool: "revive"},
	{class: telemetry.SpanLintRun, tool: "golint"},
	{class: telemetry.SpanLintRun, tool: "gofmt", flag: "-l|-d"},
	{class: telemetry.SpanLintRun, tool: "buf", sub: "lint|breaking"},
	{class: telemetry.SpanLintRun, tool: "eslint"},
	{class: telemetry.SpanLintRun, tool: "oxlint"},
	{class: telemetry.SpanLintRun, tool: "stylelint"},
	{class: telemetry.SpanLintRun, tool: "prettier", flag: "--check|-c|--list-different|-l"},
	{class: telemetry.SpanLintRun, tool: "biome", sub: "check|lint|ci"},
	{class: telemetry.SpanLintRun, tool: "tsc", flag: "--noEmit"},
	{class: telemetry.SpanLintRun, tool: "vue-tsc", flag: "--noEmit"},
	{class: telemetry.SpanLintRun, tool: "deno", sub: "lint"},
	{class: telemetry.SpanLintRun, tool: "npm", sub: "run|run-script lint|lint:*|typecheck|check-types", runner: true},
	{class: telemetry.SpanLintRun, tool: "yarn", sub: "lint|lint:*|typecheck", runner: true},
	{class: telemetry.SpanLintRun, tool: "yarn", sub: "run lint|lint:*|typecheck", runner: true},
	{class: telemetry.SpanLintRun, tool: "pnpm", sub: "lint|lint:*|typecheck", runner: true},
	{class: telemetry.SpanLintRun, tool: "pnpm", sub: "run lint|lint:*|typecheck", runner: true},
	{class: telemetry.SpanLintRun, tool: "bun", sub: "run lint|lint:*|typecheck", runner: true},
	{class: telemetry.SpanLintRun, tool: "make", arg: "lint|vet|fmt-check|check-fmt|lint-*|*-lint|typecheck", runner: true},
	{class: telemetry.SpanLintRun, tool: "ruff", match: notSub("version|help|clean|server|rule|config|linter")},
	{class: telemetry.SpanLintRun, tool: "flake8"},
	{class: telemetry.SpanLintRun, tool: "pylint"},
	{class: telemetry.SpanLintRun, tool: "mypy"},
	{class: telemetry.SpanLintRun, tool: "pyright"},
	{class: telemetry.SpanLintRun, tool: "black", flag: "--check|--diff"},
	{class: telemetry.SpanLintRun, tool: "isort", flag: "--check|--check-only|-c|--diff"},
	{class: telemetry.SpanLintRun, tool: "rubocop"},
	{class: telemetry.SpanLintRun, tool: "standardrb"},
	{class: telemetry.SpanLintRun, tool: "cargo", sub: "clippy"},
	{class: telemetry.SpanLintRun, tool: "cargo", sub: "fmt", flag: "--check"},
	{class: telemetry.SpanLintRun, tool: "shellcheck"},
	{class: telemetry.SpanLintRun, tool: "hadolint"},
	{class: telemetry.SpanLintRun, tool: "yamllint"},
	{class: telemetry.SpanLintRun, tool: "markdownlint"},
	{class: telemetry.SpanLintRun, tool: "markdownlint-cli2"},
	{class: telemetry.SpanLintRun, tool: "actionlint"},
	{class: telemetry.SpanLintRun, tool: "tflint"},
	{class: telemetry.SpanLintRun, tool: "ktlint"},
	{class: telemetry.SpanLintRun, tool: "swiftlint"},
	{class: telemetry.SpanLintRun, tool: "clang-tidy"},
	{class: telemetry.SpanLintRun, tool: "cppcheck"},
	{class: telemetry.SpanLintRun, tool: "phpstan"},
	{class: telemetry.SpanLintRun, tool: "phpcs"},
	{class: telemetry.SpanLintRun, tool: "psalm"},
	{class: telemetry.SpanLintRun, tool: "ansible-lint"},
	{class: telemetry.SpanLintRun, tool: "sqlfluff", sub: "lint"},
	{class: telemetry.SpanLintRun, tool: "mix", sub: "credo"},
	{class: telemetry.SpanLintRun, tool: "dotnet", sub: "format", flag: "--verify-no-changes"},

	// dependency_install: the positional words after sub are the packages.
	{class: telemetry.SpanDependencyInstall, tool: "npm", sub: "install|i|in|ins|add|isntall|ci|clean-install|install-clean|ic", manager: "npm"},
	{class: telemetry.SpanDependencyInstall, tool: "pnpm", sub: "install|i|add", manager: "pnpm"},
	{class: telemetry.SpanDependencyInstall, tool: "yarn", sub: "install|add", bare: true, manager: "yarn"},
	{class: telemetry.SpanDependencyInstall, tool: "bun", sub: "install|i|add|a", manager: "bun"},
	{class: telemetry.SpanDependencyInstall, tool: "pip", sub: "install", manager: "pip"},
	{class: telemetry.SpanDependencyInstall, tool: "uv", sub: "pip install|sync", manager: "uv"},
	{class: telemetry.SpanDependencyInstall, tool: "uv", sub: "add|sync", manager: "uv"},
	{class: telemetry.SpanDependencyInstall, tool: "uv", sub: "tool install", manager: "uv"},
	{class: telemetry.SpanDependencyInstall, tool: "poetry", sub: "add|install", manager: "poetry"},
	{class: telemetry.SpanDependencyInstall, tool: "pipenv", sub: "install", manager: "pipenv"},
	{class: telemetry.SpanDependencyInstall, tool: "pdm", sub: "add|install", manager: "pdm"},
	{class: telemetry.SpanDependencyInstall, tool: "pipx", sub: "install", manager: "pipx"},
	{class: telemetry.SpanDependencyInstall, tool: "conda", sub: "install", manager: "conda"},
	{class: telemetry.SpanDependencyInstall, tool: "mamba", sub: "install", manager: "conda"},
	{class: telemetry.SpanDependencyInstall, tool: "go", sub: "get", manager: "go"},
	{class: telemetry.SpanDependencyInstall, tool: "go", sub: "mod download", manager: "go"},
	// go install of a local package builds; with @version it downloads.
	{class: telemetry.SpanDependencyInstall, tool: "go", sub: "install", manager: "go", match: anyPos(func(w string) bool { return strings.Contains(w, "@") })},
	{class: telemetry.SpanDependencyInstall, tool: "cargo", sub: "add|install|fetch", manager: "cargo"},
	{class: telemetry.SpanDependencyInstall, tool: "gem", sub: "install", manager: "gem"},
	{class: telemetry.SpanDependencyInstall, tool: "bundle", sub: "install|add", bare: true, manager: "bundler"},
	{class: telemetry.SpanDependencyInstall, tool: "composer", sub: "require|install", manager: "composer"},
	{class: telemetry.SpanDependencyInstall, tool: "dotnet", sub: "add package", manager: "nuget"},
	{class: telemetry.SpanDependencyInstall, tool: "dotnet", sub: "restore", manager: "nuget"},
	{class: telemetry.SpanDependencyInstall, tool: "apt-get", sub: "install", manager: "apt"},
	{class: telemetry.SpanDependencyInstall, tool: "apt", sub: "install", manager: "apt"},
	{class: telemetry.SpanDependencyInstall, tool: "aptitude", sub: "install", manager: "apt"},
	{class: telemetry.SpanDependencyInstall, tool: "dnf", sub: "install", manager: "dnf"},
	{class: telemetry.SpanDependencyInstall, tool: "yum", sub: "install", manager: "yum"},
	{class: telemetry.SpanDependencyInstall, tool: "apk", sub: "add", manager: "apk"},
	{class: telemetry.SpanDependencyInstall, tool: "brew", sub: "install", manager: "brew"},

	// git and forges
	{class: telemetry.SpanCommit, tool: "git", sub: "commit"},
	{class: telemetry.SpanPatchApply, tool: "git", sub: "apply|am"},
	{class: telemetry.SpanGitDiff, tool: "git", sub: "diff"},
	{class: telemetry.SpanSecretScan, tool: "git", sub: "secrets", flag: "--scan|--scan-history"},
	{class: telemetry.SpanPatchApply, tool: "patch"},
	{class: telemetry.SpanPullRequest, tool: "gh", sub: "pr create|new"},
	{class: telemetry.SpanPullRequest, tool: "glab", sub: "mr create|new"},
	{class: telemetry.SpanPullRequest, tool: "hub", sub: "pull-request"},

	// secret_scan
	{class: telemetry.SpanSecretScan, tool: "gitleaks", match: notSub("version|help|completion")},
	{class: telemetry.SpanSecretScan, tool: "trufflehog"},
	{class: telemetry.SpanSecretScan, tool: "detect-secrets", sub: "scan|audit"},
	{class: telemetry.SpanSecretScan, tool: "detect-secrets-hook"},
	{class: telemetry.SpanSecretScan, tool: "ggshield", sub: "secret|scan"},
	{class: telemetry.SpanSecretScan, tool: "noseyparker", sub: "scan"},
	{class: telemetry.SpanSecretScan, tool: "talisman"},

	// code_scan
	{class: telemetry.SpanCodeScan, tool: "semgrep", match: notSub("login|logout|install-semgrep-pro|lsp|publish|show")},
	{class: telemetry.SpanCodeScan, tool: "opengrep"},
	{class: telemetry.SpanCodeScan, tool: "codeql", sub: "database analyze|create"},
	{class: telemetry.SpanCodeScan, tool: "bandit"},
	{class: telemetry.SpanCodeScan, tool: "gosec"},
	{class: telemetry.SpanCodeScan, tool: "govulncheck"},
	{class: telemetry.SpanCodeScan, tool: "snyk", sub: "code"},
	{class: telemetry.SpanCodeScan, tool: "brakeman"},
	{class: telemetry.SpanCodeScan, tool: "njsscan"},
}

// valueOptions lists, per tool, options whose value is the next word
// (not a positional word): `git -C dir commit`, `pip install -r req.txt`.
// A trailing "?" takes the next word only when it is a number (make -j).
var valueOptions = map[string]string{
	"git":      "-C -c --git-dir --work-tree --namespace --config-env -m --message -F --file --author --date -S --gpg-sign --fixup --squash --cleanup -t --template --trailer --exclude --include --directory -p",
	"go":       "-C -run -skip -bench -count -timeout -p -tags -o -coverprofile -covermode -coverpkg -parallel -cpu -exec -ldflags -gcflags -asmflags -mod -modfile -overlay -pkgdir -toolexec -vettool",
	"npm":      "--prefix -w --workspace --registry --tag --omit --include --cache --loglevel --userconfig --install-strategy",
	"pnpm":     "-C --dir -F --filter --workspace-dir --reporter --loglevel --registry",
	"yarn":     "--cwd --modules-folder --cache-folder --registry --network-timeout --mutex",
	"bun":      "--cwd -c --config --registry --backend --cache-dir -t --test-name-pattern --timeout",
	"pip":      "-r --requirement -c --constraint -e --editable -i --index-url --extra-index-url -t --target --prefix --root -f --find-links --src --platform --python-version --implementation --abi --progress-bar --log --cache-dir --trusted-host --proxy --timeout --retries --report --upgrade-strategy --only-binary --no-binary",
	"uv":       "--directory --project -p --python --group --extra --optional --index --default-index --index-url --extra-index-url -r --requirement -c --constraint --with --with-requirements --package --cache-dir --config-file -e --editable --target --prefix --from",
	"poetry":   "-C --directory -G --group -E --extras --source --python -P --project --with --without --only",
	"pipenv":   "--python -r --requirements -i --index",
	"pdm":      "-p --project -G --group",
	"conda":    "-n --name -p --prefix -c --channel",
	"mamba":    "-n --name -p --prefix -c --channel",
	"cargo":    "-p --package --features -F --manifest-path --target --target-dir --vers --version --git --branch --tag --rev --path --registry --root --rename -j? --jobs --profile --bin --example --test --bench --color --config -Z",
	"gem":      "-v --version -i --install-dir -s --source -n --bindir --platform",
	"bundle":   "--gemfile --path --jobs -j --retry --without --with --group --version",
	"composer": "-d --working-dir",
	"apt-get":  "-o --option -t --target-release -c --config-file",
	"apt":      "-o --option -t --target-release -c --config-file",
	"dnf":      "--setopt --repo --enablerepo --disablerepo --releasever --installroot -c --config",
	"yum":      "--setopt --enablerepo --disablerepo --releasever --installroot -c --config",
	"apk":      "-X --repository --root -p",
	"make":     "-C --directory -f --file --makefile -j? --jobs -l? --load-average -I --include-dir -o --old-file -W --what-if",
	"ninja":    "-C -f -j -k -l -d -t -w",
	"mvn":      "-f --file -P --activate-profiles -pl --projects -s --settings -gs --global-settings -t --toolchains -T --threads -rf --resume-from -l --log-file",
	"gradle":   "-p --project-dir -b --build-file -c --settings-file -x --exclude-task -I --init-script --max-workers -g --gradle-user-home",
	"gh":       "-R --repo -t --title -b --body -F --body-file -B --base -H --head -a --assignee -l --label -m --milestone -r --reviewer -p --project -T --template",
	"dotnet":   "-c --configuration -f --framework -v --verbosity --filter -r --runtime -o --output -s --source --version --logger -l",
	"rake":     "-f --rakefile -C --directory -I --libdir -r --require",
	"zig":      "-p --prefix -j",
}

// toolAliases normalise executable names that are the same tool.
var toolAliases = map[string]string{
	"pip3": "pip", "py.test": "pytest", "gradlew": "gradle", "mvnw": "mvn", "yarnpkg": "yarn",
	"nodejs": "node", "pypy": "python", "pypy3": "python", "bazelisk": "bazel", "eslint_d": "eslint",
	"composer.phar": "composer", "micromamba": "mamba", "gmake": "make", "npm-cli": "npm", "npx-cli": "npx",
	"pnpm.cjs": "pnpm", "golangci-lint-v2": "golangci-lint", "apt-get.real": "apt-get", "semgrep-core": "semgrep",
}

// scopedTools name tools shipped in scoped npm packages, for node script
// paths (node_modules/@playwright/test/cli.js is playwright).
var scopedTools = map[string]string{
	"@playwright/test": "playwright", "@biomejs/biome": "biome", "@vitest/runner": "vitest",
	"@jest/core": "jest", "@redocly/cli": "redocly", "@typescript-eslint/parser": "eslint",
}

func toolName(argv0 string) string {
	base := path.Base(argv0)
	if n, ok := toolAliases[base]; ok {
		return n
	}
	switch {
	case strings.HasPrefix(base, "pip3."):
		return "pip"
	case base == "python" || strings.HasPrefix(base, "python2") || strings.HasPrefix(base, "python3"):
		return "python"
	}
	return base
}

// classifyCommand is the class of one exec'd command line (redacted argv),
// or nil for a plain bash_command.
func classifyCommand(argv []string) *commandClass {
	return classifyArgv(argv, 0)
}

func classifyArgv(argv []string, depth int) *commandClass {
	argv = skipAssignments(argv) // FOO=1 go test, inside sh -c scripts
	if len(argv) == 0 || depth > maxUnwrap {
		return nil
	}
	tool, args := toolName(argv[0]), argv[1:]
	if infoOnly(args) {
		return nil // eslint --version, pytest --help: nothing ran
	}
	if c := matchRules(tool, args); c != nil {
		return c
	}
	inner, _ := unwrapArgv(argv)
	var found *commandClass
	same := false // the wrapper process is itself the tool (an interpreter running its script)
	for _, in := range inner {
		same = in.kind == runsScript || in.kind == runsModule
		c := classifyArgv(classifiedArgv(in), depth+1)
		if c == nil {
			continue
		}
		if found != nil && found.class != c.class {
			// `npm ci && npm test`: several steps of different kinds;
			// the children's own spans say which is which.
			return nil
		}
		if found == nil {
			found = c
		}
	}
	if found != nil && !same {
		found.indirect = true
	}
	return found
}

var infoArgs = map[string]bool{"--version": true, "-V": true, "--help": true, "-h": true, "version": true, "help": true, "--usage": true}

func infoOnly(args []string) bool {
	for _, a := range args {
		if !infoArgs[a] {
			return false
		}
	}
	return len(args) > 0
}

var rulesByTool = func() map[string][]*commandRule {
	m := make(map[string][]*commandRule)
	for i := range commandRules {
		r := &commandRules[i]
		m[r.tool] = append(m[r.tool], r)
	}
	return m
}()

func matchRules(tool string, args []string) *commandClass {
	rules := rulesByTool[tool]
	if len(rules) == 0 {
		return nil
	}
	pos := positionals(args, valueOptions[tool])
	for _, r := range rules {
		if n, ok := r.matches(pos, args); ok {
			return r.classOf(pos, n)
		}
	}
	return nil
}

// matches reports whether the rule holds, and how many positional words
// its sub consumed.
func (r *commandRule) matches(pos, args []string) (int, bool) {
	n := 0
	if r.sub != "" {
		words := strings.Fields(r.sub)
		switch {
		case len(pos) == 0 && r.bare:
		case len(pos) < len(words):
			return 0, false
		default:
			for i, w := range words {
				if !matchAlt(w, pos[i]) {
					return 0, false
				}
			}
			n = len(words)
		}
	}
	if r.arg != "" && !anyMatch(r.arg, pos) {
		return 0, false
	}
	if r.flag != "" && !flagMatch(r.flag, args) {
		return 0, false
	}
	if r.match != nil && !r.match(pos) {
		return 0, false
	}
	return n, true
}

func (r *commandRule) classOf(pos []string, n int) *commandClass {
	c := &commandClass{class: r.class, indirect: r.runner, manager: r.manager}
	c.tool = r.name
	if c.tool == "" {
		c.tool = strings.Join(append([]string{r.tool}, pos[:n]...), " ")
	}
	if r.manager != "" {
		for _, p := range pos[n:] {
			if len(c.packages) == maxPackages {
				break
			}
			c.packages = append(c.packages, p)
		}
	}
	return c
}

func matchAlt(alts, word string) bool {
	for alt := range strings.SplitSeq(alts, "|") {
		if ok, _ := path.Match(alt, word); ok {
			return true
		}
	}
	return false
}

func anyMatch(alts string, words []string) bool {
	for _, w := range words {
		if matchAlt(alts, w) {
			return true
		}
	}
	return false
}

func flagMatch(alts string, args []string) bool {
	for _, a := range args {
		if name, _, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a = name
		}
		for alt := range strings.SplitSeq(alts, "|") {
			if a == alt {
				return true
			}
		}
	}
	return false
}

// notSub matches when the first positional word is none of alts (the
// tool's housekeeping subcommands).
func notSub(alts string) func([]string) bool {
	return func(pos []string) bool { return len(pos) == 0 || !matchAlt(alts, pos[0]) }
}

func anyPos(f func(string) bool) func([]string) bool {
	return func(pos []string) bool {
		for _, w := range pos {
			if f(w) {
				return true
			}
		}
		return false
	}
}

// positionals are the words of args that are not options or option
// values. Words after "--" are positional; "+toolchain" (cargo +nightly)
// is an option.
func positionals(args []string, valueOpts string) []string {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(pos, args[i+1:]...)
		case len(a) > 1 && (a[0] == '-' || a[0] == '+'):
			if strings.Contains(a, "=") || i+1 >= len(args) {
				continue
			}
			switch optionValue(valueOpts, a) {
			case valueAlways:
				i++
			case valueNumber:
				if isNumber(args[i+1]) {
					i++
				}
			}
		default:
			pos = append(pos, a)
		}
	}
	return pos
}

const (
	valueNone = iota
	valueAlways
	valueNumber
)

func optionValue(valueOpts, opt string) int {
	for o := range strings.FieldsSeq(valueOpts) {
		switch {
		case o == opt:
			return valueAlways
		case strings.TrimSuffix(o, "?") == opt:
			return valueNumber
		}
	}
	return valueNone
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// firstPositional returns args from the first positional word on.
func firstPositional(args []string, valueOpts string) []string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return args[i+1:]
		case len(a) > 1 && a[0] == '-':
			if !strings.Contains(a, "=") && optionValue(valueOpts, a) == valueAlways {
				i++
			}
		default:
			return args[i:]
		}
	}
	return nil
}

// scriptTool is the tool a script path runs:
// …/node_modules/jest/bin/jest.js → jest, …/node_modules/.bin/vitest →
// vitest, /usr/lib/node_modules/npm/bin/npx-cli.js → npx, vendor/bin/phpunit
// → phpunit, ./gradlew → gradle.
func scriptTool(p string) string {
	if i := strings.LastIndex(p, "node_modules/"); i >= 0 {
		segs := strings.Split(p[i+len("node_modules/"):], "/")
		pkg := segs[0]
		switch {
		case pkg == ".bin" && len(segs) > 1:
			return toolName(segs[1])
		case strings.HasPrefix(pkg, "@") && len(segs) > 1:
			if t, ok := scopedTools[pkg+"/"+segs[1]]; ok {
				return t
			}
			return toolName(segs[1])
		case pkg == "npm" || pkg == "corepack":
			// npm ships npm and npx; corepack ships pnpm and yarn shims.
			return toolName(trimExt(path.Base(p)))
		}
		return toolName(pkg)
	}
	return toolName(trimExt(path.Base(p)))
}

func trimExt(base string) string {
	for _, ext := range []string{".js", ".mjs", ".cjs", ".ts", ".mts", ".py", ".rb", ".pl", ".php", ".phar", ".sh"} {
		if strings.HasSuffix(base, ext) && len(base) > len(ext) {
			return strings.TrimSuffix(base, ext)
		}
	}
	return base
}

// classifiedArgv is the command line an inner command of a wrapper is
// classified as: a package spec or a script path named as its tool
// ([/usr/local/bin/pytest -q] → [pytest -q], [@playwright/test@1 test] →
// [playwright test]).
func classifiedArgv(in innerArgv) []string {
	if len(in.argv) == 0 {
		return nil
	}
	switch in.kind {
	case runsPackage:
		spec := stripVersion(in.argv[0])
		tool := path.Base(spec)
		if t, ok := scopedTools[spec]; ok {
			tool = t
		}
		return append([]string{tool}, in.argv[1:]...)
	case runsScript:
		return append([]string{scriptTool(in.argv[0])}, in.argv[1:]...)
	}
	return in.argv
}
