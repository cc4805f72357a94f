// Package report renders a stored run for people (a tree with durations,
// exit codes and counts) and for programs (JSON). It reads traces; it never
// changes them, and it never reaches for data the trace does not hold (no
// store, no workspace, no clock except for local-time display).
package report

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/termtext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// CommandWidth is how many characters of a command line a tree line shows
// without a width (a pipe, a file: TreeOptions.Width 0), and an alert's
// span in the Alerts block; with a width the line is fitted as a whole.
const CommandWidth = 80

// failMark flags a failed span so it stands out when scanning a long tree.
const failMark = "✗"

// node is a span with its children, in start order.
type node struct {
	span     *telemetry.Span
	children []*node
	orphan   bool // its parent is not in the trace
}

// buildTree nests the spans by parent id. The root comes first; spans whose
// parent never arrived follow as their own top-level trees, marked, rather
// than vanishing from the view.
func buildTree(tr *telemetry.Trace) []*node {
	nodes := make(map[trace.SpanID]*node, len(tr.Spans))
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if _, dup := nodes[s.SpanID]; !dup {
			nodes[s.SpanID] = &node{span: s}
		}
	}
	var tops []*node
	for i := range tr.Spans {
		s := &tr.Spans[i]
		n := nodes[s.SpanID]
		if n.span != s {
			continue // a duplicate span id: show the first
		}
		if !s.ParentID.IsValid() {
			// A review is its own trace's root, linked to the run's:
			// shown under the span it reviews.
			if r := tr.Reviewed(s); r != nil && s.Type() == telemetry.SpanReview {
				if p := nodes[r.SpanID]; p != nil && p != n {
					p.children = append(p.children, n)
					continue
				}
			}
			tops = append(tops, n)
			continue
		}
		if p, ok := nodes[s.ParentID]; ok && p != n {
			p.children = append(p.children, n)
			continue
		}
		n.orphan = true
		tops = append(tops, n)
	}
	var sortAll func([]*node)
	sortAll = func(ns []*node) {
		slices.SortStableFunc(ns, byStart)
		for _, n := range ns {
			sortAll(n.children)
		}
	}
	sortAll(tops)
	// Roots before orphans, whatever their start times.
	slices.SortStableFunc(tops, func(a, b *node) int {
		return cmp.Compare(boolInt(a.orphan), boolInt(b.orphan))
	})
	return tops
}

