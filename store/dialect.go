package store

// The two databases a store can live in. The store's SQL is written once,
// with ? placeholders, in what SQLite and PostgreSQL both accept: INSERT …
// ON CONFLICT … DO UPDATE / DO NOTHING (never INSERT OR REPLACE), no
// LIMIT -1, no rowid outside repair.go. What still differs is held here:
// the placeholders (PostgreSQL's $1, $2, …: rebind), row locks (SQLite
// locks the whole database from BEGIN, _txlock=immediate; PostgreSQL
// needs FOR UPDATE), byte-wise ordering of text (SQLite's BINARY
// collation; PostgreSQL's database collation may be a locale's, so ids
// are ordered COLLATE "C" to list in the same order everywhere), and what
// TEXT takes (PostgreSQL: valid UTF-8 without NUL; pgText). The
// schema is the one place with two texts: migrations and pgMigrations
// (postgres.go), compared by TestSchemasMatch.

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

type dialect struct {
	name string // "sqlite" or "postgres"
	// rebind turns the ? placeholders of a query into the database's.
	rebind func(string) string
	// forUpdate is appended to a SELECT that must lock the rows it reads
	// until the transaction ends ("" on SQLite: BEGIN took the lock).
	forUpdate string
	// skipLocked is forUpdate for a work queue: rows another transaction
	// holds are skipped, not waited for.
	skipLocked string
	// collateC follows a text column in ORDER BY: byte order.
	collateC string
	// text makes a string argument storable (nil: any bytes are).
	text func(string) string
}

var (
	sqliteDialect = &dialect{name: "sqlite", rebind: func(q string) string { return q }}
	pgDialect     = &dialect{name: "postgres", rebind: dollarPlaceholders,
		forUpdate: " FOR UPDATE", skipLocked: " FOR UPDATE SKIP LOCKED", collateC: ` COLLATE "C"`, text: pgText}
)

// pgText is s as PostgreSQL's TEXT takes it: valid UTF-8 without NUL.
// SQLite keeps any bytes; a run's strings are UTF-8 already (the trace is
// protobuf), but an annotation's note or a collector's reply in an export
// error need not be. Each byte PostgreSQL would refuse becomes 0x1A
// (SUB), so lengths are kept and the packed facts (length-prefixed
// strings) stay readable.
func pgText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	b := []byte(s)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == 0 || (r == utf8.RuneError && n == 1) {
			b[i] = 0x1a
			i++
			continue
		}
		i += n
	}
	return string(b)
}

// args applies the dialect's text rule to a query's arguments.
func (d *dialect) args(args []any) []any {
	if d.text == nil {
		return args
	}
	var out []any
	for i, a := range args {
		if s, ok := a.(string); ok {
			if t := d.text(s); t != s {
				if out == nil {
					out = slices.Clone(args)
				}
				out[i] = t
			}
		}
	}
	if out == nil {
		return args
	}
	return out
}

// byText is an ORDER BY term for a text column in byte order.
func (d *dialect) byText(col string) string { return col + d.collateC }

// dollarPlaceholders rewrites each ? outside quoted text as $1, $2, ….
func dollarPlaceholders(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// conn is the store's database with the dialect's placeholders: its
// methods shadow *sql.DB's and rebind every query, so the store's SQL
// reads the same for both databases.
type conn struct {
	*sql.DB
	d *dialect
}

func (c conn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.DB.ExecContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

func (c conn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return c.DB.QueryContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

func (c conn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return c.DB.QueryRowContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

// QueryRow and Exec without a context (tests, PRAGMAs).
func (c conn) QueryRow(q string, args ...any) *sql.Row {
	return c.DB.QueryRowContext(context.Background(), c.d.rebind(q), c.d.args(args)...)
}

func (c conn) Exec(q string, args ...any) (sql.Result, error) {
	return c.DB.ExecContext(context.Background(), c.d.rebind(q), c.d.args(args)...)
}

func (c conn) BeginTx(ctx context.Context, opts *sql.TxOptions) (*tx, error) {
	t, err := c.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &tx{Tx: t, d: c.d}, nil
}

// tx is a transaction of conn, rebinding likewise.
type tx struct {
	*sql.Tx
	d *dialect
}

func (t *tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.d.rebind(q), t.d.args(args)...)
}

func (t *tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.d.rebind(q), t.d.args(args)...)
}

func (t *tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.d.rebind(q), t.d.args(args)...)
}
