package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/engine"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
)

// run is one execution in flight. A batch run is a bounded stream named
// after its pipeline: the stream ends when the postgres input has read its
// last page and every row is acknowledged, and the engine then lists it as
// inactive until the run is finished and the stream deleted.
type run struct {
	exec       metastore.Execution
	yaml, hash string
	maxErrors  int64
	// base holds the counts of earlier incarnations of the stream: after
	// an engine restart the stream is re-created (the input resumes from
	// its checkpoint) and its counters start again from zero.
	base, last engine.Stats
	// incarnation counts the times the manager created the run's stream;
	// seen is the incarnation the last stats were read from. When they
	// differ the counters restarted from zero and last joins base. This
	// is exact, unlike guessing from uptimes.
	incarnation, seen int
	lastSave          time.Time
	finished          bool
	stop              chan struct{}
}

// Run starts an execution of a batch pipeline. trigger ("manual", "cron")
// is recorded. A pipeline never has two executions at once: ErrOverlap.
func (m *Manager) Run(ctx context.Context, id, trigger string) (metastore.Execution, error) {
	unlock := m.lock(id)
	defer unlock()
	m.mu.Lock()
	p, ok := m.cache[id]
	var cp Pipeline
	if ok {
		cp = *p
	}
	prev := m.runs[id]
	m.mu.Unlock()
	switch {
	case !ok:
		return metastore.Execution{}, fmt.Errorf("pipeline %q: %w", id, ErrNotFound)
	case cp.Config.Type != TypeBatch:
		return metastore.Execution{}, fmt.Errorf("pipeline %q is a stream pipeline, which runs continuously: %w", id, ErrNotBatch)
	case cp.State != StateActive:
		return metastore.Execution{}, fmt.Errorf("pipeline %q: %w; resume it first", id, ErrPaused)
	case prev != nil:
		return prev.exec, fmt.Errorf("pipeline %q: %w (%s, started %s); cancel it or wait", id, ErrOverlap, prev.exec.ID, prev.exec.StartedAt.Format(time.RFC3339))
	}
	maxErr := int64(cp.Config.ErrorHandling.MaxRetries)
	if maxErr <= 0 {
		maxErr = int64(m.o.DefaultMaxRetries)
	}
	r := &run{
		exec: metastore.Execution{ID: uuid.NewString(), PipelineID: id, Status: ExecRunning, StartedAt: time.Now().UTC(),
			Message: fmt.Sprintf("%s run of version %d", trigger, cp.Version)},
		yaml: cp.YAML, hash: cp.Hash, maxErrors: maxErr, stop: make(chan struct{}),
	}
	if err := m.o.Store.SaveExecution(ctx, r.exec); err != nil {
		return metastore.Execution{}, fmt.Errorf("orchestrator: save execution: %w", err)
	}
	m.mu.Lock()
	m.runs[id] = r
	m.mu.Unlock()
	if err := m.startRunStreamLocked(ctx, id, r); err != nil {
		var lintErr *engine.LintError
		if errors.As(err, &lintErr) || !errors.Is(err, engine.ErrUnavailable) {
			m.finishRunLocked(ctx, r, ExecFailed, "engine rejected the run: "+redact.String(err.Error()))
			return r.exec, nil
		}
		// The engine is restarting: the reconciler starts the stream once
		// it is back; the execution stays running meanwhile.
		m.log.Warn("engine unavailable; the run starts when it is back", "pipeline", id, "err", err)
		m.kickReconcile()
	}
	m.decide(ctx, "run_pipeline", id, fmt.Sprintf("%s run %s of version %d started as a bounded stream", trigger, r.exec.ID, cp.Version), ExecRunning)
	m.publishExecution(r.exec, "execution.started")
	m.monitor(id, r)
	return r.exec, nil
}

func (m *Manager) startRunStreamLocked(ctx context.Context, id string, r *run) error {
	e, err := m.engine()
	if err != nil {
		return err
	}
	err = e.Create(ctx, id, []byte(r.yaml))
	if errors.Is(err, engine.ErrExists) {
		// A finished run's stream that was never deleted (the orchestrator
		// died between the end of the run and the cleanup).
		if derr := e.Delete(ctx, id, m.o.StopTimeout); derr != nil && !errors.Is(derr, engine.ErrNotFound) {
			return derr
		}
		err = e.Create(ctx, id, []byte(r.yaml))
	}
	if m.o.Observer != nil {
		m.o.Observer.EngineApply("run", err)
	}
	if err == nil {
		r.incarnation++
		m.setApplied(ctx, id, r.hash)
	}
	return err
}

