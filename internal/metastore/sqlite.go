package metastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentetl/agentetl/internal/model"

	"modernc.org/sqlite" // also registers the pure-Go "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteTimeLayout is how timestamps are stored: UTC, fixed width with
// microseconds, so lexical order is chronological and values match what
// PostgreSQL's timestamptz keeps.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// sqliteBusyTimeout is how long a connection waits for another writer
// (possibly another process: the engine writes checkpoints while the
// orchestrator reads and writes) before giving up with SQLITE_BUSY.
const sqliteBusyTimeout = 10 * time.Second

// sqliteStore is the embedded backend, on the pure-Go modernc.org/sqlite
// driver so the binary needs no cgo.
//
// Concurrency: the database runs in WAL mode, so readers never block the
// writer; writers are serialised by SQLite's file lock, and busy_timeout
// makes them wait rather than fail. Every transaction is BEGIN IMMEDIATE
// (_txlock=immediate): a deferred transaction that reads and then writes can
// fail at once with SQLITE_BUSY when another connection wrote in between,
// without the busy handler ever being consulted. Transactions stay short.
type sqliteStore struct {
	db *sql.DB
}

var _ Store = (*sqliteStore)(nil)

// sqlitePath extracts the file path from sqlite://path, sqlite:path or
// sqlite::memory: (memory reports an in-memory database).
func sqlitePath(dsn string) (path string, memory bool, err error) {
	_, rest, _ := strings.Cut(dsn, ":")
	rest = strings.TrimPrefix(rest, "//")
	if strings.ContainsAny(rest, "?#") {
		return "", false, fmt.Errorf("%w: sqlite DSN must be sqlite://path without query parameters", ErrInvalid)
	}
	switch rest {
	case "":
		return "", false, fmt.Errorf("%w: sqlite DSN has no path", ErrInvalid)
	case ":memory:":
		return "", true, nil
	}
	return rest, false, nil
}

func openSQLite(ctx context.Context, dsn string) (*sqliteStore, error) {
	path, memory, err := sqlitePath(dsn)
	if err != nil {
		return nil, err
	}
	params := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()),
		"_pragma=foreign_keys(1)",
		"_txlock=immediate",
	}
	name := ":memory:"
	if !memory {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("creating directory for sqlite database: %w", err)
			}
		}
		// FULL rather than the faster NORMAL: SaveCheckpoint promises
		// durability, and with NORMAL the last commits before a power loss
		// may roll back, which would replay already-delivered data.
		// journal_mode is deliberately not a DSN pragma: see ensureWAL.
		params = append(params, "_pragma=synchronous(FULL)")
		name = path
	}
	db, err := sql.Open("sqlite", name+"?"+strings.Join(params, "&"))
	if err != nil {
		return nil, fmt.Errorf("opening sqlite database: %w", err)
	}
	if memory {
		// Every connection to ":memory:" is a separate database: a single,
		// never-closed connection is the database. Meant for tests.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
	} else {
		// A few connections let readers run beside the single writer WAL
		// allows; keeping them idle avoids re-running the pragmas per use.
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(4)
	}
	s := &sqliteStore{db: db}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening sqlite database: %w", err)
	}
	if !memory {
		if err := ensureWAL(ctx, db); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrating sqlite schema: %w", err)
	}
	return s, nil
}

// ensureWAL switches the database file to WAL mode (a persistent property of
// the file, so it is done once, not per connection). Switching needs an
// exclusive lock and SQLite returns SQLITE_BUSY for it without consulting
// the busy handler, so when several processes open a new file at the same
// time the switch is retried here, with backoff, for up to the busy timeout.
func ensureWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	delay := 2 * time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			err = db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
			if err == nil {
				if strings.EqualFold(mode, "wal") {
					return nil
				}
				return fmt.Errorf("enabling WAL journal mode: database stays in %q mode", mode)
			}
		}
		if !isSQLiteBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("enabling WAL journal mode: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("enabling WAL journal mode: %w", ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// isSQLiteBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED,
// including their extended codes.
func isSQLiteBusy(err error) bool {
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

// migrate applies pending sqliteMigrations. Each runs in its own BEGIN
// IMMEDIATE transaction, which takes the database write lock before
// re-checking schema_migrations; a second process opening the same file
// concurrently therefore waits and then skips what the first applied.
func (s *sqliteStore) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	for i, m := range sqliteMigrations {
		version := i + 1
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				version, sqliteTime(time.Now())); err != nil {
				return err
			}
			slog.Debug("metastore: applied migration", "backend", BackendSQLite, "version", version)
			return nil
		})
		if err != nil {
			return fmt.Errorf("applying migration %d: %w", version, err)
		}
	}
	var newest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	if int(newest.Int64) > len(sqliteMigrations) {
		slog.Warn("metastore: database schema is newer than this binary", "backend", BackendSQLite, "version", newest.Int64, "known", len(sqliteMigrations))
	}
	return nil
}

