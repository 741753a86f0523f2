package orchestrator_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type apiError struct {
	Error  string `json:"error"`
	Code   string `json:"code"`
	Fields []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"fields"`
	LintErrors []struct {
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Message string `json:"message"`
	} `json:"lintErrors"`
	CurrentVersion int `json:"currentVersion"`
}

// TestBadInput: authentication, invalid configs with field paths, literal
// secrets, lint failures with line:col that apply nothing, oversized
// bodies and lost-update protection.
func TestBadInput(t *testing.T) {
	s := newSite(t, map[string]string{"SOME_DSN": "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"})
	s.start(t)

	// 401 without a token, with a wrong one, on the API and on /metrics.
	for _, tok := range []string{"", "wrong-token"} {
		for _, path := range []string{"/api/v1/pipelines", "/api/v1/decisions", "/metrics", "/api/v1/nope"} {
			req, err := http.NewRequest("GET", s.baseURL+path, nil)
			require.NoError(t, err)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := s.httpc.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s with token %q", path, tok)
			require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
		}
	}
	resp, err := s.httpc.Get(s.baseURL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "probes need no token")

	// 400 with the field path.
	var e apiError
	bad := streamPipeline("bad-one")
	bad["destination"] = map[string]any{"type": "nats", "topik": "x"}
	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/pipelines", bad, &e)
	require.Equal(t, "invalid_config", e.Code)
	require.Equal(t, "destination.topik", e.Fields[0].Path)
	require.Contains(t, e.Fields[0].Message, `did you mean "topic"`)

	bad = streamPipeline("bad-two")
	bad["transformations"] = []any{map[string]any{"type": "map", "logic": "root = this"}, map[string]any{"type": "explode"}}
	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/pipelines", bad, &e)
	require.Equal(t, "transformations[1].type", e.Fields[0].Path)

	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/pipelines", `{"name": "x", "type": batch}`, &e)
	require.Contains(t, e.Error, "malformed JSON at 1:")

	// A literal password is refused, and not echoed back.
	pg := map[string]any{
		"id": "secret", "name": "secret", "type": "batch",
		"source":      map[string]any{"type": "postgres", "table": "t", "connection": map[string]any{"dsn": "postgres://etl:s3cr3t-pw@db:5432/app"}},
		"destination": map[string]any{"type": "postgres", "table": "u", "connection": map[string]any{"dsn": "${SOME_DSN}"}},
	}
	var raw map[string]any
	code := s.call(t, "POST", "/api/v1/pipelines", pg, &raw)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, raw["error"], "source.connection.dsn")
	require.Contains(t, raw["error"], "environment variable")
	require.NotContains(t, toJSON(t, raw), "s3cr3t-pw")

	// An environment variable the engine would not have is a 400 too.
	pg["source"] = map[string]any{"type": "postgres", "table": "t", "connection": map[string]any{"dsn": "${NOT_SET_ANYWHERE}"}}
	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/pipelines", pg, &e)
	require.Equal(t, "source.connection.dsn", e.Fields[0].Path)

	// Lint failure: 400 with line:col, nothing stored, applied or written.
	lint := streamPipeline("lint-me")
	lint["transformations"] = []any{map[string]any{"type": "map", "logic": "root = this\nroot.n = this.n +"}}
	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/pipelines", lint, &e)
	require.Equal(t, "lint_failed", e.Code)
	require.NotEmpty(t, e.LintErrors)
	require.Greater(t, e.LintErrors[0].Line, 1)
	require.Greater(t, e.LintErrors[0].Column, 0)
	require.Contains(t, e.Error, "nothing was applied")
	s.mustCall(t, http.StatusNotFound, "GET", "/api/v1/pipelines/lint-me", nil, &e)
	_, err = os.Stat(filepath.Join(s.dir, "configs", "lint-me.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	var list struct {
		Count int `json:"count"`
	}
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines", nil, &list)
	require.Zero(t, list.Count)

	// Dry run: YAML, lint and diff, nothing applied.
	var dr struct {
		Valid bool   `json:"valid"`
		YAML  string `json:"yaml"`
		Lint  []any  `json:"lint"`
		Diff  string `json:"diff"`
	}
	s.mustCall(t, http.StatusOK, "POST", "/api/v1/pipelines/dry-run", lint, &dr)
	require.False(t, dr.Valid)
	require.NotEmpty(t, dr.Lint)
	require.Contains(t, dr.YAML, "root.n = this.n +")
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines", nil, &list)
	require.Zero(t, list.Count)

	// Oversized body: 413 before parsing.
	big := `{"name": "` + strings.Repeat("x", 1<<20) + `"}`
	s.mustCall(t, http.StatusRequestEntityTooLarge, "POST", "/api/v1/pipelines", big, &e)
	require.Equal(t, "body_too_large", e.Code)

	// Updates need the version they are based on; a stale one is a 409.
	s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", streamPipeline("ok"), nil)
	upd := streamPipeline("ok")
	upd["destination"] = map[string]any{"type": "nats", "topic": "agentetl.test.v2"}
	s.mustCall(t, http.StatusPreconditionRequired, "PUT", "/api/v1/pipelines/ok", upd, &e)
	s.mustCall(t, http.StatusOK, "PUT", "/api/v1/pipelines/ok?version=1", upd, nil)
	upd["destination"] = map[string]any{"type": "nats", "topic": "agentetl.test.v3"}
	s.mustCall(t, http.StatusConflict, "PUT", "/api/v1/pipelines/ok", upd, &e, "If-Match", `"1"`)
	require.Equal(t, "version_conflict", e.Code)
	require.Equal(t, 2, e.CurrentVersion)
	s.mustCall(t, http.StatusConflict, "POST", "/api/v1/pipelines", streamPipeline("ok"), &e)
	s.mustCall(t, http.StatusConflict, "POST", "/api/v1/pipelines/ok/run", nil, &e)
	require.Contains(t, e.Error, "stream pipeline")
	s.mustCall(t, http.StatusNotFound, "POST", "/api/v1/executions/nope/cancel", nil, &e)
	s.mustCall(t, http.StatusBadRequest, "POST", "/api/v1/tasks", map[string]any{"type": "cooking"}, &e)
	s.mustCall(t, http.StatusNoContent, "DELETE", "/api/v1/pipelines/ok", nil, nil)
	s.mustCall(t, http.StatusNotFound, "DELETE", "/api/v1/pipelines/ok", nil, &e)
}
