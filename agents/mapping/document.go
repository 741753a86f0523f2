package mapping

import (
	"encoding/json"
	"fmt"

	"github.com/agentetl/agentetl/internal/model"
)

// Document is a complete, portable mapping: both schemas, the field
// mappings and the Bloblang program generated from them. It is what the
// schema_mapping processor applies, what its propose mode emits and what a
// reviewer edits; its "mappings" key also makes it readable by the
// benchmark scorer.
type Document struct {
	Source   model.Schema   `json:"source"`
	Target   model.Schema   `json:"target"`
	Mappings []FieldMapping `json:"mappings"`
	// Program is informational: ResultFromDocument regenerates it from the
	// mappings so that a document can never run code its mappings do not
	// describe.
	Program string `json:"program,omitempty"`
}

// Document returns the result as a document with its program.
func (r *Result) Document() (Document, error) {
	prog, err := Program(r)
	if err != nil {
		return Document{}, err
	}
	return Document{Source: r.Source, Target: r.Target, Mappings: r.Mappings, Program: prog}, nil
}

// ParseDocument decodes and validates a mapping document: the schemas must
// be valid and every mapping must name fields that exist.
func ParseDocument(data []byte) (*Result, error) {
	var d Document
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, positionError(data, err)
	}
	return ResultFromDocument(d)
}

// ResultFromDocument validates a document and returns it as a Result.
func ResultFromDocument(d Document) (*Result, error) {
	if err := ValidateSchema(d.Source); err != nil {
		return nil, fmt.Errorf("source schema: %w", err)
	}
	if err := ValidateSchema(d.Target); err != nil {
		return nil, fmt.Errorf("target schema: %w", err)
	}
	r := &Result{Source: d.Source, Target: d.Target, Mappings: d.Mappings}
	if r.Mappings == nil {
		r.Mappings = []FieldMapping{}
	}
	seen := map[string]bool{}
	for i, m := range r.Mappings {
		if seen[m.TargetField] {
			return nil, fmt.Errorf("mapping #%d: target field %q is mapped twice", i+1, m.TargetField)
		}
		seen[m.TargetField] = true
		switch m.Status {
		case StatusAccepted, StatusReview:
			if _, err := r.planOf(m); err != nil {
				return nil, fmt.Errorf("mapping #%d: %w", i+1, err)
			}
		case StatusUnmapped:
		default:
			return nil, fmt.Errorf("mapping #%d: unknown status %q", i+1, m.Status)
		}
	}
	return r, nil
}

// SourceFieldNames lists the source schema's field names, the set an
// applied mapping expects to see in every record.
func (r *Result) SourceFieldNames() []string {
	out := make([]string, len(r.Source.Fields))
	for i, f := range r.Source.Fields {
		out[i] = f.Name
	}
	return out
}
