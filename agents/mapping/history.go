package mapping

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/agentetl/agentetl/internal/model"
)

// History supplies earlier human or agent verdicts on field pairs. The
// metadata store feeds it: list the mapping agent's decisions
// (ListAgentDecisions with AgentType mapping) and pass them to
// HistoryFromDecisions; this package stays free of storage dependencies. A pair accepted before scores higher, a pair
// rejected before scores lower, and the history signal is reported.
type History interface {
	// Feedback returns how often the pair was accepted and rejected.
	Feedback(sourceField, targetField string) (accepted, rejected int)
}

// historyView turns counts into a 0..1 signal (0.5 is neutral).
type historyView interface {
	adjust(source, target string) (float64, bool)
}

type histAdapter struct{ h History }

func (a histAdapter) adjust(s, t string) (float64, bool) {
	acc, rej := a.h.Feedback(s, t)
	if acc+rej == 0 {
		return 0, false
	}
	// Laplace-smoothed acceptance rate: one verdict moves the pair, many
	// agreeing verdicts move it further.
	return (float64(acc) + 0.5) / (float64(acc+rej) + 1), true
}

// MemoryHistory is an in-memory History keyed by case-folded names.
type MemoryHistory struct {
	mu   sync.RWMutex
	pair map[[2]string][2]int
}

// NewMemoryHistory returns an empty history.
func NewMemoryHistory() *MemoryHistory {
	return &MemoryHistory{pair: map[[2]string][2]int{}}
}

func histKey(s, t string) [2]string {
	return [2]string{strings.ToLower(strings.TrimSpace(s)), strings.ToLower(strings.TrimSpace(t))}
}

// Record adds one verdict.
func (h *MemoryHistory) Record(sourceField, targetField string, accepted bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := histKey(sourceField, targetField)
	c := h.pair[k]
	if accepted {
		c[0]++
	} else {
		c[1]++
	}
	h.pair[k] = c
}

// Feedback implements History.
func (h *MemoryHistory) Feedback(s, t string) (int, int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	c := h.pair[histKey(s, t)]
	return c[0], c[1]
}

// Decision actions the mapping agent records. A verdict decision carries
// the pair as JSON in Outcome so that LoadHistory can read it back.
const (
	ActionProposed = "mapping.proposed"
	ActionAccepted = "mapping.accepted"
	ActionRejected = "mapping.rejected"
)

type decisionPair struct {
	SourceField Sources `json:"sourceField"`
	TargetField string  `json:"targetField"`
	Status      string  `json:"status,omitempty"`
}

// Decision builds the audit record of one mapping; action is one of the
// Action constants.
func Decision(m FieldMapping, action, agentID, pipelineID string) model.AgentDecision {
	b, _ := json.Marshal(decisionPair{SourceField: m.SourceField, TargetField: m.TargetField, Status: m.Status})
	return model.AgentDecision{
		AgentID:    agentID,
		AgentType:  model.AgentMapping,
		PipelineID: pipelineID,
		Action:     action,
		Confidence: m.Confidence,
		Reasoning:  m.Reasoning,
		Outcome:    string(b),
	}
}

// HistoryFromDecisions reads accepted and rejected verdicts.
func HistoryFromDecisions(ds []model.AgentDecision) *MemoryHistory {
	h := NewMemoryHistory()
	for _, d := range ds {
		if d.Action != ActionAccepted && d.Action != ActionRejected {
			continue
		}
		var p decisionPair
		if json.Unmarshal([]byte(d.Outcome), &p) != nil || p.TargetField == "" {
			continue
		}
		for _, s := range p.SourceField {
			h.Record(s, p.TargetField, d.Action == ActionAccepted)
		}
	}
	return h
}
