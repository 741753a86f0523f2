package metastore

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentetl/agentetl/internal/redact"
)

// Open connects to the metadata store named by dsn and brings its schema up
// to date. The scheme picks the backend:
//
//	postgres://user:pass@host:5432/db?sslmode=disable&search_path=agentetl
//	postgresql://...                      (same)
//	sqlite://./data/agentetl.db            (relative path)
//	sqlite:///var/lib/agentetl/meta.db     (absolute path)
//	sqlite::memory:  or  sqlite://:memory: (private in-memory database)
//
// Migrations run inside Open, so every process that opens the store (the
// API server, an engine, the orchestrator) agrees on the schema; concurrent
// Opens are safe on both backends.
func Open(ctx context.Context, dsn string) (Store, error) {
	scheme, _, ok := strings.Cut(dsn, ":")
	if !ok {
		// Not echoed at all: without a scheme there is no telling which part
		// of the string might be a secret.
		return nil, fmt.Errorf("%w: metastore DSN has no scheme (want postgres://, postgresql:// or sqlite://)", ErrInvalid)
	}
	var (
		s   Store
		err error
	)
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		s, err = openPostgres(ctx, dsn)
	case "sqlite", "sqlite3":
		s, err = openSQLite(ctx, dsn)
	default:
		if !strings.Contains(dsn, "://") {
			// "user:secret@host" has no scheme at all; echo nothing.
			return nil, fmt.Errorf("%w: metastore DSN has no supported scheme (want postgres://, postgresql:// or sqlite://)", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: metastore DSN %q has unsupported scheme %q (want postgres://, postgresql:// or sqlite://)", ErrInvalid, Redact(dsn), scheme)
	}
	if err != nil {
		return nil, scrub(dsn, fmt.Errorf("metastore: open %s: %w", Redact(dsn), err))
	}
	return s, nil
}

// Redact returns dsn with every password replaced; see redact.DSN.
func Redact(dsn string) string { return redact.DSN(dsn) }

func scrub(dsn string, err error) error { return redact.Scrub(dsn, err) }
