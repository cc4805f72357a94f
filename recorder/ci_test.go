package recorder

import (
	"testing"

	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/workspace"
	"go.opentelemetry.io/otel/attribute"
)

// ciGitHubPR is what the supervisor's ciAttributes reads in a GitHub
// Actions pull_request job.
func ciGitHubPR() map[string]string {
	return map[string]string{
		"agentwatch.ci.system":       "github_actions",
		"cicd.pipeline.run.id":       "8812",
		"cicd.pipeline.run.url.full": "https://github.com/acme/api/actions/runs/8812",
		"cicd.pipeline.name":         "Agent",
		"vcs.repository.url.full":    "https://github.com/acme/api",
		"vcs.repository.name":        "api",
		"agentwatch.pr.url":          "https://github.com/acme/api/pull/42",
		"vcs.change.id":              "42",
	}
}

func resourceAttrs(t *testing.T, tr *telemetry.Trace) map[attribute.Key]string {
	t.Helper()
	m := map[attribute.Key]string{}
	for _, kv := range tr.Resource {
		if _, dup := m[kv.Key]; dup {
			t.Errorf("resource has %s twice", kv.Key)
		}
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

// TestCIOnTheRoot: the CI job's attributes are on the root as read; its
// repository stands in only when the workspace has no git remote.
func TestCIOnTheRoot(t *testing.T) {
	t.Run("git remote", func(t *testing.T) {
		info := runInfo() // remote https://github.com/acme/app.git
		info.CI = ciGitHubPR()
		root := record(info, agent(), End{Time: at(100)}).Root()
		wantAttrs(t, root, map[attribute.Key]string{
			telemetry.CISystem:             "github_actions",
			telemetry.CICDPipelineRunID:    "8812",
			telemetry.CICDRunURL:           "https://github.com/acme/api/actions/runs/8812",
			telemetry.CICDPipelineName:     "Agent",
			telemetry.VCSRepositoryURLFull: "https://github.com/acme/app", // the workspace's, not the job's
			telemetry.VCSRepositoryName:    "app",
			telemetry.PRURL:                "https://github.com/acme/api/pull/42",
			telemetry.VCSChangeID:          "42",
			telemetry.PRSource:             "ci",
		})
		for _, k := range []attribute.Key{telemetry.VCSRepositoryURLFull, telemetry.PRURL, telemetry.VCSChangeID} {
			n := 0
			for _, kv := range root.Attrs {
				if kv.Key == k {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s %d times on the root", k, n)
			}
		}
	})
	t.Run("no git remote", func(t *testing.T) {
		for name, before := range map[string]*workspace.Snapshot{
			"no remote":   {Root: ws, IsGit: true, Branch: "main", Head: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
			"not git":     {Root: ws},
			"no evidence": nil,
		} {
			info := runInfo()
			info.Before = before
			info.CI = ciGitHubPR()
			tr := record(info, agent(), End{Time: at(100)})
			want := map[attribute.Key]string{
				telemetry.VCSRepositoryURLFull: "https://github.com/acme/api",
				telemetry.VCSRepositoryName:    "api",
			}
			wantAttrs(t, tr.Root(), want)
			res := resourceAttrs(t, tr)
			for k, v := range want {
				if res[k] != v {
					t.Errorf("%s: resource %s = %q, want %q", name, k, res[k], v)
				}
			}
		}
	})
}