func (m *Manager) monitor(id string, r *run) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(m.o.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-r.stop:
				return
			case <-t.C:
			}
			if m.pollRun(id, r) {
				return
			}
		}
	}()
}

// pollRun reads the stream's state and stats and finishes the run when the
// stream has ended or its error budget is spent. It reports whether the
// run is over.
func (m *Manager) pollRun(id string, r *run) bool {
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	e, err := m.engine()
	if err != nil {
		return false
	}
	info, err := e.Get(ctx, id)
	if errors.Is(err, engine.ErrNotFound) {
		// Gone with an engine restart: the reconciler re-creates it and
		// the input resumes from its checkpoint.
		m.kickReconcile()
		return false
	}
	if err != nil {
		return false
	}
	st, err := e.Stats(ctx, id)
	if err != nil {
		return false
	}
	unlock := m.lock(id)
	defer unlock()
	if r.finished {
		return true
	}
	if r.seen != r.incarnation || st.RowsIn < r.last.RowsIn {
		r.base = addStats(r.base, r.last)
		r.seen = r.incarnation
	}
	r.last = st
	total := addStats(r.base, st)
	// Writers hold the pipeline lock and m.mu; readers (live) hold m.mu.
	m.mu.Lock()
	r.exec.RowsIn, r.exec.RowsOut, r.exec.DeadLetter = total.RowsIn, total.RowsOut, total.DeadLetter
	r.exec.Errors = total.Errors()
	m.mu.Unlock()
	hard := total.ConnectionFailures + total.OutputErrors
	switch {
	case !info.Active:
		m.finishRunLocked(ctx, r, ExecSucceeded, fmt.Sprintf("read %d rows, wrote %d", total.RowsIn, total.RowsOut))
		return true
	case hard > r.maxErrors:
		m.finishRunLocked(ctx, r, ExecFailed, fmt.Sprintf(
			"%d connection or write errors exceed the error budget of %d (errorHandling.maxRetries); the run was stopped. See the engine log for the cause", hard, r.maxErrors))
		return true
	}
	if time.Since(r.lastSave) > 2*time.Second {
		r.lastSave = time.Now()
		if err := m.o.Store.SaveExecution(ctx, r.exec); err != nil {
			m.log.Warn("execution progress not saved", "execution", r.exec.ID, "err", err)
		}
	}
	return false
}

func addStats(a, b engine.Stats) engine.Stats {
	a.RowsIn += b.RowsIn
	a.RowsOut += b.RowsOut
	a.DeadLetter += b.DeadLetter
	a.OutputErrors += b.OutputErrors
	a.ProcessorErrors += b.ProcessorErrors
	a.ConnectionFailures += b.ConnectionFailures
	return a
}

