package discovery

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// pgConnector reads PostgreSQL's catalog with three bulk queries (relations,
// columns, keys) and profiles with one query per table, sampled with
// TABLESAMPLE SYSTEM when the table is large.
type pgConnector struct {
	pool *pgxpool.Pool
	seed int64
}

type pgHandle struct {
	oid      uint32
	relkind  string
	estimate int64
}

func openPostgres(ctx context.Context, dsn string, opts ConnectorOptions) (Connector, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, &SourceError{Op: "parse DSN", Permanent: true, Err: errors.New(stripDSNEcho(err.Error()))}
	}
	cfg.MaxConns = int32(opts.MaxConns + 1)
	cfg.MinConns = 0
	rp := cfg.ConnConfig.RuntimeParams
	rp["timezone"] = "UTC" // timestamptz text sorts and compares as written
	if rp["application_name"] == "" {
		rp["application_name"] = "agentetl-discovery"
	}
	// Discovery only reads; make that a server-side guarantee.
	rp["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, pgSourceErr("connect", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, pgSourceErr("connect", err)
	}
	return &pgConnector{pool: pool, seed: opts.Seed}, nil
}

// stripDSNEcho drops the quoted connection string pgx's parse errors repeat.
func stripDSNEcho(msg string) string {
	if i := strings.Index(msg, "cannot parse `"); i >= 0 {
		if j := strings.LastIndex(msg, "`: "); j > i {
			return "cannot parse DSN: " + msg[j+3:]
		}
	}
	return msg
}

func pgSourceErr(op string, err error) error {
	w := pgutil.Wrap(op, err)
	return &SourceError{Op: op, Permanent: pgutil.IsPermanent(w), Err: w}
}

func (c *pgConnector) Kind() string { return "postgres" }

func (c *pgConnector) Close() error {
	c.pool.Close()
	return nil
}

const pgRelationsSQL = `
SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.reltuples::float8, c.relpages::int8,
       -- Both functions return NULL for a relation dropped while this
       -- query runs (the catalog snapshot still lists it).
       coalesce(CASE WHEN c.relkind IN ('r','m') THEN pg_catalog.pg_relation_size(c.oid) ELSE 0 END, 0),
       coalesce(d.description, ''),
       coalesce(pg_catalog.has_table_privilege(c.oid, 'SELECT'), false)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_description d
       ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
WHERE c.relkind IN ('r','p','v','m','f')
  AND NOT c.relispartition
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY n.nspname, c.relname`

const pgColumnsSQL = `
SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       coalesce(d.description, ''), t.typcategory::text, t.typlen::int
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_description d
       ON d.objoid = a.attrelid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

const pgKeysSQL = `
SELECT con.conrelid, con.contype::text, con.conname,
       array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o)::text[],
       coalesce(fn.nspname, ''), coalesce(fc.relname, ''),
       coalesce(array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)::text[], '{}')
