package sqlitedb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// Mode is how rows are written.
type Mode string

// Write modes.
const (
	ModeInsert Mode = "insert"
	ModeUpsert Mode = "upsert"
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	DSN   string
	Table string
	Mode  Mode
	// KeyColumns is the conflict target of an upsert; empty uses the
	// table's primary key.
	KeyColumns []string
}

// Writer writes batches of records into one table, one transaction per
// batch: all of a batch lands or none of it. It is safe for concurrent use;
// SQLite serialises the transactions.
type Writer struct {
	db    *sql.DB
	table *Table
	mode  Mode
	keys  []string
}

// OpenWriter opens (creating if needed) the database and checks the table
// and the conflict key.
func OpenWriter(ctx context.Context, cfg WriterConfig) (*Writer, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeUpsert
	}
	if cfg.Mode != ModeInsert && cfg.Mode != ModeUpsert {
		return nil, pgutil.Permanentf("config", "mode must be insert or upsert, not %q", truncate(string(cfg.Mode), 20))
	}
	id, err := ParseTable(cfg.Table)
	if err != nil {
		return nil, err
	}
	db, err := Open(ctx, cfg.DSN, false, 1)
	if err != nil {
		return nil, err
	}
	w, err := newWriter(ctx, db, id, cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return w, nil
}

func newWriter(ctx context.Context, db *sql.DB, id pgutil.Ident, cfg WriterConfig) (*Writer, error) {
	t, err := Describe(ctx, db, id)
	if err != nil {
		return nil, err
	}
	w := &Writer{db: db, table: t, mode: cfg.Mode, keys: cfg.KeyColumns}
	if cfg.Mode == ModeUpsert {
		if len(w.keys) == 0 {
			w.keys = t.PrimaryKey()
		}
		if len(w.keys) == 0 {
			return nil, &pgutil.Error{Op: "config", Table: id.String(), Permanent: true,
				Err: fmt.Errorf("upsert into %s needs a key: the table has no primary key, so set key_columns (a unique index's columns) or use mode insert", id.String())}
		}
		for _, k := range w.keys {
			if _, ok := t.Column(k); !ok {
				return nil, &pgutil.Error{Op: "config", SQLState: "42703", Table: id.String(), Column: k, Permanent: true,
					Err: fmt.Errorf("key column %q is not a column of %s (columns: %s)", k, id.String(), strings.Join(t.Names(), ", "))}
			}
		}
	}
	return w, nil
}

// Table is the table written.
func (w *Writer) Table() *Table { return w.table }

// Close releases the database.
func (w *Writer) Close() error { return w.db.Close() }

// Write writes rows in one transaction. Values are checked and converted
// for their column first; a record that does not fit fails the batch with
// its 1-based position in the error, before anything is sent. A record
// field without a column is an error naming the table's columns.
func (w *Writer) Write(ctx context.Context, rows []map[string]any) error {
	if len(rows) == 0 {
		return nil
	}
	type prepared struct {
		cols []string
		args []any
	}
	ps := make([]prepared, len(rows))
	for i, row := range rows {
		cols := make([]string, 0, len(row))
		for k := range row {
			cols = append(cols, k)
		}
		sort.Strings(cols)
		args := make([]any, len(cols))
		for j, name := range cols {
			c, ok := w.table.Column(name)
			if !ok {
				return &pgutil.Error{Op: "write", SQLState: "42703", Table: w.table.Ident.String(), Column: name, Record: i + 1, Permanent: true,
					Err: fmt.Errorf("record field %q has no column in %s (columns: %s)", truncate(name, 64), w.table.Ident.String(), strings.Join(w.table.Names(), ", "))}
			}
			v, err := Convert(c, row[name])
			if err != nil {
				var pe *pgutil.Error
				if errors.As(err, &pe) {
					pe.Table, pe.Record = w.table.Ident.String(), i+1
				}
				return err
			}
			args[j] = v
		}
		ps[i] = prepared{cols: cols, args: args}
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return Wrap("begin", err, 0)
	}
	defer func() { _ = tx.Rollback() }()
	stmts := map[string]*sql.Stmt{}
	for i, p := range ps {
		sig := strings.Join(p.cols, "\x00")
		st := stmts[sig]
		if st == nil {
			if st, err = tx.PrepareContext(ctx, w.statement(p.cols)); err != nil {
				return Wrap("write "+w.table.Ident.String(), err, i+1)
			}
			stmts[sig] = st
		}
		if _, err := st.ExecContext(ctx, p.args...); err != nil {
			return Wrap("write "+w.table.Ident.String(), err, i+1)
		}
	}
	if err := tx.Commit(); err != nil {
		return Wrap("commit "+w.table.Ident.String(), err, 0)
	}
	return nil
}

// statement builds the INSERT for one set of columns, every identifier
// quoted. An upsert updates the other columns from the new row, and only
// when one of them differs, so an identical row is not rewritten.
func (w *Writer) statement(cols []string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(w.table.Ident.Quoted())
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgutil.QuoteIdent(c))
	}
	b.WriteString(") VALUES (")
	b.WriteString(strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", "))
	b.WriteString(")")
	if w.mode != ModeUpsert {
		return b.String()
	}
	isKey := map[string]bool{}
	for _, k := range w.keys {
		isKey[k] = true
	}
	var set, differ []string
	for _, c := range cols {
		if isKey[c] {
			continue
		}
		q := pgutil.QuoteIdent(c)
		set = append(set, q+" = excluded."+q)
		differ = append(differ, w.table.Ident.Quoted()+"."+q+" IS NOT excluded."+q)
	}
	b.WriteString(" ON CONFLICT (")
	for i, k := range w.keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgutil.QuoteIdent(k))
	}
	if len(set) == 0 {
		b.WriteString(") DO NOTHING")
		return b.String()
	}
	b.WriteString(") DO UPDATE SET ")
	b.WriteString(strings.Join(set, ", "))
	b.WriteString(" WHERE ")
	b.WriteString(strings.Join(differ, " OR "))
	return b.String()
}

