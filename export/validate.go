package export

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc/grpclog"
)

// The exporter clients and gRPC log what they cannot parse or reach to
// stderr, raw and several lines long (an unparsable header is logged with
// its value: a secret). agentwatch prints one line per failure, from the
// errors Upload returns, and Validate refuses bad settings before a run, so
// these loggers have nothing to add. grpclog must be replaced in an init
// function, before any gRPC use.
func init() {
	otel.SetLogger(quietLogger)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
}

var quietLogger = logr.Discard()

// envPrefix is the namespace of the OTLP exporter variables; every one is
// read twice, generic then traces-specific (the latter wins).
const envPrefix = "OTEL_EXPORTER_OTLP_"

// ConfigError is a bad OTLP setting: which one, and why. Its message never
// contains a header value.
type ConfigError struct {
	Setting string // "--otlp-endpoint" or the variable's name
	msg     string
}

func (e *ConfigError) Error() string { return e.Setting + " " + e.msg }

func settingErr(setting, format string, args ...any) error {
	return &ConfigError{Setting: setting, msg: fmt.Sprintf(format, args...)}
}

// Validate checks every setting an Upload with c would use — c itself and
// the OTEL_EXPORTER_OTLP_* / OTEL_EXPORTER_OTLP_TRACES_* variables the
// exporter clients read — and returns the first bad one as a *ConfigError,
// e.g. `OTEL_EXPORTER_OTLP_ENDPOINT "::bad": not a URL (want
// http://host:port or https://host:port)`. The exporter clients would log
// such a value and carry on with a default (TLS to localhost:4318); a run
// must not start on that. Nothing to check when no export is configured.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	if c.Timeout < 0 {
		return settingErr("export timeout", "%s: want a positive duration", c.Timeout)
	}
	if c.MaxRequestBytes < 0 {
		return settingErr("export request limit", "%d: want a positive size", c.MaxRequestBytes)
	}
	if c.Endpoint != "" {
		if _, err := parseEndpoint(c.Endpoint); err != nil {
			return err
		}
	} else {
		// The flag, when given, replaces both endpoint variables.
		for _, k := range []string{"ENDPOINT", "TRACES_ENDPOINT"} {
			if err := checkEnvEndpoint(envPrefix + k); err != nil {
				return err
			}
		}
	}
	for _, k := range []string{"", "TRACES_"} {
		checks := []struct {
			name  string
			check func(string) error
		}{
			{"PROTOCOL", checkEnvProtocol},
			{"HEADERS", checkEnvHeaders},
			{"INSECURE", checkEnvBool},
			{"COMPRESSION", checkEnvCompression},
			{"TIMEOUT", checkEnvTimeout},
			{"CERTIFICATE", checkEnvCertificate},
		}
		for _, ch := range checks {
			if err := ch.check(envPrefix + k + ch.name); err != nil {
				return err
			}
		}
		if err := checkEnvClientCert(envPrefix+k+"CLIENT_CERTIFICATE", envPrefix+k+"CLIENT_KEY"); err != nil {
			return err
		}
	}
	_, err := resolve(c)
	return err
}

// getenv is a variable as the exporter clients read it: trimmed, and
// unset when empty.
func getenv(name string) (string, bool) {
	v := strings.TrimSpace(os.Getenv(name))
	return v, v != ""
}

// checkEnvEndpoint holds an endpoint variable to what the exporter clients
// parse correctly: a URL with scheme http or https (which also selects
// plaintext or TLS for gRPC), a host and a numeric port if any.
func checkEnvEndpoint(name string) error {
	v, ok := getenv(name)
	if !ok {
		return nil
	}
	const want = "(want http://host:port or https://host:port)"
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" {
		return settingErr(name, "%q: not a URL %s", showEndpoint(v), want)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return settingErr(name, "%q: no scheme %s", showEndpoint(v), want)
	default:
		return settingErr(name, "%q: scheme %s is not supported %s", showEndpoint(v), u.Scheme, want)
	}
	if err := checkHostPort(u.Hostname(), u.Port(), strings.HasSuffix(u.Host, ":")); err != nil {
		return settingErr(name, "%q: %v", showEndpoint(v), err)
	}
	if u.User != nil {
		return settingErr(name, "%q: credentials in the URL are not sent; use %sHEADERS", showEndpoint(v), envPrefix)
	}
	return nil
}

