package recorder

// The run's pull request and pushed branches, on the root:
//
//   - agentwatch.pr.url, vcs.change.id (the number) and agentwatch.pr.source:
//     the CI job's pull request first (source ci: the variables of the job
//     agentwatch was started in, RunInfo.CI), else a pull/merge request URL
//     of the run's own repository that the run printed (source output:
//     event.OutputURL, the supervisor's scan of the output it relays).
//     Among printed URLs, one seen while a pull_request process (gh pr
//     create, glab mr create, hub pull-request) ran, or just after it, is
//     preferred; else the first. The pull_request span gets that URL too.
//   - The run chooses what it prints: a printed URL is taken only when its
//     host and owner/repository path are those of vcs.repository.url.full
//     (the git remote, else the CI's repository). Every other printed
//     one — another repository's, a second one of this repository, any
//     when the repository is unknown — is kept in
//     agentwatch.pr.claimed_urls (capped), never as the run's PR.
//   - agentwatch.git.pushed_branches: the branches that `git push` command
//     lines named (each refspec's destination; HEAD, tags, deletions and
//     bare `git push` name none), of pushes that exited 0. From argv
//     only: nothing asks the remote.

import (
	"regexp"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
)

// Bounds.
const (
	// MaxOwnURLs and MaxOtherURLs bound the distinct printed URLs kept of
	// the run's repository and of any other (the supervisor's scanner
	// stops at the same): apart, so that printing other URLs cannot push
	// the run's own out.
	MaxOwnURLs     = 8
	MaxOtherURLs   = 32
	maxClaimedURLs = 8  // agentwatch.pr.claimed_urls entries
	maxPushes      = 32 // git push processes remembered
	maxPushed      = 16 // agentwatch.git.pushed_branches entries
	// prSpanSlack is how long after a pull_request process ended its URL
	// may still appear: the agent shows a tool's output once it returns.
	prSpanSlack = 5 * time.Second
)

// PRURLRegexp matches a pull or merge request URL: GitHub's
// https://host/owner/repo/pull/N, Gitea's …/pulls/N and GitLab's
// https://host/group/…/project/-/merge_requests/N. The supervisor's output
// scanner finds candidates with it; a match directly followed by a letter,
// digit or underscore is not one.
var PRURLRegexp = regexp.MustCompile(`https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?(?::[0-9]{1,5})?/(?:[A-Za-z0-9_.~-]{1,100}/){2,8}?(?:pull|pulls|-/merge_requests)/[0-9]{1,12}`)

var prURLParts = regexp.MustCompile(`^https?://([^/]+)/(.+?)/(?:pull|pulls|-/merge_requests)/([0-9]+)$`)

// prRef is a pull request URL's repository key (repoKey's form) and number.
type prRef struct{ repo, number string }

// parsePRURL reads a URL PRURLRegexp matched whole.
func parsePRURL(url string) (prRef, bool) {
	if m := PRURLRegexp.FindStringIndex(url); m == nil || m[0] != 0 || m[1] != len(url) {
		return prRef{}, false
	}
	m := prURLParts.FindStringSubmatch(url)
	if m == nil {
		return prRef{}, false
	}
	return prRef{repo: hostKey(m[1]) + "/" + strings.ToLower(m[2]), number: m[3]}, true
}

func (p prRef) key() string { return p.repo + "#" + p.number }

// RunRepository is the run's repository URL, vcs.repository.url.full: the
// workspace's git remote (without .git), fromGit; else the CI job's
// (RunInfo.CI); "" when neither names one.
func RunRepository(info RunInfo) (url string, fromGit bool) {
	if b := info.Before; b != nil && b.IsGit && b.RemoteURL != "" {
		return strings.TrimSuffix(b.RemoteURL, ".git"), true // the convention's form: no .git
	}
	return info.CI[string(telemetry.VCSRepositoryURLFull)], false
}

// OwnPR reports whether url is a pull or merge request URL of the
// repository repoURL (RunRepository): same host, same owner/repository
// path, letter case aside. false when repoURL is unknown.
func OwnPR(repoURL, url string) bool {
	repo := repoKey(repoURL)
	ref, ok := parsePRURL(url)
	return ok && repo != "" && ref.repo == repo
}

