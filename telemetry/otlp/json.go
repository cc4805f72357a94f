package otlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// MarshalJSON encodes req as one line of OTLP/JSON per the OTLP
// specification's JSON Protobuf Encoding: lowerCamelCase keys, enums as
// integers, 64-bit integers as strings, and trace and span ids as hex
// strings (protojson alone would write them as base64).
func MarshalJSON(req *coltracepb.ExportTraceServiceRequest) ([]byte, error) {
	// Sized once from the protobuf size (OTLP/JSON runs ~2-2.5x larger:
	// hex ids, key names): growing a 20 MB line by appends cost more than
	// encoding it.
	return appendRequestJSON(make([]byte, 0, proto.Size(req)*5/2+4096), req), nil
}

// UnmarshalJSON decodes one OTLP/JSON request. Ids may be hex (the
// specification) or base64 (plain protojson); unknown fields are ignored,
// as the specification asks of receivers.
func UnmarshalJSON(data []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	raw, err := rewriteIDs(data, hexToBase64)
	if err != nil {
		return nil, fmt.Errorf("decoding OTLP/JSON: %w", err)
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, req); err != nil {
		return nil, fmt.Errorf("decoding OTLP/JSON: %w", err)
	}
	return req, nil
}

// rewriteIDs applies conv to every trace/span id field of a JSON request:
// resourceSpans[].scopeSpans[].spans[].{traceId,spanId,parentSpanId} and
// their links[].{traceId,spanId}. Only those paths are touched; an
// attribute that happens to be named spanId is left alone.
func rewriteIDs(data []byte, conv func(string) (string, error)) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep doubleValue and any numbers exactly as written
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	fix := func(obj map[string]any, keys ...string) error {
		for _, k := range keys {
			s, ok := obj[k].(string)
			if !ok || s == "" {
				continue
			}
			c, err := conv(s)
			if err != nil {
				return fmt.Errorf("%s %q: %w", k, s, err)
			}
			obj[k] = c
		}
		return nil
	}
	for _, rs := range objects(doc["resourceSpans"]) {
		for _, ss := range objects(rs["scopeSpans"]) {
			for _, sp := range objects(ss["spans"]) {
				if err := fix(sp, "traceId", "spanId", "parentSpanId"); err != nil {
					return nil, err
				}
				for _, l := range objects(sp["links"]) {
					if err := fix(l, "traceId", "spanId"); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // command lines contain < > & and must stay readable
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func objects(v any) []map[string]any {
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, x := range arr {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// hexToBase64 accepts both encodings: a 16-byte trace id is 32 hex or 24
// base64 characters, an 8-byte span id 16 or 12, so the length tells them
// apart.
func hexToBase64(s string) (string, error) {
	if len(s) != 32 && len(s) != 16 {
		return s, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
