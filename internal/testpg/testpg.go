// Package testpg gives integration tests an isolated place in the real
// PostgreSQL named by PG_DSN: a fresh schema (or database) per test, dropped
// when the test ends. Tests fail, not skip, when PostgreSQL is unreachable:
// a suite that silently skips its integration half proves nothing.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// DefaultDSN is used when PG_DSN is not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DSN is the server under test.
func DSN() string {
	if d := os.Getenv("PG_DSN"); d != "" {
		return d
	}
	return DefaultDSN
}

// RandName returns prefix plus a random suffix, safe as an identifier.
func RandName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// DB is an isolated schema with a pool whose search_path points at it.
type DB struct {
	// DSN connects with search_path set to Schema.
	DSN    string
	Schema string
	Pool   *pgxpool.Pool
}

// NewSchema creates a schema for this test and returns a pool bound to it.
func NewSchema(t testing.TB) *DB {
	t.Helper()
	return NewSchemaOn(t, DSN())
}

// NewSchemaOn is NewSchema on the server at server.
func NewSchemaOn(t testing.TB, server string) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	require.NoError(t, err, "PostgreSQL at PG_DSN must be reachable for integration tests")
	defer admin.Close(context.Background())
	schema := RandName("t_")
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+pgutil.QuoteIdent(schema))
	require.NoError(t, err)
	dsn := WithParam(server, "search_path", schema)
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(ctx, "DROP SCHEMA "+pgutil.QuoteIdent(schema)+" CASCADE")
	})
	return &DB{DSN: dsn, Schema: schema, Pool: pool}
}

// WithParam adds or replaces a query parameter of a URL DSN.
func WithParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// Exec runs SQL and fails the test on error.
func (d *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := d.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

// Int returns a single integer from a query.
func (d *DB) Int(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, d.Pool.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// String returns a single text value from a query.
func (d *DB) String(t testing.TB, sql string, args ...any) string {
	t.Helper()
	var s string
	require.NoError(t, d.Pool.QueryRow(context.Background(), sql, args...).Scan(&s), sql)
	return s
}

// Checksum returns count and an order-independent content hash of a
// relation: every column, as text, so numeric scale and timestamp precision
// count. Two tables with equal checksums hold the same rows.
func (d *DB) Checksum(t testing.TB, table string) (int64, string) {
	t.Helper()
	var n int64
	var sum string
	q := "SELECT count(*), coalesce(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '') FROM " + table + " AS x"
	require.NoError(t, d.Pool.QueryRow(context.Background(), q).Scan(&n, &sum), q)
	return n, sum
}
