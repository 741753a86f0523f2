// Package ui_test drives the orchestrator's web UI in a real browser:
// Debian's Chromium, headless, through github.com/chromedp/chromedp, against
// a real orchestrator process with the engine it spawns, its embedded bus
// and real PostgreSQL tables (PG_DSN). The binaries are built once in
// TestMain; AGENTETL_BINARY and ORCHESTRATOR_BINARY reuse prebuilt ones.
// CHROMIUM_BIN overrides the browser (default /usr/bin/chromium); the tests
// skip, saying why, only when no browser can be found (.ci/run installs it).
// With AGENTETL_UI_SCREENSHOTS set, the screenshots are also copied there.
package ui_test

import (
	"bytes"
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

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testutil"
)

var (
	orchBin  string
	agentBin string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	var cleanup func()
	var err error
	agentBin, orchBin, cleanup, err = testutil.Binaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ui tests:", err)
		return 1
	}
	defer cleanup()
	return m.Run()
}

// site is one orchestrator with its data directory.
type site struct {
	dir     string
	port    int
	busPort int
	token   string
	env     map[string]string
	baseURL string
	httpc   *http.Client
	cmd     *exec.Cmd
	out     testutil.Buffer
	done    chan struct{}
}

func newSite(t *testing.T, token string, env map[string]string) *site {
	t.Helper()
	s := &site{dir: t.TempDir(), port: testutil.FreePort(t), busPort: testutil.FreePort(t), token: token, env: env,
		httpc: &http.Client{Timeout: 30 * time.Second}, done: make(chan struct{})}
	s.baseURL = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	require.NoError(t, os.MkdirAll(filepath.Join(s.dir, "data"), 0o750))
	return s
}

func (s *site) storeDSN() string { return "sqlite://" + filepath.Join(s.dir, "data", "meta.db") }

// start runs the orchestrator and waits until /readyz says ready.
func (s *site) start(t *testing.T, extra ...string) {
	t.Helper()
	args := []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", s.port),
		"--bus-port", strconv.Itoa(s.busPort),
		"--data-dir", filepath.Join(s.dir, "data"),
		"--store", s.storeDSN(),
		"--configs-dir", filepath.Join(s.dir, "configs"),
		"--engine-bin", agentBin,
		"--reconcile-interval", "1s",
		"--poll-interval", "100ms",
	}
	s.cmd = exec.Command(orchBin, append(args, extra...)...)
	s.cmd.Dir = s.dir
	s.cmd.Env = append(os.Environ(), "AGENTETL_TOKEN="+s.token)
	for k, v := range s.env {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	require.NoError(t, s.cmd.Start())
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(15 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
		if t.Failed() {
			t.Logf("orchestrator output:\n%s", tail(s.out.String(), 80))
		}
	})
	testutil.WaitReady(t, s.httpc, s.baseURL+"/readyz", s.done, 60*time.Second, s.out.String)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// api calls the REST API with the bearer token; it sets up what the
// browser then works on.
func (s *site) api(t *testing.T, want int, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.baseURL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.httpc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
}
