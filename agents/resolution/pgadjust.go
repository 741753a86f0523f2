package resolution

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// ColumnTypeFor infers a PostgreSQL type for a new column from a sample
// value: the widest type that holds values of the sample's kind.
func ColumnTypeFor(sample any) string {
	switch x := sample.(type) {
	case bool:
		return "boolean"
	case int, int8, int16, int32, int64, uint8, uint16, uint32:
		return "bigint"
	case float32, float64:
		return "double precision"
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return "numeric"
		}
		return "bigint"
	case time.Time:
		return "timestamptz"
	case map[string]any, []any:
		return "jsonb"
	}
	return "text"
}

// AddNullableColumn adds column to table (if it does not exist yet) as a
// nullable column of the type ColumnTypeFor(sample). The identifiers are
// quoted; the type comes from a fixed list, never from the data.
func AddNullableColumn(ctx context.Context, dsn, table, column string, sample any) error {
	id, err := pgutil.ParseIdent(table)
	if err != nil {
		return pgutil.Permanentf("add column", "%w", err)
	}
	if column == "" || strings.ContainsRune(column, 0) {
		return pgutil.Permanentf("add column", "invalid column name %q", column)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return pgutil.Wrap("connect to "+redact.DSN(dsn), redact.Scrub(dsn, err))
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "ALTER TABLE "+id.Quoted()+" ADD COLUMN IF NOT EXISTS "+pgutil.QuoteIdent(column)+" "+ColumnTypeFor(sample))
	return pgutil.Wrap("add column "+column+" to "+id.String(), err)
}

// PostgresCheckDefinitions returns a CheckDefinition function for the
// destination at dsn. It connects on each call (a constraint is looked up
// once per run) and passes every name as a parameter.
func PostgresCheckDefinitions(dsn string) func(ctx context.Context, schema, table, constraint string) (string, error) {
	return func(ctx context.Context, schema, table, constraint string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return "", pgutil.Wrap("connect to "+redact.DSN(dsn), redact.Scrub(dsn, err))
		}
		defer conn.Close(context.Background())
		var def string
		err = conn.QueryRow(ctx, `SELECT pg_catalog.pg_get_constraintdef(c.oid)
			FROM pg_catalog.pg_constraint c
			JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
			JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
			WHERE c.contype = 'c' AND c.conname = $1 AND r.relname = $2 AND ($3 = '' OR n.nspname = $3)
			ORDER BY n.nspname = ANY (current_schemas(false)) DESC LIMIT 1`, constraint, table, schema).Scan(&def)
		if err != nil {
			return "", pgutil.Wrap("read check constraint "+constraint, err)
		}
		return def, nil
	}
}
