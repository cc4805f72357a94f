package report

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/agentwatch/agentwatch/telemetry"
)

// maxShownAlerts bounds the Alerts block of `show`; the rest are counted.
const maxShownAlerts = 50

// shownAlert is one agentwatch.alert event with the span it is on.
type shownAlert struct {
	severity, rule, message, where string
	time                           time.Time
}

// alertsOf lists every alert of the trace, most severe first, then in
// time order.
func alertsOf(tr *telemetry.Trace, ws string) []shownAlert {
	var out []shownAlert
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if fromAgent(s) {
			continue
		}
		for _, e := range s.Events {
			if e.Name != telemetry.EventAlert {
				continue
			}
			a := shownAlert{time: e.Time, where: s.Type()}
			if l := label(s, ws); l != "" && s.Type() != telemetry.SpanAgentRun {
				a.where += " " + l
			}
			for _, kv := range e.Attrs {
				switch kv.Key {
				case telemetry.AlertRule:
					a.rule = kv.Value.Emit()
				case telemetry.AlertSeverity:
					a.severity = kv.Value.Emit()
				case telemetry.AlertMessage:
					a.message = kv.Value.Emit()
				}
			}
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b shownAlert) int {
		if c := cmp.Compare(telemetry.SeverityRank(a.severity), telemetry.SeverityRank(b.severity)); c != 0 {
			return c
		}
		return a.time.Compare(b.time)
	})
	return out
}

// writeAlerts prints the Alerts block of `show`: every alert with its
// severity, rule, message and the span it is on.
func writeAlerts(w *errWriter, tr *telemetry.Trace, ws string) {
	alerts := alertsOf(tr, ws)
	if len(alerts) == 0 {
		return
	}
	w.printf("\nAlerts (%d)\n", len(alerts))
	for i, a := range alerts {
		if i == maxShownAlerts {
			w.printf("  … and %d more\n", len(alerts)-maxShownAlerts)
			break
		}
		sev := a.severity
		if sev == "" {
			sev = "-"
		}
		line := fmt.Sprintf("  %-6s %s", sev, a.rule)
		if a.message != "" {
			line += ": " + a.message
		}
		line += "  [" + a.where + "]"
		w.printf("%s\n", line) // escaped by printf
	}
}
