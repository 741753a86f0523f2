package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

// PlanStep is one task of a coordination plan.
type PlanStep struct {
	TaskID    string          `json:"taskId"`
	AgentType model.AgentType `json:"agentType"`
	Purpose   string          `json:"purpose"`
	DependsOn []string        `json:"dependsOn,omitempty"`
	Status    string          `json:"status"`
}

// CoordinationPlan is the answer of CoordinateAgents.
type CoordinationPlan struct {
	PipelineID string     `json:"pipelineId"`
	Steps      []PlanStep `json:"steps"`
	DecisionID string     `json:"decisionId"`
}

// Task priorities used by plans. Error resolution outranks mapping, which
// outranks discovery: fixing a broken pipeline matters more than adapting
// a working one, which matters more than refreshing the catalog.
const (
	PriorityDiscovery  = 10
	PriorityMapping    = 20
	PriorityResolution = 30
)

// CoordinateAgents plans the agent work a pipeline needs: discovery of its
// source and of its destination (in parallel), then a mapping task that
// waits for both. Keys make the plan idempotent: planning again while an
// earlier plan is still queued replaces the queued tasks instead of adding
// duplicates. The plan is recorded as one decision.
func (c *Coordinator) CoordinateAgents(ctx context.Context, pipelineID string) (CoordinationPlan, error) {
	pv, err := c.store.GetPipelineConfig(ctx, pipelineID, 0)
	if err != nil {
		if errors.Is(err, metastore.ErrNotFound) {
			return CoordinationPlan{}, fmt.Errorf("orchestrator: pipeline %s: %w", pipelineID, err)
		}
		return CoordinationPlan{}, fmt.Errorf("orchestrator: load pipeline %s: %w", pipelineID, err)
	}
	pc := pv.Config
	plan := CoordinationPlan{PipelineID: pipelineID}
	srcKey := "source:" + strings.ToLower(pc.Source.Type+":"+firstNonEmpty(pc.Source.Table, pc.Source.Topic, pc.Source.Query))
	dstKey := "destination:" + strings.ToLower(pc.Destination.Type+":"+firstNonEmpty(pc.Destination.Table, pc.Destination.Topic))

	add := func(at model.AgentType, prio int, purpose string, payload map[string]any, deps []string) (PlanStep, error) {
		payload["pipelineId"] = pipelineID
		if len(deps) > 0 {
			payload["dependsOn"] = deps
		}
		b, err := json.Marshal(payload)
		if err != nil {
			return PlanStep{}, fmt.Errorf("orchestrator: encode task payload: %w", err)
		}
		asg, err := c.AssignTask(ctx, model.Task{ID: uuid.NewString(), Priority: prio, Payload: b}, at)
		if err != nil {
			return PlanStep{}, err
		}
		st := PlanStep{TaskID: asg.Task.ID, AgentType: at, Purpose: purpose, DependsOn: ParseEnvelope(asg.Task.Payload).DependsOn, Status: asg.Task.Status}
		plan.Steps = append(plan.Steps, st)
		return st, nil
	}
	src, err := add(model.AgentDiscovery, PriorityDiscovery, "profile the source and detect schema changes", map[string]any{
		"key": pipelineID + "/" + srcKey, "role": "source", "sourceType": pc.Source.Type, "table": pc.Source.Table,
		"topic": pc.Source.Topic, "connection": pc.Source.Connection,
	}, nil)
	if err != nil {
		return CoordinationPlan{}, err
	}
	dst, err := add(model.AgentDiscovery, PriorityDiscovery, "read the destination schema the mapping must target", map[string]any{
		"key": pipelineID + "/" + dstKey, "role": "destination", "sourceType": pc.Destination.Type, "table": pc.Destination.Table,
		"topic": pc.Destination.Topic, "connection": pc.Destination.Connection,
	}, nil)
	if err != nil {
		return CoordinationPlan{}, err
	}
	if _, err := add(model.AgentMapping, PriorityMapping, "map source fields onto destination fields", map[string]any{
		"key": pipelineID + "/mapping", "sourceTable": pc.Source.Table, "targetTable": pc.Destination.Table,
		"pipelineVersion": pv.Version,
	}, []string{src.TaskID, dst.TaskID}); err != nil {
		return CoordinationPlan{}, err
	}
	var parts []string
	for _, s := range plan.Steps {
		parts = append(parts, fmt.Sprintf("%s task %s (%s, %s)", s.AgentType, s.TaskID, s.Purpose, s.Status))
	}
	d := c.RecordDecision(ctx, model.AgentDecision{
		AgentID: OrchestratorID, AgentType: model.AgentOrchestrator, PipelineID: pipelineID, Action: "coordinate_agents",
		Confidence: 1, Outcome: fmt.Sprintf("%d tasks", len(plan.Steps)),
		Reasoning: fmt.Sprintf("pipeline %s v%d needs both schemas before a mapping can be proposed: %s", pipelineID, pv.Version, strings.Join(parts, "; ")),
	})
	plan.DecisionID = d.ID
	return plan, nil
}

