package discovery

import (
	"time"

	"github.com/agentetl/agentetl/internal/model"
)

// Kinds of discovered entities.
const (
	KindTable        = "table"
	KindView         = "view"
	KindMaterialized = "materialized_view"
	KindForeign      = "foreign_table"
	KindPartitioned  = "partitioned_table"
	KindFile         = "file"
)

// ValueClass says how the values of a column are ordered for min and max.
type ValueClass string

// Value classes.
const (
	ClassNumeric  ValueClass = "numeric"
	ClassTemporal ValueClass = "temporal"
	ClassBoolean  ValueClass = "boolean"
	ClassText     ValueClass = "text"
	// ClassOther covers json, binary, arrays, geometry and the like: they get
	// no min and max.
	ClassOther ValueClass = "other"
)

// Column is one column as a connector reports it.
type Column struct {
	Name        string
	DataType    string
	Nullable    bool
	Description string
	// Class is how values compare; empty means ClassOf(DataType).
	Class ValueClass
}

// ForeignKey is one foreign-key constraint of a table.
type ForeignKey struct {
	Name       string   `json:"name,omitempty"`
	Columns    []string `json:"columns"`
	RefTable   string   `json:"refTable"`
	RefColumns []string `json:"refColumns"`
}

// Entity is one table, view or file before profiling, as a connector's bulk
// catalog read reports it.
type Entity struct {
	// Schema is the namespace (PostgreSQL schema, MySQL database, "main" for
	// SQLite, the directory for files; may be empty).
	Schema      string
	Name        string
	Kind        string
	Description string
	Columns     []Column
	PrimaryKey  []string
	ForeignKeys []ForeignKey
	// RowEstimate is the catalog's row estimate, -1 when unknown.
	RowEstimate int64
	// RowCountExact is true when RowEstimate is an exact count.
	RowCountExact bool
	// Handle is connector-private data (an OID, a file path...).
	Handle any
}

// QualifiedName is schema.name, or name when there is no schema.
func (e *Entity) QualifiedName() string { return qualify(e.Schema, e.Name) }

func qualify(schema, name string) string {
	if schema == "" {
		return name
	}
	return schema + "." + name
}

// ReadInfo describes how a connector read the rows it handed to the
// profiler.
type ReadInfo struct {
	// Sampled is false when every row of the entity was profiled.
	Sampled bool
	// Method names the sampling, e.g. "TABLESAMPLE SYSTEM (12.5) REPEATABLE (42)".
	Method string
	// RowCount is the entity's row count: exact when RowCountExact, else an
	// estimate; -1 when unknown.
	RowCount      int64
	RowCountExact bool
}

// SourceMetadata is the discovery agent's document about one table, view or
// file: the seed's Schema plus keys, kind, description and statistics. It is
// the JSON of the CLI output, of the discovery input's table messages and of
// the catalog entry's profile. Key names are stable.
type SourceMetadata struct {
	// Table is the qualified name: schema.table (files: the relative path).
	Table       string       `json:"table"`
	SchemaName  string       `json:"schemaName,omitempty"`
	Name        string       `json:"name"`
	Kind        string       `json:"kind"`
	SourceID    string       `json:"sourceId"`
	Connector   string       `json:"connector"`
	Description string       `json:"description,omitempty"`
	Schema      model.Schema `json:"schema"`
	PrimaryKey  []string     `json:"primaryKey,omitempty"`
	ForeignKeys []ForeignKey `json:"foreignKeys,omitempty"`
	Stats       Stats        `json:"stats"`
	// SchemaHash identifies the structure (fields, keys, descriptions), not
	// the statistics; a new schema version is written only when it changes.
	SchemaHash   string    `json:"schemaHash"`
	DiscoveredAt time.Time `json:"discoveredAt"`
}

// Stats are table-level statistics with one profile per column.
type Stats struct {
	// RowCount is exact unless RowCountEstimated; -1 means unknown.
	RowCount          int64 `json:"rowCount"`
	RowCountEstimated bool  `json:"rowCountEstimated"`
	// Profiled is false for metadata-only discovery (no field profiles).
	Profiled bool `json:"profiled"`
	// Sampled is true when the profiles were computed on a sample.
	Sampled      bool   `json:"sampled"`
	SampleMethod string `json:"sampleMethod,omitempty"`
	// SampleSize is the number of rows the profiles were computed on.
	SampleSize    int64                    `json:"sampleSize"`
	ProfileMillis int64                    `json:"profileMillis,omitempty"`
	Fields        map[string]*FieldProfile `json:"fields,omitempty"`
}

