// Package pgsource reads a PostgreSQL table or query in bounded pages with
// keyset pagination: each page is one short statement "key > last ORDER BY
// key LIMIT n", so there is no OFFSET cost, no long transaction holding back
// vacuum, and memory is bounded by the page size whatever the table size.
package pgsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// Config describes what to read.
type Config struct {
	DSN string
	// Table is "name" or "schema.name"; see pgutil.ParseIdent. Exactly one of
	// Table and Query is set.
	Table string
	// Query is a SELECT whose result is paged on KeyColumn. The key must be
	// unique in the result; it cannot be checked for a query.
	Query     string
	KeyColumn string
	// Columns restricts the columns read from Table; empty means all.
	Columns  []string
	PageSize int
	// Prefetch is how many pages are fetched ahead of the consumer. Pages
	// are held in memory, so memory is (Prefetch+in-flight) x PageSize rows.
	Prefetch int
}

// Page is one page of rows.
type Page struct {
	Number int
	Rows   []map[string]any
	// LastKey is the key of the last row, in PostgreSQL text form: the
	// position to persist once the page is processed.
	LastKey string
}

// Position is what a checkpoint stores: the key in text form and the type it
// belongs to, so a resume against a changed key type fails loudly instead of
// comparing apples with oranges.
type Position struct {
	Key     string `json:"key"`
	KeyType uint32 `json:"keyType"`
	Page    int    `json:"page"`
}

// Reader pages through a relation. It is not safe for concurrent Next calls.
type Reader struct {
	cfg      Config
	pool     *pgxpool.Pool
	source   string // display name for messages
	table    *pgutil.Table
	cols     []string
	keyOID   uint32
	firstSQL string
	nextSQL  string

	// tm is this reader's type map: pgtype.Map caches plans without locks,
	// so it is never shared between readers. Only the prefetch goroutine
	// uses it once reading starts.
	tm *pgtype.Map

	pos     any // native key value of the last delivered row; nil before the first page
	posText string
	page    int

	prefetch chan result
	cancel   context.CancelFunc
	done     bool
}

type result struct {
	page    *Page
	lastKey any
	err     error
}

