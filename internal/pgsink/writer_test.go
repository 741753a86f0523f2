package pgsink_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pgsink"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
)

func row(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestUpsertIsIdempotentAndUpdates(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE "Order Items" (id bigint PRIMARY KEY, "select" text, amount numeric(12,2), at timestamptz)`)
	w, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "Order Items", Mode: pgsink.ModeUpsert})
	require.NoError(t, err)
	defer w.Close()

	ts := time.Date(2024, 5, 1, 12, 30, 0, 123456000, time.UTC)
	batch := []map[string]any{
		row("id", int64(1), "select", "a", "amount", json.Number("10.50"), "at", ts),
		row("id", int64(2), "select", "b", "amount", json.Number("-0.01"), "at", nil),
	}
	require.NoError(t, w.Write(ctx, batch))
	require.Equal(t, int64(1), w.Stats.DirectCopy.Load(), "an empty target takes the direct COPY path")
	n1, sum1 := db.Checksum(t, `"Order Items"`)
	require.Equal(t, int64(2), n1)

	// Replaying the same batch conflicts, merges, and changes nothing.
	require.NoError(t, w.Write(ctx, batch))
	require.Equal(t, int64(1), w.Stats.Conflicts.Load())
	require.Equal(t, int64(1), w.Stats.MergeCopy.Load())
	n2, sum2 := db.Checksum(t, `"Order Items"`)
	require.Equal(t, n1, n2)
	require.Equal(t, sum1, sum2)

	// Duplicate keys in one batch: the last one wins.
	require.NoError(t, w.Write(ctx, []map[string]any{
		row("id", int64(2), "select", "first", "amount", json.Number("1"), "at", nil),
		row("id", int64(3), "select", "c", "amount", json.Number("3"), "at", nil),
		row("id", int64(2), "select", "last", "amount", json.Number("2.5"), "at", nil),
	}))
	require.Equal(t, "last|2.50", db.String(t, `SELECT "select" || '|' || amount FROM "Order Items" WHERE id = 2`))
	require.Equal(t, int64(3), db.Int(t, `SELECT count(*) FROM "Order Items"`))
	require.Equal(t, "10.50", db.String(t, `SELECT amount::text FROM "Order Items" WHERE id = 1`))
	require.Equal(t, ts.UnixMicro(), db.Int(t, `SELECT (extract(epoch FROM at) * 1000000)::bigint FROM "Order Items" WHERE id = 1`))
}

func TestInsertModeReportsSQLStateAndConstraint(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, qty int CHECK (qty >= 0))`)
	w, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "t", Mode: pgsink.ModeInsert})
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Write(ctx, []map[string]any{row("id", int64(1), "qty", int64(1))}))

	// A real duplicate: key 1 with another value.
	err = w.Write(ctx, []map[string]any{row("id", int64(2), "qty", int64(1)), row("id", int64(1), "qty", int64(7))})
	var pe *pgutil.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "23505", pe.SQLState)
	require.Equal(t, "t_pkey", pe.Constraint)
	require.Equal(t, "t", pe.Table)
	require.False(t, pe.Permanent)
	require.Equal(t, int64(1), db.Int(t, "SELECT count(*) FROM t"), "a failed batch leaves nothing behind")

	err = w.Write(ctx, []map[string]any{row("id", int64(5), "qty", int64(-1))})
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "23514", pe.SQLState)
	require.Equal(t, "t_qty_check", pe.Constraint)
}

func TestIncompatibleTypeIsPermanentAndWritesNothing(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, age integer)`)
	w, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "t", Mode: pgsink.ModeUpsert})
	require.NoError(t, err)
	defer w.Close()
	err = w.Write(ctx, []map[string]any{row("id", int64(1), "age", int64(3)), row("id", int64(2), "age", "forty")})
	require.Error(t, err)
	require.True(t, pgutil.IsPermanent(err), err.Error())
	require.Contains(t, err.Error(), `column "age" is integer`)
	require.Contains(t, err.Error(), "incompatible column type")
	require.Equal(t, int64(0), db.Int(t, "SELECT count(*) FROM t"))
}

func TestUnknownFieldIsReportedNotDropped(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, name text)`)
	w, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "t"})
	require.NoError(t, err)
	defer w.Close()
	err = w.Write(ctx, []map[string]any{row("id", int64(1), "name", "x", "nmae", "typo")})
	require.Error(t, err)
	require.Contains(t, err.Error(), `"nmae" does not exist`)
	require.Contains(t, err.Error(), "id, name")
	require.Equal(t, "42703", pgutil.SQLState(err))
}

