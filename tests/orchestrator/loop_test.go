package orchestrator_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestAutomaticLoopAdaptsToARename is the end-to-end loop with
// real processes (orchestrator, spawned engine, embedded NATS) and real
// PostgreSQL tables: a pipeline created without any mapping, onto a target
// whose column names differ, is mapped by discovery + the mapping agent;
// a run loads every row; a column of the source is renamed and rows are
// added; the change is detected, the mapping adapted and applied as a new
// version without a human, and the next run puts the new rows' values in
// the right target column. Every step is in /api/v1/decisions.
func TestAutomaticLoopAdaptsToARename(t *testing.T) {
	start := time.Now()
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE customers (cust_id bigint PRIMARY KEY, cust_name text NOT NULL, email_addr text, amt numeric(12,2))`)
	db.Exec(t, `INSERT INTO customers SELECT g, 'Customer '||g, 'c'||g||'@example.com', g * 1.25 FROM generate_series(1, 500) g`)
	db.Exec(t, `CREATE TABLE clients (customer_id bigint PRIMARY KEY, customer_name text NOT NULL, email_address text, amount numeric(12,2))`)

	s := newSite(t, map[string]string{"PIPE_PG_DSN": db.DSN}, "--discovery-interval", "500ms")
	s.start(t)

	const id = "auto-customers"
	var created pipelineView
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", map[string]any{
		"id": id, "name": "automatically mapped customers", "type": "batch",
		"source": map[string]any{"type": "postgres", "table": db.Schema + ".customers",
			"connection": map[string]any{"dsn": "${PIPE_PG_DSN}", "keyColumn": "cust_id", "pageSize": "200"}},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".clients",
			"connection": map[string]any{"dsn": "${PIPE_PG_DSN}", "mode": "upsert"}},
	}, &created)
	require.Equal(t, 1, created.Version)
	require.NotContains(t, created.YAML, "mapping:", "the pipeline is created without a mapping")

	// Discovery catalogs the table, the coordinator makes a mapping task,
	// the mapping agent applies an all-accepted mapping as version 2.
	var pv pipelineView
	require.Eventually(t, func() bool {
		s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/"+id, nil, &pv)
		return pv.Version >= 2
	}, 15*time.Second, 100*time.Millisecond, "the loop did not map the pipeline")
	require.Equal(t, "active", pv.State)
	require.Contains(t, pv.YAML, `root."email_address" = this."email_addr"`)
	require.Contains(t, pv.YAML, `root."customer_id" = this."cust_id"`)
	mappedVersion := pv.Version
	t.Logf("mapped as version %d after %s", mappedVersion, time.Since(start).Round(time.Millisecond))

	var ex execution
	s.mustCall(t, http.StatusAccepted, "POST", "/api/v1/pipelines/"+id+"/run", nil, &ex)
	ex = s.waitExecution(t, ex.ID, 30*time.Second)
	require.Equal(t, "succeeded", ex.Status, ex.Message)
	require.EqualValues(t, 500, ex.RowsOut)
	require.EqualValues(t, 500, db.Int(t, `SELECT count(*) FROM clients`))
	require.Equal(t, "Customer 42|c42@example.com|52.50",
		db.String(t, `SELECT customer_name||'|'||email_address||'|'||amount FROM clients WHERE customer_id = 42`))

	// The source changes under the pipeline.
	db.Exec(t, `ALTER TABLE customers RENAME COLUMN email_addr TO customer_email`)
	db.Exec(t, `INSERT INTO customers SELECT g, 'Customer '||g, 'new'||g||'@example.com', g FROM generate_series(501, 550) g`)

	require.Eventually(t, func() bool {
		s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/"+id, nil, &pv)
		return pv.Version > mappedVersion
	}, 15*time.Second, 100*time.Millisecond, "the rename was not adapted")
	require.Equal(t, "active", pv.State, "an accepted adaptation does not pause the pipeline")
	require.Contains(t, pv.YAML, `root."email_address" = this."customer_email"`)
	require.NotContains(t, pv.YAML, "email_addr\"")
	t.Logf("rename adapted as version %d after %s", pv.Version, time.Since(start).Round(time.Millisecond))

	s.mustCall(t, http.StatusAccepted, "POST", "/api/v1/pipelines/"+id+"/run", nil, &ex)
	ex = s.waitExecution(t, ex.ID, 30*time.Second)
	require.Equal(t, "succeeded", ex.Status, ex.Message)
	require.EqualValues(t, 50, ex.RowsOut, "the next run loads only the new rows")
	require.EqualValues(t, 550, db.Int(t, `SELECT count(*) FROM clients`))
	require.Equal(t, "new542@example.com", db.String(t, `SELECT email_address FROM clients WHERE customer_id = 542`),
		"the renamed column lands in the right target column")
	require.EqualValues(t, 0, db.Int(t, `SELECT count(*) FROM clients WHERE email_address IS NULL`))

	// Every step is in the audit log, for this pipeline.
	ds := s.decisions(t, "pipelineId="+id+"&limit=1000")
	acts := actions(ds)
	require.Equal(t, 1, acts["create_pipeline"])
	require.GreaterOrEqual(t, acts["schema_change_detected"], 2, "table_added and column_renamed")
	require.GreaterOrEqual(t, acts["schema_change_to_mapping"], 2)
	require.GreaterOrEqual(t, acts["mapping_applied"], 2)
	require.GreaterOrEqual(t, acts["update_pipeline"], 2)
	require.Equal(t, 2, acts["execution_succeeded"])
	renamed := false
	for _, d := range ds {
		if d.Action == "mapping_applied" && strings.Contains(d.Reasoning, `rename of "email_addr" -> "customer_email"`) {
			renamed = true
		}
	}
	require.True(t, renamed, "the mapping agent says it adapted the rename")
	var reviews struct {
		Count int `json:"count"`
	}
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/reviews?status=pending_review", nil, &reviews)
	require.Zero(t, reviews.Count, "nothing needed a human")
	t.Logf("loop test took %s", time.Since(start).Round(time.Millisecond))
}

// TestAutomaticLoopReviewQueue: a mapping below the accept threshold is
// not applied; it becomes a review item and pauses only its pipeline. A
// rejection keeps it paused and records the pair as rejected; approving
// the next review applies the mapping, resumes the pipeline and records the
// pairs as accepted in the mapping history.
func TestAutomaticLoopReviewQueue(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE orders (id bigint PRIMARY KEY, qty integer)`)
	db.Exec(t, `INSERT INTO orders SELECT g, g % 7 FROM generate_series(1, 100) g`)
	db.Exec(t, `CREATE TABLE order_copy (order_ref bigint PRIMARY KEY, quantity integer)`)

	s := newSite(t, map[string]string{"PIPE_PG_DSN": db.DSN}, "--discovery-interval", "500ms")
	s.start(t)
	const id = "review-orders"
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", map[string]any{
		"id": id, "name": "orders needing review", "type": "batch",
		"source":      map[string]any{"type": "postgres", "table": db.Schema + ".orders", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".order_copy", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
	}, nil)

	type review struct {
		ID             string   `json:"id"`
		PipelineID     string   `json:"pipelineId"`
		Status         string   `json:"status"`
		Reasons        []string `json:"reasons"`
		AppliedVersion int      `json:"appliedVersion"`
	}
	var list struct {
		Reviews []review `json:"reviews"`
	}
	require.Eventually(t, func() bool {
		s.mustCall(t, http.StatusOK, "GET", "/api/v1/reviews?status=pending_review", nil, &list)
		return len(list.Reviews) == 1
	}, 15*time.Second, 100*time.Millisecond, "no review item was opened")
	rv := list.Reviews[0]
	require.Equal(t, id, rv.PipelineID)
	require.Contains(t, strings.Join(rv.Reasons, "; "), "order_ref")
	var pv pipelineView
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/"+id, nil, &pv)
	require.Equal(t, "paused", pv.State, "the review pauses the pipeline")
	require.Equal(t, 1, pv.Version, "nothing was applied")
	require.Equal(t, http.StatusConflict, s.call(t, "POST", "/api/v1/pipelines/"+id+"/run", nil, nil))

	s.mustCall(t, http.StatusNotFound, "POST", "/api/v1/reviews/nope/approve", nil, nil)
	s.mustCall(t, http.StatusBadRequest, "GET", "/api/v1/reviews?status=bogus", nil, nil)

	var got review
	s.mustCall(t, http.StatusOK, "POST", "/api/v1/reviews/"+rv.ID+"/approve", map[string]any{"reviewer": "alice", "comment": "order_ref is the order id"}, &got)
	require.Equal(t, "approved", got.Status)
	require.Equal(t, 2, got.AppliedVersion)
	s.mustCall(t, http.StatusConflict, "POST", "/api/v1/reviews/"+rv.ID+"/reject", nil, nil)
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/"+id, nil, &pv)
	require.Equal(t, "active", pv.State)
	require.Contains(t, pv.YAML, `root."order_ref" = this."id"`)

	var ex execution
	s.mustCall(t, http.StatusAccepted, "POST", "/api/v1/pipelines/"+id+"/run", nil, &ex)
	ex = s.waitExecution(t, ex.ID, 30*time.Second)
	require.Equal(t, "succeeded", ex.Status, ex.Message)
	require.EqualValues(t, 100, db.Int(t, `SELECT count(*) FROM order_copy`))

	acts := actions(s.decisions(t, "pipelineId="+id+"&limit=1000"))
	require.Equal(t, 1, acts["mapping_review_requested"])
	require.Equal(t, 1, acts["pause_pipeline"])
	require.Equal(t, 1, acts["review_approved"])
	require.Equal(t, 1, acts["resume_pipeline"])
	require.GreaterOrEqual(t, acts["mapping.accepted"], 1, "the approval feeds the mapping history")
}

