package metastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentetl/agentetl/internal/model"
)

// pgStore is the PostgreSQL backend. It uses pgx natively (not database/sql)
// for jsonb/timestamptz handling and so that *pgconn.PgError stays reachable
// through the %w chain.
type pgStore struct {
	pool *pgxpool.Pool
}

var _ Store = (*pgStore)(nil)

func openPostgres(ctx context.Context, dsn string) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing postgres DSN: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating postgres pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	s := &pgStore{pool: pool}
	if err := s.migrate(ctx, cfg.ConnConfig.RuntimeParams["search_path"]); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrating postgres schema: %w", err)
	}
	return s, nil
}

// firstSearchPathSchema returns the first explicit schema of a search_path
// setting ("$user" is skipped; a double-quoted name is unquoted).
func firstSearchPathSchema(searchPath string) string {
	for _, part := range strings.Split(searchPath, ",") {
		part = strings.TrimSpace(part)
		if part == "" || part == `"$user"` || part == "$user" {
			continue
		}
		if len(part) >= 2 && part[0] == '"' && part[len(part)-1] == '"' {
			return strings.ReplaceAll(part[1:len(part)-1], `""`, `"`)
		}
		return strings.ToLower(part) // unquoted identifiers fold to lower case
	}
	return ""
}

// migrate applies the pending postgresMigrations. A session-level advisory
// lock, keyed by the target schema, serialises concurrent Opens: the second
// process waits, then finds every migration recorded and does nothing. Each
// migration runs in its own transaction together with its schema_migrations
// row, so a failure leaves no half-applied version behind.
func (s *pgStore) migrate(ctx context.Context, searchPath string) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}

	var current *string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&current); err != nil {
		conn.Release()
		return fmt.Errorf("reading current schema: %w", err)
	}
	target := ""
	if current != nil {
		target = *current
	} else {
		// search_path names a schema that does not exist yet: create it
		// (below, under the lock) so a fresh deployment needs no manual step.
		target = firstSearchPathSchema(searchPath)
		if target == "" {
			conn.Release()
			return errors.New("no schema selected: search_path names no schema")
		}
	}

	lockKey := "agentetl.metastore.migrate:" + target
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, lockKey); err != nil {
		conn.Release()
		return fmt.Errorf("taking migration lock: %w", err)
	}
	defer func() {
		// Unlock even if ctx is already cancelled: a pooled connection that
		// still held the lock would block every later Open.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockKey); uerr != nil {
			_ = conn.Hijack().Close(uctx)
			if err == nil {
				err = fmt.Errorf("releasing migration lock: %w", uerr)
			}
			return
		}
		conn.Release()
	}()

	if current == nil {
		if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{target}.Sanitize()); err != nil {
			return fmt.Errorf("creating schema %q: %w", target, err)
		}
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	applied, err := pgAppliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	for i, m := range postgresMigrations {
		version := i + 1
		if applied[version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version)
			return err
		})
		if err != nil {
			return fmt.Errorf("applying migration %d: %w", version, err)
		}
		slog.Debug("metastore: applied migration", "backend", BackendPostgres, "version", version)
	}
	for v := range applied {
		if v > len(postgresMigrations) {
			slog.Warn("metastore: database schema is newer than this binary", "backend", BackendPostgres, "version", v, "known", len(postgresMigrations))
			break
		}
	}
	return nil
}

func pgAppliedVersions(ctx context.Context, conn *pgxpool.Conn) (map[int]bool, error) {
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[int(v)] = true
	}
	return applied, nil
}

func (s *pgStore) Backend() string { return BackendPostgres }

func (s *pgStore) Close() error {
	s.pool.Close()
	return nil
}

// notFound maps pgx.ErrNoRows to ErrNotFound, wrapping either with what.
func pgNotFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("metastore: %s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("metastore: %s: %w", what, err)
}

func pgTime(t time.Time) time.Time { return utc(t) }

func pgTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := utc(*t)
	return &u
}

// ---- catalog ----

const pgCatalogCols = `id, source_id, name, kind, description, schema, profile, row_count, updated_at`

