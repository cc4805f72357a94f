package store

// PostgreSQL as the store: the fleet's database, a server the platform
// team runs, which runners record into (run --store URL) or sync into
// (agentwatch sync --to URL). The schema, the API and the answers are the
// SQLite store's; what differs is kept here and in dialect.go.
//
// The driver is pgx (its database/sql adapter). Connection trouble (an
// unreachable server, refused credentials, a missing database, a server
// that went away) is one line naming the server and the cause
// (ServerError); no message ever carries the URL's password (Redact).

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgMigrations are migrations for PostgreSQL: the same tables, columns,
// keys and indexes as migrations (TestSchemasMatch compares the two
// schemas, so a migration cannot land in one list only), with
// PostgreSQL's types: BIGINT for every *_ns column and for counts that can
// pass 2^31 (sizes, tokens), BYTEA for blobs, DOUBLE PRECISION for REAL.
// Migrations 6 and on are written once for both databases.
var pgMigrations = []string{
	`CREATE TABLE runs (
		id           TEXT PRIMARY KEY,
		trace_id     TEXT NOT NULL,
		start_ns     BIGINT NOT NULL,
		end_ns       BIGINT NOT NULL,
		command      TEXT NOT NULL,
		agent        TEXT NOT NULL,
		exit_code    INTEGER,
		span_count   INTEGER NOT NULL,
		exported     INTEGER NOT NULL DEFAULT 0,
		export_error TEXT NOT NULL DEFAULT '',
		created_ns   BIGINT NOT NULL,
		trace        BYTEA NOT NULL
	);
	CREATE INDEX runs_start ON runs(start_ns DESC);
	CREATE INDEX runs_trace_id ON runs(trace_id);`,
	`CREATE TABLE artifacts (
		run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		name       TEXT NOT NULL,
		sha256     TEXT NOT NULL,
		size       BIGINT NOT NULL,
		created_ns BIGINT NOT NULL,
		content    BYTEA NOT NULL,
		PRIMARY KEY (run_id, name)
	);`,
	`CREATE TABLE annotations (
		run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		seq           INTEGER NOT NULL,
		created_ns    BIGINT NOT NULL,
		review        TEXT NOT NULL,
		reviewer      TEXT NOT NULL,
		failure_class TEXT NOT NULL DEFAULT '',
		pr_url        TEXT NOT NULL DEFAULT '',
		ci_run_url    TEXT NOT NULL DEFAULT '',
		note          TEXT NOT NULL DEFAULT '',
		exported      INTEGER NOT NULL DEFAULT 0,
		export_error  TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (run_id, seq)
	);`,
	`CREATE TABLE IF NOT EXISTS run_costs (
		run_id        TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		cost_usd      DOUBLE PRECISION,
		input_tokens  BIGINT,
		output_tokens BIGINT
	);`,
	`CREATE TABLE IF NOT EXISTS run_status (
		run_id  TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
		status  TEXT NOT NULL,
		reason  TEXT NOT NULL DEFAULT ''
	);
	INSERT INTO run_status (run_id, status) SELECT id, 'complete' FROM runs ON CONFLICT (run_id) DO NOTHING;`,
	factsSchema,
	syncSchema,
}

// migrationLock is the pg_advisory_xact_lock key migrations hold: the
// bytes of "agentwat".
const migrationLock int64 = 0x6167656e74776174

