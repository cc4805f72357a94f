package netwatch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwatch/agentwatch/event"
)

// decisions collects what the proxy emits.
type decisions struct {
	mu sync.Mutex
	ds []event.NetDecision
}

func (e *decisions) emit(ev event.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ds = append(e.ds, ev.(event.NetDecision))
}

// wait returns the decisions once there are n of them.
func (e *decisions) wait(t *testing.T, n int) []event.NetDecision {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		got := append([]event.NetDecision(nil), e.ds...)
		e.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("got %d decisions %+v, want %d", len(got), got, n)
			}
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allowOnly is an allowlist of exact names, any port.
func allowOnly(names ...string) func(string, int) (string, bool) {
	return func(name string, port int) (string, bool) {
		for _, n := range names {
			if n == name {
				return n, true
			}
		}
		return "", false
	}
}

// startProxy runs a proxy whose every connection was steered from dst
// (the test stands in for the connect hook's map).
func startProxy(t *testing.T, dst netip.AddrPort, enforce bool, allow ...string) (*SpliceProxy, *decisions) {
	t.Helper()
	ev := &decisions{}
	p, err := StartSplice(SpliceConfig{
		Listen:  "127.0.0.1:0",
		OrigDst: func(*net.TCPConn) (netip.AddrPort, error) { return dst, nil },
		PID:     func(*net.TCPConn) uint32 { return 4242 },
		Allow:   allowOnly(allow...),
		Enforce: enforce,
		Emit:    ev.emit,
		Timeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, ev
}

func addrOf(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func checkDecision(t *testing.T, d event.NetDecision, want event.NetDecision) {
	t.Helper()
	if d.Verdict != want.Verdict || d.Check != want.Check || d.Name != want.Name || d.Rule != want.Rule ||
		d.Addr != want.Addr || d.PID != 4242 || d.Transport != event.TCP || d.Op != event.NetConnect || d.Time.IsZero() {
		t.Fatalf("decision = %+v\nwant        %+v", d, want)
	}
}

// TestSpliceTLS: the proxy never terminates TLS — an allowed handshake
// completes against the real server's certificate, and the SNI decides.
func TestSpliceTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Host)
	}))
	defer srv.Close()
	dst := addrOf(t, srv.Listener.Addr().String())
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	tests := []struct {
		name       string
		enforce    bool
		serverName string // httptest's certificate covers example.com and *.example.com
		wantOK     bool
		want       event.NetDecision
	}{
		{"allowed enforce", true, "example.com", true,
			event.NetDecision{Verdict: event.Allow, Check: CheckSNI, Name: "example.com", Rule: "example.com", Addr: dst}},
		{"shared address other name enforce", true, "evil.example.com", false,
			event.NetDecision{Verdict: event.Deny, Check: CheckSNI, Name: "evil.example.com", Rule: RuleNotAllowed, Addr: dst}},
		{"shared address other name observe", false, "evil.example.com", true,
			event.NetDecision{Verdict: event.Audit, Check: CheckSNI, Name: "evil.example.com", Rule: RuleNotAllowed, Addr: dst}},
		{"no sni enforce", true, "", false,
			event.NetDecision{Verdict: event.Deny, Check: CheckSNI, Rule: RuleNoSNI, Addr: dst}},
		{"no sni observe", false, "", true,
			event.NetDecision{Verdict: event.Audit, Check: CheckSNI, Rule: RuleNoSNI, Addr: dst}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ev := startProxy(t, dst, tt.enforce, "example.com")
			cfg := &tls.Config{ServerName: tt.serverName, RootCAs: roots}
			if tt.serverName == "" {
				// No SNI: verify the chain by hand against the pinned cert.
				cfg.InsecureSkipVerify = true
			}
			conn, err := tls.Dial("tcp", p.Addr().String(), cfg)
			if !tt.wantOK {
				if err == nil {
					conn.Close()
					t.Fatal("handshake through the proxy succeeded, want it refused")
				}
				checkDecision(t, ev.wait(t, 1)[0], tt.want)
				return
			}
			if err != nil {
				t.Fatalf("handshake through the proxy: %v", err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(srv.Certificate()) {
				t.Fatal("the peer certificate is not the server's: the proxy must not terminate TLS")
			}
			fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", tt.serverName)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if want := "hello " + tt.serverName; string(body) != want {
				t.Fatalf("body %q, want %q", body, want)
			}
			checkDecision(t, ev.wait(t, 1)[0], tt.want)
		})
	}
}

func TestSpliceHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Host)
	}))
	defer srv.Close()
	dst := addrOf(t, srv.Listener.Addr().String())

	tests := []struct {
		name    string
		enforce bool
		host    string
		wantOK  bool
		want    event.NetDecision
	}{
		{"allowed enforce", true, "allowed.test", true,
			event.NetDecision{Verdict: event.Allow, Check: CheckHost, Name: "allowed.test", Rule: "allowed.test", Addr: dst}},
		{"allowed with port", true, "allowed.test:8080", true,
			event.NetDecision{Verdict: event.Allow, Check: CheckHost, Name: "allowed.test", Rule: "allowed.test", Addr: dst}},
		{"other host enforce", true, "evil.test", false,
			event.NetDecision{Verdict: event.Deny, Check: CheckHost, Name: "evil.test", Rule: RuleNotAllowed, Addr: dst}},
		{"other host observe", false, "evil.test", true,
			event.NetDecision{Verdict: event.Audit, Check: CheckHost, Name: "evil.test", Rule: RuleNotAllowed, Addr: dst}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ev := startProxy(t, dst, tt.enforce, "allowed.test")
			client := &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", p.Addr().String())
				},
				DisableKeepAlives: true,
			}}
			resp, err := client.Get("http://" + tt.host + "/")
			if !tt.wantOK {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request through the proxy succeeded (%s), want it refused", resp.Status)
				}
				checkDecision(t, ev.wait(t, 1)[0], tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "hello " + tt.host; string(body) != want {
				t.Fatalf("body %q, want %q", body, want)
			}
			checkDecision(t, ev.wait(t, 1)[0], tt.want)
		})
	}
}

// bannerServer speaks first, then echoes: what a server-first protocol on
// an inspected port looks like.
func bannerServer(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "BANNER\n")
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestSpliceUnnamed: what happens when the first bytes carry no name.
func TestSpliceUnnamed(t *testing.T) {
	dst := bannerServer(t)
	tests := []struct {
		name      string
		enforce   bool
		send      string // "" sends nothing (waits past the timeout)
		halfClose bool
		wantOK    bool
		want      *event.NetDecision
	}{
		{"unknown protocol enforce", true, "SSH-2.0-x\r\n", false, false,
			&event.NetDecision{Verdict: event.Deny, Check: CheckHost, Rule: RuleUnknownProtocol, Addr: dst}},
		{"unknown protocol observe", false, "SSH-2.0-x\r\n", false, true,
			&event.NetDecision{Verdict: event.Audit, Check: CheckHost, Rule: RuleUnknownProtocol, Addr: dst}},
		{"silent client enforce", true, "", false, false,
			&event.NetDecision{Verdict: event.Deny, Check: CheckHost, Rule: RuleTimeout, Addr: dst}},
		{"silent client observe gets the banner", false, "", false, true,
			&event.NetDecision{Verdict: event.Audit, Check: CheckHost, Rule: RuleTimeout, Addr: dst}},
		{"half a request then eof enforce", true, "GET / HT", true, false,
			&event.NetDecision{Verdict: event.Deny, Check: CheckHost, Rule: RuleTruncated, Addr: dst}},
		{"connect and close records nothing", true, "", true, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ev := startProxy(t, dst, tt.enforce, "allowed.test")
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(p.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.send)
			if tt.halfClose {
				c.CloseWrite()
			}
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if tt.wantOK {
				if line != "BANNER\n" {
					t.Fatalf("read %q, %v; want the server's banner", line, err)
				}
				if tt.send != "" {
					echo := make([]byte, len(tt.send))
					if _, err := io.ReadFull(r, echo); err != nil || string(echo) != tt.send {
						t.Fatalf("echo %q, %v; want the bytes the proxy peeked, forwarded", echo, err)
					}
				}
			} else if err == nil {
				t.Fatalf("read %q through the proxy, want the connection refused", line)
			}
			if tt.want == nil {
				time.Sleep(50 * time.Millisecond)
				ev.wait(t, 0)
				return
			}
			checkDecision(t, ev.wait(t, 1)[0], *tt.want)
		})
	}
}

