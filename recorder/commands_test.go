package recorder

import (
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/telemetry"
)

// sh splits a command line for the table (quotes, no expansion).
func sh(line string) []string { return shellWords(line) }

func TestClassifyCommand(t *testing.T) {
	const (
		test    = telemetry.SpanTestRun
		lint    = telemetry.SpanLintRun
		install = telemetry.SpanDependencyInstall
		commit  = telemetry.SpanCommit
		pr      = telemetry.SpanPullRequest
		patch   = telemetry.SpanPatchApply
		diff    = telemetry.SpanGitDiff
		secret  = telemetry.SpanSecretScan
		code    = telemetry.SpanCodeScan
		none    = ""
	)
	tests := []struct {
		argv     []string
		class    string
		tool     string // "" skips the check
		indirect bool
		pkgs     string // comma-joined; checked for dependency_install
	}{
		// test_run, direct tools
		{sh("go test ./..."), test, "go test", false, ""},
		{sh("go test -run TestX -count=1 ./pkg/..."), test, "go test", false, ""},
		{sh("/usr/local/go/bin/go -C sub test ./..."), test, "go test", false, ""},
		{sh("gotestsum --format short -- ./..."), test, "gotestsum", false, ""},
		{sh("pytest -q tests/"), test, "pytest", false, ""},
		{sh("py.test -x"), test, "pytest", false, ""},
		{sh("/usr/bin/python3 /usr/local/bin/pytest -v"), test, "pytest", false, ""},
		{sh("python -m pytest -k slow"), test, "pytest", false, ""},
		{sh("python3.12 -m unittest discover"), test, "unittest", false, ""},
		{sh("python manage.py test app"), test, "manage test", false, ""},
		{sh("cargo test --workspace"), test, "cargo test", false, ""},
		{sh("cargo +nightly test"), test, "cargo test", false, ""},
		{sh("cargo nextest run"), test, "cargo nextest run", false, ""},
		{sh("jest --ci"), test, "jest", false, ""},
		{sh("node /app/node_modules/jest/bin/jest.js --runInBand"), test, "jest", false, ""},
		{sh("node /app/node_modules/.bin/vitest run"), test, "vitest", false, ""},
		{sh("/usr/bin/env node /app/node_modules/.bin/mocha test/"), test, "mocha", true, ""},
		{sh("node node_modules/@playwright/test/cli.js test"), test, "playwright test", false, ""},
		{sh("bun test"), test, "bun test", false, ""},
		{sh("deno test -A"), test, "deno test", false, ""},
		{sh("rspec spec/models"), test, "rspec", false, ""},
		{sh("ruby /usr/local/bin/rspec"), test, "rspec", false, ""},
		{sh("php vendor/bin/phpunit --testdox"), test, "phpunit", false, ""},
		{sh("php artisan test"), test, "artisan test", false, ""},
		{sh("dotnet test -c Release"), test, "dotnet test", false, ""},
		{sh("ctest --output-on-failure"), test, "ctest", false, ""},
		{sh("mix test"), test, "mix test", false, ""},
		{sh("swift test"), test, "swift test", false, ""},
		// test_run, runners of project steps
		{sh("npm test"), test, "npm test", true, ""},
		{sh("npm t"), test, "npm t", true, ""},
		{sh("npm run test:unit"), test, "npm run test:unit", true, ""},
		{sh("npm --prefix web run test"), test, "npm run test", true, ""},
		{sh("node /usr/lib/node_modules/npm/bin/npm-cli.js test"), test, "npm test", true, ""},
		{sh("yarn test"), test, "yarn test", true, ""},
		{sh("pnpm -C packages/api test"), test, "pnpm test", true, ""},
		{sh("pnpm run test"), test, "pnpm run test", true, ""},
		{sh("bun run test"), test, "bun run test", true, ""},
		{sh("make test"), test, "make", true, ""},
		{sh("make -j8 -C src check"), test, "make", true, ""},
		{sh("make -j 4 test-integration"), test, "make", true, ""},
		{sh("./gradlew --no-daemon test"), test, "gradle", true, ""},
		{sh("/bin/sh ./gradlew :app:test"), test, "gradle", true, ""},
		{sh("mvn -B -q verify"), test, "mvn", true, ""},
		{sh("bazel test //..."), test, "bazel test", true, ""},
		{sh("tox -e py312"), test, "tox", true, ""},
		{sh("rake spec"), test, "rake", true, ""},
		// through wrappers
		{sh("bash -c 'go test ./...'"), test, "go test", true, ""},
		{sh("sh -c 'cd services/api && go test ./...'"), test, "go test", true, ""},
		{sh("bash -lc 'source venv/bin/activate; pytest -q | tee out.log'"), test, "pytest", true, ""},
		{sh("bash -c 'if go test ./...; then echo ok; fi'"), test, "go test", true, ""},
		{sh("env CI=1 GOFLAGS=-mod=mod go test ./..."), test, "go test", true, ""},
		{sh("CI=true npm test"), test, "npm test", true, ""},
		{sh("timeout 10m go test ./..."), test, "go test", true, ""},
		{sh("nice -n 10 cargo test"), test, "cargo test", true, ""},
		{sh("npx jest --watchAll=false"), test, "jest", true, ""},
		{sh("npx -y vitest@1.6.0 run"), test, "vitest", true, ""},
		{sh("pnpm dlx vitest run"), test, "vitest", true, ""},
		{sh("pnpm exec jest"), test, "jest", true, ""},
		{sh("npm exec -- jest@29 --ci"), test, "jest", true, ""},
		{sh("yarn jest --ci"), test, "jest", true, ""},
		{sh("bunx vitest"), test, "vitest", true, ""},
		{sh("uv run pytest"), test, "pytest", true, ""},
		{sh("uv run --with pytest-cov pytest --cov"), test, "pytest", true, ""},
		{sh("poetry run pytest tests"), test, "pytest", true, ""},
		{sh("bundle exec rspec"), test, "rspec", true, ""},
		{sh("sudo -u dev make test"), test, "make", true, ""},
		{sh("cross-env NODE_ENV=test jest"), test, "jest", true, ""},

		// lint_run
		{sh("golangci-lint run ./..."), lint, "golangci-lint", false, ""},
		{sh("go vet ./..."), lint, "go vet", false, ""},
		{sh("staticcheck ./..."), lint, "staticcheck", false, ""},
		{sh("gofmt -l ."), lint, "gofmt", false, ""},
		{sh("eslint . --ext .ts"), lint, "eslint", false, ""},
		{sh("node /app/node_modules/eslint/bin/eslint.js src"), lint, "eslint", false, ""},
		{sh("npx eslint ."), lint, "eslint", true, ""},
		{sh("prettier --check ."), lint, "prettier", false, ""},
		{sh("npx @biomejs/biome check ."), lint, "biome check", true, ""},
		{sh("tsc --noEmit -p ."), lint, "tsc", false, ""},
		{sh("npm run lint"), lint, "npm run lint", true, ""},
		{sh("pnpm lint"), lint, "pnpm lint", true, ""},
		{sh("make lint"), lint, "make", true, ""},
		{sh("ruff check ."), lint, "ruff", false, ""},
		{sh("uvx ruff check"), lint, "ruff", true, ""},
		{sh("python -m mypy src"), lint, "mypy", false, ""},
		{sh("flake8 src"), lint, "flake8", false, ""},
		{sh("pylint pkg"), lint, "pylint", false, ""},
		{sh("black --check ."), lint, "black", false, ""},
		{sh("rubocop -a"), lint, "rubocop", false, ""},
		{sh("cargo clippy -- -D warnings"), lint, "cargo clippy", false, ""},
		{sh("cargo fmt --all -- --check"), lint, "cargo fmt", false, ""},
		{sh("shellcheck scripts/*.sh"), lint, "shellcheck", false, ""},

		// dependency_install, with packages
		{sh("npm install"), install, "npm install", false, ""},
		{sh("npm i -D jest@29 ts-jest"), install, "npm i", false, "jest@29,ts-jest"},
		{sh("npm ci"), install, "npm ci", false, ""},
		{sh("node /usr/lib/node_modules/npm/bin/npm-cli.js install left-pad"), install, "npm install", false, "left-pad"},
		{sh("pnpm add -D vitest"), install, "pnpm add", false, "vitest"},
		{sh("yarn"), install, "yarn", false, ""},
		{sh("yarn add lodash@^4"), install, "yarn add", false, "lodash@^4"},
		{sh("bun add zod"), install, "bun add", false, "zod"},
		{sh("pip install requests==2.31.0 'urllib3<2'"), install, "pip install", false, "requests==2.31.0,urllib3<2"},
		{sh("pip3 install -r requirements.txt"), install, "pip install", false, ""},
		{sh("python3 -m pip install --upgrade pip"), install, "pip install", false, "pip"},
		{sh("/home/u/.venv/bin/python /home/u/.venv/bin/pip install -e . flask"), install, "pip install", false, "flask"},
		{sh("uv add httpx"), install, "uv add", false, "httpx"},
		{sh("uv pip install numpy"), install, "uv pip install", false, "numpy"},
		{sh("uv sync"), install, "uv sync", false, ""},
		{sh("poetry add -G dev pytest"), install, "poetry add", false, "pytest"},
		{sh("go get github.com/stretchr/testify@v1.9.0"), install, "go get", false, "github.com/stretchr/testify@v1.9.0"},
		{sh("go mod download"), install, "go mod download", false, ""},
		{sh("go install golang.org/x/tools/cmd/stringer@latest"), install, "go install", false, "golang.org/x/tools/cmd/stringer@latest"},
		{sh("cargo add serde --features derive"), install, "cargo add", false, "serde"},
		{sh("gem install rails -v 7.1"), install, "gem install", false, "rails"},
		{sh("bundle install"), install, "bundle install", false, ""},
		{sh("composer require guzzlehttp/guzzle"), install, "composer require", false, "guzzlehttp/guzzle"},
		{sh("sudo apt-get install -y curl jq"), install, "apt-get install", true, "curl,jq"},
		{sh("apt-get -o Dpkg::Options::=--force-confnew install -y git"), install, "apt-get install", false, "git"},
		{sh("brew install --cask firefox"), install, "brew install", false, "firefox"},
		{sh("dotnet add package Newtonsoft.Json"), install, "dotnet add package", false, "Newtonsoft.Json"},
		{sh("bash -c 'npm ci'"), install, "npm ci", true, ""},

		// git and forges
		{sh("git commit -m 'fix: flaky test'"), commit, "git commit", false, ""},
		{sh("git -C repo -c user.name=bot commit --amend --no-edit"), commit, "git commit", false, ""},
		{sh("git apply fix.patch"), patch, "git apply", false, ""},
		{sh("git am 0001-fix.patch"), patch, "git am", false, ""},
		{sh("patch -p1 -i fix.diff"), patch, "patch", false, ""},
		{sh("git diff --stat HEAD~1"), diff, "git diff", false, ""},
		{sh("git --no-pager diff"), diff, "git diff", false, ""},
		{sh("gh pr create --fill --base main"), pr, "gh pr create", false, ""},
		{sh("gh pr create -t 'Fix' -b 'Body'"), pr, "gh pr create", false, ""},
		{sh("glab mr create"), pr, "glab mr create", false, ""},

		// scanners
		{sh("gitleaks detect --source ."), secret, "gitleaks", false, ""},
		{sh("trufflehog git file://."), secret, "trufflehog", false, ""},
		{sh("detect-secrets scan"), secret, "detect-secrets scan", false, ""},
		{sh("ggshield secret scan repo ."), secret, "ggshield secret", false, ""},
		{sh("semgrep scan --config auto"), code, "semgrep", false, ""},
		{sh("semgrep --config p/ci"), code, "semgrep", false, ""},
		{sh("codeql database analyze db --format=sarif-latest"), code, "codeql database analyze", false, ""},
		{sh("bandit -r src"), code, "bandit", false, ""},
		{sh("gosec ./..."), code, "gosec", false, ""},
		{sh("snyk code test"), code, "snyk code", false, ""},

		// negatives: not a class
		{sh("go testdata/x"), none, "", false, ""},
		{sh("go build ./..."), none, "", false, ""},
		{sh("go run ./cmd/test"), none, "", false, ""},
		{sh("go version"), none, "", false, ""},
		{sh("echo pytest"), none, "", false, ""},
		{sh("grep -r test ."), none, "", false, ""},
		{sh("cat test.txt"), none, "", false, ""},
		{sh("ls tests"), none, "", false, ""},
		{sh("test -f go.mod"), none, "", false, ""},
		{sh("[ -d node_modules ]"), none, "", false, ""},
		{sh("node test.js"), none, "", false, ""},
		{sh("python test_helpers.py"), none, "", false, ""},
		{sh("npm run build"), none, "", false, ""},
		{sh("npm view jest version"), none, "", false, ""},
		{sh("yarn build"), none, "", false, ""},
		{sh("make"), none, "", false, ""},
		{sh("make build"), none, "", false, ""},
		{sh("mvn package -DskipTests"), none, "", false, ""},
		{sh("pip list"), none, "", false, ""},
		{sh("pip download requests"), none, "", false, ""},
		{sh("cargo build --release"), none, "", false, ""},
		{sh("go install ./cmd/agentwatch"), none, "", false, ""},
		{sh("git status"), none, "", false, ""},
		{sh("git log --oneline"), none, "", false, ""},
		{sh("git stash apply"), none, "", false, ""},
		{sh("git commit-tree HEAD^{tree}"), none, "", false, ""},
		{sh("git show HEAD:diff.txt"), none, "", false, ""},
		{sh("gh pr view 12"), none, "", false, ""},
		{sh("gh pr list"), none, "", false, ""},
		{sh("prettier --write ."), none, "", false, ""},
		{sh("gofmt -w main.go"), none, "", false, ""},
		{sh("eslint --version"), none, "", false, ""},
		{sh("pytest --help"), none, "", false, ""},
		{sh("jest -h"), none, "", false, ""},
		{sh("golangci-lint version"), none, "", false, ""},
		{sh("bash -c 'npm ci && npm test'"), none, "", false, ""},
		{sh("bash -c 'go vet ./... && go test ./...'"), none, "", false, ""},
		{sh("bash -c 'echo go test ./...'"), none, "", false, ""},
		{sh("bash"), none, "", false, ""},
		{sh("bash -c 'mkdir -p out; cp a b'"), none, "", false, ""},
		{sh("python -c 'import pytest'"), none, "", false, ""},
		{sh("/root/go/pkg/tool/linux_amd64/compile -o $WORK/b001/_pkg_.a -p main"), none, "", false, ""},
		{sh("/root/go/pkg/tool/linux_amd64/vet $WORK/b001/vet.cfg"), none, "", false, ""},
		{sh("/root/go/pkg/tool/linux_amd64/link -o $WORK/b001/exe/a.out"), none, "", false, ""},
		{sh("/tmp/go-build123/b001/app.test -test.paniconexit0 -test.timeout=10m0s"), none, "", false, ""},
		{sh("rustc --crate-name serde"), none, "", false, ""},
		{sh("/app/target/debug/deps/app-1a2b3c -q"), none, "", false, ""},
		{sh("npx tsc"), none, "", false, ""},
		{nil, none, "", false, ""},
	}
	if len(tests) < 60 {
		t.Fatalf("only %d command lines", len(tests))
	}
	for _, tt := range tests {
		c := classifyCommand(tt.argv)
		line := CommandLine(tt.argv)
		if tt.class == none {
			if c != nil {
				t.Errorf("%s: class %s (%s), want none", line, c.class, c.tool)
			}
			continue
		}
		if c == nil {
			t.Errorf("%s: no class, want %s", line, tt.class)
			continue
		}
		if c.class != tt.class {
			t.Errorf("%s: class %s, want %s", line, c.class, tt.class)
		}
		if tt.tool != "" && c.tool != tt.tool {
			t.Errorf("%s: tool %q, want %q", line, c.tool, tt.tool)
		}
		if c.indirect != tt.indirect {
			t.Errorf("%s: indirect %v, want %v", line, c.indirect, tt.indirect)
		}
		if tt.class == install {
			if got := strings.Join(c.packages, ","); got != tt.pkgs {
				t.Errorf("%s: packages %q, want %q", line, got, tt.pkgs)
			}
			if c.manager == "" {
				t.Errorf("%s: no manager", line)
			}
		}
	}
}

// Packages come from the redacted argv, so a token in an install URL
// never reaches the span.
func TestClassifyPackagesRedacted(t *testing.T) {
	tok := "gh" + "p_" + strings.Repeat("a1B2", 9)
	c := classifyCommand(RedactArgs([]string{"pip", "install", "git+https://bot:" + tok + "@github.com/acme/lib.git"}))
	if c == nil || len(c.packages) != 1 || strings.Contains(c.packages[0], tok) || !strings.Contains(c.packages[0], "[REDACTED") {
		t.Fatalf("packages %+v", c)
	}
}
