// Package sqlitedb reads and writes SQLite tables for the sqlite input and
// output: keyset-paged reads with resumable positions, and typed, batched
// inserts or upserts in one transaction per batch. It uses the pure-Go
// modernc.org/sqlite driver, so binaries need no cgo.
//
// Errors are *pgutil.Error values, the project's typed database error:
// SQLite result codes are mapped to the SQLSTATE of the same condition
// (a CHECK violation is 23514, NOT NULL 23502, a duplicate key 23505, an
// invalid date 22007, a busy database 55P03, a full disk 53100), and the
// 1-based position of the record that failed is set, so the error
// resolution agent classifies and isolates them like PostgreSQL errors.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// BusyTimeout is how long a statement waits for another connection's write
// lock before failing with SQLITE_BUSY.
const BusyTimeout = 10 * time.Second

// Path extracts the database file path from sqlite://relative/path,
// sqlite:///absolute/path or sqlite:path. Query parameters are not
// accepted: the connection settings are this package's.
func Path(dsn string) (string, error) {
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok || !strings.EqualFold(scheme, "sqlite") && !strings.EqualFold(scheme, "sqlite3") {
		return "", pgutil.Permanentf("open", "an SQLite DSN starts with sqlite:// (for example sqlite://./data/target.db or sqlite:///var/lib/app.db)")
	}
	rest = strings.TrimPrefix(rest, "//")
	switch {
	case strings.ContainsAny(rest, "?#"):
		return "", pgutil.Permanentf("open", "an SQLite DSN is sqlite://path without query parameters")
	case rest == "" || rest == ":memory:":
		return "", pgutil.Permanentf("open", "an SQLite DSN must name a database file")
	case strings.ContainsFunc(rest, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", pgutil.Permanentf("open", "the SQLite path contains control characters")
	}
	return rest, nil
}

// Open opens the database named by dsn. A read-only handle never creates
// or changes the file; a writable one creates a missing file (and its
// directory), switches it to WAL so readers never block the writer, and
// starts every transaction with BEGIN IMMEDIATE.
func Open(ctx context.Context, dsn string, readOnly bool, maxConns int) (*sql.DB, error) {
	path, err := Path(dsn)
	if err != nil {
		return nil, err
	}
	params := []string{fmt.Sprintf("_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds())}
	if readOnly {
		st, err := os.Stat(path)
		if err != nil {
			return nil, &pgutil.Error{Op: "open", SQLState: "3D000", Permanent: true, Err: fmt.Errorf("SQLite database %s: %w", path, err)}
		}
		if st.IsDir() {
			return nil, pgutil.Permanentf("open", "%s is a directory, not an SQLite database", path)
		}
		params = append(params, "mode=ro")
	} else {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, &pgutil.Error{Op: "open", Permanent: true, Err: fmt.Errorf("directory of SQLite database %s: %w", path, err)}
			}
		}
		params = append(params, "_txlock=immediate")
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: strings.Join(params, "&")}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, &pgutil.Error{Op: "open", Permanent: true, Err: err}
	}
	db.SetMaxOpenConns(max(1, maxConns))
	db.SetMaxIdleConns(max(1, maxConns))
	// A file that is not a database fails on its first read, not on open.
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		_ = db.Close()
		return nil, Wrap("open "+path, err, 0)
	}
	if !readOnly {
		if err := ensureWAL(ctx, db); err != nil {
			_ = db.Close()
			return nil, Wrap("open "+path, err, 0)
		}
	}
	return db, nil
}

// ensureWAL switches the database to WAL, waiting while another connection
// holds a lock (journal_mode cannot change then, and does not consult the
// busy handler).
func ensureWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(BusyTimeout)
	delay := 2 * time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil {
			if strings.EqualFold(mode, "wal") {
				return nil
			}
			return fmt.Errorf("the database stays in %q journal mode", mode)
		}
		if !IsBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// IsBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED.
func IsBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// Wrap turns a driver error into a *pgutil.Error with the SQLSTATE of the
// same condition. record is the 1-based position of the record that
// caused it in the batch being written, 0 when none.
func Wrap(op string, err error, record int) error {
	if err == nil {
		return nil
	}
	var pe *pgutil.Error
	if errors.As(err, &pe) {
		if record > 0 && pe.Record == 0 {
			pe.Record = record
		}
		return err
	}
	out := &pgutil.Error{Op: op, Record: record, Err: err}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return out
	}
	msg := se.Error()
	switch code := se.Code(); code {
	case sqlite3.SQLITE_CONSTRAINT_CHECK:
		out.SQLState = "23514"
		out.Constraint = afterFailed(msg)
	case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		out.SQLState = "23502"
		out.Table, out.Column = splitColumn(afterFailed(msg))
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		out.SQLState = "23505"
		out.Constraint = afterFailed(msg)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		out.SQLState = "23503"
	default:
		switch code & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			out.SQLState = "23000"
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			out.SQLState = "55P03" // lock not available: retried
		case sqlite3.SQLITE_FULL:
			out.SQLState = "53100" // disk full
		case sqlite3.SQLITE_TOOBIG:
			out.SQLState = "54000"
		case sqlite3.SQLITE_MISMATCH:
			out.SQLState = "42804"
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			out.SQLState, out.Permanent = "42501", true
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			out.SQLState, out.Permanent = "58030", true
		case sqlite3.SQLITE_ERROR:
			// "no such table", "no such column", "has no column named":
			// the schema does not fit the statement.
			low := strings.ToLower(msg)
			switch {
			case strings.Contains(low, "no such table"):
				out.SQLState, out.Permanent = "42P01", true
			case strings.Contains(low, "no such column") || strings.Contains(low, "has no column"):
				out.SQLState, out.Permanent = "42703", true
			}
		}
	}
	return out
}

// afterFailed returns what follows "constraint failed: " in an SQLite
// message: the constraint's name or expression, or the table.column.
func afterFailed(msg string) string {
	i := strings.LastIndex(msg, "constraint failed: ")
	if i < 0 {
		return ""
	}
	rest := msg[i+len("constraint failed: "):]
	if i := strings.Index(rest, " ("); i >= 0 {
		rest = rest[:i]
	}
	return strings.TrimSpace(rest)
}

func splitColumn(s string) (table, column string) {
	if t, c, ok := strings.Cut(s, "."); ok {
		return t, c
	}
	return "", s
}
