package recorder

// Policy evidence: DNS lookups, enforcement decisions, the environment
// filter, protected paths, and the alerts they raise.
//
// Decisions a reader of the trace should know:
//   - A DNS lookup is a network_call span per (process, name), with
//     dns.question.name and server.address both the name looked up: the
//     resolver is always the run's own proxy, so its address says nothing.
//     Repeated lookups are counted (agentwatch.dns.lookups).
//   - agentwatch.policy.decision on a span is the strictest verdict seen on
//     it (deny > audit > allow) and agentwatch.policy.rule that verdict's
//     rule; every distinct decision is a policy_decision event (capped).
//   - Alerts are agentwatch.alert events on the span they concern (the
//     file, connection or lookup span; the root for the environment), once
//     per span, rule and kind of finding; the root counts them
//     (agentwatch.alerts.count) and breaks them down by rule.
//   - In observe mode the supervisor gives the child its whole environment;
//     agentwatch.env.dropped then lists what enforce mode would drop and
//     agentwatch.env.filtered is false.

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

const (
	maxDecisionEvents = 8     // policy_decision events per span
	maxDNSAnswers     = 16    // agentwatch.dns.answers per lookup span
	maxNamedAddrs     = 65536 // address → name entries learnt from DNS answers
	maxProtectedPaths = 256   // agentwatch.files.protected entries
)

// Check names the recorder knows (netwatch and ebpf define the same
// strings; the recorder does not import the sensors).
const (
	checkAddress     = "address"
	checkDNSRedirect = "dns-redirect"
	checkSNI         = "sni"
	checkHost        = "host"
	checkDNS         = "dns"
)

// policyState is the recorder's policy evidence.
type policyState struct {
	alerts     []alert
	alertSeen  map[string]bool
	env        *event.EnvFiltered
	protected  []string
	protSeen   map[string]bool
	absentProt map[string]bool // protected paths that did not exist at start
	nameOf     map[netip.Addr]string
	lastNet    map[netKey]*netSpan // latest span per destination, for decisions without a pid
	dns        map[dnsKey]*dnsSpan
	dnsOrder   []*dnsSpan
	denied     int
}

type alert struct {
	rule, severity, message string
	time                    time.Time
	span                    trace.SpanID
}

// decision is what an enforcer said about one span's traffic.
type decision struct {
	verdict event.Verdict
	rule    string
	check   string
	events  []telemetry.SpanEvent
	seen    map[string]bool
	denied  int
}

// strictness orders verdicts for the span attribute.
func strictness(v event.Verdict) int {
	switch v {
	case event.Deny:
		return 3
	case event.Audit:
		return 2
	case event.Allow:
		return 1
	}
	return 0
}

func (d *decision) add(r *Recorder, t time.Time, v event.Verdict, rule, check, name string) {
	if strictness(v) > strictness(d.verdict) || d.verdict == 0 {
		d.verdict, d.rule, d.check = v, rule, check
	}
	if v == event.Deny {
		d.denied++
	}
	key := check + "\x00" + v.String() + "\x00" + rule + "\x00" + name
	if d.seen == nil {
		d.seen = make(map[string]bool)
	}
	if d.seen[key] || len(d.events) >= maxDecisionEvents {
		return
	}
	d.seen[key] = true
	attrs := []attribute.KeyValue{
		telemetry.PolicyRule.String(rule),
		telemetry.PolicyDecision.String(v.String()),
		telemetry.PolicyVersion.String(r.pol.Version),
		telemetry.PolicyCheck.String(check),
	}
	if name != "" {
		attrs = append(attrs, telemetry.ServerAddress.String(name))
	}
	d.events = append(d.events, telemetry.SpanEvent{Name: telemetry.EventPolicyDecision, Time: t, Attrs: attrs})
}

func (d *decision) attrs() []attribute.KeyValue {
	if d.verdict == 0 {
		return nil
	}
	return []attribute.KeyValue{
		telemetry.PolicyDecision.String(d.verdict.String()),
		telemetry.PolicyRule.String(d.rule),
	}
}

type dnsKey struct {
	owner *procSpan
	name  string
}