// IsURL reports whether a --store value names a PostgreSQL database (a
// postgres:// or postgresql:// URL) rather than a directory.
func IsURL(location string) bool {
	l := strings.ToLower(location)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// Redact is a store location fit to print: a URL without its password
// (the user part's, and a password= or sslpassword= parameter); a
// directory as it is.
func Redact(location string) string {
	if !IsURL(location) {
		return location
	}
	u, err := url.Parse(location)
	if err != nil {
		// Malformed: keep the scheme, the user name and the host; drop
		// anything that could be a password, and the parameters.
		scheme, rest, _ := strings.Cut(location, "://")
		if i := strings.IndexAny(rest, "?#"); i >= 0 {
			rest = rest[:i]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, _, _ := strings.Cut(rest[:at], ":")
			rest = user + "@" + rest[at+1:]
		}
		return scheme + "://" + rest
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.User(u.User.Username())
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
				q.Del(k)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// Key names a store location in local bookkeeping (the journal directory
// of a URL store, what sync recorded a target has): a URL without its
// password, scheme postgres://; a directory as it is.
func Key(location string) string {
	r := Redact(location)
	if rest, ok := cutPrefixFold(r, "postgresql://"); ok {
		return "postgres://" + rest
	}
	if rest, ok := cutPrefixFold(r, "postgres://"); ok {
		return "postgres://" + rest
	}
	return r
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// passwords are the secrets a URL carries, to scrub from messages that
// are not ours (a driver's).
func passwords(location string) []string {
	var out []string
	if u, err := url.Parse(location); err == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p)
		}
		for k, vs := range u.Query() {
			if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
				for _, v := range vs {
					if v != "" {
						out = append(out, v)
					}
				}
			}
		}
		return out
	}
	_, rest, _ := strings.Cut(location, "://")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if _, p, ok := strings.Cut(rest[:at], ":"); ok && p != "" {
			out = append(out, p)
		}
	}
	return out
}

// pgServer is what messages say about the server of a PostgreSQL store.
type pgServer struct {
	host    string   // host:port (the first, when the URL lists several)
	secrets []string // the URL's passwords, scrubbed from every message
}

// ErrServer is wrapped by the errors of a PostgreSQL store whose server
// cannot be reached or used (ServerError).
var ErrServer = errors.New("PostgreSQL server unavailable")

// ServerError is connection trouble with a PostgreSQL store's server, as
// one line: the server and the cause.
type ServerError struct {
	Host  string // host:port
	Cause string // "connection refused", `database "x" does not exist (SQLSTATE 3D000)`, …
	Err   error
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("PostgreSQL server %s: %s", e.Host, e.Cause)
}

func (e *ServerError) Unwrap() error { return e.Err }

func (e *ServerError) Is(target error) bool { return target == ErrServer }

// openPostgres connects to the database at location, migrates it (when
// migrate) and backfills facts. The connection is tried at once: a
// store that cannot be used fails here, before a run starts.
func openPostgres(location string, migrate bool) (*Store, error) {
	srv := &pgServer{secrets: passwords(location)}
	cfg, err := pgx.ParseConfig(location)
	if err != nil {
		msg := oneLine(err.Error())
		if i := strings.Index(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i > 0 {
			msg = msg[i+3:] // pgx's prefix repeats the URL
		}
		return nil, fmt.Errorf("store URL %s: %s", Redact(location), srv.scrubText(msg))
	}
	srv.host = net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		srv.host = cfg.Host // a Unix socket directory
	}
	if cfg.ConnectTimeout == 0 {
		// An unreachable host (packets dropped) fails in seconds, not
		// after the kernel's minutes of retries.
		cfg.ConnectTimeout = 10 * time.Second
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "agentwatch"
	}
	db := stdlib.OpenDB(*cfg)
	// Few connections per process: a runner saves one run at a time,
	// and the server's connections are the fleet's. Idle ones are let go
	// within a minute, so a run of hours saves over a fresh connection,
	// not one a firewall forgot.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	s := &Store{db: conn{db, pgDialect}, d: pgDialect, path: Redact(location), pg: srv, readOnly: !migrate, key: Key(location)}
	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, srv.explain(err)
	}
	if !migrate {
		var v int
		err := db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table: nothing stored yet
			s.fresh = true
		case err != nil:
			db.Close()
			return nil, srv.explain(err)
		case v != len(pgMigrations):
			db.Close()
			return nil, fmt.Errorf("store %s: schema version %d, this agentwatch reads %d (open it writable once to migrate)", s.path, v, len(pgMigrations))
		}
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating store %s: %w", s.path, srv.explain(err))
	}
	_ = s.backfillFacts(ctx, openBackfill)
	return s, nil
}

