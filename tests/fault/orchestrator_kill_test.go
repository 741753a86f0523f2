package fault_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

type faultExecution struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	RowsIn     int64  `json:"rowsIn"`
	RowsOut    int64  `json:"rowsOut"`
	DeadLetter int64  `json:"deadLetter"`
	Message    string `json:"message"`
}

// TestOrchestratorKillNine: a batch pipeline is created through the API
// (postgres to postgres, upsert, dead letters in a table, one poison row in
// every 1,000) and run; while a batch is held half written, the
// orchestrator is killed with SIGKILL, which takes its engine with it. A new
// orchestrator on the same data directory recovers the execution, the
// source resumes from its checkpoint, and the run finishes with every row
// in the target or the dead letter exactly once.
func TestOrchestratorKillNine(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const rows, heldID = 40_000, 20_500
	db := testpg.NewSchema(t)
	seedSource(t, db.Pool, "src", rows, true)
	createTarget(t, db.Pool, "dst", true)
	installGate(t, db.Pool, db.Schema, "dst", heldID)

	app := testpg.RandName("fault_orch_")
	s := newOrchSite(t, map[string]string{
		"FAULT_SRC_DSN": db.DSN,
		"FAULT_DST_DSN": withApp(db.DSN, app),
	})
	orch := s.start(t)
	pipeline := map[string]any{
		"id": "fault-orch", "name": "fault injection: orchestrator kill", "type": "batch",
		"source": map[string]any{"type": "postgres", "table": db.Schema + ".src",
			"connection": map[string]any{"dsn": "${FAULT_SRC_DSN}", "pageSize": "1000"}},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".dst",
			"connection": map[string]any{"dsn": "${FAULT_DST_DSN}", "mode": "upsert"}},
		"transformations": []any{},
		"errorHandling":   map[string]any{"deadLetter": "table:" + db.Schema + ".dlq", "maxRetries": 20},
		"metadata":        map[string]any{"owner": "tests/fault"},
	}
	var created map[string]any
	require.Equal(t, http.StatusCreated, s.call(t, "POST", "/api/v1/pipelines", pipeline, &created), "%v", created)
	var ex faultExecution
	require.Equal(t, http.StatusAccepted, s.call(t, "POST", "/api/v1/pipelines/fault-orch/run", nil, &ex), "%+v", ex)

	waitHeld(t, db.Pool, app, orch, 90*time.Second)
	// The batch after the held one commits (two in flight) but cannot be
	// checkpointed: the recovered run sends it again.
	waitUntil(t, 30*time.Second, orch, "the batch after the held one committed", func() bool {
		return queryInt(t, db.Pool, `SELECT count(*) FROM dst WHERE id > 21000 AND id <= 22000`) > 0
	})
	engine, _ := testutil.ChildPID(orch.cmd.Process.Pid, "agentetl")
	require.NotZero(t, engine, "the orchestrator runs an engine")
	orch.kill9(t)
	waitUntil(t, 15*time.Second, nil, "the engine dying with its orchestrator", func() bool { return !testutil.Alive(engine) })
	setGate(t, db.Pool, db.Schema, false)
	terminate(t, db.Pool, app)
	waitUntil(t, 15*time.Second, nil, "the killed engine's connections gone", func() bool { return backends(t, db.Pool, app) == 0 })
	atKill := queryInt(t, db.Pool, `SELECT count(*) FROM dst`)
	t.Logf("orchestrator SIGKILL after %s with %d rows in the target", time.Since(start).Round(time.Millisecond), atKill)
	require.Less(t, atKill, int64(rows), "the kill landed before the run finished")

	s.start(t)
	deadline := time.Now().Add(120 * time.Second)
	for {
		require.Equal(t, http.StatusOK, s.call(t, "GET", "/api/v1/executions/"+ex.ID, nil, &ex))
		if ex.Status != "running" {
			break
		}
		require.Truef(t, time.Now().Before(deadline), "execution %s still running after the restart: %+v", ex.ID, ex)
		time.Sleep(100 * time.Millisecond)
	}
	require.Equalf(t, "succeeded", ex.Status, "the recovered run: %s", ex.Message)
	var decisions struct {
		Decisions []struct {
			Action string `json:"action"`
		} `json:"decisions"`
	}
	require.Equal(t, http.StatusOK, s.call(t, "GET", "/api/v1/decisions?pipelineId=fault-orch&action=recover_execution", nil, &decisions))
	require.NotEmpty(t, decisions.Decisions, "the new orchestrator recovered the execution that was running")

	src := queryStrings(t, db.Pool, `SELECT id::text FROM src`)
	dst := queryStrings(t, db.Pool, `SELECT id::text FROM dst`)
	dead := queryStrings(t, db.Pool, `SELECT payload->>'id' FROM dlq`)
	report(t, "orchestrator_kill9", start, account(src, dst, dead))
	require.ElementsMatch(t, queryStrings(t, db.Pool, `SELECT id::text FROM src WHERE `+poisonWhere), dead,
		"exactly the poison rows are dead letters")
	_, want := orderedMD5(t, db.Pool, `SELECT * FROM src WHERE NOT (`+poisonWhere+`)`)
	_, got := orderedMD5(t, db.Pool, `SELECT * FROM dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
