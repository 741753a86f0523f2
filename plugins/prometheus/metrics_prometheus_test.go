package prometheus_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/testutil"
	_ "github.com/agentetl/agentetl/plugins/prometheus"
)

// parseExposition parses a text exposition with legacy (strict) name
// validation, which proves that every exposed name is legal for classic
// Prometheus scrapers and not only for UTF-8 aware ones.
func parseExposition(t testing.TB, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := parseText(r)
	require.NoError(t, err)
	return fams
}

func parseText(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(r)
}

// scrape fetches and parses a metrics endpoint. It reports failures as
// errors rather than failing the test so it can be polled from
// require.Eventually, which runs conditions on another goroutine.
func scrape(url string) (map[string]*dto.MetricFamily, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return nil, fmt.Errorf("unexpected content type %q", ct)
	}
	return parseText(bytes.NewReader(body))
}

// seriesValue returns the value of the first series of family name whose
// labels include all of want: the counter/gauge value, or the sample count
// for summaries and histograms.
func seriesValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_SUMMARY:
			return float64(m.GetSummary().GetSampleCount()), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		default:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			return false
		}
	}
	return true
}

// TestStreamMetricsEndpoint runs a real stream with the exporter configured
// through YAML and scrapes the Benthos HTTP server while the stream runs.
func TestStreamMetricsEndpoint(t *testing.T) {
	port := testutil.FreePort(t)

	// The sequence keeps the stream alive after the ten generated messages:
	// the second generator deletes everything it produces, so the counters
	// are stable and the HTTP server stays up while we scrape.
	sb := service.NewStreamBuilder()
	require.NoError(t, sb.SetYAML(fmt.Sprintf(`
http:
  enabled: true
  address: 127.0.0.1:%d
metrics:
  prometheus: {}
input:
  sequence:
    inputs:
      - generate:
          count: 10
          interval: ""
          mapping: 'root = "hello world"'
      - generate:
          interval: 1h
          mapping: 'root = deleted()'
pipeline:
  processors:
    - mapping: 'root = content().uppercase()'
output:
  drop: {}
`, port)))

	stream, err := sb.Build()
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- stream.Run(ctx) }()
	t.Cleanup(func() {
		require.NoError(t, stream.StopWithin(10*time.Second))
		<-runErr
	})

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	var fams map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		f, err := scrape(url)
		if err != nil {
			return false
		}
		fams = f
		v, _ := seriesValue(f, "output_sent", nil)
		return v == 10
	}, 20*time.Second, 50*time.Millisecond)

	v, ok := seriesValue(fams, "input_received", map[string]string{"path": "root.input.sequence"})
	require.True(t, ok, "input_received missing")
	require.Equal(t, 10.0, v)
	require.Equal(t, dto.MetricType_COUNTER, fams["input_received"].GetType())

	v, ok = seriesValue(fams, "processor_received", map[string]string{"path": "root.pipeline.processors.0"})
	require.True(t, ok, "processor_received missing")
	require.Equal(t, 10.0, v)

	// Timers are summaries in seconds by default, renamed from *_ns.
	require.NotContains(t, fams, "processor_latency_ns")
	fam, ok := fams["processor_latency_seconds"]
	require.True(t, ok, "processor_latency_seconds missing")
	require.Equal(t, dto.MetricType_SUMMARY, fam.GetType())
	v, _ = seriesValue(fams, "processor_latency_seconds", nil)
	require.Positive(t, v)
	sum := fam.GetMetric()[0].GetSummary()
	require.Len(t, sum.GetQuantile(), 3)
	// Ten uppercase mappings take far less than ten seconds in total; in
	// nanoseconds the sum would be in the thousands at least.
	require.Less(t, sum.GetSampleSum(), 10.0)

	// Go and process collectors are on by default.
	require.Contains(t, fams, "go_goroutines")

	// /stats serves the same exposition.
	statsFams, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/stats", port))
	require.NoError(t, err)
	require.Contains(t, statsFams, "output_sent")
}