// TestAutomaticLoopReviewEdit: a reviewer corrects the proposed mapping
// through the API — here adding a source for a target field the agent left
// unmapped — and the edited mapping is applied, run and recorded.
func TestAutomaticLoopReviewEdit(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE orders (id bigint PRIMARY KEY, qty integer)`)
	db.Exec(t, `INSERT INTO orders SELECT g, g % 7 FROM generate_series(1, 100) g`)
	db.Exec(t, `CREATE TABLE order_copy (order_ref bigint PRIMARY KEY, quantity integer, qty_audit integer)`)

	s := newSite(t, map[string]string{"PIPE_PG_DSN": db.DSN}, "--discovery-interval", "500ms")
	s.start(t)
	const id = "edit-orders"
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", map[string]any{
		"id": id, "name": "orders edited in review", "type": "batch",
		"source":      map[string]any{"type": "postgres", "table": db.Schema + ".orders", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".order_copy", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
	}, nil)
	var list struct {
		Reviews []struct {
			ID string `json:"id"`
		} `json:"reviews"`
	}
	require.Eventually(t, func() bool {
		s.mustCall(t, http.StatusOK, "GET", "/api/v1/reviews?status=pending_review", nil, &list)
		return len(list.Reviews) == 1
	}, 15*time.Second, 100*time.Millisecond, "no review item was opened")
	rid := list.Reviews[0].ID

	edit := func(src, tgt string) map[string]any {
		return map[string]any{"reviewer": "bob", "mappings": []map[string]any{
			{"targetField": "order_ref", "sourceField": "id"},
			{"targetField": tgt, "sourceField": src},
		}}
	}
	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/reviews/"+rid+"/edit", edit("nope", "qty_audit"), nil)
	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/reviews/"+rid+"/edit", edit("qty", "no_such_target"), nil)
	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/reviews/"+rid+"/edit", map[string]any{"mappings": []any{}}, nil)

	var got struct {
		Status         string `json:"status"`
		AppliedVersion int    `json:"appliedVersion"`
	}
	s.mustCall(t, http.StatusOK, "POST", "/api/v1/reviews/"+rid+"/edit", edit("qty", "qty_audit"), &got)
	require.Equal(t, "approved", got.Status)
	require.Equal(t, 2, got.AppliedVersion)
	var pv pipelineView
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/"+id, nil, &pv)
	require.Equal(t, "active", pv.State)
	require.Contains(t, pv.YAML, `root."qty_audit" = this."qty"`)

	var ex execution
	s.mustCall(t, http.StatusAccepted, "POST", "/api/v1/pipelines/"+id+"/run", nil, &ex)
	ex = s.waitExecution(t, ex.ID, 30*time.Second)
	require.Equal(t, "succeeded", ex.Status, ex.Message)
	require.EqualValues(t, 100, db.Int(t, `SELECT count(*) FROM order_copy o JOIN orders s ON s.id = o.order_ref WHERE o.qty_audit = s.qty`))
	acts := actions(s.decisions(t, "pipelineId="+id+"&limit=1000"))
	require.Equal(t, 1, acts["review_approved"])
	require.GreaterOrEqual(t, acts["mapping.accepted"], 2, "the edited pairs feed the mapping history")
}