// Open connects and validates the source: the table and key column exist and
// the key is unique. Failures that cannot be fixed by retrying are returned
// as permanent *pgutil.Error values.
func Open(ctx context.Context, cfg Config) (*Reader, error) {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 10000
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 1
	}
	if (cfg.Table == "") == (cfg.Query == "") {
		return nil, pgutil.Permanentf("configure postgres input", "exactly one of table and query must be set")
	}
	if cfg.KeyColumn == "" {
		return nil, pgutil.Permanentf("configure postgres input", "key_column must be set")
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, pgutil.Permanentf("parse dsn", "invalid DSN %s: %s", redact.DSN(cfg.DSN), redact.String(err.Error()))
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, pgutil.Wrap("connect to "+redact.DSN(cfg.DSN), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, pgutil.Wrap("connect to "+redact.DSN(cfg.DSN), err)
	}
	r := &Reader{cfg: cfg, pool: pool, tm: pgtype.NewMap()}
	if err := r.prepare(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) prepare(ctx context.Context) error {
	key := pgutil.QuoteIdent(r.cfg.KeyColumn)
	if r.cfg.Table != "" {
		id, err := pgutil.ParseIdent(r.cfg.Table)
		if err != nil {
			return pgutil.Permanentf("configure postgres input", "table: %w", err)
		}
		t, err := pgutil.LookupTable(ctx, r.pool, id)
		if err != nil {
			return err
		}
		r.table, r.source = t, t.Ident.String()
		kc, ok := t.Column(r.cfg.KeyColumn)
		if !ok {
			return &pgutil.Error{Op: "check key column", Permanent: true, SQLState: "42703", Table: r.source, Column: r.cfg.KeyColumn,
				Err: fmt.Errorf("key column %q does not exist in %s (it has: %v)", r.cfg.KeyColumn, r.source, t.ColumnNames())}
		}
		if (t.Kind == "r" || t.Kind == "p") && !t.HasUniqueKey([]string{r.cfg.KeyColumn}) {
			return pgutil.Permanentf("check key column",
				"key column %q of %s is not unique: keyset pagination needs a primary key or a unique index on exactly that column, or rows would be skipped", r.cfg.KeyColumn, r.source)
		}
		r.keyOID = kc.TypeOID
		r.cols = t.ColumnNames()
		if len(r.cfg.Columns) > 0 {
			var missing []string
			for _, c := range r.cfg.Columns {
				if _, ok := t.Column(c); !ok {
					missing = append(missing, c)
				}
			}
			if len(missing) > 0 {
				return pgutil.MissingColumnError("check columns", t, missing)
			}
			r.cols = r.cfg.Columns
		}
		sel := "SELECT " + pgutil.QuoteList(r.cols) + " FROM " + t.Ident.Quoted()
		r.firstSQL = sel + " WHERE " + key + " IS NOT NULL ORDER BY " + key + " LIMIT $1"
		r.nextSQL = sel + " WHERE " + key + " > $2 ORDER BY " + key + " LIMIT $1"
		return nil
	}
	// A query is wrapped as a derived table; its text is the user's SQL by
	// definition, everything we add around it is quoted.
	r.source = "query"
	sub := "SELECT * FROM (" + r.cfg.Query + "\n) AS " + pgutil.QuoteIdent("_agentetl_q")
	rows, err := r.pool.Query(ctx, sub+" LIMIT 0")
	if err != nil {
		return pgutil.Wrap("check query", err)
	}
	fds := rows.FieldDescriptions()
	rows.Close()
	if err := rows.Err(); err != nil {
		return pgutil.Wrap("check query", err)
	}
	found := false
	for _, fd := range fds {
		r.cols = append(r.cols, fd.Name)
		if fd.Name == r.cfg.KeyColumn {
			r.keyOID, found = fd.DataTypeOID, true
		}
	}
	if !found {
		return &pgutil.Error{Op: "check key column", Permanent: true, SQLState: "42703", Column: r.cfg.KeyColumn,
			Err: fmt.Errorf("key column %q is not in the query result (it has: %v)", r.cfg.KeyColumn, r.cols)}
	}
	r.firstSQL = sub + " WHERE " + key + " IS NOT NULL ORDER BY " + key + " LIMIT $1"
	r.nextSQL = sub + " WHERE " + key + " > $2 ORDER BY " + key + " LIMIT $1"
	return nil
}

// Source names the relation being read, schema-qualified.
func (r *Reader) Source() string { return r.source }

// Columns lists the columns read, in order.
func (r *Reader) Columns() []string { return r.cols }

// Resume continues after a stored position instead of from the start.
func (r *Reader) Resume(raw string) error {
	var p Position
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return pgutil.Permanentf("resume", "stored checkpoint %q is not a position: %w", raw, err)
	}
	if p.KeyType != r.keyOID {
		return pgutil.Permanentf("resume", "stored checkpoint is for a key of type oid %d but %q is now oid %d; delete the checkpoint to start over", p.KeyType, r.cfg.KeyColumn, r.keyOID)
	}
	v, err := decodeText(r.tm, r.keyOID, p.Key)
	if err != nil {
		return pgutil.Permanentf("resume", "stored checkpoint key %q cannot be read as oid %d: %w", p.Key, r.keyOID, err)
	}
	r.pos, r.posText, r.page = v, p.Key, p.Page
	return nil
}

// EncodePosition renders a page's end as a checkpoint value.
func (r *Reader) EncodePosition(p *Page) string {
	b, _ := json.Marshal(Position{Key: p.LastKey, KeyType: r.keyOID, Page: p.Number})
	return string(b)
}

