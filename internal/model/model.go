// Package model holds the platform's shared data models. They follow the seed
// design document (Schema, Field, FieldMapping, Task, AgentDecision,
// PipelineError, Resolution, PipelineConfig) and their JSON names are the
// vocabulary of every API, CLI and stored document, so they must stay stable.
package model

import (
	"encoding/json"
	"time"
)

// AgentType names the kind of agent that takes a task or a decision.
type AgentType string

// Agent types known to the platform.
const (
	AgentDiscovery    AgentType = "discovery"
	AgentMapping      AgentType = "mapping"
	AgentResolution   AgentType = "error_resolution"
	AgentOrchestrator AgentType = "orchestrator"
)

// Field is one column or attribute of a Schema.
type Field struct {
	Name        string `json:"name"`
	DataType    string `json:"dataType"`
	Nullable    bool   `json:"nullable"`
	Description string `json:"description,omitempty"`
	// Samples are example values; optional and used by the mapping agent
	// when no profile is present.
	Samples []any `json:"samples,omitempty"`
}

// Schema is a versioned list of fields that belongs to one source entity.
type Schema struct {
	ID        string    `json:"id"`
	SourceID  string    `json:"sourceId"`
	Version   int       `json:"version"`
	Fields    []Field   `json:"fields"`
	Timestamp time.Time `json:"timestamp"`
}

// Mapping types.
const (
	MappingDirect      = "direct"
	MappingTransformed = "transformed"
	MappingDerived     = "derived"
)

// FieldMapping says which source field feeds which target field.
type FieldMapping struct {
	SourceField    string  `json:"sourceField"`
	TargetField    string  `json:"targetField"`
	Transformation string  `json:"transformation,omitempty"`
	Confidence     float64 `json:"confidence"`
	MappingType    string  `json:"mappingType"`
}

// Task types.
const (
	TaskDiscovery       = "discovery"
	TaskMapping         = "mapping"
	TaskErrorResolution = "error_resolution"
)

// Task is a unit of work for an agent.
type Task struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Priority   int             `json:"priority"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	AssignedTo string          `json:"assignedTo,omitempty"`
	// Status is one of queued, running, done, failed.
	Status    string    `json:"status,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitempty"`
}

// AgentDecision is the audit record of one choice an agent made.
type AgentDecision struct {
	ID         string    `json:"id"`
	AgentID    string    `json:"agentId"`
	AgentType  AgentType `json:"agentType"`
	TaskID     string    `json:"taskId,omitempty"`
	PipelineID string    `json:"pipelineId,omitempty"`
	Action     string    `json:"action"`
	Confidence float64   `json:"confidence"`
	Reasoning  string    `json:"reasoning"`
	Timestamp  time.Time `json:"timestamp"`
	Outcome    string    `json:"outcome,omitempty"`
}

// ErrorContext carries what surrounded a pipeline error.
type ErrorContext struct {
	Record         any    `json:"record,omitempty"`
	Transformation string `json:"transformation,omitempty"`
	SourceLocation string `json:"sourceLocation,omitempty"`
}

// PipelineError is one failure observed in a pipeline.
type PipelineError struct {
	ID          string       `json:"id"`
	PipelineID  string       `json:"pipelineId"`
	ExecutionID string       `json:"executionId"`
	ErrorType   string       `json:"errorType"`
	Message     string       `json:"message"`
	StackTrace  string       `json:"stackTrace,omitempty"`
	Context     ErrorContext `json:"context"`
	Timestamp   time.Time    `json:"timestamp"`
	// Fingerprint is the normalised message template; filled by the error
	// resolution agent.
	Fingerprint string `json:"fingerprint,omitempty"`
	Category    string `json:"category,omitempty"`
}

// Resolution strategies.
const (
	StrategyRetry        = "retry"
	StrategySkip         = "skip"
	StrategyAdjustConfig = "adjust_config"
	StrategyEscalate     = "escalate"
)

// ResolutionAction is one step a resolution took.
type ResolutionAction struct {
	Type   string         `json:"type"`
	Detail string         `json:"detail,omitempty"`
	Params map[string]any `json:"params,omitempty"`
}

// Resolution is what was done about one error.
type Resolution struct {
	ErrorID   string             `json:"errorId"`
	Strategy  string             `json:"strategy"`
	Actions   []ResolutionAction `json:"actions"`
	Success   bool               `json:"success"`
	AppliedAt time.Time          `json:"appliedAt"`
}

// SourceConfig describes where a pipeline reads.
type SourceConfig struct {
	Type       string            `json:"type"`
	Connection map[string]string `json:"connection,omitempty"`
	Query      string            `json:"query,omitempty"`
	Topic      string            `json:"topic,omitempty"`
	Table      string            `json:"table,omitempty"`
}

// Transformation is one step between source and destination.
type Transformation struct {
	ID        string `json:"id"`
	Type      string `json:"type"` // map, filter, aggregate, join
	Logic     string `json:"logic"`
	Condition string `json:"condition,omitempty"`
}

// DestinationConfig describes where a pipeline writes.
type DestinationConfig struct {
	Type       string            `json:"type"`
	Connection map[string]string `json:"connection,omitempty"`
	Table      string            `json:"table,omitempty"`
	Topic      string            `json:"topic,omitempty"`
}

// Schedule is a cron schedule for batch pipelines.
type Schedule struct {
	Cron     string `json:"cron"`
	Timezone string `json:"timezone,omitempty"`
}

// ErrorHandlingConfig says how a pipeline treats failures.
type ErrorHandlingConfig struct {
	MaxRetries int    `json:"maxRetries,omitempty"`
	DeadLetter string `json:"deadLetter,omitempty"`
}

// PipelineMetadata carries bookkeeping about a pipeline.
type PipelineMetadata struct {
	Owner       string            `json:"owner,omitempty"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	CreatedAt   time.Time         `json:"createdAt,omitempty"`
	UpdatedAt   time.Time         `json:"updatedAt,omitempty"`
}

// PipelineConfig is the user-facing description of one pipeline.
type PipelineConfig struct {
	ID              string              `json:"id"`
	Name            string              `json:"name"`
	Type            string              `json:"type"` // batch or stream
	Source          SourceConfig        `json:"source"`
	Transformations []Transformation    `json:"transformations"`
	Destination     DestinationConfig   `json:"destination"`
	Schedule        *Schedule           `json:"schedule,omitempty"`
	ErrorHandling   ErrorHandlingConfig `json:"errorHandling"`
	Metadata        PipelineMetadata    `json:"metadata"`
}
