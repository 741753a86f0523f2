// Package metastore is the platform's metadata store: the catalog, schema
// versions, pipeline configs, executions, agent decisions, errors,
// resolutions, tasks and checkpoints. One interface has two backends,
// PostgreSQL (pgx) for production and SQLite (pure Go) as the embedded
// default, chosen by DSN scheme, and both pass one contract test suite.
package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/agentetl/agentetl/internal/model"
)

// ErrNotFound is returned by getters when no row matches. Callers test for it
// with errors.Is so that "absent" is never confused with "broken".
var ErrNotFound = errors.New("metastore: not found")

// CatalogEntry is one discovered entity (table, file, topic) in the catalog.
type CatalogEntry struct {
	// ID is stable across discovery runs: source id plus qualified name.
	ID          string       `json:"id"`
	SourceID    string       `json:"sourceId"`
	Name        string       `json:"name"` // qualified name, e.g. public.orders
	Kind        string       `json:"kind,omitempty"`
	Description string       `json:"description,omitempty"`
	Schema      model.Schema `json:"schema"`
	// Profile holds per-field statistics as produced by the discovery agent.
	Profile   json.RawMessage `json:"profile,omitempty"`
	RowCount  int64           `json:"rowCount"`
	UpdatedAt time.Time       `json:"updatedAt"`
	// Rank is set by QueryCatalog: higher is a better match.
	Rank float64 `json:"rank,omitempty"`
}

// CatalogQuery filters and ranks catalog entries.
type CatalogQuery struct {
	// Text is a free-text query over names, column names and descriptions.
	// Empty means all entries, ordered by name.
	Text     string
	SourceID string
	Limit    int
}