// TestConfigOptions covers prefix, const labels, histograms and disabled
// runtime collectors, plus the file written on Close.
func TestConfigOptions(t *testing.T) {
	outPath := filepath.Join(t.TempDir(), "metrics.prom")
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	sb := service.NewStreamBuilder()
	sb.SetHTTPMux(mux)
	require.NoError(t, sb.SetYAML(fmt.Sprintf(`
metrics:
  prometheus:
    prefix: agentetl
    use_histogram_timing: true
    histogram_buckets: [ 0.001, 0.01, 1 ]
    add_go_metrics: false
    add_process_metrics: false
    const_labels:
      env: test
    file_output_path: %q
input:
  generate:
    count: 5
    interval: ""
    mapping: 'root = "x"'
pipeline:
  processors:
    - mapping: 'root = content()'
output:
  drop: {}
`, outPath)))
	stream, err := sb.Build()
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, stream.Run(ctx))

	// The mux outlives the stream, so the handler still serves the final
	// state of the registry.
	fams, err := scrape(srv.URL + "/metrics")
	require.NoError(t, err)

	v, ok := seriesValue(fams, "agentetl_input_received", map[string]string{"env": "test"})
	require.True(t, ok)
	require.Equal(t, 5.0, v)
	require.NotContains(t, fams, "input_received")

	fam, ok := fams["agentetl_processor_latency_seconds"]
	require.True(t, ok)
	require.Equal(t, dto.MetricType_HISTOGRAM, fam.GetType())
	// Three configured buckets plus the implicit +Inf one.
	require.Len(t, fam.GetMetric()[0].GetHistogram().GetBucket(), 4)

	for name := range fams {
		require.False(t, strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_"), name)
	}

	// Stopping the stream closed the exporter, which wrote the file.
	f, err := os.Open(outPath)
	require.NoError(t, err)
	defer f.Close()
	fileFams := parseExposition(t, f)
	v, ok = seriesValue(fileFams, "agentetl_output_sent", map[string]string{"env": "test"})
	require.True(t, ok)
	require.Equal(t, 5.0, v)
}

func TestConfigValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		conf string
		err  string
	}{
		"bad prefix": {
			conf: `prefix: "agent-etl"`,
			err:  "not a valid Prometheus metric name prefix",
		},
		"prefix with leading digit": {
			conf: `prefix: "1agent"`,
			err:  "not a valid Prometheus metric name prefix",
		},
		"unordered buckets": {
			conf: `histogram_buckets: [ 1, 0.5 ]`,
			err:  "strictly increasing",
		},
		"duplicate buckets": {
			conf: `histogram_buckets: [ 0.5, 0.5 ]`,
			err:  "strictly increasing",
		},
		"bad quantile": {
			conf: `summary_quantiles_objectives: [ { quantile: 1.5, error: 0.01 } ]`,
			err:  "quantile",
		},
		"bad error": {
			conf: `summary_quantiles_objectives: [ { quantile: 0.5, error: 0 } ]`,
			err:  "error",
		},
		"bad const label name": {
			conf: `const_labels: { "bad-name": x }`,
			err:  "bad-name",
		},
		"reserved const label": {
			conf: `const_labels: { quantile: x }`,
			err:  "quantile",
		},
		"const label clashing with benthos": {
			conf: `const_labels: { path: x }`,
			err:  `"path" is invalid`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			yaml := "metrics:\n  prometheus:\n    " + tc.conf + "\noutput:\n  drop: {}\n"

			// The lint rules catch the mistake when the config is loaded...
			err := service.NewStreamBuilder().SetYAML(yaml)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.err)

			// ...and the constructor catches it when linting is disabled.
			sb := service.NewStreamBuilder()
			sb.DisableLinting()
			require.NoError(t, sb.SetYAML(yaml))
			_, err = sb.Build()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.err)
		})
	}

	// A valid config with all defaults and a few explicit values lints clean.
	require.NoError(t, service.NewStreamBuilder().SetYAML(`
metrics:
  prometheus:
    prefix: "agentetl:"
    histogram_buckets: [ 0.1, 1, 2.5 ]
    summary_quantiles_objectives: [ { quantile: 1, error: 0.001 } ]
    const_labels: { env: prod }
output:
  drop: {}
`))
}

