package resolution_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/resolution"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

func openStore(t *testing.T) metastore.Store {
	t.Helper()
	st, err := metastore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "meta.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestRulesDecideAndInvalidRulesReportPosition(t *testing.T) {
	rules, err := resolution.CompileRules([]resolution.Rule{
		{Name: "us-constraints", When: `error.sqlstate.startsWith("23") && record.country == "US"`, Strategy: model.StrategySkip},
		{Name: "escalate-eu", When: `error.category == "constraint" && has(record.country) && record.country == "DE"`, Strategy: model.StrategyEscalate, Category: "constraint"},
	})
	require.NoError(t, err)
	require.Equal(t, 2, rules.Len())
	agent := resolution.New(resolution.Config{Rules: rules})
	ctx := context.Background()
	pgErr := &pgconn.PgError{Code: "23505", Message: `duplicate key value violates unique constraint "t_pkey"`}
	rec, err := agent.CaptureGoError(ctx, pgErr, model.PipelineError{}, "out", nil)
	require.NoError(t, err)
	d := agent.Diagnose(ctx, rec, map[string]any{"country": "US", "id": json.Number("7")})
	require.Equal(t, model.StrategySkip, d.Strategy)
	require.Equal(t, "us-constraints", d.Rule)
	d = agent.Diagnose(ctx, rec, map[string]any{"country": "DE"})
	require.Equal(t, model.StrategyEscalate, d.Strategy)
	require.Equal(t, "escalate-eu", d.Rule)
	// A record without the field does not match (and does not crash).
	d = agent.Diagnose(ctx, rec, map[string]any{"id": 1})
	require.Empty(t, d.Rule)
	require.Equal(t, model.StrategySkip, d.Strategy, "constraint default")

	_, err = resolution.CompileRules([]resolution.Rule{
		{Name: "fine", When: `true`, Strategy: "skip"},
		{Name: "typo", When: "error.sqlstate.startsWith(\"23\") &&\n  record.country = \"US\"", Strategy: "skip"},
		{Name: "bad strategy", When: `true`, Strategy: "ignore"},
		{Name: "not bool", When: `"text"`, Strategy: "skip"},
		{Name: "unknown var", When: `row.x == 1`, Strategy: "skip"},
	})
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "rule 2 (typo): when: line 2, column 18")
	require.Contains(t, msg, `rule 3 (bad strategy): strategy "ignore"`)
	require.Contains(t, msg, "rule 4 (not bool)")
	require.Contains(t, msg, "rule 5 (unknown var): when: line 1, column 1: undeclared reference to 'row'")
	require.NotContains(t, msg, "rule 1 ")
}

// A fingerprint whose retries never succeeded stops being retried, and the
// history survives in the store across agents (runs).
func TestHistoryStopsFutileRetries(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	timeoutErr := &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}
	run := func() resolution.Diagnosis {
		agent := resolution.New(resolution.Config{Store: st, Retry: resolution.RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond}})
		rec, err := agent.CaptureGoError(ctx, timeoutErr, model.PipelineError{PipelineID: "p"}, "out", nil)
		require.NoError(t, err)
		d, err := agent.DiagnoseError(ctx, rec)
		require.NoError(t, err)
		if d.Strategy == model.StrategyRetry {
			res, err := agent.ResolveError(ctx, d, resolution.Operations{Retry: func(context.Context) error { return timeoutErr }})
			require.Error(t, err)
			require.False(t, res.Success)
		}
		return d
	}
	for i := 0; i < 3; i++ {
		d := run()
		require.Equal(t, model.StrategyRetry, d.Strategy, "run %d", i)
		require.True(t, d.Transient)
	}
	d := run()
	require.Equal(t, model.StrategyEscalate, d.Strategy)
	require.False(t, d.Transient)
	require.Contains(t, d.Reasoning, "never succeeded")
	require.NotNil(t, d.History)
	require.Equal(t, int64(4), d.History.Count)
	require.Len(t, d.Similar, 3, "earlier occurrences are similar errors")

	stats, err := st.GetFingerprintStats(ctx, d.Fingerprint)
	require.NoError(t, err)
	require.Equal(t, metastore.StrategyStats{Attempts: 3}, stats.Strategies[model.StrategyRetry])
	decisions, err := st.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: model.AgentResolution})
	require.NoError(t, err)
	require.Len(t, decisions, 3, "one decision per retry resolution")
	for _, dec := range decisions {
		require.Equal(t, "failed", dec.Outcome)
	}
}

