package pgsource_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pgsource"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
)

func readAll(t *testing.T, r *pgsource.Reader) []*pgsource.Page {
	t.Helper()
	var pages []*pgsource.Page
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		p, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return pages
		}
		require.NoError(t, err)
		pages = append(pages, p)
	}
}

func TestTypesSurviveExactly(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, amount numeric(20,4), big numeric, at timestamptz, ts timestamp,
		d date, ok boolean, n int, s smallint, f double precision, u uuid, j jsonb, arr int[], txt text, addr inet, iv interval)`)
	db.Exec(t, `INSERT INTO t VALUES
		(1, 12345678901234.5678, 123456789012345678901234567890.000000001, '2024-02-29 23:59:59.123456+00', '2024-01-01 10:00:00',
		 '1999-12-31', true, -5, 7, 1.5, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, "x"]}', '{1,2}', 'héllo', '10.0.0.1', '1 day 02:00:00'),
		(2, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	r, err := pgsource.Open(context.Background(), pgsource.Config{DSN: db.DSN, Table: "t", KeyColumn: "id", PageSize: 10})
	require.NoError(t, err)
	defer r.Close()
	pages := readAll(t, r)
	require.Len(t, pages, 1)
	row := pages[0].Rows[0]
	require.Equal(t, json.Number("12345678901234.5678"), row["amount"])
	require.Equal(t, json.Number("123456789012345678901234567890.000000001"), row["big"])
	require.Equal(t, time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC), row["at"])
	require.Equal(t, time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC), row["ts"])
	require.Equal(t, time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), row["d"])
	require.Equal(t, true, row["ok"])
	require.Equal(t, int64(-5), row["n"])
	require.Equal(t, int64(7), row["s"])
	require.Equal(t, 1.5, row["f"])
	require.Equal(t, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", row["u"])
	require.Equal(t, map[string]any{"k": []any{float64(1), "x"}}, row["j"])
	require.Equal(t, "héllo", row["txt"])
	require.Equal(t, "10.0.0.1", row["addr"])
	require.Equal(t, "1 day 02:00:00", row["iv"])
	require.Len(t, row["arr"], 2)
	null := pages[0].Rows[1]
	require.Nil(t, null["amount"])
	require.Equal(t, "NaN", null["big"])
	require.Nil(t, null["at"])
	require.Contains(t, null, "j")
}

func TestPagesResumeAndEndExactly(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE "Select" ("Key Col" int PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO "Select" SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	ctx := context.Background()
	cfg := pgsource.Config{DSN: db.DSN, Table: db.Schema + ".Select", KeyColumn: "Key Col", PageSize: 100}
	r, err := pgsource.Open(ctx, cfg)
	require.NoError(t, err)
	pages := readAll(t, r)
	r.Close()
	require.Len(t, pages, 10, "1000 rows in pages of 100, the EOF needs no empty extra page")
	require.Equal(t, "1000", pages[9].LastKey)
	for i, p := range pages {
		require.Equal(t, i+1, p.Number)
		require.Len(t, p.Rows, 100)
	}

	// Resume after page 4: the next row is 401.
	r, err = pgsource.Open(ctx, cfg)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.Resume(`{"key":"400","keyType":23,"page":4}`))
	rest := readAll(t, r)
	require.Len(t, rest, 6)
	require.Equal(t, int64(401), rest[0].Rows[0]["Key Col"])
	require.Equal(t, 5, rest[0].Number)
	require.JSONEq(t, `{"key":"1000","keyType":23,"page":10}`, r.EncodePosition(rest[5]))

	// A checkpoint written for another key type is refused, not misread.
	r2, err := pgsource.Open(ctx, cfg)
	require.NoError(t, err)
	defer r2.Close()
	err = r2.Resume(`{"key":"400","keyType":25,"page":4}`)
	require.True(t, pgutil.IsPermanent(err))
}

func TestTextAndTimestampKeysPage(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE k (code text PRIMARY KEY, at timestamptz UNIQUE)`)
	db.Exec(t, `INSERT INTO k SELECT 'c' || lpad(g::text, 4, '0'), timestamptz '2024-01-01' + g * interval '1.5 second' FROM generate_series(1, 250) g`)
	for _, key := range []string{"code", "at"} {
		r, err := pgsource.Open(context.Background(), pgsource.Config{DSN: db.DSN, Table: "k", KeyColumn: key, PageSize: 60})
		require.NoError(t, err)
		total := 0
		for _, p := range readAll(t, r) {
			total += len(p.Rows)
		}
		r.Close()
		require.Equal(t, 250, total, key)
	}
}

func TestQueryMode(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE a (id int PRIMARY KEY, b_id int); CREATE TABLE b (id int PRIMARY KEY, name text)`)
	db.Exec(t, `INSERT INTO b SELECT g, 'n' || g FROM generate_series(1, 10) g; INSERT INTO a SELECT g, g % 10 + 1 FROM generate_series(1, 95) g`)
	r, err := pgsource.Open(context.Background(), pgsource.Config{DSN: db.DSN, KeyColumn: "id", PageSize: 20,
		Query: "SELECT a.id, b.name FROM a JOIN b ON b.id = a.b_id"})
	require.NoError(t, err)
	defer r.Close()
	pages := readAll(t, r)
	require.Len(t, pages, 5)
	require.Equal(t, []string{"id", "name"}, r.Columns())
	require.Equal(t, "n2", pages[0].Rows[0]["name"])
}

func TestOpenRejectsBadSources(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v int)`)
	ctx := context.Background()
	cases := []struct {
		cfg  pgsource.Config
		want string
	}{
		{pgsource.Config{Table: "nope", KeyColumn: "id"}, "nope does not exist"},
		{pgsource.Config{Table: "t", KeyColumn: "missing"}, `key column "missing" does not exist`},
		{pgsource.Config{Table: "t", KeyColumn: "v"}, "not unique"},
		{pgsource.Config{Table: "t", KeyColumn: "id", Columns: []string{"id", "zz"}}, `"zz" does not exist`},
		{pgsource.Config{Query: "SELECT v FROM t", KeyColumn: "id"}, "not in the query result"},
		{pgsource.Config{Table: "t", Query: "SELECT 1", KeyColumn: "id"}, "exactly one of table and query"},
	}
	for _, c := range cases {
		c.cfg.DSN = db.DSN
		_, err := pgsource.Open(ctx, c.cfg)
		require.Error(t, err, c.want)
		require.Contains(t, err.Error(), c.want)
		require.True(t, pgutil.IsPermanent(err), err.Error())
	}
}