// Next returns the next page, or io.EOF after the last one. On error the
// reader can be called again and resumes after the last page it returned.
func (r *Reader) Next(ctx context.Context) (*Page, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.prefetch == nil {
		r.startPrefetch()
	}
	select {
	case res, ok := <-r.prefetch:
		if !ok {
			r.prefetch = nil
			return nil, errors.New("prefetch stopped")
		}
		if res.err != nil {
			r.stopPrefetch()
			if errors.Is(res.err, io.EOF) {
				r.done = true
			}
			return nil, res.err
		}
		r.pos, r.posText = res.lastKey, res.page.LastKey
		r.page = res.page.Number
		return res.page, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Reader) startPrefetch() {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan result, r.cfg.Prefetch)
	r.prefetch, r.cancel = ch, cancel
	pos, page := r.pos, r.page
	go func() {
		defer close(ch)
		for {
			p, last, err := r.fetch(ctx, pos, page+1)
			if err == nil && len(p.Rows) == 0 {
				err = io.EOF
			}
			select {
			case ch <- result{page: p, lastKey: last, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			if len(p.Rows) < r.cfg.PageSize {
				select {
				case ch <- result{err: io.EOF}:
				case <-ctx.Done():
				}
				return
			}
			pos, page = last, p.Number
		}
	}()
}

func (r *Reader) stopPrefetch() {
	if r.cancel != nil {
		r.cancel()
	}
	if r.prefetch != nil {
		for range r.prefetch { //nolint:revive // drain so the goroutine exits
		}
	}
	r.prefetch, r.cancel = nil, nil
}

func (r *Reader) fetch(ctx context.Context, after any, number int) (*Page, any, error) {
	var rows pgx.Rows
	var err error
	if after == nil {
		rows, err = r.pool.Query(ctx, r.firstSQL, r.cfg.PageSize)
	} else {
		rows, err = r.pool.Query(ctx, r.nextSQL, r.cfg.PageSize, after)
	}
	if err != nil {
		return nil, nil, pgutil.Wrap("read page "+strconv.Itoa(number)+" of "+r.source, err)
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	names := make([]string, len(fds))
	decoders := make([]pgutil.Decoder, len(fds))
	keyIdx := -1
	for i, fd := range fds {
		names[i] = fd.Name
		decoders[i] = pgutil.NewDecoder(r.tm, fd.DataTypeOID, fd.Format)
		if fd.Name == r.cfg.KeyColumn {
			keyIdx = i
		}
	}
	p := &Page{Number: number, Rows: make([]map[string]any, 0, r.cfg.PageSize)}
	var last any
	for rows.Next() {
		raw := rows.RawValues()
		m := make(map[string]any, len(raw))
		for i, b := range raw {
			if b == nil {
				m[names[i]] = nil
				continue
			}
			v, err := decoders[i](b)
			if err != nil {
				return nil, nil, pgutil.Wrap("decode column "+strconv.Quote(names[i])+" of "+r.source, err)
			}
			m[names[i]] = v
		}
		last = m[names[keyIdx]]
		p.Rows = append(p.Rows, m)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, pgutil.Wrap("read page "+strconv.Itoa(number)+" of "+r.source, err)
	}
	if last != nil {
		txt, err := encodeText(r.tm, r.keyOID, last)
		if err != nil {
			return nil, nil, fmt.Errorf("encode key position: %w", err)
		}
		p.LastKey = txt
		// The next page's parameter is decoded from the text form by pgx,
		// which can always encode its own values for the key's type.
		if last, err = decodeText(r.tm, r.keyOID, txt); err != nil {
			return nil, nil, fmt.Errorf("decode key position %q: %w", txt, err)
		}
	}
	return p, last, nil
}

// Close stops prefetching and closes the pool.
func (r *Reader) Close() {
	r.stopPrefetch()
	r.pool.Close()
}

func encodeText(typeMap *pgtype.Map, oid uint32, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return string(x), nil
	}
	b, err := typeMap.Encode(oid, pgtype.TextFormatCode, v, nil)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func decodeText(typeMap *pgtype.Map, oid uint32, s string) (any, error) {
	t, ok := typeMap.TypeForOID(oid)
	if !ok {
		return s, nil // unknown type: sent as text and cast by the server
	}
	return t.Codec.DecodeValue(typeMap, oid, pgtype.TextFormatCode, []byte(s))
}
