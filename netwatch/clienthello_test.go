package netwatch

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
)

// clientHello captures the first flight of Go's crypto/tls client: one
// TLS record holding the ClientHello, exactly as it goes on the wire.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, cfg).Handshake()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatalf("reading record header: %v", err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatalf("reading record body: %v", err)
	}
	return append(hdr, body...)
}

// refragment re-splits the handshake bytes of a single-record hello into
// records of at most n bytes, as a middlebox or a hostile client may.
func refragment(rec []byte, n int) []byte {
	var out []byte
	hs := rec[5:]
	for len(hs) > 0 {
		k := min(n, len(hs))
		out = append(out, 22, rec[1], rec[2], byte(k>>8), byte(k))
		out = append(out, hs[:k]...)
		hs = hs[k:]
	}
	return out
}

// helloWithExtensions builds a ClientHello record from raw extension
// bytes, for the cases crypto/tls refuses to produce.
func helloWithExtensions(exts []byte) []byte {
	var body []byte
	body = append(body, 3, 3)
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // one cipher suite
	body = append(body, 1, 0)                // null compression
	if exts != nil {
		body = append(body, byte(len(exts)>>8), byte(len(exts)))
		body = append(body, exts...)
	}
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{22, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, 0, byte(len(n)>>8), byte(len(n)))
		list = append(list, n...)
	}
	data := append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)
	return append([]byte{0, 0, byte(len(data) >> 8), byte(len(data))}, data...)
}

func tlsExt(typ uint16, data []byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

func TestParseSNI(t *testing.T) {
	withSNI := clientHello(t, &tls.Config{ServerName: "API.Example.COM"})
	noSNI := clientHello(t, &tls.Config{InsecureSkipVerify: true})
	// Go leaves IP literals out of SNI, as RFC 6066 says.
	ipSNI := clientHello(t, &tls.Config{ServerName: "192.0.2.1"})
	tls12 := clientHello(t, &tls.Config{ServerName: "old.example.com", MaxVersion: tls.VersionTLS12})
	if len(withSNI) < 200 {
		t.Fatalf("captured hello is %d bytes, expected a real one", len(withSNI))
	}
	appData := []byte{23, 3, 3, 0, 3, 'a', 'b', 'c'} // 0-RTT style data after the hello

	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr error
	}{
		{"go client hello", withSNI, "api.example.com", nil},
		{"tls 1.2 only", tls12, "old.example.com", nil},
		{"no server name", noSNI, "", errNoSNI},
		{"ip literal server name omitted", ipSNI, "", errNoSNI},
		{"fragmented 1 byte records", refragment(withSNI, 1), "api.example.com", nil},
		{"fragmented 100 byte records", refragment(withSNI, 100), "api.example.com", nil},
		{"record after the hello", append(bytes.Clone(withSNI), appData...), "api.example.com", nil},
		{"trailing dot", helloWithExtensions(sniExt("example.com.")), "example.com", nil},
		{"no extensions", helloWithExtensions(nil), "", errNoSNI},
		{"other extensions only", helloWithExtensions(tlsExt(10, []byte{0, 2, 0, 29})), "", errNoSNI},
		{"two host names", helloWithExtensions(sniExt("good.example", "evil.example")), "", errMalformedTLS},
		{"duplicate sni extension", helloWithExtensions(append(sniExt("good.example"), sniExt("evil.example")...)), "", errMalformedTLS},
		{"empty sni extension", helloWithExtensions(tlsExt(0, nil)), "", errMalformedTLS},
		{"name with a slash", helloWithExtensions(sniExt("evil.example/x")), "", errMalformedTLS},
		{"name with a nul", helloWithExtensions(sniExt("good.example\x00evil")), "", errMalformedTLS},
		{"empty label", helloWithExtensions(sniExt("a..example")), "", errMalformedTLS},
		{"alert record", []byte{21, 3, 3, 0, 2, 2, 40}, "", errMalformedTLS},
		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, "", errMalformedTLS},
		{"zero length record", []byte{22, 3, 1, 0, 0}, "", errMalformedTLS},
		{"record too long", []byte{22, 3, 1, 0x40, 0x01}, "", errMalformedTLS},
		{"bad version", []byte{22, 9, 1}, "", errMalformedTLS},
		{"hello over limit", []byte{22, 3, 1, 0, 4, 1, 0x01, 0, 1}, "", errTooLarge},
		{"interleaved non-handshake record", append(refragment(withSNI, 100)[:105], appData...), "", errMalformedTLS},
		{"extensions length lies", func() []byte {
			h := bytes.Clone(helloWithExtensions(sniExt("a.example")))
			h[len(h)-len(sniExt("a.example"))-1]++ // extensions total one byte too long
			return h
		}(), "", errMalformedTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSNI(tt.in)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseSNI = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}

	// Every proper prefix of a hello, fragmented or not, asks for more:
	// the proxy must never decide on half a hello.
	for _, in := range [][]byte{withSNI, refragment(withSNI, 7)} {
		for i := 1; i < len(in); i++ {
			if _, err := parseSNI(in[:i]); !errors.Is(err, errNeedMore) {
				t.Fatalf("prefix %d/%d: err = %v, want errNeedMore", i, len(in), err)
			}
		}
	}
}

func FuzzParseSNI(f *testing.F) {
	f.Add(clientHello(f, &tls.Config{ServerName: "api.example.com"}))
	f.Add(refragment(clientHello(f, &tls.Config{ServerName: "x.example"}), 50))
	f.Add(clientHello(f, &tls.Config{InsecureSkipVerify: true}))
	f.Add(helloWithExtensions(sniExt("a.example", "b.example")))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := parseSNI(b)
		if err != nil {
			if name != "" {
				t.Fatalf("name %q with error %v", name, err)
			}
			return
		}
		if n, ok := normalizeName(name); !ok || n != name {
			t.Fatalf("returned name %q is not a normalized DNS name", name)
		}
		// More bytes never change a decided name: the proxy decides on a
		// prefix of what the server will read.
		if again, err := parseSNI(append(bytes.Clone(b), 23, 3, 3, 0, 1, 0)); again != name || err != nil {
			t.Fatalf("appending a record changed %q to %q, %v", name, again, err)
		}
	})
}
