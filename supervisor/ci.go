package supervisor

// The CI job a run belongs to, from the CI system's variables in the
// environment agentwatch itself was started with (Run's callerEnv — the
// operator's side: the job's environment), never from the child's: the
// agent runs after these are read, with an environment the policy
// filtered, and cannot change agentwatch's. What the recorder puts on the
// root from them (recorder.RunInfo.CI) is therefore the job's word, not
// the agent's.

import (
	"maps"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// ciAttributes recognises the CI system of env and reads its run, its
// pipeline, its pull request and its repository: cicd.pipeline.run.id,
// cicd.pipeline.run.url.full, cicd.pipeline.name, agentwatch.ci.system,
// agentwatch.pr.url and vcs.change.id (a pull request build), and
// vcs.repository.url.full / vcs.repository.name (used when the workspace
// has no git remote). nil outside CI. The first system recognised wins:
// GitHub Actions, GitLab CI, Buildkite, CircleCI, Jenkins.
func ciAttributes(env []string) map[string]string {
	get := func(k string) string { return strings.TrimSpace(lookupEnv(env, k)) }
	m := map[string]string{}
	set := func(k attribute.Key, v string) {
		if v != "" {
			m[string(k)] = v
		}
	}
	repo := func(u string) {
		if u = httpsRepoURL(u); u != "" {
			set(telemetry.VCSRepositoryURLFull, u)
			set(telemetry.VCSRepositoryName, lastSegment(u))
		}
	}
	switch {
	case get("GITHUB_RUN_ID") != "":
		set(telemetry.CISystem, telemetry.CISystemGitHubActions)
		id := get("GITHUB_RUN_ID")
		set(telemetry.CICDPipelineRunID, id)
		set(telemetry.CICDPipelineName, get("GITHUB_WORKFLOW"))
		server := strings.TrimRight(get("GITHUB_SERVER_URL"), "/")
		if server == "" {
			server = "https://github.com"
		}
		if r := get("GITHUB_REPOSITORY"); r != "" {
			base := server + "/" + r
			run := base + "/actions/runs/" + id
			if n, err := strconv.Atoi(get("GITHUB_RUN_ATTEMPT")); err == nil && n > 1 {
				run += "/attempts/" + strconv.Itoa(n)
			}
			set(telemetry.CICDRunURL, run)
			repo(base)
			// refs/pull/N/merge (and /head): a pull_request build.
			// pull_request_target builds run on the base branch; their
			// number is only in the event payload, not read here.
			if pull := githubPullRef.FindStringSubmatch(get("GITHUB_REF")); pull != nil {
				set(telemetry.PRURL, base+"/pull/"+pull[1])
				set(telemetry.VCSChangeID, pull[1])
			}
		}
	case get("CI_PIPELINE_ID") != "":
		set(telemetry.CISystem, telemetry.CISystemGitLabCI)
		set(telemetry.CICDPipelineRunID, get("CI_PIPELINE_ID"))
		set(telemetry.CICDRunURL, cmpOr(get("CI_PIPELINE_URL"), get("CI_JOB_URL")))
		set(telemetry.CICDPipelineName, get("CI_PIPELINE_NAME"))
		project := strings.TrimRight(get("CI_PROJECT_URL"), "/")
		if project == "" && get("CI_SERVER_URL") != "" && get("CI_PROJECT_PATH") != "" {
			project = strings.TrimRight(get("CI_SERVER_URL"), "/") + "/" + get("CI_PROJECT_PATH")
		}
		repo(project)
		if iid := get("CI_MERGE_REQUEST_IID"); iid != "" && project != "" {
			set(telemetry.PRURL, project+"/-/merge_requests/"+iid)
			set(telemetry.VCSChangeID, iid)
		}
	case get("BUILDKITE_BUILD_ID") != "":
		set(telemetry.CISystem, telemetry.CISystemBuildkite)
		set(telemetry.CICDPipelineRunID, get("BUILDKITE_BUILD_ID"))
		set(telemetry.CICDRunURL, get("BUILDKITE_BUILD_URL"))
		set(telemetry.CICDPipelineName, get("BUILDKITE_PIPELINE_NAME"))
		base := httpsRepoURL(get("BUILDKITE_REPO"))
		repo(base)
		if n := get("BUILDKITE_PULL_REQUEST"); isNumber(n) {
			// "false" outside pull request builds. The pull request
			// lives on the build's repository (BUILDKITE_PULL_REQUEST_REPO
			// is a fork's); the URL's form depends on the forge, and an
			// unknown one gets the number only.
			set(telemetry.PRURL, forgePRURL(base, n))
			set(telemetry.VCSChangeID, n)
		}
	case get("CIRCLE_WORKFLOW_ID") != "":
		set(telemetry.CISystem, telemetry.CISystemCircleCI)
		set(telemetry.CICDPipelineRunID, get("CIRCLE_WORKFLOW_ID"))
		set(telemetry.CICDRunURL, get("CIRCLE_BUILD_URL"))
		repo(get("CIRCLE_REPOSITORY_URL"))
		if pr := get("CIRCLE_PULL_REQUEST"); strings.HasPrefix(pr, "https://") || strings.HasPrefix(pr, "http://") {
			set(telemetry.PRURL, pr)
			if n := lastSegment(pr); isNumber(n) {
				set(telemetry.VCSChangeID, n)
			}
		}
	case get("BUILD_ID") != "" && (get("JENKINS_URL") != "" || get("BUILD_URL") != ""):
		// BUILD_ID alone is not Jenkins (Cloud Build sets it too).
		set(telemetry.CISystem, telemetry.CISystemJenkins)
		set(telemetry.CICDPipelineRunID, get("BUILD_ID"))
		set(telemetry.CICDRunURL, get("BUILD_URL"))
		set(telemetry.CICDPipelineName, get("JOB_NAME"))
		repo(get("GIT_URL"))
		// Multibranch pipelines of a pull request (CHANGE_*).
		if pr := get("CHANGE_URL"); strings.HasPrefix(pr, "https://") || strings.HasPrefix(pr, "http://") {
			set(telemetry.PRURL, pr)
		}
		if n := get("CHANGE_ID"); n != "" && m[string(telemetry.PRURL)] != "" {
			set(telemetry.VCSChangeID, n)
		}
	}
	if len(m) == 0 {
		return nil
	}
	for k, v := range m {
		m[k] = stripURLCredentials(v)
	}
	return m
}

var githubPullRef = regexp.MustCompile(`^refs/pull/([0-9]+)/(?:merge|head)$`)

func isNumber(s string) bool {
	if s == "" || len(s) > 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func lastSegment(u string) string {
	u = strings.TrimRight(u, "/")
	return u[strings.LastIndexByte(u, '/')+1:]
}

// httpsRepoURL is a repository's web URL from a clone URL:
// git@github.com:acme/api.git, ssh://git@github.com/acme/api.git and
// https://user:token@github.com/acme/api.git all give
// https://github.com/acme/api. "" for what is not a remote (a local path).
func httpsRepoURL(remote string) string {
	remote = strings.TrimSpace(remote)
	scheme, host, path := "https", "", ""
	if u, err := url.Parse(remote); err == nil && u.Scheme != "" && u.Host != "" {
		host, path = u.Hostname(), u.Path
		if u.Scheme == "http" {
			scheme = "http" // a forge served over plain http stays so
		}
	} else if at := strings.IndexByte(remote, '@'); at >= 0 && strings.Contains(remote[at:], ":") && !strings.Contains(remote, "://") {
		host, path, _ = strings.Cut(remote[at+1:], ":") // scp-like git@host:path
	}
	path = strings.Trim(strings.TrimSuffix(strings.TrimRight(path, "/"), ".git"), "/")
	if host == "" || path == "" {
		return ""
	}
	return scheme + "://" + host + "/" + path
}

// forgePRURL is pull request n's URL on the forge of repository URL repo,
// "" when the forge is not known by its name.
func forgePRURL(repo, n string) string {
	u, err := url.Parse(repo)
	if err != nil || repo == "" {
		return ""
	}
	switch h := strings.ToLower(u.Hostname()); {
	case strings.Contains(h, "github"):
		return repo + "/pull/" + n
	case strings.Contains(h, "gitlab"):
		return repo + "/-/merge_requests/" + n
	case strings.Contains(h, "bitbucket"):
		return repo + "/pull-requests/" + n
	}
	return ""
}

// stripURLCredentials drops a user part from an http(s) URL value: a
// token pasted into a CI variable's URL must not reach the trace.
func stripURLCredentials(v string) string {
	if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
		return v
	}
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	u.User = nil
	return u.String()
}

// ciOrg is the organisation the CI job's repository belongs to
// (GITHUB_REPOSITORY_OWNER, GitLab's top-level group of
// CI_PROJECT_NAMESPACE, Buildkite's BUILDKITE_ORGANIZATION_SLUG): the
// run's "org" label when neither the policy's attributes nor --label
// name one. It is the operator's side of the job, like ciAttributes.
func ciOrg(env []string) string {
	get := func(k string) string { return strings.TrimSpace(lookupEnv(env, k)) }
	switch {
	case get("GITHUB_REPOSITORY_OWNER") != "":
		return get("GITHUB_REPOSITORY_OWNER")
	case get("GITHUB_REPOSITORY") != "":
		owner, _, _ := strings.Cut(get("GITHUB_REPOSITORY"), "/")
		return owner
	case get("CI_PROJECT_NAMESPACE") != "":
		top, _, _ := strings.Cut(get("CI_PROJECT_NAMESPACE"), "/")
		return top
	case get("BUILDKITE_ORGANIZATION_SLUG") != "":
		return get("BUILDKITE_ORGANIZATION_SLUG")
	}
	return ""
}

// withCIOrg is labels with the CI job's organisation as "org" when
// neither labels nor the policy's attributes set one.
func withCIOrg(labels, policyAttrs map[string]string, env []string) map[string]string {
	if labels["org"] != "" || policyAttrs["org"] != "" {
		return labels
	}
	org := ciOrg(env)
	if org == "" || len(org) > 200 {
		return labels
	}
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out["org"] = org
	return out
}