// repoKey normalises a repository URL to host/path, lower-case, without
// scheme, user, port, .git or a trailing slash: https://github.com/acme/api,
// git@github.com:acme/api.git and ssh://git@github.com:22/acme/api all give
// github.com/acme/api. A local path gives "": it matches no URL.
func repoKey(url string) string {
	url = strings.TrimSpace(url)
	var hostPath string
	if i := strings.Index(url, "://"); i >= 0 {
		hostPath = url[i+3:]
		if j := strings.IndexByte(hostPath, '/'); j >= 0 {
			if at := strings.LastIndexByte(hostPath[:j], '@'); at >= 0 {
				hostPath = hostPath[at+1:]
			}
		}
	} else if at := strings.IndexByte(url, '@'); at >= 0 && strings.Contains(url[at:], ":") {
		hostPath = strings.Replace(url[at+1:], ":", "/", 1) // scp-like git@host:path
	} else {
		return ""
	}
	host, path, ok := strings.Cut(hostPath, "/")
	if !ok || host == "" {
		return ""
	}
	path = strings.Trim(strings.TrimSuffix(strings.TrimRight(path, "/"), ".git"), "/")
	if path == "" {
		return ""
	}
	return hostKey(host) + "/" + strings.ToLower(path)
}

// hostKey is a host without its port, lower-case.
func hostKey(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return strings.ToLower(host)
}

// prState is what the run showed of pull requests, created on first use.
type prState struct {
	urls        []seenURL // in order seen, distinct
	seen        map[string]bool
	own, others int
	pushes      []*procSpan // git push processes, in exec order
}

type seenURL struct {
	url  string
	time time.Time
	own  bool // of the run's repository (OwnPR)
}

func (r *Recorder) prs() *prState {
	if r.pr == nil {
		r.pr = &prState{seen: map[string]bool{}}
	}
	return r.pr
}

func (r *Recorder) outputURL(e event.OutputURL) {
	st := r.prs()
	if e.URL == "" || st.seen[e.URL] {
		return
	}
	repo, _ := RunRepository(r.info)
	u := seenURL{url: e.URL, time: e.Time, own: OwnPR(repo, e.URL)}
	if u.own && st.own >= MaxOwnURLs || !u.own && st.others >= MaxOtherURLs {
		return
	}
	if u.own {
		st.own++
	} else {
		st.others++
	}
	st.seen[e.URL] = true
	st.urls = append(st.urls, u)
}

// notePush remembers a git push process (its branches are read at
// Finish, once its exit is known).
func (r *Recorder) notePush(s *procSpan) {
	if len(s.args) == 0 || toolName(s.args[0]) != "git" {
		return
	}
	if st := r.prs(); len(pushedBranches(s.args)) > 0 && len(st.pushes) < maxPushes {
		st.pushes = append(st.pushes, s)
	}
}

// gitGlobalValueOptions take the next word as their value (git -C dir push).
var gitGlobalValueOptions = map[string]bool{
	"-C": true, "-c": true, "--git-dir": true, "--work-tree": true, "--namespace": true, "--config-env": true,
	"--super-prefix": true, "--list-cmds": true, "--attr-source": true,
}

// pushValueOptions are git push's options whose value is the next word.
var pushValueOptions = map[string]bool{
	"--repo": true, "-o": true, "--push-option": true, "--receive-pack": true, "--exec": true,
}

