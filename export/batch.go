package export

import (
	"fmt"
	"sort"
	"unicode/utf8"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// DefaultMaxRequestBytes bounds one OTLP request, serialized: the
// OpenTelemetry Collector's gRPC receiver refuses messages over 4 MiB by
// default (grpc-go's MaxRecvMsgSize), and a run of 100,000 files is tens
// of megabytes.
const DefaultMaxRequestBytes = 4 << 20

// Attributes added to a span that was cut to fit one request. The store
// keeps the span whole; only what a collector receives is cut.
const (
	AttrTruncated     = "agentwatch.export.truncated"      // true
	AttrOriginalBytes = "agentwatch.export.original_bytes" // the span's serialized size before the cut
)

// truncSuffix ends a string value that was cut.
const truncSuffix = "…[truncated]"

// markerReserve is room kept for the marker attributes and the dropped
// counts a cut adds to a span.
const markerReserve = 256

// Batches splits req into requests of at most maxBytes serialized bytes
// each (maxBytes <= 0: DefaultMaxRequestBytes). Spans keep their order;
// each request repeats the resource and scope of its spans. A span that
// alone exceeds the limit is sent cut (see fitSpan) and counted in
// truncated. A request that already fits is returned as is.
func Batches(req *coltracepb.ExportTraceServiceRequest, maxBytes int) (batches []*coltracepb.ExportTraceServiceRequest, truncated int) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	if proto.Size(req) <= maxBytes {
		return []*coltracepb.ExportTraceServiceRequest{req}, 0
	}
	b := batcher{max: maxBytes}
	for _, rs := range req.GetResourceSpans() {
		// Sizes of everything but the scope spans: the header every
		// request that carries spans of rs repeats.
		rsHead := proto.Size(&tracepb.ResourceSpans{Resource: rs.GetResource(), SchemaUrl: rs.GetSchemaUrl()}) + 1 + maxVarint
		for _, ss := range rs.GetScopeSpans() {
			ssHead := proto.Size(&tracepb.ScopeSpans{Scope: ss.GetScope(), SchemaUrl: ss.GetSchemaUrl()}) + 1 + maxVarint
			for _, sp := range ss.GetSpans() {
				n := proto.Size(sp)
				cost := 1 + protowire.SizeVarint(uint64(n)) + n
				if rsHead+ssHead+cost > maxBytes {
					// Alone in a request and still too big: cut it to what
					// a request with its resource and scope has room for.
					budget := maxBytes - rsHead - ssHead - 1 - maxVarint
					sp = fitSpan(sp, budget)
					truncated++
					n = proto.Size(sp)
					cost = 1 + protowire.SizeVarint(uint64(n)) + n
				}
				b.add(rs, rsHead, ss, ssHead, sp, cost)
			}
		}
	}
	b.flush()
	return b.out, truncated
}

// maxVarint is the longest length prefix (5 bytes: any size under 32 GiB).
// Resource and scope headers are counted with it, so that a batch's size
// is summed as an upper bound, never under.
const maxVarint = 5

type batcher struct {
	max  int
	out  []*coltracepb.ExportTraceServiceRequest
	cur  *coltracepb.ExportTraceServiceRequest
	size int // upper bound of proto.Size(cur)
	rs   *tracepb.ResourceSpans
	ss   *tracepb.ScopeSpans
	// the source ResourceSpans and ScopeSpans that rs and ss copy
	srcRS *tracepb.ResourceSpans
	srcSS *tracepb.ScopeSpans
}

func (b *batcher) add(srcRS *tracepb.ResourceSpans, rsHead int, srcSS *tracepb.ScopeSpans, ssHead int, sp *tracepb.Span, cost int) {
	extra := cost
	if b.cur == nil || b.srcRS != srcRS {
		extra += rsHead + ssHead
	} else if b.srcSS != srcSS {
		extra += ssHead
	}
	if b.cur != nil && b.size+extra > b.max {
		b.flush()
		extra = rsHead + ssHead + cost
	}
	if b.cur == nil {
		b.cur = &coltracepb.ExportTraceServiceRequest{}
	}
	if b.srcRS != srcRS || b.rs == nil {
		b.rs = &tracepb.ResourceSpans{Resource: srcRS.GetResource(), SchemaUrl: srcRS.GetSchemaUrl()}
		b.cur.ResourceSpans = append(b.cur.ResourceSpans, b.rs)
		b.srcRS, b.ss, b.srcSS = srcRS, nil, nil
	}
	if b.srcSS != srcSS || b.ss == nil {
		b.ss = &tracepb.ScopeSpans{Scope: srcSS.GetScope(), SchemaUrl: srcSS.GetSchemaUrl()}
		b.rs.ScopeSpans = append(b.rs.ScopeSpans, b.ss)
		b.srcSS = srcSS
	}
	b.ss.Spans = append(b.ss.Spans, sp)
	b.size += extra
}

func (b *batcher) flush() {
	if b.cur != nil {
		b.out = append(b.out, b.cur)
	}
	b.cur, b.size, b.rs, b.ss, b.srcRS, b.srcSS = nil, 0, nil, nil, nil, nil
}

