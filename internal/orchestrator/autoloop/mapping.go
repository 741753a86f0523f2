package autoloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/agents/mapping"
	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
)

func docKey(pipelineID string) string { return "automap:" + pipelineID }

// mappingTask is the payload of a mapping task the loop reads.
type mappingTask struct {
	PipelineID string              `json:"pipelineId"`
	Reason     string              `json:"reason"`
	Changes    []orch.SchemaChange `json:"changes"`
}

// handledChange reports whether a change can be followed without a human:
// renames are adapted, additions and cosmetic changes leave the mapping
// valid, and the matcher's verdict on the result decides the rest.
func handledChange(ch orch.SchemaChange) bool {
	switch ch.ChangeType {
	case discovery.ChangeTableAdded, discovery.ChangeColumnRenamed, discovery.ChangeColumnAdded,
		discovery.ChangeDescription, discovery.ChangeTableDescription, discovery.ChangeNullability:
		return true
	case discovery.ChangeTypeChanged:
		return ch.Severity != discovery.SeverityBreaking
	}
	return false
}

// HandleMapping is the mapping worker: it derives the pipeline's mapping
// from the live source and destination schemas (adapting the stored one
// for renames), then applies it or opens a review.
func (l *Loop) HandleMapping(ctx context.Context, t model.Task) (orch.TaskResult, error) {
	var mt mappingTask
	if err := json.Unmarshal(t.Payload, &mt); err != nil || mt.PipelineID == "" {
		return orch.TaskResult{Outcome: "skipped", Action: "mapping_skipped",
			Reasoning: "the task names no pipeline; nothing to map"}, nil
	}
	pv, err := l.o.Store.GetPipelineConfig(ctx, mt.PipelineID, 0)
	if err != nil {
		if errors.Is(err, metastore.ErrNotFound) {
			return orch.TaskResult{Outcome: "skipped", Action: "mapping_skipped",
				Reasoning: fmt.Sprintf("pipeline %s no longer exists", mt.PipelineID)}, nil
		}
		return orch.TaskResult{}, fmt.Errorf("autoloop: load pipeline %s: %w", mt.PipelineID, err)
	}
	pc := pv.Config
	if !mappable(pc) {
		return orch.TaskResult{Outcome: "skipped", Action: "mapping_skipped",
			Reasoning: fmt.Sprintf("pipeline %s does not read a table or file (postgres, sqlite, csv) into a table (postgres, sqlite); the automatic mapping covers only those", pc.ID)}, nil
	}
	own, foreign := ownMapIndex(pc)
	var unhandled []string
	for _, ch := range mt.Changes {
		if !handledChange(ch) {
			unhandled = append(unhandled, fmt.Sprintf("%s %s (%s)", ch.ChangeType, firstNonEmpty(ch.Column, ch.Table), ch.Severity))
		}
	}
	if foreign {
		if len(unhandled) == 0 && onlyTableAdded(mt.Changes) {
			return orch.TaskResult{Outcome: "unchanged", Action: "mapping_kept", Confidence: 1,
				Reasoning: fmt.Sprintf("pipeline %s has a mapping of its own; a newly cataloged source table needs no change", pc.ID)}, nil
		}
		return l.openReview(ctx, t, pv, nil, []string{"the pipeline has a user-defined map transformation the agent does not rewrite; its source changed: " + describeChanges(mt.Changes)})
	}

	srcEP, dstEP := sourceEndpoint(pc), destinationEndpoint(pc)
	srcDSN, err := l.expand(srcEP.dsn)
	if err != nil {
		return orch.TaskResult{}, err
	}
	dstDSN, err := l.expand(dstEP.dsn)
	if err != nil {
		return orch.TaskResult{}, err
	}
	src, err := describe(ctx, srcDSN, srcEP.table)
	if err != nil {
		return orch.TaskResult{}, err
	}
	tgt, err := describe(ctx, dstDSN, dstEP.table)
	if err != nil {
		return orch.TaskResult{}, err
	}
	hist, err := l.history(ctx)
	if err != nil {
		return orch.TaskResult{}, err
	}
	m := mapping.New(mapping.Options{History: hist})

	res, how, err := l.derive(ctx, m, pc.ID, own >= 0, mt.Changes, src, tgt)
	if err != nil {
		return orch.TaskResult{}, err
	}
	for _, fm := range res.Mappings {
		if fm.Proposed() {
			l.o.Coordinator.RecordDecision(ctx, mapping.Decision(fm, mapping.ActionProposed, MappingAgentID, pc.ID))
		}
	}
	reasons := append([]string(nil), unhandled...)
	if len(unhandled) > 0 {
		reasons[0] = "changes that need a human: " + strings.Join(unhandled, ", ")
		reasons = reasons[:1]
	}
	reasons = append(reasons, verdict(res)...)
	if len(reasons) > 0 {
		return l.openReview(ctx, t, pv, res, reasons)
	}
	p, err := l.apply(ctx, pv, res, fmt.Sprintf("mapping %s by the mapping agent (%s)", how, mt.Reason))
	if err != nil {
		return orch.TaskResult{}, err
	}
	return orch.TaskResult{Outcome: fmt.Sprintf("applied as version %d", p.Version), Action: "mapping_applied",
		Confidence: minConfidence(res),
		Reasoning: fmt.Sprintf("%s: every proposal for %s -> %s is accepted (%s); written into pipeline %s as version %d, which the engine reloads",
			how, srcEP.table, dstEP.table, summary(res), pc.ID, p.Version)}, nil
}