// inTx runs fn in an (immediate) transaction, committing on success.
func (s *sqliteStore) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *sqliteStore) Backend() string { return BackendSQLite }

func (s *sqliteStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("metastore: closing sqlite: %w", err)
	}
	return nil
}

func sqliteTime(t time.Time) string { return utc(t).Format(sqliteTimeLayout) }

func parseSQLiteTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("metastore: stored timestamp %q: %w", s, err)
	}
	return utc(t), nil
}

func sqliteNotFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("metastore: %s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("metastore: %s: %w", what, err)
}

// rowScanner is satisfied by *sql.Row and *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// ---- catalog ----

const sqliteCatalogCols = `e.id, e.source_id, e.name, e.kind, e.description, e.schema, e.profile, e.row_count, e.updated_at`

func (s *sqliteStore) SaveCatalogEntry(ctx context.Context, e CatalogEntry) error {
	e, err := prepareCatalogEntry(e)
	if err != nil {
		return fmt.Errorf("metastore: save catalog entry: %w", err)
	}
	schema, err := marshalJSON("catalog schema", e.Schema)
	if err != nil {
		return fmt.Errorf("metastore: save catalog entry %q: %w", e.ID, err)
	}
	sName, sCols, sDescs := catalogSearchDoc(e)
	// One statement: the upsert and the trigger-maintained FTS rows commit
	// atomically without an explicit transaction.
	_, err = s.db.ExecContext(ctx, `
		INSERT INTO catalog_entries (id, source_id, name, kind, description, schema, profile, row_count, updated_at,
			search_name, search_columns, search_descriptions)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			source_id = excluded.source_id, name = excluded.name, kind = excluded.kind,
			description = excluded.description, schema = excluded.schema, profile = excluded.profile,
			row_count = excluded.row_count, updated_at = excluded.updated_at,
			search_name = excluded.search_name, search_columns = excluded.search_columns,
			search_descriptions = excluded.search_descriptions`,
		e.ID, e.SourceID, e.Name, e.Kind, e.Description, jsonArg(schema), jsonArg(e.Profile), e.RowCount,
		sqliteTime(e.UpdatedAt), sName, sCols, sDescs)
	if err != nil {
		return fmt.Errorf("metastore: save catalog entry %q: %w", e.ID, err)
	}
	return nil
}

func sqliteScanCatalog(row rowScanner, withRank bool) (CatalogEntry, error) {
	var (
		e               CatalogEntry
		schema, profile []byte
		updated         string
	)
	dest := []any{&e.ID, &e.SourceID, &e.Name, &e.Kind, &e.Description, &schema, &profile, &e.RowCount, &updated}
	if withRank {
		dest = append(dest, &e.Rank)
	}
	if err := row.Scan(dest...); err != nil {
		return e, err
	}
	var err error
	if e.UpdatedAt, err = parseSQLiteTime(updated); err != nil {
		return e, err
	}
	if err := unmarshalJSON("catalog schema", schema, &e.Schema); err != nil {
		return e, err
	}
	e.Profile, err = readRaw("catalog profile", profile)
	return e, err
}

func (s *sqliteStore) GetCatalogEntry(ctx context.Context, id string) (CatalogEntry, error) {
	e, err := sqliteScanCatalog(s.db.QueryRowContext(ctx, `SELECT `+sqliteCatalogCols+` FROM catalog_entries e WHERE e.id = ?`, id), false)
	if err != nil {
		return CatalogEntry{}, sqliteNotFound(err, fmt.Sprintf("get catalog entry %q", id))
	}
	return e, nil
}