// dnsSpan is every lookup of one name by one process.
type dnsSpan struct {
	id         trace.SpanID
	seq        uint64
	parent     trace.SpanID
	name       string
	transport  event.Transport
	start, end time.Time
	qtypes     []string
	rcode      string
	answers    []string
	forwarded  bool
	lookups    int
	dec        decision
}

func (r *Recorder) ps() *policyState {
	if r.pstate == nil {
		r.pstate = &policyState{
			alertSeen:  make(map[string]bool),
			protSeen:   make(map[string]bool),
			absentProt: make(map[string]bool),
			nameOf:     make(map[netip.Addr]string),
			lastNet:    make(map[netKey]*netSpan),
			dns:        make(map[dnsKey]*dnsSpan),
		}
	}
	return r.pstate
}

// raise records an alert once per span, rule and kind.
func (r *Recorder) raise(span trace.SpanID, t time.Time, rule, severity, kind, message string) {
	ps := r.ps()
	key := span.String() + "\x00" + rule + "\x00" + kind
	if ps.alertSeen[key] {
		return
	}
	ps.alertSeen[key] = true
	ps.alerts = append(ps.alerts, alert{rule: rule, severity: severity, message: message, time: t, span: span})
}

func (r *Recorder) observe() bool { return r.pol.Mode != policy.Enforce }

func (r *Recorder) dnsQuery(e event.DNSQuery) {
	ps := r.ps()
	name := strings.TrimSuffix(strings.ToLower(e.Name), ".")
	owner := r.activeSpan(e.PID)
	key := dnsKey{owner, name}
	ds := ps.dns[key]
	refused := e.Verdict == event.Deny || e.Verdict == event.Audit
	if ds == nil && (!refused && !r.dnsBudget(owner) || refused && !r.alertingBudget()) {
		r.aggregateDNS(owner, name, e) // past the budget; a refusal keeps its span
		for _, a := range e.Answers {
			if a = a.Unmap(); len(ps.nameOf) < maxNamedAddrs {
				ps.nameOf[a] = name
			}
		}
		return
	}
	if ds == nil {
		owner.nDNSSpans++
		r.nDNSSpans++
		if refused {
			r.alertingSpans++
		}
		id, seq := r.nextSpanID()
		ds = &dnsSpan{id: id, seq: seq, parent: owner.id, name: name, transport: e.Transport, start: e.Time, end: e.Time}
		ps.dns[key] = ds
		ps.dnsOrder = append(ps.dnsOrder, ds)
	}
	ds.start, ds.end = minTime(ds.start, e.Time), maxTime(ds.end, e.Time)
	ds.lookups++
	if e.QType != "" && !slices.Contains(ds.qtypes, e.QType) && len(ds.qtypes) < 8 {
		ds.qtypes = append(ds.qtypes, e.QType)
	}
	if e.RCode != "" {
		ds.rcode = e.RCode
	}
	ds.forwarded = ds.forwarded || e.Forwarded
	for _, a := range e.Answers {
		a = a.Unmap()
		if s := a.String(); !slices.Contains(ds.answers, s) && len(ds.answers) < maxDNSAnswers {
			ds.answers = append(ds.answers, s)
		}
		if _, ok := ps.nameOf[a]; ok || len(ps.nameOf) < maxNamedAddrs {
			ps.nameOf[a] = name
		}
	}
	if e.Verdict == 0 {
		return
	}
	ds.dec.add(r, e.Time, e.Verdict, e.Rule, checkDNS, name)
	if e.Verdict == event.Deny {
		ps.denied++
	}
	if e.Verdict == event.Allow || !r.pol.Alerts.UnknownDomain {
		return
	}
	if _, ok := r.pol.AllowsHost(name, 0); ok {
		return // refused for another reason (a record type): a decision, not an unknown domain
	}
	what := fmt.Sprintf("lookup of %s", name)
	if e.QType != "" {
		what += " (" + e.QType + ")"
	}
	msg := what + " is not in network.allow: refused"
	if e.RCode != "" {
		msg += " with " + e.RCode
	}
	if !e.Forwarded {
		msg += ", never sent upstream"
	}
	if e.Verdict == event.Audit {
		msg = what + " is not in network.allow (observe mode: resolved)"
	}
	r.raise(ds.id, e.Time, telemetry.AlertUnknownDomain, telemetry.SeverityMedium, e.Verdict.String(), msg)
}