// checkHostPort: a host name or address, and a port 1-65535 if given.
func checkHostPort(host, port string, emptyPort bool) error {
	if host == "" {
		return errors.New("no host")
	}
	if emptyPort && port == "" {
		return errors.New("empty port")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	return nil
}

// showEndpoint is an endpoint fit for an error message: user info (a
// password) is masked.
func showEndpoint(v string) string {
	at := strings.LastIndex(v, "@")
	if at < 0 {
		return v
	}
	start := 0
	if i := strings.Index(v, "://"); i >= 0 && i < at {
		start = i + 3
	}
	return v[:start] + "***" + v[at:]
}

func checkEnvProtocol(name string) error {
	v, ok := getenv(name)
	if !ok {
		return nil
	}
	return checkProtocol(name, v)
}

func checkProtocol(setting, v string) error {
	switch v {
	case ProtocolGRPC, ProtocolHTTP:
		return nil
	case "http/json":
		return settingErr(setting, "%q: not supported by agentwatch's OTLP client; use http/protobuf or grpc", v)
	}
	return settingErr(setting, "%q: unknown OTLP protocol (want grpc or http/protobuf)", v)
}

// checkEnvHeaders parses as the exporter clients do (key=value pairs,
// comma-separated, values URL-encoded), naming an entry by its position:
// a header line is a credential, its name may be one pasted by mistake.
func checkEnvHeaders(name string) error {
	v, ok := getenv(name)
	if !ok {
		return nil
	}
	entries := strings.Split(v, ",")
	for i, e := range entries {
		if strings.TrimSpace(e) == "" {
			continue // "a=b," — nothing to send, nothing lost
		}
		key, val, found := strings.Cut(e, "=")
		where := fmt.Sprintf("entry %d of %d", i+1, len(entries))
		switch {
		case !found:
			return settingErr(name, "%s has no '=' (want key=value[,key=value...]; values not shown)", where)
		case !isHeaderName(strings.TrimSpace(key)):
			return settingErr(name, "%s: the name is not a valid HTTP header name (values not shown)", where)
		}
		if _, err := url.PathUnescape(val); err != nil {
			return settingErr(name, "%s: the value has a bad %%-escape (values not shown)", where)
		}
	}
	return nil
}

// isHeaderName is RFC 9110's token, as the exporter clients check it.
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c > unicode.MaxASCII || !(unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

// checkEnvBool: the clients take anything but "true" as false; a "1" or
// "yes" meant as true would silently send over TLS to a plaintext port.
func checkEnvBool(name string) error {
	v, ok := getenv(name)
	if !ok || strings.EqualFold(v, "true") || strings.EqualFold(v, "false") {
		return nil
	}
	return settingErr(name, "%q: want true or false", v)
}

func checkEnvCompression(name string) error {
	v, ok := getenv(name)
	if !ok || v == "gzip" || v == "none" {
		return nil
	}
	return settingErr(name, "%q: want gzip or none", v)
}

func checkEnvTimeout(name string) error {
	v, ok := getenv(name)
	if !ok {
		return nil
	}
	if n, err := strconv.Atoi(v); err != nil || n < 0 {
		return settingErr(name, "%q: want a whole number of milliseconds, e.g. 10000", v)
	}
	return nil
}

func checkEnvCertificate(name string) error {
	v, ok := getenv(name)
	if !ok {
		return nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return settingErr(name, "%q: %s", v, fileCause(err))
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return settingErr(name, "%q: no PEM certificate in the file", v)
	}
	return nil
}

func checkEnvClientCert(certVar, keyVar string) error {
	cert, okc := getenv(certVar)
	key, okk := getenv(keyVar)
	switch {
	case !okc && !okk:
		return nil
	case !okk:
		return settingErr(certVar, "is set without %s", keyVar)
	case !okc:
		return settingErr(keyVar, "is set without %s", certVar)
	}
	cb, err := os.ReadFile(cert)
	if err != nil {
		return settingErr(certVar, "%q: %s", cert, fileCause(err))
	}
	kb, err := os.ReadFile(key)
	if err != nil {
		return settingErr(keyVar, "%q: %s", key, fileCause(err))
	}
	if _, err := tls.X509KeyPair(cb, kb); err != nil {
		// tls's messages name the problem, never the key's bytes.
		return settingErr(keyVar, "%q: not a key for the certificate in %s (%v)", key, certVar, err)
	}
	return nil
}

// fileCause is the reason a file could not be read, without the path
// os.PathError repeats.
func fileCause(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