// derive adapts the stored mapping to renames, or maps from scratch.
func (l *Loop) derive(ctx context.Context, m *mapping.Matcher, pipelineID string, owned bool, changes []orch.SchemaChange, src, tgt model.Schema) (*mapping.Result, string, error) {
	var renames []orch.SchemaChange
	others := false
	for _, ch := range changes {
		if ch.ChangeType == discovery.ChangeColumnRenamed {
			renames = append(renames, ch)
		} else if ch.ChangeType != discovery.ChangeTableAdded {
			others = true
		}
	}
	if owned && len(renames) > 0 && !others {
		if prev, err := l.storedDoc(ctx, pipelineID); err == nil && prev != nil {
			res := prev
			for _, ch := range renames {
				res, err = m.UpdateMappings(ctx, res, mapping.SchemaChange{ChangeType: mapping.ChangeColumnRenamed,
					Side: mapping.SideSource, Column: ch.Column, PreviousColumn: ch.PreviousColumn})
				if err != nil {
					return nil, "", fmt.Errorf("autoloop: adapt mapping of %s: %w", pipelineID, err)
				}
			}
			if sameFields(res.Source, src) {
				var parts []string
				for _, ch := range renames {
					parts = append(parts, fmt.Sprintf("%q -> %q", ch.PreviousColumn, ch.Column))
				}
				return res, "adapted to the rename of " + strings.Join(parts, ", "), nil
			}
		}
	}
	res, err := m.Map(ctx, src, tgt)
	if err != nil {
		return nil, "", fmt.Errorf("autoloop: map %s: %w", pipelineID, err)
	}
	return res, "derived from the source and destination schemas", nil
}

func onlyTableAdded(chs []orch.SchemaChange) bool {
	for _, ch := range chs {
		if ch.ChangeType != discovery.ChangeTableAdded {
			return false
		}
	}
	return true
}

func describeChanges(chs []orch.SchemaChange) string {
	if len(chs) == 0 {
		return "no change listed"
	}
	var parts []string
	for _, ch := range chs {
		parts = append(parts, ch.ChangeType+" "+firstNonEmpty(ch.Column, ch.Table))
	}
	return strings.Join(parts, ", ")
}

func sameFields(a, b model.Schema) bool {
	if len(a.Fields) != len(b.Fields) {
		return false
	}
	names := map[string]bool{}
	for _, f := range a.Fields {
		names[f.Name] = true
	}
	for _, f := range b.Fields {
		if !names[f.Name] {
			return false
		}
	}
	return true
}

// verdict lists why res cannot be applied without a human: proposals below
// the accept threshold, NOT NULL destination columns left without a
// source, or nothing mapped at all.
func verdict(res *mapping.Result) []string {
	var out []string
	proposed := 0
	notNull := map[string]bool{}
	for _, f := range res.Target.Fields {
		notNull[f.Name] = !f.Nullable
	}
	for _, fm := range res.Mappings {
		switch {
		case fm.Status == mapping.StatusAccepted:
			proposed++
		case fm.Status == mapping.StatusReview:
			proposed++
			out = append(out, fmt.Sprintf("%s <- %s has confidence %.2f, below the accept threshold", fm.TargetField, strings.Join(fm.SourceField, "+"), fm.Confidence))
		case notNull[fm.TargetField]:
			out = append(out, fmt.Sprintf("NOT NULL column %s has no source", fm.TargetField))
		}
	}
	if proposed == 0 {
		out = append(out, "no source field maps onto the destination")
	}
	return out
}

