package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"strconv"
	"unicode/utf8"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// appendRequestJSON writes req as OTLP/JSON directly, without protojson and
// without a decode/re-encode pass to turn ids into hex: a run with 20,000
// file spans is a 20 MB line, and the generic route cost seconds and
// hundreds of megabytes at the end of every large run. Field names, zero
// omission (oneof members are always written), 64-bit integers as strings,
// enums as integers and NaN/Infinity follow protojson, so UnmarshalJSON (and
// any OTLP/JSON reader) reads it back; a test holds the two equal.
//
// Why not the collector's pdata (W2.5 decision, measured by
// BenchmarkJSONEncoder/BenchmarkJSONPdata/BenchmarkJSONPdataOnly on 20,000
// process spans): pdata's own JSON marshalling is as fast as this encoder
// (~38 vs ~40 ms, 20 MB), but our requests are protobuf structs, and reaching
// pdata from them (proto.Marshal, UnmarshalProto) makes the export 3× slower
// (~120 ms), 4-5× the memory (~95 MB) and 562,000 allocations instead of 1;
// building pdata instead of protobuf structs would move the store, the
// journal and the uploader to it for no gain in speed, and links 1.5 MB more
// into the binary. TestPdataAgreesWithEncoder keeps the outputs equal.
func appendRequestJSON(b []byte, req *coltracepb.ExportTraceServiceRequest) []byte {
	b = append(b, `{"resourceSpans":[`...)
	for i, rs := range req.GetResourceSpans() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		o := obj{b: b}
		if r := rs.GetResource(); r != nil {
			o.key("resource")
			o.b = append(o.b, '{')
			r2 := obj{b: o.b}
			r2.attrs("attributes", r.GetAttributes())
			r2.uint("droppedAttributesCount", uint64(r.GetDroppedAttributesCount()))
			o.b = append(r2.b, '}')
		}
		if ss := rs.GetScopeSpans(); len(ss) > 0 {
			o.key("scopeSpans")
			o.b = append(o.b, '[')
			for j, s := range ss {
				if j > 0 {
					o.b = append(o.b, ',')
				}
				o.b = appendScopeSpans(o.b, s)
			}
			o.b = append(o.b, ']')
		}
		o.str("schemaUrl", rs.GetSchemaUrl())
		b = append(o.b, '}')
	}
	return append(b, "]}"...)
}

func appendScopeSpans(b []byte, ss *tracepb.ScopeSpans) []byte {
	b = append(b, '{')
	o := obj{b: b}
	if sc := ss.GetScope(); sc != nil {
		o.key("scope")
		o.b = append(o.b, '{')
		s := obj{b: o.b}
		s.str("name", sc.GetName())
		s.str("version", sc.GetVersion())
		s.attrs("attributes", sc.GetAttributes())
		s.uint("droppedAttributesCount", uint64(sc.GetDroppedAttributesCount()))
		o.b = append(s.b, '}')
	}
	if spans := ss.GetSpans(); len(spans) > 0 {
		o.key("spans")
		o.b = append(o.b, '[')
		for i, sp := range spans {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = appendSpan(o.b, sp)
		}
		o.b = append(o.b, ']')
	}
	o.str("schemaUrl", ss.GetSchemaUrl())
	return append(o.b, '}')
}

