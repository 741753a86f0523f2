package sqlitedb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// ReaderConfig selects what a Reader reads.
type ReaderConfig struct {
	DSN   string
	Table string
	// KeyColumn orders and resumes the pages; it must be the table's
	// single-column primary key or alone in a unique index.
	KeyColumn string
	// Columns to read; empty reads every column.
	Columns  []string
	PageSize int
}

// Page is one page of rows, in key order.
type Page struct {
	Number int
	Rows   []map[string]any
	// Last is the key of the page's last row.
	Last any
}

// Reader reads a table in keyset pages: WHERE key > last ORDER BY key
// LIMIT n, one short statement per page, never OFFSET. It is not safe for
// concurrent use.
type Reader struct {
	db      *sql.DB
	table   *Table
	cols    []Column
	key     string
	query   string
	first   string
	size    int
	last    any
	started bool
	page    int
	done    bool
}

// OpenReader opens the database read-only and checks the table, the key
// and the columns. Problems no retry can fix are permanent errors.
func OpenReader(ctx context.Context, cfg ReaderConfig) (*Reader, error) {
	if cfg.PageSize < 1 {
		cfg.PageSize = 10000
	}
	id, err := ParseTable(cfg.Table)
	if err != nil {
		return nil, err
	}
	db, err := Open(ctx, cfg.DSN, true, 1)
	if err != nil {
		return nil, err
	}
	r, err := newReader(ctx, db, id, cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return r, nil
}

func newReader(ctx context.Context, db *sql.DB, id pgutil.Ident, cfg ReaderConfig) (*Reader, error) {
	t, err := Describe(ctx, db, id)
	if err != nil {
		return nil, err
	}
	key, ok := t.Column(cfg.KeyColumn)
	if !ok {
		return nil, &pgutil.Error{Op: "read", SQLState: "42703", Table: id.String(), Column: cfg.KeyColumn, Permanent: true,
			Err: fmt.Errorf("key column %q is not a column of %s (columns: %s)", cfg.KeyColumn, id.String(), strings.Join(t.Names(), ", "))}
	}
	if key.Kind == KindBlob && key.Declared != "" {
		return nil, &pgutil.Error{Op: "read", Table: id.String(), Column: key.Name, Permanent: true,
			Err: fmt.Errorf("key column %q of %s is a %s column; pages are keyed on an integer or text column", key.Name, id.String(), key.Declared)}
	}
	uniq, err := unique(ctx, db, t, key.Name)
	if err != nil {
		return nil, err
	}
	if !uniq {
		return nil, &pgutil.Error{Op: "read", Table: id.String(), Column: key.Name, Permanent: true,
			Err: fmt.Errorf("key column %q of %s is neither the primary key nor alone in a unique index, so pages could skip or repeat rows; use a unique column", key.Name, id.String())}
	}
	cols := t.Columns
	if len(cfg.Columns) > 0 {
		cols = nil
		hasKey := false
		for _, name := range cfg.Columns {
			c, ok := t.Column(name)
			if !ok {
				return nil, &pgutil.Error{Op: "read", SQLState: "42703", Table: id.String(), Column: name, Permanent: true,
					Err: fmt.Errorf("column %q is not a column of %s (columns: %s)", name, id.String(), strings.Join(t.Names(), ", "))}
			}
			hasKey = hasKey || name == key.Name
			cols = append(cols, c)
		}
		if !hasKey {
			cols = append(cols, key)
		}
	}
	var sel strings.Builder
	sel.WriteString("SELECT ")
	for i, c := range cols {
		if i > 0 {
			sel.WriteString(", ")
		}
		sel.WriteString(pgutil.QuoteIdent(c.Name))
	}
	sel.WriteString(" FROM " + id.Quoted())
	qk := pgutil.QuoteIdent(key.Name)
	return &Reader{
		db: db, table: t, cols: cols, key: key.Name, size: cfg.PageSize,
		first: sel.String() + " ORDER BY " + qk + " LIMIT ?",
		query: sel.String() + " WHERE " + qk + " > ? ORDER BY " + qk + " LIMIT ?",
	}, nil
}

// Source names what is read, for logs.
func (r *Reader) Source() string { return r.table.Ident.String() }

// Table is the table read.
func (r *Reader) Table() *Table { return r.table }

// Close releases the database.
func (r *Reader) Close() error { return r.db.Close() }

// position is the stored form of a read position.
type position struct {
	Key json.RawMessage `json:"k"`
}

// EncodePosition is the position after page p, to store as a checkpoint.
func (r *Reader) EncodePosition(p *Page) string {
	b, err := json.Marshal(p.Last)
	if err != nil {
		// Keys are integers, reals, text or blobs: always encodable.
		b = []byte("null")
	}
	out, _ := json.Marshal(position{Key: b})
	return string(out)
}

// Resume continues after a position from EncodePosition.
func (r *Reader) Resume(pos string) error {
	var p position
	if err := json.Unmarshal([]byte(pos), &p); err != nil || len(p.Key) == 0 {
		return pgutil.Permanentf("resume", "checkpoint %q is not a position of the sqlite input", truncate(pos, 80))
	}
	dec := json.NewDecoder(strings.NewReader(string(p.Key)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return pgutil.Permanentf("resume", "checkpoint %q is not a position of the sqlite input", truncate(pos, 80))
	}
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			v = i
		} else if f, err := n.Float64(); err == nil {
			v = f
		}
	}
	r.last, r.started = v, true
	return nil
}

// Next reads the next page; io.EOF after the last one.
func (r *Reader) Next(ctx context.Context) (*Page, error) {
	if r.done {
		return nil, io.EOF
	}
	var (
		rows *sql.Rows
		err  error
	)
	if r.started {
		rows, err = r.db.QueryContext(ctx, r.query, r.last, r.size)
	} else {
		rows, err = r.db.QueryContext(ctx, r.first, r.size)
	}
	if err != nil {
		return nil, Wrap("read "+r.Source(), err, 0)
	}
	defer rows.Close()
	page := &Page{Number: r.page + 1}
	vals := make([]any, len(r.cols))
	ptrs := make([]any, len(r.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, Wrap("read "+r.Source(), err, 0)
		}
		row := make(map[string]any, len(r.cols))
		for i, c := range r.cols {
			row[c.Name] = value(c, vals[i])
		}
		page.Rows = append(page.Rows, row)
		page.Last = row[r.key]
	}
	if err := rows.Err(); err != nil {
		return nil, Wrap("read "+r.Source(), err, 0)
	}
	if len(page.Rows) < r.size {
		r.done = true
	}
	if len(page.Rows) == 0 {
		return nil, io.EOF
	}
	r.page++
	r.last, r.started = page.Last, true
	return page, nil
}

// value turns a scanned value into its message form. Text in a column
// declared DATE, DATETIME, TIMESTAMP or TIME that the driver could parse
// arrives as a time.Time and stays one; text it could not parse stays
// text. A real in a NUMERIC or DECIMAL column becomes an exact decimal
// number (its shortest representation), like the postgres input's numeric.
func value(c Column, v any) any {
	switch x := v.(type) {
	case float64:
		if c.Kind == KindNumeric && !math.IsNaN(x) && !math.IsInf(x, 0) {
			return json.Number(strconv.FormatFloat(x, 'f', -1, 64))
		}
	case []byte:
		if c.Kind != KindBlob {
			return string(x)
		}
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