// QueryCatalog ranks with FTS5's bm25, weighting name matches 10x and
// column-name matches 4x over description matches; every query term is a
// prefix. Entries whose name contains the query text (LIKE, which also
// catches infixes) come first, mirroring the PostgreSQL backend.
func (s *sqliteStore) QueryCatalog(ctx context.Context, q CatalogQuery) ([]CatalogEntry, error) {
	terms := searchTerms(q.Text)
	f := &filter{}
	var sqlText string
	if len(terms) == 0 {
		if q.SourceID != "" {
			f.add("e.source_id =", q.SourceID)
		}
		sqlText = `SELECT ` + sqliteCatalogCols + `, 0.0 FROM catalog_entries e` + f.where() +
			` ORDER BY e.name, e.id` + f.limit(q.Limit)
	} else {
		like := likeContains(strings.TrimSpace(cleanText(q.Text)))
		// Placeholders are positional, so arguments follow textual order.
		f.args = append(f.args, ftsMatchQuery(terms), like, like)
		f.conds = append(f.conds, `(m.seq IS NOT NULL OR e.name LIKE ? ESCAPE '\')`)
		if q.SourceID != "" {
			f.add("e.source_id =", q.SourceID)
		}
		// The full-text matches are computed once (MATERIALIZED): as a
		// joined subquery SQLite re-ran the FTS query for every catalog
		// row, seconds with 10,000 entries.
		sqlText = `WITH m AS MATERIALIZED (
				SELECT rowid AS seq, -bm25(catalog_fts, 10.0, 4.0, 1.0) AS score
				FROM catalog_fts WHERE catalog_fts MATCH ?
			)
			SELECT ` + sqliteCatalogCols + `,
				COALESCE(m.score, 0) + CASE WHEN e.name LIKE ? ESCAPE '\' THEN 1.0 ELSE 0.0 END AS rank
			FROM catalog_entries e
			LEFT JOIN m ON m.seq = e.seq` + f.where() + ` ORDER BY rank DESC, e.name, e.id` + f.limit(q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, sqlText, f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: query catalog: %w", err)
	}
	defer rows.Close()
	var out []CatalogEntry
	for rows.Next() {
		e, err := sqliteScanCatalog(rows, true)
		if err != nil {
			return nil, fmt.Errorf("metastore: query catalog: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: query catalog: %w", err)
	}
	return nonEmpty(out), nil
}

func (s *sqliteStore) DeleteCatalogEntry(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM catalog_entries WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("metastore: delete catalog entry %q: %w", id, err)
	}
	return sqliteAffected(res, fmt.Sprintf("delete catalog entry %q", id))
}

// sqliteAffected turns "no row changed" into ErrNotFound.
func sqliteAffected(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("metastore: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("metastore: %s: %w", what, ErrNotFound)
	}
	return nil
}

// ---- schema versions ----

const sqliteSchemaVersionCols = `source_id, version, schema, hash, changes, created_at`

func (s *sqliteStore) SaveSchemaVersion(ctx context.Context, sv SchemaVersion) (SchemaVersion, error) {
	sv, err := prepareSchemaVersion(sv)
	if err != nil {
		return SchemaVersion{}, fmt.Errorf("metastore: save schema version: %w", err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO schema_sources (source_id, latest_version) VALUES (?, 1)
			ON CONFLICT (source_id) DO UPDATE SET latest_version = latest_version + 1
			RETURNING latest_version`, sv.SourceID).Scan(&sv.Version); err != nil {
			return err
		}
		sv.Schema.Version = sv.Version
		schema, err := marshalJSON("schema", sv.Schema)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO schema_versions (`+sqliteSchemaVersionCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			sv.SourceID, sv.Version, jsonArg(schema), sv.Hash, jsonArg(sv.Changes), sqliteTime(sv.CreatedAt))
		return err
	})
	if err != nil {
		return SchemaVersion{}, fmt.Errorf("metastore: save schema version of %q: %w", sv.SourceID, err)
	}
	return sv, nil
}

func sqliteScanSchemaVersion(row rowScanner) (SchemaVersion, error) {
	var (
		sv              SchemaVersion
		schema, changes []byte
		created         string
	)
	if err := row.Scan(&sv.SourceID, &sv.Version, &schema, &sv.Hash, &changes, &created); err != nil {
		return sv, err
	}
	var err error
	if sv.CreatedAt, err = parseSQLiteTime(created); err != nil {
		return sv, err
	}
	if err := unmarshalJSON("schema", schema, &sv.Schema); err != nil {
		return sv, err
	}
	sv.Changes, err = readRaw("schema changes", changes)
	return sv, err
}

