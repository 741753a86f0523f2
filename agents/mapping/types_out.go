package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Mapping statuses. Scorers and reviewers treat accepted and review
// entries as proposals; unmapped entries only document the best rejected
// candidate.
const (
	StatusAccepted = "accepted"
	StatusReview   = "review"
	StatusUnmapped = "unmapped"
)

// Mapping types, as in the seed's FieldMapping.
const (
	TypeDirect      = "direct"
	TypeTransformed = "transformed"
	TypeDerived     = "derived"
)

// Sources is the sourceField of a mapping: empty for an unmapped target,
// one name for direct and transformed mappings, several names for a
// derived many-to-one mapping. It encodes as null, a string or an array,
// which is the shape the seed and the benchmark scorer read.
type Sources []string

// MarshalJSON encodes null, a string or an array.
func (s Sources) MarshalJSON() ([]byte, error) {
	switch len(s) {
	case 0:
		return []byte("null"), nil
	case 1:
		return json.Marshal(s[0])
	}
	return json.Marshal([]string(s))
}

// UnmarshalJSON accepts null, a string or an array of strings.
func (s *Sources) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = Sources{one}
		return nil
	case len(b) > 0 && b[0] == '[':
		var many []string
		if err := json.Unmarshal(b, &many); err != nil {
			return err
		}
		*s = many
		return nil
	}
	return fmt.Errorf("sourceField must be null, a string or an array of strings")
}

// Candidate is the best source rejected for an unmapped target.
type Candidate struct {
	SourceField string             `json:"sourceField"`
	Confidence  float64            `json:"confidence"`
	Signals     map[string]float64 `json:"signals,omitempty"`
	Reasoning   string             `json:"reasoning,omitempty"`
}

// FieldMapping is the seed's FieldMapping with the agent's additions:
// status, per-signal scores, a readable reason and, for unmapped targets,
// the best rejected candidate. Transformation is the Bloblang expression
// that computes the target value from the source record (`this`); it is
// empty for direct copies. Programs and SQL are always regenerated from the
// sources, target and mapping type, so an edited Transformation text is
// documentation, never executed code.
type FieldMapping struct {
	SourceField    Sources            `json:"sourceField"`
	TargetField    string             `json:"targetField"`
	Transformation string             `json:"transformation,omitempty"`
	Confidence     float64            `json:"confidence"`
	MappingType    string             `json:"mappingType,omitempty"`
	Status         string             `json:"status"`
	Signals        map[string]float64 `json:"signals,omitempty"`
	Reasoning      string             `json:"reasoning"`
	BestCandidate  *Candidate         `json:"bestCandidate,omitempty"`
}

// Proposed reports whether the mapping is a proposal (accepted or review).
func (m FieldMapping) Proposed() bool {
	return m.Status == StatusAccepted || m.Status == StatusReview
}
