package redact

import (
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// Trace redacts every string of t in place: the resource, span names and
// status messages, string and string-list attributes of spans, events and
// links. It is the last step of the recorder, so whatever a span was
// built from (a path, an argv, a DNS name, a commit message, the agent's
// own spans) reaches no sink unredacted.
func (r *Redactor) Trace(t *telemetry.Trace) {
	if t == nil {
		return
	}
	r.attrs(t.Resource)
	for i := range t.Spans {
		sp := &t.Spans[i]
		sp.Name = r.String(sp.Name)
		sp.StatusMessage = r.String(sp.StatusMessage)
		r.attrs(sp.Attrs)
		for j := range sp.Events {
			sp.Events[j].Name = r.String(sp.Events[j].Name)
			r.attrs(sp.Events[j].Attrs)
		}
		for j := range sp.Links {
			r.attrs(sp.Links[j].Attrs)
		}
	}
}

func (r *Redactor) attrs(kvs []attribute.KeyValue) {
	for i, kv := range kvs {
		switch kv.Value.Type() {
		case attribute.STRING:
			if s := kv.Value.AsString(); s != "" {
				if red := r.String(s); red != s {
					kvs[i] = kv.Key.String(red)
				}
			}
		case attribute.STRINGSLICE:
			ss := kv.Value.AsStringSlice()
			changed := false
			for j, s := range ss {
				if red := r.String(s); red != s {
					ss[j], changed = red, true
				}
			}
			if changed {
				kvs[i] = kv.Key.StringSlice(ss)
			}
		}
	}
}
