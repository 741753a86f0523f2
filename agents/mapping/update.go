package mapping

import (
	"context"
	"fmt"
	"slices"

	"github.com/agentetl/agentetl/internal/model"
)

// Schema change types. They are the discovery agent's changeType values,
// so a change it reports can be passed here as decoded JSON.
const (
	ChangeColumnAdded   = "column_added"
	ChangeColumnRemoved = "column_removed"
	ChangeColumnRenamed = "column_renamed"
	ChangeTypeChanged   = "type_changed"
	ChangeNullability   = "nullability_changed"
	ChangeDescription   = "description_changed"
)

// Sides a change applies to.
const (
	SideSource = "source"
	SideTarget = "target"
)

// SchemaChange is one column-level change. Its JSON names follow the
// discovery agent's SchemaChange (changeType, column, previousColumn,
// before, after); Side is ours and says which schema of the pair changed
// (source when empty).
type SchemaChange struct {
	ChangeType string `json:"changeType"`
	Side       string `json:"side,omitempty"`
	// Column is the affected column; for a rename, its new name.
	Column string `json:"column"`
	// PreviousColumn is the old name of a renamed column.
	PreviousColumn string       `json:"previousColumn,omitempty"`
	Before         *model.Field `json:"before,omitempty"`
	After          *model.Field `json:"after,omitempty"`
}

// UpdateMappings adapts a mapping result to one schema change and returns a
// new result; prev is not modified. Only the mappings the change touches
// differ: a rename keeps its target (and its confidence) and rewrites the
// transformation, a type change regenerates the transformation and
// re-scores the pair, a removed source column leaves its targets to be
// re-matched among the free columns, an added column is offered to the
// targets that have no accepted mapping, a removed target drops its entry.
func (m *Matcher) UpdateMappings(ctx context.Context, prev *Result, ch SchemaChange) (*Result, error) {
	if prev == nil {
		return nil, fmt.Errorf("update mappings: no previous result")
	}
	side := ch.Side
	if side == "" {
		side = SideSource
	}
	if side != SideSource && side != SideTarget {
		return nil, fmt.Errorf("update mappings: side must be %q or %q, not %q", SideSource, SideTarget, ch.Side)
	}
	src, tgt := cloneSchema(prev.Source), cloneSchema(prev.Target)
	sch := &src
	if side == SideTarget {
		sch = &tgt
	}
	if err := applyChange(sch, ch); err != nil {
		return nil, fmt.Errorf("update mappings: %w", err)
	}
	res := &Result{Source: src, Target: tgt, Mappings: slices.Clone(prev.Mappings)}
	for k := range res.Mappings {
		res.Mappings[k].SourceField = slices.Clone(res.Mappings[k].SourceField)
	}
	res.ensureFeatures()
	switch {
	case side == SideSource && ch.ChangeType == ChangeColumnRenamed:
		for k := range res.Mappings {
			fm := &res.Mappings[k]
			if i := slices.Index(fm.SourceField, ch.PreviousColumn); i >= 0 {
				fm.SourceField[i] = ch.Column
				if err := res.regenerate(fm, false); err != nil {
					return nil, err
				}
				fm.Reasoning = trimDot(fm.Reasoning) + fmt.Sprintf("; the source column was renamed from %q.", ch.PreviousColumn)
			}
			if bc := fm.BestCandidate; bc != nil && bc.SourceField == ch.PreviousColumn {
				bc.SourceField = ch.Column
			}
		}
	case side == SideTarget && ch.ChangeType == ChangeColumnRenamed:
		for k := range res.Mappings {
			fm := &res.Mappings[k]
			if fm.TargetField == ch.PreviousColumn {
				fm.TargetField = ch.Column
				if err := res.regenerate(fm, false); err != nil {
					return nil, err
				}
			}
		}
	case ch.ChangeType == ChangeTypeChanged:
		for k := range res.Mappings {
			fm := &res.Mappings[k]
			hit := side == SideSource && slices.Contains(fm.SourceField, ch.Column) ||
				side == SideTarget && fm.TargetField == ch.Column
			if hit && fm.Proposed() {
				if err := res.regenerate(fm, true); err != nil {
					return nil, err
				}
				m.restatus(fm)
			}
		}
	case side == SideTarget && ch.ChangeType == ChangeColumnRemoved:
		res.Mappings = slices.DeleteFunc(res.Mappings, func(fm FieldMapping) bool { return fm.TargetField == ch.Column })
	case side == SideSource && ch.ChangeType == ChangeColumnRemoved,
		ch.ChangeType == ChangeColumnAdded:
		fresh, err := m.Map(ctx, src, tgt)
		if err != nil {
			return nil, err
		}
		m.merge(res, fresh, side, ch)
	}
	return res, nil
}

