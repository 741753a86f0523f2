package orchestrator

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

type fakeBus struct {
	mu  sync.Mutex
	evs []bus.Event
}

func (f *fakeBus) Publish(_ context.Context, ev bus.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evs = append(f.evs, ev)
	return nil
}

func (f *fakeBus) subjects() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.evs {
		out = append(out, e.Subject)
	}
	return out
}

func openStore(t *testing.T, path string) metastore.Store {
	t.Helper()
	st, err := metastore.Open(context.Background(), "sqlite://"+path)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func newCoord(t *testing.T, st metastore.Store, o Options) *Coordinator {
	t.Helper()
	o.Store = st
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(o)
	require.NoError(t, err)
	require.NoError(t, c.Load(context.Background()))
	return c
}

func payload(t *testing.T, m map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestQueueOrderSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	st := openStore(t, path)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c := newCoord(t, st, Options{Now: clock})
	add := func(id string, prio int, age time.Duration) {
		_, err := c.AssignTask(ctx, model.Task{ID: id, Priority: prio, CreatedAt: now.Add(-age)}, model.AgentMapping)
		require.NoError(t, err)
	}
	add("low-old", 1, time.Hour)
	add("high-new", 9, time.Minute)
	add("high-old", 9, time.Hour)
	add("mid", 5, 0)
	_, err := c.AssignTask(ctx, model.Task{ID: "disc"}, model.AgentDiscovery)
	require.NoError(t, err)
	_, err = c.AssignTask(ctx, model.Task{}, "nonsense")
	require.ErrorIs(t, err, ErrUnknownAgentType)
	_, err = c.AssignTask(ctx, model.Task{ID: "mid"}, model.AgentMapping)
	require.ErrorIs(t, err, ErrInvalidTask, "ids are unique")

	_, err = c.Register("m1", model.AgentMapping, 1, true)
	require.NoError(t, err)
	got, ok, err := c.Claim(ctx, "m1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "high-old", got.ID)

	// kill -9: a new coordinator on the same store sees every task, in the
	// same order, and the claimed one still belongs to m1.
	st.Close()
	st2 := openStore(t, path)
	c2 := newCoord(t, st2, Options{Now: clock, HeartbeatTTL: time.Minute})
	var order []string
	for _, tk := range c2.Tasks(model.AgentMapping) {
		order = append(order, tk.ID+":"+tk.Status)
	}
	require.Equal(t, []string{"high-old:running", "high-new:queued", "mid:queued", "low-old:queued"}, order)
	_, err = c2.Register("m2", model.AgentMapping, 1, true)
	require.NoError(t, err)
	got, _, err = c2.Claim(ctx, "m2")
	require.NoError(t, err)
	require.Equal(t, "high-new", got.ID)

	// m1 never comes back: after the TTL its task is queued again, first.
	now = now.Add(2 * time.Minute)
	_, err = c2.Heartbeat("m2")
	require.NoError(t, err)
	n, err := c2.Reap(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, _, err = c2.Claim(ctx, "m2")
	require.NoError(t, err)
	require.Equal(t, "high-old", got.ID)

	w := c2.Workload()
	require.Equal(t, model.AgentDiscovery, w[0].AgentType)
	require.Equal(t, 1, w[0].Queued)
	require.Equal(t, 2, w[1].Running)
	require.Equal(t, 2, w[1].Queued)
}

func TestCompleteReleasesDependentsAndRecordsDecisions(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "meta.db"))
	fb := &fakeBus{}
	c := newCoord(t, st, Options{Bus: fb})
	savePipeline(t, st)
	plan, err := c.CoordinateAgents(ctx, "p1")
	require.NoError(t, err)
	require.Len(t, plan.Steps, 3)
	require.Equal(t, StatusQueued, plan.Steps[0].Status)
	require.Equal(t, StatusWaiting, plan.Steps[2].Status)
	require.ElementsMatch(t, []string{plan.Steps[0].TaskID, plan.Steps[1].TaskID}, plan.Steps[2].DependsOn)

	_, err = c.Register("d1", model.AgentDiscovery, 2, true)
	require.NoError(t, err)
	_, err = c.Register("m1", model.AgentMapping, 1, true)
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		tk, ok, err := c.Claim(ctx, "d1")
		require.NoError(t, err)
		require.True(t, ok)
		_, err = c.Complete(ctx, tk.ID, "d1", TaskResult{Outcome: "profiled", Confidence: 1})
		require.NoError(t, err)
		_, err = c.Complete(ctx, tk.ID, "d1", TaskResult{})
		require.ErrorIs(t, err, ErrNotAssigned, "a task completes once")
	}
	tk, ok, err := c.Claim(ctx, "m1")
	require.NoError(t, err)
	require.True(t, ok, "the mapping task is released once both discoveries are done")
	require.Equal(t, plan.Steps[2].TaskID, tk.ID)

	ds, err := st.ListAgentDecisions(ctx, metastore.DecisionFilter{PipelineID: "p1"})
	require.NoError(t, err)
	actions := map[string]int{}
	for _, d := range ds {
		actions[d.Action]++
		require.NotEmpty(t, d.Reasoning)
	}
	require.Equal(t, 1, actions["coordinate_agents"])
	require.Equal(t, 3, actions["assign_task"])
	require.Equal(t, 2, actions["complete_task"])
	require.Eventually(t, func() bool {
		n := 0
		for _, s := range fb.subjects() {
			if s == SubjectTask+".discovery" {
				n++
			}
		}
		return n >= 2
	}, 2*time.Second, 10*time.Millisecond, "remote agents are woken on agentetl.task.<type>")
}

