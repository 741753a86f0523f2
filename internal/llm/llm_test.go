package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/llm"
)

const key = "sk-live-abcdefghijklmnop"

func completion(w http.ResponseWriter, msg map[string]any, finish string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "x", "object": "chat.completion", "created": 1, "model": "m",
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
	})
}

func TestCompleteJSON(t *testing.T) {
	var got struct {
		Model          string           `json:"model"`
		Temperature    float64          `json:"temperature"`
		ResponseFormat map[string]any   `json:"response_format"`
		Messages       []map[string]any `json:"messages"`
	}
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		completion(w, map[string]any{"role": "assistant", "content": `{"ok":true}`}, "stop")
	}))
	defer srv.Close()
	c, err := llm.New(llm.Config{BaseURL: srv.URL + "/v1/", APIKey: key, Model: "my-model"})
	require.NoError(t, err)
	out, err := c.CompleteJSON(context.Background(), "sys", "user")
	require.NoError(t, err)
	require.Equal(t, `{"ok":true}`, out)
	require.Equal(t, "Bearer "+key, auth)
	require.Equal(t, "my-model", got.Model)
	require.Equal(t, "json_object", got.ResponseFormat["type"])
	require.Len(t, got.Messages, 2)
	require.Equal(t, "system", got.Messages[0]["role"])
}

func TestRefusalAndContentFilter(t *testing.T) {
	for _, tc := range []struct {
		msg    map[string]any
		finish string
	}{
		{map[string]any{"role": "assistant", "content": "", "refusal": "no"}, "stop"},
		{map[string]any{"role": "assistant", "content": "partial"}, "content_filter"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			completion(w, tc.msg, tc.finish)
		}))
		c, err := llm.New(llm.Config{BaseURL: srv.URL + "/v1", APIKey: key})
		require.NoError(t, err)
		_, err = c.CompleteJSON(context.Background(), "s", "u")
		require.True(t, errors.Is(err, llm.ErrRefused), "%v", err)
		srv.Close()
	}
}

func TestKeyNeverInErrorsOrString(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A hostile or careless server echoing the credential back.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"bad key ` + r.Header.Get("Authorization") + `","type":"auth"}}`))
	}))
	defer srv.Close()
	cfg := llm.Config{BaseURL: srv.URL + "/v1", APIKey: key}
	c, err := llm.New(cfg)
	require.NoError(t, err)
	_, err = c.CompleteJSON(context.Background(), "s", "u")
	require.Error(t, err)
	require.NotContains(t, err.Error(), key)
	require.NotContains(t, cfg.String(), key)
	require.Contains(t, cfg.String(), "key=set")
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(llm.EnvBaseURL, "http://localhost:11434/v1")
	t.Setenv(llm.EnvAPIKey, "")
	t.Setenv(llm.EnvModel, "llama3")
	cfg := llm.ConfigFromEnv("")
	require.Equal(t, "llama3", cfg.Model)
	require.Equal(t, "override", llm.ConfigFromEnv("override").Model)
	_, err := llm.New(cfg)
	require.NoError(t, err, "a local server needs no key")
	_, err = llm.New(llm.Config{})
	require.ErrorIs(t, err, llm.ErrNotConfigured)
}