func (s *pgStore) SaveCatalogEntry(ctx context.Context, e CatalogEntry) error {
	e, err := prepareCatalogEntry(e)
	if err != nil {
		return fmt.Errorf("metastore: save catalog entry: %w", err)
	}
	schema, err := marshalJSON("catalog schema", e.Schema)
	if err != nil {
		return fmt.Errorf("metastore: save catalog entry %q: %w", e.ID, err)
	}
	sName, sCols, sDescs := catalogSearchDoc(e)
	_, err = s.pool.Exec(ctx, `
		INSERT INTO catalog_entries (id, source_id, name, kind, description, schema, profile, row_count, updated_at,
			search_name, search_columns, search_descriptions)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET
			source_id = EXCLUDED.source_id, name = EXCLUDED.name, kind = EXCLUDED.kind,
			description = EXCLUDED.description, schema = EXCLUDED.schema, profile = EXCLUDED.profile,
			row_count = EXCLUDED.row_count, updated_at = EXCLUDED.updated_at,
			search_name = EXCLUDED.search_name, search_columns = EXCLUDED.search_columns,
			search_descriptions = EXCLUDED.search_descriptions`,
		e.ID, e.SourceID, e.Name, e.Kind, e.Description, jsonArg(schema), jsonArg(e.Profile), e.RowCount, e.UpdatedAt,
		sName, sCols, sDescs)
	if err != nil {
		return fmt.Errorf("metastore: save catalog entry %q: %w", e.ID, err)
	}
	return nil
}

func pgScanCatalog(row pgx.Row, withRank bool) (CatalogEntry, error) {
	var (
		e               CatalogEntry
		schema, profile []byte
	)
	dest := []any{&e.ID, &e.SourceID, &e.Name, &e.Kind, &e.Description, &schema, &profile, &e.RowCount, &e.UpdatedAt}
	if withRank {
		dest = append(dest, &e.Rank)
	}
	if err := row.Scan(dest...); err != nil {
		return e, err
	}
	e.UpdatedAt = pgTime(e.UpdatedAt)
	if err := unmarshalJSON("catalog schema", schema, &e.Schema); err != nil {
		return e, err
	}
	var err error
	e.Profile, err = readRaw("catalog profile", profile)
	return e, err
}

func (s *pgStore) GetCatalogEntry(ctx context.Context, id string) (CatalogEntry, error) {
	e, err := pgScanCatalog(s.pool.QueryRow(ctx, `SELECT `+pgCatalogCols+` FROM catalog_entries WHERE id = $1`, id), false)
	if err != nil {
		return CatalogEntry{}, pgNotFound(err, fmt.Sprintf("get catalog entry %q", id))
	}
	return e, nil
}