// TestConflictsAndOddNames drives the exporter through the public metrics
// API with everything Benthos (or a plugin) could throw at it and checks
// that nothing panics, bad registrations are dropped with a warning and the
// exposition stays valid.
func TestConflictsAndOddNames(t *testing.T) {
	env := service.NewEnvironment()
	require.NoError(t, env.RegisterProcessor("prom_probe", service.NewConfigSpec(),
		func(_ *service.ParsedConfig, res *service.Resources) (service.Processor, error) {
			m := res.Metrics()

			// Same name and labels twice: both handles feed one series.
			m.NewCounter("shared", "a").Incr(1, "x")
			m.NewCounter("shared", "a").Incr(2, "x")

			// Same label set in another order is remapped, not rejected.
			m.NewCounter("perm", "a", "b").Incr(1, "1", "2")
			m.NewCounter("perm", "b", "a").Incr(1, "2", "1")

			// Conflicting label set and conflicting type: first one wins.
			m.NewCounter("shared", "a", "extra").Incr(100, "x", "y")
			m.NewGauge("shared").Set(100)
			m.NewTimer("shared", "a").Timing(100, "x")

			// Odd names and label names are sanitised.
			m.NewCounter("weird.name-1 ü", "bad-key", "__reserved").Incr(3, "v1", "v2")
			m.NewGauge("9lives").SetFloat64(1.5)
			m.NewTimer("my.latency_ns").Timing(int64(2 * time.Second))
			m.NewTimer("plain_timer").Timing(int64(time.Millisecond))
			m.NewTimer("done_seconds").Timing(int64(time.Millisecond))

			// Names colliding after sanitisation merge into one metric.
			m.NewCounter("dot.ted").Incr(1)
			m.NewCounter("dot_ted").Incr(1)

			// Labels that summaries/histograms reserve.
			m.NewTimer("reserved_timer", "quantile").Timing(1, "0.5")
			m.NewTimer("le_timer", "le").Timing(1, "1")

			// Labels that collide after sanitisation.
			m.NewCounter("dup_labels", "a.b", "a-b").Incr(1, "1", "2")

			// Wrong number of label values, invalid UTF-8 and bad deltas.
			m.NewCounter("arity", "a").Incr(1)
			m.NewCounter("arity", "a").Incr(1, "1", "2", "3")
			m.NewCounter("utf8", "a").Incr(1, "\xff\xfe")
			m.NewCounter("negative").Incr(-5)
			m.NewCounter("negative").IncrFloat64(-1.5)
			m.NewCounter("negative").IncrFloat64(2.5)
			g := m.NewGauge("gauge_ops")
			g.Set(5)
			g.SetFloat64(-2.25)

			// Names clashing with the Go collector.
			m.NewCounter("go_goroutines").Incr(1)

			// Empty names (Benthos discards these before the exporter).
			m.NewCounter("").Incr(1)
			return &nopProcessor{}, nil
		}))

	var logs bytes.Buffer
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	sb := env.NewStreamBuilder()
	sb.SetLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	sb.SetHTTPMux(mux)
	require.NoError(t, sb.SetYAML(`
metrics:
  prometheus: {}
input:
  generate:
    count: 1
    interval: ""
    mapping: 'root = "x"'
pipeline:
  processors:
    - prom_probe: {}
    - prom_probe: {}
output:
  drop: {}
`))
	stream, err := sb.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, stream.Run(ctx))

	fams, err := scrape(srv.URL + "/metrics")
	require.NoError(t, err)

	p0 := map[string]string{"path": "root.pipeline.processors.0"}
	p1 := map[string]string{"path": "root.pipeline.processors.1"}
	withP0 := func(kv ...string) map[string]string {
		m := map[string]string{"path": "root.pipeline.processors.0"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	get := func(name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := seriesValue(fams, name, labels)
		require.True(t, ok, "%s %v missing", name, labels)
		return v
	}

	// Both processors register the same metrics, which is fine.
	require.Equal(t, 3.0, get("shared", withP0("a", "x")))
	require.Equal(t, 3.0, get("shared", map[string]string{"path": "root.pipeline.processors.1", "a": "x"}))
	require.Equal(t, dto.MetricType_COUNTER, fams["shared"].GetType())
	for _, m := range fams["shared"].GetMetric() {
		require.False(t, hasLabels(m, map[string]string{"extra": "y"}))
	}
	// Timers live under their own *_seconds name and so do not conflict.
	require.Equal(t, 1.0, get("shared_seconds", withP0("a", "x")))

	require.Equal(t, 2.0, get("perm", withP0("a", "1", "b", "2")))

	require.Equal(t, 3.0, get("weird_name_1__", withP0("bad_key", "v1", "_reserved", "v2")))
	require.Equal(t, 1.5, get("_9lives", p0))
	require.Equal(t, 1.0, get("my_latency_seconds", p0))
	require.InDelta(t, 2.0, fams["my_latency_seconds"].GetMetric()[0].GetSummary().GetSampleSum(), 1e-9)
	require.Equal(t, 1.0, get("plain_timer_seconds", p0))
	require.Equal(t, 1.0, get("done_seconds", p0))
	require.Equal(t, 2.0, get("dot_ted", p0))
	require.Equal(t, 1.0, get("utf8", withP0("a", "\ufffd")))
	require.Equal(t, 2.5, get("negative", p0))
	require.Equal(t, -2.25, get("gauge_ops", p1))
	// Benthos itself drops metrics with an empty name before they reach us.
	require.NotContains(t, fams, "_")

	require.NotContains(t, fams, "reserved_timer_seconds")
	require.NotContains(t, fams, "dup_labels")
	_, ok := seriesValue(fams, "arity", nil)
	require.False(t, ok, "arity mismatches must be dropped")

	// The Go collector keeps its own go_goroutines (a gauge).
	require.Equal(t, dto.MetricType_GAUGE, fams["go_goroutines"].GetType())

	out := logs.String()
	require.Contains(t, out, `already registered with labels`)
	require.Contains(t, out, `already registered as a counter`)
	require.Contains(t, out, `quantile`)
	require.Contains(t, out, `Dropping values of counter metric`)
	// Warnings are de-duplicated across the two processors.
	require.Equal(t, 1, strings.Count(out, `Ignoring counter metric \"shared\" with labels`), out)
}

type nopProcessor struct{}

func (nopProcessor) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	return service.MessageBatch{msg}, nil
}

func (nopProcessor) Close(context.Context) error { return nil }