// explain turns connection trouble into a ServerError; any other error
// passes, with the URL's passwords scrubbed from its text.
func (p *pgServer) explain(err error) error {
	if err == nil {
		return nil
	}
	var se *ServerError
	if errors.As(err, &se) {
		return err
	}
	if cause, ok := connectionTrouble(err); ok {
		se := &ServerError{Host: p.host, Cause: p.scrubText(cause), Err: err}
		if prefix := contextPrefix(err); prefix != "" {
			// "saving run X: " stays in front of the server's line.
			return &scrubbed{msg: p.scrubText(prefix) + se.Error(), err: se}
		}
		return se
	}
	return p.scrub(err)
}

// contextPrefix is what the store's own wrapping (fmt.Errorf with %w)
// put in front of the driver's error: "saving run X: ".
func contextPrefix(err error) string {
	e := err
	for fmt.Sprintf("%T", e) == "*fmt.wrapError" {
		e = errors.Unwrap(e)
	}
	if e == err || e == nil {
		return ""
	}
	prefix, ok := strings.CutSuffix(err.Error(), e.Error())
	if !ok {
		return ""
	}
	return prefix
}

// connectionTrouble says, in a few words, why the server could not be
// used, when that is what err is.
func connectionTrouble(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08 connection exception, 28 invalid authorization (bad
		// password, unknown role), 3D invalid catalog name (no such
		// database), 53 insufficient resources (too many connections),
		// 57P operator intervention (shutdown, starting up).
		c := pgErr.Code
		if strings.HasPrefix(c, "08") || strings.HasPrefix(c, "28") || strings.HasPrefix(c, "3D") ||
			strings.HasPrefix(c, "53") || strings.HasPrefix(c, "57P") {
			return fmt.Sprintf("%s (SQLSTATE %s)", oneLine(pgErr.Message), c), true
		}
		return "", false
	}
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return "cannot resolve host " + dnsErr.Name + ": " + dnsErr.Err, true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the server running, and listening there?)", true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "the connection was reset", true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable", true
	case errors.Is(err, syscall.ENOENT) && errors.As(err, new(*net.OpError)):
		return "no server socket there", true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, driver.ErrBadConn):
		return "the server closed the connection", true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), pgconn.Timeout(err):
		return "no answer within the connect timeout", true
	}
	var ce *pgconn.ConnectError
	var oe *net.OpError
	if errors.As(err, &ce) || errors.As(err, &oe) {
		// The innermost cause, without pgx's prefix.
		inner := err
		for u := errors.Unwrap(inner); u != nil; u = errors.Unwrap(inner) {
			inner = u
		}
		return oneLine(inner.Error()), true
	}
	return "", false
}

// scrub returns err with the URL's passwords replaced in its text.
func (p *pgServer) scrub(err error) error {
	msg := err.Error()
	if clean := p.scrubText(msg); clean != msg {
		return &scrubbed{msg: clean, err: err}
	}
	return err
}

func (p *pgServer) scrubText(s string) string {
	for _, pw := range p.secrets {
		s = strings.ReplaceAll(s, pw, "xxxxx")
	}
	return s
}

// scrubbed is an error whose text had a password taken out; errors.Is
// and As still see what it wraps.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// ErrNotSQLite is returned by what only a SQLite store has (Repair).
var ErrNotSQLite = errors.New("applies to SQLite stores (directories) only")

// pgCheck is Check for PostgreSQL: the server answers and the runs are
// counted (the server keeps its own pages intact; amcheck is the DBA's).
func (s *Store) pgCheck(ctx context.Context) (int, error) {
	if s.fresh {
		return 0, nil
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM runs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("checking store %s: %w", s.path, s.corrupt(err))
	}
	return n, nil
}
