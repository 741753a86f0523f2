package orchestrator_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestDeadLetterTableAndReplay runs a pipeline whose dead letters go to a
// table through the error_resolution agent: rows the target rejects are
// stored with their fingerprint instead of failing the run; after the
// target is fixed, one fingerprint is replayed through the API and only
// those rows land, once, however often the replay is repeated.
func TestDeadLetterTableAndReplay(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), shipped text)`)
	// 2,000 rows: every 100th has a negative amount (a CHECK violation),
	// every 400th (offset 7) an unparseable date.
	db.Exec(t, `INSERT INTO orders SELECT g,
		CASE WHEN g % 100 = 0 THEN -g ELSE g * 1.5 END,
		CASE WHEN g % 400 = 7 THEN 'not a date' ELSE '2026-11-' || lpad((1 + g % 28)::text, 2, '0') END
		FROM generate_series(1, 2000) g`)
	db.Exec(t, `CREATE TABLE sales (sale_id bigint PRIMARY KEY, total numeric(12,2) CONSTRAINT total_positive CHECK (total >= 0), ship_date date)`)

	s := newSite(t, map[string]string{"PIPE_PG_DSN": db.DSN})
	s.start(t)

	mappings, err := json.Marshal([]map[string]any{
		{"sourceField": "id", "targetField": "sale_id", "confidence": 1, "mappingType": "direct"},
		{"sourceField": "amount", "targetField": "total", "confidence": 0.9, "mappingType": "direct"},
		{"sourceField": "shipped", "targetField": "ship_date", "confidence": 0.9, "mappingType": "direct"},
	})
	require.NoError(t, err)
	pc := map[string]any{
		"id": "orders-to-sales", "name": "Orders to sales", "type": "batch",
		"source": map[string]any{"type": "postgres", "table": db.Schema + ".orders",
			"connection": map[string]any{"dsn": "${PIPE_PG_DSN}", "pageSize": "500"}},
		"transformations": []any{map[string]any{"id": "rename", "type": "map", "logic": string(mappings)}},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".sales",
			"connection": map[string]any{"dsn": "${PIPE_PG_DSN}", "mode": "upsert"}},
		"errorHandling": map[string]any{"maxRetries": 2, "deadLetter": "table:" + db.Schema + ".sales_dead_letters"},
	}
	var created pipelineView
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", pc, &created)
	require.Contains(t, created.YAML, "error_resolution:")
	require.Contains(t, created.YAML, "sales_dead_letters")

	// Before any run there is nothing to replay; a pipeline without a
	// replayable dead letter and an unknown one are refused clearly.
	var rep struct {
		Replayed int `json:"replayed"`
	}
	s.mustCall(t, http.StatusOK, "POST", "/api/v1/pipelines/orders-to-sales/replay", map[string]any{}, &rep)
	require.Zero(t, rep.Replayed)
	require.Equal(t, http.StatusNotFound, s.call(t, "POST", "/api/v1/pipelines/nope/replay", nil, nil))
	plain := map[string]any{
		"id": "no-dlq", "name": "No dead letter", "type": "batch",
		"source":      pc["source"],
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".sales", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
	}
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", plain, nil)
	var errBody map[string]any
	require.Equal(t, http.StatusConflict, s.call(t, "POST", "/api/v1/pipelines/no-dlq/replay", nil, &errBody))
	require.Contains(t, errBody["error"], "table:<schema.table> or file:<path>")
	require.Equal(t, http.StatusBadRequest, s.call(t, "POST", "/api/v1/pipelines/orders-to-sales/replay",
		map[string]any{"fingerprint": "x", "unknown": 1}, nil))
	// table: needs a postgres destination and a valid table name.
	bad := map[string]any{"id": "bad-dlq", "name": "x", "type": "batch", "source": pc["source"], "destination": pc["destination"],
		"errorHandling": map[string]any{"deadLetter": "table: "}}
	require.Equal(t, http.StatusBadRequest, s.call(t, "POST", "/api/v1/pipelines", bad, &errBody))
	require.Contains(t, errBody["fields"].([]any)[0].(map[string]any)["path"], "errorHandling.deadLetter")

	// The run succeeds: 20 CHECK violations and 5 bad dates are dead
	// letters, everything else is in the target.
	var ex execution
	s.mustCall(t, http.StatusAccepted, "POST", "/api/v1/pipelines/orders-to-sales/run", nil, &ex)
	ex = s.waitExecution(t, ex.ID, 90*time.Second)
	require.Equal(t, "succeeded", ex.Status, ex.Message)
	require.EqualValues(t, 2000, ex.RowsIn)
	require.EqualValues(t, 1975, db.Int(t, `SELECT count(*) FROM sales`))
	require.EqualValues(t, 25, db.Int(t, `SELECT count(*) FROM sales_dead_letters`))
	require.EqualValues(t, 25, ex.DeadLetter, "the execution counts the dead letters")
	require.EqualValues(t, 1975, ex.RowsOut, "rows out are the rows the destination took")
	require.EqualValues(t, 2000, db.Int(t, `SELECT (SELECT count(*) FROM sales) + (SELECT count(*) FROM sales_dead_letters)`))
	require.EqualValues(t, 2, db.Int(t, `SELECT count(DISTINCT fingerprint) FROM sales_dead_letters`))

	// The errors API groups them by fingerprint and category.
	var errs struct {
		Errors []struct {
			Fingerprint string `json:"fingerprint"`
			Category    string `json:"category"`
		} `json:"errors"`
	}
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/errors?pipelineId=orders-to-sales&limit=1000", nil, &errs)
	require.NotEmpty(t, errs.Errors)
	constraintFP := db.String(t, `SELECT fingerprint FROM sales_dead_letters WHERE category = 'constraint' LIMIT 1`)
	found := false
	for _, e := range errs.Errors {
		if e.Fingerprint == constraintFP {
			found = true
			require.Equal(t, "constraint", e.Category)
		}
	}
	require.True(t, found, "the constraint fingerprint %s is listed by /api/v1/errors: %+v", constraintFP, errs.Errors)

	// Fix the target, replay only the constraint fingerprint: the 20 rows
	// land; the bad dates stay pending.
	db.Exec(t, `ALTER TABLE sales DROP CONSTRAINT total_positive`)
	s.mustCall(t, http.StatusOK, "POST", "/api/v1/pipelines/orders-to-sales/replay", map[string]any{"fingerprint": constraintFP}, &rep)
	require.Equal(t, 20, rep.Replayed)
	require.EqualValues(t, 1995, db.Int(t, `SELECT count(*) FROM sales`))
	require.EqualValues(t, -1000, db.Int(t, `SELECT total::bigint FROM sales WHERE sale_id = 1000`))
	require.EqualValues(t, 20, db.Int(t, `SELECT count(*) FROM sales_dead_letters WHERE replayed_at IS NOT NULL`))
	require.EqualValues(t, 5, db.Int(t, `SELECT count(*) FROM sales_dead_letters WHERE replayed_at IS NULL`))

	// Again: nothing left of that fingerprint, nothing written twice.
	s.mustCall(t, http.StatusOK, "POST", "/api/v1/pipelines/orders-to-sales/replay", map[string]any{"fingerprint": constraintFP}, &rep)
	require.Zero(t, rep.Replayed)
	require.EqualValues(t, 1995, db.Int(t, `SELECT count(*) FROM sales`))

	// The replay is an audited decision.
	found = false
	for _, d := range s.decisions(t, "pipelineId=orders-to-sales") {
		if d.Action == "replay" {
			found = true
			require.Contains(t, d.Reasoning, "replayed 20 dead letters")
			require.NotContains(t, d.Reasoning, "postgres://", "no DSN in the reasoning")
		}
	}
	require.True(t, found, "the replay is recorded in /api/v1/decisions")
}
