package redact

import (
	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// Trace redacts every string of t in place: the resource, span names and
// status messages, attribute keys, string and string-list attributes of
// spans, events and links. It is the last step of the recorder, so whatever a span was
// built from (a path, an argv, a DNS name, a commit message, the agent's
// own spans) reaches no sink unredacted.
func (r *Redactor) Trace(t *telemetry.Trace) {
	if t == nil {
		return
	}
	m := &memo{r: r, seen: map[string]string{}}
	m.attrs(t.Resource)
	for i := range t.Spans {
		sp := &t.Spans[i]
		sp.Name = m.string(sp.Name)
		sp.StatusMessage = m.string(sp.StatusMessage)
		m.attrs(sp.Attrs)
		for j := range sp.Events {
			sp.Events[j].Name = m.string(sp.Events[j].Name)
			m.attrs(sp.Events[j].Attrs)
		}
		for j := range sp.Links {
			m.attrs(sp.Links[j].Attrs)
		}
	}
}

// memo remembers the short strings of one trace: span types, kinds,
// operations and names repeat on every span.
type memo struct {
	r    *Redactor
	seen map[string]string
}

const (
	memoMaxLen     = 64
	memoMaxEntries = 1 << 14
)

func (m *memo) string(s string) string {
	if s == "" {
		return s
	}
	if len(s) > memoMaxLen {
		return m.r.String(s)
	}
	if v, ok := m.seen[s]; ok {
		return v
	}
	v := m.r.String(s)
	if len(m.seen) < memoMaxEntries {
		m.seen[s] = v
	}
	return v
}

// attrs redacts values and keys: the agent's own spans choose their
// attribute keys too.
func (m *memo) attrs(kvs []attribute.KeyValue) {
	for i, kv := range kvs {
		if k := attribute.Key(m.string(string(kv.Key))); k != kv.Key {
			kv.Key = k
			kvs[i] = kv
		}
		switch kv.Value.Type() {
		case attribute.STRING:
			if s := kv.Value.AsString(); s != "" {
				if red := m.string(s); red != s {
					kvs[i] = kv.Key.String(red)
				}
			}
		case attribute.STRINGSLICE:
			ss := kv.Value.AsStringSlice()
			changed := false
			for j, s := range ss {
				if red := m.string(s); red != s {
					ss[j], changed = red, true
				}
			}
			if changed {
				kvs[i] = kv.Key.StringSlice(ss)
			}
		}
	}
}
