package metastore

// sqliteMigrations mirror postgresMigrations table for table; migration i has
// version i+1. Never edit or reorder a released entry: append a new one.
//
// Timestamps are TEXT in the fixed-width UTC form of sqliteTimeLayout, so
// string comparison is chronological and indexes on them work; JSON columns
// are TEXT.
var sqliteMigrations = []string{
	// 1: initial schema.
	`
-- seq is an explicit INTEGER PRIMARY KEY (a rowid alias that VACUUM cannot
-- renumber), used as the rowid of the full-text index.
CREATE TABLE catalog_entries (
	seq                 INTEGER PRIMARY KEY,
	id                  TEXT NOT NULL UNIQUE,
	source_id           TEXT NOT NULL,
	name                TEXT NOT NULL,
	kind                TEXT NOT NULL DEFAULT '',
	description         TEXT NOT NULL DEFAULT '',
	schema              TEXT NOT NULL,
	profile             TEXT,
	row_count           INTEGER NOT NULL DEFAULT 0,
	updated_at          TEXT NOT NULL,
	search_name         TEXT NOT NULL DEFAULT '',
	search_columns      TEXT NOT NULL DEFAULT '',
	search_descriptions TEXT NOT NULL DEFAULT ''
);
CREATE INDEX catalog_entries_source_name_idx ON catalog_entries (source_id, name);

-- The FTS5 index is kept in sync by triggers, so no write path can forget it.
CREATE VIRTUAL TABLE catalog_fts USING fts5(
	name, column_names, descriptions,
	tokenize = 'unicode61'
);
CREATE TRIGGER catalog_entries_fts_insert AFTER INSERT ON catalog_entries BEGIN
	INSERT INTO catalog_fts (rowid, name, column_names, descriptions)
	VALUES (new.seq, new.search_name, new.search_columns, new.search_descriptions);
END;
CREATE TRIGGER catalog_entries_fts_delete AFTER DELETE ON catalog_entries BEGIN
	DELETE FROM catalog_fts WHERE rowid = old.seq;
END;
CREATE TRIGGER catalog_entries_fts_update AFTER UPDATE ON catalog_entries BEGIN
	DELETE FROM catalog_fts WHERE rowid = old.seq;
	INSERT INTO catalog_fts (rowid, name, column_names, descriptions)
	VALUES (new.seq, new.search_name, new.search_columns, new.search_descriptions);
END;

CREATE TABLE schema_sources (
	source_id      TEXT PRIMARY KEY,
	latest_version INTEGER NOT NULL
);
CREATE TABLE schema_versions (
	source_id  TEXT NOT NULL REFERENCES schema_sources (source_id),
	version    INTEGER NOT NULL,
	schema     TEXT NOT NULL,
	hash       TEXT NOT NULL DEFAULT '',
	changes    TEXT,
	created_at TEXT NOT NULL,
	PRIMARY KEY (source_id, version)
);

CREATE TABLE pipelines (
	pipeline_id    TEXT PRIMARY KEY,
	latest_version INTEGER NOT NULL,
	deleted_at     TEXT
);
CREATE TABLE pipeline_configs (
	pipeline_id TEXT NOT NULL REFERENCES pipelines (pipeline_id),
	version     INTEGER NOT NULL,
	config      TEXT NOT NULL,
	yaml        TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL DEFAULT '',
	comment     TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	PRIMARY KEY (pipeline_id, version)
);

CREATE TABLE executions (
	id          TEXT PRIMARY KEY,
	pipeline_id TEXT NOT NULL,
	status      TEXT NOT NULL DEFAULT '',
	rows_in     INTEGER NOT NULL DEFAULT 0,
	rows_out    INTEGER NOT NULL DEFAULT 0,
	errors      INTEGER NOT NULL DEFAULT 0,
	dead_letter INTEGER NOT NULL DEFAULT 0,
	started_at  TEXT NOT NULL,
	finished_at TEXT,
	message     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX executions_pipeline_started_idx ON executions (pipeline_id, started_at DESC);
CREATE INDEX executions_started_idx ON executions (started_at DESC);

CREATE TABLE agent_decisions (
	id          TEXT PRIMARY KEY,
	agent_id    TEXT NOT NULL DEFAULT '',
	agent_type  TEXT NOT NULL DEFAULT '',
	task_id     TEXT NOT NULL DEFAULT '',
	pipeline_id TEXT NOT NULL DEFAULT '',
	action      TEXT NOT NULL DEFAULT '',
	confidence  REAL NOT NULL DEFAULT 0,
	reasoning   TEXT NOT NULL DEFAULT '',
	ts          TEXT NOT NULL,
	outcome     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX agent_decisions_ts_idx ON agent_decisions (ts DESC);
CREATE INDEX agent_decisions_pipeline_ts_idx ON agent_decisions (pipeline_id, ts DESC);
CREATE INDEX agent_decisions_task_idx ON agent_decisions (task_id);

CREATE TABLE pipeline_errors (
	id           TEXT PRIMARY KEY,
	pipeline_id  TEXT NOT NULL DEFAULT '',
	execution_id TEXT NOT NULL DEFAULT '',
	error_type   TEXT NOT NULL DEFAULT '',
	message      TEXT NOT NULL DEFAULT '',
	stack_trace  TEXT NOT NULL DEFAULT '',
	context      TEXT,
	ts           TEXT NOT NULL,
	fingerprint  TEXT NOT NULL DEFAULT '',
	category     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX pipeline_errors_pipeline_ts_idx ON pipeline_errors (pipeline_id, ts DESC);
CREATE INDEX pipeline_errors_fingerprint_ts_idx ON pipeline_errors (fingerprint, ts DESC);
CREATE INDEX pipeline_errors_ts_idx ON pipeline_errors (ts DESC);

CREATE TABLE resolutions (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	error_id   TEXT NOT NULL,
	strategy   TEXT NOT NULL DEFAULT '',
	actions    TEXT,
	success    INTEGER NOT NULL DEFAULT 0,
	applied_at TEXT NOT NULL
);
CREATE INDEX resolutions_error_idx ON resolutions (error_id, applied_at DESC);

CREATE TABLE tasks (
	id          TEXT PRIMARY KEY,
	type        TEXT NOT NULL DEFAULT '',
	priority    INTEGER NOT NULL DEFAULT 0,
	payload     TEXT,
	created_at  TEXT NOT NULL,
	assigned_to TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL DEFAULT '',
	updated_at  TEXT NOT NULL
);
CREATE INDEX tasks_status_order_idx ON tasks (status, priority DESC, created_at);

CREATE TABLE checkpoints (
	id         TEXT PRIMARY KEY,
	position   TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
`,
	// 2: error fingerprint history for the error resolution agent.
	`
CREATE TABLE error_fingerprints (
	fingerprint  TEXT PRIMARY KEY,
	template     TEXT NOT NULL DEFAULT '',
	category     TEXT NOT NULL DEFAULT '',
	count        INTEGER NOT NULL DEFAULT 0,
	first_seen   TEXT NOT NULL,
	last_seen    TEXT NOT NULL,
	last_message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX error_fingerprints_last_seen_idx ON error_fingerprints (last_seen DESC);
CREATE TABLE error_fingerprint_strategies (
	fingerprint TEXT NOT NULL REFERENCES error_fingerprints (fingerprint) ON DELETE CASCADE,
	strategy    TEXT NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	successes   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (fingerprint, strategy)
);
`,
}