// finishRunLocked ends a run: the stream is deleted, the execution stored
// with its final counts, and a failure recorded as a pipeline error for the
// error-resolution agent. Called with the pipeline lock held; idempotent.
func (m *Manager) finishRunLocked(ctx context.Context, r *run, status, msg string) {
	if r.finished {
		return
	}
	r.finished = true
	close(r.stop)
	ctx = context.WithoutCancel(ctx)
	id := r.exec.PipelineID
	if e, err := m.engine(); err == nil {
		// A last read of the counters: the final page may have landed
		// after the previous poll.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if st, err := e.Stats(sctx, id); err == nil && r.seen == r.incarnation && st.RowsIn >= r.last.RowsIn {
			r.last = st
			total := addStats(r.base, st)
			m.mu.Lock()
			r.exec.RowsIn, r.exec.RowsOut, r.exec.Errors = total.RowsIn, total.RowsOut, total.Errors()
			r.exec.DeadLetter = total.DeadLetter
			m.mu.Unlock()
		}
		cancel()
		if err := e.Delete(ctx, id, m.o.StopTimeout); err != nil && !errors.Is(err, engine.ErrNotFound) {
			m.log.Warn("finished run's stream not deleted; the reconciler retries", "pipeline", id, "err", err)
			m.kickReconcile()
		} else {
			m.setApplied(ctx, id, "")
		}
	}
	now := time.Now().UTC()
	// The error is recorded before the status changes, so whoever sees
	// the execution failed also finds its error.
	if status == ExecFailed {
		pe := model.PipelineError{PipelineID: id, ExecutionID: r.exec.ID, ErrorType: "execution", Message: msg, Timestamp: now}
		if err := m.o.Store.SavePipelineError(ctx, pe); err != nil {
			m.log.Warn("pipeline error not saved", "err", err)
		}
		m.publish(bus.SubjectError, "pipeline.error", id, pe)
	}
	// The result is stored and its decision recorded before anyone can
	// see the execution as finished, so a client that saw it finish also
	// finds its decision.
	m.mu.Lock()
	final := r.exec
	m.mu.Unlock()
	final.Status, final.FinishedAt, final.Message = status, &now, msg
	if err := m.o.Store.SaveExecution(ctx, final); err != nil {
		m.log.Error("execution result not saved", "execution", final.ID, "err", err)
	}
	m.decide(ctx, "execution_"+status, id, fmt.Sprintf("execution %s %s after %s: %s (rows in %d, out %d, errors %d)",
		final.ID, status, now.Sub(final.StartedAt).Round(time.Millisecond), msg, final.RowsIn, final.RowsOut, final.Errors), status)
	m.mu.Lock()
	r.exec = final
	if m.runs[id] == r {
		delete(m.runs, id)
	}
	m.mu.Unlock()
	if m.o.Observer != nil {
		m.o.Observer.ExecutionFinished(status, final.RowsIn, final.RowsOut, final.Errors)
	}
	m.publishExecution(r.exec, "execution."+status)
	m.log.Info("execution finished", "pipeline", id, "execution", r.exec.ID, "status", status,
		"rows_in", r.exec.RowsIn, "rows_out", r.exec.RowsOut, "errors", r.exec.Errors, "duration", now.Sub(r.exec.StartedAt).Round(time.Millisecond))
}

func (m *Manager) publishExecution(e metastore.Execution, typ string) {
	m.publish(bus.SubjectExecution+"."+e.PipelineID, typ, e.PipelineID, e)
}

// Cancel stops a running execution: its stream is deleted (in-flight
// batches get StopTimeout to finish) and it ends as cancelled.
func (m *Manager) Cancel(ctx context.Context, execID string) (metastore.Execution, error) {
	ex, err := m.o.Store.GetExecution(ctx, execID)
	if errors.Is(err, metastore.ErrNotFound) {
		return metastore.Execution{}, fmt.Errorf("execution %q: %w", execID, ErrNotFound)
	}
	if err != nil {
		return metastore.Execution{}, fmt.Errorf("orchestrator: get execution: %w", err)
	}
	unlock := m.lock(ex.PipelineID)
	defer unlock()
	m.mu.Lock()
	r := m.runs[ex.PipelineID]
	m.mu.Unlock()
	if r == nil || r.exec.ID != execID {
		return ex, fmt.Errorf("execution %q is %s: %w", execID, ex.Status, ErrNotRunning)
	}
	m.finishRunLocked(ctx, r, ExecCancelled, "cancelled through the API")
	return r.exec, nil
}

// Execution returns one execution, with live counts when it runs.
func (m *Manager) Execution(ctx context.Context, id string) (metastore.Execution, error) {
	ex, err := m.o.Store.GetExecution(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return ex, fmt.Errorf("execution %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return ex, fmt.Errorf("orchestrator: get execution: %w", err)
	}
	return m.live(ex), nil
}

// Executions lists executions, newest first.
func (m *Manager) Executions(ctx context.Context, pipelineID string, limit int) ([]metastore.Execution, error) {
	xs, err := m.o.Store.ListExecutions(ctx, pipelineID, limit)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: list executions: %w", err)
	}
	for i := range xs {
		xs[i] = m.live(xs[i])
	}
	return xs, nil
}

func (m *Manager) live(ex metastore.Execution) metastore.Execution {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.runs[ex.PipelineID]; r != nil && r.exec.ID == ex.ID {
		return r.exec
	}
	return ex
}

