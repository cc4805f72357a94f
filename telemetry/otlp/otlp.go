// Package otlp is the one codec between the run record (telemetry.Trace)
// and OTLP: the protobuf ExportTraceServiceRequest the store keeps and
// export sends (Request, FromRequest), and its OTLP/JSON encoding, the
// trace file's lines (MarshalJSON, UnmarshalJSON). It never redacts or
// filters, and imports no network or exporter package.
//
// agentwatch deliberately does not use the OTel SDK span pipeline: the
// spans carry kernel timestamps and ids chosen by the recorder, and a run
// kept in the store is re-sent later, so OTLP protobuf is built here and
// handed to the SDK's exporter clients by package export.
package otlp

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// ScopeName is the instrumentation scope of every span agentwatch emits.
const ScopeName = "github.com/agentwatch/agentwatch"

// Request converts a trace to one OTLP ExportTraceServiceRequest: one
// ResourceSpans (tr.Resource), one ScopeSpans, the spans in tr's order. The
// scope version is the resource's service.version, so the two never disagree.
func Request(tr *telemetry.Trace) *coltracepb.ExportTraceServiceRequest {
	scope := &commonpb.InstrumentationScope{Name: ScopeName}
	for _, kv := range tr.Resource {
		if kv.Key == telemetry.ServiceVersion {
			scope.Version = kv.Value.Emit()
		}
	}
	spans := make([]*tracepb.Span, 0, len(tr.Spans))
	for i := range tr.Spans {
		spans = append(spans, spanToProto(&tr.Spans[i]))
	}
	return &coltracepb.ExportTraceServiceRequest{
		ResourceSpans: []*tracepb.ResourceSpans{{
			Resource:  &resourcepb.Resource{Attributes: attrsToProto(tr.Resource)},
			SchemaUrl: telemetry.SemconvSchemaURL,
			ScopeSpans: []*tracepb.ScopeSpans{{
				Scope:     scope,
				SchemaUrl: telemetry.SemconvSchemaURL,
				Spans:     spans,
			}},
		}},
	}
}

// FromRequest converts back; Request(FromRequest(r)) == r for requests
// that Request made. Spans of every ResourceSpans and ScopeSpans are
// concatenated; the resource is the first one's. RunID is read from the root
// span's agentwatch.run.id. Attribute values OTLP has but a trace cannot
// hold (bytes, key-value lists, mixed arrays) are an error.
func FromRequest(req *coltracepb.ExportTraceServiceRequest) (*telemetry.Trace, error) {
	tr := &telemetry.Trace{}
	for i, rs := range req.GetResourceSpans() {
		if i == 0 && rs.GetResource() != nil {
			attrs, err := attrsFromProto(rs.GetResource().GetAttributes())
			if err != nil {
				return nil, fmt.Errorf("converting resource: %w", err)
			}
			tr.Resource = attrs
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, ps := range ss.GetSpans() {
				s, err := spanFromProto(ps)
				if err != nil {
					return nil, fmt.Errorf("converting span %q: %w", ps.GetName(), err)
				}
				tr.Spans = append(tr.Spans, s)
			}
		}
	}
	if root := tr.Root(); root != nil {
		if v, ok := root.Attr(telemetry.RunID); ok {
			tr.RunID = v.AsString()
		}
	}
	return tr, nil
}

func spanToProto(s *telemetry.Span) *tracepb.Span {
	ps := &tracepb.Span{
		TraceId:           idBytes(s.TraceID[:], s.TraceID.IsValid()),
		SpanId:            idBytes(s.SpanID[:], s.SpanID.IsValid()),
		ParentSpanId:      idBytes(s.ParentID[:], s.ParentID.IsValid()),
		Name:              validUTF8(s.Name),
		Kind:              tracepb.Span_SpanKind(s.Kind),
		StartTimeUnixNano: unixNano(s.Start),
		EndTimeUnixNano:   unixNano(s.End),
		Attributes:        attrsToProto(s.Attrs),
	}
	for _, e := range s.Events {
		ps.Events = append(ps.Events, &tracepb.Span_Event{
			Name:         e.Name,
			TimeUnixNano: unixNano(e.Time),
			Attributes:   attrsToProto(e.Attrs),
		})
	}
	for _, l := range s.Links {
		ps.Links = append(ps.Links, &tracepb.Span_Link{
			TraceId:    idBytes(l.TraceID[:], l.TraceID.IsValid()),
			SpanId:     idBytes(l.SpanID[:], l.SpanID.IsValid()),
			Attributes: attrsToProto(l.Attrs),
		})
	}
	// Always present, even when unset: the collector's pdata model has no
	// "absent" status, so this keeps what we send equal to what arrives.
	ps.Status = &tracepb.Status{Code: statusToProto(s.Status), Message: s.StatusMessage}
	return ps
}