// SchemaVersion is one version of one source entity's schema.
type SchemaVersion struct {
	SourceID string       `json:"sourceId"`
	Version  int          `json:"version"`
	Schema   model.Schema `json:"schema"`
	// Hash identifies the schema content so unchanged schemas are not
	// versioned again.
	Hash      string          `json:"hash"`
	Changes   json.RawMessage `json:"changes,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
}

// PipelineConfigVersion is one stored version of a pipeline.
type PipelineConfigVersion struct {
	PipelineID string               `json:"pipelineId"`
	Version    int                  `json:"version"`
	Config     model.PipelineConfig `json:"config"`
	// YAML is the generated Benthos config, with secrets as env references.
	YAML      string    `json:"yaml"`
	State     string    `json:"state,omitempty"`
	Comment   string    `json:"comment,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Execution is one run of a pipeline.
type Execution struct {
	ID         string     `json:"id"`
	PipelineID string     `json:"pipelineId"`
	Status     string     `json:"status"` // queued, running, succeeded, failed, cancelled
	RowsIn     int64      `json:"rowsIn"`
	RowsOut    int64      `json:"rowsOut"`
	Errors     int64      `json:"errors"`
	DeadLetter int64      `json:"deadLetter"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Message    string     `json:"message,omitempty"`
}

// DecisionFilter selects agent decisions. Zero values match everything.
type DecisionFilter struct {
	AgentType  model.AgentType
	PipelineID string
	TaskID     string
	Since      time.Time
	Until      time.Time
	Limit      int
}

// ErrorFilter selects pipeline errors. Zero values match everything.
type ErrorFilter struct {
	PipelineID  string
	Fingerprint string
	Category    string
	Since       time.Time
	Limit       int
}

// FingerprintStats is the history of one error fingerprint: how often it
// was seen, when, and how each resolution strategy fared on it. The error
// resolution agent reads it to stop retrying errors that retries never fix.
type FingerprintStats struct {
	Fingerprint string    `json:"fingerprint"`
	Template    string    `json:"template"`
	Category    string    `json:"category"`
	Count       int64     `json:"count"`
	FirstSeen   time.Time `json:"firstSeen"`
	LastSeen    time.Time `json:"lastSeen"`
	// LastMessage is the newest raw message, for display.
	LastMessage string `json:"lastMessage,omitempty"`
	// Strategies maps a strategy name to its outcome counts; never nil.
	Strategies map[string]StrategyStats `json:"strategies"`
}

// StrategyStats counts how often a strategy was applied to a fingerprint and
// how often that resolved the error.
type StrategyStats struct {
	Attempts  int64 `json:"attempts"`
	Successes int64 `json:"successes"`
}

// FingerprintDelta is added to a fingerprint's stats by RecordFingerprint.
// Count is the number of new occurrences (may be 0 when only an outcome is
// recorded); Strategy, when set, gets Attempts and Successes added.
type FingerprintDelta struct {
	Fingerprint string
	Template    string
	Category    string
	Message     string
	Count       int64
	Seen        time.Time
	Strategy    string
	Attempts    int64
	Successes   int64
}

// FingerprintFilter selects fingerprint stats. Zero values match everything.
type FingerprintFilter struct {
	Category string
	Limit    int
}

// TaskFilter selects tasks. Zero values match everything.
type TaskFilter struct {
	Type       string
	Status     string
	AssignedTo string
	Limit      int
}

// Store is the metadata store. Every method takes a context and is safe for
// concurrent use. Lists are newest first unless documented otherwise.
// Limits <= 0 mean no limit and lists are never nil. Save methods fill an
// empty ID with a new UUID and a zero timestamp with the current time; times
// are stored and returned in UTC at microsecond precision on both backends.
type Store interface {
	// SaveCatalogEntry inserts or replaces the entry with the same ID.
	// Profile is stored as canonical JSON (compact, keys sorted), which is
	// the form every getter returns on both backends.
	SaveCatalogEntry(ctx context.Context, e CatalogEntry) error
	GetCatalogEntry(ctx context.Context, id string) (CatalogEntry, error)
	// QueryCatalog searches names, column names and descriptions, ranked.
	// Every word is a prefix and all words must match; punctuation and
	// query syntax in Text are ignored, so no input is a syntax error, and
	// Text without any letter or digit behaves like empty Text.
	QueryCatalog(ctx context.Context, q CatalogQuery) ([]CatalogEntry, error)
	// DeleteCatalogEntry returns ErrNotFound when there is no such entry.
	DeleteCatalogEntry(ctx context.Context, id string) error

	// SaveSchemaVersion stores sv as the next version of sv.SourceID and
	// returns it with Version and CreatedAt set. The caller decides whether
	// anything changed (compare Hash with LatestSchemaVersion).
	SaveSchemaVersion(ctx context.Context, sv SchemaVersion) (SchemaVersion, error)
	LatestSchemaVersion(ctx context.Context, sourceID string) (SchemaVersion, error)
	// GetSchemaHistory lists versions oldest first.
	GetSchemaHistory(ctx context.Context, sourceID string) ([]SchemaVersion, error)

	// SavePipelineConfig stores the next version of a pipeline and returns it
	// with Version and CreatedAt set.
	SavePipelineConfig(ctx context.Context, pc PipelineConfigVersion) (PipelineConfigVersion, error)
	// GetPipelineConfig returns one version; version 0 means the latest.
	GetPipelineConfig(ctx context.Context, pipelineID string, version int) (PipelineConfigVersion, error)
	// ListPipelineConfigs returns the latest version of every pipeline that
	// is not deleted, ordered by pipeline id.
	ListPipelineConfigs(ctx context.Context) ([]PipelineConfigVersion, error)
	// PipelineConfigHistory lists versions newest first.
	PipelineConfigHistory(ctx context.Context, pipelineID string) ([]PipelineConfigVersion, error)
	// SetPipelineState updates the state of the latest version in place.
	SetPipelineState(ctx context.Context, pipelineID, state string) error
	// DeletePipeline soft-deletes: the pipeline disappears from every
	// getter (ErrNotFound) but its rows are kept; saving it again revives
	// it with the next version number.
	DeletePipeline(ctx context.Context, pipelineID string) error

	// SaveExecution inserts or replaces an execution by ID.
	SaveExecution(ctx context.Context, e Execution) error
	GetExecution(ctx context.Context, id string) (Execution, error)
	ListExecutions(ctx context.Context, pipelineID string, limit int) ([]Execution, error)

	SaveAgentDecision(ctx context.Context, d model.AgentDecision) error
	ListAgentDecisions(ctx context.Context, f DecisionFilter) ([]model.AgentDecision, error)

	SavePipelineError(ctx context.Context, e model.PipelineError) error
	ListPipelineErrors(ctx context.Context, f ErrorFilter) ([]model.PipelineError, error)
	SaveResolution(ctx context.Context, r model.Resolution) error
	ListResolutions(ctx context.Context, errorID string) ([]model.Resolution, error)

	// RecordFingerprint adds d to the stats of d.Fingerprint, creating them
	// on first sight: counts add up, FirstSeen keeps the earliest and
	// LastSeen the latest time, Template, Category and LastMessage take the
	// latest non-empty value. Concurrent calls never lose an increment.
	RecordFingerprint(ctx context.Context, d FingerprintDelta) error
	// GetFingerprintStats returns ErrNotFound for an unknown fingerprint.
	GetFingerprintStats(ctx context.Context, fingerprint string) (FingerprintStats, error)
	// ListFingerprintStats is ordered by LastSeen, newest first.
	ListFingerprintStats(ctx context.Context, f FingerprintFilter) ([]FingerprintStats, error)

	// SaveTask inserts or replaces a task by ID.
	SaveTask(ctx context.Context, t model.Task) error
	GetTask(ctx context.Context, id string) (model.Task, error)
	// ListTasks is ordered by priority (highest first), then age (oldest first).
	ListTasks(ctx context.Context, f TaskFilter) ([]model.Task, error)

	// GetCheckpoint returns the stored position for id, or ErrNotFound.
	GetCheckpoint(ctx context.Context, id string) (string, error)
	// SaveCheckpoint durably stores the position for id (upsert).
	SaveCheckpoint(ctx context.Context, id, position string) error
	// DeleteCheckpoint is idempotent.
	DeleteCheckpoint(ctx context.Context, id string) error

	// Backend names the implementation: "postgres" or "sqlite".
	Backend() string
	Close() error
}