// TestSpliceOrigin: connections the hook did not steer are refused.
func TestSpliceOrigin(t *testing.T) {
	ev := &decisions{}
	var self netip.AddrPort
	var mu sync.Mutex
	p, err := StartSplice(SpliceConfig{
		Listen: "127.0.0.1:0",
		OrigDst: func(c *net.TCPConn) (netip.AddrPort, error) {
			mu.Lock()
			defer mu.Unlock()
			if self.IsValid() {
				return self, nil
			}
			return netip.AddrPort{}, errors.New("no map entry")
		},
		Allow:   allowOnly("allowed.test"),
		Enforce: false, // refused even in observe mode: nowhere to splice to
		Emit:    ev.emit,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, wantRule := range []string{RuleNoOrigin, RuleLoop} {
		if i == 1 {
			mu.Lock()
			self = p.Addr()
			mu.Unlock()
		}
		// The reset can beat the dialer's own check of the connect result
		// on loopback: a failed Dial is a refusal too.
		if c, err := net.Dial("tcp", p.Addr().String()); err == nil {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatalf("read %d bytes, want the connection refused", n)
			}
			c.Close()
		} else if !isReset(err) {
			t.Fatal(err)
		}
		d := ev.wait(t, i+1)[i]
		if d.Verdict != event.Deny || d.Rule != wantRule {
			t.Fatalf("decision %+v, want deny %s", d, wantRule)
		}
	}
}

// TestSpliceLarge: 50 MB each way, byte for byte, and a half-close in
// between: the server sees the client's EOF only through the proxy's
// CloseWrite, and answers after it. Behind a ClientHello both directions
// splice(2); behind an HTTP head the upload goes through the request
// framing (Content-Length).
func TestSpliceLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB each way")
	}
	const size = 50 << 20
	for _, tt := range []struct {
		name string
		head []byte
	}{
		{"tls", clientHello(t, &tls.Config{ServerName: "allowed.test"})},
		{"http content-length", []byte(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: %d\r\n\r\n", size))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			type result struct {
				n   int64
				sum [32]byte
				err error
			}
			got := make(chan result, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- result{err: err}
					return
				}
				defer c.Close()
				h := sha256.New()
				n, err := io.Copy(h, c) // until the client's half-close arrives
				var r result
				r.n, r.err = n, err
				copy(r.sum[:], h.Sum(nil))
				got <- r
				io.Copy(c, io.LimitReader(rand.NewChaCha8([32]byte{2}), size))
			}()
			p, ev := startProxy(t, ln.Addr().(*net.TCPAddr).AddrPort(), true, "allowed.test")

			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(p.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			sent := sha256.New()
			upload := io.MultiReader(bytes.NewReader(tt.head), io.LimitReader(rand.NewChaCha8([32]byte{1}), size))
			if _, err := io.Copy(io.MultiWriter(c, sent), upload); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.err != nil || r.n != int64(len(tt.head)+size) || r.sum != [32]byte(sent.Sum(nil)) {
				t.Fatalf("server received %d bytes (err %v), want %d identical bytes", r.n, r.err, len(tt.head)+size)
			}
			recv := sha256.New()
			n, err := io.Copy(recv, c)
			want := sha256.New()
			io.Copy(want, io.LimitReader(rand.NewChaCha8([32]byte{2}), size))
			if err != nil || n != size || !bytes.Equal(recv.Sum(nil), want.Sum(nil)) {
				t.Fatalf("client received %d bytes (err %v), want %d identical bytes", n, err, size)
			}
			if d := ev.wait(t, 1)[0]; d.Verdict != event.Allow || d.Name != "allowed.test" {
				t.Fatalf("decision %+v", d)
			}
		})
	}
}

