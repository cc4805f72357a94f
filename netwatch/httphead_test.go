package netwatch

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"origin form", "GET / HTTP/1.1\r\nHost: Example.com\r\nAccept: */*\r\n\r\n", "example.com", nil},
		{"host with port", "GET /x HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", "example.com", nil},
		{"host header case", "GET / HTTP/1.1\r\nhOsT:example.com\r\n\r\n", "example.com", nil},
		{"lf line endings", "GET / HTTP/1.1\nHost: example.com\n\n", "example.com", nil},
		{"body after head", "POST /u HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nHost", "example.com", nil},
		{"ipv6 literal", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", "2001:db8::1", nil},
		{"ipv4 literal", "GET / HTTP/1.1\r\nHost: 192.0.2.7\r\n\r\n", "192.0.2.7", nil},
		{"absolute form", "GET http://proxy.example:80/p HTTP/1.1\r\nHost: proxy.example\r\n\r\n", "proxy.example", nil},
		{"absolute form empty host header", "GET http://a.example/ HTTP/1.1\r\nHost:\r\n\r\n", "a.example", nil},
		{"absolute form no host header", "GET http://a.example/ HTTP/1.0\r\n\r\n", "a.example", nil},
		{"connect authority form", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "a.example", nil},
		{"absolute form disagrees with host", "GET http://good.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", "", errMalformedHTTP},
		{"missing host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "", errNoHost},
		{"http 1.0 without host", "GET / HTTP/1.0\r\n\r\n", "", errNoHost},
		{"duplicate host", "GET / HTTP/1.1\r\nHost: good.example\r\nHost: evil.example\r\n\r\n", "", errMalformedHTTP},
		{"space before colon", "GET / HTTP/1.1\r\nHost : evil.example\r\nHost: good.example\r\n\r\n", "", errMalformedHTTP},
		{"obs fold", "GET / HTTP/1.1\r\nHost: good.example\r\n evil.example\r\n\r\n", "", errMalformedHTTP},
		{"host with path", "GET / HTTP/1.1\r\nHost: good.example/evil\r\n\r\n", "", errMalformedHTTP},
		{"host with bad port", "GET / HTTP/1.1\r\nHost: good.example:http\r\n\r\n", "", errMalformedHTTP},
		{"incomplete head", "GET / HTTP/1.1\r\nHost: example.com\r\n", "", errNeedMore},
		{"incomplete request line", "GET /index.h", "", errNeedMore},
		{"request line ends in cr", "GET / HTTP/1.1\r", "", errNeedMore},
		{"one letter", "G", "", errNeedMore},
		{"ssh banner", "SSH-2.0-OpenSSH_9.6\r\n", "", errNotHTTP},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", errNotHTTP},
		{"http 0.9", "GET /\r\n", "", errNotHTTP},
		{"binary", "\x00\x01\x02", "", errNotHTTP},
		{"smtp style", "EHLO x\r\n", "", errNotHTTP},
		{"head over limit", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", helloLimit) + "\r\n", "", errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHost([]byte(tt.in))
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseHost = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseHost(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	f.Add([]byte("GET http://a.example/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := parseHost(b)
		if err == nil {
			if n, ok := normalizeName(name); !ok || n != name {
				t.Fatalf("returned host %q is not normalized", name)
			}
		}
	})
}

// TestRequestStream: the framing alone, byte by byte and in one piece:
// what is forwarded, and which heads are checked.
func TestRequestStream(t *testing.T) {
	body := "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n"
	tests := []struct {
		name   string
		in     string
		checks []string // hosts passed to check; "!" + rule for errors
		fwd    string   // forwarded bytes, when different from in
	}{
		{"two gets", "GET / HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: b.test\r\n\r\n", []string{"a.test", "b.test"}, ""},
		{"empty lines between requests", "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n\r\n\nGET / HTTP/1.1\r\nHost: b.test\r\n\r\n", []string{"a.test", "b.test"}, ""},
		{"content-length body", fmt.Sprintf("POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n%sGET / HTTP/1.0\r\nHost: c.test\r\n\r\n", len(body), body), []string{"a.test", "c.test"}, ""},
		{"chunked body and trailer", fmt.Sprintf("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n%X\r\n%s\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: c.test\r\n\r\n", len(body), body), []string{"a.test", "c.test"}, ""},
		{"upgrade stops reading", "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + body, []string{"a.test"}, ""},
		{"connect stops reading", "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n" + body, []string{"a.test"}, ""},
		{"two content lengths", "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", []string{"!" + RuleMalformedHTTP}, "xx"},
		{"transfer-encoding not chunked", "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\nxx", []string{"!" + RuleMalformedHTTP}, "xx"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + body, []string{"a.test", "!" + RuleMalformedHTTP}, ""},
		{"not http after a request", "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n\x00\x01\x02", []string{"a.test", "!" + RuleUnknownProtocol}, ""},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 7, len(tt.in)} {
			t.Run(fmt.Sprintf("%s/%d", tt.name, step), func(t *testing.T) {
				var out bytes.Buffer
				var checks []string
				rs := &requestStream{w: &out, check: func(host string, err error) error {
					if err != nil {
						checks = append(checks, "!"+ruleFor(err))
						return errStopInspecting // observe: the rest passes unread
					}
					checks = append(checks, host)
					return nil
				}}
				for in := tt.in; len(in) > 0; {
					k := min(step, len(in))
					if _, err := rs.Write([]byte(in[:k])); err != nil {
						t.Fatal(err)
					}
					in = in[k:]
				}
				if strings.Join(checks, ",") != strings.Join(tt.checks, ",") {
					t.Errorf("checked %q, want %q", checks, tt.checks)
				}
				// Everything reaches the server in observe mode, in order;
				// for heads that could not be framed, the held-back head
				// goes with the rest.
				if out.String() != tt.in {
					t.Errorf("forwarded %q, want %q", out.String(), tt.in)
				}
			})
		}
	}
}

// FuzzRequestStream: in observe mode the stream is transparent whatever
// the bytes and however they are split, and never panics.
func FuzzRequestStream(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n"), uint8(3))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nxx\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		var out bytes.Buffer
		rs := &requestStream{w: &out, check: func(host string, err error) error {
			if err != nil {
				return errStopInspecting
			}
			if n, ok := normalizeName(host); !ok || n != host {
				t.Fatalf("checked host %q is not normalized", host)
			}
			return nil
		}}
		k := max(int(step), 1)
		for rest := in; len(rest) > 0; rest = rest[min(k, len(rest)):] {
			if _, err := rs.Write(rest[:min(k, len(rest))]); err != nil {
				t.Fatal(err)
			}
		}
		// Bytes held back are an incomplete head (under 16 KiB).
		if got := out.Len() + len(rs.pending); got != len(in) || !bytes.Equal(append(out.Bytes(), rs.pending...), in) {
			t.Fatalf("forwarded %q + held %q, want %q", out.Bytes(), rs.pending, in)
		}
	})
}