// QueryCatalog ranks with ts_rank over the weighted tsvector (name A,
// column names B, descriptions C), adding exact-word and prefix matches, and
// puts entries whose name contains the query text first (the ILIKE
// fallback, which also finds infix matches the word index cannot).
func (s *pgStore) QueryCatalog(ctx context.Context, q CatalogQuery) ([]CatalogEntry, error) {
	terms := searchTerms(q.Text)
	f := &filter{pg: true}
	var sqlText string
	if len(terms) == 0 {
		if q.SourceID != "" {
			f.add("source_id =", q.SourceID)
		}
		sqlText = `SELECT ` + pgCatalogCols + `, 0::float8 FROM catalog_entries` + f.where() +
			` ORDER BY name, id` + f.limit(q.Limit)
	} else {
		plain := f.param(strings.Join(terms, " "))
		prefix := f.param(tsPrefixQuery(terms))
		like := f.param(likeContains(strings.TrimSpace(cleanText(q.Text))))
		match := `(search @@ to_tsquery('simple', ` + prefix + `) OR name ILIKE ` + like + ` ESCAPE '\')`
		f.conds = append(f.conds, match)
		if q.SourceID != "" {
			f.add("source_id =", q.SourceID)
		}
		rank := `(ts_rank(search, plainto_tsquery('simple', ` + plain + `)) + ts_rank(search, to_tsquery('simple', ` + prefix + `))` +
			` + CASE WHEN name ILIKE ` + like + ` ESCAPE '\' THEN 1 ELSE 0 END)::float8`
		sqlText = `SELECT ` + pgCatalogCols + `, ` + rank + ` AS rank FROM catalog_entries` + f.where() +
			` ORDER BY rank DESC, name, id` + f.limit(q.Limit)
	}
	rows, err := s.pool.Query(ctx, sqlText, f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: query catalog: %w", err)
	}
	defer rows.Close()
	var out []CatalogEntry
	for rows.Next() {
		e, err := pgScanCatalog(rows, true)
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

func (s *pgStore) DeleteCatalogEntry(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM catalog_entries WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("metastore: delete catalog entry %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("metastore: delete catalog entry %q: %w", id, ErrNotFound)
	}
	return nil
}

// ---- schema versions ----

const pgSchemaVersionCols = `source_id, version, schema, hash, changes, created_at`

func (s *pgStore) SaveSchemaVersion(ctx context.Context, sv SchemaVersion) (SchemaVersion, error) {
	sv, err := prepareSchemaVersion(sv)
	if err != nil {
		return SchemaVersion{}, fmt.Errorf("metastore: save schema version: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The upsert row-locks the counter until commit, so concurrent
		// savers for one source queue here and get consecutive versions.
		if err := tx.QueryRow(ctx, `
			INSERT INTO schema_sources (source_id, latest_version) VALUES ($1, 1)
			ON CONFLICT (source_id) DO UPDATE SET latest_version = schema_sources.latest_version + 1
			RETURNING latest_version`, sv.SourceID).Scan(&sv.Version); err != nil {
			return err
		}
		sv.Schema.Version = sv.Version
		schema, err := marshalJSON("schema", sv.Schema)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO schema_versions (`+pgSchemaVersionCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			sv.SourceID, sv.Version, jsonArg(schema), sv.Hash, jsonArg(sv.Changes), sv.CreatedAt)
		return err
	})
	if err != nil {
		return SchemaVersion{}, fmt.Errorf("metastore: save schema version of %q: %w", sv.SourceID, err)
	}
	return sv, nil
}

func pgScanSchemaVersion(row pgx.Row) (SchemaVersion, error) {
	var (
		sv              SchemaVersion
		schema, changes []byte
	)
	if err := row.Scan(&sv.SourceID, &sv.Version, &schema, &sv.Hash, &changes, &sv.CreatedAt); err != nil {
		return sv, err
	}
	sv.CreatedAt = pgTime(sv.CreatedAt)
	if err := unmarshalJSON("schema", schema, &sv.Schema); err != nil {
		return sv, err
	}
	var err error
	sv.Changes, err = readRaw("schema changes", changes)
	return sv, err
}

func (s *pgStore) LatestSchemaVersion(ctx context.Context, sourceID string) (SchemaVersion, error) {
	sv, err := pgScanSchemaVersion(s.pool.QueryRow(ctx, `SELECT `+pgSchemaVersionCols+` FROM schema_versions
		WHERE source_id = $1 ORDER BY version DESC LIMIT 1`, sourceID))
	if err != nil {
		return SchemaVersion{}, pgNotFound(err, fmt.Sprintf("latest schema version of %q", sourceID))
	}
	return sv, nil
}

func (s *pgStore) GetSchemaHistory(ctx context.Context, sourceID string) ([]SchemaVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+pgSchemaVersionCols+` FROM schema_versions
		WHERE source_id = $1 ORDER BY version`, sourceID)
	if err != nil {
		return nil, fmt.Errorf("metastore: schema history of %q: %w", sourceID, err)
	}
	defer rows.Close()
	var out []SchemaVersion
	for rows.Next() {
		sv, err := pgScanSchemaVersion(rows)
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

const pgPipelineCols = `c.pipeline_id, c.version, c.config, c.yaml, c.state, c.comment, c.created_at`

// SavePipelineConfig appends a version. Saving a deleted pipeline revives
// it; version numbers continue where they left off, so history stays
// unambiguous.
func (s *pgStore) SavePipelineConfig(ctx context.Context, pc PipelineConfigVersion) (PipelineConfigVersion, error) {
	pc, err := preparePipelineConfig(pc)
	if err != nil {
		return PipelineConfigVersion{}, fmt.Errorf("metastore: save pipeline config: %w", err)
	}
	cfg, err := marshalJSON("pipeline config", pc.Config)
	if err != nil {
		return PipelineConfigVersion{}, fmt.Errorf("metastore: save pipeline config %q: %w", pc.PipelineID, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			INSERT INTO pipelines (pipeline_id, latest_version) VALUES ($1, 1)
			ON CONFLICT (pipeline_id) DO UPDATE SET latest_version = pipelines.latest_version + 1, deleted_at = NULL
			RETURNING latest_version`, pc.PipelineID).Scan(&pc.Version); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO pipeline_configs (pipeline_id, version, config, yaml, state, comment, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			pc.PipelineID, pc.Version, jsonArg(cfg), pc.YAML, pc.State, pc.Comment, pc.CreatedAt)
		return err
	})
	if err != nil {
		return PipelineConfigVersion{}, fmt.Errorf("metastore: save pipeline config %q: %w", pc.PipelineID, err)
	}
	return pc, nil
}

func pgScanPipeline(row pgx.Row) (PipelineConfigVersion, error) {
	var (
		pc  PipelineConfigVersion
		cfg []byte
	)
	if err := row.Scan(&pc.PipelineID, &pc.Version, &cfg, &pc.YAML, &pc.State, &pc.Comment, &pc.CreatedAt); err != nil {
		return pc, err
	}
	pc.CreatedAt = pgTime(pc.CreatedAt)
	return pc, unmarshalJSON("pipeline config", cfg, &pc.Config)
}

func (s *pgStore) GetPipelineConfig(ctx context.Context, pipelineID string, version int) (PipelineConfigVersion, error) {
	pc, err := pgScanPipeline(s.pool.QueryRow(ctx, `SELECT `+pgPipelineCols+`
		FROM pipeline_configs c JOIN pipelines p ON p.pipeline_id = c.pipeline_id
		WHERE c.pipeline_id = $1 AND p.deleted_at IS NULL
		  AND c.version = CASE WHEN $2::integer = 0 THEN p.latest_version ELSE $2::integer END`, pipelineID, version))
	if err != nil {
		return PipelineConfigVersion{}, pgNotFound(err, fmt.Sprintf("get pipeline config %q version %d", pipelineID, version))
	}
	return pc, nil
}

func (s *pgStore) collectPipelines(ctx context.Context, what, query string, args ...any) ([]PipelineConfigVersion, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: %s: %w", what, err)
	}
	defer rows.Close()
	var out []PipelineConfigVersion
	for rows.Next() {
		pc, err := pgScanPipeline(rows)
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

func (s *pgStore) ListPipelineConfigs(ctx context.Context) ([]PipelineConfigVersion, error) {
	return s.collectPipelines(ctx, "list pipeline configs", `SELECT `+pgPipelineCols+`
		FROM pipeline_configs c JOIN pipelines p ON p.pipeline_id = c.pipeline_id AND p.latest_version = c.version
		WHERE p.deleted_at IS NULL ORDER BY c.pipeline_id`)
}

func (s *pgStore) PipelineConfigHistory(ctx context.Context, pipelineID string) ([]PipelineConfigVersion, error) {
	return s.collectPipelines(ctx, fmt.Sprintf("pipeline config history of %q", pipelineID), `SELECT `+pgPipelineCols+`
		FROM pipeline_configs c JOIN pipelines p ON p.pipeline_id = c.pipeline_id
		WHERE c.pipeline_id = $1 AND p.deleted_at IS NULL ORDER BY c.version DESC`, pipelineID)
}

func (s *pgStore) SetPipelineState(ctx context.Context, pipelineID, state string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE pipeline_configs c SET state = $2
		FROM pipelines p
		WHERE p.pipeline_id = c.pipeline_id AND p.latest_version = c.version
		  AND p.deleted_at IS NULL AND c.pipeline_id = $1`, pipelineID, state)
	if err != nil {
		return fmt.Errorf("metastore: set state of pipeline %q: %w", pipelineID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("metastore: set state of pipeline %q: %w", pipelineID, ErrNotFound)
	}
	return nil
}

func (s *pgStore) DeletePipeline(ctx context.Context, pipelineID string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE pipelines SET deleted_at = $2 WHERE pipeline_id = $1 AND deleted_at IS NULL`,
		pipelineID, utc(time.Now()))
	if err != nil {
		return fmt.Errorf("metastore: delete pipeline %q: %w", pipelineID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("metastore: delete pipeline %q: %w", pipelineID, ErrNotFound)
	}
	return nil
}

// ---- executions ----

const pgExecutionCols = `id, pipeline_id, status, rows_in, rows_out, errors, dead_letter, started_at, finished_at, message`

func (s *pgStore) SaveExecution(ctx context.Context, e Execution) error {
	e, err := prepareExecution(e)
	if err != nil {
		return fmt.Errorf("metastore: save execution: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO executions (`+pgExecutionCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET
			pipeline_id = EXCLUDED.pipeline_id, status = EXCLUDED.status, rows_in = EXCLUDED.rows_in,
			rows_out = EXCLUDED.rows_out, errors = EXCLUDED.errors, dead_letter = EXCLUDED.dead_letter,
			started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, message = EXCLUDED.message`,
		e.ID, e.PipelineID, e.Status, e.RowsIn, e.RowsOut, e.Errors, e.DeadLetter, e.StartedAt, e.FinishedAt, e.Message)
	if err != nil {
		return fmt.Errorf("metastore: save execution %q: %w", e.ID, err)
	}
	return nil
}

func pgScanExecution(row pgx.Row) (Execution, error) {
	var e Execution
	if err := row.Scan(&e.ID, &e.PipelineID, &e.Status, &e.RowsIn, &e.RowsOut, &e.Errors, &e.DeadLetter,
		&e.StartedAt, &e.FinishedAt, &e.Message); err != nil {
		return e, err
	}
	e.StartedAt = pgTime(e.StartedAt)
	e.FinishedAt = pgTimePtr(e.FinishedAt)
	return e, nil
}

func (s *pgStore) GetExecution(ctx context.Context, id string) (Execution, error) {
	e, err := pgScanExecution(s.pool.QueryRow(ctx, `SELECT `+pgExecutionCols+` FROM executions WHERE id = $1`, id))
	if err != nil {
		return Execution{}, pgNotFound(err, fmt.Sprintf("get execution %q", id))
	}
	return e, nil
}

// ListExecutions lists newest first; an empty pipelineID lists all
// pipelines and limit <= 0 means no limit.
func (s *pgStore) ListExecutions(ctx context.Context, pipelineID string, limit int) ([]Execution, error) {
	f := &filter{pg: true}
	if pipelineID != "" {
		f.add("pipeline_id =", pipelineID)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+pgExecutionCols+` FROM executions`+f.where()+
		` ORDER BY started_at DESC, id DESC`+f.limit(limit), f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list executions: %w", err)
	}
	defer rows.Close()
	var out []Execution
	for rows.Next() {
		e, err := pgScanExecution(rows)
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

const pgDecisionCols = `id, agent_id, agent_type, task_id, pipeline_id, action, confidence, reasoning, ts, outcome`

// SaveAgentDecision inserts or replaces by ID, so an outcome learned later
// can be recorded on the same decision.
func (s *pgStore) SaveAgentDecision(ctx context.Context, d model.AgentDecision) error {
	d = prepareDecision(d)
	_, err := s.pool.Exec(ctx, `INSERT INTO agent_decisions (`+pgDecisionCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET
			agent_id = EXCLUDED.agent_id, agent_type = EXCLUDED.agent_type, task_id = EXCLUDED.task_id,
			pipeline_id = EXCLUDED.pipeline_id, action = EXCLUDED.action, confidence = EXCLUDED.confidence,
			reasoning = EXCLUDED.reasoning, ts = EXCLUDED.ts, outcome = EXCLUDED.outcome`,
		d.ID, d.AgentID, string(d.AgentType), d.TaskID, d.PipelineID, d.Action, d.Confidence, d.Reasoning, d.Timestamp, d.Outcome)
	if err != nil {
		return fmt.Errorf("metastore: save agent decision %q: %w", d.ID, err)
	}
	return nil
}

// ListAgentDecisions lists newest first. Since is inclusive, Until
// exclusive, so consecutive windows neither overlap nor leave gaps.
func (s *pgStore) ListAgentDecisions(ctx context.Context, fl DecisionFilter) ([]model.AgentDecision, error) {
	f := &filter{pg: true}
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
		f.add("ts >=", utc(fl.Since))
	}
	if !fl.Until.IsZero() {
		f.add("ts <", utc(fl.Until))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+pgDecisionCols+` FROM agent_decisions`+f.where()+
		` ORDER BY ts DESC, id DESC`+f.limit(fl.Limit), f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list agent decisions: %w", err)
	}
	defer rows.Close()
	var out []model.AgentDecision
	for rows.Next() {
		var (
			d         model.AgentDecision
			agentType string
		)
		if err := rows.Scan(&d.ID, &d.AgentID, &agentType, &d.TaskID, &d.PipelineID, &d.Action, &d.Confidence,
			&d.Reasoning, &d.Timestamp, &d.Outcome); err != nil {
			return nil, fmt.Errorf("metastore: list agent decisions: %w", err)
		}
		d.AgentType = model.AgentType(agentType)
		d.Timestamp = pgTime(d.Timestamp)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list agent decisions: %w", err)
	}
	return nonEmpty(out), nil
}

// ---- pipeline errors and resolutions ----

const pgErrorCols = `id, pipeline_id, execution_id, error_type, message, stack_trace, context, ts, fingerprint, category`

// SavePipelineError inserts or replaces by ID: the resolution agent fills
// Fingerprint and Category after the error was first recorded.
func (s *pgStore) SavePipelineError(ctx context.Context, e model.PipelineError) error {
	e = preparePipelineError(e)
	ectx, err := marshalJSON("error context", e.Context)
	if err != nil {
		return fmt.Errorf("metastore: save pipeline error %q: %w", e.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO pipeline_errors (`+pgErrorCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET
			pipeline_id = EXCLUDED.pipeline_id, execution_id = EXCLUDED.execution_id,
			error_type = EXCLUDED.error_type, message = EXCLUDED.message, stack_trace = EXCLUDED.stack_trace,
			context = EXCLUDED.context, ts = EXCLUDED.ts, fingerprint = EXCLUDED.fingerprint,
			category = EXCLUDED.category`,
		e.ID, e.PipelineID, e.ExecutionID, e.ErrorType, e.Message, e.StackTrace, jsonArg(ectx), e.Timestamp,
		e.Fingerprint, e.Category)
	if err != nil {
		return fmt.Errorf("metastore: save pipeline error %q: %w", e.ID, err)
	}
	return nil
}

// ListPipelineErrors lists newest first; Since is inclusive.
func (s *pgStore) ListPipelineErrors(ctx context.Context, fl ErrorFilter) ([]model.PipelineError, error) {
	f := &filter{pg: true}
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
		f.add("ts >=", utc(fl.Since))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+pgErrorCols+` FROM pipeline_errors`+f.where()+
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
		)
		if err := rows.Scan(&e.ID, &e.PipelineID, &e.ExecutionID, &e.ErrorType, &e.Message, &e.StackTrace, &ectx,
			&e.Timestamp, &e.Fingerprint, &e.Category); err != nil {
			return nil, fmt.Errorf("metastore: list pipeline errors: %w", err)
		}
		e.Timestamp = pgTime(e.Timestamp)
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

func (s *pgStore) SaveResolution(ctx context.Context, r model.Resolution) error {
	r, err := prepareResolution(r)
	if err != nil {
		return fmt.Errorf("metastore: save resolution: %w", err)
	}
	actions, err := marshalJSON("resolution actions", r.Actions)
	if err != nil {
		return fmt.Errorf("metastore: save resolution of %q: %w", r.ErrorID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO resolutions (error_id, strategy, actions, success, applied_at)
		VALUES ($1, $2, $3, $4, $5)`, r.ErrorID, r.Strategy, jsonArg(actions), r.Success, r.AppliedAt)
	if err != nil {
		return fmt.Errorf("metastore: save resolution of %q: %w", r.ErrorID, err)
	}
	return nil
}

// ListResolutions lists newest first; an empty errorID lists all.
func (s *pgStore) ListResolutions(ctx context.Context, errorID string) ([]model.Resolution, error) {
	f := &filter{pg: true}
	if errorID != "" {
		f.add("error_id =", errorID)
	}
	rows, err := s.pool.Query(ctx, `SELECT error_id, strategy, actions, success, applied_at FROM resolutions`+
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
		)
		if err := rows.Scan(&r.ErrorID, &r.Strategy, &actions, &r.Success, &r.AppliedAt); err != nil {
			return nil, fmt.Errorf("metastore: list resolutions: %w", err)
		}
		r.AppliedAt = pgTime(r.AppliedAt)
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

const pgTaskCols = `id, type, priority, payload, created_at, assigned_to, status, updated_at`

// SaveTask inserts or replaces by ID. A task without a status is stored as
// "queued"; UpdatedAt defaults to CreatedAt.
func (s *pgStore) SaveTask(ctx context.Context, t model.Task) error {
	t, err := prepareTask(t)
	if err != nil {
		return fmt.Errorf("metastore: save task: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO tasks (`+pgTaskCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET
			type = EXCLUDED.type, priority = EXCLUDED.priority, payload = EXCLUDED.payload,
			created_at = EXCLUDED.created_at, assigned_to = EXCLUDED.assigned_to, status = EXCLUDED.status,
			updated_at = EXCLUDED.updated_at`,
		t.ID, t.Type, t.Priority, jsonArg(t.Payload), t.CreatedAt, t.AssignedTo, t.Status, t.UpdatedAt)
	if err != nil {
		return fmt.Errorf("metastore: save task %q: %w", t.ID, err)
	}
	return nil
}

func pgScanTask(row pgx.Row) (model.Task, error) {
	var (
		t       model.Task
		payload []byte
	)
	if err := row.Scan(&t.ID, &t.Type, &t.Priority, &payload, &t.CreatedAt, &t.AssignedTo, &t.Status, &t.UpdatedAt); err != nil {
		return t, err
	}
	t.CreatedAt = pgTime(t.CreatedAt)
	t.UpdatedAt = pgTime(t.UpdatedAt)
	var err error
	t.Payload, err = readRaw("task payload", payload)
	return t, err
}

func (s *pgStore) GetTask(ctx context.Context, id string) (model.Task, error) {
	t, err := pgScanTask(s.pool.QueryRow(ctx, `SELECT `+pgTaskCols+` FROM tasks WHERE id = $1`, id))
	if err != nil {
		return model.Task{}, pgNotFound(err, fmt.Sprintf("get task %q", id))
	}
	return t, nil
}

func (s *pgStore) ListTasks(ctx context.Context, fl TaskFilter) ([]model.Task, error) {
	f := &filter{pg: true}
	if fl.Type != "" {
		f.add("type =", fl.Type)
	}
	if fl.Status != "" {
		f.add("status =", fl.Status)
	}
	if fl.AssignedTo != "" {
		f.add("assigned_to =", fl.AssignedTo)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+pgTaskCols+` FROM tasks`+f.where()+
		` ORDER BY priority DESC, created_at, id`+f.limit(fl.Limit), f.args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list tasks: %w", err)
	}
	defer rows.Close()
	var out []model.Task
	for rows.Next() {
		t, err := pgScanTask(rows)
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

func (s *pgStore) GetCheckpoint(ctx context.Context, id string) (string, error) {
	var pos string
	if err := s.pool.QueryRow(ctx, `SELECT position FROM checkpoints WHERE id = $1`, id).Scan(&pos); err != nil {
		return "", pgNotFound(err, fmt.Sprintf("get checkpoint %q", id))
	}
	return pos, nil
}

func (s *pgStore) SaveCheckpoint(ctx context.Context, id, position string) error {
	if id == "" {
		return fmt.Errorf("metastore: save checkpoint: %w: empty id", ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO checkpoints (id, position, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at`,
		id, position, utc(time.Now()))
	if err != nil {
		return fmt.Errorf("metastore: save checkpoint %q: %w", id, err)
	}
	return nil
}

// DeleteCheckpoint is idempotent: resetting a pipeline that never
// checkpointed is not an error.
func (s *pgStore) DeleteCheckpoint(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM checkpoints WHERE id = $1`, id); err != nil {
		return fmt.Errorf("metastore: delete checkpoint %q: %w", id, err)
	}
	return nil
}
