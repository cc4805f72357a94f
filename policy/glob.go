package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// anchor says what a pattern is relative to.
type anchor uint8

const (
	anchorWorkspace anchor = iota // "src/**", "**/.env": the workspace root
	anchorRoot                    // "/etc/**": the file system root
	anchorHome                    // "~/.ssh/**": the child's home directory
)

// Glob is one compiled path pattern. Matching is by path segment, like
// .gitignore: "*" and "?" never cross a "/", "**" as a whole segment matches
// zero or more segments (so "dir/**" also matches dir itself: deleting or
// renaming the directory is a change to everything under it), and
// [class] / \-escapes follow path.Match.
type Glob struct {
	src    string
	anchor anchor
	segs   []string
	// forms says how each segment is compared: most are a literal or one
	// "*" with literals around it ("*.pem", "id_*"), compared without
	// path.Match (the recorder asks about every file a build writes, and
	// path.Match costs ten times a comparison).
	forms []segForm
}

// segForm is how one pattern segment matches a path segment.
type segForm struct {
	kind     uint8 // formLiteral, formStar or formMatch
	pre, suf string
}

const (
	formLiteral uint8 = iota // no metacharacter: ==
	formStar                 // pre*suf, one "*" and no other metacharacter
	formMatch                // anything else: path.Match
)