// FieldProfile is the statistical profile of one column.
type FieldProfile struct {
	// NullFraction is null rows / profiled rows.
	NullFraction float64 `json:"nullFraction"`
	NullCount    int64   `json:"nullCount"`
	// DistinctCount counts distinct non-null values: exact when the table
	// was read whole, else estimated (DistinctEstimated) from the sample.
	DistinctCount     int64 `json:"distinctCount"`
	DistinctEstimated bool  `json:"distinctEstimated"`
	// Min and Max are typed JSON values: numbers for numeric columns,
	// booleans for boolean columns, strings otherwise; null when the column
	// has no orderable value.
	Min any `json:"min"`
	Max any `json:"max"`
	// TopValues are the most frequent values, most frequent first.
	TopValues []ValueFrequency `json:"topValues"`
	// AvgLength is the mean length in characters of the text form.
	AvgLength float64 `json:"avgLength"`
	// SemanticType is one of the Semantic* constants, or "".
	SemanticType       string  `json:"semanticType"`
	SemanticConfidence float64 `json:"semanticConfidence,omitempty"`
	// Sample holds a few distinct example values (text form, shortened).
	Sample []string `json:"sample"`
}

// ValueFrequency is one of the top values of a column.
type ValueFrequency struct {
	Value any   `json:"value"`
	Count int64 `json:"count"`
	// Frequency is Count / profiled rows.
	Frequency float64 `json:"frequency"`
}

// SkippedTable is a table that was found but could not be discovered fully,
// with the reason (no SELECT privilege, timeout, error).
type SkippedTable struct {
	Table  string `json:"table"`
	Reason string `json:"reason"`
}

// Change types of SchemaChange.
const (
	ChangeTableAdded         = "table_added"
	ChangeTableRemoved       = "table_removed"
	ChangeColumnAdded        = "column_added"
	ChangeColumnRemoved      = "column_removed"
	ChangeColumnRenamed      = "column_renamed"
	ChangeTypeChanged        = "type_changed"
	ChangeNullability        = "nullability_changed"
	ChangeDescription        = "description_changed"
	ChangeTableDescription   = "table_description_changed"
	ChangePrimaryKeyChanged  = "primary_key_changed"
	SeverityBreaking         = "breaking"
	SeverityNonBreaking      = "non_breaking"
	SeverityInfo             = "info"
	defaultRenameThreshold   = 0.6
	defaultSemanticThreshold = 0.9
)

// SchemaChange is one difference between the latest cataloged version of a
// table and what discovery found now.
type SchemaChange struct {
	ID         string `json:"id"`
	SourceID   string `json:"sourceId"`
	Table      string `json:"table"`
	ChangeType string `json:"changeType"`
	Severity   string `json:"severity"`
	// Column is the affected column (for a rename: the new name).
	Column string `json:"column,omitempty"`
	// PreviousColumn is the old name of a renamed column.
	PreviousColumn string `json:"previousColumn,omitempty"`
	// TypeChange classes a type_changed: widening, narrowing, incompatible
	// or equivalent.
	TypeChange string       `json:"typeChange,omitempty"`
	Before     *model.Field `json:"before,omitempty"`
	After      *model.Field `json:"after,omitempty"`
	// Confidence is 1 for changes read from the catalog; a rename carries
	// the similarity score that paired the two columns.
	Confidence  float64   `json:"confidence"`
	Reasoning   string    `json:"reasoning"`
	FromVersion int       `json:"fromVersion,omitempty"`
	ToVersion   int       `json:"toVersion,omitempty"`
	DetectedAt  time.Time `json:"detectedAt"`
}

// Result is one discovery run.
type Result struct {
	RunID     string `json:"runId"`
	SourceID  string `json:"sourceId"`
	Connector string `json:"connector"`
	// Tables is sorted by qualified name and never nil.
	Tables []*SourceMetadata `json:"tables"`
	// Skipped lists tables that were found but left out, with the reason.
	Skipped []SkippedTable `json:"skipped"`
	// Changes is filled by Run (with a store) and never nil.
	Changes   []SchemaChange `json:"changes"`
	StartedAt time.Time      `json:"startedAt"`
	Duration  time.Duration  `json:"duration"`
}
