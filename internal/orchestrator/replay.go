package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/plugins/resolution"
)

// ErrNoDeadLetter is returned when a pipeline's dead letters cannot be
// replayed because it keeps none (no errorHandling.deadLetter, or a bus
// subject, whose consumers own what they took).
var ErrNoDeadLetter = errors.New("pipeline keeps no replayable dead letter")

// ReplayDeadLetters re-sends the pending dead letters of a pipeline (only
// those of one fingerprint when fingerprint is set, at most limit when
// limit > 0) through the pipeline's current processors and destination,
// and marks each replayed once the destination acknowledged it. Records
// that fail again become new dead letters. It runs in this process with
// the engine's environment, so the pipeline's ${ENV} references resolve as
// they do in a spawned engine.
func (m *Manager) ReplayDeadLetters(ctx context.Context, pipelineID, fingerprint string, limit int) (int, error) {
	m.mu.Lock()
	p, ok := m.cache[pipelineID]
	var (
		yaml string
		dl   string
		dsn  string
	)
	if ok {
		yaml, dl, dsn = p.YAML, p.Config.ErrorHandling.DeadLetter, p.Config.Destination.Connection["dsn"]
	}
	m.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("pipeline %q: %w", pipelineID, ErrNotFound)
	}
	kind, value := DeadLetterKind(dl)
	opts := resolution.ReplayOptions{
		StoreHandle: m.o.Store, PipelineID: pipelineID, Fingerprint: fingerprint, Limit: limit,
		ConfigYAML: m.expandEngineEnv(yaml),
	}
	switch {
	case dl == "" || kind == "subject":
		return 0, fmt.Errorf("pipeline %q: %w: set errorHandling.deadLetter to table:<schema.table> or file:<path>", pipelineID, ErrNoDeadLetter)
	case kind == "table":
		opts.DLQ, opts.DLQTable = m.expandEngineEnv(dsn), value
	default:
		path := m.expandEngineEnv(value)
		if !filepath.IsAbs(path) && m.o.EngineDir != "" {
			path = filepath.Join(m.o.EngineDir, path)
		}
		opts.DLQ = path
	}
	res, err := resolution.ReplayDeadLetters(ctx, opts)
	if err != nil {
		return res.Replayed, fmt.Errorf("replay dead letters of %q: %s", pipelineID, redact.String(err.Error()))
	}
	return res.Replayed, nil
}

// expandEngineEnv resolves ${NAME} and ${NAME:default} the way the engine
// would: from the variables set for the engine, then this process's. An
// unset variable without a default is left as written.
func (m *Manager) expandEngineEnv(s string) string {
	out, _ := ExpandEnv(s, func(name string) (string, bool) {
		if v, ok := m.o.EngineEnv[name]; ok {
			return v, true
		}
		return m.o.LookupEnv(name)
	})
	return out
}
