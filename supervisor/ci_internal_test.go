package supervisor

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/agentwatch/agentwatch/recorder"
)

func TestCIAttributes(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want map[string]string
	}{
		{name: "not in CI", env: []string{"PATH=/usr/bin", "CI=true"}, want: nil},
		{
			name: "GitHub Actions push",
			env: []string{"GITHUB_ACTIONS=true", "GITHUB_RUN_ID=8812", "GITHUB_RUN_ATTEMPT=1", "GITHUB_SERVER_URL=https://github.com",
				"GITHUB_REPOSITORY=acme/api", "GITHUB_WORKFLOW=CI", "GITHUB_REF=refs/heads/main", "GITHUB_EVENT_NAME=push"},
			want: map[string]string{
				"agentwatch.ci.system":       "github_actions",
				"cicd.pipeline.run.id":       "8812",
				"cicd.pipeline.run.url.full": "https://github.com/acme/api/actions/runs/8812",
				"cicd.pipeline.name":         "CI",
				"vcs.repository.url.full":    "https://github.com/acme/api",
				"vcs.repository.name":        "api",
			},
		},
		{
			name: "GitHub Actions pull request, second attempt, Enterprise server",
			env: []string{"GITHUB_RUN_ID=8812", "GITHUB_RUN_ATTEMPT=3", "GITHUB_SERVER_URL=https://ghe.example.com/",
				"GITHUB_REPOSITORY=acme/api", "GITHUB_WORKFLOW=Agent", "GITHUB_REF=refs/pull/42/merge", "GITHUB_EVENT_NAME=pull_request"},
			want: map[string]string{
				"agentwatch.ci.system":       "github_actions",
				"cicd.pipeline.run.id":       "8812",
				"cicd.pipeline.run.url.full": "https://ghe.example.com/acme/api/actions/runs/8812/attempts/3",
				"cicd.pipeline.name":         "Agent",
				"vcs.repository.url.full":    "https://ghe.example.com/acme/api",
				"vcs.repository.name":        "api",
				"agentwatch.pr.url":          "https://ghe.example.com/acme/api/pull/42",
				"vcs.change.id":              "42",
			},
		},
		{
			name: "GitHub Actions without a repository: the id alone",
			env:  []string{"GITHUB_RUN_ID=7", "GITHUB_REF=refs/pull/42/merge"},
			want: map[string]string{"agentwatch.ci.system": "github_actions", "cicd.pipeline.run.id": "7"},
		},
		{
			name: "GitLab CI merge request pipeline",
			env: []string{"GITLAB_CI=true", "CI_PIPELINE_ID=551", "CI_PIPELINE_URL=https://gitlab.example/grp/sub/api/-/pipelines/551",
				"CI_JOB_URL=https://gitlab.example/grp/sub/api/-/jobs/9", "CI_PIPELINE_NAME=agent run",
				"CI_PROJECT_URL=https://gitlab.example/grp/sub/api", "CI_PROJECT_PATH=grp/sub/api", "CI_MERGE_REQUEST_IID=17"},
			want: map[string]string{
				"agentwatch.ci.system":       "gitlab_ci",
				"cicd.pipeline.run.id":       "551",
				"cicd.pipeline.run.url.full": "https://gitlab.example/grp/sub/api/-/pipelines/551",
				"cicd.pipeline.name":         "agent run",
				"vcs.repository.url.full":    "https://gitlab.example/grp/sub/api",
				"vcs.repository.name":        "api",
				"agentwatch.pr.url":          "https://gitlab.example/grp/sub/api/-/merge_requests/17",
				"vcs.change.id":              "17",
			},
		},
		{
			name: "GitLab CI: the job URL, the project from server and path",
			env: []string{"CI_PIPELINE_ID=551", "CI_JOB_URL=https://gitlab.example/grp/api/-/jobs/9",
				"CI_SERVER_URL=https://gitlab.example", "CI_PROJECT_PATH=grp/api"},
			want: map[string]string{
				"agentwatch.ci.system":       "gitlab_ci",
				"cicd.pipeline.run.id":       "551",
				"cicd.pipeline.run.url.full": "https://gitlab.example/grp/api/-/jobs/9",
				"vcs.repository.url.full":    "https://gitlab.example/grp/api",
				"vcs.repository.name":        "api",
			},
		},
		{
			name: "Buildkite pull request",
			env: []string{"BUILDKITE=true", "BUILDKITE_BUILD_ID=0190-ab", "BUILDKITE_BUILD_URL=https://buildkite.com/acme/api/builds/12",
				"BUILDKITE_PIPELINE_NAME=api", "BUILDKITE_REPO=git@github.com:acme/api.git", "BUILDKITE_PULL_REQUEST=99",
				"BUILDKITE_PULL_REQUEST_REPO=git://github.com/fork/api.git"},
			want: map[string]string{
				"agentwatch.ci.system":       "buildkite",
				"cicd.pipeline.run.id":       "0190-ab",
				"cicd.pipeline.run.url.full": "https://buildkite.com/acme/api/builds/12",
				"cicd.pipeline.name":         "api",
				"vcs.repository.url.full":    "https://github.com/acme/api",
				"vcs.repository.name":        "api",
				"agentwatch.pr.url":          "https://github.com/acme/api/pull/99",
				"vcs.change.id":              "99",
			},
		},
		{
			name: "Buildkite branch build",
			env:  []string{"BUILDKITE_BUILD_ID=0190-ab", "BUILDKITE_PULL_REQUEST=false", "BUILDKITE_REPO=https://git.example/acme/api.git"},
			want: map[string]string{
				"agentwatch.ci.system":    "buildkite",
				"cicd.pipeline.run.id":    "0190-ab",
				"vcs.repository.url.full": "https://git.example/acme/api",
				"vcs.repository.name":     "api",
			},
		},
		{
			name: "Buildkite pull request on a forge not known by name: the number only",
			env:  []string{"BUILDKITE_BUILD_ID=b", "BUILDKITE_PULL_REQUEST=5", "BUILDKITE_REPO=https://git.example/acme/api.git"},
			want: map[string]string{
				"agentwatch.ci.system":    "buildkite",
				"cicd.pipeline.run.id":    "b",
				"vcs.repository.url.full": "https://git.example/acme/api",
				"vcs.repository.name":     "api",
				"vcs.change.id":           "5",
			},
		},
		{
			name: "CircleCI pull request",
			env: []string{"CIRCLECI=true", "CIRCLE_WORKFLOW_ID=6f1c-2b", "CIRCLE_BUILD_URL=https://circleci.com/gh/acme/api/301",
				"CIRCLE_REPOSITORY_URL=git@github.com:acme/api.git", "CIRCLE_PULL_REQUEST=https://github.com/acme/api/pull/8"},
			want: map[string]string{
				"agentwatch.ci.system":       "circleci",
				"cicd.pipeline.run.id":       "6f1c-2b",
				"cicd.pipeline.run.url.full": "https://circleci.com/gh/acme/api/301",
				"vcs.repository.url.full":    "https://github.com/acme/api",
				"vcs.repository.name":        "api",
				"agentwatch.pr.url":          "https://github.com/acme/api/pull/8",
				"vcs.change.id":              "8",
			},
		},
		{
			name: "Jenkins multibranch pull request; a token in the clone URL is dropped",
			env: []string{"JENKINS_URL=https://ci.example/", "BUILD_ID=41", "BUILD_URL=https://ci.example/job/api/PR-3/41/",
				"JOB_NAME=api/PR-3", "GIT_URL=https://bot:s3cr3tt0ken@github.com/acme/api.git",
				"CHANGE_ID=3", "CHANGE_URL=https://github.com/acme/api/pull/3"},
			want: map[string]string{
				"agentwatch.ci.system":       "jenkins",
				"cicd.pipeline.run.id":       "41",
				"cicd.pipeline.run.url.full": "https://ci.example/job/api/PR-3/41/",
				"cicd.pipeline.name":         "api/PR-3",
				"vcs.repository.url.full":    "https://github.com/acme/api",
				"vcs.repository.name":        "api",
				"agentwatch.pr.url":          "https://github.com/acme/api/pull/3",
				"vcs.change.id":              "3",
			},
		},
		{
			// Google Cloud Build sets BUILD_ID too: not Jenkins.
			name: "BUILD_ID alone",
			env:  []string{"BUILD_ID=0a1b2c"},
			want: nil,
		},
		{
			name: "the first system wins",
			env:  []string{"CI_PIPELINE_ID=1", "GITHUB_RUN_ID=2", "GITHUB_REPOSITORY=acme/api"},
			want: map[string]string{
				"agentwatch.ci.system":       "github_actions",
				"cicd.pipeline.run.id":       "2",
				"cicd.pipeline.run.url.full": "https://github.com/acme/api/actions/runs/2",
				"vcs.repository.url.full":    "https://github.com/acme/api",
				"vcs.repository.name":        "api",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ciAttributes(tt.env)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ciAttributes\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestCIValuesArePublic: a CI value the policy dropped from the child's
// environment is recorded on purpose, so it is not redacted as a secret
// (a CircleCI workflow id looks random).
func TestCIValuesArePublic(t *testing.T) {
	info := recorder.RunInfo{CI: map[string]string{"cicd.pipeline.run.id": "6f1c2b9a4e7d3c1b0a9f8e7d"}, Attributes: map[string]string{"team": "platform"}}
	pub := publicMetadata(info, "/ws")
	for _, v := range slices.Collect(maps.Values(info.CI)) {
		if !slices.Contains(pub, v) {
			t.Errorf("%q not public", v)
		}
	}
	if !slices.Contains(pub, "platform") {
		t.Error("label value not public")
	}
}

func TestHTTPSRepoURL(t *testing.T) {
	for in, want := range map[string]string{
		"git@github.com:acme/api.git":            "https://github.com/acme/api",
		"ssh://git@github.com:2222/acme/api.git": "https://github.com/acme/api",
		"https://x:y@gitlab.example/g/s/p.git/":  "https://gitlab.example/g/s/p",
		"http://forge.lan/acme/api":              "http://forge.lan/acme/api",
		"git://github.com/fork/api.git":          "https://github.com/fork/api",
		"/srv/git/api.git":                       "",
		"":                                       "",
	} {
		if got := httpsRepoURL(in); got != want {
			t.Errorf("httpsRepoURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The CI job's organisation is the run's org label unless the policy or
// --label names one.
func TestWithCIOrg(t *testing.T) {
	gha := []string{"GITHUB_REPOSITORY=acme/api", "GITHUB_REPOSITORY_OWNER=acme"}
	for _, tt := range []struct {
		name          string
		labels, attrs map[string]string
		env           []string
		want          string
	}{
		{"github owner", nil, nil, gha, "acme"},
		{"github repository only", nil, nil, []string{"GITHUB_REPOSITORY=initech/web"}, "initech"},
		{"gitlab top-level group", map[string]string{"team": "x"}, nil, []string{"CI_PROJECT_NAMESPACE=globex/platform/tools"}, "globex"},
		{"buildkite", nil, nil, []string{"BUILDKITE_ORGANIZATION_SLUG=hooli"}, "hooli"},
		{"--label wins", map[string]string{"org": "mine"}, nil, gha, "mine"},
		{"the policy wins", nil, map[string]string{"org": "pol"}, gha, ""}, // the recorder puts the policy's on the root
		{"no CI", nil, nil, nil, ""},
	} {
		before := maps.Clone(tt.labels)
		got := withCIOrg(tt.labels, tt.attrs, tt.env)
		if got["org"] != tt.want {
			t.Errorf("%s: org %q, want %q", tt.name, got["org"], tt.want)
		}
		if !maps.Equal(tt.labels, before) {
			t.Errorf("%s: the caller's labels were changed: %v", tt.name, tt.labels)
		}
	}
}