// TestSpliceClose: Close ends live spliced connections.
func TestSpliceClose(t *testing.T) {
	dst := bannerServer(t)
	p, _ := startProxy(t, dst, true, "allowed.test")
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); line != "BANNER\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a live connection")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// The echo of the request is still queued; after it, the end.
	if _, err := io.ReadAll(r); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading after Close: %v, want EOF or reset", err)
	}
	if _, err := net.Dial("tcp", p.Addr().String()); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// BenchmarkSpliceConnect: connection setup plus one small request and
// response, direct and through the proxy, on loopback. The difference is
// the per-connection latency the splice check adds.
func BenchmarkSpliceConnect(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				io.WriteString(c, resp)
			}()
		}
	}()
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	p, err := StartSplice(SpliceConfig{
		Listen:  "127.0.0.1:0",
		OrigDst: func(*net.TCPConn) (netip.AddrPort, error) { return dst, nil },
		Allow:   allowOnly("allowed.test"),
		Enforce: true,
		Emit:    func(event.Event) {},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	round := func(b *testing.B, addr string) {
		buf := make([]byte, 256)
		for b.Loop() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Write(req)
			n, _ := io.ReadFull(c, buf[:len(resp)])
			c.Close()
			if n != len(resp) {
				b.Fatalf("short response: %q", buf[:n])
			}
		}
	}
	b.Run("direct", func(b *testing.B) { round(b, dst.String()) })
	b.Run("splice", func(b *testing.B) { round(b, p.Addr().String()) })
}

// TestSpliceIPv6: the same check over IPv6 loopback (a proxy per family).
func TestSpliceIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "v6")
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.StartTLS()
	defer srv.Close()
	dst := addrOf(t, ln.Addr().String())
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	for _, tt := range []struct {
		serverName string
		wantOK     bool
		verdict    event.Verdict
	}{
		{"example.com", true, event.Allow},
		{"evil.example.com", false, event.Deny},
	} {
		t.Run(tt.serverName, func(t *testing.T) {
			ev := &decisions{}
			p, err := StartSplice(SpliceConfig{
				Listen:  "[::1]:0",
				OrigDst: func(*net.TCPConn) (netip.AddrPort, error) { return dst, nil },
				Allow:   allowOnly("example.com"),
				Enforce: true,
				Emit:    ev.emit,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			client := &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots},
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", p.Addr().String())
				},
			}}
			resp, err := client.Get("https://" + tt.serverName + "/")
			if (err == nil) != tt.wantOK {
				t.Fatalf("GET through the proxy: err %v, want ok=%v", err, tt.wantOK)
			}
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != "v6" {
					t.Fatalf("body %q", body)
				}
			}
			d := ev.wait(t, 1)[0]
			if d.Verdict != tt.verdict || d.Name != tt.serverName || d.Addr != dst || !d.Addr.Addr().Is6() {
				t.Fatalf("decision %+v", d)
			}
		})
	}
}

// TestSpliceServerHalfClose: the server finishes first; the client keeps
// sending after reading the server's EOF, and the server still gets it.
func TestSpliceServerHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		io.WriteString(c, "bye")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	p, _ := startProxy(t, ln.Addr().(*net.TCPAddr).AddrPort(), true, "allowed.test")
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	head := "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
	io.WriteString(c, head)
	if b, err := io.ReadAll(c); err != nil || string(b) != "bye" {
		t.Fatalf("client read %q, %v; want the server's bytes then EOF", b, err)
	}
	next := "GET /2 HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
	io.WriteString(c, next)
	c.CloseWrite()
	if s := <-got; s != head+next {
		t.Fatalf("server read %q, want the request and the bytes sent after its EOF", s)
	}
}

