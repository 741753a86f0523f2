package main

import (
	"encoding/json"
	"fmt"

	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/bus"
)

// decodeChanges reads the data of an agentetl.schema.changed event: one
// SchemaChange, a list of them, or an object with a "changes" list (the
// discovery agent's batch form).
func decodeChanges(ev bus.Event) ([]orch.SchemaChange, error) {
	if len(ev.Data) == 0 {
		return nil, fmt.Errorf("event %s has no data", ev.ID)
	}
	var list []orch.SchemaChange
	if err := json.Unmarshal(ev.Data, &list); err == nil {
		return list, nil
	}
	var wrapped struct {
		Changes []orch.SchemaChange `json:"changes"`
	}
	if err := json.Unmarshal(ev.Data, &wrapped); err == nil && len(wrapped.Changes) > 0 {
		return wrapped.Changes, nil
	}
	var one orch.SchemaChange
	if err := json.Unmarshal(ev.Data, &one); err != nil {
		return nil, fmt.Errorf("decode schema change: %w", err)
	}
	if one.Table == "" {
		return nil, fmt.Errorf("schema change event %s names no table", ev.ID)
	}
	return []orch.SchemaChange{one}, nil
}

// errorTaskPayload turns an agentetl.pipeline.error event into the payload
// of an error-resolution task: the error itself plus the envelope fields.
func errorTaskPayload(ev bus.Event) json.RawMessage {
	b, err := json.Marshal(map[string]any{
		"pipelineId": ev.PipelineID,
		"key":        "error:" + ev.ID,
		"eventId":    ev.ID,
		"error":      json.RawMessage(orDefault(ev.Data)),
	})
	if err != nil {
		return nil
	}
	return b
}

func orDefault(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || !json.Valid(b) {
		return json.RawMessage("null")
	}
	return b
}
