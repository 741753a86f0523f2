package autoloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentetl/agentetl/agents/mapping"
	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
)

// Review is one item of the review queue: a mapping the agent would not
// apply on its own, and the pipeline it paused.
type Review struct {
	ID              string            `json:"id"`
	PipelineID      string            `json:"pipelineId"`
	PipelineVersion int               `json:"pipelineVersion"`
	TaskID          string            `json:"taskId,omitempty"`
	Status          string            `json:"status"`
	Reasons         []string          `json:"reasons"`
	Document        *mapping.Document `json:"document,omitempty"`
	Comment         string            `json:"comment,omitempty"`
	AppliedVersion  int               `json:"appliedVersion,omitempty"`
	CreatedAt       time.Time         `json:"createdAt"`
	UpdatedAt       time.Time         `json:"updatedAt"`
}

func (r Review) task() (model.Task, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return model.Task{}, fmt.Errorf("autoloop: encode review %s: %w", r.ID, err)
	}
	return model.Task{ID: r.ID, Type: TaskTypeReview, Status: r.Status, Priority: orch.PriorityMapping, Payload: b,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}, nil
}

func reviewOf(t model.Task) (Review, error) {
	var r Review
	if err := json.Unmarshal(t.Payload, &r); err != nil {
		return Review{}, fmt.Errorf("autoloop: decode review %s: %w", t.ID, err)
	}
	r.ID, r.Status = t.ID, t.Status
	return r, nil
}

// openReview stores a review item, pauses the pipeline and reports the
// task's outcome.
func (l *Loop) openReview(ctx context.Context, t model.Task, pv metastore.PipelineConfigVersion, res *mapping.Result, reasons []string) (orch.TaskResult, error) {
	now := time.Now().UTC()
	rv := Review{ID: "review-" + uuid.NewString(), PipelineID: pv.PipelineID, PipelineVersion: pv.Version, TaskID: t.ID,
		Status: ReviewPending, Reasons: reasons, CreatedAt: now, UpdatedAt: now}
	if res != nil {
		doc, err := res.Document()
		if err != nil {
			return orch.TaskResult{}, fmt.Errorf("autoloop: mapping document of %s: %w", pv.PipelineID, err)
		}
		rv.Document = &doc
	}
	rt, err := rv.task()
	if err != nil {
		return orch.TaskResult{}, err
	}
	if err := l.o.Store.SaveTask(ctx, rt); err != nil {
		return orch.TaskResult{}, fmt.Errorf("autoloop: save review for %s: %w", pv.PipelineID, err)
	}
	why := strings.Join(reasons, "; ")
	if _, err := l.o.Manager.SetState(ctx, pv.PipelineID, orchestrator.StatePaused,
		fmt.Sprintf("paused until review %s is answered: %s", rv.ID, why)); err != nil {
		return orch.TaskResult{}, fmt.Errorf("autoloop: pause %s for review: %w", pv.PipelineID, err)
	}
	return orch.TaskResult{Outcome: ReviewPending, Action: "mapping_review_requested", Confidence: confidenceOf(res),
		Reasoning: fmt.Sprintf("review %s opened and pipeline %s paused (other pipelines keep running): %s", rv.ID, pv.PipelineID, why)}, nil
}

func confidenceOf(res *mapping.Result) float64 {
	if res == nil {
		return 0
	}
	return minConfidence(res)
}

