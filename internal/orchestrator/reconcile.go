package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentetl/agentetl/internal/engine"
	"github.com/agentetl/agentetl/internal/redact"
)

// ReconcileReport says what one reconciliation pass changed.
type ReconcileReport struct {
	Desired   int               `json:"desired"`
	Present   int               `json:"present"`
	Created   []string          `json:"created,omitempty"`
	Updated   []string          `json:"updated,omitempty"`
	Deleted   []string          `json:"deleted,omitempty"`
	Failed    map[string]string `json:"failed,omitempty"`
	Unchanged int               `json:"unchanged"`
	Duration  time.Duration     `json:"duration"`
}

// Changed reports whether the pass touched the engine.
func (r ReconcileReport) Changed() bool {
	return len(r.Created)+len(r.Updated)+len(r.Deleted) > 0
}

type desired struct {
	yaml, hash string
}

// desiredLocked is the set of streams that should run: every active stream
// pipeline's current version and every running execution's config.
func (m *Manager) desiredLocked() map[string]desired {
	out := map[string]desired{}
	for id, p := range m.cache {
		if p.Config.Type == TypeStream && p.State == StateActive {
			out[id] = desired{p.YAML, p.Hash}
		}
	}
	for id, r := range m.runs {
		if !r.finished {
			out[id] = desired{r.yaml, r.hash}
		}
	}
	return out
}

// Reconcile makes the engine match the desired state: missing streams are
// created, streams whose applied config differs are updated (only those
// restart), and streams the orchestrator once applied that are no longer
// desired are deleted. Streams it never applied are left alone, so an
// engine shared with hand-made streams is safe. A finished run's stream is
// left to the run's monitor. Work is spread over a few parallel requests,
// so 200 streams come back quickly after an engine restart.
func (m *Manager) Reconcile(ctx context.Context) (ReconcileReport, error) {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	start := time.Now()
	rep := ReconcileReport{Failed: map[string]string{}}
	e, err := m.engine()
	if err != nil {
		return rep, err
	}
	actual, err := e.List(ctx)
	if err != nil {
		return rep, fmt.Errorf("orchestrator: reconcile: %w", err)
	}
	m.mu.Lock()
	want := m.desiredLocked()
	m.mu.Unlock()
	rep.Desired, rep.Present = len(want), len(actual)

	ids := map[string]bool{}
	for id := range want {
		ids[id] = true
	}
	for id := range actual {
		ids[id] = true
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)

	var mu sync.Mutex
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, id := range sorted {
		_, present := actual[id]
		wg.Add(1)
		sem <- struct{}{}
		go func(id string, present bool) {
			defer wg.Done()
			defer func() { <-sem }()
			op, err := m.reconcileOne(ctx, e, id, present)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Failed[id] = redact.String(err.Error())
				return
			}
			switch op {
			case "create":
				rep.Created = append(rep.Created, id)
			case "update":
				rep.Updated = append(rep.Updated, id)
			case "delete":
				rep.Deleted = append(rep.Deleted, id)
			case "":
				rep.Unchanged++
			}
		}(id, present)
	}
	wg.Wait()
	sort.Strings(rep.Created)
	sort.Strings(rep.Updated)
	sort.Strings(rep.Deleted)
	rep.Duration = time.Since(start)
	if rep.Changed() || len(rep.Failed) > 0 {
		m.log.Info("engine reconciled", "desired", rep.Desired, "present", rep.Present, "created", len(rep.Created),
			"updated", len(rep.Updated), "deleted", len(rep.Deleted), "failed", len(rep.Failed), "duration", rep.Duration.Round(time.Millisecond))
		m.decide(ctx, "reconcile_engine", "", reconcileReason(rep), fmt.Sprintf("%d created, %d updated, %d deleted, %d failed",
			len(rep.Created), len(rep.Updated), len(rep.Deleted), len(rep.Failed)))
	}
	if len(rep.Failed) > 0 {
		return rep, fmt.Errorf("orchestrator: reconcile: %d streams failed", len(rep.Failed))
	}
	return rep, nil
}

func reconcileReason(r ReconcileReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the engine ran %d streams where %d are desired", r.Present, r.Desired)
	list := func(what string, ids []string) {
		if len(ids) == 0 {
			return
		}
		shown := ids
		if len(shown) > 20 {
			shown = shown[:20]
		}
		fmt.Fprintf(&b, "; %s %d: %s", what, len(ids), strings.Join(shown, ", "))
		if len(ids) > len(shown) {
			b.WriteString(", …")
		}
	}
	list("created", r.Created)
	list("updated (config differed)", r.Updated)
	list("deleted (no longer desired)", r.Deleted)
	if len(r.Failed) > 0 {
		fmt.Fprintf(&b, "; %d failed and are retried", len(r.Failed))
	}
	return b.String()
}

// reconcileOne re-reads the desired state of one stream under its
// pipeline lock (an API call may have changed it since the snapshot) and
// acts on it.
func (m *Manager) reconcileOne(ctx context.Context, e Engine, id string, present bool) (string, error) {
	unlock := m.lock(id)
	defer unlock()
	m.mu.Lock()
	want, isWanted := m.desiredLocked()[id]
	m.mu.Unlock()
	hash, ours := m.appliedHash(id)
	switch {
	case isWanted && !present:
		err := e.Create(ctx, id, []byte(want.yaml))
		if errors.Is(err, engine.ErrExists) {
			err = e.Update(ctx, id, []byte(want.yaml), m.o.StopTimeout)
		}
		if m.o.Observer != nil {
			m.o.Observer.EngineApply("reconcile_create", err)
		}
		if err != nil {
			return "", err
		}
		m.mu.Lock()
		if r := m.runs[id]; r != nil {
			r.incarnation++
		}
		m.mu.Unlock()
		m.setApplied(ctx, id, want.hash)
		return "create", nil
	case isWanted && present && hash != want.hash:
		m.mu.Lock()
		r := m.runs[id]
		m.mu.Unlock()
		if r != nil {
			// A run keeps the config it started with; it is only ours to
			// record, not to restart.
			m.setApplied(ctx, id, want.hash)
			return "", nil
		}
		err := e.Update(ctx, id, []byte(want.yaml), m.o.StopTimeout)
		if errors.Is(err, engine.ErrNotFound) {
			err = e.Create(ctx, id, []byte(want.yaml))
		}
		if m.o.Observer != nil {
			m.o.Observer.EngineApply("reconcile_update", err)
		}
		if err != nil {
			return "", err
		}
		m.setApplied(ctx, id, want.hash)
		return "update", nil
	case !isWanted && present && ours:
		err := e.Delete(ctx, id, m.o.StopTimeout)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return "", err
		}
		m.setApplied(ctx, id, "")
		return "delete", nil
	case !isWanted && !present && ours:
		m.setApplied(ctx, id, "")
	}
	return "", nil
}

// kickReconcile asks the loop for a pass soon, without waiting for it.
func (m *Manager) kickReconcile() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(m.o.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
			// Let a burst of kicks (an engine restart seen by several
			// monitors) collapse into one pass.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		if _, err := m.Reconcile(rctx); err != nil && !errors.Is(err, engine.ErrUnavailable) {
			m.log.Warn("reconcile incomplete", "err", redact.String(err.Error()))
		}
		cancel()
	}
}