func (r *Recorder) netDecision(e event.NetDecision) {
	if !e.Addr.IsValid() {
		// The splice proxy could not learn the destination; the decision
		// still belongs on the trace, under the process (or the root).
		ns := r.netSpanFor(e.PID, netKey{transport: e.Transport}, e.Time)
		r.decide(ns, e)
		return
	}
	addr := netip.AddrPortFrom(e.Addr.Addr().Unmap(), e.Addr.Port())
	key := netKey{transport: e.Transport, addr: addr}
	var ns *netSpan
	if e.PID == 0 || r.procs[e.PID] == nil {
		ns = r.ps().lastNet[key] // the splice proxy may not know the pid
	}
	if ns == nil {
		if owner := r.activeSpan(e.PID); owner.nets[key] == nil {
			switch {
			case aggregatedDecision(e) && !r.netBudget(owner):
				r.aggregateDecision(owner, key, e)
				return
			case !aggregatedDecision(e) && !r.alertingBudget():
				r.aggregateRefusal(owner, key, e)
				return
			case !aggregatedDecision(e):
				r.alertingSpans++
			}
		}
		ns = r.netSpanFor(e.PID, key, e.Time)
	}
	r.decide(ns, e)
}

// netSpanFor returns the owner's span for key, creating one: a connect
// refused in the hook may never reach the sensor's success path.
func (r *Recorder) netSpanFor(pid uint32, key netKey, t time.Time) *netSpan {
	owner := r.activeSpan(pid)
	ns := owner.nets[key]
	if ns == nil {
		owner.nNetSpans++
		r.nNetSpans++
		id, seq := r.nextSpanID()
		ns = &netSpan{id: id, seq: seq, key: key, start: t, end: t}
		if owner.nets == nil {
			owner.nets = make(map[netKey]*netSpan)
		}
		owner.nets[key] = ns
		owner.netOrder = append(owner.netOrder, ns)
		r.ps().lastNet[key] = ns
	}
	return ns
}

func (r *Recorder) decide(ns *netSpan, e event.NetDecision) {
	ns.start, ns.end = minTime(ns.start, e.Time), maxTime(ns.end, e.Time)
	name := strings.TrimSuffix(strings.ToLower(e.Name), ".")
	if name != "" && (e.Check == checkSNI || e.Check == checkHost || ns.name == "") {
		ns.name = name // the name the client asked for beats a resolved guess
	}
	if e.Check == checkAddress || e.Check == checkDNSRedirect {
		ns.decided++ // one per connect/sendmsg: counts attempts the sensor never saw succeed
	}
	ns.dec.add(r, e.Time, e.Verdict, e.Rule, e.Check, name)
	if e.Verdict == event.Deny {
		r.ps().denied++
	}
	dest := ns.key.addr.String()
	if name != "" {
		dest = name + " (" + dest + ")"
	}
	outcome := "refused"
	if e.Verdict == event.Audit {
		outcome = "observe mode: allowed"
	}
	switch e.Check {
	case checkAddress:
		if e.Verdict == event.Allow {
			return
		}
		r.raise(ns.id, e.Time, telemetry.AlertPolicyBypass, telemetry.SeverityHigh, e.Check+e.Verdict.String(),
			fmt.Sprintf("%s to %s: no allowed name resolved to this address (IP literal, --resolve, or DNS outside the run's proxy), rule %s: %s",
				e.Op, dest, e.Rule, outcome))
	case checkSNI, checkHost:
		if e.Verdict == event.Allow {
			return
		}
		what := "TLS server name"
		if e.Check == checkHost {
			what = "HTTP Host"
		}
		shown := name
		if shown == "" {
			shown = "none"
		}
		r.raise(ns.id, e.Time, telemetry.AlertPolicyBypass, telemetry.SeverityHigh, e.Check+e.Verdict.String(),
			fmt.Sprintf("%s %s on a connection to %s does not match network.allow (%s): %s", what, shown, ns.key.addr, e.Rule, outcome))
	case checkDNSRedirect:
		resolvers := r.info.Resolvers
		if len(resolvers) == 0 || slices.Contains(resolvers, ns.key.addr.Addr()) {
			return // the configured resolver: every lookup goes there
		}
		r.raise(ns.id, e.Time, telemetry.AlertPolicyBypass, telemetry.SeverityMedium, e.Check,
			fmt.Sprintf("DNS sent to %s instead of the system resolver; answered by the run's proxy", ns.key.addr))
	}
}