// TestSpliceHTTPKeepAlive: on plain HTTP each request names its host, and
// a CDN routes each by it; a later request on a connection opened for an
// allowed name is checked like the first, and bytes inside bodies are
// never taken for a request.
func TestSpliceHTTPKeepAlive(t *testing.T) {
	var mu sync.Mutex
	var served []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		served = append(served, r.Host)
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	dst := addrOf(t, srv.Listener.Addr().String())

	get := func(host string) string { return "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n" }
	hidden := get("evil.test")
	chunked := fmt.Sprintf("POST /c HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n%x;ext=1\r\n%s\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n", len(hidden), hidden)
	type dec struct {
		v    event.Verdict
		name string
		rule string
	}
	tests := []struct {
		name       string
		enforce    bool
		send       []string // written one by one
		wantServed []string // hosts the server handled, in order
		wantDecs   []dec
	}{
		{"same host again is not recorded again", true,
			[]string{get("allowed.test"), get("allowed.test"), get("allowed.test:80")},
			[]string{"allowed.test", "allowed.test", "allowed.test:80"},
			[]dec{{event.Allow, "allowed.test", "allowed.test"}}},
		{"second request for another host enforce", true,
			[]string{get("allowed.test"), get("evil.test")},
			[]string{"allowed.test"},
			[]dec{{event.Allow, "allowed.test", "allowed.test"}, {event.Deny, "evil.test", RuleNotAllowed}}},
		{"pipelined in one write enforce", true,
			[]string{get("allowed.test") + get("evil.test")},
			[]string{"allowed.test"},
			[]dec{{event.Allow, "allowed.test", "allowed.test"}, {event.Deny, "evil.test", RuleNotAllowed}}},
		{"second request for another host observe", false,
			[]string{get("allowed.test"), get("evil.test"), get("allowed.test")},
			[]string{"allowed.test", "evil.test", "allowed.test"},
			[]dec{{event.Allow, "allowed.test", "allowed.test"}, {event.Audit, "evil.test", RuleNotAllowed}, {event.Allow, "allowed.test", "allowed.test"}}},
		{"request in a content-length body", true,
			[]string{fmt.Sprintf("POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: %d\r\n\r\n%s", len(hidden), hidden), get("allowed.test")},
			[]string{"allowed.test", "allowed.test"},
			[]dec{{event.Allow, "allowed.test", "allowed.test"}}},
		{"request in a chunked body, split mid-chunk", true,
			[]string{chunked[:90], chunked[90:], get("allowed.test")},
			[]string{"allowed.test", "allowed.test"},
			[]dec{{event.Allow, "allowed.test", "allowed.test"}}},
		{"content-length with transfer-encoding enforce", true,
			[]string{"POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
			nil,
			[]dec{{event.Allow, "allowed.test", "allowed.test"}, {event.Deny, "", RuleMalformedHTTP}}},
		{"junk after a request enforce", true,
			[]string{get("allowed.test"), "\x16\x03\x01junk\r\n"},
			[]string{"allowed.test"},
			[]dec{{event.Allow, "allowed.test", "allowed.test"}, {event.Deny, "", RuleUnknownProtocol}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			served = nil
			mu.Unlock()
			p, ev := startProxy(t, dst, tt.enforce, "allowed.test")
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(p.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(c)
			responses := 0
			for _, s := range tt.send {
				if _, err := io.WriteString(c, s); err != nil {
					break
				}
				// Read the response to a write that completes a request
				// before sending the next, except in the pipelining case.
				if !strings.Contains(tt.name, "pipelined") && strings.HasSuffix(s, "\r\n\r\n") {
					resp, err := http.ReadResponse(r, nil)
					if err != nil {
						break
					}
					io.Copy(io.Discard, resp.Body)
					responses++
				}
			}
			c.CloseWrite()
			io.Copy(io.Discard, r)
			got := ev.wait(t, len(tt.wantDecs))
			for i, w := range tt.wantDecs {
				if d := got[i]; d.Verdict != w.v || d.Name != w.name || d.Rule != w.rule || d.Check != CheckHost || d.Addr != dst || d.PID != 4242 {
					t.Errorf("decision %d = %+v, want %+v", i, d, w)
				}
			}
			time.Sleep(20 * time.Millisecond) // a handler still running would add to served
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(served, ",") != strings.Join(tt.wantServed, ",") {
				t.Errorf("server handled %q, want %q", served, tt.wantServed)
			}
		})
	}
}