// Reviews lists review items, newest first; status "" lists all.
func (l *Loop) Reviews(ctx context.Context, status string) ([]Review, error) {
	ts, err := l.o.Store.ListTasks(ctx, metastore.TaskFilter{Type: TaskTypeReview, Status: status})
	if err != nil {
		return nil, fmt.Errorf("autoloop: list reviews: %w", err)
	}
	out := make([]Review, 0, len(ts))
	for _, t := range ts {
		r, err := reviewOf(t)
		if err != nil {
			l.log.Warn("skipping undecodable review", "review", t.ID, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (l *Loop) pending(ctx context.Context, id string) (Review, error) {
	t, err := l.o.Store.GetTask(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) || (err == nil && t.Type != TaskTypeReview) {
		return Review{}, fmt.Errorf("review %q: %w", id, ErrReviewNotFound)
	}
	if err != nil {
		return Review{}, fmt.Errorf("autoloop: load review %s: %w", id, err)
	}
	r, err := reviewOf(t)
	if err != nil {
		return Review{}, err
	}
	if r.Status != ReviewPending {
		return r, fmt.Errorf("review %q is %s: %w", id, r.Status, ErrReviewClosed)
	}
	return r, nil
}

func (l *Loop) close(ctx context.Context, r Review, status, comment string) (Review, error) {
	r.Status, r.Comment, r.UpdatedAt = status, comment, time.Now().UTC()
	t, err := r.task()
	if err != nil {
		return r, err
	}
	if err := l.o.Store.SaveTask(ctx, t); err != nil {
		return r, fmt.Errorf("autoloop: save review %s: %w", r.ID, err)
	}
	return r, nil
}

// Approve applies the reviewed mapping (every proposal it holds becomes
// accepted), records each pair as accepted in the mapping history and
// resumes the pipeline. A review whose pipeline changed since is stale.
func (l *Loop) Approve(ctx context.Context, id, reviewer, comment string) (Review, error) {
	return l.Edit(ctx, id, reviewer, comment, nil)
}

// FieldEdit is a reviewer's correction of one target field: the source
// field that feeds it, or no source at all (Source nil).
type FieldEdit struct {
	TargetField string  `json:"targetField"`
	SourceField *string `json:"sourceField"`
}

// ErrInvalidEdit is returned when an edit names a field the review's schemas
// do not have.
var ErrInvalidEdit = errors.New("invalid review edit")

// Edit applies a reviewer's corrections to the proposed mapping, then
// approves it like Approve: the edited pairs are recorded as accepted with
// the reviewer as their author, so they feed the mapping history. Field
// names are checked against the review's schemas; the transformation of an
// edited pair is regenerated from the field types, never taken from input.
func (l *Loop) Edit(ctx context.Context, id, reviewer, comment string, edits []FieldEdit) (Review, error) {
	l.reviewMu.Lock()
	defer l.reviewMu.Unlock()
	r, err := l.pending(ctx, id)
	if err != nil {
		return r, err
	}
	reviewer = firstNonEmpty(reviewer, "reviewer")
	if len(edits) > 0 {
		if r.Document == nil {
			return r, fmt.Errorf("review %s has no mapping to edit: %w", r.ID, ErrInvalidEdit)
		}
		if err := applyEdits(r.Document, edits); err != nil {
			return r, err
		}
	}
	if r.Document != nil {
		pv, err := l.o.Store.GetPipelineConfig(ctx, r.PipelineID, 0)
		if err != nil {
			return r, fmt.Errorf("autoloop: load pipeline %s: %w", r.PipelineID, err)
		}
		if pv.Version != r.PipelineVersion {
			return r, fmt.Errorf("review %s was opened on version %d, pipeline %s is at version %d; reject it and let the agent map again: %w",
				r.ID, r.PipelineVersion, r.PipelineID, pv.Version, ErrReviewStale)
		}
		res, err := mapping.ResultFromDocument(*r.Document)
		if err != nil {
			return r, fmt.Errorf("autoloop: review %s holds an invalid mapping: %w", r.ID, err)
		}
		for i := range res.Mappings {
			if res.Mappings[i].Status == mapping.StatusReview {
				res.Mappings[i].Status = mapping.StatusAccepted
			}
		}
		p, err := l.apply(ctx, pv, res, fmt.Sprintf("mapping approved in review %s by %s", r.ID, reviewer))
		if err != nil {
			return r, err
		}
		r.AppliedVersion = p.Version
		for _, fm := range res.Mappings {
			if fm.Proposed() {
				d := mapping.Decision(fm, mapping.ActionAccepted, reviewer, r.PipelineID)
				d.TaskID = r.ID
				l.o.Coordinator.RecordDecision(ctx, d)
			}
		}
	}
	if _, err := l.o.Manager.SetState(ctx, r.PipelineID, orchestrator.StateActive, fmt.Sprintf("review %s approved by %s", r.ID, reviewer)); err != nil {
		return r, fmt.Errorf("autoloop: resume %s: %w", r.PipelineID, err)
	}
	r, err = l.close(ctx, r, ReviewApproved, comment)
	if err != nil {
		return r, err
	}
	l.o.Coordinator.RecordDecision(ctx, model.AgentDecision{AgentID: reviewer, AgentType: model.AgentMapping, TaskID: r.ID,
		PipelineID: r.PipelineID, Action: "review_approved", Confidence: 1, Outcome: ReviewApproved,
		Reasoning: fmt.Sprintf("%s approved review %s (%s)%s; the pipeline is resumed", reviewer, r.ID, strings.Join(r.Reasons, "; "), commentNote(comment))})
	return r, nil
}

// Reject closes the review, records the proposals below the accept
// threshold as rejected in the mapping history (the next match scores
// those pairs lower) and leaves the pipeline paused.
func (l *Loop) Reject(ctx context.Context, id, reviewer, comment string) (Review, error) {
	l.reviewMu.Lock()
	defer l.reviewMu.Unlock()
	r, err := l.pending(ctx, id)
	if err != nil {
		return r, err
	}
	reviewer = firstNonEmpty(reviewer, "reviewer")
	if r.Document != nil {
		for _, fm := range r.Document.Mappings {
			if fm.Status == mapping.StatusReview {
				d := mapping.Decision(fm, mapping.ActionRejected, reviewer, r.PipelineID)
				d.TaskID = r.ID
				l.o.Coordinator.RecordDecision(ctx, d)
			}
		}
	}
	r, err = l.close(ctx, r, ReviewRejected, comment)
	if err != nil {
		return r, err
	}
	l.o.Coordinator.RecordDecision(ctx, model.AgentDecision{AgentID: reviewer, AgentType: model.AgentMapping, TaskID: r.ID,
		PipelineID: r.PipelineID, Action: "review_rejected", Confidence: 1, Outcome: ReviewRejected,
		Reasoning: fmt.Sprintf("%s rejected review %s%s; the pipeline stays paused until it is fixed and resumed", reviewer, r.ID, commentNote(comment))})
	return r, nil
}

func applyEdits(doc *mapping.Document, edits []FieldEdit) error {
	sources := map[string]bool{}
	for _, f := range doc.Source.Fields {
		sources[f.Name] = true
	}
	for _, e := range edits {
		idx := -1
		for i, m := range doc.Mappings {
			if m.TargetField == e.TargetField {
				idx = i
				break
			}
		}
		if idx < 0 {
			return fmt.Errorf("target field %q is not in the review's target schema: %w", e.TargetField, ErrInvalidEdit)
		}
		m := &doc.Mappings[idx]
		if e.SourceField == nil {
			m.SourceField, m.Status, m.Confidence = nil, mapping.StatusUnmapped, 0
			m.Transformation, m.MappingType = "", ""
			m.Reasoning = "A reviewer left this target field without a source."
			continue
		}
		if !sources[*e.SourceField] {
			return fmt.Errorf("source field %q is not in the review's source schema: %w", *e.SourceField, ErrInvalidEdit)
		}
		m.SourceField = mapping.Sources{*e.SourceField}
		m.Status, m.Confidence, m.MappingType = mapping.StatusAccepted, 1, mapping.TypeDirect
		m.Transformation, m.BestCandidate, m.Signals = "", nil, nil
		m.Reasoning = fmt.Sprintf("A reviewer chose %q to feed %q.", *e.SourceField, e.TargetField)
	}
	return nil
}

func commentNote(c string) string {
	if c == "" {
		return ""
	}
	return fmt.Sprintf(" with comment %q", c)
}
