// Package pgsink writes batches of structured rows into a PostgreSQL table
// with binary COPY. Each batch is one transaction, so a failed or killed
// batch leaves nothing behind and can be retried whole.
//
// Upsert mode is adaptive: it first tries a plain COPY into the target,
// which is the fastest possible write and, when no key already exists, has
// exactly the effect of an upsert. When a key conflict aborts that COPY the
// batch is redone as COPY into a session-local staging table followed by one
// INSERT ... ON CONFLICT DO UPDATE, and the writer stays on that path for a
// while because conflicts come in runs (a resumed or repeated load).
package pgsink

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// Mode is how rows are written.
type Mode string

// Write modes.
const (
	ModeInsert Mode = "insert"
	ModeUpsert Mode = "upsert"
)

// ColumnDef declares a column for create_table.
type ColumnDef struct {
	Name       string
	Type       string
	Nullable   bool
	PrimaryKey bool
}

// Config describes the destination.
type Config struct {
	DSN   string
	Table string
	Mode  Mode
	// KeyColumns are the conflict target for upsert; empty means the
	// table's primary key.
	KeyColumns []string
	// CreateTable creates the table from Columns when it does not exist.
	CreateTable bool
	Columns     []ColumnDef
	// MaxConns bounds the pool; one connection per in-flight batch.
	MaxConns int
}

// Stats are cumulative counters, safe to read concurrently.
type Stats struct {
	Rows        atomic.Int64
	Batches     atomic.Int64
	DirectCopy  atomic.Int64
	MergeCopy   atomic.Int64
	Conflicts   atomic.Int64
	DedupedRows atomic.Int64
	// AlreadyWritten counts rows of insert batches found identical in the
	// table after a key conflict: a redelivery of rows written before a
	// crash, taken as written instead of failing.
	AlreadyWritten atomic.Int64
}

// Writer writes batches. Write may be called concurrently.
type Writer struct {
	cfg  Config
	pool *pgxpool.Pool
	// table is the resolved destination; it is replaced (never mutated)
	// when a record names a column added after Open.
	table atomic.Pointer[pgutil.Table]
	// refreshMu serialises catalog re-reads.
	refreshMu sync.Mutex
	keys      []string
	// insertKeys is the primary key in insert mode (see insertReplayed).
	insertKeys []string
	// realConflicts remembers the key conflicts (by the server's "Key
	// (id)=(42) already exists" detail) that insertReplayed found to be
	// real duplicates: when error_resolution bisects a batch around such
	// a row, every half that still holds it fails on the same key, and
	// the comparison is not repeated.
	conflictsMu   sync.Mutex
	realConflicts map[string]struct{}
	stage         string // name prefix of the per-session staging table (see stageFor)
	// mergeFor counts the batches still to write through the staging path
	// after the last key conflict.
	mergeFor atomic.Int64
	Stats    Stats
}

// mergeStickiness is how many batches after a key conflict go straight to the
// merge path before a direct COPY is attempted again.
const mergeStickiness = 16