func spanFromProto(ps *tracepb.Span) (telemetry.Span, error) {
	s := telemetry.Span{
		Name:  ps.GetName(),
		Kind:  trace.SpanKind(ps.GetKind()),
		Start: fromUnixNano(ps.GetStartTimeUnixNano()),
		End:   fromUnixNano(ps.GetEndTimeUnixNano()),
	}
	var err error
	if s.TraceID, err = traceID(ps.GetTraceId()); err != nil {
		return s, err
	}
	if s.SpanID, err = spanID(ps.GetSpanId()); err != nil {
		return s, err
	}
	if s.ParentID, err = spanID(ps.GetParentSpanId()); err != nil {
		return s, err
	}
	if s.Attrs, err = attrsFromProto(ps.GetAttributes()); err != nil {
		return s, err
	}
	for _, pe := range ps.GetEvents() {
		attrs, err := attrsFromProto(pe.GetAttributes())
		if err != nil {
			return s, fmt.Errorf("event %q: %w", pe.GetName(), err)
		}
		s.Events = append(s.Events, telemetry.SpanEvent{
			Name: pe.GetName(), Time: fromUnixNano(pe.GetTimeUnixNano()), Attrs: attrs,
		})
	}
	for _, pl := range ps.GetLinks() {
		var l telemetry.Link
		if l.TraceID, err = traceID(pl.GetTraceId()); err != nil {
			return s, err
		}
		if l.SpanID, err = spanID(pl.GetSpanId()); err != nil {
			return s, err
		}
		if l.Attrs, err = attrsFromProto(pl.GetAttributes()); err != nil {
			return s, err
		}
		s.Links = append(s.Links, l)
	}
	if st := ps.GetStatus(); st != nil {
		s.Status = statusFromProto(st.GetCode())
		s.StatusMessage = st.GetMessage()
	}
	return s, nil
}

// idBytes leaves an invalid (all-zero) id empty, as OTLP requires for a
// root span's parent.
func idBytes(b []byte, valid bool) []byte {
	if !valid {
		return nil
	}
	return append([]byte(nil), b...)
}

func traceID(b []byte) (trace.TraceID, error) {
	var id trace.TraceID
	if len(b) == 0 {
		return id, nil
	}
	if len(b) != len(id) {
		return id, fmt.Errorf("trace id has %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

func spanID(b []byte) (trace.SpanID, error) {
	var id trace.SpanID
	if len(b) == 0 {
		return id, nil
	}
	if len(b) != len(id) {
		return id, fmt.Errorf("span id has %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// unixNano maps the zero time to 0 (OTLP's "unset"), not to a negative
// number that would wrap in the unsigned field.
func unixNano(t time.Time) uint64 {
	if t.IsZero() || t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano())
}

func fromUnixNano(n uint64) time.Time {
	if n == 0 || n > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, int64(n))
}

// The OTel API and OTLP number the status codes differently (API: Unset,
// Error, Ok; OTLP: UNSET, OK, ERROR).
func statusToProto(c codes.Code) tracepb.Status_StatusCode {
	switch c {
	case codes.Ok:
		return tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

func statusFromProto(c tracepb.Status_StatusCode) codes.Code {
	switch c {
	case tracepb.Status_STATUS_CODE_OK:
		return codes.Ok
	case tracepb.Status_STATUS_CODE_ERROR:
		return codes.Error
	}
	return codes.Unset
}

func attrsToProto(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(attrs))
	for _, kv := range attrs {
		v := valueToProto(kv.Value)
		if v == nil {
			continue // an INVALID value carries nothing to send
		}
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: v})
	}
	return out
}

// validUTF8 replaces invalid bytes with U+FFFD. Paths and argv are bytes to
// the kernel, not text: a Latin-1 file name would otherwise make the proto
// marshal (store, OTLP) fail and lose the run.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func valueToProto(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: validUTF8(v.AsString())}}
	case attribute.BOOLSLICE:
		return arrayValue(v.AsBoolSlice(), func(b bool) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: b}}
		})
	case attribute.INT64SLICE:
		return arrayValue(v.AsInt64Slice(), func(i int64) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
		})
	case attribute.FLOAT64SLICE:
		return arrayValue(v.AsFloat64Slice(), func(f float64) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
		})
	case attribute.STRINGSLICE:
		return arrayValue(v.AsStringSlice(), func(s string) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: validUTF8(s)}}
		})
	}
	return nil
}

