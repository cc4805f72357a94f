package agentotel

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	contentProtobuf = "application/x-protobuf"
	contentJSON     = "application/json"
)

// httpHandler serves one OTLP/HTTP signal path, as the OTLP spec's HTTP
// section says: POST, protobuf or JSON (the reply in the request's
// encoding), optional gzip body, errors as a google.rpc.Status body.
func (r *Receiver) httpHandler(s *signalKind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "OTLP export is POST only", http.StatusMethodNotAllowed)
			r.badRequests.Add(1)
			return
		}
		ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
		if ct != contentProtobuf && ct != contentJSON {
			http.Error(w, "unsupported content type "+req.Header.Get("Content-Type")+"; want "+contentProtobuf+" or "+contentJSON,
				http.StatusUnsupportedMediaType)
			r.badRequests.Add(1)
			return
		}
		select {
		case r.slots <- struct{}{}:
			defer func() { <-r.slots }()
		case <-req.Context().Done():
			return
		}
		body, code, err := r.readBody(req)
		if err != nil {
			writeStatus(w, ct, code, err)
			r.badRequests.Add(1)
			return
		}
		msg := s.newRequest()
		if ct == contentJSON {
			err = checkJSONBudget(body, r.cfg.MaxRequestElements)
		} else {
			err = checkProtoBudget(body, msg.ProtoReflect().Descriptor(), r.cfg.MaxRequestElements)
		}
		if err != nil {
			writeStatus(w, ct, http.StatusRequestEntityTooLarge, err)
			r.badRequests.Add(1)
			return
		}
		if ct == contentJSON {
			err = unmarshalOTLPJSON(body, msg)
		} else {
			err = proto.Unmarshal(body, msg)
		}
		if err != nil {
			writeStatus(w, ct, http.StatusBadRequest, fmt.Errorf("decoding %s request: %w", s.name, err))
			r.badRequests.Add(1)
			return
		}
		resp, err := r.handle(s, msg)
		switch {
		case errors.Is(err, errClosed):
			writeStatus(w, ct, http.StatusServiceUnavailable, err)
			return
		case err != nil:
			writeStatus(w, ct, http.StatusInternalServerError, err)
			return
		}
		out, err := encode(ct, resp)
		if err != nil {
			writeStatus(w, ct, http.StatusInternalServerError, err)
			return
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		w.Write(out)
	})
}

// readBody reads the whole body, gunzipping when asked, and refuses more
// than MaxRequestBytes after decompression (a gzip bomb is small on the
// wire).
func (r *Receiver) readBody(req *http.Request) ([]byte, int, error) {
	limit := r.cfg.MaxRequestBytes
	var src io.Reader = http.MaxBytesReader(nil, req.Body, limit+1)
	switch enc := strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("reading gzip body: %w", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported content encoding %q (want gzip or none)", enc)
	}
	body, err := io.ReadAll(io.LimitReader(src, limit+1))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig) || int64(len(body)) > limit:
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit)
	case err != nil:
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %w", err)
	}
	return body, 0, nil
}

func encode(ct string, m proto.Message) ([]byte, error) {
	if ct == contentJSON {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}

func writeStatus(w http.ResponseWriter, ct string, code int, err error) {
	out, encErr := encode(ct, &spb.Status{Code: int32(grpcCodeFor(code)), Message: err.Error()})
	if encErr != nil {
		http.Error(w, err.Error(), code)
		return
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(code)
	w.Write(out)
}

// grpcCodeFor maps the HTTP statuses we send to google.rpc.Code values for
// the Status body.
func grpcCodeFor(httpCode int) int {
	switch httpCode {
	case http.StatusBadRequest:
		return 3 // INVALID_ARGUMENT
	case http.StatusRequestEntityTooLarge:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	case http.StatusUnsupportedMediaType:
		return 3
	}
	return 13 // INTERNAL
}

// idFields are the OTLP/JSON keys whose values are hex-encoded ids. The
// OTLP spec makes them hex where the protobuf JSON mapping says base64;
// protojson accepts both the lowerCamel and the proto field names.
var idFields = map[string]bool{
	"traceId": true, "spanId": true, "parentSpanId": true,
	"trace_id": true, "span_id": true, "parent_span_id": true,
}

// unmarshalOTLPJSON decodes OTLP/JSON: ids are rewritten from hex to the
// base64 protojson expects, and unknown fields are ignored as the spec
// requires of receivers. Only object keys are rewritten, so an attribute
// whose key is "traceId" (a value in OTLP's KeyValue form) is untouched.
func unmarshalOTLPJSON(body []byte, m proto.Message) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // keep int64 values exact through the round trip
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	if err := hexIDsToBase64(doc); err != nil {
		return err
	}
	fixed, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(fixed, m)
}

func hexIDsToBase64(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && idFields[k] {
				b, err := hex.DecodeString(s)
				if err != nil {
					return fmt.Errorf("%s %q is not hex: %w", k, s, err)
				}
				v[k] = base64.StdEncoding.EncodeToString(b)
				continue
			}
			if err := hexIDsToBase64(x); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := hexIDsToBase64(x); err != nil {
				return err
			}
		}
	}
	return nil
}
