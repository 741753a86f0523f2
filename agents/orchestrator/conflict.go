package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/uuid"

	"github.com/agentetl/agentetl/internal/model"
)

// Conflict kinds named by the issue. Any other kind is resolved by the same
// rules.
const (
	// Two mapping proposals for the same target field.
	ConflictTargetField = "target_field"
	// An error-resolution adjustment against a mapping update on the same
	// pipeline.
	ConflictAdjustmentVsMapping = "adjustment_vs_mapping"
	// A schema change arriving while a mapping task for the same table is
	// in flight (AssignTask resolves that one by superseding or waiting;
	// ResolveConflict records the same choice when asked explicitly).
	ConflictSchemaChangeInFlight = "schema_change_in_flight"
)

// Proposal is one side of a conflict.
type Proposal struct {
	AgentID    string          `json:"agentId"`
	AgentType  model.AgentType `json:"agentType"`
	TaskID     string          `json:"taskId,omitempty"`
	Action     string          `json:"action"`
	Confidence float64         `json:"confidence"`
	// Human marks a decision a person took through the API (a review
	// approval, an edit); it outranks every agent.
	Human bool `json:"human,omitempty"`
	// Safety marks an action that protects data or the target (pause a
	// pipeline, skip poison records, stop retries) as opposed to one that
	// improves it.
	Safety    bool            `json:"safety,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

// AgentConflict is a set of mutually exclusive proposals about one target.
type AgentConflict struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	PipelineID string `json:"pipelineId,omitempty"`
	// Target is what the proposals fight over (a target field, a pipeline).
	Target    string     `json:"target"`
	Proposals []Proposal `json:"proposals"`
}

// Resolution is the outcome of ResolveConflict.
type Resolution struct {
	ConflictID string     `json:"conflictId"`
	Winner     Proposal   `json:"winner"`
	Rejected   []Proposal `json:"rejected"`
	// Rule names the rule that decided the final comparison: human, cel,
	// safety, confidence, freshness or tiebreak.
	Rule       string `json:"rule"`
	Reasoning  string `json:"reasoning"`
	DecisionID string `json:"decisionId"`
}

// ErrInvalidConflict is returned for a conflict with fewer than two
// proposals.
var ErrInvalidConflict = errors.New("orchestrator: a conflict needs at least two proposals")

// ResolveConflict picks one proposal and records the choice as an
// AgentDecision (action resolve_conflict) with the rule and the reasoning.
//
// Proposals are compared pairwise by these rules, first match wins:
//
//  1. human: a human decision beats any agent proposal. People review what
//     agents cannot decide; an agent must never undo that.
//  2. cel: the user's CEL rule (Options.ConflictRule), if set. It sees the
//     two proposals as a and b (maps with agentId, agentType, action,
//     confidence, human, safety, createdAt as Unix seconds) and the conflict
//     kind as kind, and returns true when a should win over b. It decides
//     only when it prefers exactly one side.
//  3. safety: an error-resolution safety action beats a non-safety action.
//     Protecting the target outranks improving the mapping: the mapping
//     update can be redone once the pipeline is healthy, lost data cannot.
//  4. confidence: the higher confidence wins (differences under 0.001 tie).
//  5. freshness: the more recent proposal wins; it saw newer input.
//  6. tiebreak: the lower agent id, then task id, so the outcome never
//     depends on arrival order.
func (c *Coordinator) ResolveConflict(ctx context.Context, conflict AgentConflict) (Resolution, error) {
	if len(conflict.Proposals) < 2 {
		return Resolution{}, ErrInvalidConflict
	}
	if conflict.ID == "" {
		conflict.ID = uuid.NewString()
	}
	props := append([]Proposal(nil), conflict.Proposals...)
	// A stable input order makes the tournament's result independent of
	// the order proposals arrived in.
	sort.SliceStable(props, func(i, j int) bool {
		if props[i].AgentID != props[j].AgentID {
			return props[i].AgentID < props[j].AgentID
		}
		return props[i].TaskID < props[j].TaskID
	})
	winner := props[0]
	rule, why := "", ""
	for _, p := range props[1:] {
		aWins, r, reason, err := c.compare(conflict.Kind, winner, p)
		if err != nil {
			return Resolution{}, err
		}
		if !aWins {
			winner = p
		}
		rule, why = r, reason
	}
	res := Resolution{ConflictID: conflict.ID, Winner: winner, Rule: rule}
	for _, p := range props {
		if !(p.AgentID == winner.AgentID && p.TaskID == winner.TaskID && p.Action == winner.Action) {
			res.Rejected = append(res.Rejected, p)
		}
	}
	var rej []string
	for _, p := range res.Rejected {
		rej = append(rej, fmt.Sprintf("%s/%s %q (confidence %.2f)", p.AgentType, p.AgentID, p.Action, p.Confidence))
	}
	res.Reasoning = fmt.Sprintf("%s conflict on %q: %s/%s %q wins by rule %s (%s) over %s",
		conflict.Kind, conflict.Target, winner.AgentType, winner.AgentID, winner.Action, rule, why, strings.Join(rej, ", "))
	d := c.RecordDecision(ctx, model.AgentDecision{
		AgentID: OrchestratorID, AgentType: model.AgentOrchestrator, TaskID: winner.TaskID,
		PipelineID: conflict.PipelineID, Action: "resolve_conflict", Confidence: winner.Confidence,
		Reasoning: res.Reasoning, Outcome: winner.Action,
	})
	res.DecisionID = d.ID
	if c.obs != nil {
		c.obs.Conflict(conflict.Kind, rule)
	}
	return res, nil
}

// compare reports whether a beats b, with the deciding rule.
func (c *Coordinator) compare(kind string, a, b Proposal) (bool, string, string, error) {
	if a.Human != b.Human {
		return a.Human, "human", "a human decision outranks agents", nil
	}
	if c.rule != nil {
		ab, err := c.rule.prefers(kind, a, b)
		if err != nil {
			return false, "", "", err
		}
		ba, err := c.rule.prefers(kind, b, a)
		if err != nil {
			return false, "", "", err
		}
		if ab != ba {
			return ab, "cel", "user rule " + c.rule.src, nil
		}
	}
	aSafe := a.Safety && a.AgentType == model.AgentResolution
	bSafe := b.Safety && b.AgentType == model.AgentResolution
	if aSafe != bSafe {
		return aSafe, "safety", "an error-resolution safety action outranks a change that only improves the pipeline", nil
	}
	if d := a.Confidence - b.Confidence; d > 0.001 || d < -0.001 {
		return d > 0, "confidence", fmt.Sprintf("confidence %.2f against %.2f", max(a.Confidence, b.Confidence), min(a.Confidence, b.Confidence)), nil
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt), "freshness", "equal confidence; the newer proposal saw newer input", nil
	}
	if a.AgentID != b.AgentID {
		return a.AgentID < b.AgentID, "tiebreak", "all else equal; lowest agent id", nil
	}
	return a.TaskID <= b.TaskID, "tiebreak", "all else equal; lowest task id", nil
}

// celRule is a compiled user override.
type celRule struct {
	src string
	prg cel.Program
}

func compileRule(src string) (*celRule, error) {
	env, err := cel.NewEnv(
		cel.Variable("a", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("b", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("kind", cel.StringType),
	)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: CEL environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("orchestrator: conflict rule: %w", iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("orchestrator: conflict rule must return a bool, not %s", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.CostLimit(10000))
	if err != nil {
		return nil, fmt.Errorf("orchestrator: conflict rule: %w", err)
	}
	return &celRule{src: src, prg: prg}, nil
}

func proposalVars(p Proposal) map[string]any {
	return map[string]any{
		"agentId": p.AgentID, "agentType": string(p.AgentType), "taskId": p.TaskID, "action": p.Action,
		"confidence": p.Confidence, "human": p.Human, "safety": p.Safety,
		"createdAt": float64(p.CreatedAt.UnixNano()) / 1e9,
	}
}

func (r *celRule) prefers(kind string, a, b Proposal) (bool, error) {
	out, _, err := r.prg.Eval(map[string]any{"a": proposalVars(a), "b": proposalVars(b), "kind": kind})
	if err != nil {
		return false, fmt.Errorf("orchestrator: conflict rule: %w", err)
	}
	v, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("orchestrator: conflict rule returned %T, want bool", out.Value())
	}
	return v, nil
}