func (r *Recorder) envFiltered(e event.EnvFiltered) {
	c := event.EnvFiltered{
		Header:  e.Header,
		Kept:    slices.Clone(e.Kept),
		Dropped: slices.Clone(e.Dropped),
		Set:     slices.Clone(e.Set),
	}
	r.ps().env = &c
	if !r.observe() {
		return
	}
	var exposed []string
	for _, name := range c.Dropped {
		if isSecretName(name, true) {
			exposed = append(exposed, name)
		}
	}
	if len(exposed) > 0 {
		r.raise(r.root.id, e.Time, telemetry.AlertEnvSecret, telemetry.SeverityMedium, "",
			fmt.Sprintf("observe mode passed %s to the child; env.allow would drop them", strings.Join(exposed, ", ")))
	}
}

func (r *Recorder) protectedPath(e event.ProtectedPath) {
	ps := r.ps()
	p := cleanPath(e.Path)
	if !e.Existed {
		ps.absentProt[p] = true
	}
	if ps.protSeen[p] || len(ps.protected) >= maxProtectedPaths {
		return
	}
	ps.protSeen[p] = true
	ps.protected = append(ps.protected, p)
}

// fileAlerts raises workflow_edit and secret_access for one file operation
// on a span with an id.
func (r *Recorder) fileAlerts(fs *fileSpan, e event.File) {
	if fs.protected && r.pol.Alerts.WorkflowEdit && e.Op != event.FileRead {
		rel := r.shown(fs.path)
		switch {
		case e.Errno != 0:
			r.raise(fs.id, e.Time, telemetry.AlertWorkflowEdit, telemetry.SeverityMedium, "attempt",
				fmt.Sprintf("%s of protected path %s refused (%s)", e.Op, rel, errnoName(e.Errno)))
		case e.Op == event.FileCreate || e.Op == event.FileMkdir || r.ps().absentProt[fs.path]:
			r.raise(fs.id, e.Time, telemetry.AlertWorkflowEdit, telemetry.SeverityHigh, "created",
				fmt.Sprintf("protected path %s created during the run (absent at start)", rel))
		default:
			if e.NewPath != "" {
				rel += " → " + r.shown(cleanPath(e.NewPath)) // a rename, link or symlink: either end may be the protected one
			}
			r.raise(fs.id, e.Time, telemetry.AlertWorkflowEdit, telemetry.SeverityHigh, "changed",
				fmt.Sprintf("protected path %s changed (%s)", rel, e.Op))
		}
	}
	if fs.secret {
		verb := "write"
		switch e.Op {
		case event.FileRead:
			verb = "read"
		case event.FileSymlink, event.FileLink, event.FileRename:
			verb = e.Op.String() // a new name for (or pointing at) the secret
		}
		msg := fmt.Sprintf("%s of secret file %s", verb, r.shown(fs.path))
		if e.NewPath != "" {
			msg += " → " + r.shown(cleanPath(e.NewPath))
		}
		if e.Errno != 0 {
			msg += " (refused: " + errnoName(e.Errno) + ")"
		}
		r.raise(fs.id, e.Time, telemetry.AlertSecretAccess, telemetry.SeverityHigh, verb, msg)
	}
}

// shown is a path as a reader wants it: workspace-relative inside it.
func (r *Recorder) shown(p string) string {
	if r.ws != "" && hasPathPrefix(p, r.ws) && p != r.ws {
		return strings.TrimPrefix(p, r.ws+"/")
	}
	return p
}