func TestResolveSkipAndEscalate(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	var hooks atomic.Int32
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Add(1)
		body = make([]byte, r.ContentLength)
		_, _ = r.Body.Read(body)
	}))
	defer srv.Close()
	var dead []resolution.DeadLetter
	agent := resolution.New(resolution.Config{Store: st, WebhookURL: srv.URL,
		DeadLetters: resolution.SinkFunc(func(_ context.Context, dls []resolution.DeadLetter) error {
			dead = append(dead, dls...)
			return nil
		})})
	rec, err := agent.CaptureError(ctx, model.PipelineError{PipelineID: "p", Message: `ERROR: value too long for type character varying(5) (SQLSTATE 22001)`,
		Context: model.ErrorContext{Record: map[string]any{"name": "much too long"}}}, resolution.Hints{})
	require.NoError(t, err)
	d, err := agent.DiagnoseError(ctx, rec)
	require.NoError(t, err)
	require.Equal(t, model.StrategySkip, d.Strategy)
	res, err := agent.ResolveError(ctx, d, resolution.Operations{})
	require.NoError(t, err)
	require.True(t, res.Success)
	require.Len(t, dead, 1)
	require.Equal(t, resolution.CategoryDataType, dead[0].Category)
	require.JSONEq(t, `{"name":"much too long"}`, string(dead[0].Payload))
	require.Equal(t, d.Fingerprint, dead[0].Fingerprint)

	rec, err = agent.CaptureError(ctx, model.PipelineError{PipelineID: "p", Message: `FATAL: password authentication failed for user "etl"`}, resolution.Hints{SQLState: "28P01"})
	require.NoError(t, err)
	d, err = agent.DiagnoseError(ctx, rec)
	require.NoError(t, err)
	require.Equal(t, model.StrategyEscalate, d.Strategy)
	res, err = agent.ResolveError(ctx, d, resolution.Operations{})
	require.NoError(t, err)
	require.True(t, res.Success)
	require.Equal(t, int32(1), hooks.Load())
	require.Contains(t, string(body), `"category":"authentication"`)
	tasks, err := st.ListTasks(ctx, metastore.TaskFilter{Type: model.TaskErrorResolution})
	require.NoError(t, err)
	require.Len(t, tasks, 1, "the escalation is queued for a human")
	rs, err := st.ListResolutions(ctx, "")
	require.NoError(t, err)
	require.Len(t, rs, 2)
	errs, err := st.ListPipelineErrors(ctx, metastore.ErrorFilter{PipelineID: "p"})
	require.NoError(t, err)
	require.Len(t, errs, 2)
	for _, e := range errs {
		require.NotEmpty(t, e.Fingerprint)
		require.NotEmpty(t, e.Category)
	}
}

func TestRetryPolicyBounds(t *testing.T) {
	p := resolution.RetryPolicy{MaxAttempts: 50, InitialInterval: 10 * time.Millisecond, MaxInterval: 40 * time.Millisecond,
		MaxElapsed: 150 * time.Millisecond, Multiplier: 2, Jitter: 0.5}
	for n := 1; n < 10; n++ {
		d := p.Delay(n)
		require.LessOrEqual(t, d, 60*time.Millisecond)
		require.GreaterOrEqual(t, d, 5*time.Millisecond)
	}
	start := time.Now()
	n, err := resolution.Retrier{Policy: p, Retryable: func(error) bool { return true }}.Do(context.Background(),
		func(context.Context, int) error { return errors.New("still down") })
	require.Error(t, err)
	require.Less(t, time.Since(start), 200*time.Millisecond, "bounded by total time")
	require.Less(t, n, 50)
	n, err = resolution.Retrier{Policy: resolution.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond}}.Do(context.Background(),
		func(context.Context, int) error { return errors.New("ERROR: deadlock detected (SQLSTATE 40P01)") })
	require.Error(t, err)
	require.Equal(t, 3, n, "bounded by attempts")
	n, err = resolution.Retrier{}.Do(context.Background(), func(context.Context, int) error {
		return errors.New(`ERROR: value too long for type character varying(4) (SQLSTATE 22001)`)
	})
	require.Error(t, err)
	require.Equal(t, 1, n, "data errors are not retried")
	_ = strings.TrimSpace
}
