package orchestrator_test

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

// TestKillNineEngineAndOrchestrator: kill -9 of the engine makes the
// orchestrator start a new one and re-apply every stream; kill -9 of the
// orchestrator (which takes its engine with it) followed by a restart loses
// no pipeline and no task, and a batch run that was in flight finishes.
func TestKillNineEngineAndOrchestrator(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE src (id bigint PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO src SELECT g, 'v'||g FROM generate_series(1, 20000) g`)
	db.Exec(t, `CREATE TABLE dst (id bigint PRIMARY KEY, v text)`)

	// The automatic loop is off: this test checks that a queued mapping
	// task survives a restart, which the in-process mapping worker would
	// otherwise take.
	s := newSite(t, map[string]string{"PIPE_PG_DSN": db.DSN}, "--auto-loop=false")
	p := s.start(t)
	ids := []string{"s-one", "s-two", "s-three"}
	for _, id := range ids {
		s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", streamPipeline(id), nil)
	}
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", map[string]any{
		"id": "copy", "name": "copy", "type": "batch",
		"source":      map[string]any{"type": "postgres", "table": db.Schema + ".src", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}", "pageSize": "200"}},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".dst", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
	}, nil)
	var task struct {
		Task struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"task"`
	}
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/tasks", map[string]any{"type": "mapping", "priority": 7, "payload": map[string]any{"pipelineId": "copy"}}, &task)
	require.Equal(t, "queued", task.Task.Status)

	uptimes := func() map[string]float64 {
		out := map[string]float64{}
		for _, id := range ids {
			var pv pipelineView
			s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/"+id, nil, &pv)
			if pv.Engine != nil && pv.Engine.Present && pv.Engine.Active {
				out[id] = pv.Engine.Uptime
			}
		}
		return out
	}
	require.Len(t, uptimes(), 3)
	time.Sleep(1200 * time.Millisecond)
	before := uptimes()

	// kill -9 the engine.
	engine := p.enginePID(t)
	require.NotZero(t, engine)
	require.NoError(t, syscall.Kill(engine, syscall.SIGKILL))
	var after map[string]float64
	require.Eventually(t, func() bool {
		np := p.enginePID(t)
		if np == 0 || np == engine {
			return false
		}
		after = uptimes()
		return len(after) == 3
	}, 30*time.Second, 100*time.Millisecond, "a new engine must run every stream again")
	for _, id := range ids {
		require.Less(t, after[id], before[id], "%s was re-created in the new engine", id)
	}
	// The pass records its decision once every stream is back.
	require.Eventually(t, func() bool {
		return actions(s.decisions(t, "action=reconcile_engine"))["reconcile_engine"] > 0
	}, 10*time.Second, 50*time.Millisecond)

	// A batch run in flight, then kill -9 the orchestrator.
	var ex execution
	s.mustCall(t, http.StatusAccepted, "POST", "/api/v1/pipelines/copy/run", nil, &ex)
	engine = p.enginePID(t)
	p.kill9(t)
	require.Eventually(t, func() bool { return !testutil.Alive(engine) }, 10*time.Second, 50*time.Millisecond,
		"the engine dies with its orchestrator")

	p = s.start(t)
	var list struct {
		Pipelines []pipelineView `json:"pipelines"`
		Count     int            `json:"count"`
	}
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines", nil, &list)
	require.Equal(t, 4, list.Count)
	var tk struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Priority int    `json:"priority"`
	}
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/tasks/"+task.Task.ID, nil, &tk)
	require.Equal(t, "queued", tk.Status)
	require.Equal(t, 7, tk.Priority)
	require.Eventually(t, func() bool { return len(uptimes()) == 3 }, 30*time.Second, 100*time.Millisecond)

	ex = s.waitExecution(t, ex.ID, 60*time.Second)
	require.Equal(t, "succeeded", ex.Status, ex.Message)
	require.EqualValues(t, 20000, db.Int(t, `SELECT count(*) FROM dst`), "the interrupted run resumed from its checkpoint and loaded every row")
	require.Contains(t, actions(s.decisions(t, "pipelineId=copy")), "recover_execution")
}