// Open connects, creates the table if asked and validates keys. Failures that
// retrying cannot fix are returned as permanent *pgutil.Error values.
func Open(ctx context.Context, cfg Config) (*Writer, error) {
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeInsert
	case ModeInsert, ModeUpsert:
	default:
		return nil, pgutil.Permanentf("configure postgres output", "unknown mode %q: use insert or upsert", cfg.Mode)
	}
	id, err := pgutil.ParseIdent(cfg.Table)
	if err != nil {
		return nil, pgutil.Permanentf("configure postgres output", "table: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, pgutil.Permanentf("parse dsn", "invalid DSN %s: %s", redact.DSN(cfg.DSN), redact.String(err.Error()))
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = int32(cfg.MaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, pgutil.Wrap("connect to "+redact.DSN(cfg.DSN), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, pgutil.Wrap("connect to "+redact.DSN(cfg.DSN), err)
	}
	w := &Writer{cfg: cfg, pool: pool}
	if err := w.prepare(ctx, id); err != nil {
		pool.Close()
		return nil, err
	}
	return w, nil
}

func (w *Writer) prepare(ctx context.Context, id pgutil.Ident) error {
	t, err := pgutil.LookupTable(ctx, w.pool, id)
	if errors.Is(err, pgutil.ErrTableNotFound) && w.cfg.CreateTable {
		if err := createTable(ctx, w.pool, id, w.cfg.Columns); err != nil {
			return err
		}
		t, err = pgutil.LookupTable(ctx, w.pool, id)
	}
	if err != nil {
		if errors.Is(err, pgutil.ErrTableNotFound) {
			return pgutil.Permanentf("resolve target", "target table %s does not exist; create it or set create_table: true with a columns list", id.String())
		}
		return err
	}
	w.table.Store(t)
	if w.cfg.Mode == ModeUpsert {
		w.keys = w.cfg.KeyColumns
		if len(w.keys) == 0 {
			w.keys = t.PrimaryKey
		}
		if len(w.keys) == 0 {
			return pgutil.Permanentf("check upsert key", "upsert into %s needs a conflict key: the table has no primary key, so set key_columns to the columns of a unique index", t.Ident.String())
		}
		var missing []string
		for _, k := range w.keys {
			if _, ok := t.Column(k); !ok {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return pgutil.MissingColumnError("check upsert key", t, missing)
		}
		if !t.HasUniqueKey(w.keys) {
			return pgutil.Permanentf("check upsert key", "key columns %v of %s are not covered by a primary key or unique index; ON CONFLICT needs one", w.keys, t.Ident.String())
		}
		w.stage = "_agentetl_stage_" + strconv.FormatUint(uint64(t.OID), 10)
	} else if len(t.PrimaryKey) > 0 {
		// Insert mode checks a key conflict against the primary key: a
		// redelivered batch must not fail on its own earlier write.
		w.insertKeys = t.PrimaryKey
	}
	return nil
}

// typePattern accepts the shapes of SQL type names we allow in create_table:
// words, an optional (p) or (p,s) modifier, time zone suffixes and array
// brackets. It keeps user text from carrying anything but a type.
var typePattern = regexp.MustCompile(`^(?i)[a-z_][a-z0-9_]*( [a-z_][a-z0-9_]*){0,3}(\(\s*\d+\s*(,\s*\d+\s*)?\))?( with(out)? time zone)?(\[\])*$`)

func createTable(ctx context.Context, q pgutil.Querier, id pgutil.Ident, cols []ColumnDef) error {
	if len(cols) == 0 {
		return pgutil.Permanentf("create table", "create_table is set but no columns are declared for %s", id.String())
	}
	var defs, pk []string
	seen := map[string]bool{}
	for _, c := range cols {
		if c.Name == "" {
			return pgutil.Permanentf("create table", "a column in the columns list has no name")
		}
		if seen[c.Name] {
			return pgutil.Permanentf("create table", "column %q is declared twice", c.Name)
		}
		seen[c.Name] = true
		typ := strings.TrimSpace(c.Type)
		if !typePattern.MatchString(typ) {
			return pgutil.Permanentf("create table", "column %q: %q is not a valid type name", c.Name, c.Type)
		}
		var ok bool
		if err := q.QueryRow(ctx, "SELECT to_regtype($1) IS NOT NULL", typ).Scan(&ok); err != nil {
			return pgutil.Wrap("create table: check type "+typ, err)
		}
		if !ok {
			return pgutil.Permanentf("create table", "column %q: type %q does not exist", c.Name, c.Type)
		}
		d := pgutil.QuoteIdent(c.Name) + " " + typ
		if !c.Nullable || c.PrimaryKey {
			d += " NOT NULL"
		}
		defs = append(defs, d)
		if c.PrimaryKey {
			pk = append(pk, c.Name)
		}
	}
	if len(pk) > 0 {
		defs = append(defs, "PRIMARY KEY ("+pgutil.QuoteList(pk)+")")
	}
	sql := "CREATE TABLE IF NOT EXISTS " + id.Quoted() + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"
	if _, err := q.Exec(ctx, sql); err != nil {
		return pgutil.Wrap("create table "+id.String(), err)
	}
	return nil
}

// Table is the resolved destination.
func (w *Writer) Table() *pgutil.Table { return w.table.Load() }

// stageFor is the quoted staging table for a version of the destination:
// its name includes the column count, so a session whose staging table was
// created before a column was added gets a new one.
func (w *Writer) stageFor(t *pgutil.Table) string {
	return pgutil.QuoteIdent(w.stage + "_" + strconv.Itoa(len(t.Columns)))
}

// columnsFor is columnsOf, re-reading the destination's columns once when a
// record names a column the cached description does not have: a column
// added while the pipeline runs (additive schema drift, for example by the
// error resolution agent) is then written rather than rejected.
func (w *Writer) columnsFor(ctx context.Context, rows []map[string]any) ([]pgutil.Column, error) {
	cols, err := w.columnsOf(rows)
	if pgutil.SQLState(err) != "42703" {
		return cols, err
	}
	w.refreshMu.Lock()
	defer w.refreshMu.Unlock()
	if cols, err = w.columnsOf(rows); pgutil.SQLState(err) != "42703" {
		return cols, err // another writer refreshed meanwhile
	}
	old := w.table.Load()
	t, lerr := pgutil.LookupTable(ctx, w.pool, old.Ident)
	if lerr != nil || len(t.Columns) == len(old.Columns) {
		return nil, err
	}
	w.table.Store(t)
	return w.columnsOf(rows)
}

// Close closes the pool.
func (w *Writer) Close() { w.pool.Close() }

// Write writes rows in one transaction. All rows are written or none.
func (w *Writer) Write(ctx context.Context, rows []map[string]any) error {
	if len(rows) == 0 {
		return nil
	}
	// The first record decides the columns; encode notices a later record
	// with more fields and the batch is then re-planned on the union.
	cols, err := w.columnsFor(ctx, rows[:1])
	if err != nil {
		return err
	}
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return pgutil.Wrap("acquire connection to "+w.table.Load().Ident.String(), err)
	}
	defer conn.Release()
	tm := conn.Conn().TypeMap()
	// Encoding happens before any statement is sent: a value that does not
	// fit its column fails the batch without touching the table.
	buf := getBuf()
	defer putBuf(buf)
	data, err := w.encode(tm, (*buf)[:0], cols, rows)
	if errors.Is(err, errWiderRecord) {
		if cols, err = w.columnsFor(ctx, rows); err == nil {
			data, err = w.encode(tm, data[:0], cols, rows)
		}
	}
	*buf = data
	if err != nil {
		return err
	}
	if w.cfg.Mode == ModeInsert {
		err = w.copyDirect(ctx, conn.Conn(), cols, data)
		if err != nil && pgutil.SQLState(err) == "23505" && hasAll(cols, w.insertKeys) {
			// Delivery is at least once: after a crash, rows written but not
			// yet acknowledged come again. If every conflicting row is
			// identical to the stored one, the batch was (partly) written
			// before; the rest is inserted. Any other conflict keeps the
			// error, so a real duplicate key is never hidden.
			detail := conflictDetail(err)
			if !w.knownConflict(detail) {
				if done, rerr := w.insertReplayed(ctx, conn.Conn(), cols, rows, detail); rerr != nil {
					return rerr
				} else if done {
					err = nil
				} else {
					w.rememberConflict(detail)
				}
			}
		}
	} else {
		err = w.upsert(ctx, conn.Conn(), tm, cols, rows, data)
	}
	if err != nil {
		return err
	}
	w.Stats.Rows.Add(int64(len(rows)))
	w.Stats.Batches.Add(1)
	return nil
}

// columnsOf is the union of the rows' field names, in table order. A field
// the table does not have is a schema error, reported with the table's
// actual columns, never silently dropped.
func (w *Writer) columnsOf(rows []map[string]any) ([]pgutil.Column, error) {
	t := w.table.Load()
	present := make(map[string]bool, len(t.Columns))
	var unknown []string
	for _, r := range rows {
		for k := range r {
			if present[k] {
				continue
			}
			if _, ok := t.Column(k); ok {
				present[k] = true
			} else if !slices.Contains(unknown, k) {
				unknown = append(unknown, k)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, pgutil.MissingColumnError("write "+t.Ident.String(), t, unknown)
	}
	var cols []pgutil.Column
	for _, c := range t.Columns {
		if present[c.Name] {
			cols = append(cols, c)
		}
	}
	for _, k := range w.keys {
		if !present[k] {
			return nil, pgutil.Permanentf("write "+t.Ident.String(), "upsert key column %q is missing from the records", k)
		}
	}
	return cols, nil
}

// encode renders rows as a binary COPY stream for cols. An error names the
// record and column; a value whose Go type the column type cannot take at all
// (text into integer, timestamp into boolean) is a permanent error, since no
// retry changes the types.
func (w *Writer) encode(tm *pgtype.Map, buf []byte, cols []pgutil.Column, rows []map[string]any) ([]byte, error) {
	encs := make([]*pgutil.Encoder, len(cols))
	for i, c := range cols {
		encs[i] = pgutil.NewEncoder(tm, c.TypeOID)
	}
	buf = append(buf, copyHeader...)
	var err error
	for ri, r := range rows {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(cols)))
		found := 0
		for ci, c := range cols {
			v, ok := r[c.Name]
			if ok {
				found++
			}
			if buf, err = encs[ci].Append(buf, v); err != nil {
				e := &pgutil.Error{Op: "write " + w.table.Load().Ident.String(), Table: w.table.Load().Ident.String(), Column: c.Name, DataType: c.TypeName, Record: ri + 1,
					Err: fmt.Errorf("record %d: column %q is %s: %w (value %s)", ri, c.Name, c.TypeName, err, preview(v))}
				if errors.Is(err, pgutil.ErrIncompatible) {
					e.Permanent, e.SQLState = true, "42804"
				} else {
					e.SQLState = "22P02"
				}
				return buf, e
			}
		}
		if found != len(r) {
			return buf, errWiderRecord
		}
	}
	return binary.BigEndian.AppendUint16(buf, 0xFFFF), nil
}

// errWiderRecord means a record has fields outside the planned columns.
var errWiderRecord = errors.New("record has more fields than the planned columns")

// copyHeader is the binary COPY signature, flags and header extension length.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<20 { // do not keep huge one-off buffers alive
		bufPool.Put(b)
	}
}

