package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentetl/agentetl/internal/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// These tests run the real agentetl CLI so that they catch what unit tests
// cannot: the plugin being linked into the binary, the exporter being wired
// to the service-wide HTTP server in `run` and `streams` mode, and the
// `stream` label Benthos adds in streams mode.
//
// The binary is built once per test run from ./cmd/agentetl. Set
// AGENTETL_BINARY to the path of a prebuilt binary to skip the build (e.g. in
// CI after `make build`).

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// agentetlBinary returns the path of the agentetl CLI, building it on first
// use.
func agentetlBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AGENTETL_BINARY"); p != "" {
		return p
	}
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binErr = fmt.Errorf("go tool not found: %w", err)
			return
		}
		gomod, err := exec.Command(goTool, "env", "GOMOD").Output()
		if err != nil {
			binErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		modRoot := filepath.Dir(strings.TrimSpace(string(gomod)))
		if binDir, err = os.MkdirTemp("", "agentetl-prometheus-test"); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "agentetl")
		cmd := exec.Command(goTool, "build", "-o", binPath, "./cmd/agentetl")
		cmd.Dir = modRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/agentetl: %w\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

// agentetlProc is a running agentetl process.
type agentetlProc struct {
	out  testutil.Buffer
	done chan struct{} // closed once the process has exited
}

// startAgentetl starts the CLI in the background. The process is killed when
// the test ends and its output is logged if the test failed.
func startAgentetl(t *testing.T, args ...string) *agentetlProc {
	t.Helper()
	p := &agentetlProc{done: make(chan struct{})}
	cmd := exec.Command(agentetlBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	require.NoError(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("agentetl %s output:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// waitForSeries scrapes url until the series value satisfies cond and
// returns the last scrape. It gives up early if the process exits, e.g.
// because it rejected its config.
func waitForSeries(t *testing.T, proc *agentetlProc, url, name string, labels map[string]string, cond func(float64) bool) map[string]*dto.MetricFamily {
	t.Helper()
	var (
		fams    map[string]*dto.MetricFamily
		lastErr error
	)
	ok := pollUntil(60*time.Second, proc.done, func() bool {
		f, err := scrape(url)
		if err != nil {
			lastErr = err
			return false
		}
		fams = f
		v, found := seriesValue(f, name, labels)
		if !found {
			lastErr = fmt.Errorf("series %s %v not found", name, labels)
			return false
		}
		lastErr = fmt.Errorf("series %s %v = %v", name, labels, v)
		return cond(v)
	})
	require.True(t, ok, "waiting for %s %v: %v", name, labels, lastErr)
	return fams
}

// pollUntil polls cond until it holds, the timeout (generous, to allow for a
// slow process start) expires or abort is closed.
func pollUntil(timeout time.Duration, abort <-chan struct{}, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		if cond() {
			return true
		}
		select {
		case <-abort:
			return cond()
		case <-deadline:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestProcessListMetrics(t *testing.T) {
	out, err := exec.Command(agentetlBinary(t), "list", "metrics").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "prometheus", "the agentetl binary must link the prometheus plugin")
}

func TestProcessRunMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := testutil.FreePort(t)
	cfg := writeFile(t, dir, "cfg.yaml", fmt.Sprintf(`
http:
  address: 127.0.0.1:%d
logger:
  level: warn
metrics:
  prometheus: {}
input:
  generate:
    interval: 20ms
    mapping: 'root = {"n": counter()}'
output:
  drop: {}
`, port))
	proc := startAgentetl(t, "run", cfg)

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	in := map[string]string{"path": "root.input"}
	fams := waitForSeries(t, proc, url, "input_received", in, func(v float64) bool { return v > 0 })
	first, _ := seriesValue(fams, "input_received", in)

	// The counters keep growing while the pipeline runs.
	fams = waitForSeries(t, proc, url, "input_received", in, func(v float64) bool { return v > first+5 })
	sent, ok := seriesValue(fams, "output_sent", map[string]string{"path": "root.output"})
	require.True(t, ok)
	require.Positive(t, sent)
	require.Equal(t, dto.MetricType_COUNTER, fams["output_sent"].GetType())
	require.Equal(t, dto.MetricType_SUMMARY, fams["output_latency_seconds"].GetType())
	require.Contains(t, fams, "go_goroutines")
	require.Contains(t, fams, "process_cpu_seconds_total")
}

func TestProcessStreamsMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := testutil.FreePort(t)
	obs := writeFile(t, dir, "observability.yaml", fmt.Sprintf(`
http:
  address: 127.0.0.1:%d
logger:
  level: warn
metrics:
  prometheus:
    const_labels:
      app: agentetl
`, port))
	stream := `
input:
  generate:
    interval: 20ms
    mapping: 'root = "%s"'
output:
  drop: {}
`
	s1 := writeFile(t, dir, "alpha.yaml", fmt.Sprintf(stream, "a"))
	s2 := writeFile(t, dir, "beta.yaml", fmt.Sprintf(stream, "b"))
	proc := startAgentetl(t, "streams", "-o", obs, s1, s2)

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	for _, id := range []string{"alpha", "beta"} {
		labels := map[string]string{"stream": id, "path": "root.input", "app": "agentetl"}
		fams := waitForSeries(t, proc, url, "input_received", labels, func(v float64) bool { return v > 0 })
		_, ok := seriesValue(fams, "output_sent", map[string]string{"stream": id})
		require.True(t, ok, "output_sent missing for stream %s", id)
	}
}

// TestProcessFileOutput checks that a batch run which exits on its own
// leaves its final metrics in file_output_path.
func TestProcessFileOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outPath := filepath.Join(dir, "metrics.prom")
	cfg := writeFile(t, dir, "cfg.yaml", fmt.Sprintf(`
http:
  enabled: false
logger:
  level: warn
metrics:
  prometheus:
    add_go_metrics: false
    add_process_metrics: false
    file_output_path: %q
input:
  generate:
    count: 7
    interval: ""
    mapping: 'root = "x"'
output:
  drop: {}
`, outPath))

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentetlBinary(t), "run", cfg)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.False(t, errors.Is(ctx.Err(), context.DeadlineExceeded), "agentetl did not exit")

	f, err := os.Open(outPath)
	require.NoError(t, err, string(out))
	defer f.Close()
	fams := parseExposition(t, f)
	v, ok := seriesValue(fams, "input_received", nil)
	require.True(t, ok)
	require.Equal(t, 7.0, v)
	v, ok = seriesValue(fams, "output_sent", nil)
	require.True(t, ok)
	require.Equal(t, 7.0, v)
}