func (s *sqliteStore) LatestSchemaVersion(ctx context.Context, sourceID string) (SchemaVersion, error) {
	sv, err := sqliteScanSchemaVersion(s.db.QueryRowContext(ctx, `SELECT `+sqliteSchemaVersionCols+` FROM schema_versions
		WHERE source_id = ? ORDER BY version DESC LIMIT 1`, sourceID))
	if err != nil {
		return SchemaVersion{}, sqliteNotFound(err, fmt.Sprintf("latest schema version of %q", sourceID))
	}
	return sv, nil
}

func (s *sqliteStore) GetSchemaHistory(ctx context.Context, sourceID string) ([]SchemaVersion, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqliteSchemaVersionCols+` FROM schema_versions
		WHERE source_id = ? ORDER BY version`, sourceID)
	if err != nil {
		return nil, fmt.Errorf("metastore: schema history of %q: %w", sourceID, err)
	}
	defer rows.Close()
	var out []SchemaVersion
	for rows.Next() {
		sv, err := sqliteScanSchemaVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("metastore: schema history of %q: %w", sourceID, err)
		}
		out = append(out, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: schema history of %q: %w", sourceID, err)
	}
	return nonEmpty(out), nil
}

// ---- pipeline configs ----

const sqlitePipelineCols = `c.pipeline_id, c.version, c.config, c.yaml, c.state, c.comment, c.created_at`

