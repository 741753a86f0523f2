package orchestrator

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/engine"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

// fakeEngine is an in-memory streams API. It records every call so tests
// can assert which streams were touched.
type fakeEngine struct {
	mu      sync.Mutex
	streams map[string]*fakeStream
	calls   []string
	down    bool
}

type fakeStream struct {
	yaml    string
	created time.Time
	active  bool
	stats   engine.Stats
}

func newFakeEngine() *fakeEngine { return &fakeEngine{streams: map[string]*fakeStream{}} }

func (f *fakeEngine) record(op, id string) error {
	f.calls = append(f.calls, op+" "+id)
	if f.down {
		return engine.ErrUnavailable
	}
	return nil
}

func (f *fakeEngine) List(context.Context) (map[string]engine.StreamInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, engine.ErrUnavailable
	}
	out := map[string]engine.StreamInfo{}
	for id, s := range f.streams {
		out[id] = engine.StreamInfo{Active: s.active, Uptime: time.Since(s.created).Seconds()}
	}
	return out, nil
}

func (f *fakeEngine) Get(_ context.Context, id string) (engine.StreamInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return engine.StreamInfo{}, engine.ErrUnavailable
	}
	s, ok := f.streams[id]
	if !ok {
		return engine.StreamInfo{}, engine.ErrNotFound
	}
	return engine.StreamInfo{Active: s.active, Uptime: time.Since(s.created).Seconds()}, nil
}

func (f *fakeEngine) Create(_ context.Context, id string, cfg []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create", id); err != nil {
		return err
	}
	if _, ok := f.streams[id]; ok {
		return engine.ErrExists
	}
	f.streams[id] = &fakeStream{yaml: string(cfg), created: time.Now(), active: true}
	return nil
}

func (f *fakeEngine) Update(_ context.Context, id string, cfg []byte, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("update", id); err != nil {
		return err
	}
	if _, ok := f.streams[id]; !ok {
		return engine.ErrNotFound
	}
	f.streams[id] = &fakeStream{yaml: string(cfg), created: time.Now(), active: true}
	return nil
}

func (f *fakeEngine) Delete(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("delete", id); err != nil {
		return err
	}
	if _, ok := f.streams[id]; !ok {
		return engine.ErrNotFound
	}
	delete(f.streams, id)
	return nil
}

func (f *fakeEngine) Stats(_ context.Context, id string) (engine.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return engine.Stats{}, engine.ErrUnavailable
	}
	s, ok := f.streams[id]
	if !ok {
		return engine.Stats{}, engine.ErrNotFound
	}
	st := s.stats
	st.Uptime = time.Since(s.created)
	return st, nil
}

// set changes a stream under the lock.
func (f *fakeEngine) set(id string, fn func(s *fakeStream)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.streams[id]; ok {
		fn(s)
	}
}

func (f *fakeEngine) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeEngine) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams = map[string]*fakeStream{}
}

type recorder struct {
	mu sync.Mutex
	ds []model.AgentDecision
}

func (r *recorder) RecordDecision(_ context.Context, d model.AgentDecision) model.AgentDecision {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ds = append(r.ds, d)
	return d
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.ds {
		out = append(out, d.Action)
	}
	return out
}

type harness struct {
	store metastore.Store
	eng   *fakeEngine
	rec   *recorder
	dir   string
	m     *Manager
	stop  context.CancelFunc
}

func newHarness(t *testing.T, eng *fakeEngine, dir string) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := metastore.Open(ctx, "sqlite://"+filepath.Join(dir, "meta.db"))
	require.NoError(t, err)
	h := &harness{store: st, eng: eng, rec: &recorder{}, dir: dir, stop: cancel}
	h.m, err = NewManager(Options{
		Store: st, Engine: func() Engine { return eng }, ConfigsDir: filepath.Join(dir, "configs"),
		Decisions: h.rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: 20 * time.Millisecond, ReconcileInterval: time.Hour,
		LookupEnv: func(string) (string, bool) { return "set", true }, CheckEnv: true,
	})
	require.NoError(t, err)
	require.NoError(t, h.m.Start(ctx))
	t.Cleanup(func() {
		cancel()
		h.m.Wait()
		st.Close()
	})
	return h
}

func streamPC(id string) model.PipelineConfig {
	return model.PipelineConfig{
		ID: id, Name: id, Type: TypeStream,
		Source:      model.SourceConfig{Type: ConnNATS, Topic: "agentetl.in." + id},
		Destination: model.DestinationConfig{Type: ConnNATS, Topic: "agentetl.out." + id},
	}
}

func batchConfig(id string) model.PipelineConfig {
	return model.PipelineConfig{
		ID: id, Name: id, Type: TypeBatch,
		Source:      model.SourceConfig{Type: ConnPostgres, Table: "public.src", Connection: map[string]string{"dsn": "${SRC_DSN}"}},
		Destination: model.DestinationConfig{Type: ConnPostgres, Table: "public.dst", Connection: map[string]string{"dsn": "${DST_DSN}"}},
	}
}