// Date and time layouts accepted from text, most specific first.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999", "2006-01-02 15:04", "2006-01-02"}

// Convert checks and converts a record value for column c, the way a typed
// database would: SQLite itself would store a non-number in an INTEGER
// column as text without complaint. Dates are stored as YYYY-MM-DD,
// timestamps as RFC 3339 in UTC, booleans as 0 or 1, objects and arrays
// as JSON text. A value that does not fit is a *pgutil.Error with the
// SQLSTATE PostgreSQL would give (22P02, 22007, 22003, 42804).
func Convert(c Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func(code, format string, args ...any) error {
		return &pgutil.Error{Op: "convert", SQLState: code, Column: c.Name, DataType: c.Declared,
			Err: fmt.Errorf("column %s (%s): "+format, append([]any{c.Name, c.Kind}, args...)...)}
	}
	switch c.Kind {
	case KindInteger:
		switch x := v.(type) {
		case int64:
			return x, nil
		case int:
			return int64(x), nil
		case int32:
			return int64(x), nil
		case uint64:
			if x > math.MaxInt64 {
				return nil, bad("22003", "%d is out of range for a 64-bit integer", x)
			}
			return int64(x), nil
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return nil, bad("22P02", "%v is not an integer", x)
			}
			return int64(x), nil
		case json.Number:
			return parseInt(string(x), bad)
		case string:
			return parseInt(strings.TrimSpace(x), bad)
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case KindReal, KindNumeric:
		switch x := v.(type) {
		case int64, int, int32, uint64:
			return x, nil
		case float64:
			return x, nil
		case json.Number:
			return parseNumber(string(x), c.Kind, bad)
		case string:
			return parseNumber(strings.TrimSpace(x), c.Kind, bad)
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case KindBoolean:
		switch x := v.(type) {
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		case int64, int, float64, json.Number:
			s := fmt.Sprint(x)
			if s == "0" || s == "1" {
				return strconv.ParseInt(s, 10, 64)
			}
			return nil, bad("22P02", "%s is not a boolean (0 or 1)", s)
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true", "t", "yes", "y", "1", "on":
				return int64(1), nil
			case "false", "f", "no", "n", "0", "off":
				return int64(0), nil
			}
			return nil, bad("22P02", "%q is not a boolean", truncate(x, 40))
		}
	case KindDate, KindTimestamp, KindTime:
		var t time.Time
		switch x := v.(type) {
		case time.Time:
			t = x
		case string:
			s := strings.TrimSpace(x)
			if c.Kind == KindTime {
				if _, err := time.Parse("15:04:05.999999999", s); err != nil {
					if _, err2 := time.Parse("15:04", s); err2 != nil {
						return nil, bad("22007", "%q is not a time of day (HH:MM[:SS])", truncate(x, 40))
					}
				}
				return s, nil
			}
			var err error
			if t, err = parseTime(s); err != nil {
				return nil, bad("22007", "%q is not a valid %s", truncate(x, 40), c.Kind)
			}
		case int64, float64, json.Number:
			return nil, bad("42804", "a number (%v) is not a %s; convert it in the mapping (for example ts_unix())", x, c.Kind)
		default:
			return nil, bad("42804", "a %s value is not a %s", pgutil.GoTypeName(v), c.Kind)
		}
		switch c.Kind {
		case KindDate:
			return t.Format("2006-01-02"), nil
		case KindTime:
			return t.Format("15:04:05.999999999"), nil
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	case KindText:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return string(x), nil
		case int64, int, int32, uint64, float64, bool:
			return fmt.Sprint(x), nil
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		case []byte:
			return string(x), nil
		case map[string]any, []any:
			b, err := json.Marshal(x)
			if err != nil {
				return nil, bad("22P02", "cannot encode the value as JSON: %v", err)
			}
			return string(b), nil
		}
	case KindBlob:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return x, nil
		case int64, int, float64, json.Number, bool:
			return x, nil
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		case map[string]any, []any:
			b, err := json.Marshal(x)
			if err != nil {
				return nil, bad("22P02", "cannot encode the value as JSON: %v", err)
			}
			return string(b), nil
		}
	}
	return nil, bad("42804", "a %s value does not fit", pgutil.GoTypeName(v))
}

func parseInt(s string, bad func(code, format string, args ...any) error) (any, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		return n, nil
	}
	if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return int64(f), nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return nil, bad("22003", "%q is out of range for a 64-bit integer", truncate(s, 40))
	}
	return nil, bad("22P02", "%q is not an integer", truncate(s, 40))
}

func parseNumber(s string, k Kind, bad func(code, format string, args ...any) error) (any, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return nil, bad("22003", "%q is out of range", truncate(s, 40))
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		return nil, bad("22P02", "%q is not a number", truncate(s, 40))
	}
	if k == KindNumeric && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return int64(f), nil
	}
	return f, nil
}

func parseTime(s string) (time.Time, error) {
	var first error
	for _, l := range timeLayouts {
		t, err := time.Parse(l, s)
		if err == nil {
			return t, nil
		}
		if first == nil {
			first = err
		}
	}
	return time.Time{}, first
}