// SchemaChange is the part of an agentetl.schema.changed event the
// coordinator reads; the discovery agent's full record has more fields.
type SchemaChange struct {
	ID             string  `json:"id"`
	SourceID       string  `json:"sourceId"`
	Table          string  `json:"table"`
	ChangeType     string  `json:"changeType"`
	Severity       string  `json:"severity"`
	Column         string  `json:"column,omitempty"`
	PreviousColumn string  `json:"previousColumn,omitempty"`
	Confidence     float64 `json:"confidence"`
}

// OnSchemaChanges turns detected schema changes into one mapping task per
// affected pipeline: a pipeline is affected when its source table is the
// changed table (schema-qualified or not) in the same source (when a
// source resolver is set). A mapping task already queued
// for that pipeline is superseded, a running one is waited for (see
// AssignTask). It returns the created tasks.
func (c *Coordinator) OnSchemaChanges(ctx context.Context, changes []SchemaChange) ([]model.Task, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	pcs, err := c.store.ListPipelineConfigs(ctx)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: list pipelines: %w", err)
	}
	c.mu.Lock()
	sourceIDOf := c.sourceIDOf
	c.mu.Unlock()
	var out []model.Task
	for _, pv := range pcs {
		src := ""
		if sourceIDOf != nil {
			src = sourceIDOf(pv.Config)
		}
		var hits []SchemaChange
		for _, ch := range changes {
			if !sameTable(pv.Config.Source.Table, ch.Table) {
				continue
			}
			if src != "" && ch.SourceID != "" && src != ch.SourceID {
				continue // the same table name in another source
			}
			hits = append(hits, ch)
		}
		if len(hits) == 0 {
			continue
		}
		b, err := json.Marshal(map[string]any{
			"pipelineId": pv.PipelineID, "key": pv.PipelineID + "/mapping", "reason": "schema_change",
			"sourceTable": pv.Config.Source.Table, "targetTable": pv.Config.Destination.Table,
			"pipelineVersion": pv.Version, "changes": hits,
		})
		if err != nil {
			return out, fmt.Errorf("orchestrator: encode mapping task: %w", err)
		}
		asg, err := c.AssignTask(ctx, model.Task{Priority: PriorityMapping + 5, Payload: b}, model.AgentMapping)
		if err != nil {
			return out, err
		}
		var kinds []string
		for _, h := range hits {
			kinds = append(kinds, h.ChangeType+" "+firstNonEmpty(h.Column, h.Table))
		}
		c.RecordDecision(ctx, model.AgentDecision{
			AgentID: OrchestratorID, AgentType: model.AgentOrchestrator, TaskID: asg.Task.ID, PipelineID: pv.PipelineID,
			Action: "schema_change_to_mapping", Confidence: 1, Outcome: asg.Status,
			Reasoning: fmt.Sprintf("source table %s of pipeline %s changed (%s); its mapping must be re-derived", pv.Config.Source.Table, pv.PipelineID, strings.Join(kinds, ", ")),
		})
		out = append(out, asg.Task)
	}
	return out, nil
}

// sameTable compares table names case-insensitively, ignoring quotes and
// treating an unqualified name as matching any schema.
func sameTable(a, b string) bool {
	norm := func(s string) (string, string) {
		s = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), `"`, ""))
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			return s[:i], s[i+1:]
		}
		return "", s
	}
	if a == "" || b == "" {
		return false
	}
	sa, ta := norm(a)
	sb, tb := norm(b)
	if ta != tb {
		return false
	}
	return sa == "" || sb == "" || sa == sb
}