func TestSchemaChangeSupersedesQueuedMappingAndWaitsForRunning(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "meta.db"))
	c := newCoord(t, st, Options{})
	savePipeline(t, st)
	ch := []SchemaChange{{Table: "PUBLIC.SRC", ChangeType: "column_renamed", Column: "full_name"}}
	first, err := c.OnSchemaChanges(ctx, ch)
	require.NoError(t, err)
	require.Len(t, first, 1)
	second, err := c.OnSchemaChanges(ctx, ch)
	require.NoError(t, err)
	old, err := st.GetTask(ctx, first[0].ID)
	require.NoError(t, err)
	require.Equal(t, StatusSuperseded, old.Status)

	_, err = c.Register("m1", model.AgentMapping, 1, true)
	require.NoError(t, err)
	running, _, err := c.Claim(ctx, "m1")
	require.NoError(t, err)
	require.Equal(t, second[0].ID, running.ID)
	third, err := c.OnSchemaChanges(ctx, ch)
	require.NoError(t, err)
	require.Equal(t, StatusWaiting, third[0].Status)
	require.Equal(t, []string{running.ID}, ParseEnvelope(third[0].Payload).DependsOn)
	_, err = c.Complete(ctx, running.ID, "m1", TaskResult{})
	require.NoError(t, err)
	next, ok, err := c.Claim(ctx, "m1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, third[0].ID, next.ID)

	none, err := c.OnSchemaChanges(ctx, []SchemaChange{{Table: "other.src"}})
	require.NoError(t, err)
	require.Empty(t, none, "a change to another schema's table affects nobody")
}

func TestResolveConflictRules(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "meta.db"))
	c := newCoord(t, st, Options{})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mapA := Proposal{AgentID: "map-a", AgentType: model.AgentMapping, Action: "map full_name->name", Confidence: 0.91, CreatedAt: t0}
	mapB := Proposal{AgentID: "map-b", AgentType: model.AgentMapping, Action: "map nick->name", Confidence: 0.72, CreatedAt: t0.Add(time.Second)}
	human := Proposal{AgentID: "alice", AgentType: model.AgentMapping, Action: "map nick->name", Confidence: 0.1, Human: true, CreatedAt: t0}
	pause := Proposal{AgentID: "res-1", AgentType: model.AgentResolution, Action: "pause pipeline", Confidence: 0.6, Safety: true, CreatedAt: t0}

	cases := []struct {
		name  string
		kind  string
		props []Proposal
		win   string
		rule  string
	}{
		{"confidence", ConflictTargetField, []Proposal{mapB, mapA}, "map-a", "confidence"},
		{"human beats agents", ConflictTargetField, []Proposal{mapA, human, mapB}, "alice", "human"},
		{"safety beats mapping", ConflictAdjustmentVsMapping, []Proposal{mapA, pause}, "res-1", "safety"},
		{"freshness on a tie", ConflictTargetField, []Proposal{mapA, func() Proposal { p := mapB; p.Confidence = 0.91; return p }()}, "map-b", "freshness"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.ResolveConflict(ctx, AgentConflict{Kind: tc.kind, PipelineID: "p1", Target: "name", Proposals: tc.props})
			require.NoError(t, err)
			require.Equal(t, tc.win, res.Winner.AgentID)
			require.Equal(t, tc.rule, res.Rule)
			require.Len(t, res.Rejected, len(tc.props)-1)
			require.NotEmpty(t, res.DecisionID)
			require.Contains(t, res.Reasoning, "rule "+tc.rule)
		})
	}
	ds, err := st.ListAgentDecisions(ctx, metastore.DecisionFilter{PipelineID: "p1"})
	require.NoError(t, err)
	require.Len(t, ds, len(cases))

	_, err = c.ResolveConflict(ctx, AgentConflict{Proposals: []Proposal{mapA}})
	require.ErrorIs(t, err, ErrInvalidConflict)

	// A user CEL rule overrides confidence (but never a human).
	cc := newCoord(t, st, Options{ConflictRule: `a.agentId == "map-b" && kind == "target_field"`})
	res, err := cc.ResolveConflict(ctx, AgentConflict{Kind: ConflictTargetField, Proposals: []Proposal{mapA, mapB}})
	require.NoError(t, err)
	require.Equal(t, "map-b", res.Winner.AgentID)
	require.Equal(t, "cel", res.Rule)
	res, err = cc.ResolveConflict(ctx, AgentConflict{Kind: ConflictTargetField, Proposals: []Proposal{mapB, human}})
	require.NoError(t, err)
	require.Equal(t, "alice", res.Winner.AgentID)

	_, err = New(Options{Store: st, ConflictRule: `a.confidence +`})
	require.Error(t, err)
	_, err = New(Options{Store: st, ConflictRule: `a.confidence`})
	require.ErrorContains(t, err, "bool")
}

func TestRunWorkerInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t, filepath.Join(t.TempDir(), "meta.db"))
	c := newCoord(t, st, Options{HeartbeatTTL: 3 * time.Second})
	var mu sync.Mutex
	var handled []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.RunWorker(ctx, "disc-worker", model.AgentDiscovery, 2, func(ctx context.Context, tk model.Task) (TaskResult, error) {
			mu.Lock()
			handled = append(handled, tk.ID)
			mu.Unlock()
			if tk.ID == "boom" {
				panic("agent bug")
			}
			return TaskResult{Outcome: "ok"}, nil
		})
	}()
	require.Eventually(t, func() bool { return len(c.Agents()) == 1 }, 2*time.Second, 5*time.Millisecond)
	for _, id := range []string{"t1", "t2", "boom"} {
		_, err := c.AssignTask(ctx, model.Task{ID: id, Payload: payload(t, map[string]any{"pipelineId": "p"})}, model.AgentDiscovery)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		for _, id := range []string{"t1", "t2", "boom"} {
			tk, err := st.GetTask(context.Background(), id)
			if err != nil || !final(tk.Status) {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond)
	boom, err := st.GetTask(ctx, "boom")
	require.NoError(t, err)
	require.Equal(t, StatusFailed, boom.Status)
	cancel()
	<-done
	mu.Lock()
	require.ElementsMatch(t, []string{"t1", "t2", "boom"}, handled)
	mu.Unlock()
}

func TestStoreDeduper(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "meta.db"))
	d := StoreDeduper{Store: st}
	seen, err := d.Seen(ctx, "c", "e1")
	require.NoError(t, err)
	require.False(t, seen)
	require.NoError(t, d.Mark(ctx, "c", "e1"))
	seen, err = d.Seen(ctx, "c", "e1")
	require.NoError(t, err)
	require.True(t, seen)
	seen, err = d.Seen(ctx, "other", "e1")
	require.NoError(t, err)
	require.False(t, seen, "markers are per consumer")
}

func savePipeline(t *testing.T, st metastore.Store) {
	t.Helper()
	_, err := st.SavePipelineConfig(context.Background(), metastore.PipelineConfigVersion{PipelineID: "p1", State: "active", Config: model.PipelineConfig{
		ID: "p1", Name: "p1", Type: "batch",
		Source:      model.SourceConfig{Type: "postgres", Table: "public.src", Connection: map[string]string{"dsn": "${SRC}"}},
		Destination: model.DestinationConfig{Type: "postgres", Table: "public.dst", Connection: map[string]string{"dsn": "${DST}"}},
	}})
	require.NoError(t, err)
}

// With a source resolver, a schema change reaches only the pipelines that
// read the changed table from the same source.
func TestSchemaChangeMatchesTheSource(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "meta.db"))
	c := newCoord(t, st, Options{})
	savePipeline(t, st) // p1 reads public.src from ${SRC}
	c.SetSourceResolver(func(pc model.PipelineConfig) string {
		if pc.Source.Connection["dsn"] == "${SRC}" {
			return "postgres://db-a:5432/sales"
		}
		return ""
	})
	other, err := c.OnSchemaChanges(ctx, []SchemaChange{{SourceID: "postgres://db-b:5432/sales", Table: "public.src", ChangeType: "column_added"}})
	require.NoError(t, err)
	require.Empty(t, other, "the same table name in another database is another table")
	same, err := c.OnSchemaChanges(ctx, []SchemaChange{{SourceID: "postgres://db-a:5432/sales", Table: "public.src", ChangeType: "column_added"}})
	require.NoError(t, err)
	require.Len(t, same, 1)
	unknown, err := c.OnSchemaChanges(ctx, []SchemaChange{{Table: "public.src", ChangeType: "column_added"}})
	require.NoError(t, err)
	require.Len(t, unknown, 1, "a change without a source id is matched by table")
}