FROM pg_catalog.pg_constraint con
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = ANY($1::oid[]) AND con.contype IN ('p','f')
ORDER BY con.conrelid, con.contype DESC, con.conname`

var pgKinds = map[string]string{"r": KindTable, "p": KindPartitioned, "v": KindView, "m": KindMaterialized, "f": KindForeign}

func (c *pgConnector) Entities(ctx context.Context, f *Filter) ([]*Entity, []SkippedTable, error) {
	rows, err := c.pool.Query(ctx, pgRelationsSQL)
	if err != nil {
		return nil, nil, pgSourceErr("read catalog", err)
	}
	var (
		ents    []*Entity
		byOID   = map[uint32]*Entity{}
		oids    []uint32
		skipped []SkippedTable
		sizes   = map[uint32][2]int64{} // relpages, size in bytes
	)
	for rows.Next() {
		var (
			oid                uint32
			schema, name, kind string
			reltuples          float64
			relpages, size     int64
			description        string
			canSelect          bool
		)
		if err := rows.Scan(&oid, &schema, &name, &kind, &reltuples, &relpages, &size, &description, &canSelect); err != nil {
			rows.Close()
			return nil, nil, pgSourceErr("read catalog", err)
		}
		if !f.Match(schema, name) {
			continue
		}
		if !canSelect {
			skipped = append(skipped, SkippedTable{Table: qualify(schema, name),
				Reason: "permission denied: the connected role has no SELECT privilege on it"})
			continue
		}
		e := &Entity{Schema: schema, Name: name, Kind: pgKinds[kind], Description: description, RowEstimate: -1}
		if reltuples >= 0 {
			e.RowEstimate = int64(reltuples)
		}
		e.Handle = &pgHandle{oid: oid, relkind: kind}
		sizes[oid] = [2]int64{relpages, size}
		ents = append(ents, e)
		byOID[oid] = e
		oids = append(oids, oid)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, pgSourceErr("read catalog", err)
	}
	if len(ents) == 0 {
		return ents, skipped, nil
	}
	widths := map[uint32]int64{}
	rows, err = c.pool.Query(ctx, pgColumnsSQL, oids)
	if err != nil {
		return nil, nil, pgSourceErr("read columns", err)
	}
	for rows.Next() {
		var (
			oid      uint32
			col      Column
			category string
			typlen   int
		)
		if err := rows.Scan(&oid, &col.Name, &col.DataType, &col.Nullable, &col.Description, &category, &typlen); err != nil {
			rows.Close()
			return nil, nil, pgSourceErr("read columns", err)
		}
		col.Class = pgClass(category, col.DataType)
		if typlen > 0 {
			widths[oid] += int64(typlen)
		} else {
			widths[oid] += 32
		}
		if e := byOID[oid]; e != nil {
			e.Columns = append(e.Columns, col)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, pgSourceErr("read columns", err)
	}
	rows, err = c.pool.Query(ctx, pgKeysSQL, oids)
	if err != nil {
		return nil, nil, pgSourceErr("read keys", err)
	}
	for rows.Next() {
		var (
			oid                           uint32
			contype, name, rschema, rname string
			cols, rcols                   []string
		)
		if err := rows.Scan(&oid, &contype, &name, &cols, &rschema, &rname, &rcols); err != nil {
			rows.Close()
			return nil, nil, pgSourceErr("read keys", err)
		}
		e := byOID[oid]
		if e == nil {
			continue
		}
		if contype == "p" {
			e.PrimaryKey = cols
		} else {
			e.ForeignKeys = append(e.ForeignKeys, ForeignKey{Name: name, Columns: cols, RefTable: qualify(rschema, rname), RefColumns: rcols})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, pgSourceErr("read keys", err)
	}
	// Scale the row estimate to the relation's current size, as the planner
	// does, so a table that grew since its last ANALYZE is still sampled.
	for oid, e := range byOID {
		s := sizes[oid]
		pages := s[1] / 8192
		h := e.Handle.(*pgHandle)
		switch {
		case e.RowEstimate >= 0 && s[0] > 0 && pages > 0:
			e.RowEstimate = int64(float64(e.RowEstimate) / float64(s[0]) * float64(pages))
		case e.RowEstimate < 0 && (h.relkind == "r" || h.relkind == "m"):
			if s[1] == 0 {
				e.RowEstimate = 0
			} else {
				e.RowEstimate = max(1, pages*8192/(widths[oid]+28))
			}
		}
		h.estimate = e.RowEstimate
	}
	return ents, skipped, nil
}

// pgClass maps pg_type.typcategory to a value class.
func pgClass(category, dataType string) ValueClass {
	switch category {
	case "N":
		if dataType == "money" {
			return ClassText
		}
		return ClassNumeric
	case "D":
		return ClassTemporal
	case "B":
		return ClassBoolean
	case "S":
		return ClassText
	case "A", "U", "G", "V", "R", "T", "X":
		if category == "U" && dataType == "uuid" {
			return ClassText
		}
		return ClassOther
	case "I", "E":
		return ClassText // network addresses, enums
	}
	return ClassOf(dataType)
}

func (c *pgConnector) Rows(ctx context.Context, e *Entity, target int64, emit func([][]byte) error) (ReadInfo, error) {
	h := e.Handle.(*pgHandle)
	id := pgutil.Ident{Schema: e.Schema, Name: e.Name}
	var sel strings.Builder
	sel.WriteString("SELECT ")
	if len(e.Columns) == 0 {
		sel.WriteString("NULL")
	}
	for i, col := range e.Columns {
		if i > 0 {
			sel.WriteString(", ")
		}
		sel.WriteString(pgutil.QuoteIdent(col.Name))
		sel.WriteString("::text")
	}
	sel.WriteString(" FROM ")
	sel.WriteString(id.Quoted())

	info := ReadInfo{RowCount: h.estimate}
	var (
		query string
		args  []any
	)
	canSample := h.relkind == "r" || h.relkind == "m" || h.relkind == "p"
	if canSample && h.estimate > target {
		pct := min(100, float64(target)/float64(h.estimate)*100*1.15)
		query = sel.String() + " TABLESAMPLE SYSTEM ($1) REPEATABLE ($2) LIMIT $3"
		args = []any{pct, float64(c.seed), target}
		info.Sampled = true
		info.Method = "TABLESAMPLE SYSTEM (" + strconv.FormatFloat(pct, 'f', 3, 64) + "%) REPEATABLE (" + strconv.FormatInt(c.seed, 10) + ")"
	} else {
		// Small by the catalog's account: read it whole, with a guard in
		// case the estimate is stale or the relation is a view.
		query = sel.String() + " LIMIT $1"
		args = []any{2*target + 1}
	}
	rows, err := c.pool.Query(ctx, query, args...)
	if err != nil {
		return info, pgutil.Wrap("profile "+e.QualifiedName(), err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		n++
		if !info.Sampled && n > 2*target {
			break
		}
		raw := rows.RawValues()
		if len(e.Columns) == 0 {
			raw = nil
		}
		if err := emit(raw); err != nil {
			return info, err
		}
	}
	if err := rows.Err(); err != nil {
		return info, pgutil.Wrap("profile "+e.QualifiedName(), err)
	}
	if !info.Sampled {
		if n > 2*target {
			info.Sampled = true
			info.Method = "first " + strconv.FormatInt(2*target, 10) + " rows (the catalog estimate was too low to sample)"
			info.RowCount = max(h.estimate, n)
		} else {
			info.RowCount, info.RowCountExact = n, true
		}
	}
	return info, nil
}