func minConfidence(res *mapping.Result) float64 {
	c := 1.0
	for _, fm := range res.Mappings {
		if fm.Proposed() {
			c = min(c, fm.Confidence)
		}
	}
	return c
}

func summary(res *mapping.Result) string {
	var parts []string
	for _, fm := range res.Mappings {
		if fm.Proposed() {
			parts = append(parts, fmt.Sprintf("%s <- %s %.2f", fm.TargetField, strings.Join(fm.SourceField, "+"), fm.Confidence))
		}
	}
	return strings.Join(parts, ", ")
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// describe reads one table's columns (metadata only, no catalog).
func describe(ctx context.Context, dsn, table string) (model.Schema, error) {
	a, err := discovery.New(discovery.Config{DSN: dsn, Include: []string{table}, MetadataOnly: true, Concurrency: 1}, nil)
	if err != nil {
		return model.Schema{}, fmt.Errorf("autoloop: describe %s: %w", table, err)
	}
	defer a.Close()
	res, err := a.Discover(ctx)
	if err != nil {
		return model.Schema{}, fmt.Errorf("autoloop: describe %s: %w", table, err)
	}
	var hits []*discovery.SourceMetadata
	for _, t := range res.Tables {
		if strings.EqualFold(t.Table, table) || strings.EqualFold(t.Name, table) {
			hits = append(hits, t)
		}
	}
	if len(hits) != 1 {
		return model.Schema{}, fmt.Errorf("autoloop: describe %s: %d matching tables", table, len(hits))
	}
	s := hits[0].Schema
	s.ID = hits[0].Table
	return s, nil
}

func (l *Loop) history(ctx context.Context) (mapping.History, error) {
	ds, err := l.o.Store.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: model.AgentMapping, Limit: 10000})
	if err != nil {
		return nil, fmt.Errorf("autoloop: read mapping history: %w", err)
	}
	return mapping.HistoryFromDecisions(ds), nil
}

func (l *Loop) storedDoc(ctx context.Context, pipelineID string) (*mapping.Result, error) {
	s, err := l.o.Store.GetCheckpoint(ctx, docKey(pipelineID))
	if err != nil {
		return nil, fmt.Errorf("autoloop: stored mapping of %s: %w", pipelineID, err)
	}
	res, err := mapping.ParseDocument([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("autoloop: stored mapping of %s: %w", pipelineID, err)
	}
	return res, nil
}

// fieldMappings renders the proposals as the compiler's JSON field list.
func fieldMappings(res *mapping.Result) (string, error) {
	var out []model.FieldMapping
	for _, fm := range res.Mappings {
		if !fm.Proposed() {
			continue
		}
		out = append(out, model.FieldMapping{SourceField: strings.Join(fm.SourceField, ","), TargetField: fm.TargetField,
			Transformation: fm.Transformation, Confidence: fm.Confidence, MappingType: fm.MappingType})
	}
	if len(out) == 0 {
		return "", errors.New("autoloop: the mapping has no proposals")
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("autoloop: encode field mappings: %w", err)
	}
	return string(b), nil
}

// apply writes res into the pipeline as the next version (expected
// version: the one the mapping was derived from) and stores the document.
func (l *Loop) apply(ctx context.Context, pv metastore.PipelineConfigVersion, res *mapping.Result, comment string) (orchestrator.Pipeline, error) {
	logic, err := fieldMappings(res)
	if err != nil {
		return orchestrator.Pipeline{}, err
	}
	pc := pv.Config
	pc.Transformations = append([]model.Transformation(nil), pc.Transformations...)
	tr := model.Transformation{ID: AgentMappingID, Type: "map", Logic: logic}
	if i, _ := ownMapIndex(pc); i >= 0 {
		pc.Transformations[i] = tr
	} else {
		pc.Transformations = append([]model.Transformation{tr}, pc.Transformations...)
	}
	p, err := l.o.Manager.Update(ctx, pv.PipelineID, pc, pv.Version, comment)
	if err != nil {
		return orchestrator.Pipeline{}, fmt.Errorf("autoloop: apply mapping to %s: %w", pv.PipelineID, err)
	}
	doc, err := res.Document()
	if err != nil {
		return p, fmt.Errorf("autoloop: mapping document of %s: %w", pv.PipelineID, err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return p, fmt.Errorf("autoloop: encode mapping document of %s: %w", pv.PipelineID, err)
	}
	if err := l.o.Store.SaveCheckpoint(ctx, docKey(pv.PipelineID), string(b)); err != nil {
		return p, fmt.Errorf("autoloop: store mapping document of %s: %w", pv.PipelineID, err)
	}
	return p, nil
}