// dnsTelemetry builds a lookup span.
func (r *Recorder) dnsTelemetry(ds *dnsSpan) telemetry.Span {
	sp := r.span(ds.id, ds.parent, "dns lookup", telemetry.SpanNetworkCall, telemetry.OITool,
		trace.SpanKindClient, ds.start, ds.end)
	sp.Attrs = append(sp.Attrs, telemetry.OIToolName.String(telemetry.SpanNetworkCall))
	transport := ds.transport
	if transport == 0 {
		transport = event.UDP
	}
	a := []attribute.KeyValue{
		telemetry.DNSQuestionName.String(ds.name),
		telemetry.ServerAddress.String(ds.name),
		telemetry.ServerPort.Int(53),
		telemetry.NetworkTransport.String(transport.String()),
		telemetry.DNSQuestionType.StringSlice(ds.qtypes),
		telemetry.DNSAnswers.StringSlice(ds.answers),
		telemetry.DNSForwarded.Bool(ds.forwarded),
		telemetry.DNSLookups.Int(ds.lookups),
	}
	if ds.rcode != "" {
		a = append(a, telemetry.DNSResponseCode.String(ds.rcode))
	}
	a = append(a, ds.dec.attrs()...)
	sp.Attrs = append(sp.Attrs, a...)
	sp.Events = append(sp.Events, ds.dec.events...)
	return sp
}

// finishPolicy adds the policy evidence to the finished trace: alerts on
// their spans, the root's policy, environment and alert attributes.
func (r *Recorder) finishPolicy(t *telemetry.Trace, end End) {
	ps := r.ps()
	// fswatch-only file spans got their ids in Finish.
	for _, fs := range r.root.fileOrder {
		if fs.source == event.SourceFSWatch.String() && (fs.protected || fs.secret) {
			op := event.FileWrite
			if fs.seen&(1<<event.FileCreate) != 0 {
				op = event.FileCreate
			}
			r.fileAlerts(fs, event.File{Header: event.Header{Time: fs.start}, Op: op, Path: fs.path})
		}
	}
	byID := make(map[trace.SpanID]int, len(t.Spans))
	for i := range t.Spans {
		byID[t.Spans[i].SpanID] = i
	}
	counts := map[string]int{}
	for _, al := range ps.alerts {
		i, ok := byID[al.span]
		if !ok {
			i = 0 // the root
		}
		t.Spans[i].Events = append(t.Spans[i].Events, telemetry.SpanEvent{
			Name: telemetry.EventAlert,
			Time: al.time,
			Attrs: []attribute.KeyValue{
				telemetry.AlertRule.String(al.rule),
				telemetry.AlertSeverity.String(al.severity),
				telemetry.AlertMessage.String(al.message),
			},
		})
		counts[al.rule]++
	}
	root := &t.Spans[0]
	root.SetAttr(telemetry.PolicySource.String(r.pol.Source))
	root.SetAttr(telemetry.AlertsCount.Int(len(ps.alerts)))
	rules := rulesByCount(counts)
	root.SetAttr(telemetry.AlertsRules.StringSlice(rules))
	for _, rule := range rules {
		root.SetAttr(attribute.Int(telemetry.AlertsRulePrefix+rule, counts[rule]))
	}
	if ps.denied > 0 {
		root.SetAttr(telemetry.NetworkDenied.Int(ps.denied)) // policy_block: failure.go
	}
	if env := ps.env; env != nil {
		root.SetAttr(telemetry.EnvKept.StringSlice(nonNil(env.Kept)))
		root.SetAttr(telemetry.EnvDropped.StringSlice(nonNil(env.Dropped)))
		root.SetAttr(telemetry.EnvSet.StringSlice(nonNil(env.Set)))
		root.SetAttr(telemetry.EnvFiltered.Bool(!r.observe()))
	}
	if len(ps.protected) > 0 {
		root.SetAttr(telemetry.FilesProtected.StringSlice(ps.protected))
	}
}

// ruleCounts is "rule (n)", most first, ties by name.
// rulesByCount lists the rules that fired, most alerts first.
func rulesByCount(counts map[string]int) []string {
	rules := make([]string, 0, len(counts))
	for k := range counts {
		rules = append(rules, k)
	}
	sort.Slice(rules, func(i, j int) bool {
		if counts[rules[i]] != counts[rules[j]] {
			return counts[rules[i]] > counts[rules[j]]
		}
		return rules[i] < rules[j]
	})
	return rules
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
