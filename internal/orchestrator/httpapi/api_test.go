package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func do(h http.Handler, method, path, token, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestAPIAuthErrorsAndList(t *testing.T) {
	h := newTestAPI(t, 3)
	require.Equal(t, http.StatusUnauthorized, do(h, "GET", "/api/v1/pipelines", "", "").Code)
	require.Equal(t, http.StatusUnauthorized, do(h, "GET", "/api/v1/pipelines", "x", "").Code)
	require.Equal(t, http.StatusUnauthorized, do(h, "GET", "/metrics", "", "").Code)
	require.Equal(t, http.StatusOK, do(h, "GET", "/healthz", "", "").Code)

	w := do(h, "GET", "/api/v1/pipelines", "t", "")
	require.Equal(t, http.StatusOK, w.Code)
	var list struct {
		Count     int              `json:"count"`
		Pipelines []map[string]any `json:"pipelines"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Equal(t, 3, list.Count)
	require.NotContains(t, list.Pipelines[0], "yaml", "the list omits YAML")

	w = do(h, "POST", "/api/v1/pipelines", "t", `{"id": "x", "source": {"tabel": 1}}`)
	require.Equal(t, http.StatusBadRequest, w.Code)
	var e struct {
		Code   string `json:"code"`
		Fields []struct {
			Path string `json:"path"`
		} `json:"fields"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
	require.Equal(t, "invalid_config", e.Code)
	require.Equal(t, "source.tabel", e.Fields[0].Path)

	w = do(h, "POST", "/api/v1/pipelines", "t", strings.Repeat(" ", MaxBody+1))
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code)

	w = do(h, "POST", "/api/v1/conflicts", "t", `{"kind": "target_field", "target": "name", "proposals": [
		{"agentId": "a", "agentType": "mapping", "action": "x", "confidence": 0.4},
		{"agentId": "b", "agentType": "mapping", "action": "y", "confidence": 0.9}]}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `"rule":"confidence"`)

	w = do(h, "POST", "/api/v1/agents", "t", `{"id": "remote-1", "type": "mapping", "capacity": 2}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = do(h, "POST", "/api/v1/tasks", "t", `{"type": "mapping", "priority": 3, "payload": {"pipelineId": "p000"}}`)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	w = do(h, "POST", "/api/v1/tasks/claim", "t", `{"agentId": "remote-1"}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var task struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &task))
	w = do(h, "POST", "/api/v1/tasks/"+task.ID+"/complete", "t", `{"agentId": "remote-1", "outcome": "mapped", "confidence": 0.9, "reasoning": "all fields matched"}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, http.StatusNoContent, do(h, "POST", "/api/v1/tasks/claim", "t", `{"agentId": "remote-1"}`).Code)
	w = do(h, "GET", "/api/v1/decisions?agentType=mapping", "t", "")
	require.Contains(t, w.Body.String(), "all fields matched")
}

// TestEveryRouteIsDocumented keeps api/openapi.yaml honest.
func TestEveryRouteIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../../api/openapi.yaml")
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	routes := Routes()
	require.NotEmpty(t, routes)
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		ops, ok := doc.Paths[path]
		require.True(t, ok, "%s is not documented in api/openapi.yaml", path)
		_, ok = ops[strings.ToLower(method)]
		require.True(t, ok, "%s is not documented in api/openapi.yaml", r)
	}
}
