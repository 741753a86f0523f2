package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// tableInfo is a captured table as the catalog describes it at connect time.
type tableInfo struct {
	ident     pgutil.Ident // Schema always set
	oid       uint32
	kind      string // r table, p partitioned table
	replIdent byte   // d default, n nothing, f full, i index
	cols      []colInfo
	pk        []string
	identIdx  []string // columns of the REPLICA IDENTITY USING INDEX index
	// keys identify a row downstream: the primary key, else the replica
	// identity index, else (REPLICA IDENTITY FULL) every column.
	keys []string
}

type colInfo struct {
	name     string
	typeOID  uint32
	typmod   int32
	typeName string
}

func tableKey(schema, name string) string { return schema + "\x00" + name }

// checkWALLevel turns a wal_level that cannot decode changes into an error
// that says how to fix it.
func checkWALLevel(level string) error {
	if level == "logical" {
		return nil
	}
	return pgutil.Permanentf("check wal_level",
		"change data capture needs wal_level=logical, but the server runs with wal_level=%s: run ALTER SYSTEM SET wal_level = logical (or set wal_level = logical in postgresql.conf) and restart PostgreSQL", level)
}

func loadTable(ctx context.Context, conn *pgx.Conn, id pgutil.Ident) (*tableInfo, error) {
	const resolve = `
SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relreplident::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = $1
  AND c.relkind IN ('r','p','v','m','f')
  AND (($2 = '' AND n.nspname = ANY (current_schemas(false))) OR n.nspname = $2)
ORDER BY array_position(current_schemas(false), n.nspname) NULLS LAST
LIMIT 1`
	t := &tableInfo{}
	var ident string
	err := conn.QueryRow(ctx, resolve, id.Name, id.Schema).Scan(&t.oid, &t.ident.Schema, &t.ident.Name, &t.kind, &ident)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &pgutil.Error{Op: "resolve table", Permanent: true, SQLState: "42P01", Table: id.String(),
			Err: fmt.Errorf("%w: %s does not exist or is not visible to this role", pgutil.ErrTableNotFound, id.String())}
	}
	if err != nil {
		return nil, pgutil.Wrap("resolve table "+id.String(), err)
	}
	if t.kind != "r" && t.kind != "p" {
		return nil, pgutil.Permanentf("resolve table", "%s is not a table (relkind %s): logical replication captures tables only", t.ident.String(), t.kind)
	}
	t.replIdent = ident[0]
	rows, err := conn.Query(ctx, `
SELECT a.attname, a.atttypid, a.atttypmod, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum`, t.oid)
	if err != nil {
		return nil, pgutil.Wrap("read columns of "+t.ident.String(), err)
	}
	for rows.Next() {
		var c colInfo
		if err := rows.Scan(&c.name, &c.typeOID, &c.typmod, &c.typeName); err != nil {
			rows.Close()
			return nil, pgutil.Wrap("read columns of "+t.ident.String(), err)
		}
		t.cols = append(t.cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, pgutil.Wrap("read columns of "+t.ident.String(), err)
	}
	rows, err = conn.Query(ctx, `
SELECT i.indisprimary, i.indisreplident,
       array(SELECT a.attname FROM unnest(i.indkey[0:i.indnkeyatts-1]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord)::text[]
FROM pg_catalog.pg_index i
WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident)`, t.oid)
	if err != nil {
		return nil, pgutil.Wrap("read keys of "+t.ident.String(), err)
	}
	for rows.Next() {
		var primary, replident bool
		var cols []string
		if err := rows.Scan(&primary, &replident, &cols); err != nil {
			rows.Close()
			return nil, pgutil.Wrap("read keys of "+t.ident.String(), err)
		}
		if primary {
			t.pk = cols
		}
		if replident {
			t.identIdx = cols
		}
	}
	if err := rows.Err(); err != nil {
		return nil, pgutil.Wrap("read keys of "+t.ident.String(), err)
	}
	switch {
	case len(t.pk) > 0:
		t.keys = t.pk
	case len(t.identIdx) > 0:
		t.keys = t.identIdx
	default:
		for _, c := range t.cols {
			t.keys = append(t.keys, c.name)
		}
	}
	return t, nil
}

// checkReplicaIdentity fails for tables whose updates and deletes cannot be
// captured. It runs before the table is added to a publication: once it is
// in one, PostgreSQL rejects UPDATE and DELETE on such a table outright.
func checkReplicaIdentity(t *tableInfo) error {
	q := t.ident.Quoted()
	const op = "check replica identity"
	switch t.replIdent {
	case 'f':
		return nil
	case 'n':
		return pgutil.Permanentf(op,
			"table %s has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be captured (PostgreSQL would even reject them once the table is published): run ALTER TABLE %s REPLICA IDENTITY FULL, or give the table a primary key and run ALTER TABLE %s REPLICA IDENTITY DEFAULT",
			t.ident.String(), q, q)
	case 'i':
		if len(t.identIdx) > 0 {
			return nil
		}
		return pgutil.Permanentf(op,
			"table %s has REPLICA IDENTITY USING INDEX but the index no longer exists, so its updates and deletes cannot be captured: run ALTER TABLE %s REPLICA IDENTITY FULL, or ALTER TABLE %s REPLICA IDENTITY DEFAULT with a primary key",
			t.ident.String(), q, q)
	default: // 'd'
		if len(t.pk) > 0 {
			return nil
		}
		return pgutil.Permanentf(op,
			"table %s has no primary key, so its default REPLICA IDENTITY identifies no row and its updates and deletes cannot be captured: add a primary key (ALTER TABLE %s ADD PRIMARY KEY (...)) or run ALTER TABLE %s REPLICA IDENTITY FULL",
			t.ident.String(), q, q)
	}
}