func arrayValue[T any](xs []T, conv func(T) *commonpb.AnyValue) *commonpb.AnyValue {
	vals := make([]*commonpb.AnyValue, 0, len(xs))
	for _, x := range xs {
		vals = append(vals, conv(x))
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vals}}}
}

func attrsFromProto(kvs []*commonpb.KeyValue) ([]attribute.KeyValue, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make([]attribute.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		v, err := valueFromProto(kv.GetValue())
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", kv.GetKey(), err)
		}
		out = append(out, attribute.KeyValue{Key: attribute.Key(kv.GetKey()), Value: v})
	}
	return out, nil
}

var errValueType = errors.New("value type not representable as an OpenTelemetry attribute")

func valueFromProto(pv *commonpb.AnyValue) (attribute.Value, error) {
	switch x := pv.GetValue().(type) {
	case *commonpb.AnyValue_BoolValue:
		return attribute.BoolValue(x.BoolValue), nil
	case *commonpb.AnyValue_IntValue:
		return attribute.Int64Value(x.IntValue), nil
	case *commonpb.AnyValue_DoubleValue:
		return attribute.Float64Value(x.DoubleValue), nil
	case *commonpb.AnyValue_StringValue:
		return attribute.StringValue(x.StringValue), nil
	case *commonpb.AnyValue_ArrayValue:
		return arrayFromProto(x.ArrayValue.GetValues())
	}
	return attribute.Value{}, errValueType
}

// arrayFromProto types the slice by its first element. An empty array comes
// back as an empty string slice: OTLP carries no element type for it.
func arrayFromProto(vals []*commonpb.AnyValue) (attribute.Value, error) {
	if len(vals) == 0 {
		return attribute.StringSliceValue(nil), nil
	}
	switch vals[0].GetValue().(type) {
	case *commonpb.AnyValue_BoolValue:
		return sliceFromProto(vals, attribute.BoolSliceValue, (*commonpb.AnyValue).GetBoolValue, holds[*commonpb.AnyValue_BoolValue])
	case *commonpb.AnyValue_IntValue:
		return sliceFromProto(vals, attribute.Int64SliceValue, (*commonpb.AnyValue).GetIntValue, holds[*commonpb.AnyValue_IntValue])
	case *commonpb.AnyValue_DoubleValue:
		return sliceFromProto(vals, attribute.Float64SliceValue, (*commonpb.AnyValue).GetDoubleValue, holds[*commonpb.AnyValue_DoubleValue])
	case *commonpb.AnyValue_StringValue:
		return sliceFromProto(vals, attribute.StringSliceValue, (*commonpb.AnyValue).GetStringValue, holds[*commonpb.AnyValue_StringValue])
	}
	return attribute.Value{}, errValueType
}

// holds reports whether v carries the oneof variant T.
func holds[T any](v *commonpb.AnyValue) bool {
	_, ok := v.GetValue().(T)
	return ok
}

func sliceFromProto[T any](vals []*commonpb.AnyValue, mk func([]T) attribute.Value,
	get func(*commonpb.AnyValue) T, is func(*commonpb.AnyValue) bool) (attribute.Value, error) {
	xs := make([]T, 0, len(vals))
	for _, v := range vals {
		if !is(v) {
			return attribute.Value{}, fmt.Errorf("mixed array: %w", errValueType)
		}
		xs = append(xs, get(v))
	}
	return mk(xs), nil
}
