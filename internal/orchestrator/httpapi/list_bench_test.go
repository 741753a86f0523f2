package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/engine"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
)

type nopEngine struct{}

func (nopEngine) List(context.Context) (map[string]engine.StreamInfo, error) { return nil, nil }
func (nopEngine) Get(context.Context, string) (engine.StreamInfo, error) {
	return engine.StreamInfo{}, engine.ErrNotFound
}
func (nopEngine) Create(context.Context, string, []byte) error { return nil }
func (nopEngine) Update(context.Context, string, []byte, time.Duration) error {
	return nil
}
func (nopEngine) Delete(context.Context, string, time.Duration) error { return nil }
func (nopEngine) Stats(context.Context, string) (engine.Stats, error) {
	return engine.Stats{}, nil
}

func newTestAPI(t testing.TB, n int) http.Handler {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := metastore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	coord, err := orch.New(orch.Options{Store: st, Logger: log})
	require.NoError(t, err)
	require.NoError(t, coord.Load(ctx))
	m, err := orchestrator.NewManager(orchestrator.Options{Store: st, Engine: func() orchestrator.Engine { return nopEngine{} },
		Decisions: coord, Logger: log, LookupEnv: func(string) (string, bool) { return "", true }})
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("p%03d", i)
		_, err := m.Create(ctx, model.PipelineConfig{ID: id, Name: id, Type: "stream",
			Source:      model.SourceConfig{Type: "nats", Topic: "agentetl.in." + id},
			Destination: model.DestinationConfig{Type: "nats", Topic: "agentetl.out." + id}}, "")
		require.NoError(t, err)
	}
	h, err := New(Config{Manager: m, Coordinator: coord, Store: st, Token: "t", Logger: log, Metrics: NewMetrics()})
	require.NoError(t, err)
	return h
}

func BenchmarkListPipelines200(b *testing.B) {
	h := newTestAPI(b, 200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("GET", "/api/v1/pipelines", nil)
		req.Header.Set("Authorization", "Bearer t")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
