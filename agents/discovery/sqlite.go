package discovery

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// sqliteConnector reads an SQLite file, read-only, with table-valued pragma
// functions so that all columns and all foreign keys come in one query each.
type sqliteConnector struct {
	db   *sql.DB
	path string
}

type sqliteHandle struct{}

// sqlitePath extracts the file path from sqlite://path, sqlite:///abs/path
// or sqlite:path.
func sqlitePath(dsn string) string {
	_, rest, _ := strings.Cut(dsn, ":")
	rest = strings.TrimPrefix(rest, "//")
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func openSQLite(ctx context.Context, dsn string, opts ConnectorOptions) (Connector, error) {
	path := sqlitePath(dsn)
	if path == "" || path == ":memory:" {
		return nil, &SourceError{Op: "open", Permanent: true, Err: fmt.Errorf("sqlite DSN names no database file")}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, &SourceError{Op: "open", Permanent: true, Err: err}
	}
	if st.IsDir() {
		return nil, &SourceError{Op: "open", Permanent: true, Err: fmt.Errorf("%s is a directory, not an SQLite file", path)}
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, &SourceError{Op: "open", Permanent: true, Err: err}
	}
	db.SetMaxOpenConns(max(1, opts.MaxConns))
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, &SourceError{Op: "open", Permanent: true, Err: err}
	}
	// A file that is not a database fails on first read, not on open.
	if _, err := db.ExecContext(ctx, "SELECT count(*) FROM sqlite_schema"); err != nil {
		_ = db.Close()
		return nil, &SourceError{Op: "open", Permanent: true, Err: err}
	}
	return &sqliteConnector{db: db, path: path}, nil
}

func (c *sqliteConnector) Kind() string { return "sqlite" }

func (c *sqliteConnector) Close() error { return c.db.Close() }

const sqliteUserObjects = `m.type IN ('table','view') AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\'`

func (c *sqliteConnector) Entities(ctx context.Context, f *Filter) ([]*Entity, []SkippedTable, error) {
	byName := map[string]*Entity{}
	var ents []*Entity
	rows, err := c.db.QueryContext(ctx, `SELECT m.name, m.type FROM sqlite_schema m WHERE `+sqliteUserObjects+` ORDER BY m.name`)
	if err != nil {
		return nil, nil, &SourceError{Op: "read catalog", Err: err}
	}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return nil, nil, &SourceError{Op: "read catalog", Err: err}
		}
		if !f.Match("main", name) {
			continue
		}
		kind := KindTable
		if typ == "view" {
			kind = KindView
		}
		e := &Entity{Schema: "main", Name: name, Kind: kind, RowEstimate: -1, Handle: &sqliteHandle{}}
		ents = append(ents, e)
		byName[name] = e
	}
	if err := rows.Err(); err != nil {
		return nil, nil, &SourceError{Op: "read catalog", Err: err}
	}
	if len(ents) == 0 {
		return ents, nil, nil
	}
	rows, err = c.db.QueryContext(ctx, `
SELECT m.name, p.name, p.type, p."notnull", p.pk
FROM sqlite_schema m JOIN pragma_table_info(m.name) p
WHERE `+sqliteUserObjects+` ORDER BY m.name, p.cid`)
	if err != nil {
		return nil, nil, &SourceError{Op: "read columns", Err: err}
	}
	pks := map[string]map[int]string{}
	for rows.Next() {
		var table, col, typ string
		var notNull, pk int
		if err := rows.Scan(&table, &col, &typ, &notNull, &pk); err != nil {
			rows.Close()
			return nil, nil, &SourceError{Op: "read columns", Err: err}
		}
		e := byName[table]
		if e == nil {
			continue
		}
		e.Columns = append(e.Columns, Column{Name: col, DataType: typ, Nullable: notNull == 0 && pk == 0, Class: ClassOf(sqliteAffinityType(typ))})
		if pk > 0 {
			if pks[table] == nil {
				pks[table] = map[int]string{}
			}
			pks[table][pk] = col
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, &SourceError{Op: "read columns", Err: err}
	}
	for t, m := range pks {
		for i := 1; i <= len(m); i++ {
			byName[t].PrimaryKey = append(byName[t].PrimaryKey, m[i])
		}
	}
	rows, err = c.db.QueryContext(ctx, `
SELECT m.name, f.id, f."table", f."from", coalesce(f."to", '')
FROM sqlite_schema m JOIN pragma_foreign_key_list(m.name) f
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY m.name, f.id, f.seq`)
	if err != nil {
		return nil, nil, &SourceError{Op: "read keys", Err: err}
	}
	lastID := map[string]int{}
	for rows.Next() {
		var table, ref, from, to string
		var id int
		if err := rows.Scan(&table, &id, &ref, &from, &to); err != nil {
			rows.Close()
			return nil, nil, &SourceError{Op: "read keys", Err: err}
		}
		e := byName[table]
		if e == nil {
			continue
		}
		if last, ok := lastID[table]; !ok || last != id {
			e.ForeignKeys = append(e.ForeignKeys, ForeignKey{Name: "fk_" + strconv.Itoa(id), RefTable: qualify("main", ref)})
			lastID[table] = id
		}
		fk := &e.ForeignKeys[len(e.ForeignKeys)-1]
		fk.Columns = append(fk.Columns, from)
		fk.RefColumns = append(fk.RefColumns, to)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, &SourceError{Op: "read keys", Err: err}
	}
	// Row estimates from ANALYZE statistics when they exist.
	var hasStat int
	_ = c.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'`).Scan(&hasStat)
	if hasStat > 0 {
		srows, err := c.db.QueryContext(ctx, `SELECT tbl, max(CAST(substr(stat, 1, instr(stat || ' ', ' ') - 1) AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl`)
		if err == nil {
			for srows.Next() {
				var t string
				var n int64
				if srows.Scan(&t, &n) == nil && byName[t] != nil {
					byName[t].RowEstimate = n
				}
			}
			srows.Close()
		}
	}
	return ents, nil, nil
}

