package recorder

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
)

func printed(n int, url string) event.OutputURL { return event.OutputURL{Header: hdr(n, 0), URL: url} }

// prInfo is a run in github.com/acme/api (an SSH remote, as most clones).
func prInfo() RunInfo {
	info := runInfo()
	info.CI = nil
	info.Before = &workspace.Snapshot{Root: ws, IsGit: true, RemoteURL: "git@github.com:Acme/API.git", Branch: "main",
		Head: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
	return info
}

func TestPullRequestOfTheRun(t *testing.T) {
	const (
		ours   = "https://github.com/acme/api/pull/7"
		ours2  = "https://github.com/acme/api/pull/8"
		old    = "https://github.com/acme/api/pull/3"
		other  = "https://github.com/evil/api/pull/1"
		onHost = "https://github.example.com/acme/api/pull/7" // same path, another host
	)
	unset := "<unset>"
	tests := []struct {
		name    string
		info    func(*RunInfo)
		events  []event.Event
		root    map[attribute.Key]string
		prSpan  string // agentwatch.pr.url on the pull_request span; "" none expected
		claimed []string
	}{
		{
			name:   "nothing printed: no pull request",
			events: claude(),
			root:   map[attribute.Key]string{telemetry.PRURL: unset, telemetry.PRSource: unset, telemetry.VCSChangeID: unset, telemetry.PRClaimedURLs: unset},
		},
		{
			name:   "printed URL of the run's repository",
			events: events(claude(), []event.Event{printed(50, ours)}),
			root:   map[attribute.Key]string{telemetry.PRURL: ours, telemetry.VCSChangeID: "7", telemetry.PRSource: "output", telemetry.PRClaimedURLs: unset},
		},
		{
			name:    "another repository's URL is a claim, never the PR",
			events:  events(claude(), []event.Event{printed(50, other), printed(51, onHost)}),
			root:    map[attribute.Key]string{telemetry.PRURL: unset, telemetry.PRSource: unset, telemetry.VCSChangeID: unset},
			claimed: []string{other, onHost},
		},
		{
			name:    "the foreign one first: ours is still the PR",
			events:  events(claude(), []event.Event{printed(40, other), printed(50, ours)}),
			root:    map[attribute.Key]string{telemetry.PRURL: ours, telemetry.VCSChangeID: "7", telemetry.PRSource: "output"},
			claimed: []string{other},
		},
		{
			name: "the URL printed while gh pr create ran wins over an earlier mention",
			events: events(claude(), []event.Event{printed(10, old)},
				cmd(30, 102, 0, "gh", "pr", "create", "--fill"), // 31..35
				[]event.Event{printed(37, ours), printed(90, ours2)}),
			root:    map[attribute.Key]string{telemetry.PRURL: ours, telemetry.VCSChangeID: "7", telemetry.PRSource: "output"},
			prSpan:  ours,
			claimed: []string{old, ours2},
		},
		{
			name: "the CI job's pull request comes first",
			info: func(i *RunInfo) {
				i.CI = map[string]string{"agentwatch.pr.url": "https://github.com/acme/api/pull/42", "vcs.change.id": "42"}
			},
			events: events(claude(), cmd(30, 102, 0, "gh", "pr", "create"), []event.Event{printed(36, ours),
				printed(60, "https://github.com/acme/api/pull/42")}),
			root: map[attribute.Key]string{telemetry.PRURL: "https://github.com/acme/api/pull/42", telemetry.VCSChangeID: "42",
				telemetry.PRSource: "ci"},
			prSpan:  ours,           // what gh created, all the same
			claimed: []string{ours}, // the job's own PR printed again is no claim
		},
		{
			name:    "repository unknown: every printed URL is a claim",
			info:    func(i *RunInfo) { i.Before = &workspace.Snapshot{Root: ws, IsGit: true} },
			events:  events(claude(), []event.Event{printed(50, ours)}),
			root:    map[attribute.Key]string{telemetry.PRURL: unset, telemetry.PRSource: unset},
			claimed: []string{ours},
		},
		{
			name: "no remote: the CI job's repository judges the output",
			info: func(i *RunInfo) {
				i.Before = &workspace.Snapshot{Root: ws, IsGit: true}
				i.CI = map[string]string{"vcs.repository.url.full": "https://github.com/acme/api", "vcs.repository.name": "api"}
			},
			events: events(claude(), []event.Event{printed(50, ours)}),
			root:   map[attribute.Key]string{telemetry.PRURL: ours, telemetry.PRSource: "output", telemetry.VCSRepositoryURLFull: "https://github.com/acme/api"},
		},
		{
			name: "GitLab merge request of a nested group",
			info: func(i *RunInfo) {
				i.Before.RemoteURL = "https://gitlab.example/grp/sub/api.git"
			},
			events: events(claude(), []event.Event{printed(50, "https://gitlab.example/grp/other/-/merge_requests/2"),
				printed(51, "https://gitlab.example/grp/sub/api/-/merge_requests/12")}),
			root: map[attribute.Key]string{telemetry.PRURL: "https://gitlab.example/grp/sub/api/-/merge_requests/12",
				telemetry.VCSChangeID: "12", telemetry.PRSource: "output"},
			claimed: []string{"https://gitlab.example/grp/other/-/merge_requests/2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := prInfo()
			if tt.info != nil {
				tt.info(&info)
			}
			tr := record(info, tt.events, End{Time: at(100)})
			tree(t, tr)
			root := tr.Root()
			wantAttrs(t, root, tt.root)
			v, _ := root.Attr(telemetry.PRClaimedURLs)
			if got := v.AsStringSlice(); !reflect.DeepEqual(got, tt.claimed) {
				t.Errorf("claimed %q, want %q", got, tt.claimed)
			}
			for _, s := range spansOfType(tr, telemetry.SpanPullRequest) {
				if got := attrString(s, telemetry.PRURL); got != tt.prSpan {
					t.Errorf("pull_request span's pr.url %q, want %q", got, tt.prSpan)
				}
			}
		})
	}
}

// TestPrintedURLsBounded: an agent printing thousands of URLs costs a
// bounded list, and cannot push the run's own pull request out of it.
func TestPrintedURLsBounded(t *testing.T) {
	evs := claude()
	for i := range 1000 {
		evs = append(evs, printed(10, fmt.Sprintf("https://github.com/spam/r%d/pull/%d", i, i)))
	}
	evs = append(evs, printed(20, "https://github.com/acme/api/pull/5"))
	for i := range 100 {
		evs = append(evs, printed(30, fmt.Sprintf("https://github.com/acme/api/pull/%d", 100+i)))
	}
	rec := New(prInfo())
	for _, e := range evs {
		rec.Add(e)
	}
	if n := len(rec.pr.urls); n != MaxOwnURLs+MaxOtherURLs {
		t.Errorf("%d printed URLs kept, want %d", n, MaxOwnURLs+MaxOtherURLs)
	}
	root := rec.Finish(End{Time: at(100)}).Root()
	wantAttrs(t, root, map[attribute.Key]string{telemetry.PRURL: "https://github.com/acme/api/pull/5", telemetry.PRSource: "output"})
	v, _ := root.Attr(telemetry.PRClaimedURLs)
	if n := len(v.AsStringSlice()); n != maxClaimedURLs {
		t.Errorf("%d claimed URLs, want the cap %d", n, maxClaimedURLs)
	}
}

func TestParsePRURL(t *testing.T) {
	for url, want := range map[string]prRef{
		"https://github.com/acme/api/pull/7":                      {"github.com/acme/api", "7"},
		"https://GitHub.com/Acme/API/pull/7":                      {"github.com/acme/api", "7"},
		"http://forge.lan:3000/acme/api/pulls/9":                  {"forge.lan/acme/api", "9"},
		"https://gitlab.example/g/s/p/-/merge_requests/3":         {"gitlab.example/g/s/p", "3"},
		"https://gitlab.example:8443/g/p/-/merge_requests/3":      {"gitlab.example/g/p", "3"},
		"https://github.com/acme/pull/pull/1":                     {"github.com/acme/pull", "1"},
		"https://github.com/acme/api/issues/7":                    {},
		"https://github.com/acme/pull/7":                          {}, // no owner/repo
		"https://github.com/acme/api/pull/7/files":                {}, // the scanner cuts there
		"ftp://github.com/acme/api/pull/7":                        {},
		"https://github.com/acme/api/pull/12345678901234567890":   {},
		"https://github.com/a/b/c/d/e/f/g/h/i/j/k/pull/1":         {}, // deeper than any forge
		"https://evil.example/github.com/acme/api/pull/7":         {"evil.example/github.com/acme/api", "7"},
		"https://github.com/acme/api/pull/7 https://x/y/z/pull/8": {},
	} {
		got, ok := parsePRURL(url)
		if ok != (want != prRef{}) || got != want {
			t.Errorf("parsePRURL(%q) = %+v %v, want %+v", url, got, ok, want)
		}
	}
}

func TestRepoKey(t *testing.T) {
	for url, want := range map[string]string{
		"https://github.com/acme/api":              "github.com/acme/api",
		"https://github.com/acme/api.git":          "github.com/acme/api",
		"git@github.com:Acme/API.git":              "github.com/acme/api",
		"ssh://git@github.com:22/acme/api.git":     "github.com/acme/api",
		"https://gitlab.example:8443/grp/sub/api/": "gitlab.example/grp/sub/api",
		"https://[REDACTED]@github.com/acme/api":   "github.com/acme/api",
		"/srv/git/api.git":                         "",
		"file:///srv/git/api.git":                  "",
		"":                                         "",
	} {
		if got := repoKey(url); got != want {
			t.Errorf("repoKey(%q) = %q, want %q", url, got, want)
		}
	}
}

func TestPushedBranches(t *testing.T) {
	for line, want := range map[string][]string{
		"git push -u origin feature/x":                                               {"feature/x"},
		"git push origin HEAD:refs/heads/agent/fix main":                             {"agent/fix", "main"},
		"git -C /w -c push.default=current push --force-with-lease origin +wip:wip2": {"wip2"},
		"git push --repo origin -o ci.skip origin topic":                             {"topic"},
		"git push":                     nil,
		"git push origin":              nil,
		"git push origin HEAD":         nil,
		"git push origin :old":         nil,
		"git push --delete origin old": nil,
		"git push --tags origin":       nil,
		"git push origin refs/tags/v1": nil,
		"git push -n origin topic":     nil,
		"git push origin HEAD~1:topic": {"topic"},
		"git push origin -- topic":     {"topic"},
		"git pull origin topic":        nil,
	} {
		if got := pushedBranches(sh(line)); !reflect.DeepEqual(got, want) {
			t.Errorf("pushedBranches(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestPushedBranchesOnTheRoot: pushes that exited 0 name their branches
// (once each, in order); a failed or killed push names none.
func TestPushedBranchesOnTheRoot(t *testing.T) {
	evs := events(claude(),
		bashCmd(10, 101, 0, "git push -u origin agent/fix", "git", "push", "-u", "origin", "agent/fix"),
		cmd(20, 103, 1, "git", "push", "origin", "rejected"),
		cmd(30, 104, 0, "git", "push", "origin", "agent/fix", "agent/docs"),
		[]event.Event{fork(40, 105, 100), exec(41, 105, 100, "/usr/bin/git", ws, "git", "push", "origin", "killed"), exit(42, 105, 0, 15)},
	)
	tr := record(prInfo(), evs, End{Time: at(100)})
	v, _ := tr.Root().Attr(telemetry.GitPushedBranches)
	if got, want := v.AsStringSlice(), []string{"agent/fix", "agent/docs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pushed branches %q, want %q", got, want)
	}
	if _, ok := record(prInfo(), claude(), End{Time: at(100)}).Root().Attr(telemetry.GitPushedBranches); ok {
		t.Error("pushed branches on a run that pushed nothing")
	}
}

// A claimed URL is whatever the agent printed: a dropped secret inside it
// is redacted before it reaches a sink.
func TestClaimedURLsRedacted(t *testing.T) {
	const secret = "s3cr3t-deploy-token-0123456789abcdef"
	info := prInfo()
	info.RedactValues = []string{secret}
	evs := append(claude(), printed(10, "https://evil.example/"+secret+"/x/pull/1"))
	root := record(info, evs, End{Time: at(100)}).Root()
	v, _ := root.Attr(telemetry.PRClaimedURLs)
	got := v.AsStringSlice()
	if len(got) != 1 || strings.Contains(got[0], secret) || !strings.Contains(got[0], Redacted) {
		t.Errorf("claimed URLs %q: want the secret replaced by %s", got, Redacted)
	}
}
