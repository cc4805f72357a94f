package supervisor

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/agentwatch/agentwatch/telemetry"
	"github.com/agentwatch/agentwatch/termtext"
	"go.opentelemetry.io/otel/attribute"
)

// Bounds of the end-of-run summary: it is a glance, `agentwatch show` has
// the rest.
const (
	summaryMaxItems  = 8 // denied destinations, env names
	summaryMaxAlerts = 5 // alert messages
)

// writeSummary prints what the policy did in this run, read back from the
// finished trace (so the summary cannot disagree with the record): denied
// connections and lookups, dropped environment names, alerts. It prints
// nothing at all when there is nothing to say. Each line is escaped
// (termtext) as a whole: the names in it are the run's, and stderr is the
// operator's terminal.
func writeSummary(w io.Writer, tr *telemetry.Trace) {
	if s := summary(tr); s != "" {
		io.WriteString(w, s)
	}
}

func summary(tr *telemetry.Trace) string {
	root := tr.Root()
	if root == nil {
		return ""
	}
	var lines []string

	type dest struct {
		name string
		n    int64
	}
	var denied []dest
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Type() != telemetry.SpanNetworkCall || str(s, telemetry.PolicyDecision) != "deny" {
			continue
		}
		if q := str(s, telemetry.DNSQuestionName); q != "" {
			denied = append(denied, dest{q + " (lookup)", num(s, telemetry.DNSLookups)})
			continue
		}
		name := str(s, telemetry.ServerAddress)
		if peer := str(s, telemetry.NetworkPeerAddress); peer != "" && peer != name {
			name += " [" + peer + "]"
		}
		if port := num(s, telemetry.ServerPort); port != 0 {
			name += ":" + strconv.FormatInt(port, 10)
		}
		denied = append(denied, dest{name, num(s, telemetry.ConnectionsCount)})
	}
	if len(denied) > 0 {
		// Merge the same destination seen from several processes.
		byName := map[string]int64{}
		var order []string
		for _, d := range denied {
			if _, ok := byName[d.name]; !ok {
				order = append(order, d.name)
			}
			byName[d.name] += max(d.n, 1)
		}
		sort.SliceStable(order, func(i, j int) bool { return byName[order[i]] > byName[order[j]] })
		items := make([]string, len(order))
		for i, n := range order {
			items[i] = fmt.Sprintf("%s ×%d", n, byName[n])
		}
		lines = append(lines, "denied: "+capList(items))
	}

	if names := strs(root, telemetry.EnvDropped); len(names) > 0 {
		if filtered, _ := root.Attr(telemetry.EnvFiltered); filtered.AsBool() {
			lines = append(lines, "env dropped: "+capList(names))
		} else {
			lines = append(lines, "env not in env.allow (observe mode, passed on): "+capList(names))
		}
	}

	if n := num(root, telemetry.AlertsCount); n > 0 {
		var rules []string
		for _, rule := range strs(root, telemetry.AlertsRules) {
			rules = append(rules, fmt.Sprintf("%s (%d)", rule, num(root, attribute.Key(telemetry.AlertsRulePrefix+rule))))
		}
		lines = append(lines, "alerts: "+strings.Join(rules, ", "))
		shown := 0
		for _, sev := range []string{telemetry.SeverityHigh, telemetry.SeverityMedium, telemetry.SeverityLow} {
			for i := range tr.Spans {
				for _, ev := range tr.Spans[i].Events {
					if ev.Name != telemetry.EventAlert || evStr(ev.Attrs, telemetry.AlertSeverity) != sev {
						continue
					}
					if shown == summaryMaxAlerts {
						continue
					}
					shown++
					lines = append(lines, fmt.Sprintf("  %-6s %s: %s", sev, evStr(ev.Attrs, telemetry.AlertRule), evStr(ev.Attrs, telemetry.AlertMessage)))
				}
			}
		}
		if int64(shown) < n {
			lines = append(lines, fmt.Sprintf("  … %d more: agentwatch show %s", n-int64(shown), tr.RunID))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	head := "agentwatch: policy"
	if mode := str(root, telemetry.PolicyMode); mode != "" {
		head += " (" + mode
		if src := str(root, telemetry.PolicySource); src != "" {
			head += ", " + src
		}
		head += ")"
	}
	var b strings.Builder
	b.WriteString(termtext.Escape(head) + "\n")
	for _, l := range lines {
		b.WriteString("  " + termtext.Escape(l) + "\n")
	}
	return b.String()
}

func capList(items []string) string {
	if len(items) <= summaryMaxItems {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:summaryMaxItems], ", ") + fmt.Sprintf(" (+%d more)", len(items)-summaryMaxItems)
}

func str(s *telemetry.Span, k attribute.Key) string {
	v, _ := s.Attr(k)
	if v.Type() != attribute.STRING {
		return ""
	}
	return v.AsString()
}

func strs(s *telemetry.Span, k attribute.Key) []string {
	v, _ := s.Attr(k)
	if v.Type() != attribute.STRINGSLICE {
		return nil
	}
	return v.AsStringSlice()
}

func num(s *telemetry.Span, k attribute.Key) int64 {
	v, _ := s.Attr(k)
	if v.Type() != attribute.INT64 {
		return 0
	}
	return v.AsInt64()
}

func evStr(kvs []attribute.KeyValue, k attribute.Key) string {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value.AsString()
		}
	}
	return ""
}
