package pgutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what catalog look-ups need: a pool, a connection or a tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Column is one column of a relation as the catalog describes it.
type Column struct {
	Name     string
	TypeOID  uint32
	TypeName string // format_type output, e.g. numeric(12,2)
	NotNull  bool
	// Position is the attribute number.
	Position int
}

// Table is a resolved relation with its columns and unique keys.
type Table struct {
	Ident   Ident // Schema is always set after resolution
	OID     uint32
	Kind    string // r table, p partitioned, v view, m matview, f foreign
	Columns []Column
	// PrimaryKey lists the primary-key columns in key order, if any.
	PrimaryKey []string
	// UniqueKeys lists every unique index's columns (including the primary key).
	UniqueKeys [][]string
}

// ErrTableNotFound is returned when a relation does not exist or is not
// visible to the connected role.
var ErrTableNotFound = errors.New("table not found")

// Column returns the named column.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// ColumnNames lists the column names in table order.
func (t *Table) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// HasUniqueKey reports whether cols (in any order) are exactly the columns of
// some unique index, the condition for ON CONFLICT and for keyset paging.
func (t *Table) HasUniqueKey(cols []string) bool {
	for _, k := range t.UniqueKeys {
		if sameSet(k, cols) {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]int, len(a))
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
		if m[x] < 0 {
			return false
		}
	}
	return true
}

// LookupTable resolves id (through the search_path when unqualified) and
// reads its columns and unique keys in two catalog queries. Every name is
// passed as a parameter, never pasted into SQL.
func LookupTable(ctx context.Context, q Querier, id Ident) (*Table, error) {
	const resolve = `
SELECT c.oid, n.nspname, c.relkind::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = $1
  AND c.relkind IN ('r','p','v','m','f')
  AND (($2 = '' AND n.nspname = ANY (current_schemas(false))) OR n.nspname = $2)
ORDER BY array_position(current_schemas(false), n.nspname) NULLS LAST
LIMIT 1`
	t := &Table{Ident: id}
	if err := q.QueryRow(ctx, resolve, id.Name, id.Schema).Scan(&t.OID, &t.Ident.Schema, &t.Kind); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, &Error{Op: "resolve table", Permanent: true, SQLState: "42P01", Table: id.String(),
				Err: fmt.Errorf("%w: %s does not exist or is not visible to this role", ErrTableNotFound, id.String())}
		}
		return nil, Wrap("resolve table "+id.String(), err)
	}
	rows, err := q.Query(ctx, `
SELECT a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attnum
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, t.OID)
	if err != nil {
		return nil, Wrap("read columns of "+t.Ident.String(), err)
	}
	for rows.Next() {
		var c Column
		var pos int16
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeName, &c.NotNull, &pos); err != nil {
			rows.Close()
			return nil, Wrap("read columns of "+t.Ident.String(), err)
		}
		c.Position = int(pos)
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, Wrap("read columns of "+t.Ident.String(), err)
	}
	rows, err = q.Query(ctx, `
SELECT i.indisprimary,
       array(SELECT a.attname FROM unnest(i.indkey[0:i.indnkeyatts-1]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord)::text[]
FROM pg_catalog.pg_index i
WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
ORDER BY i.indisprimary DESC, i.indexrelid`, t.OID)
	if err != nil {
		return nil, Wrap("read keys of "+t.Ident.String(), err)
	}
	for rows.Next() {
		var primary bool
		var cols []string
		if err := rows.Scan(&primary, &cols); err != nil {
			rows.Close()
			return nil, Wrap("read keys of "+t.Ident.String(), err)
		}
		if primary {
			t.PrimaryKey = cols
		}
		t.UniqueKeys = append(t.UniqueKeys, cols)
	}
	if err := rows.Err(); err != nil {
		return nil, Wrap("read keys of "+t.Ident.String(), err)
	}
	return t, nil
}

// MissingColumnError describes columns that do not exist, listing those that
// do so the user can fix a typo without opening psql.
func MissingColumnError(op string, t *Table, missing []string) error {
	return &Error{
		Op: op, Permanent: true, SQLState: "42703", Table: t.Ident.String(), Column: strings.Join(missing, ", "),
		Err: fmt.Errorf("column %s does not exist in %s (it has: %s)",
			quoteForMessage(missing), t.Ident.String(), strings.Join(t.ColumnNames(), ", ")),
	}
}

func quoteForMessage(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
