// Package otlpvalue reads OTLP values the same way wherever agentwatch
// receives them (the agent's receiver, the recorder): flattening a value
// to text, checking ids, counting metric data points. It imports only the
// OTLP data types (no collector service, no gRPC), so the recorder may
// use it.
package otlpvalue

import (
	"encoding/hex"
	"strconv"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// String flattens an OTLP value (arrays, kvlists and bytes included) to
// text, for attributes that cannot be kept typed.
func String(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'f', -1, 64)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_BytesValue:
		return hex.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		parts := make([]string, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, String(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case *commonpb.AnyValue_KvlistValue:
		parts := make([]string, 0, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			parts = append(parts, kv.GetKey()+"="+String(kv.GetValue()))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return ""
}

// ValidTraceID reports whether b is a trace id: 16 bytes, not all zero.
func ValidTraceID(b []byte) bool { return len(b) == 16 && !allZero(b) }

// ValidSpanID reports whether b is a span id: 8 bytes, not all zero.
func ValidSpanID(b []byte) bool { return len(b) == 8 && !allZero(b) }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// DataPoints counts the data points of every metric kind.
func DataPoints(rms []*metricspb.ResourceMetrics) int64 {
	var n int64
	for _, rm := range rms {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				n += int64(len(m.GetGauge().GetDataPoints()) + len(m.GetSum().GetDataPoints()) +
					len(m.GetHistogram().GetDataPoints()) + len(m.GetExponentialHistogram().GetDataPoints()) +
					len(m.GetSummary().GetDataPoints()))
			}
		}
	}
	return n
}