func compileSeg(s string) segForm {
	if !strings.ContainsAny(s, `*?[\`) {
		return segForm{kind: formLiteral}
	}
	if strings.Count(s, "*") == 1 && !strings.ContainsAny(s, `?[\`) {
		pre, suf, _ := strings.Cut(s, "*")
		return segForm{kind: formStar, pre: pre, suf: suf}
	}
	return segForm{kind: formMatch}
}

// CompileGlob checks and compiles a pattern.
func CompileGlob(pattern string) (Glob, error) {
	g := Glob{src: pattern}
	rest := pattern
	switch {
	case pattern == "":
		return g, errors.New("empty pattern")
	case strings.HasPrefix(pattern, "~/"):
		g.anchor, rest = anchorHome, pattern[2:]
	case strings.HasPrefix(pattern, "~"):
		return g, fmt.Errorf("pattern %q: only ~/ (the run's home) is supported, not ~user", pattern)
	case strings.HasPrefix(pattern, "/"):
		g.anchor, rest = anchorRoot, pattern[1:]
	}
	rest = strings.Trim(rest, "/")
	if rest == "" {
		return g, fmt.Errorf("pattern %q names no path", pattern)
	}
	for _, s := range strings.Split(rest, "/") {
		switch {
		case s == "" || s == "." || s == "..":
			return g, fmt.Errorf("pattern %q: empty, . or .. segment", pattern)
		case s != "**" && strings.Contains(s, "**"):
			return g, fmt.Errorf("pattern %q: ** must be a whole path segment", pattern)
		}
		if _, err := path.Match(s, ""); err != nil {
			return g, fmt.Errorf("pattern %q: %w", pattern, err)
		}
		g.segs = append(g.segs, s)
		g.forms = append(g.forms, compileSeg(s))
	}
	return g, nil
}

// MustGlob is CompileGlob for patterns that are constants.
func MustGlob(pattern string) Glob {
	g, err := CompileGlob(pattern)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the pattern as written.
func (g Glob) String() string { return g.src }

// Match reports whether the absolute path p matches. workspace anchors
// relative patterns; when it is empty they are matched from the file system
// root, so a leading "**/" still matches at any depth. home anchors "~/"
// patterns; when it is empty they match nothing.
func (g Glob) Match(p, workspace, home string) bool {
	return g.matchClean(p, baseName(p), path.Clean(p), cleanBase(workspace), cleanBase(home))
}

// cleanBase cleans an anchor directory; "" stays "" (no anchor).
func cleanBase(dir string) string {
	if dir == "" {
		return ""
	}
	return path.Clean(dir)
}

// baseName is p's final element when cleaning cannot change it (Clean
// changes no final element other than "", "." or ".."), else "".
func baseName(p string) string {
	name := p[strings.LastIndexByte(p, '/')+1:]
	if name == "." || name == ".." {
		return ""
	}
	return name
}

// matchAny returns the index of the first of globs that p matches, or -1:
// Match for a list, cleaning p and the anchors once.
func matchAny(globs []Glob, p, workspace, home string) int {
	if len(globs) == 0 || !strings.HasPrefix(p, "/") {
		return -1
	}
	q := query{p: p, name: baseName(p), workspace: workspace, home: home}
	for i, g := range globs {
		if q.matches(g) {
			return i
		}
	}
	return -1
}

// query is one path asked of several globs: its base name, and its clean
// form and the clean anchors, made on the first glob that needs them.
type query struct {
	p, name, workspace, home string
	clean, ws, h             string
	cleaned                  bool
}

func (q *query) matches(g Glob) bool {
	// The base-name reject first, without cleaning anything: the
	// recorder asks about every file a build writes, so most calls end
	// here.
	if n := len(g.segs) - 1; n >= 0 && q.name != "" && g.segs[n] != "**" && !segMatch(g.segs[n], g.forms[n], q.name) {
		return false
	}
	if !q.cleaned {
		q.clean, q.ws, q.h, q.cleaned = path.Clean(q.p), cleanBase(q.workspace), cleanBase(q.home), true
	}
	return g.matchClean(q.p, q.name, q.clean, q.ws, q.h)
}

// matchClean is Match with p's base name (baseName) and p cleaned given,
// and the anchors clean.
func (g Glob) matchClean(p, name, clean, workspace, home string) bool {
	if !strings.HasPrefix(p, "/") || len(g.segs) == 0 { // the zero Glob matches nothing
		return false
	}
	base := "/"
	switch g.anchor {
	case anchorHome:
		if home == "" {
			return false
		}
		base = home
	case anchorWorkspace:
		if workspace != "" {
			base = workspace
		}
	}
	n := len(g.segs) - 1
	last := g.segs[n]
	if name != "" && last != "**" && !segMatch(last, g.forms[n], name) {
		return false // the quick reject (see matchAny)
	}
	rel, ok := within(clean, base)
	if !ok {
		return false
	}
	if name == "" && last != "**" && !segMatch(last, g.forms[n], rel[strings.LastIndexByte(rel, '/')+1:]) {
		return false
	}
	return matchRel(g.segs, g.forms, rel)
}

// within returns p relative to base ("" for base itself).
func within(p, base string) (string, bool) {
	if base == "/" {
		return strings.TrimPrefix(p, "/"), true
	}
	if p == base {
		return "", true
	}
	if strings.HasPrefix(p, base) && p[len(base)] == '/' {
		return p[len(base)+1:], true
	}
	return "", false
}

// segMatch matches one segment s against pat, compiled as f.
func segMatch(pat string, f segForm, s string) bool {
	switch f.kind {
	case formLiteral:
		return pat == s
	case formStar:
		return len(s) >= len(f.pre)+len(f.suf) && strings.HasPrefix(s, f.pre) && strings.HasSuffix(s, f.suf)
	}
	ok, _ := path.Match(pat, s)
	return ok
}

// matchRel matches the segments of rel, a clean relative path ("" has
// none), without splitting it.
func matchRel(pat []string, lit []segForm, rel string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse runs of ** and try every split point.
			for len(pat) > 0 && pat[0] == "**" {
				pat, lit = pat[1:], lit[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for {
				if matchRel(pat, lit, rel) {
					return true
				}
				if rel == "" {
					return false
				}
				_, rel, _ = strings.Cut(rel, "/")
			}
		}
		if rel == "" {
			return false
		}
		seg, rest, _ := strings.Cut(rel, "/")
		if !segMatch(pat[0], lit[0], seg) {
			return false
		}
		pat, lit, rel = pat[1:], lit[1:], rest
	}
	return rel == ""
}

// globIndex narrows a glob list to the patterns a path's base name can
// match: those whose last segment is that literal name, and the rest
// (wildcards, "**"). The recorder asks three lists about every new path a
// build writes; most of their patterns end in a literal name.
type globIndex struct {
	of     *Glob // the list's first element and length: the index is
	n      int   // stale (and unused) once the list is replaced or grown
	byName map[string][]int
	rest   []int
}

func newGlobIndex(globs []Glob) *globIndex {
	if len(globs) == 0 {
		return nil
	}
	x := &globIndex{of: &globs[0], n: len(globs), byName: map[string][]int{}}
	for i, g := range globs {
		n := len(g.segs) - 1
		if n >= 0 && g.segs[n] != "**" && g.forms[n].kind == formLiteral {
			x.byName[g.segs[n]] = append(x.byName[g.segs[n]], i)
		} else {
			x.rest = append(x.rest, i)
		}
	}
	return x
}

// matchIndexed is matchAny through x when x indexes globs.
func matchIndexed(x *globIndex, globs []Glob, p, workspace, home string) int {
	name := ""
	if strings.HasPrefix(p, "/") {
		name = baseName(p)
	}
	if x == nil || name == "" || x.n != len(globs) || x.of != &globs[0] {
		return matchAny(globs, p, workspace, home)
	}
	named, rest := x.byName[name], x.rest
	q := query{p: p, name: name, workspace: workspace, home: home}
	// Both lists are in list order; merged, the first match is the list's.
	for len(named) > 0 || len(rest) > 0 {
		var i int
		if len(rest) == 0 || len(named) > 0 && named[0] < rest[0] {
			i, named = named[0], named[1:]
		} else {
			i, rest = rest[0], rest[1:]
		}
		if q.matches(globs[i]) {
			return i
		}
	}
	return -1
}