func TestUpdateTouchesOnlyThatStream(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, newFakeEngine(), t.TempDir())
	for _, id := range []string{"a", "b", "c"} {
		p, err := h.m.Create(ctx, streamPC(id), "")
		require.NoError(t, err)
		require.Equal(t, 1, p.Version)
		require.Empty(t, p.ApplyError)
	}
	require.Equal(t, []string{"create a", "create b", "create c"}, h.eng.takeCalls())

	pc := streamPC("b")
	pc.Destination.Topic = "agentetl.out.b2"
	p, err := h.m.Update(ctx, "b", pc, 1, "")
	require.NoError(t, err)
	require.Equal(t, 2, p.Version)
	// POST first (it exists), then PUT for b only.
	require.Equal(t, []string{"create b", "update b"}, h.eng.takeCalls())

	// The same config again is not a new version and touches nothing.
	p, err = h.m.Update(ctx, "b", pc, 2, "")
	require.NoError(t, err)
	require.True(t, p.Unchanged)
	require.Equal(t, 2, p.Version)
	require.Empty(t, h.eng.takeCalls())

	// A stale writer loses, loudly.
	pc.Destination.Topic = "agentetl.out.b3"
	_, err = h.m.Update(ctx, "b", pc, 1, "")
	var vc *VersionConflict
	require.ErrorAs(t, err, &vc)
	require.Equal(t, 2, vc.Current)
	require.ErrorIs(t, err, ErrConflict)

	// The file in --configs-dir is the current version.
	b, err := os.ReadFile(filepath.Join(h.dir, "configs", "b.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(b), "version 2")
	require.Contains(t, string(b), "agentetl.out.b2")
	require.Contains(t, h.rec.actions(), "update_pipeline")
}

func TestLintFailureAppliesNothing(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, newFakeEngine(), t.TempDir())
	pc := streamPC("bad")
	pc.Transformations = []model.Transformation{{Type: "map", Logic: "root = this\nroot.x = this.y +"}}
	_, err := h.m.Create(ctx, pc, "")
	var lf *LintFailure
	require.ErrorAs(t, err, &lf)
	require.NotEmpty(t, lf.Issues)
	require.Greater(t, lf.Issues[0].Line, 1)
	require.Empty(t, h.m.List())
	require.Empty(t, h.eng.takeCalls())
	_, err = os.Stat(filepath.Join(h.dir, "configs", "bad.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = h.store.GetPipelineConfig(ctx, "bad", 0)
	require.ErrorIs(t, err, metastore.ErrNotFound)

	// A referenced variable the engine would not have is a 400 with its path.
	h.m.o.LookupEnv = func(n string) (string, bool) { return "", n != "SRC_DSN" }
	_, err = h.m.Create(ctx, batchConfig("envless"), "")
	require.Equal(t, []string{"source.connection.dsn"}, fieldPaths(t, err))
	require.ErrorContains(t, err, "${SRC_DSN}")
}

func TestReconcileAfterEngineAndOrchestratorRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	eng := newFakeEngine()
	h := newHarness(t, eng, dir)
	for _, id := range []string{"s1", "s2"} {
		_, err := h.m.Create(ctx, streamPC(id), "")
		require.NoError(t, err)
	}
	_, err := h.m.Create(ctx, batchConfig("b1"), "")
	require.NoError(t, err)
	eng.takeCalls()

	// Engine restart: every stream pipeline comes back, batch ones do not
	// (they have no stream outside a run).
	eng.restart()
	rep, err := h.m.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"s1", "s2"}, rep.Created)
	require.Contains(t, h.rec.actions(), "reconcile_engine")

	// A hand-made stream is not ours and stays; a stream we applied for a
	// pipeline that was deleted while the engine was down goes.
	require.NoError(t, eng.Create(ctx, "manual", []byte("x")))
	eng.mu.Lock()
	eng.down = true
	eng.mu.Unlock()
	require.NoError(t, h.m.Delete(ctx, "s2"))
	eng.mu.Lock()
	eng.down = false
	eng.mu.Unlock()
	eng.takeCalls()
	rep, err = h.m.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"s2"}, rep.Deleted)
	_, err = eng.Get(ctx, "manual")
	require.NoError(t, err)

	// Orchestrator restart with a surviving engine: nothing is restarted.
	h.stop()
	h.m.Wait()
	h.store.Close()
	eng.takeCalls()
	h2 := newHarness(t, eng, dir)
	rep, err = h2.m.Reconcile(ctx)
	require.NoError(t, err)
	require.False(t, rep.Changed(), "report %+v", rep)
	require.Equal(t, []string{"b1", "s1"}, ids(h2.m.List()))
}