// merge takes from a fresh full match only the entries the change makes
// eligible, and never a source another (untouched) mapping already uses.
func (m *Matcher) merge(res, fresh *Result, side string, ch SchemaChange) {
	freshBy := map[string]FieldMapping{}
	for _, fm := range fresh.Mappings {
		freshBy[fm.TargetField] = fm
	}
	used := map[string]bool{}
	affected := func(fm FieldMapping) bool {
		return side == SideSource && ch.ChangeType == ChangeColumnRemoved && slices.Contains(fm.SourceField, ch.Column)
	}
	for _, fm := range res.Mappings {
		if fm.Proposed() && !affected(fm) {
			for _, s := range fm.SourceField {
				used[s] = true
			}
		}
	}
	if side == SideTarget {
		if fm, ok := freshBy[ch.Column]; ok {
			res.Mappings = append(res.Mappings, fm)
			// Keep target order.
			order := fieldsByName(res.Target.Fields)
			slices.SortStableFunc(res.Mappings, func(a, b FieldMapping) int { return order[a.TargetField] - order[b.TargetField] })
		}
		return
	}
	for k := range res.Mappings {
		cur := &res.Mappings[k]
		nf, ok := freshBy[cur.TargetField]
		if !ok {
			continue
		}
		switch {
		case affected(*cur):
			if nf.Proposed() && !anyUsed(nf.SourceField, used) {
				*cur = nf
			} else {
				*cur = FieldMapping{TargetField: cur.TargetField, Status: StatusUnmapped,
					Reasoning:     fmt.Sprintf("The source column %q was removed and no free column replaces it.", ch.Column),
					BestCandidate: nf.BestCandidate}
			}
			for _, s := range cur.SourceField {
				used[s] = true
			}
		case ch.ChangeType == ChangeColumnAdded && cur.Status != StatusAccepted:
			if nf.Proposed() && slices.Contains(nf.SourceField, ch.Column) && nf.Confidence > cur.Confidence {
				*cur = nf
			}
		}
	}
}

func anyUsed(srcs []string, used map[string]bool) bool {
	for _, s := range srcs {
		if used[s] {
			return true
		}
	}
	return false
}

// regenerate rebuilds a mapping's transformation (and, when rescore is
// set, its signals and confidence) from the current schemas.
func (r *Result) regenerate(fm *FieldMapping, rescore bool) error {
	if !fm.Proposed() {
		return nil
	}
	p, err := r.planOf(*fm)
	if err != nil {
		return err
	}
	if fm.MappingType != TypeDerived {
		if p.op == opCopy && p.truncate == 0 {
			fm.MappingType, fm.Transformation = TypeDirect, ""
		} else {
			fm.MappingType, fm.Transformation = TypeTransformed, p.bloblang()
		}
	} else {
		fm.Transformation = p.bloblang()
	}
	if rescore && fm.MappingType != TypeDerived && len(fm.SourceField) == 1 {
		sc := newScorer(r.src, r.tgt, nil)
		s := &r.src.fields[r.srcIndex[fm.SourceField[0]]]
		t := &r.tgt.fields[r.tgtIndex[fm.TargetField]]
		ps := sc.score(s, t)
		// The type signal changed; other signals did not. Keep the earlier
		// confidence unless the new types fit worse.
		fm.Confidence = round3(min(fm.Confidence, ps.total+0.1))
		fm.Signals = signalsOf(ps)
		fm.Reasoning = explain(s.name, t.name, ps, p.describe(), false)
	}
	return nil
}