// SavePipelineConfig appends a version. Saving a deleted pipeline revives
// it; version numbers continue where they left off.
func (s *sqliteStore) SavePipelineConfig(ctx context.Context, pc PipelineConfigVersion) (PipelineConfigVersion, error) {
	pc, err := preparePipelineConfig(pc)
	if err != nil {
		return PipelineConfigVersion{}, fmt.Errorf("metastore: save pipeline config: %w", err)
	}
	cfg, err := marshalJSON("pipeline config", pc.Config)
	if err != nil {
		return PipelineConfigVersion{}, fmt.Errorf("metastore: save pipeline config %q: %w", pc.PipelineID, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO pipelines (pipeline_id, latest_version) VALUES (?, 1)
			ON CONFLICT (pipeline_id) DO UPDATE SET latest_version = latest_version + 1, deleted_at = NULL
			RETURNING latest_version`, pc.PipelineID).Scan(&pc.Version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO pipeline_configs (pipeline_id, version, config, yaml, state, comment, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			pc.PipelineID, pc.Version, jsonArg(cfg), pc.YAML, pc.State, pc.Comment, sqliteTime(pc.CreatedAt))
		return err
	})
	if err != nil {
		return PipelineConfigVersion{}, fmt.Errorf("metastore: save pipeline config %q: %w", pc.PipelineID, err)
	}
	return pc, nil
}

func sqliteScanPipeline(row rowScanner) (PipelineConfigVersion, error) {
	var (
		pc      PipelineConfigVersion
		cfg     []byte
		created string
	)
	if err := row.Scan(&pc.PipelineID, &pc.Version, &cfg, &pc.YAML, &pc.State, &pc.Comment, &created); err != nil {
		return pc, err
	}
	var err error
	if pc.CreatedAt, err = parseSQLiteTime(created); err != nil {
		return pc, err
	}
	return pc, unmarshalJSON("pipeline config", cfg, &pc.Config)
}

func (s *sqliteStore) GetPipelineConfig(ctx context.Context, pipelineID string, version int) (PipelineConfigVersion, error) {
	pc, err := sqliteScanPipeline(s.db.QueryRowContext(ctx, `SELECT `+sqlitePipelineCols+`
		FROM pipeline_configs c JOIN pipelines p ON p.pipeline_id = c.pipeline_id
		WHERE c.pipeline_id = ? AND p.deleted_at IS NULL
		  AND c.version = CASE WHEN ? = 0 THEN p.latest_version ELSE ? END`, pipelineID, version, version))
	if err != nil {
		return PipelineConfigVersion{}, sqliteNotFound(err, fmt.Sprintf("get pipeline config %q version %d", pipelineID, version))
	}
	return pc, nil
}

func (s *sqliteStore) collectPipelines(ctx context.Context, what, query string, args ...any) ([]PipelineConfigVersion, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: %s: %w", what, err)
	}
	defer rows.Close()
	var out []PipelineConfigVersion
	for rows.Next() {
		pc, err := sqliteScanPipeline(rows)
		if err != nil {
			return nil, fmt.Errorf("metastore: %s: %w", what, err)
		}
		out = append(out, pc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: %s: %w", what, err)
	}
	return nonEmpty(out), nil
}

func (s *sqliteStore) ListPipelineConfigs(ctx context.Context) ([]PipelineConfigVersion, error) {
	return s.collectPipelines(ctx, "list pipeline configs", `SELECT `+sqlitePipelineCols+`
		FROM pipeline_configs c JOIN pipelines p ON p.pipeline_id = c.pipeline_id AND p.latest_version = c.version
		WHERE p.deleted_at IS NULL ORDER BY c.pipeline_id`)
}

func (s *sqliteStore) PipelineConfigHistory(ctx context.Context, pipelineID string) ([]PipelineConfigVersion, error) {
	return s.collectPipelines(ctx, fmt.Sprintf("pipeline config history of %q", pipelineID), `SELECT `+sqlitePipelineCols+`
		FROM pipeline_configs c JOIN pipelines p ON p.pipeline_id = c.pipeline_id
		WHERE c.pipeline_id = ? AND p.deleted_at IS NULL ORDER BY c.version DESC`, pipelineID)
}

func (s *sqliteStore) SetPipelineState(ctx context.Context, pipelineID, state string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE pipeline_configs SET state = ?
		WHERE pipeline_id = ? AND version = (
			SELECT latest_version FROM pipelines WHERE pipeline_id = ? AND deleted_at IS NULL)`,
		state, pipelineID, pipelineID)
	if err != nil {
		return fmt.Errorf("metastore: set state of pipeline %q: %w", pipelineID, err)
	}
	return sqliteAffected(res, fmt.Sprintf("set state of pipeline %q", pipelineID))
}

func (s *sqliteStore) DeletePipeline(ctx context.Context, pipelineID string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE pipelines SET deleted_at = ? WHERE pipeline_id = ? AND deleted_at IS NULL`,
		sqliteTime(time.Now()), pipelineID)
	if err != nil {
		return fmt.Errorf("metastore: delete pipeline %q: %w", pipelineID, err)
	}
	return sqliteAffected(res, fmt.Sprintf("delete pipeline %q", pipelineID))
}

// ---- executions ----

const sqliteExecutionCols = `id, pipeline_id, status, rows_in, rows_out, errors, dead_letter, started_at, finished_at, message`

func (s *sqliteStore) SaveExecution(ctx context.Context, e Execution) error {
	e, err := prepareExecution(e)
	if err != nil {
		return fmt.Errorf("metastore: save execution: %w", err)
	}
	var finished any
	if e.FinishedAt != nil {
		finished = sqliteTime(*e.FinishedAt)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO executions (`+sqliteExecutionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			pipeline_id = excluded.pipeline_id, status = excluded.status, rows_in = excluded.rows_in,
			rows_out = excluded.rows_out, errors = excluded.errors, dead_letter = excluded.dead_letter,
			started_at = excluded.started_at, finished_at = excluded.finished_at, message = excluded.message`,
		e.ID, e.PipelineID, e.Status, e.RowsIn, e.RowsOut, e.Errors, e.DeadLetter, sqliteTime(e.StartedAt), finished, e.Message)
	if err != nil {
		return fmt.Errorf("metastore: save execution %q: %w", e.ID, err)
	}
	return nil
}

func sqliteScanExecution(row rowScanner) (Execution, error) {
	var (
		e        Execution
		started  string
		finished sql.NullString
	)
	if err := row.Scan(&e.ID, &e.PipelineID, &e.Status, &e.RowsIn, &e.RowsOut, &e.Errors, &e.DeadLetter,
		&started, &finished, &e.Message); err != nil {
		return e, err
	}
	var err error
	if e.StartedAt, err = parseSQLiteTime(started); err != nil {
		return e, err
	}
	if finished.Valid {
		t, err := parseSQLiteTime(finished.String)
		if err != nil {
			return e, err
		}
		e.FinishedAt = &t
	}
	return e, nil
}

func (s *sqliteStore) GetExecution(ctx context.Context, id string) (Execution, error) {
	e, err := sqliteScanExecution(s.db.QueryRowContext(ctx, `SELECT `+sqliteExecutionCols+` FROM executions WHERE id = ?`, id))
	if err != nil {
		return Execution{}, sqliteNotFound(err, fmt.Sprintf("get execution %q", id))
	}
	return e, nil
}

// ListExecutions lists newest first; an empty pipelineID lists all
// pipelines and limit <= 0 means no limit.
func (s *sqliteStore) ListExecutions(ctx context.Context, pipelineID string, limit int) ([]Execution, error) {
	f := &filter{}
	if pipelineID != "" {
		f.add("pipeline_id =", pipelineID)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqliteExecutionCols+` FROM executions`+f.where()+
		` ORDER BY started_at DESC, id DESC`+f.limit(limit), f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list executions: %w", err)
	}
	defer rows.Close()
	var out []Execution
	for rows.Next() {
		e, err := sqliteScanExecution(rows)
		if err != nil {
			return nil, fmt.Errorf("metastore: list executions: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list executions: %w", err)
	}
	return nonEmpty(out), nil
}

// ---- agent decisions ----

const sqliteDecisionCols = `id, agent_id, agent_type, task_id, pipeline_id, action, confidence, reasoning, ts, outcome`

// SaveAgentDecision inserts or replaces by ID, so an outcome learned later
// can be recorded on the same decision.
func (s *sqliteStore) SaveAgentDecision(ctx context.Context, d model.AgentDecision) error {
	d = prepareDecision(d)
	_, err := s.db.ExecContext(ctx, `INSERT INTO agent_decisions (`+sqliteDecisionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			agent_id = excluded.agent_id, agent_type = excluded.agent_type, task_id = excluded.task_id,
			pipeline_id = excluded.pipeline_id, action = excluded.action, confidence = excluded.confidence,
			reasoning = excluded.reasoning, ts = excluded.ts, outcome = excluded.outcome`,
		d.ID, d.AgentID, string(d.AgentType), d.TaskID, d.PipelineID, d.Action, d.Confidence, d.Reasoning,
		sqliteTime(d.Timestamp), d.Outcome)
	if err != nil {
		return fmt.Errorf("metastore: save agent decision %q: %w", d.ID, err)
	}
	return nil
}

// ListAgentDecisions lists newest first. Since is inclusive, Until
// exclusive.
func (s *sqliteStore) ListAgentDecisions(ctx context.Context, fl DecisionFilter) ([]model.AgentDecision, error) {
	f := &filter{}
	if fl.AgentType != "" {
		f.add("agent_type =", string(fl.AgentType))
	}
	if fl.PipelineID != "" {
		f.add("pipeline_id =", fl.PipelineID)
	}
	if fl.TaskID != "" {
		f.add("task_id =", fl.TaskID)
	}
	if !fl.Since.IsZero() {
		f.add("ts >=", sqliteTime(fl.Since))
	}
	if !fl.Until.IsZero() {
		f.add("ts <", sqliteTime(fl.Until))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqliteDecisionCols+` FROM agent_decisions`+f.where()+
		` ORDER BY ts DESC, id DESC`+f.limit(fl.Limit), f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list agent decisions: %w", err)
	}
	defer rows.Close()
	var out []model.AgentDecision
	for rows.Next() {
		var (
			d             model.AgentDecision
			agentType, ts string
		)
		if err := rows.Scan(&d.ID, &d.AgentID, &agentType, &d.TaskID, &d.PipelineID, &d.Action, &d.Confidence,
			&d.Reasoning, &ts, &d.Outcome); err != nil {
			return nil, fmt.Errorf("metastore: list agent decisions: %w", err)
		}
		d.AgentType = model.AgentType(agentType)
		if d.Timestamp, err = parseSQLiteTime(ts); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list agent decisions: %w", err)
	}
	return nonEmpty(out), nil
}

// ---- pipeline errors and resolutions ----

const sqliteErrorCols = `id, pipeline_id, execution_id, error_type, message, stack_trace, context, ts, fingerprint, category`

// SavePipelineError inserts or replaces by ID: the resolution agent fills
// Fingerprint and Category after the error was first recorded.
func (s *sqliteStore) SavePipelineError(ctx context.Context, e model.PipelineError) error {
	e = preparePipelineError(e)
	ectx, err := marshalJSON("error context", e.Context)
	if err != nil {
		return fmt.Errorf("metastore: save pipeline error %q: %w", e.ID, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO pipeline_errors (`+sqliteErrorCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			pipeline_id = excluded.pipeline_id, execution_id = excluded.execution_id,
			error_type = excluded.error_type, message = excluded.message, stack_trace = excluded.stack_trace,
			context = excluded.context, ts = excluded.ts, fingerprint = excluded.fingerprint,
			category = excluded.category`,
		e.ID, e.PipelineID, e.ExecutionID, e.ErrorType, e.Message, e.StackTrace, jsonArg(ectx), sqliteTime(e.Timestamp),
		e.Fingerprint, e.Category)
	if err != nil {
		return fmt.Errorf("metastore: save pipeline error %q: %w", e.ID, err)
	}
	return nil
}

// ListPipelineErrors lists newest first; Since is inclusive.
func (s *sqliteStore) ListPipelineErrors(ctx context.Context, fl ErrorFilter) ([]model.PipelineError, error) {
	f := &filter{}
	if fl.PipelineID != "" {
		f.add("pipeline_id =", fl.PipelineID)
	}
	if fl.Fingerprint != "" {
		f.add("fingerprint =", fl.Fingerprint)
	}
	if fl.Category != "" {
		f.add("category =", fl.Category)
	}
	if !fl.Since.IsZero() {
		f.add("ts >=", sqliteTime(fl.Since))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqliteErrorCols+` FROM pipeline_errors`+f.where()+
		` ORDER BY ts DESC, id DESC`+f.limit(fl.Limit), f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list pipeline errors: %w", err)
	}
	defer rows.Close()
	var out []model.PipelineError
	for rows.Next() {
		var (
			e    model.PipelineError
			ectx []byte
			ts   string
		)
		if err := rows.Scan(&e.ID, &e.PipelineID, &e.ExecutionID, &e.ErrorType, &e.Message, &e.StackTrace, &ectx,
			&ts, &e.Fingerprint, &e.Category); err != nil {
			return nil, fmt.Errorf("metastore: list pipeline errors: %w", err)
		}
		if e.Timestamp, err = parseSQLiteTime(ts); err != nil {
			return nil, err
		}
		if err := unmarshalJSON("error context", ectx, &e.Context); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list pipeline errors: %w", err)
	}
	return nonEmpty(out), nil
}

func (s *sqliteStore) SaveResolution(ctx context.Context, r model.Resolution) error {
	r, err := prepareResolution(r)
	if err != nil {
		return fmt.Errorf("metastore: save resolution: %w", err)
	}
	actions, err := marshalJSON("resolution actions", r.Actions)
	if err != nil {
		return fmt.Errorf("metastore: save resolution of %q: %w", r.ErrorID, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO resolutions (error_id, strategy, actions, success, applied_at)
		VALUES (?, ?, ?, ?, ?)`, r.ErrorID, r.Strategy, jsonArg(actions), r.Success, sqliteTime(r.AppliedAt))
	if err != nil {
		return fmt.Errorf("metastore: save resolution of %q: %w", r.ErrorID, err)
	}
	return nil
}

// ListResolutions lists newest first; an empty errorID lists all.
func (s *sqliteStore) ListResolutions(ctx context.Context, errorID string) ([]model.Resolution, error) {
	f := &filter{}
	if errorID != "" {
		f.add("error_id =", errorID)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT error_id, strategy, actions, success, applied_at FROM resolutions`+
		f.where()+` ORDER BY applied_at DESC, seq DESC`, f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list resolutions: %w", err)
	}
	defer rows.Close()
	var out []model.Resolution
	for rows.Next() {
		var (
			r       model.Resolution
			actions []byte
			applied string
		)
		if err := rows.Scan(&r.ErrorID, &r.Strategy, &actions, &r.Success, &applied); err != nil {
			return nil, fmt.Errorf("metastore: list resolutions: %w", err)
		}
		if r.AppliedAt, err = parseSQLiteTime(applied); err != nil {
			return nil, err
		}
		if err := unmarshalJSON("resolution actions", actions, &r.Actions); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list resolutions: %w", err)
	}
	return nonEmpty(out), nil
}

// ---- tasks ----

const sqliteTaskCols = `id, type, priority, payload, created_at, assigned_to, status, updated_at`

// SaveTask inserts or replaces by ID. A task without a status is stored as
// "queued"; UpdatedAt defaults to CreatedAt.
func (s *sqliteStore) SaveTask(ctx context.Context, t model.Task) error {
	t, err := prepareTask(t)
	if err != nil {
		return fmt.Errorf("metastore: save task: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO tasks (`+sqliteTaskCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			type = excluded.type, priority = excluded.priority, payload = excluded.payload,
			created_at = excluded.created_at, assigned_to = excluded.assigned_to, status = excluded.status,
			updated_at = excluded.updated_at`,
		t.ID, t.Type, t.Priority, jsonArg(t.Payload), sqliteTime(t.CreatedAt), t.AssignedTo, t.Status, sqliteTime(t.UpdatedAt))
	if err != nil {
		return fmt.Errorf("metastore: save task %q: %w", t.ID, err)
	}
	return nil
}

func sqliteScanTask(row rowScanner) (model.Task, error) {
	var (
		t                model.Task
		payload          []byte
		created, updated string
	)
	if err := row.Scan(&t.ID, &t.Type, &t.Priority, &payload, &created, &t.AssignedTo, &t.Status, &updated); err != nil {
		return t, err
	}
	var err error
	if t.CreatedAt, err = parseSQLiteTime(created); err != nil {
		return t, err
	}
	if t.UpdatedAt, err = parseSQLiteTime(updated); err != nil {
		return t, err
	}
	t.Payload, err = readRaw("task payload", payload)
	return t, err
}

func (s *sqliteStore) GetTask(ctx context.Context, id string) (model.Task, error) {
	t, err := sqliteScanTask(s.db.QueryRowContext(ctx, `SELECT `+sqliteTaskCols+` FROM tasks WHERE id = ?`, id))
	if err != nil {
		return model.Task{}, sqliteNotFound(err, fmt.Sprintf("get task %q", id))
	}
	return t, nil
}

func (s *sqliteStore) ListTasks(ctx context.Context, fl TaskFilter) ([]model.Task, error) {
	f := &filter{}
	if fl.Type != "" {
		f.add("type =", fl.Type)
	}
	if fl.Status != "" {
		f.add("status =", fl.Status)
	}
	if fl.AssignedTo != "" {
		f.add("assigned_to =", fl.AssignedTo)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqliteTaskCols+` FROM tasks`+f.where()+
		` ORDER BY priority DESC, created_at, id`+f.limit(fl.Limit), f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list tasks: %w", err)
	}
	defer rows.Close()
	var out []model.Task
	for rows.Next() {
		t, err := sqliteScanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("metastore: list tasks: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list tasks: %w", err)
	}
	return nonEmpty(out), nil
}

// ---- checkpoints ----

func (s *sqliteStore) GetCheckpoint(ctx context.Context, id string) (string, error) {
	var pos string
	if err := s.db.QueryRowContext(ctx, `SELECT position FROM checkpoints WHERE id = ?`, id).Scan(&pos); err != nil {
		return "", sqliteNotFound(err, fmt.Sprintf("get checkpoint %q", id))
	}
	return pos, nil
}

// SaveCheckpoint is a single autocommit upsert: it holds the write lock for
// one statement only, which is what lets an engine process checkpoint
// frequently while other processes use the same file.
func (s *sqliteStore) SaveCheckpoint(ctx context.Context, id, position string) error {
	if id == "" {
		return fmt.Errorf("metastore: save checkpoint: %w: empty id", ErrInvalid)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO checkpoints (id, position, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
		id, position, sqliteTime(time.Now()))
	if err != nil {
		return fmt.Errorf("metastore: save checkpoint %q: %w", id, err)
	}
	return nil
}

// DeleteCheckpoint is idempotent: resetting a pipeline that never
// checkpointed is not an error.
func (s *sqliteStore) DeleteCheckpoint(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM checkpoints WHERE id = ?`, id); err != nil {
		return fmt.Errorf("metastore: delete checkpoint %q: %w", id, err)
	}
	return nil
}
