package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"

	"github.com/agentwatch/agentwatch/telemetry"
)

// The trace file is decoded here by hand, not with the export package, so
// the test checks the file format a collector or jq would read, not a
// round trip through our own code.

// span is one span of the trace file, attributes flattened to Go values
// (string, int64, bool, float64, []any).
type span struct {
	TraceID, SpanID, ParentID string // lower-case hex
	Name                      string
	Attrs                     map[string]any
}

// Type is the span's agentwatch.span.type (its name is for people).
func (s *span) Type() string { return s.str(telemetry.SpanType) }

func (s *span) str(k attribute.Key) string {
	v, _ := s.Attrs[string(k)].(string)
	return v
}

func (s *span) int(k attribute.Key) (int64, bool) {
	v, ok := s.Attrs[string(k)].(int64)
	return v, ok
}

func (s *span) String() string {
	return fmt.Sprintf("%s[%s parent=%s %v]", s.Name, s.SpanID, s.ParentID, s.Attrs)
}

type traceTree struct {
	Spans []*span
	ByID  map[string]*span
}

// otlpFile is the subset of ExportTraceServiceRequest's JSON form read here.
type otlpFile struct {
	ResourceSpans []struct {
		ScopeSpans []struct {
			Spans []struct {
				TraceID      string     `json:"traceId"`
				SpanID       string     `json:"spanId"`
				ParentSpanID string     `json:"parentSpanId"`
				Name         string     `json:"name"`
				Attributes   []otlpAttr `json:"attributes"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type otlpAttr struct {
	Key   string    `json:"key"`
	Value otlpValue `json:"value"`
}

type otlpValue struct {
	StringValue *string         `json:"stringValue"`
	IntValue    json.RawMessage `json:"intValue"` // a string in OTLP/JSON, a number from lax writers
	BoolValue   *bool           `json:"boolValue"`
	DoubleValue *float64        `json:"doubleValue"`
	ArrayValue  *struct {
		Values []otlpValue `json:"values"`
	} `json:"arrayValue"`
}

func (v otlpValue) value() any {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		n, _ := strconv.ParseInt(strings.Trim(string(v.IntValue), `"`), 10, 64)
		return n
	case v.BoolValue != nil:
		return *v.BoolValue
	case v.DoubleValue != nil:
		return *v.DoubleValue
	case v.ArrayValue != nil:
		out := make([]any, 0, len(v.ArrayValue.Values))
		for _, e := range v.ArrayValue.Values {
			out = append(out, e.value())
		}
		return out
	}
	return nil
}

// normID returns an id as lower-case hex. OTLP/JSON specifies hex, but a
// writer using protojson's defaults emits base64; accept both so a
// mismatch shows up as a clear assertion, not as a missing tree.
func normID(s string) string {
	if s == "" {
		return ""
	}
	if _, err := hex.DecodeString(s); err == nil && (len(s) == 16 || len(s) == 32) {
		return strings.ToLower(s)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && (len(b) == 8 || len(b) == 16) {
		return hex.EncodeToString(b)
	}
	return s
}

// readTraceFile reads an OTLP/JSON file, one ExportTraceServiceRequest per
// line.
func readTraceFile(path string) (*traceTree, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening trace file: %w", err)
	}
	defer f.Close()
	tr := &traceTree{ByID: map[string]*span{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var req otlpFile
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return nil, fmt.Errorf("decoding trace file line %d: %w", line, err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := &span{
						TraceID:  normID(s.TraceID),
						SpanID:   normID(s.SpanID),
						ParentID: normID(s.ParentSpanID),
						Name:     s.Name,
						Attrs:    map[string]any{},
					}
					for _, a := range s.Attributes {
						sp.Attrs[a.Key] = a.Value.value()
					}
					tr.Spans = append(tr.Spans, sp)
					tr.ByID[sp.SpanID] = sp
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading trace file: %w", err)
	}
	return tr, nil
}

// roots returns the spans without a parent.
func (tr *traceTree) roots() []*span {
	var out []*span
	for _, s := range tr.Spans {
		if s.ParentID == "" || strings.Trim(s.ParentID, "0") == "" {
			out = append(out, s)
		}
	}
	return out
}

// under reports whether anc is s or one of its ancestors.
func (tr *traceTree) under(s, anc *span) bool {
	for seen := 0; s != nil && seen <= len(tr.Spans); seen++ {
		if s == anc {
			return true
		}
		s = tr.ByID[s.ParentID]
	}
	return false
}

func (tr *traceTree) depth(s *span) int {
	d := 0
	for p := tr.ByID[s.ParentID]; p != nil && d <= len(tr.Spans); p = tr.ByID[p.ParentID] {
		d++
	}
	return d
}

// path renders the chain of span names from the root down to s, for
// failure messages.
func (tr *traceTree) path(s *span) string {
	var names []string
	for seen := 0; s != nil && seen <= len(tr.Spans); seen++ {
		names = append([]string{s.Name}, names...)
		s = tr.ByID[s.ParentID]
	}
	return strings.Join(names, " > ")
}

func (tr *traceTree) filter(keep func(*span) bool) []*span {
	var out []*span
	for _, s := range tr.Spans {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}
