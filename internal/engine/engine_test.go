package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestMain doubles as a fake engine: the supervisor tests spawn this test
// binary with FAKE_ENGINE=1, and it then serves a minimal streams API on
// the address from its observability config, like `agentetl streams -o`.
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_ENGINE") == "1" {
		fakeEngineMain()
		return
	}
	os.Exit(m.Run())
}

func fakeEngineMain() {
	args := os.Args[1:]
	if len(args) != 3 || args[0] != "streams" || args[1] != "-o" {
		fmt.Fprintln(os.Stderr, "fake engine: unexpected args", args)
		os.Exit(2)
	}
	b, err := os.ReadFile(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake engine:", err)
		os.Exit(2)
	}
	var obs struct {
		HTTP struct {
			Address string `yaml:"address"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(b, &obs); err != nil {
		os.Exit(2)
	}
	fmt.Println(`level=info msg="fake engine listening" password=hunter2`)
	if os.Getenv("LEAK_TOKEN") != "" {
		fmt.Println("token leaked")
	}
	srv := newAPI()
	_ = http.ListenAndServe(obs.HTTP.Address, srv)
	os.Exit(1)
}

// api is a small in-memory stand-in for Benthos' streams endpoints.
type api struct {
	mu      sync.Mutex
	streams map[string]time.Time
}

func newAPI() *api { return &api{streams: map[string]time.Time{}} }

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	path := r.URL.Path
	switch {
	case path == "/ping":
		fmt.Fprint(w, "pong")
	case path == "/streams" && r.Method == http.MethodGet:
		out := map[string]StreamInfo{}
		for id, t := range a.streams {
			out[id] = StreamInfo{Active: true, Uptime: time.Since(t).Seconds()}
		}
		_ = json.NewEncoder(w).Encode(out)
	case strings.HasSuffix(path, "/stats"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/streams/"), "/stats")
		if _, ok := a.streams[id]; !ok {
			http.Error(w, "Stream not found", http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"input_received{label=\"source\",path=\"root.input\",stream=\"%s\"}":12,`+
			`"input_received{label=\"b\",path=\"root.pipeline.processors.0.branch\",stream=\"%s\"}":99,`+
			`"output_sent{label=\"destination\",path=\"root.output\",stream=\"%s\"}":10,`+
			`"output_error{label=\"destination\",path=\"root.output\",stream=\"%s\"}":2,`+
			`"input_connection_failed{label=\"source\",path=\"root.input\",stream=\"%s\"}":1,`+
			`"output_latency_ns{label=\"\",path=\"root.output\",stream=\"%s\"}":{"p50":1,"p90":2,"p99":3},"uptime_ns":5000000000}`,
			id, id, id, id, id, id)
	case strings.HasPrefix(path, "/streams/"):
		id := strings.TrimPrefix(path, "/streams/")
		body, _ := io.ReadAll(r.Body)
		_, exists := a.streams[id]
		switch r.Method {
		case http.MethodPost:
			if strings.Contains(string(body), "bad") {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"lint_errors":["(4,1) field mappingx not recognised","(3,1) field mapping is required"]}`)
				return
			}
			if exists {
				http.Error(w, "Stream already exists", http.StatusBadRequest)
				return
			}
			a.streams[id] = time.Now()
		case http.MethodPut:
			if !exists {
				http.Error(w, "Stream not found", http.StatusNotFound)
				return
			}
			a.streams[id] = time.Now()
		case http.MethodDelete:
			if !exists {
				http.Error(w, "Stream not found", http.StatusNotFound)
				return
			}
			delete(a.streams, id)
		case http.MethodGet:
			if !exists {
				http.Error(w, "Stream not found", http.StatusNotFound)
				return
			}
			_ = json.NewEncoder(w).Encode(StreamInfo{Active: true, Uptime: time.Since(a.streams[id]).Seconds()})
		}
	default:
		http.NotFound(w, r)
	}
}

func TestClientMapsEngineAnswers(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(newAPI())
	defer srv.Close()
	c, err := NewClient(srv.URL, nil)
	require.NoError(t, err)
	require.NoError(t, c.Ping(ctx))

	require.NoError(t, c.Create(ctx, "a", []byte("input: {}")))
	require.ErrorIs(t, c.Create(ctx, "a", []byte("input: {}")), ErrExists)
	require.NoError(t, c.Apply(ctx, "a", []byte("input: {}"), time.Second), "apply updates an existing stream")
	require.ErrorIs(t, c.Update(ctx, "missing", []byte("x"), time.Second), ErrNotFound)

	err = c.Create(ctx, "l", []byte("bad"))
	var le *LintError
	require.ErrorAs(t, err, &le)
	require.Equal(t, []LintIssue{{Line: 4, Column: 1, Message: "field mappingx not recognised"}, {Line: 3, Column: 1, Message: "field mapping is required"}}, le.Issues)
	require.Contains(t, le.Error(), "4:1: field mappingx not recognised")

	st, err := c.Stats(ctx, "a")
	require.NoError(t, err)
	require.EqualValues(t, 12, st.RowsIn, "only the stream's own input counts as rows in")
	require.EqualValues(t, 10, st.RowsOut)
	require.EqualValues(t, 3, st.Errors())
	require.Equal(t, 5*time.Second, st.Uptime)

	list, err := c.List(ctx)
	require.NoError(t, err)
	require.Contains(t, list, "a")
	require.NoError(t, c.Delete(ctx, "a", time.Second))
	require.ErrorIs(t, c.Delete(ctx, "a", time.Second), ErrNotFound)

	// An address nobody listens on is "unavailable", which callers retry.
	dead, err := NewClient("http://127.0.0.1:1", nil)
	require.NoError(t, err)
	require.ErrorIs(t, dead.Ping(ctx), ErrUnavailable)
	_, err = NewClient("ftp://x", nil)
	require.Error(t, err)
}

type logSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSupervisorRestartsAndReconciles(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	t.Setenv("LEAK_TOKEN", "secret")
	logs := &logSink{}
	var starts atomic.Int32
	sup, err := NewSupervisor(SupervisorConfig{
		Binary: self, Dir: t.TempDir(), Env: []string{"FAKE_ENGINE=1"}, DropEnv: []string{"LEAK_TOKEN"},
		MinBackoff: 50 * time.Millisecond, ReadyTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		OnStart: func(ctx context.Context, c *Client) error {
			starts.Add(1)
			// What the orchestrator does: re-apply every stream.
			return c.Apply(ctx, "p1", []byte("input: {}"), time.Second)
		},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, sup.WaitReady(wctx))
	require.Eventually(t, sup.Ready, 5*time.Second, 10*time.Millisecond)
	first := sup.PID()
	require.NotZero(t, first)
	list, err := sup.Client().List(ctx)
	require.NoError(t, err)
	require.Contains(t, list, "p1")

	// kill -9 the engine: a new process comes up and gets its streams back.
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		return sup.Ready() && sup.PID() != 0 && sup.PID() != first && starts.Load() == 2
	}, 10*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 1, sup.Restarts())
	list, err = sup.Client().List(ctx)
	require.NoError(t, err)
	require.Contains(t, list, "p1")

	second := sup.PID()
	cancel()
	require.NoError(t, <-done)
	require.Error(t, syscall.Kill(second, 0), "the engine is stopped with the supervisor")
	require.NotContains(t, logs.String(), "hunter2", "engine output is redacted")
	require.NotContains(t, logs.String(), "token leaked", "dropped variables do not reach the engine")
	require.Contains(t, logs.String(), "fake engine listening")
}

func TestSupervisorRefusesPublicHostAndMissingBinary(t *testing.T) {
	_, err := NewSupervisor(SupervisorConfig{Binary: "x", Dir: t.TempDir(), Host: "0.0.0.0"})
	require.ErrorContains(t, err, "loopback")
	sup, err := NewSupervisor(SupervisorConfig{Binary: "/nonexistent/agentetl", Dir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.Error(t, sup.Run(ctx))
	_, err = ResolveBinary("/nonexistent/agentetl")
	require.Error(t, err)
}

// TestParseStatsDeadLetterSwitch uses the keys a real engine reports for
// the orchestrator's dead-letter switch output (captured from agentetl
// streams): there is no root.output counter, only the two cases.
func TestParseStatsDeadLetterSwitch(t *testing.T) {
	st, err := ParseStats([]byte(`{
		"input_received{label=\"\",path=\"root.input\",stream=\"s1\"}": 10,
		"output_sent{label=\"dead_letter\",path=\"root.output.switch.cases.0.output\",stream=\"s1\"}": 3,
		"output_sent{label=\"destination\",path=\"root.output.switch.cases.1.output\",stream=\"s1\"}": 7,
		"processor_error{label=\"\",path=\"root.pipeline.processors.0\",stream=\"s1\"}": 3,
		"uptime_ns": 12}`))
	require.NoError(t, err)
	require.EqualValues(t, 10, st.RowsIn)
	require.EqualValues(t, 7, st.RowsOut)
	require.EqualValues(t, 3, st.DeadLetter)
	require.EqualValues(t, 3, st.ProcessorErrors)
}

// TestParseStatsErrorResolution uses the keys a real engine reports for a
// pipeline with the error_resolution processor and output (captured from
// agentetl streams): dead letters of both count, and those of the output
// are not rows out although the root output acknowledged them.
func TestParseStatsErrorResolution(t *testing.T) {
	st, err := ParseStats([]byte(`{
		"input_received{label=\"\",path=\"root.input\",stream=\"s1\"}": 10,
		"error_resolution_dead_letters{category=\"poison\",label=\"\",path=\"root.pipeline.processors.0\",stream=\"s1\"}": 2,
		"error_resolution_dead_letters{category=\"constraint\",label=\"destination\",path=\"root.output\",stream=\"s1\"}": 3,
		"output_sent{label=\"\",path=\"root.output.error_resolution.output\",stream=\"s1\"}": 5,
		"output_sent{label=\"destination\",path=\"root.output\",stream=\"s1\"}": 8,
		"output_error{label=\"\",path=\"root.output.error_resolution.output\",stream=\"s1\"}": 33,
		"output_error{label=\"destination\",path=\"root.output\",stream=\"s1\"}": 1,
		"uptime_ns": 12}`))
	require.NoError(t, err)
	require.EqualValues(t, 10, st.RowsIn)
	require.EqualValues(t, 5, st.RowsOut)
	require.EqualValues(t, 5, st.DeadLetter)
	require.EqualValues(t, 1, st.OutputErrors, "the wrapped output's errors were handled by error_resolution")
}
