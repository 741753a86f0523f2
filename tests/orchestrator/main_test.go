// Package orchestrator_test runs the orchestrator as a real process, with
// the engine it spawns, its embedded JetStream bus, and real PostgreSQL
// source and target tables (PG_DSN). The binaries are built once in
// TestMain; AGENTETL_BINARY and ORCHESTRATOR_BINARY reuse prebuilt ones.
package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentetl/agentetl/internal/testutil"
	"github.com/stretchr/testify/require"
)

var (
	orchBin  string
	agentBin string
)

const token = "test-token-0123456789"

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	var cleanup func()
	var err error
	agentBin, orchBin, cleanup, err = testutil.Binaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "orchestrator tests:", err)
		return 1
	}
	defer cleanup()
	return m.Run()
}

// site is one orchestrator installation: a data directory and ports that
// stay the same across restarts of the process.
type site struct {
	dir      string
	apiPort  int
	busPort  int
	env      map[string]string
	extra    []string
	procs    []*orchProc
	httpc    *http.Client
	baseURL  string
	apiToken string
}

type orchProc struct {
	cmd  *exec.Cmd
	out  testutil.Buffer
	done chan struct{}
}

func newSite(t *testing.T, env map[string]string, extra ...string) *site {
	t.Helper()
	s := &site{dir: t.TempDir(), apiPort: testutil.FreePort(t), busPort: testutil.FreePort(t), env: env, extra: extra,
		httpc: &http.Client{Timeout: 30 * time.Second}, apiToken: token}
	s.baseURL = fmt.Sprintf("http://127.0.0.1:%d", s.apiPort)
	t.Cleanup(func() {
		for _, p := range s.procs {
			select {
			case <-p.done:
			default:
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-p.done:
				case <-time.After(15 * time.Second):
					_ = p.cmd.Process.Kill()
					<-p.done
				}
			}
			// With a -race build (ORCHESTRATOR_BINARY), a race in our code is
			// a failure. The embedded nats-server v2.15.2 has races of its
			// own (filestore vs consumer creation); those are only logged.
			for _, r := range ourRaces(p.out.String()) {
				t.Errorf("the orchestrator reported a data race:\n%s", r)
			}
			if t.Failed() {
				t.Logf("orchestrator output:\n%s", tail(p.out.String(), 60))
			}
		}
	})
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs the orchestrator and waits until /readyz says ready.
func (s *site) start(t *testing.T) *orchProc {
	t.Helper()
	args := []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", s.apiPort),
		"--bus-port", strconv.Itoa(s.busPort),
		"--data-dir", filepath.Join(s.dir, "data"),
		"--store", "sqlite://" + filepath.Join(s.dir, "data", "meta.db"),
		"--configs-dir", filepath.Join(s.dir, "configs"),
		"--engine-bin", agentBin,
		"--reconcile-interval", "1s",
		"--poll-interval", "100ms",
		"--heartbeat-ttl", "3s",
	}
	args = append(args, s.extra...)
	p := &orchProc{done: make(chan struct{})}
	p.cmd = exec.Command(orchBin, args...)
	p.cmd.Dir = s.dir
	p.cmd.Env = append(os.Environ(), "AGENTETL_TOKEN="+token)
	for k, v := range s.env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	testutil.WaitReady(t, s.httpc, s.baseURL+"/readyz", p.done, 45*time.Second, p.out.String)
	return p
}

func (p *orchProc) kill9(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "orchestrator did not die after SIGKILL")
	}
}

// enginePID finds the orchestrator's agentetl child through /proc.
func (p *orchProc) enginePID(t *testing.T) int {
	t.Helper()
	pid, _ := testutil.ChildPID(p.cmd.Process.Pid, "agentetl")
	return pid
}

// call sends a request with the bearer token and decodes a JSON answer.
func (s *site) call(t *testing.T, method, path string, body any, out any, hdr ...string) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.baseURL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.apiToken)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.httpc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(b) > 0 {
		require.NoError(t, json.Unmarshal(b, out), "%s %s -> %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func (s *site) mustCall(t *testing.T, want int, method, path string, body any, out any, hdr ...string) {
	t.Helper()
	var raw json.RawMessage
	code := s.call(t, method, path, body, &raw, hdr...)
	require.Equal(t, want, code, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out))
	}
}

type pipelineView struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
	State   string `json:"state"`
	YAML    string `json:"yaml"`
	File    string `json:"file"`
	Engine  *struct {
		Present bool    `json:"present"`
		Active  bool    `json:"active"`
		Uptime  float64 `json:"uptimeSeconds"`
		Error   string  `json:"error"`
	} `json:"engine"`
	ApplyError string `json:"applyError"`
}

type execution struct {
	ID         string     `json:"id"`
	PipelineID string     `json:"pipelineId"`
	Status     string     `json:"status"`
	RowsIn     int64      `json:"rowsIn"`
	RowsOut    int64      `json:"rowsOut"`
	Errors     int64      `json:"errors"`
	DeadLetter int64      `json:"deadLetter"`
	FinishedAt *time.Time `json:"finishedAt"`
	StartedAt  time.Time  `json:"startedAt"`
	Message    string     `json:"message"`
}

type decision struct {
	Action     string `json:"action"`
	PipelineID string `json:"pipelineId"`
	Reasoning  string `json:"reasoning"`
	AgentType  string `json:"agentType"`
}

func (s *site) waitExecution(t *testing.T, id string, timeout time.Duration) execution {
	t.Helper()
	var ex execution
	require.Eventually(t, func() bool {
		s.mustCall(t, http.StatusOK, "GET", "/api/v1/executions/"+id, nil, &ex)
		return ex.Status != "running"
	}, timeout, 100*time.Millisecond, "execution %s did not finish", id)
	return ex
}

func (s *site) decisions(t *testing.T, query string) []decision {
	t.Helper()
	var out struct {
		Decisions []decision `json:"decisions"`
	}
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/decisions?"+query, nil, &out)
	return out.Decisions
}

func actions(ds []decision) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		m[d.Action]++
	}
	return m
}

func streamPipeline(id string) map[string]any {
	return map[string]any{
		"id": id, "name": "stream " + id, "type": "stream",
		"source":          map[string]any{"type": "nats", "topic": "agentetl.test." + id + ".in"},
		"destination":     map[string]any{"type": "nats", "topic": "agentetl.test." + id + ".out"},
		"transformations": []any{},
		"errorHandling":   map[string]any{},
		"metadata":        map[string]any{},
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func ioCopy(w io.Writer, resp *http.Response) (int64, error) { return io.Copy(w, resp.Body) }

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// ourRaces returns the race reports that involve this module's code, not
// only the embedded NATS server started from internal/bus.
func ourRaces(out string) []string {
	root, _ := testutil.ModuleRoot()
	var found []string
	for _, block := range strings.Split(out, "WARNING: DATA RACE")[1:] {
		block, _, _ = strings.Cut(block, "==================")
		ours := false
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, root+"/") && !strings.HasPrefix(line, root+"/internal/bus/embedded.go") {
				ours = true
				break
			}
		}
		if ours {
			found = append(found, block)
		}
	}
	return found
}