// ensurePublication creates the publication for the tables, or reuses it and
// adds the tables it lacks.
func ensurePublication(ctx context.Context, conn *pgx.Conn, pub string, tables []*tableInfo, log Logger) error {
	var all, ins, upd, del bool
	err := conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete FROM pg_catalog.pg_publication WHERE pubname = $1`, pub).
		Scan(&all, &ins, &upd, &del)
	if errors.Is(err, pgx.ErrNoRows) {
		list := make([]string, len(tables))
		names := make([]string, len(tables))
		for i, t := range tables {
			list[i] = t.ident.Quoted()
			names[i] = t.ident.String()
		}
		sql := "CREATE PUBLICATION " + pgutil.QuoteIdent(pub) + " FOR TABLE " + strings.Join(list, ", ") +
			" WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)"
		if _, err := conn.Exec(ctx, sql); err != nil {
			return pgutil.Wrap("create publication "+pub, err)
		}
		log.Infof("Created publication %s for %s", pub, strings.Join(names, ", "))
		return nil
	}
	if err != nil {
		return pgutil.Wrap("look up publication "+pub, err)
	}
	if !ins || !upd || !del {
		log.Warnf("Publication %s does not publish every change (insert=%t update=%t delete=%t): the missing kinds are not captured; run ALTER PUBLICATION %s SET (publish = 'insert, update, delete') to capture them",
			pub, ins, upd, del, pgutil.QuoteIdent(pub))
	}
	if all {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1`, pub)
	if err != nil {
		return pgutil.Wrap("read tables of publication "+pub, err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return pgutil.Wrap("read tables of publication "+pub, err)
		}
		have[tableKey(s, n)] = true
	}
	if err := rows.Err(); err != nil {
		return pgutil.Wrap("read tables of publication "+pub, err)
	}
	var add, names []string
	for _, t := range tables {
		if !have[tableKey(t.ident.Schema, t.ident.Name)] {
			add = append(add, t.ident.Quoted())
			names = append(names, t.ident.String())
		}
	}
	if len(add) == 0 {
		return nil
	}
	if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pgutil.QuoteIdent(pub)+" ADD TABLE "+strings.Join(add, ", ")); err != nil {
		return pgutil.Wrap("add tables to publication "+pub, err)
	}
	log.Infof("Added %s to the existing publication %s (their existing rows are not snapshotted unless the slot is new)", strings.Join(names, ", "), pub)
	return nil
}

// slotInfo is a replication slot as pg_replication_slots shows it.
type slotInfo struct {
	plugin, slotType, database string
	active                     bool
	activePID                  *int32
	confirmed                  LSN
}

// inspectSlot reads the slot; found is false when it does not exist. A slot
// still held by another connection (a consumer that just died is released a
// moment later) is waited for briefly.
func inspectSlot(ctx context.Context, conn *pgx.Conn, slot string) (slotInfo, bool, error) {
	var s slotInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		var confirmed *string
		var db *string
		err := conn.QueryRow(ctx, `
SELECT coalesce(plugin, ''), slot_type, database, active, active_pid, confirmed_flush_lsn::text
FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, slot).
			Scan(&s.plugin, &s.slotType, &db, &s.active, &s.activePID, &confirmed)
		if errors.Is(err, pgx.ErrNoRows) {
			return s, false, nil
		}
		if err != nil {
			return s, false, pgutil.Wrap("look up replication slot "+slot, err)
		}
		if db != nil {
			s.database = *db
		}
		if confirmed != nil {
			l, err := parseLSN(*confirmed)
			if err != nil {
				return s, false, errorf("look up replication slot "+slot, "confirmed_flush_lsn %q: %w", *confirmed, err)
			}
			s.confirmed = l
		}
		if !s.active || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return s, false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	var current string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&current); err != nil {
		return s, false, pgutil.Wrap("look up replication slot "+slot, err)
	}
	const op = "check replication slot"
	switch {
	case s.slotType != "logical":
		return s, true, pgutil.Permanentf(op, "replication slot %s is a %s slot; use another slot name for change data capture", slot, s.slotType)
	case s.plugin != "pgoutput":
		return s, true, pgutil.Permanentf(op, "replication slot %s uses the %s output plugin, not pgoutput; use another slot name or drop it with SELECT pg_drop_replication_slot('%s')", slot, s.plugin, slot)
	case s.database != current:
		return s, true, pgutil.Permanentf(op, "replication slot %s belongs to database %s, not %s; use another slot name", slot, s.database, current)
	case s.active:
		pid := int32(0)
		if s.activePID != nil {
			pid = *s.activePID
		}
		// Not permanent: another consumer may let go of it.
		return s, true, errorf(op, "replication slot %s is in use by another connection (pid %d); a slot has one consumer at a time", slot, pid)
	}
	return s, true, nil
}