func copyIn(ctx context.Context, conn *pgx.Conn, table string, cols []pgutil.Column, data []byte) error {
	_, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(data),
		"COPY "+table+" ("+pgutil.QuoteList(names(cols))+") FROM STDIN (FORMAT binary)")
	return err
}

func (w *Writer) copyDirect(ctx context.Context, conn *pgx.Conn, cols []pgutil.Column, data []byte) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return pgutil.Wrap("begin", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if err := copyIn(ctx, conn, w.table.Load().Ident.Quoted(), cols, data); err != nil {
		return pgutil.Wrap("copy into "+w.table.Load().Ident.String(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return pgutil.Wrap("commit copy into "+w.table.Load().Ident.String(), err)
	}
	w.Stats.DirectCopy.Add(1)
	return nil
}

func (w *Writer) upsert(ctx context.Context, conn *pgx.Conn, tm *pgtype.Map, cols []pgutil.Column, rows []map[string]any, data []byte) error {
	if w.mergeFor.Load() <= 0 {
		err := w.copyDirect(ctx, conn, cols, data)
		if err == nil || pgutil.SQLState(err) != "23505" {
			return err
		}
		w.Stats.Conflicts.Add(1)
		w.mergeFor.Store(mergeStickiness)
	} else {
		w.mergeFor.Add(-1)
	}
	if deduped := w.dedupe(rows); len(deduped) != len(rows) {
		var err error
		if data, err = w.encode(tm, make([]byte, 0, len(data)), cols, deduped); err != nil {
			return err
		}
	}
	return w.merge(ctx, conn, cols, data)
}

// dedupe keeps the last row of each key: ON CONFLICT cannot touch one row
// twice in a statement, and the last write is what an upsert stream means.
func (w *Writer) dedupe(rows []map[string]any) []map[string]any {
	idx := make(map[string]int, len(rows))
	var b strings.Builder
	dups := 0
	for i, r := range rows {
		b.Reset()
		for _, k := range w.keys {
			fmt.Fprintf(&b, "%v\x00", r[k])
		}
		if _, ok := idx[b.String()]; ok {
			dups++
		}
		idx[b.String()] = i
	}
	if dups == 0 {
		return rows
	}
	w.Stats.DedupedRows.Add(int64(dups))
	keep := make([]int, 0, len(idx))
	for _, i := range idx {
		keep = append(keep, i)
	}
	sort.Ints(keep)
	out := make([]map[string]any, len(keep))
	for j, i := range keep {
		out[j] = rows[i]
	}
	return out
}

func (w *Writer) merge(ctx context.Context, conn *pgx.Conn, cols []pgutil.Column, data []byte) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return pgutil.Wrap("begin", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	// The staging table lives for the session and is emptied at each commit;
	// LIKE copies the target's column types so COPY encodes identically.
	stage := w.stageFor(w.table.Load())
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+stage+" (LIKE "+w.table.Load().Ident.Quoted()+" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"); err != nil {
		return pgutil.Wrap("create staging table for "+w.table.Load().Ident.String(), err)
	}
	if err := copyIn(ctx, conn, stage, cols, data); err != nil {
		return pgutil.Wrap("copy into staging for "+w.table.Load().Ident.String(), err)
	}
	if _, err := tx.Exec(ctx, w.mergeSQL(cols, stage)); err != nil {
		return pgutil.Wrap("merge into "+w.table.Load().Ident.String(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return pgutil.Wrap("commit merge into "+w.table.Load().Ident.String(), err)
	}
	w.Stats.MergeCopy.Add(1)
	return nil
}

// insertReplayed checks an insert batch that hit a key conflict and
// inserts it when the batch has no duplicate keys of its own and every row
// whose key is already in the table equals it in the written columns. It
// reports false, writing nothing, when a conflict is a real one, or when
// the rows cannot be compared (the caller keeps the original error).
//
// The rows travel as one jsonb parameter read with jsonb_populate_recordset,
// so a real duplicate costs one round trip: error_resolution isolates such
// rows by bisection, which makes this check run once per failing part.
func (w *Writer) insertReplayed(ctx context.Context, conn *pgx.Conn, cols []pgutil.Column, rows []map[string]any, detail string) (bool, error) {
	target := w.table.Load().Ident
	if w.namedConflictIsReal(ctx, conn, cols, rows, detail) {
		return false, nil
	}
	doc := make([]map[string]any, len(rows))
	for i, r := range rows {
		m := make(map[string]any, len(cols))
		for _, c := range cols {
			m[c.Name] = r[c.Name]
		}
		doc[i] = m
	}
	payload, err := json.Marshal(doc)
	if err != nil {
		return false, nil
	}
	src := "jsonb_populate_recordset(NULL::" + target.Quoted() + ", $1::jsonb)"
	keys := pgutil.QuoteList(w.insertKeys)
	var on []string
	for _, k := range w.insertKeys {
		q := pgutil.QuoteIdent(k)
		on = append(on, "t."+q+" = s."+q)
	}
	differ := rowsDiffer(cols, w.insertKeys, "t", "s")
	if differ == "" {
		differ = "false"
	}
	var dupInBatch, differing, present int64
	err = conn.QueryRow(ctx, `WITH s AS MATERIALIZED (SELECT * FROM `+src+`) SELECT
		(SELECT count(*) FROM (SELECT 1 FROM s GROUP BY `+keys+` HAVING count(*) > 1) d),
		(SELECT count(*) FROM s JOIN `+target.Quoted()+` t ON `+strings.Join(on, " AND ")+` WHERE `+differ+`),
		(SELECT count(*) FROM s JOIN `+target.Quoted()+` t ON `+strings.Join(on, " AND ")+`)`, payload).Scan(&dupInBatch, &differing, &present)
	if err != nil {
		if pgutil.IsConnectionError(err) {
			return false, pgutil.Wrap("compare conflicting rows of "+target.String(), err)
		}
		return false, nil
	}
	if dupInBatch > 0 || differing > 0 {
		return false, nil
	}
	list := pgutil.QuoteList(names(cols))
	if _, err := conn.Exec(ctx, "INSERT INTO "+target.Quoted()+" ("+list+") SELECT "+list+" FROM "+src+" ON CONFLICT ("+keys+") DO NOTHING", payload); err != nil {
		return false, pgutil.Wrap("insert into "+target.String(), err)
	}
	w.Stats.AlreadyWritten.Add(present)
	return true, nil
}

// keyDetail reads the key value of a single-column key conflict from the
// server's detail, `Key (id)=(42) already exists.`
var keyDetail = regexp.MustCompile(`^Key \((.+)\)=\((.*)\) already exists\.?$`)

// namedConflictIsReal looks only at the row the server named: with a
// single-column key it finds that row in the batch and compares it with the
// stored one in one small query. True means a real duplicate (twice in the
// batch, or stored with other values); false means the whole batch must be
// checked.
func (w *Writer) namedConflictIsReal(ctx context.Context, conn *pgx.Conn, cols []pgutil.Column, rows []map[string]any, detail string) bool {
	m := keyDetail.FindStringSubmatch(detail)
	if m == nil || len(w.insertKeys) != 1 || m[1] != w.insertKeys[0] && m[1] != pgutil.QuoteIdent(w.insertKeys[0]) {
		return false
	}
	key := w.insertKeys[0]
	match := keyMatcher(m[2])
	var found map[string]any
	for _, r := range rows {
		if v, ok := r[key]; ok && v != nil && match(v) {
			if found != nil {
				return true // the key twice in the batch
			}
			found = r
		}
	}
	if found == nil {
		return false
	}
	differ := rowsDiffer(cols, w.insertKeys, "t", "s")
	if differ == "" {
		return false
	}
	row := make(map[string]any, len(cols))
	for _, c := range cols {
		row[c.Name] = found[c.Name]
	}
	payload, err := json.Marshal(row)
	if err != nil {
		return false
	}
	target := w.table.Load().Ident
	q := pgutil.QuoteIdent(key)
	var differs bool
	err = conn.QueryRow(ctx, `SELECT `+differ+`
		FROM jsonb_populate_record(NULL::`+target.Quoted()+`, $1::jsonb) s JOIN `+target.Quoted()+` t ON t.`+q+` = s.`+q, payload).Scan(&differs)
	return err == nil && differs
}

// keyMatcher returns a test of a record's key value against the text the
// server printed. Integer and string keys, the common ones, compare
// without formatting: the test runs over every record of a failing batch.
func keyMatcher(text string) func(v any) bool {
	n, nerr := strconv.ParseInt(text, 10, 64)
	return func(v any) bool {
		switch x := v.(type) {
		case int64:
			return nerr == nil && x == n
		case int:
			return nerr == nil && int64(x) == n
		case int32:
			return nerr == nil && int64(x) == n
		case string:
			return x == text
		case json.Number:
			return string(x) == text
		}
		return fmt.Sprint(v) == text
	}
}

// conflictDetail is the server's detail of a key conflict, naming the key.
func conflictDetail(err error) string {
	var pe *pgutil.Error
	if errors.As(err, &pe) {
		return pe.Detail
	}
	return ""
}

func (w *Writer) knownConflict(detail string) bool {
	if detail == "" {
		return false
	}
	w.conflictsMu.Lock()
	defer w.conflictsMu.Unlock()
	_, ok := w.realConflicts[detail]
	return ok
}

// rememberConflict keeps at most 10,000 details; the set starts over when
// full, which only costs repeated comparisons.
func (w *Writer) rememberConflict(detail string) {
	if detail == "" {
		return
	}
	w.conflictsMu.Lock()
	defer w.conflictsMu.Unlock()
	if w.realConflicts == nil || len(w.realConflicts) >= 10000 {
		w.realConflicts = map[string]struct{}{}
	}
	w.realConflicts[detail] = struct{}{}
}

// hasAll reports whether cols include every one of keys (and keys is not
// empty).
func hasAll(cols []pgutil.Column, keys []string) bool {
	if len(keys) == 0 {
		return false
	}
	for _, k := range keys {
		if !slices.ContainsFunc(cols, func(c pgutil.Column) bool { return c.Name == k }) {
			return false
		}
	}
	return true
}

func (w *Writer) mergeSQL(cols []pgutil.Column, stage string) string {
	list := pgutil.QuoteList(names(cols))
	isKey := map[string]bool{}
	for _, k := range w.keys {
		isKey[k] = true
	}
	var sets []string
	for _, c := range cols {
		if isKey[c.Name] {
			continue
		}
		q := pgutil.QuoteIdent(c.Name)
		sets = append(sets, q+" = EXCLUDED."+q)
	}
	sql := "INSERT INTO " + w.table.Load().Ident.Quoted() + " AS t (" + list + ") SELECT " + list + " FROM " + stage +
		" ON CONFLICT (" + pgutil.QuoteList(w.keys) + ") DO "
	if len(sets) == 0 {
		return sql + "NOTHING"
	}
	// Rows that are already identical are not rewritten: a replayed batch
	// then costs no dead tuples and no WAL.
	return sql + "UPDATE SET " + strings.Join(sets, ", ") + " WHERE " + rowsDiffer(cols, w.keys, "t", "EXCLUDED")
}

// rowsDiffer is the SQL condition "row a differs from row b in a non-key
// column of cols" (NULLs compare as values), or "" when every column is a
// key. The trailing NULL keeps a single column a row constructor.
func rowsDiffer(cols []pgutil.Column, keys []string, a, b string) string {
	var left, right []string
	for _, c := range cols {
		if slices.Contains(keys, c.Name) {
			continue
		}
		q := pgutil.QuoteIdent(c.Name)
		left, right = append(left, a+"."+q), append(right, b+"."+q)
	}
	if len(left) == 0 {
		return ""
	}
	return "(" + strings.Join(left, ", ") + ",NULL) IS DISTINCT FROM (" + strings.Join(right, ", ") + ",NULL)"
}

func names(cols []pgutil.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

func preview(v any) string {
	s := fmt.Sprintf("%v", v)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(redact.String(s))
}

// Truncate empties the destination table: the effect of a TRUNCATE of the
// source in a change stream.
func (w *Writer) Truncate(ctx context.Context) error {
	t := w.table.Load()
	if _, err := w.pool.Exec(ctx, "TRUNCATE "+t.Ident.Quoted()); err != nil {
		return pgutil.Wrap("truncate "+t.Ident.String(), err)
	}
	return nil
}

// WriteChanges is Write for a stream of changes, in upsert mode: a row whose
// del flag is set deletes the row with its key instead of being upserted.
// Within the batch the last change of each key decides (an insert then a
// delete of one key deletes it, a delete then an insert keeps the insert);
// the deletes (DELETE ... USING a staging table of keys) and the upserts
// run in one transaction. A batch without deletes is exactly Write.
func (w *Writer) WriteChanges(ctx context.Context, rows []map[string]any, del []bool) error {
	if !slices.Contains(del, true) {
		return w.Write(ctx, rows)
	}
	t := w.table.Load()
	op := "write " + t.Ident.String()
	if w.cfg.Mode != ModeUpsert {
		return pgutil.Permanentf(op, "record %d is a delete, which needs mode: upsert (mode %s only appends)", slices.Index(del, true)+1, w.cfg.Mode)
	}
	keyCols := make([]pgutil.Column, len(w.keys))
	for i, k := range w.keys {
		keyCols[i], _ = t.Column(k)
	}
	// The last change per key wins, in batch order.
	last := make(map[string]int, len(rows))
	var b strings.Builder
	for i, r := range rows {
		b.Reset()
		for _, k := range w.keys {
			v, ok := r[k]
			if !ok || v == nil {
				return pgutil.Permanentf(op, "record %d has no value for key column %q, so it cannot be applied as a change", i+1, k)
			}
			fmt.Fprintf(&b, "%v\x00", v)
		}
		last[b.String()] = i
	}
	keep := make([]int, 0, len(last))
	for _, i := range last {
		keep = append(keep, i)
	}
	sort.Ints(keep)
	var upserts, deletes []map[string]any
	for _, i := range keep {
		if del[i] {
			k := make(map[string]any, len(w.keys))
			for _, c := range w.keys {
				k[c] = rows[i][c]
			}
			deletes = append(deletes, k)
		} else {
			upserts = append(upserts, rows[i])
		}
	}
	var cols []pgutil.Column
	if len(upserts) > 0 {
		var err error
		if cols, err = w.columnsFor(ctx, upserts); err != nil {
			return err
		}
	}
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return pgutil.Wrap("acquire connection to "+t.Ident.String(), err)
	}
	defer conn.Release()
	tm := conn.Conn().TypeMap()
	keyData, err := w.encode(tm, nil, keyCols, deletes)
	if err != nil {
		return err
	}
	var data []byte
	if len(upserts) > 0 {
		if data, err = w.encode(tm, nil, cols, upserts); err != nil {
			return err
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return pgutil.Wrap("begin", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	target := w.table.Load().Ident.Quoted()
	stage := pgutil.QuoteIdent(w.stage + "_del")
	keyList := pgutil.QuoteList(w.keys)
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+stage+" ON COMMIT DELETE ROWS AS SELECT "+keyList+" FROM "+target+" WITH NO DATA"); err != nil {
		return pgutil.Wrap("create delete staging table for "+t.Ident.String(), err)
	}
	if err := copyIn(ctx, conn.Conn(), stage, keyCols, keyData); err != nil {
		return pgutil.Wrap("copy keys to delete from "+t.Ident.String(), err)
	}
	match := make([]string, len(w.keys))
	for i, k := range w.keys {
		q := pgutil.QuoteIdent(k)
		match[i] = "t." + q + " = d." + q
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+target+" AS t USING "+stage+" AS d WHERE "+strings.Join(match, " AND ")); err != nil {
		return pgutil.Wrap("delete from "+t.Ident.String(), err)
	}
	if len(upserts) > 0 {
		mstage := w.stageFor(w.table.Load())
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+mstage+" (LIKE "+target+" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"); err != nil {
			return pgutil.Wrap("create staging table for "+t.Ident.String(), err)
		}
		if err := copyIn(ctx, conn.Conn(), mstage, cols, data); err != nil {
			return pgutil.Wrap("copy into staging for "+t.Ident.String(), err)
		}
		if _, err := tx.Exec(ctx, w.mergeSQL(cols, mstage)); err != nil {
			return pgutil.Wrap("merge into "+t.Ident.String(), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return pgutil.Wrap("commit changes to "+t.Ident.String(), err)
	}
	w.Stats.Rows.Add(int64(len(rows)))
	w.Stats.Batches.Add(1)
	w.Stats.MergeCopy.Add(1)
	return nil
}