func byStart(a, b *node) int {
	if c := a.span.Start.Compare(b.span.Start); c != 0 {
		return c
	}
	if c := cmp.Compare(a.span.Name, b.span.Name); c != 0 {
		return c
	}
	return cmp.Compare(a.span.SpanID.String(), b.span.SpanID.String())
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TreeOptions lay Tree out for a terminal. The zero value is the output
// for a pipe or a file: no width limit, no colour.
type TreeOptions struct {
	// Width is the terminal's width in cells: every line fits in it
	// (labels are shortened first, then the marks after them; the
	// indentation of a very deep tree is capped; header values wrap).
	// 0 is no limit.
	Width int
	// Color marks alerts, denies and failures with ANSI SGR colours and
	// dims durations. The codes are agentwatch's own, added after the run's
	// strings were escaped: a run cannot add or end one.
	Color bool
}

// Tree writes the run as an indented tree: a header with the run's facts,
// then one line per span — name, a short label, duration, a marked exit code
// when not zero, and counts — children in start order.
func Tree(w io.Writer, tr *telemetry.Trace) error {
	return TreeWith(w, tr, TreeOptions{})
}

// TreeWith is Tree laid out for a terminal of o.Width cells, in colour
// when o.Color is set.
func TreeWith(w io.Writer, tr *telemetry.Trace, o TreeOptions) error {
	ew := &errWriter{w: w, width: max(o.Width, 0), color: o.Color}
	writeHeader(ew, tr)
	writeEvidence(ew, tr)
	writeAudit(ew, tr)
	ws := ""
	if root := tr.Root(); root != nil {
		ws = str(root, telemetry.Workspace)
	}
	writeAlerts(ew, tr, ws)
	ew.printf("\n")
	for _, top := range buildTree(tr) {
		ew.treeLine(nil, "", spanParts(top, ws, ew.width))
		writeChildren(ew, top.children, nil, ws)
	}
	return ew.err
}

// collapseAfter is how many alike siblings show before "… N more": a
// shell that ran /bin/true 60 times is three lines and a count, not 60.
const collapseAfter = 3

// collapseKey says which siblings are alike: the same type and label, no
// children, nothing to flag (no alert, no failure). "" for a span that is
// always shown.
func collapseKey(n *node, ws string) string {
	s := n.span
	if len(n.children) > 0 || len(alertMarks(s)) > 0 || s.Status == codes.Error {
		return ""
	}
	if v, ok := s.Attr(telemetry.ProcessExitCode); ok && v.AsInt64() != 0 {
		return ""
	}
	return shownName(s) + "\x00" + label(s, ws)
}

// writeChildren writes children under a parent whose lines are indented
// by indent, one "│   " or "    " per level.
func writeChildren(w *errWriter, children []*node, indent []string, ws string) {
	type line struct {
		n    *node
		more []part // a collapsed run's summary instead of a node
	}
	var lines []line
	for i := 0; i < len(children); {
		key := collapseKey(children[i], ws)
		j := i + 1
		for key != "" && j < len(children) && collapseKey(children[j], ws) == key {
			j++
		}
		if run := j - i; key != "" && run > collapseAfter+1 {
			for _, c := range children[i : i+collapseAfter] {
				lines = append(lines, line{n: c})
			}
			first := children[i].span
			more := []part{{pre: fmt.Sprintf("… %d more ", run-collapseAfter), text: shownName(first), kind: partName}}
			if l, cut := labelFor(first, ws, w.width); l != "" {
				more = append(more, part{text: l, kind: partLabel, cut: cut})
			}
			lines = append(lines, line{more: escapeParts(more)})
		} else {
			for _, c := range children[i:j] {
				lines = append(lines, line{n: c})
			}
		}
		i = j
	}
	for i, l := range lines {
		branch, next := "├── ", "│   "
		if i == len(lines)-1 {
			branch, next = "└── ", "    "
		}
		if l.n == nil {
			w.treeLine(indent, branch, l.more)
			continue
		}
		w.treeLine(indent, branch, spanParts(l.n, ws, w.width))
		writeChildren(w, l.n.children, append(indent[:len(indent):len(indent)], next), ws)
	}
}

func writeHeader(w *errWriter, tr *telemetry.Trace) {
	root := tr.Root()
	var s telemetry.Span
	if root != nil {
		s = *root
	}
	row := func(label, value string, color ...string) {
		if value == "" {
			value = "-"
		}
		w.row(label, value, append(color, "")[0])
	}
	row("Run", tr.RunID)
	if root != nil {
		row("Trace", s.TraceID.String())
	}
	row("Command", s.CommandLine())
	row("Agent", str(&s, telemetry.GenAIAgentName))
	user := str(&s, telemetry.RunUser)
	if v, ok := s.Attr(telemetry.ProcessUserID); ok {
		user = strings.TrimSpace(user + " (uid " + v.Emit() + ")")
	}
	row("User", user)
	row("Workspace", str(&s, telemetry.Workspace))
	base := str(&s, telemetry.VCSRefHeadRevision)
	if len(base) > 12 {
		base = base[:12]
	}
	if b := str(&s, telemetry.VCSRefHeadName); b != "" {
		base = strings.TrimSpace(base + " (" + b + ")")
	}
	if v, ok := s.Attr(telemetry.WorktreeDirtyBefore); ok && v.AsBool() {
		base += ", dirty before"
	}
	row("Base", base)
	exit := exitText(&s)
	exitColor := ""
	if exit != "" && exit != "0" {
		exitColor = sgrRed
		if exit == "still running" {
			exitColor = sgrYellow
		}
	}
	row("Exit", exit, exitColor)
	dur := "-"
	if root != nil {
		dur = duration(s.End.Sub(s.Start))
		if !s.Start.IsZero() {
			dur += " (started " + s.Start.Local().Format("2006-01-02 15:04:05 MST") + ")"
		}
	}
	row("Duration", dur)
	row("Models", modelSummary(&s))
	alerts, alertColor := alertSummary(tr)
	row("Alerts", alerts, alertColor)
	row("Spans", strconv.Itoa(len(tr.Spans)))
	row("Sensors", strings.Join(strs(&s, telemetry.Sensors), ", "))
	gaps := strs(&s, telemetry.TelemetryGaps)
	if len(gaps) == 0 {
		row("Gaps", "none")
	} else {
		row("Gaps", strings.Join(gaps, "; "))
	}
	dropped := "-"
	if v, ok := s.Attr(telemetry.EventsDropped); ok {
		dropped = v.Emit()
	}
	row("Dropped", dropped)
}

func exitText(s *telemetry.Span) string {
	v, ok := s.Attr(telemetry.ProcessExitCode)
	if !ok {
		if b, ok := s.Attr(telemetry.ProcessStillRunning); ok && b.AsBool() {
			return "still running"
		}
		return ""
	}
	text := v.Emit()
	if sig := str(s, telemetry.ProcessSignal); sig != "" {
		text += " (" + sig + ")"
	}
	return text
}

// part is a piece of a tree line: what fitting it to a width may do to
// it depends on its kind. pre and post are agentwatch's own words around
// text; after escapeParts, all three are escaped.
type part struct {
	pre, text, post string
	kind            partKind
	color           string
	// cut shortens text to a number of cells (cutEnd when nil).
	cut func(string, int) string
}

type partKind int

const (
	partName     partKind = iota // the type or the span's name
	partLabel                    // the command, path or destination
	partDuration                 // the span's duration: kept
	partFailure                  // a failure message: shortened, never dropped
	partMark                     // exit code, policy decision, alert: kept whole while it can
	partExtra                    // counts, the missing parent: dropped when out of room
)

func (p part) whole() string { return p.pre + p.text + p.post }

// escapeParts escapes the run's text in each part as termtext.Escape
// would the joined line ("  " between parts): a backslash at the end of a
// part is followed by a space, except at the end of the line.
func escapeParts(parts []part) []part {
	for i := range parts {
		p := &parts[i]
		p.pre = termtext.Escape(p.pre)
		if i == len(parts)-1 && p.post == "" {
			p.text = termtext.Escape(p.text)
		} else {
			p.text = strings.TrimSuffix(termtext.Escape(p.text+" "), " ")
		}
		p.post = termtext.Escape(p.post)
	}
	return parts
}

// spanParts is one span's line without the tree glyphs, in parts,
// escaped: name, label, duration, marks. Paths inside the workspace ws are
// shown relative to it. With a width (not 0) a command line is not cut to
// CommandWidth first: the line is fitted as a whole (fitParts).
func spanParts(n *node, ws string, width int) []part {
	s := n.span
	parts := []part{{text: shownName(s), kind: partName}}
	if l, cut := labelFor(s, ws, width); l != "" {
		parts = append(parts, part{text: l, kind: partLabel, cut: cut})
	}
	parts = append(parts, part{text: duration(s.End.Sub(s.Start)), kind: partDuration, color: sgrDim})
	if v, ok := s.Attr(telemetry.ProcessExitCode); ok && v.AsInt64() != 0 {
		e := "exit " + v.Emit()
		if sig := str(s, telemetry.ProcessSignal); sig != "" {
			e += " " + sig
		}
		parts = append(parts, part{text: e, post: " " + failMark, kind: partMark, color: sgrRed})
	} else if s.Status == codes.Error && !isProcess(s) {
		msg := s.StatusMessage
		if msg == "" {
			msg = "error"
		}
		parts = append(parts, part{pre: "failed: ", text: msg, post: " " + failMark, kind: partFailure, color: sgrRed})
	}
	if b, ok := s.Attr(telemetry.ProcessStillRunning); ok && b.AsBool() {
		parts = append(parts, part{text: "still running", kind: partMark, color: sgrYellow})
	}
	for _, c := range counts(s) {
		parts = append(parts, part{text: c, kind: partExtra})
	}
	switch d := str(s, telemetry.PolicyDecision); d {
	case "deny":
		parts = append(parts, part{text: "policy " + d, kind: partMark, color: sgrRed})
	case "audit":
		parts = append(parts, part{text: "policy " + d, kind: partMark, color: sgrYellow})
	}
	parts = append(parts, alertMarkParts(s)...)
	if n.orphan {
		parts = append(parts, part{text: "(parent " + s.ParentID.String() + " not in trace)", kind: partExtra})
	}
	return escapeParts(parts)
}

// How much of a label, a failure message and a name a line keeps before
// the marks after them are touched, and how much of a label after that.
const (
	minLabel     = 20
	minFailure   = 12
	minName      = 16
	lastLabel    = 8
	lastFailure  = 1
	minRowValues = 20 // below this width a header value is cut, not wrapped
)

// fitParts shortens a line's parts towards avail cells: the label first
// (to minLabel), a failure message (to minFailure), a long span name (to
// minName); then it drops the counts from the end; then the label goes
// down to lastLabel and the failure message to "…". What still does not
// fit is cut at the end by cutSegs (into the marks, ending in "…").
func fitParts(parts []part, avail int) []part {
	over := func() int {
		n := 2 * (len(parts) - 1)
		for _, p := range parts {
			n += cells(p.whole())
		}
		return n - avail
	}
	shrink := func(kind partKind, floor int) {
		for i := range parts {
			p := &parts[i]
			o := over()
			if o <= 0 {
				return
			}
			if p.kind != kind {
				continue
			}
			c := cells(p.text)
			target := max(min(floor, c), c-o)
			if target < c {
				cut := p.cut
				if cut == nil {
					cut = cutEnd
				}
				p.text = cut(p.text, target)
			}
		}
	}
	shrink(partLabel, minLabel)
	shrink(partFailure, minFailure)
	shrink(partName, minName)
	for i := len(parts) - 1; i >= 0 && over() > 0; i-- {
		if parts[i].kind == partExtra {
			parts = slices.Delete(parts, i, i+1)
		}
	}
	shrink(partLabel, lastLabel)
	shrink(partFailure, lastFailure)
	return parts
}

// shownName is a span's first word in show: the type for the spans
// agentwatch names itself (the label then says about what, escaped and
// relative to the workspace); the name for the rest, whose name is the
// information (chat <model>, the agent's own spans).
func shownName(s *telemetry.Span) string {
	switch typ := s.Type(); typ {
	case telemetry.SpanAgentRun, telemetry.SpanFileWrite, telemetry.SpanFileRead, telemetry.SpanNetworkCall, telemetry.SpanReview:
		return typ
	default:
		if isProcess(s) {
			return typ
		}
	}
	return s.Name
}

// modelSummary is the run's model spend on one line: calls, tokens in and
// out, cost ("none" when the run made no model call).
func modelSummary(root *telemetry.Span) string {
	calls, ok := root.Attr(telemetry.LLMCalls)
	if !ok || calls.AsInt64() == 0 {
		return "none"
	}
	parts := []string{plural(calls.AsInt64(), "call", "calls")}
	in, inOK := root.Attr(telemetry.GenAIUsageInputTokens)
	out, outOK := root.Attr(telemetry.GenAIUsageOutputTokens)
	if inOK || outOK {
		parts = append(parts, count(in.AsInt64())+" tokens in, "+count(out.AsInt64())+" out")
	}
	if c, ok := root.Attr(telemetry.CostUSD); ok {
		parts = append(parts, usd(c.AsFloat64()))
	} else {
		parts = append(parts, "cost unknown")
	}
	return strings.Join(parts, ", ")
}

// alertSummary counts the run's alerts by severity ("none" without), and
// says how to colour that: red with a high one, yellow with others.
func alertSummary(tr *telemetry.Trace) (string, string) {
	by := map[string]int64{}
	var n int64
	for i := range tr.Spans {
		for _, e := range tr.Spans[i].Events {
			if e.Name == telemetry.EventAlert {
				for _, kv := range e.Attrs {
					if kv.Key == telemetry.AlertSeverity {
						by[kv.Value.AsString()]++
					}
				}
				n++
			}
		}
	}
	if n == 0 {
		return "none", ""
	}
	color := sgrYellow
	if by[telemetry.SeverityHigh] > 0 {
		color = sgrRed
	}
	var parts []string
	for _, sev := range []string{telemetry.SeverityHigh, telemetry.SeverityMedium, telemetry.SeverityLow} {
		if by[sev] > 0 {
			parts = append(parts, strconv.FormatInt(by[sev], 10)+" "+sev)
		}
	}
	if len(parts) == 0 {
		return strconv.FormatInt(n, 10), color
	}
	return strconv.FormatInt(n, 10) + " (" + strings.Join(parts, ", ") + ")", color
}

// plural is "1 call", "2 calls".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}

func isProcess(s *telemetry.Span) bool {
	if _, ok := s.Attr(telemetry.CommandLine); ok {
		return true
	}
	_, ok := s.Attr(telemetry.ProcessCommandLine)
	return ok
}

// label says what the span is about in a few words: the command for a
// process, the path and operations for a file, the destination for a
// connection.
func label(s *telemetry.Span, ws string) string {
	l, _ := labelLimit(s, ws, CommandWidth)
	return l
}

// labelFor is a tree line's label and how to shorten it further: for a
// width (not 0), a command line is cut to that many runes at most, not to
// CommandWidth; the line is fitted as a whole.
func labelFor(s *telemetry.Span, ws string, width int) (string, func(string, int) string) {
	if width > 0 {
		return labelLimit(s, ws, max(width, CommandWidth))
	}
	return labelLimit(s, ws, CommandWidth)
}

// labelLimit is label with command lines cut to limit runes, and how to
// shorten the label further: in the middle for a path or an address (the
// file name and the port stay), at the end for the rest.
func labelLimit(s *telemetry.Span, ws string, limit int) (string, func(string, int) string) {
	typ := str(s, telemetry.SpanType)
	if typ == "" {
		typ = s.Name
	}
	switch typ {
	case telemetry.SpanFileWrite, telemetry.SpanFileRead:
		p := relative(str(s, telemetry.FilePath), ws)
		if ops := strs(s, telemetry.FileOperations); len(ops) > 0 {
			p += " (" + strings.Join(ops, ", ") + ")"
		}
		if to := str(s, telemetry.FileRenamedTo); to != "" {
			p += " → " + relative(to, ws)
		}
		return p, cutMiddle
	case telemetry.SpanNetworkCall:
		addr := str(s, telemetry.ServerAddress)
		if addr == "" {
			addr = str(s, telemetry.NetworkPeerAddress)
		}
		if v, ok := s.Attr(telemetry.ServerPort); ok {
			if strings.Contains(addr, ":") { // IPv6 literal
				addr = "[" + addr + "]"
			}
			addr += ":" + v.Emit()
		}
		if t := str(s, telemetry.NetworkTransport); t != "" && t != "tcp" {
			addr += " " + t
		}
		return addr, cutMiddle
	case telemetry.SpanGitDiff:
		if !isProcess(s) { // agentwatch's evidence; the agent's own `git diff` is a command
			return gitDiffLabel(s), cutEnd
		}
	case telemetry.SpanAgent:
		// What the agent says of itself, never read as evidence.
		return "[agent's claim]", cutEnd
	}
	if cl := s.CommandLine(); cl != "" {
		return shorten(cl, limit), cutEnd
	}
	return "", cutEnd
}

// relative shows a path inside the workspace relative to it (the trace
// keeps the absolute file.path).
func relative(p, ws string) string {
	if ws != "" && ws != "/" && strings.HasPrefix(p, ws+"/") {
		return p[len(ws)+1:]
	}
	return p
}

// alertMarks names the alerts raised on a span, once per rule.
func alertMarks(s *telemetry.Span) []string {
	var out []string
	for _, p := range alertMarkParts(s) {
		out = append(out, p.text)
	}
	return out
}

// alertMarkParts are the alert marks of a tree line, once per rule, red
// when one of the rule's alerts is high, else yellow.
func alertMarkParts(s *telemetry.Span) []part {
	var out []part
	seen := map[string]int{}
	for _, e := range s.Events {
		if e.Name != telemetry.EventAlert {
			continue
		}
		rule, high := "", false
		for _, kv := range e.Attrs {
			switch kv.Key {
			case telemetry.AlertRule:
				rule = kv.Value.Emit()
			case telemetry.AlertSeverity:
				high = kv.Value.Emit() == telemetry.SeverityHigh
			}
		}
		if rule == "" {
			continue
		}
		i, ok := seen[rule]
		if !ok {
			i = len(out)
			seen[rule] = i
			out = append(out, part{text: "⚠ " + rule, kind: partMark, color: sgrYellow})
		}
		if high {
			out[i].color = sgrRed
		}
	}
	return out
}

// counts are the aggregates a span carries: files written, connections,
// writes outside the workspace, failures.
func counts(s *telemetry.Span) []string {
	var out []string
	n := func(key attribute.Key, one, many string) {
		if v, ok := s.Attr(key); ok && v.AsInt64() > 0 {
			unit := many
			if v.AsInt64() == 1 {
				unit = one
			}
			out = append(out, v.Emit()+" "+unit)
		}
	}
	typ := str(s, telemetry.SpanType)
	if typ == "" {
		typ = s.Name
	}
	if typ == telemetry.SpanNetworkCall {
		// One span per destination: a count of 1 says nothing.
		if v, ok := s.Attr(telemetry.ConnectionsCount); ok && v.AsInt64() > 1 {
			out = append(out, v.Emit()+" connections")
		}
		n(telemetry.ConnectionFailures, "failure", "failures")
		return out
	}
	n(telemetry.FilesWritten, "file written", "files written")
	n(telemetry.ConnectionsCount, "connection", "connections")
	n(telemetry.FilesOutsideWorkspace, "file outside workspace", "files outside workspace")
	n(telemetry.FileFailures, "failed attempt", "failed attempts")
	return out
}

// shorten cuts to width runes with an ellipsis. Whitespace stays as it
// is: the edge (errWriter, Runs) shows a newline or a CR as \n or \r, so a
// bash -c script cannot break the tree, and it is not disguised as a space.
func shorten(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// duration is compact and stable: 0ms, 840ms, 4.2s, 2m05s, 1h02m.
func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0ms"
	case d < time.Millisecond && d > 0:
		return "<1ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func str(s *telemetry.Span, key attribute.Key) string {
	v, ok := s.Attr(key)
	if !ok {
		return ""
	}
	if v.Type() == attribute.STRING {
		return v.AsString()
	}
	return v.Emit()
}

func strs(s *telemetry.Span, key attribute.Key) []string {
	v, ok := s.Attr(key)
	if !ok {
		return nil
	}
	if v.Type() == attribute.STRINGSLICE {
		return v.AsStringSlice()
	}
	return []string{v.Emit()}
}

// Runs writes the run list as a table: ID, START (local time), DURATION,
// EXIT ("interrupted" for a run recovered from its journal), AGENT, SPANS, EXPORTED (yes, no, or failed after a failed upload)
// and COMMAND, cut to fit.
func Runs(w io.Writer, runs []store.Run) error {
	if len(runs) == 0 {
		_, err := fmt.Fprintln(w, "No runs recorded yet. Start one with: agentwatch run -- COMMAND")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTART\tDURATION\tEXIT\tAGENT\tCOST\tTOKENS\tSPANS\tEXPORTED\tCOMMAND")
	for _, r := range runs {
		start, dur := "-", "-"
		if !r.Start.IsZero() {
			start = r.Start.Local().Format("2006-01-02 15:04:05")
			if !r.End.IsZero() {
				dur = duration(r.End.Sub(r.Start))
			}
		}
		exit := "-"
		if r.ExitCode >= 0 {
			exit = strconv.Itoa(r.ExitCode)
		}
		switch r.Status {
		case store.StatusInterrupted:
			// Saved from its journal after agentwatch died: `show` has
			// the reason (its recovery gap).
			exit = "interrupted"
		case store.StatusUnsaved:
			exit = "unsaved"
		}
		exported := "no"
		switch {
		case r.Exported:
			exported = "yes"
		case r.ExportError != "":
			exported = "failed"
		}
		cost, tokens := "-", "-"
		if r.HasCost {
			cost = usd(r.CostUSD)
		}
		if r.HasTokens {
			tokens = count(r.InputTokens) + "/" + count(r.OutputTokens)
		}
		// The agent, the command and even the id come from the run: a tab
		// in one would shift the columns, an ESC would reach the terminal.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			termtext.Escape(shortID(r.ID)), start, dur, exit, termtext.Escape(dash(r.Agent)), cost, tokens, r.Spans, exported,
			termtext.Escape(shorten(dash(r.Command), 60)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range runs {
		if r.Status == store.StatusUnsaved {
			fmt.Fprintf(w, "unsaved %s: %s (kept in the store's journal; the next agentwatch command that can write the store saves it)\n", termtext.Escape(r.ID), termtext.Escape(r.StatusReason))
		}
	}
	return nil
}

// usd shows a run's model spend: cents for dollars, four decimals below
// a dollar so a cheap run is not "$0.00".
func usd(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("$%.2f", v)
	}
	return fmt.Sprintf("$%.4f", v)
}

// count shortens a token count: 4208 → 4.2k, 1234567 → 1.2M.
func count(n int64) string {
	switch {
	case n >= 1e6:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	case n >= 1e3:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// shortID keeps ids in the supervisor's format (date-time-random, 22
// characters) whole; longer ids are cut to 22, still a usable prefix for
// `show`.
func shortID(id string) string {
	const max = 22
	if len(id) <= max {
		return id
	}
	return id[:max]
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error so rendering code stays linear.
// It is also the terminal's edge for `show`: every string argument is
// passed through termtext.Escape, once, so no path, argv, span name or
// message of the run drives the terminal or forges a line. The format
// strings are agentwatch's own and go out as they are.
//
// With a width, every line it writes fits in it: tree lines and header
// rows are laid out to fit (treeLine, row), other lines are cut at the
// end. With color, treeLine and row add SGR codes — after escaping.
type errWriter struct {
	w     io.Writer
	err   error
	width int // 0: no limit
	color bool
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = termtext.Escape(s)
		}
	}
	text := fmt.Sprintf(format, args...)
	if e.width > 0 {
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			lines[i] = cutEnd(l, e.width)
		}
		text = strings.Join(lines, "\n")
	}
	e.write(text)
}

func (e *errWriter) write(s string) {
	if e.err != nil {
		return
	}
	_, e.err = io.WriteString(e.w, s)
}

// treeLine writes a tree line: the indentation (one "│   " or "    " per
// level), the branch glyph and the escaped parts. With a width, the
// indentation keeps at most half of it (deeper levels show as "[+N]", N
// levels left out) and the parts are fitted to the rest.
func (e *errWriter) treeLine(indent []string, branch string, parts []part) {
	prefix := strings.Join(indent, "") + branch
	if e.width > 0 {
		prefix = capIndent(indent, branch, e.width/2)
		parts = fitParts(parts, e.width-cells(prefix))
	}
	segs := []seg{{text: prefix}}
	for i, p := range parts {
		if i > 0 {
			segs = append(segs, seg{text: "  "})
		}
		segs = append(segs, seg{text: p.whole(), color: p.color})
	}
	e.write(paint(cutSegs(segs, e.width), e.color) + "\n")
}

// capIndent is the indentation and branch of a tree line in at most max
// cells when it can be: the innermost levels are kept, the others are
// counted in a "[+N]".
func capIndent(indent []string, branch string, maxCells int) string {
	full := strings.Join(indent, "") + branch
	if cells(full) <= maxCells {
		return full
	}
	keep := len(indent)
	for keep > 0 && len("[+"+strconv.Itoa(len(indent)-keep)+"]")+4*keep+cells(branch) > maxCells {
		keep--
	}
	return "[+" + strconv.Itoa(len(indent)-keep) + "]" + strings.Join(indent[len(indent)-keep:], "") + branch
}

// rowIndent is the width of a header row's label column.
const rowIndent = 11

// maxRowLines bounds a wrapped header value: the rest is cut.
const maxRowLines = 4

// row writes a header row: the label, then the value, escaped, in color
// (an SGR code, or ""). With a width, a value that does not fit wraps
// under itself, up to maxRowLines lines.
func (e *errWriter) row(label, value, color string) {
	head := fmt.Sprintf("%-10s ", label)
	v := termtext.Escape(value)
	lines := []string{v}
	if e.width > 0 && cells(head)+cells(v) > e.width {
		if w := e.width - rowIndent; w >= minRowValues {
			lines = wrapCells(v, w, maxRowLines)
		} else {
			lines = []string{cutEnd(v, max(e.width-cells(head), 1))}
		}
	}
	for i, l := range lines {
		if i > 0 {
			head = strings.Repeat(" ", rowIndent)
		}
		segs := cutSegs([]seg{{text: head}, {text: l, color: color}}, e.width)
		e.write(paint(segs, e.color) + "\n")
	}
}

// runJSON is one run of `runs --json`: the columns of Runs, unabbreviated,
// with absent values null.
type runJSON struct {
	ID           string   `json:"id"`
	TraceID      string   `json:"trace_id,omitempty"`
	Start        *string  `json:"start"`
	End          *string  `json:"end"`
	Seconds      *float64 `json:"duration_seconds"`
	ExitCode     *int     `json:"exit_code"`
	Status       string   `json:"status"`
	StatusReason string   `json:"status_reason,omitempty"`
	Agent        string   `json:"agent,omitempty"`
	Command      string   `json:"command"`
	CostUSD      *float64 `json:"cost_usd"`
	InputTokens  *int64   `json:"input_tokens"`
	OutputTokens *int64   `json:"output_tokens"`
	Spans        int      `json:"spans"`
	Exported     bool     `json:"exported"`
	ExportError  string   `json:"export_error,omitempty"`
}

// RunsJSON writes runs as a JSON array, newest first like Runs, through
// WriteJSON: a hostile command line cannot reach a terminal raw through it
// either.
func RunsJSON(w io.Writer, runs []store.Run) error {
	out := make([]runJSON, 0, len(runs))
	for _, r := range runs {
		j := runJSON{ID: r.ID, TraceID: r.TraceID, Status: string(r.Status), StatusReason: r.StatusReason,
			Agent: r.Agent, Command: r.Command, Spans: r.Spans, Exported: r.Exported, ExportError: r.ExportError}
		if j.Status == "" {
			j.Status = string(store.StatusComplete)
		}
		if !r.Start.IsZero() {
			s := r.Start.UTC().Format(time.RFC3339Nano)
			j.Start = &s
			if !r.End.IsZero() {
				e := r.End.UTC().Format(time.RFC3339Nano)
				d := r.End.Sub(r.Start).Seconds()
				j.End, j.Seconds = &e, &d
			}
		}
		if r.ExitCode >= 0 {
			c := r.ExitCode
			j.ExitCode = &c
		}
		if r.HasCost {
			c := r.CostUSD
			j.CostUSD = &c
		}
		if r.HasTokens {
			in, outTok := r.InputTokens, r.OutputTokens
			j.InputTokens, j.OutputTokens = &in, &outTok
		}
		out = append(out, j)
	}
	return WriteJSON(w, out)
}