func (m *Matcher) restatus(fm *FieldMapping) {
	switch {
	case fm.Confidence >= m.opts.AcceptThreshold:
		fm.Status = StatusAccepted
	case fm.Confidence >= m.opts.ReviewThreshold:
		fm.Status = StatusReview
	default:
		fm.Status = StatusUnmapped
		fm.BestCandidate = &Candidate{SourceField: fm.SourceField[0], Confidence: fm.Confidence, Signals: fm.Signals, Reasoning: fm.Reasoning}
		fm.SourceField, fm.Transformation, fm.MappingType, fm.Confidence = nil, "", "", 0
		fm.Reasoning = "After the type change the pair no longer reaches the review threshold."
	}
}

func applyChange(s *model.Schema, ch SchemaChange) error {
	idx := slices.IndexFunc(s.Fields, func(f model.Field) bool { return f.Name == ch.Column })
	switch ch.ChangeType {
	case ChangeColumnRenamed:
		if ch.PreviousColumn == "" || ch.Column == "" {
			return fmt.Errorf("a rename needs column and previousColumn")
		}
		old := slices.IndexFunc(s.Fields, func(f model.Field) bool { return f.Name == ch.PreviousColumn })
		if old < 0 {
			return fmt.Errorf("renamed column %q is not in the schema", ch.PreviousColumn)
		}
		if idx >= 0 {
			return fmt.Errorf("cannot rename %q to %q: the name is taken", ch.PreviousColumn, ch.Column)
		}
		s.Fields[old].Name = ch.Column
		if ch.After != nil && ch.After.DataType != "" {
			s.Fields[old].DataType = ch.After.DataType
		}
	case ChangeColumnAdded:
		if idx >= 0 {
			return fmt.Errorf("added column %q already exists", ch.Column)
		}
		f := model.Field{Name: ch.Column, DataType: "string", Nullable: true}
		if ch.After != nil {
			f = *ch.After
			f.Name = ch.Column
		}
		if f.Name == "" {
			return fmt.Errorf("an added column needs a name")
		}
		s.Fields = append(s.Fields, f)
	case ChangeColumnRemoved:
		if idx < 0 {
			return fmt.Errorf("removed column %q is not in the schema", ch.Column)
		}
		s.Fields = slices.Delete(s.Fields, idx, idx+1)
	case ChangeTypeChanged:
		if idx < 0 {
			return fmt.Errorf("column %q is not in the schema", ch.Column)
		}
		if ch.After == nil || ch.After.DataType == "" {
			return fmt.Errorf("a type change needs after.dataType")
		}
		s.Fields[idx].DataType = ch.After.DataType
		if ch.After.Samples != nil {
			s.Fields[idx].Samples = ch.After.Samples
		}
	case ChangeNullability, ChangeDescription:
		// Metadata only: the field is updated, no mapping changes.
		if idx < 0 {
			return fmt.Errorf("column %q is not in the schema", ch.Column)
		}
		if ch.After != nil {
			s.Fields[idx].Nullable = ch.After.Nullable
			s.Fields[idx].Description = ch.After.Description
		}
	default:
		return fmt.Errorf("unsupported change type %q", ch.ChangeType)
	}
	return ValidateSchema(*s)
}

func cloneSchema(s model.Schema) model.Schema {
	s.Fields = slices.Clone(s.Fields)
	return s
}

func trimDot(s string) string {
	if n := len(s); n > 0 && s[n-1] == '.' {
		return s[:n-1]
	}
	return s
}