// fitSpan returns a copy of sp cut to at most budget serialized bytes, or
// sp itself when it fits. The largest parts go first: a long string value
// is shortened (ending in truncSuffix), a long array loses its tail, and
// what cannot shrink — or is still too big — is dropped and counted in
// the span's dropped_attributes/events/links_count, as OTLP defines. The
// span keeps its ids, name, times and status, so it still sits in its
// place in the tree, and says it was cut (AttrTruncated, AttrOriginalBytes).
func fitSpan(sp *tracepb.Span, budget int) *tracepb.Span {
	orig := proto.Size(sp)
	if orig <= budget {
		return sp
	}
	s := proto.Clone(sp).(*tracepb.Span)
	target := budget - markerReserve
	// A few passes: sizes are estimates of each part's share, and the
	// final proto.Size is the judge.
	for pass := 0; pass < 4 && proto.Size(s) > target; pass++ {
		cut(s, proto.Size(s)-target)
	}
	if proto.Size(s) > target {
		// Still too big (a name or status message of megabytes): keep
		// only what places the span in the tree.
		s.DroppedAttributesCount += uint32(len(s.Attributes))
		s.DroppedEventsCount += uint32(len(s.Events))
		s.DroppedLinksCount += uint32(len(s.Links))
		s.Attributes, s.Events, s.Links = nil, nil, nil
		s.Name = shorten(s.Name, 1024)
		if s.Status != nil {
			s.Status.Message = shorten(s.Status.Message, 1024)
		}
	}
	s.Attributes = append(s.Attributes,
		&commonpb.KeyValue{Key: AttrTruncated, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}},
		&commonpb.KeyValue{Key: AttrOriginalBytes, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(orig)}}},
	)
	return s
}

// part is one attribute, event or link of a span, with its share of the
// span's serialized size.
type part struct {
	kind int // 0 attribute, 1 event, 2 link
	i    int
	size int
}

// cut removes at least excess bytes from s, largest parts first.
func cut(s *tracepb.Span, excess int) {
	var parts []part
	for i, kv := range s.Attributes {
		parts = append(parts, part{0, i, fieldSize(proto.Size(kv))})
	}
	for i, e := range s.Events {
		parts = append(parts, part{1, i, fieldSize(proto.Size(e))})
	}
	for i, l := range s.Links {
		parts = append(parts, part{2, i, fieldSize(proto.Size(l))})
	}
	sort.SliceStable(parts, func(a, b int) bool { return parts[a].size > parts[b].size })
	dropAttr := map[int]bool{}
	dropEvent := map[int]bool{}
	dropLink := map[int]bool{}
	for _, p := range parts {
		if excess <= 0 {
			break
		}
		switch p.kind {
		case 0:
			kv := s.Attributes[p.i]
			// Shrinking is worth it only if something useful is left.
			if p.size > excess+len(truncSuffix)+64 && shrinkValue(kv.Value, excess+len(truncSuffix)) {
				excess -= p.size - fieldSize(proto.Size(kv))
				continue
			}
			dropAttr[p.i] = true
		case 1:
			dropEvent[p.i] = true
		case 2:
			dropLink[p.i] = true
		}
		excess -= p.size
	}
	s.Attributes = without(s.Attributes, dropAttr)
	s.Events = without(s.Events, dropEvent)
	s.Links = without(s.Links, dropLink)
	s.DroppedAttributesCount += uint32(len(dropAttr))
	s.DroppedEventsCount += uint32(len(dropEvent))
	s.DroppedLinksCount += uint32(len(dropLink))
}

func without[T any](xs []T, drop map[int]bool) []T {
	if len(drop) == 0 {
		return xs
	}
	out := xs[:0:0]
	for i, x := range xs {
		if !drop[i] {
			out = append(out, x)
		}
	}
	return out
}

// fieldSize is the serialized size of an embedded message of n bytes.
func fieldSize(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

// shrinkValue makes v at least by bytes smaller, if its type allows:
// strings are shortened, arrays lose elements from the end (or, when one
// element is most of the array, that element shrinks). It reports whether
// it shrank v.
func shrinkValue(v *commonpb.AnyValue, by int) bool {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		keep := len(x.StringValue) - by
		if keep <= 0 {
			return false
		}
		x.StringValue = shorten(x.StringValue, keep)
		return true
	case *commonpb.AnyValue_ArrayValue:
		vals := x.ArrayValue.GetValues()
		total := 0
		sizes := make([]int, len(vals))
		for i, e := range vals {
			sizes[i] = fieldSize(proto.Size(e))
			total += sizes[i]
		}
		for i, e := range vals {
			if sizes[i] > total/2 && sizes[i] > by+64 && shrinkValue(e, by) {
				return true
			}
		}
		// Keep the longest prefix that is by bytes smaller than the whole.
		keep, kept := 0, 0
		for keep < len(vals) && kept+sizes[keep] <= total-by {
			kept += sizes[keep]
			keep++
		}
		if keep == 0 {
			return false
		}
		x.ArrayValue.Values = vals[:keep]
		return true
	}
	return false
}

// shorten cuts s to at most n bytes, on a rune boundary, ending in
// truncSuffix.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	keep := n - len(truncSuffix)
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + truncSuffix
}

// spanCount is the number of spans in req.
func spanCount(req *coltracepb.ExportTraceServiceRequest) int {
	n := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

// describeRequests renders 1-based request numbers compactly: "3",
// "3, 5", "3-7, 9".
func describeRequests(idx []int) string {
	out := ""
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if out != "" {
			out += ", "
		}
		if j > i {
			out += fmt.Sprintf("%d-%d", idx[i], idx[j])
		} else {
			out += fmt.Sprintf("%d", idx[i])
		}
		i = j + 1
	}
	return out
}