// pushedBranches are the branches a git push command line names: each
// refspec's destination (its source when it has none), refs/heads/
// stripped. Nothing for a dry run, a deletion, --all/--mirror/--tags
// (the names are not on the command line), HEAD, tags and other refs.
func pushedBranches(argv []string) []string {
	i := 1
	for i < len(argv) && strings.HasPrefix(argv[i], "-") {
		if gitGlobalValueOptions[argv[i]] {
			i++
		}
		i++
	}
	if i >= len(argv) || argv[i] != "push" {
		return nil
	}
	var pos []string
	for i++; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			pos = append(pos, argv[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		switch a {
		case "-n", "--dry-run", "-d", "--delete", "--all", "--branches", "--mirror", "--tags", "--prune":
			return nil
		}
		if pushValueOptions[a] {
			i++
		}
	}
	if len(pos) < 2 {
		return nil // `git push [remote]`: the branch is the configuration's, not the command line's
	}
	var out []string
	for _, spec := range pos[1:] {
		src, dst, colon := strings.Cut(strings.TrimPrefix(spec, "+"), ":")
		name := src
		if colon {
			if src == "" {
				continue // :branch deletes it
			}
			name = dst
		}
		name = strings.TrimPrefix(name, "refs/heads/")
		if name == "" || name == "HEAD" || strings.HasPrefix(name, "refs/") || strings.ContainsAny(name, "~^@{}*?[\\ ") {
			continue
		}
		out = append(out, name)
	}
	return out
}

// finishPR puts the run's pull request and pushed branches on the root
// (see the top of this file), once the process spans are made.
func (r *Recorder) finishPR(t *telemetry.Trace) {
	root := &t.Spans[0]
	if st := r.pr; st != nil {
		var branches []string
		have := map[string]bool{}
		for _, s := range st.pushes {
			if !s.exited || s.exitCode != 0 || s.signal != 0 {
				continue
			}
			for _, b := range pushedBranches(s.args) {
				if !have[b] && len(branches) < maxPushed {
					have[b] = true
					branches = append(branches, b)
				}
			}
		}
		if len(branches) > 0 {
			root.SetAttr(telemetry.GitPushedBranches.StringSlice(branches))
		}
	}

	// Printed URLs of the run's repository; the one a pull_request
	// process printed is preferred.
	var ours []int
	var urls []seenURL
	if r.pr != nil {
		urls = r.pr.urls
	}
	for i, u := range urls {
		if u.own {
			ours = append(ours, i)
		}
	}
	chosen := -1
	for i := range t.Spans {
		sp := &t.Spans[i]
		if sp.Type() != telemetry.SpanPullRequest {
			continue
		}
		for _, j := range ours {
			u := urls[j]
			if !u.time.Before(sp.Start) && !u.time.After(sp.End.Add(prSpanSlack)) {
				ref, _ := parsePRURL(u.url)
				sp.SetAttr(telemetry.PRURL.String(u.url))
				sp.SetAttr(telemetry.VCSChangeID.String(ref.number))
				if chosen < 0 {
					chosen = j
				}
				break
			}
		}
	}
	if chosen < 0 && len(ours) > 0 {
		chosen = ours[0]
	}

	prURL, number, source := r.info.CI[string(telemetry.PRURL)], r.info.CI[string(telemetry.VCSChangeID)], ""
	switch {
	case prURL != "" || number != "":
		source = telemetry.PRSourceCI
	case chosen >= 0:
		ref, _ := parsePRURL(urls[chosen].url)
		prURL, number, source = urls[chosen].url, ref.number, telemetry.PRSourceOutput
	}
	if source != "" {
		root.SetAttr(telemetry.PRSource.String(source))
		if prURL != "" {
			root.SetAttr(telemetry.PRURL.String(prURL))
		}
		if number != "" {
			root.SetAttr(telemetry.VCSChangeID.String(number))
		}
	}
	// What else the output showed: claims, not the run's PR.
	var claimed []string
	chosenKey := ""
	if ref, ok := parsePRURL(prURL); ok {
		chosenKey = ref.key()
	}
	for _, u := range urls {
		if ref, ok := parsePRURL(u.url); ok && chosenKey != "" && ref.key() == chosenKey {
			continue
		}
		if len(claimed) < maxClaimedURLs {
			// Any host and path the agent printed: a dropped secret in
			// it must not reach a sink.
			claimed = append(claimed, r.redactor().String(u.url))
		}
	}
	if len(claimed) > 0 {
		root.SetAttr(telemetry.PRClaimedURLs.StringSlice(claimed))
	}
}
