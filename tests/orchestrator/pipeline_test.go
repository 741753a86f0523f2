package orchestrator_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestPostgresToPostgresThroughTheAPI creates a pipeline whose target
// columns are named differently from the source's, runs it manually and
// on a schedule, and checks every row landed in the right column, the
// executions were recorded, and each step is in /api/v1/decisions.
func TestPostgresToPostgresThroughTheAPI(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE customers (id bigint PRIMARY KEY, full_name text NOT NULL, email text, amount numeric(12,2))`)
	db.Exec(t, `INSERT INTO customers SELECT g, 'Customer '||g, 'c'||g||'@example.com', g * 1.25 FROM generate_series(1, 3000) g`)
	db.Exec(t, `CREATE TABLE clients (client_id bigint PRIMARY KEY, name text NOT NULL, mail text, total numeric(12,2))`)
	db.Exec(t, `CREATE TABLE clients_cron (client_id bigint PRIMARY KEY, name text NOT NULL, mail text, total numeric(12,2))`)

	s := newSite(t, map[string]string{"PIPE_PG_DSN": db.DSN})
	s.start(t)

	mappings, err := json.Marshal([]map[string]any{
		{"sourceField": "id", "targetField": "client_id", "confidence": 1, "mappingType": "direct"},
		{"sourceField": "full_name", "targetField": "name", "confidence": 0.93, "mappingType": "direct"},
		{"sourceField": "email", "targetField": "mail", "confidence": 0.88, "mappingType": "direct"},
		{"sourceField": "amount", "targetField": "total", "confidence": 0.81, "mappingType": "direct"},
	})
	require.NoError(t, err)
	pc := map[string]any{
		"id": "customers-to-clients", "name": "Customers to clients", "type": "batch",
		"source": map[string]any{"type": "postgres", "table": db.Schema + ".customers",
			"connection": map[string]any{"dsn": "${PIPE_PG_DSN}", "pageSize": "500"}},
		"transformations": []any{
			map[string]any{"id": "rename", "type": "map", "logic": string(mappings)},
			map[string]any{"id": "drop-test", "type": "filter", "condition": `!this.mail.or("").has_prefix("test")`},
		},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".clients",
			"connection": map[string]any{"dsn": "${PIPE_PG_DSN}", "mode": "upsert"}},
		"errorHandling": map[string]any{"maxRetries": 5},
		"metadata":      map[string]any{"owner": "tests"},
	}
	var created pipelineView
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", pc, &created)
	require.Equal(t, 1, created.Version)
	require.Equal(t, "active", created.State)
	require.Contains(t, created.YAML, `root."client_id" = this."id"`)
	file, err := os.ReadFile(created.File)
	require.NoError(t, err, "the generated config is written to --configs-dir")
	require.Contains(t, string(file), "version 1")
	require.Contains(t, string(file), "dsn: ${PIPE_PG_DSN}")

	var ex execution
	s.mustCall(t, http.StatusAccepted, "POST", "/api/v1/pipelines/customers-to-clients/run", nil, &ex)
	// A second run while the first is in flight is refused.
	code := s.call(t, "POST", "/api/v1/pipelines/customers-to-clients/run", nil, nil)
	if code != http.StatusAccepted { // the first run may already be over
		require.Equal(t, http.StatusConflict, code)
	}
	ex = s.waitExecution(t, ex.ID, 60*time.Second)
	require.Equal(t, "succeeded", ex.Status, ex.Message)
	require.EqualValues(t, 3000, ex.RowsIn)
	require.EqualValues(t, 3000, ex.RowsOut)
	require.NotNil(t, ex.FinishedAt)
	require.EqualValues(t, 3000, db.Int(t, `SELECT count(*) FROM clients`))
	require.Equal(t, "Customer 42|c42@example.com|52.50",
		db.String(t, `SELECT name||'|'||mail||'|'||total FROM clients WHERE client_id = 42`))

	// New rows: the next run loads only them (the source's checkpoint).
	db.Exec(t, `INSERT INTO customers SELECT g, 'Customer '||g, 'c'||g||'@example.com', g FROM generate_series(3001, 3100) g`)
	db.Exec(t, `INSERT INTO customers VALUES (3101, 'Tester', 'test@example.com', 1)`)
	s.mustCall(t, http.StatusAccepted, "POST", "/api/v1/pipelines/customers-to-clients/run", nil, &ex)
	ex = s.waitExecution(t, ex.ID, 60*time.Second)
	require.Equal(t, "succeeded", ex.Status, ex.Message)
	require.EqualValues(t, 101, ex.RowsIn)
	require.EqualValues(t, 100, ex.RowsOut, "the filter drops the test address")
	require.EqualValues(t, 3100, db.Int(t, `SELECT count(*) FROM clients`))

	var list struct {
		Executions []execution `json:"executions"`
	}
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/customers-to-clients/executions", nil, &list)
	require.Len(t, list.Executions, 2)

	// A scheduled pipeline runs by itself.
	cronPC := map[string]any{
		"id": "cron-copy", "name": "cron copy", "type": "batch",
		"source":          map[string]any{"type": "postgres", "table": db.Schema + ".customers", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
		"transformations": []any{map[string]any{"type": "map", "logic": string(mappings)}},
		"destination":     map[string]any{"type": "postgres", "table": db.Schema + ".clients_cron", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
		"schedule":        map[string]any{"cron": "@every 1s"},
	}
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", cronPC, nil)
	require.Eventually(t, func() bool {
		var l struct {
			Executions []execution `json:"executions"`
		}
		s.mustCall(t, http.StatusOK, "GET", "/api/v1/executions?pipelineId=cron-copy", nil, &l)
		for _, e := range l.Executions {
			if e.Status == "succeeded" && strings.HasPrefix(e.Message, "read 3101 rows") {
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond)
	require.EqualValues(t, 3101, db.Int(t, `SELECT count(*) FROM clients_cron`))
	var pause pipelineView
	s.mustCall(t, http.StatusOK, "POST", "/api/v1/pipelines/cron-copy/pause", nil, &pause)
	require.Equal(t, "paused", pause.State)

	acts := actions(s.decisions(t, "pipelineId=customers-to-clients"))
	require.Equal(t, 1, acts["create_pipeline"])
	require.Equal(t, 2, acts["run_pipeline"])
	require.Equal(t, 2, acts["execution_succeeded"])

	// The metrics saw it too.
	req, err := http.NewRequest("GET", s.baseURL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.httpc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := new(strings.Builder)
	_, _ = ioCopy(buf, resp)
	require.Contains(t, buf.String(), `agentetl_orchestrator_executions_total{status="succeeded"}`)
	require.Contains(t, buf.String(), `agentetl_orchestrator_pipelines{state="active",type="batch"} 1`)
}