func appendSpan(b []byte, sp *tracepb.Span) []byte {
	b = append(b, '{')
	o := obj{b: b}
	o.id("traceId", sp.GetTraceId())
	o.id("spanId", sp.GetSpanId())
	o.str("traceState", sp.GetTraceState())
	o.id("parentSpanId", sp.GetParentSpanId())
	o.uint("flags", uint64(sp.GetFlags()))
	o.str("name", sp.GetName())
	o.uint("kind", uint64(sp.GetKind()))
	o.u64("startTimeUnixNano", sp.GetStartTimeUnixNano())
	o.u64("endTimeUnixNano", sp.GetEndTimeUnixNano())
	o.attrs("attributes", sp.GetAttributes())
	o.uint("droppedAttributesCount", uint64(sp.GetDroppedAttributesCount()))
	if evs := sp.GetEvents(); len(evs) > 0 {
		o.key("events")
		o.b = append(o.b, '[')
		for i, ev := range evs {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = append(o.b, '{')
			e := obj{b: o.b}
			e.u64("timeUnixNano", ev.GetTimeUnixNano())
			e.str("name", ev.GetName())
			e.attrs("attributes", ev.GetAttributes())
			e.uint("droppedAttributesCount", uint64(ev.GetDroppedAttributesCount()))
			o.b = append(e.b, '}')
		}
		o.b = append(o.b, ']')
	}
	o.uint("droppedEventsCount", uint64(sp.GetDroppedEventsCount()))
	if links := sp.GetLinks(); len(links) > 0 {
		o.key("links")
		o.b = append(o.b, '[')
		for i, l := range links {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = append(o.b, '{')
			e := obj{b: o.b}
			e.id("traceId", l.GetTraceId())
			e.id("spanId", l.GetSpanId())
			e.str("traceState", l.GetTraceState())
			e.attrs("attributes", l.GetAttributes())
			e.uint("droppedAttributesCount", uint64(l.GetDroppedAttributesCount()))
			e.uint("flags", uint64(l.GetFlags()))
			o.b = append(e.b, '}')
		}
		o.b = append(o.b, ']')
	}
	o.uint("droppedLinksCount", uint64(sp.GetDroppedLinksCount()))
	if st := sp.GetStatus(); st != nil {
		o.key("status")
		o.b = append(o.b, '{')
		s := obj{b: o.b}
		s.str("message", st.GetMessage())
		s.uint("code", uint64(st.GetCode()))
		o.b = append(s.b, '}')
	}
	return append(o.b, '}')
}

// obj appends the members of one JSON object, omitting zero values as
// proto3 JSON does.
type obj struct {
	b    []byte
	more bool
}

func (o *obj) key(k string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *obj) str(k, v string) {
	if v != "" {
		o.key(k)
		o.b = appendString(o.b, v)
	}
}

func (o *obj) uint(k string, v uint64) {
	if v != 0 {
		o.key(k)
		o.b = strconv.AppendUint(o.b, v, 10)
	}
}

// u64 writes a 64-bit integer as a string, as proto3 JSON does.
func (o *obj) u64(k string, v uint64) {
	if v != 0 {
		o.key(k)
		o.b = append(o.b, '"')
		o.b = strconv.AppendUint(o.b, v, 10)
		o.b = append(o.b, '"')
	}
}

// id writes a trace or span id in hex, as the OTLP JSON encoding requires.
func (o *obj) id(k string, v []byte) {
	if len(v) != 0 {
		o.key(k)
		o.b = append(o.b, '"')
		o.b = hex.AppendEncode(o.b, v)
		o.b = append(o.b, '"')
	}
}

func (o *obj) attrs(k string, kvs []*commonpb.KeyValue) {
	if len(kvs) == 0 {
		return
	}
	o.key(k)
	o.b = appendKeyValues(o.b, kvs)
}

func appendKeyValues(b []byte, kvs []*commonpb.KeyValue) []byte {
	b = append(b, '[')
	for i, kv := range kvs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		o := obj{b: b}
		o.str("key", kv.GetKey())
		if v := kv.GetValue(); v != nil {
			o.key("value")
			o.b = appendAnyValue(o.b, v)
		}
		b = append(o.b, '}')
	}
	return append(b, ']')
}

func appendAnyValue(b []byte, v *commonpb.AnyValue) []byte {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		b = append(b, `{"stringValue":`...)
		b = appendString(b, x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		b = append(b, `{"boolValue":`...)
		b = strconv.AppendBool(b, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		b = append(b, `{"intValue":"`...)
		b = strconv.AppendInt(b, x.IntValue, 10)
		b = append(b, '"')
	case *commonpb.AnyValue_DoubleValue:
		b = append(b, `{"doubleValue":`...)
		b = appendDouble(b, x.DoubleValue)
	case *commonpb.AnyValue_BytesValue:
		b = append(b, `{"bytesValue":"`...)
		b = base64.StdEncoding.AppendEncode(b, x.BytesValue)
		b = append(b, '"')
	case *commonpb.AnyValue_ArrayValue:
		b = append(b, `{"arrayValue":{`...)
		if vals := x.ArrayValue.GetValues(); len(vals) > 0 {
			b = append(b, `"values":[`...)
			for i, e := range vals {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendAnyValue(b, e)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	case *commonpb.AnyValue_KvlistValue:
		b = append(b, `{"kvlistValue":{`...)
		if kvs := x.KvlistValue.GetValues(); len(kvs) > 0 {
			b = append(b, `"values":`...)
			b = appendKeyValues(b, kvs)
		}
		b = append(b, '}')
	default:
		return append(b, "{}"...)
	}
	return append(b, '}')
}

func appendDouble(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string without HTML escaping (command
// lines hold < > & and must stay readable). Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
