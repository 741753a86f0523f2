package metastore

// postgresMigrations are applied in order; migration i has version i+1. Never
// edit or reorder a released entry: append a new one. Every object is created
// unqualified so it lands in the connection's current schema (the first
// entry of search_path), which is how tests and multi-tenant deployments
// isolate themselves.
var postgresMigrations = []string{
	// 1: initial schema.
	`
CREATE TABLE catalog_entries (
	id                  text PRIMARY KEY,
	source_id           text NOT NULL,
	name                text NOT NULL,
	kind                text NOT NULL DEFAULT '',
	description         text NOT NULL DEFAULT '',
	schema              jsonb NOT NULL,
	profile             jsonb,
	row_count           bigint NOT NULL DEFAULT 0,
	updated_at          timestamptz NOT NULL,
	-- The search_* columns hold the tokenised document computed by the
	-- application (see catalogSearchDoc) so both backends index the same
	-- words; the tsvector is generated from them and cannot drift.
	search_name         text NOT NULL DEFAULT '',
	search_columns      text NOT NULL DEFAULT '',
	search_descriptions text NOT NULL DEFAULT '',
	search              tsvector GENERATED ALWAYS AS (
		setweight(to_tsvector('simple'::regconfig, search_name), 'A') ||
		setweight(to_tsvector('simple'::regconfig, search_columns), 'B') ||
		setweight(to_tsvector('simple'::regconfig, search_descriptions), 'C')
	) STORED
);
CREATE INDEX catalog_entries_search_idx ON catalog_entries USING GIN (search);
CREATE INDEX catalog_entries_source_name_idx ON catalog_entries (source_id, name);

-- schema_sources is the per-source version counter: an upsert on it takes a
-- row lock, so concurrent savers get distinct consecutive versions.
CREATE TABLE schema_sources (
	source_id      text PRIMARY KEY,
	latest_version integer NOT NULL
);
CREATE TABLE schema_versions (
	source_id  text NOT NULL REFERENCES schema_sources (source_id),
	version    integer NOT NULL,
	schema     jsonb NOT NULL,
	hash       text NOT NULL DEFAULT '',
	changes    jsonb,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (source_id, version)
);

-- pipelines is both the version counter and the soft-delete marker.
CREATE TABLE pipelines (
	pipeline_id    text PRIMARY KEY,
	latest_version integer NOT NULL,
	deleted_at     timestamptz
);
CREATE TABLE pipeline_configs (
	pipeline_id text NOT NULL REFERENCES pipelines (pipeline_id),
	version     integer NOT NULL,
	config      jsonb NOT NULL,
	yaml        text NOT NULL DEFAULT '',
	state       text NOT NULL DEFAULT '',
	comment     text NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL,
	PRIMARY KEY (pipeline_id, version)
);

CREATE TABLE executions (
	id          text PRIMARY KEY,
	pipeline_id text NOT NULL,
	status      text NOT NULL DEFAULT '',
	rows_in     bigint NOT NULL DEFAULT 0,
	rows_out    bigint NOT NULL DEFAULT 0,
	errors      bigint NOT NULL DEFAULT 0,
	dead_letter bigint NOT NULL DEFAULT 0,
	started_at  timestamptz NOT NULL,
	finished_at timestamptz,
	message     text NOT NULL DEFAULT ''
);
CREATE INDEX executions_pipeline_started_idx ON executions (pipeline_id, started_at DESC);
CREATE INDEX executions_started_idx ON executions (started_at DESC);

CREATE TABLE agent_decisions (
	id          text PRIMARY KEY,
	agent_id    text NOT NULL DEFAULT '',
	agent_type  text NOT NULL DEFAULT '',
	task_id     text NOT NULL DEFAULT '',
	pipeline_id text NOT NULL DEFAULT '',
	action      text NOT NULL DEFAULT '',
	confidence  double precision NOT NULL DEFAULT 0,
	reasoning   text NOT NULL DEFAULT '',
	ts          timestamptz NOT NULL,
	outcome     text NOT NULL DEFAULT ''
);
CREATE INDEX agent_decisions_ts_idx ON agent_decisions (ts DESC);
CREATE INDEX agent_decisions_pipeline_ts_idx ON agent_decisions (pipeline_id, ts DESC);
CREATE INDEX agent_decisions_task_idx ON agent_decisions (task_id);

CREATE TABLE pipeline_errors (
	id           text PRIMARY KEY,
	pipeline_id  text NOT NULL DEFAULT '',
	execution_id text NOT NULL DEFAULT '',
	error_type   text NOT NULL DEFAULT '',
	message      text NOT NULL DEFAULT '',
	stack_trace  text NOT NULL DEFAULT '',
	context      jsonb,
	ts           timestamptz NOT NULL,
	fingerprint  text NOT NULL DEFAULT '',
	category     text NOT NULL DEFAULT ''
);
CREATE INDEX pipeline_errors_pipeline_ts_idx ON pipeline_errors (pipeline_id, ts DESC);
CREATE INDEX pipeline_errors_fingerprint_ts_idx ON pipeline_errors (fingerprint, ts DESC);
CREATE INDEX pipeline_errors_ts_idx ON pipeline_errors (ts DESC);

-- Resolutions have no natural key; seq orders those applied in the same
-- microsecond. No foreign key to pipeline_errors: errors may be pruned by
-- retention while the record of what was done is kept.
CREATE TABLE resolutions (
	seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	error_id   text NOT NULL,
	strategy   text NOT NULL DEFAULT '',
	actions    jsonb,
	success    boolean NOT NULL DEFAULT false,
	applied_at timestamptz NOT NULL
);
CREATE INDEX resolutions_error_idx ON resolutions (error_id, applied_at DESC);

CREATE TABLE tasks (
	id          text PRIMARY KEY,
	type        text NOT NULL DEFAULT '',
	priority    integer NOT NULL DEFAULT 0,
	payload     jsonb,
	created_at  timestamptz NOT NULL,
	assigned_to text NOT NULL DEFAULT '',
	status      text NOT NULL DEFAULT '',
	updated_at  timestamptz NOT NULL
);
CREATE INDEX tasks_status_order_idx ON tasks (status, priority DESC, created_at);

CREATE TABLE checkpoints (
	id         text PRIMARY KEY,
	position   text NOT NULL,
	updated_at timestamptz NOT NULL
);
`,
	// 2: error fingerprint history for the error resolution agent.
	`
CREATE TABLE error_fingerprints (
	fingerprint  text PRIMARY KEY,
	template     text NOT NULL DEFAULT '',
	category     text NOT NULL DEFAULT '',
	count        bigint NOT NULL DEFAULT 0,
	first_seen   timestamptz NOT NULL,
	last_seen    timestamptz NOT NULL,
	last_message text NOT NULL DEFAULT ''
);
CREATE INDEX error_fingerprints_last_seen_idx ON error_fingerprints (last_seen DESC);
CREATE TABLE error_fingerprint_strategies (
	fingerprint text NOT NULL REFERENCES error_fingerprints (fingerprint) ON DELETE CASCADE,
	strategy    text NOT NULL,
	attempts    bigint NOT NULL DEFAULT 0,
	successes   bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (fingerprint, strategy)
);
`,
}