func ids(ps []Pipeline) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestRunLifecycle(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	h := newHarness(t, eng, t.TempDir())
	_, err := h.m.Create(ctx, batchConfig("job"), "")
	require.NoError(t, err)
	_, err = h.m.Run(ctx, "nope", "manual")
	require.ErrorIs(t, err, ErrNotFound)

	ex, err := h.m.Run(ctx, "job", "manual")
	require.NoError(t, err)
	require.Equal(t, ExecRunning, ex.Status)
	_, err = h.m.Run(ctx, "job", "manual")
	require.ErrorIs(t, err, ErrOverlap)

	eng.set("job", func(s *fakeStream) { s.stats.RowsIn, s.stats.RowsOut = 40, 30 })
	require.Eventually(t, func() bool {
		x, err := h.m.Execution(ctx, ex.ID)
		return err == nil && x.RowsIn == 40
	}, 5*time.Second, 10*time.Millisecond)

	// An engine restart mid-run: the stream is re-created and its counts
	// add to what was already loaded.
	eng.restart()
	_, err = h.m.Reconcile(ctx)
	require.NoError(t, err)
	eng.set("job", func(s *fakeStream) { s.stats.RowsIn, s.stats.RowsOut, s.active = 60, 70, false })
	require.Eventually(t, func() bool {
		x, err := h.m.Execution(ctx, ex.ID)
		return err == nil && x.Status == ExecSucceeded
	}, 5*time.Second, 10*time.Millisecond)
	x, err := h.m.Execution(ctx, ex.ID)
	require.NoError(t, err)
	require.EqualValues(t, 100, x.RowsIn)
	require.EqualValues(t, 100, x.RowsOut)
	require.NotNil(t, x.FinishedAt)
	_, err = eng.Get(ctx, "job")
	require.ErrorIs(t, err, engine.ErrNotFound, "a finished run's stream is deleted")

	// A run that keeps failing to connect is stopped at its error budget.
	ex2, err := h.m.Run(ctx, "job", "manual")
	require.NoError(t, err)
	eng.set("job", func(s *fakeStream) { s.stats.ConnectionFailures = 11 })
	require.Eventually(t, func() bool {
		x, err := h.m.Execution(ctx, ex2.ID)
		return err == nil && x.Status == ExecFailed
	}, 5*time.Second, 10*time.Millisecond)
	errs, err := h.store.ListPipelineErrors(ctx, metastore.ErrorFilter{PipelineID: "job"})
	require.NoError(t, err)
	require.Len(t, errs, 1)

	// Cancel.
	ex3, err := h.m.Run(ctx, "job", "manual")
	require.NoError(t, err)
	c, err := h.m.Cancel(ctx, ex3.ID)
	require.NoError(t, err)
	require.Equal(t, ExecCancelled, c.Status)
	_, err = h.m.Cancel(ctx, ex3.ID)
	require.ErrorIs(t, err, ErrNotRunning)

	// Paused pipelines do not run.
	_, err = h.m.SetState(ctx, "job", StatePaused, "")
	require.NoError(t, err)
	_, err = h.m.Run(ctx, "job", "manual")
	require.ErrorIs(t, err, ErrPaused)
	require.Subset(t, h.rec.actions(), []string{"run_pipeline", "execution_succeeded", "execution_failed", "execution_cancelled", "pause_pipeline"})
}

func TestCronStartsRunsAndSkipsOverlaps(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	h := newHarness(t, eng, t.TempDir())
	pc := batchConfig("cronjob")
	pc.Schedule = &model.Schedule{Cron: "@every 1s"}
	_, err := h.m.Create(ctx, pc, "")
	require.NoError(t, err)
	require.False(t, h.m.NextRun("cronjob").IsZero())
	require.Eventually(t, func() bool {
		_, ok := h.m.Running("cronjob")
		return ok
	}, 5*time.Second, 20*time.Millisecond)
	// The run never ends, so the next tick must be skipped, not stacked.
	require.Eventually(t, func() bool {
		for _, a := range h.rec.actions() {
			if a == "skip_scheduled_run" {
				return true
			}
		}
		return false
	}, 5*time.Second, 50*time.Millisecond)
	xs, err := h.m.Executions(ctx, "cronjob", 0)
	require.NoError(t, err)
	require.Len(t, xs, 1)
}

func TestDryRunShowsDiffAndAppliesNothing(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, newFakeEngine(), t.TempDir())
	_, err := h.m.Create(ctx, streamPC("d"), "")
	require.NoError(t, err)
	h.eng.takeCalls()
	pc := streamPC("d")
	pc.Destination.Topic = "agentetl.elsewhere"
	dr := h.m.DryRun(pc, "d")
	require.True(t, dr.Valid)
	require.Equal(t, 1, dr.CurrentVersion)
	require.Contains(t, dr.Diff, "+    subject: agentetl.elsewhere")
	require.Contains(t, dr.ConfigDiff, `"topic": "agentetl.elsewhere"`)
	require.Empty(t, h.eng.takeCalls())
	p, err := h.m.Get(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, 1, p.Version)

	bad := streamPC("d")
	bad.Source.Topic = ""
	dr = h.m.DryRun(bad, "d")
	require.False(t, dr.Valid)
	require.Equal(t, "source.topic", dr.Errors[0].Path)
	require.True(t, errors.Is(ErrNotFound, ErrNotFound))
}
