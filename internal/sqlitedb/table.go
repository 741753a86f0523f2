package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// Kind is how a column's values are checked and converted, from its
// declared type (SQLite's affinity rules, plus the date and boolean
// spellings tools commonly declare).
type Kind int

// Column kinds.
const (
	KindNumeric Kind = iota
	KindInteger
	KindReal
	KindText
	KindBlob
	KindBoolean
	KindDate
	KindTimestamp
	KindTime
)

func (k Kind) String() string {
	return [...]string{"numeric", "integer", "real", "text", "blob", "boolean", "date", "timestamp", "time"}[k]
}

// KindOf classifies a declared column type.
func KindOf(decl string) Kind {
	t := strings.ToUpper(strings.TrimSpace(decl))
	switch {
	case strings.Contains(t, "INT"):
		return KindInteger
	case strings.Contains(t, "CHAR") || strings.Contains(t, "CLOB") || strings.Contains(t, "TEXT"):
		return KindText
	case t == "" || strings.Contains(t, "BLOB"):
		return KindBlob
	case strings.Contains(t, "REAL") || strings.Contains(t, "FLOA") || strings.Contains(t, "DOUB"):
		return KindReal
	case strings.Contains(t, "BOOL"):
		return KindBoolean
	case strings.Contains(t, "DATETIME") || strings.Contains(t, "TIMESTAMP"):
		return KindTimestamp
	case strings.Contains(t, "DATE"):
		return KindDate
	case strings.Contains(t, "TIME"):
		return KindTime
	}
	return KindNumeric
}

// Column is one column of a table.
type Column struct {
	Name     string
	Declared string
	Kind     Kind
	NotNull  bool
	// PK is the column's 1-based position in the primary key, 0 if none.
	PK int
}

// Table is a table's columns, in declaration order.
type Table struct {
	Ident   pgutil.Ident
	Columns []Column
	byName  map[string]int
}

// Column returns the named column.
func (t *Table) Column(name string) (Column, bool) {
	i, ok := t.byName[name]
	if !ok {
		return Column{}, false
	}
	return t.Columns[i], true
}

// Names lists the column names in declaration order.
func (t *Table) Names() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// PrimaryKey lists the primary key columns in key order.
func (t *Table) PrimaryKey() []string {
	var pk []Column
	for _, c := range t.Columns {
		if c.PK > 0 {
			pk = append(pk, c)
		}
	}
	sort.Slice(pk, func(i, j int) bool { return pk[i].PK < pk[j].PK })
	out := make([]string, len(pk))
	for i, c := range pk {
		out[i] = c.Name
	}
	return out
}

// ParseTable reads a table name as written in a config: name or
// schema.name, where schema is an attached database ("main" by default).
func ParseTable(s string) (pgutil.Ident, error) {
	if strings.TrimSpace(s) == "" {
		return pgutil.Ident{}, pgutil.Permanentf("config", "no table given")
	}
	id, err := pgutil.ParseIdent(s)
	if err != nil {
		return pgutil.Ident{}, &pgutil.Error{Op: "config", Permanent: true, Err: err}
	}
	return id, nil
}

// Describe reads a table's columns. A missing table is a permanent error
// naming the tables that do exist.
func Describe(ctx context.Context, db *sql.DB, id pgutil.Ident) (*Table, error) {
	schema := id.Schema
	if schema == "" {
		schema = "main"
	}
	rows, err := db.QueryContext(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?, ?) ORDER BY cid`, id.Name, schema)
	if err != nil {
		return nil, Wrap("describe "+id.String(), err, 0)
	}
	defer rows.Close()
	t := &Table{Ident: id, byName: map[string]int{}}
	for rows.Next() {
		var c Column
		var notNull int
		if err := rows.Scan(&c.Name, &c.Declared, &notNull, &c.PK); err != nil {
			return nil, Wrap("describe "+id.String(), err, 0)
		}
		c.NotNull, c.Kind = notNull != 0, KindOf(c.Declared)
		t.byName[c.Name] = len(t.Columns)
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, Wrap("describe "+id.String(), err, 0)
	}
	if len(t.Columns) == 0 {
		names, _ := tableNames(ctx, db, schema)
		return nil, &pgutil.Error{Op: "describe", SQLState: "42P01", Table: id.String(), Permanent: true,
			Err: fmt.Errorf("table %s does not exist (tables in %s: %s)", id.String(), schema, listOrNone(names))}
	}
	return t, nil
}

// unique reports whether column is alone the primary key or alone a
// unique index of the table.
func unique(ctx context.Context, db *sql.DB, t *Table, column string) (bool, error) {
	if pk := t.PrimaryKey(); len(pk) == 1 && pk[0] == column {
		return true, nil
	}
	schema := t.Ident.Schema
	if schema == "" {
		schema = "main"
	}
	var n int
	err := db.QueryRowContext(ctx, `
SELECT count(*) FROM pragma_index_list(?1, ?2) il
WHERE il."unique" = 1
  AND (SELECT count(*) FROM pragma_index_info(il.name, ?2)) = 1
  AND (SELECT ii.name FROM pragma_index_info(il.name, ?2) ii) = ?3`, t.Ident.Name, schema, column).Scan(&n)
	if err != nil {
		return false, Wrap("describe "+t.Ident.String(), err, 0)
	}
	return n > 0, nil
}

func tableNames(ctx context.Context, db *sql.DB, schema string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_list WHERE schema = ? AND type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`, schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > 20 {
		return strings.Join(names[:20], ", ") + ", ..."
	}
	return strings.Join(names, ", ")
}