// sqliteAffinityType maps a declared type to a name ClassOf understands,
// following SQLite's affinity rules.
func sqliteAffinityType(decl string) string {
	t := strings.ToUpper(decl)
	switch {
	case strings.Contains(t, "INT"):
		return "bigint"
	case strings.Contains(t, "CHAR") || strings.Contains(t, "CLOB") || strings.Contains(t, "TEXT"):
		return "text"
	case strings.Contains(t, "BLOB") || t == "":
		if t == "" {
			return "text"
		}
		return "blob"
	case strings.Contains(t, "REAL") || strings.Contains(t, "FLOA") || strings.Contains(t, "DOUB"):
		return "double"
	case strings.Contains(t, "BOOL"):
		return "boolean"
	case strings.Contains(t, "DATE") || strings.Contains(t, "TIME"):
		return "timestamp"
	}
	return "numeric"
}

func (c *sqliteConnector) Rows(ctx context.Context, e *Entity, target int64, emit func([][]byte) error) (ReadInfo, error) {
	from := " FROM " + quoteDouble(e.Name)
	var count int64
	if err := c.db.QueryRowContext(ctx, "SELECT count(*)"+from).Scan(&count); err != nil {
		return ReadInfo{}, err
	}
	info := ReadInfo{RowCount: count, RowCountExact: true}
	var sel strings.Builder
	sel.WriteString("SELECT ")
	if len(e.Columns) == 0 {
		sel.WriteString("NULL")
	}
	for i, col := range e.Columns {
		if i > 0 {
			sel.WriteString(", ")
		}
		// The text form of every storage class; NULL stays NULL.
		sel.WriteString("CAST(" + quoteDouble(col.Name) + " AS TEXT)")
	}
	sel.WriteString(from)
	query := sel.String() + " LIMIT ?"
	args := []any{target}
	if count > target {
		frac := min(1, float64(target)/float64(count)*1.15)
		query = sel.String() + " WHERE (abs(random()) % 1000000) < ? LIMIT ?"
		args = []any{int64(frac * 1e6), target}
		info.Sampled = true
		info.Method = "random() sample of " + strconv.FormatFloat(frac*100, 'f', 3, 64) + "%"
	}
	rows, err := c.db.QueryContext(ctx, query, args...)
	if err != nil {
		return info, err
	}
	defer rows.Close()
	ncol := max(1, len(e.Columns))
	vals := make([]sql.NullString, ncol)
	ptrs := make([]any, ncol)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	row := make([][]byte, ncol)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return info, err
		}
		for i, v := range vals {
			if v.Valid {
				row[i] = []byte(v.String)
			} else {
				row[i] = nil
			}
		}
		r := row
		if len(e.Columns) == 0 {
			r = nil
		}
		if err := emit(r); err != nil {
			return info, err
		}
	}
	return info, rows.Err()
}

// quoteDouble quotes an identifier for SQLite (and standard SQL).
func quoteDouble(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