// Running returns the running execution of a pipeline, if any.
func (m *Manager) Running(pipelineID string) (metastore.Execution, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.runs[pipelineID]; r != nil {
		return r.exec, true
	}
	return metastore.Execution{}, false
}

// recoverRuns picks up executions a previous orchestrator left running.
// When the engine still has the stream (an external engine that survived),
// its counters continue; otherwise the stream is re-created by the
// reconciler and the counts so far are kept as a base.
func (m *Manager) recoverRuns(ctx context.Context) error {
	xs, err := m.o.Store.ListExecutions(ctx, "", 0)
	if err != nil {
		return fmt.Errorf("orchestrator: load executions: %w", err)
	}
	var streams map[string]engine.StreamInfo
	if e, err := m.engine(); err == nil {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		streams, _ = e.List(lctx)
		cancel()
	}
	for _, ex := range xs {
		if ex.Status != ExecRunning {
			continue
		}
		m.mu.Lock()
		p, ok := m.cache[ex.PipelineID]
		var cp Pipeline
		if ok {
			cp = *p
		}
		dup := m.runs[ex.PipelineID] != nil
		m.mu.Unlock()
		r := &run{exec: ex, stop: make(chan struct{}), maxErrors: int64(m.o.DefaultMaxRetries)}
		if !ok || dup {
			r.finished = true
			now := time.Now().UTC()
			r.exec.Status, r.exec.FinishedAt = ExecFailed, &now
			r.exec.Message = "the orchestrator restarted and the pipeline no longer exists (or already runs another execution)"
			if err := m.o.Store.SaveExecution(ctx, r.exec); err != nil {
				return fmt.Errorf("orchestrator: close orphaned execution: %w", err)
			}
			continue
		}
		r.yaml, r.hash = cp.YAML, cp.Hash
		if n := cp.Config.ErrorHandling.MaxRetries; n > 0 {
			r.maxErrors = int64(n)
		}
		if _, alive := streams[ex.PipelineID]; !alive {
			r.base = engine.Stats{RowsIn: ex.RowsIn, RowsOut: ex.RowsOut, OutputErrors: ex.Errors, DeadLetter: ex.DeadLetter}
		}
		m.mu.Lock()
		m.runs[ex.PipelineID] = r
		m.mu.Unlock()
		m.decide(ctx, "recover_execution", ex.PipelineID, fmt.Sprintf(
			"execution %s was running when the orchestrator stopped; it continues (the source resumes from its checkpoint)", ex.ID), ExecRunning)
		m.monitor(ex.PipelineID, r)
	}
	return nil
}

// schedule (re)registers a pipeline's cron job from its current state.
func (m *Manager) schedule(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if eid, ok := m.cronIDs[id]; ok {
		m.cron.Remove(eid)
		delete(m.cronIDs, id)
	}
	p, ok := m.cache[id]
	if !ok || p.State != StateActive || p.Config.Type != TypeBatch || p.Config.Schedule == nil {
		return
	}
	sch, err := ParseSchedule(*p.Config.Schedule)
	if err != nil {
		m.log.Error("stored schedule is invalid", "pipeline", id, "err", err)
		return
	}
	m.cronIDs[id] = m.cron.Schedule(sch, cronJob{m: m, id: id})
}

type cronJob struct {
	m  *Manager
	id string
}

// Run is called by cron. An overlapping tick is skipped and recorded.
func (j cronJob) Run() {
	ctx := j.m.ctx
	if ctx == nil || ctx.Err() != nil {
		return
	}
	_, err := j.m.Run(ctx, j.id, "cron")
	switch {
	case errors.Is(err, ErrOverlap):
		j.m.decide(ctx, "skip_scheduled_run", j.id, "scheduled run skipped: "+err.Error()+"; overlapping runs of one pipeline are not allowed", "skipped")
	case err != nil:
		j.m.log.Warn("scheduled run not started", "pipeline", j.id, "err", err)
	}
}

// NextRun returns when a pipeline's schedule fires next, zero if none.
func (m *Manager) NextRun(id string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if eid, ok := m.cronIDs[id]; ok {
		return m.cron.Entry(eid).Next
	}
	return time.Time{}
}