func TestCreateTableWithHostileNames(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	cols := []pgsink.ColumnDef{
		{Name: "select", Type: "bigint", PrimaryKey: true},
		{Name: `we"ird col`, Type: "numeric(12,2)", Nullable: true},
		{Name: "Ünïcødé", Type: "timestamp with time zone", Nullable: true},
		{Name: "tags", Type: "text[]", Nullable: true},
	}
	w, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: `"Order"".Items"`, Mode: pgsink.ModeUpsert, CreateTable: true, Columns: cols})
	require.NoError(t, err)
	defer w.Close()
	require.Equal(t, []string{"select"}, w.Table().PrimaryKey)
	require.NoError(t, w.Write(ctx, []map[string]any{
		row("select", int64(7), `we"ird col`, json.Number("1.25"), "Ünïcødé", time.Unix(0, 0).UTC(), "tags", []any{"a", "b"}),
	}))
	require.Equal(t, "1.25", db.String(t, `SELECT "we""ird col"::text FROM "Order"".Items" WHERE "select" = 7`))
	require.Equal(t, "{a,b}", db.String(t, `SELECT tags::text FROM "Order"".Items"`))

	// Types are validated before they reach DDL.
	_, err = pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "evil", CreateTable: true,
		Columns: []pgsink.ColumnDef{{Name: "id", Type: "int); DROP TABLE x; --"}}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "not a valid type name")
	_, err = pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "evil", CreateTable: true,
		Columns: []pgsink.ColumnDef{{Name: "id", Type: "no_such_type"}}})
	require.ErrorContains(t, err, "does not exist")
	require.Equal(t, int64(0), db.Int(t, `SELECT count(*) FROM pg_tables WHERE tablename = 'evil'`))
}

func TestOpenErrorsArePermanentAndClear(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	_, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "missing"})
	require.True(t, pgutil.IsPermanent(err))
	require.ErrorContains(t, err, "does not exist")

	db.Exec(t, `CREATE TABLE nokey (a int, b int)`)
	_, err = pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "nokey", Mode: pgsink.ModeUpsert})
	require.True(t, pgutil.IsPermanent(err))
	require.ErrorContains(t, err, "no primary key")

	_, err = pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "nokey", Mode: pgsink.ModeUpsert, KeyColumns: []string{"a"}})
	require.ErrorContains(t, err, "not covered by a primary key or unique index")

	_, err = pgsink.Open(ctx, pgsink.Config{DSN: "postgres://u:s3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", Table: "t"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
	require.False(t, errors.Is(err, context.Canceled))
}

func TestRecordsWithDifferentFieldSets(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, a text, b text DEFAULT 'dflt')`)
	w, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "t", Mode: pgsink.ModeInsert})
	require.NoError(t, err)
	defer w.Close()
	// The first record lacks b; a later one has it: the batch is re-planned
	// on the union, and the first record's b is NULL, not a silent drop of
	// the later value.
	require.NoError(t, w.Write(ctx, []map[string]any{
		row("id", int64(1), "a", "x"),
		row("id", int64(2), "a", "y", "b", "z"),
	}))
	require.Equal(t, "z", db.String(t, `SELECT b FROM t WHERE id = 2`))
	require.Equal(t, int64(1), db.Int(t, `SELECT count(*) FROM t WHERE id = 1 AND b IS NULL`))
	// An unknown field in a later record is still caught.
	err = w.Write(ctx, []map[string]any{row("id", int64(3), "a", "x"), row("id", int64(4), "a", "y", "c", "?")})
	require.ErrorContains(t, err, `"c" does not exist`)
	require.Equal(t, int64(2), db.Int(t, `SELECT count(*) FROM t`))
}

// TestInsertModeTakesARedeliveredBatchAsWritten: delivery is at least once,
// so an insert batch that comes again after a crash finds its rows already
// there. Rows identical to the stored ones count as written, new rows are
// inserted; a key stored with other values, or twice in the batch, is
// still a duplicate-key error that writes nothing.
func TestInsertModeTakesARedeliveredBatchAsWritten(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE "Line Items" (id int PRIMARY KEY, "select" text, qty int, at timestamptz DEFAULT now())`)
	w, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "Line Items", Mode: pgsink.ModeInsert})
	require.NoError(t, err)
	defer w.Close()
	first := []map[string]any{row("id", int64(1), "select", "a", "qty", int64(1)), row("id", int64(2), "select", nil, "qty", int64(2))}
	require.NoError(t, w.Write(ctx, first))

	// The same rows again, plus a new one: written once.
	again := append(append([]map[string]any{}, first...), row("id", int64(3), "select", "c", "qty", int64(3)))
	require.NoError(t, w.Write(ctx, again))
	require.EqualValues(t, 3, db.Int(t, `SELECT count(*) FROM "Line Items"`))
	require.EqualValues(t, 2, w.Stats.AlreadyWritten.Load())

	for name, batch := range map[string][]map[string]any{
		"other values":     {row("id", int64(4), "select", "d", "qty", int64(4)), row("id", int64(2), "select", "b", "qty", int64(2))},
		"null vs value":    {row("id", int64(1), "select", "a", "qty", nil)},
		"twice in a batch": {row("id", int64(1), "select", "a", "qty", int64(1)), row("id", int64(1), "select", "a", "qty", int64(1))},
	} {
		err = w.Write(ctx, batch)
		var pe *pgutil.Error
		require.ErrorAs(t, err, &pe, name)
		require.Equal(t, "23505", pe.SQLState, name)
		require.EqualValues(t, 3, db.Int(t, `SELECT count(*) FROM "Line Items"`), name)
	}
}
