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
	// lit marks the segments without a metacharacter, compared with ==:
	// the recorder asks about every file a build writes, and path.Match
	// costs ten times a comparison.
	lit []bool
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
		g.lit = append(g.lit, !strings.ContainsAny(s, `*?[\`))
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
	// The same base-name reject as below, before any cleaning: Clean never
	// changes a final element other than "", "." or "..", and the recorder
	// asks about every file a build writes, so most calls end here.
	n := len(g.segs) - 1
	if last := g.segs[n]; last != "**" {
		if name := p[strings.LastIndexByte(p, '/')+1:]; name != "" && name != "." && name != ".." {
			if !segMatch(last, g.lit[n], name) {
				return false
			}
		}
	}
	rel, ok := within(path.Clean(p), path.Clean(base))
	if !ok {
		return false
	}
	// Quick reject on the base name, where almost every path fails
	// (the recorder asks about every file a build writes).
	if last := g.segs[n]; last != "**" {
		if !segMatch(last, g.lit[n], rel[strings.LastIndexByte(rel, '/')+1:]) {
			return false
		}
	}
	return matchRel(g.segs, g.lit, rel)
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

// segMatch matches one segment; lit says pat has no metacharacter.
func segMatch(pat string, lit bool, s string) bool {
	if lit {
		return pat == s
	}
	ok, _ := path.Match(pat, s)
	return ok
}

// matchRel matches the segments of rel, a clean relative path ("" has
// none), without splitting it.
func matchRel(pat []string, lit []bool, rel string) bool {
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
