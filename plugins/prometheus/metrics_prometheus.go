// Package prometheus provides a `prometheus` metrics exporter for agentetl.
//
// Core Benthos ships only the `json_api`, `logger` and `none` exporters, so
// this package fills the gap with an exporter built directly on
// github.com/prometheus/client_golang. Importing the package (usually as a
// blank import from the CLI's main package) registers the exporter with the
// global Benthos environment.
//
// # Metric naming
//
// Benthos metric names are free-form strings, while Prometheus (and the
// classic text exposition format most scrapers still expect) only accepts
// names matching `[a-zA-Z_:][a-zA-Z0-9_:]*` and label names matching
// `[a-zA-Z_][a-zA-Z0-9_]*`. Names are therefore sanitised by replacing every
// illegal character with an underscore (and prefixing a leading digit with an
// underscore). Counters and gauges otherwise keep their Benthos names
// verbatim (no `_total` suffix is added) so that existing Benthos dashboards
// keep working. Timers are the exception: Benthos measures them in
// nanoseconds, but Prometheus convention (and every Prometheus duration
// function) expects base units, so timer observations are converted to
// seconds and the metric name is rewritten to say so: a trailing `_ns` is
// replaced by `_seconds` (`input_latency_ns` becomes `input_latency_seconds`)
// and any other timer name gets `_seconds` appended.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	pmFieldPrefix                     = "prefix"
	pmFieldUseHistogramTiming         = "use_histogram_timing"
	pmFieldHistogramBuckets           = "histogram_buckets"
	pmFieldSummaryQuantilesObjectives = "summary_quantiles_objectives"
	pmFieldSummaryQuantile            = "quantile"
	pmFieldSummaryError               = "error"
	pmFieldAddProcessMetrics          = "add_process_metrics"
	pmFieldAddGoMetrics               = "add_go_metrics"
	pmFieldConstLabels                = "const_labels"
	pmFieldFileOutputPath             = "file_output_path"
)

// Patterns for legal names. They are mirrored verbatim in the lint rules of
// the config spec so that linting and construction agree on what is valid.
const (
	metricNamePattern = `^[a-zA-Z_:][a-zA-Z0-9_:]*$`
	labelNamePattern  = `^[a-zA-Z_][a-zA-Z0-9_]*$`
)

// reservedConstLabels cannot be used as const_labels: Prometheus reserves
// quantile and le for summaries and histograms, and Benthos adds label and
// path to every component metric, so a clash would drop all of them.
var reservedConstLabels = []string{"quantile", "le", "label", "path"}

const constLabelRule = "label names must match " + labelNamePattern + ", must not start with __ and must not be quantile, le, label or path"

var (
	metricNameRegexp = regexp.MustCompile(metricNamePattern)
	labelNameRegexp  = regexp.MustCompile(labelNamePattern)
)

// defaultHistogramBuckets mirrors prometheus.DefBuckets. It is spelled out so
// that the documented default is visible in `agentetl list` and config docs.
var defaultHistogramBuckets = []any{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0}

func prometheusSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Summary("Hosts a Prometheus metrics endpoint at `/metrics` (and `/stats`) on the service-wide HTTP server.").
		Description(`
Metrics are kept in a registry private to this exporter and served in the Prometheus text exposition format on the `+"`/metrics`"+` and `+"`/stats`"+` endpoints of the service-wide HTTP server (see the `+"`http`"+` config section), so a Prometheus server can scrape them directly.

### Metric names

Benthos metric names may contain characters Prometheus does not allow, so every character outside `+"`[a-zA-Z0-9_:]`"+` (`+"`[a-zA-Z0-9_]`"+` for label names) is replaced with an underscore. Counters and gauges otherwise keep their Benthos names, e.g. `+"`input_received`"+` and `+"`output_sent`"+`. No `+"`_total`"+` suffix is added to counters so that names match the Benthos documentation.

Benthos measures timings in nanoseconds, but Prometheus expects durations in seconds. Timer observations are therefore converted to seconds and the timer name is rewritten accordingly: a trailing `+"`_ns`"+` becomes `+"`_seconds`"+` (`+"`input_latency_ns`"+` is exposed as `+"`input_latency_seconds`"+`), and `+"`_seconds`"+` is appended to any other timer name. Timers are exposed as summaries by default, or as histograms when `+"`use_histogram_timing`"+` is `+"`true`"+`.

### Label conflicts

Prometheus requires every series of a metric to share the same label names. When the same metric name is requested again with the same label names (in any order) the existing metric is reused, which is what happens when several components or streams emit the same metric. If a metric name is requested with a different set of label names, or as a different metric type, the first registration wins: a warning is logged and the conflicting metric is silently dropped rather than failing the pipeline.

### Streams mode

In streams mode Benthos adds a `+"`stream`"+` label to every metric, so the metrics of each stream can be told apart.`[1:]).
		Fields(
			service.NewStringField(pmFieldPrefix).
				Description("An optional prefix for all metric names emitted by pipelines (Go and process metrics are never prefixed so standard dashboards keep working). The prefix is joined to each name with an underscore unless it already ends with `_` or `:`. It must be a legal Prometheus metric name prefix, i.e. match `"+metricNamePattern+"`.").
				Default("").
				Example("agentetl").
				LintRule(`root = if this.type() == "string" && this != "" && !this.re_match("`+metricNamePattern+`") { "prefix %q is not a valid Prometheus metric name prefix, it must match `+metricNamePattern+`".format(this) }`),
			service.NewBoolField(pmFieldUseHistogramTiming).
				Description("Whether to export timing metrics as histograms (using `"+pmFieldHistogramBuckets+"`). When `false` timings are exported as summaries with quantiles defined by `"+pmFieldSummaryQuantilesObjectives+"`. Histograms can be aggregated across instances and streams, summaries cannot.").
				Default(false).
				Advanced(),
			service.NewFloatListField(pmFieldHistogramBuckets).
				Description("Upper bounds, in seconds, of the histogram buckets used for timing metrics when `"+pmFieldUseHistogramTiming+"` is `true`. Bounds must be strictly increasing; a `+Inf` bucket is always added implicitly. An empty list uses the Prometheus client default buckets.").
				Default(defaultHistogramBuckets).
				Example([]any{0.001, 0.01, 0.1, 1.0, 10.0}).
				Advanced().
				LintRule(`root = if this.type() == "array" && (this.sort() != this || this.unique().length() != this.length()) { "histogram_buckets must be listed in strictly increasing order" }`),
			service.NewObjectListField(pmFieldSummaryQuantilesObjectives,
				service.NewFloatField(pmFieldSummaryQuantile).
					Description("The quantile to compute, between 0 and 1 inclusive.").
					Example(0.9).
					LintRule(`root = if this.type() == "number" && (this < 0 || this > 1) { "quantile must be between 0 and 1 inclusive" }`),
				service.NewFloatField(pmFieldSummaryError).
					Description("The absolute error allowed when estimating the quantile, greater than 0 and at most 1. Smaller values are more accurate but cost more memory and CPU.").
					Example(0.01).
					LintRule(`root = if this.type() == "number" && (this <= 0 || this > 1) { "error must be greater than 0 and at most 1" }`),
			).
				Description("The quantiles reported by timing summaries when `"+pmFieldUseHistogramTiming+"` is `false`. An empty list produces summaries with only a count and a sum.").
				Default([]any{
					map[string]any{pmFieldSummaryQuantile: 0.5, pmFieldSummaryError: 0.05},
					map[string]any{pmFieldSummaryQuantile: 0.9, pmFieldSummaryError: 0.01},
					map[string]any{pmFieldSummaryQuantile: 0.99, pmFieldSummaryError: 0.001},
				}).
				Advanced(),
			service.NewBoolField(pmFieldAddProcessMetrics).
				Description("Whether to export process metrics such as CPU, memory and open file descriptors (`process_*`), where the platform supports them.").
				Default(true),
			service.NewBoolField(pmFieldAddGoMetrics).
				Description("Whether to export Go runtime metrics such as goroutines, GC and memory statistics (`go_*`).").
				Default(true),
			service.NewStringMapField(pmFieldConstLabels).
				Description("Labels with fixed values added to every exported metric, e.g. to identify the deployment. Label names must match `"+labelNamePattern+"`, must not start with `__` and must not be `quantile` or `le` (reserved for summaries and histograms) or `label` or `path` (added by Benthos to every component metric). Avoid `stream` when running in streams mode, where Benthos adds it to every metric and the clashing metrics would be dropped.").
				Default(map[string]any{}).
				Example(map[string]any{"env": "production", "team": "data"}).
				LintRule(`root = if this.type() == "object" { this.keys().sort().filter(k -> !k.re_match("`+labelNamePattern+`") || k.has_prefix("__") || ["quantile", "le", "label", "path"].contains(k)).map_each(k -> "const label name %q is invalid: `+constLabelRule+`".format(k)) }`),
			service.NewStringField(pmFieldFileOutputPath).
				Description("An optional file path to which the metrics are written in the Prometheus text exposition format when the exporter shuts down. This is useful for batch runs that exit before they could be scraped, e.g. together with the node_exporter textfile collector. The file is replaced atomically.").
				Default("").
				Example("/var/lib/node_exporter/textfile/agentetl.prom").
				Advanced(),
		).
		Example("Custom prefix and labels", "Prefix all pipeline metrics and label them with the deployment environment.", `
http:
  address: 0.0.0.0:4195
metrics:
  prometheus:
    prefix: agentetl
    const_labels:
      env: production
`).
		Example("Histogram timings", "Export timings as histograms so that latencies can be aggregated across instances.", `
metrics:
  prometheus:
    use_histogram_timing: true
    histogram_buckets: [ 0.001, 0.01, 0.1, 1, 10 ]
`)
}

func init() {
	service.MustRegisterMetricsExporter("prometheus", prometheusSpec(),
		func(conf *service.ParsedConfig, log *service.Logger) (service.MetricsExporter, error) {
			return newPrometheusFromParsed(conf, log)
		})
}

//------------------------------------------------------------------------------

type metricKind int

const (
	kindCounter metricKind = iota
	kindGauge
	kindTimer
)

func (k metricKind) String() string {
	switch k {
	case kindCounter:
		return "counter"
	case kindGauge:
		return "gauge"
	default:
		return "timer"
	}
}

// registeredMetric is a vector registered under one sanitised metric name.
// Its fields are immutable after registration, so constructors returned to
// Benthos can read them without holding the exporter lock.
type registeredMetric struct {
	kind      metricKind
	labelKeys []string // sanitised, in registration order
	counter   *prometheus.CounterVec
	gauge     *prometheus.GaugeVec
	timer     prometheus.ObserverVec
}

// maxWarnings bounds the set of de-duplicated warnings, see warnOnce.
const maxWarnings = 1000

// promMetrics implements service.MetricsExporter on a private registry.
type promMetrics struct {
	log        *service.Logger
	registry   *prometheus.Registry
	registerer prometheus.Registerer // registry wrapped with const_labels
	handler    http.Handler

	prefix         string
	useHistogram   bool
	buckets        []float64
	objectives     map[float64]float64
	fileOutputPath string

	mu      sync.Mutex
	metrics map[string]*registeredMetric
	warned  map[string]struct{}
	// warnSuppressed is set once maxWarnings distinct warnings were logged.
	warnSuppressed bool
}

func newPrometheusFromParsed(conf *service.ParsedConfig, log *service.Logger) (*promMetrics, error) {
	p := &promMetrics{
		log:     log,
		metrics: map[string]*registeredMetric{},
		warned:  map[string]struct{}{},
	}

	var err error
	if p.prefix, err = conf.FieldString(pmFieldPrefix); err != nil {
		return nil, err
	}
	if p.prefix != "" && !metricNameRegexp.MatchString(p.prefix) {
		return nil, fmt.Errorf("prefix %q is not a valid Prometheus metric name prefix, it must match %s", p.prefix, metricNamePattern)
	}
	if p.useHistogram, err = conf.FieldBool(pmFieldUseHistogramTiming); err != nil {
		return nil, err
	}
	if p.buckets, err = conf.FieldFloatList(pmFieldHistogramBuckets); err != nil {
		return nil, err
	}
	if err := validateBuckets(p.buckets); err != nil {
		return nil, err
	}
	if len(p.buckets) == 0 {
		p.buckets = prometheus.DefBuckets
	}

	objConfs, err := conf.FieldObjectList(pmFieldSummaryQuantilesObjectives)
	if err != nil {
		return nil, err
	}
	p.objectives = make(map[float64]float64, len(objConfs))
	for i, oc := range objConfs {
		q, err := oc.FieldFloat(pmFieldSummaryQuantile)
		if err != nil {
			return nil, err
		}
		e, err := oc.FieldFloat(pmFieldSummaryError)
		if err != nil {
			return nil, err
		}
		if math.IsNaN(q) || q < 0 || q > 1 {
			return nil, fmt.Errorf("%s[%d]: quantile %v must be between 0 and 1 inclusive", pmFieldSummaryQuantilesObjectives, i, q)
		}
		if math.IsNaN(e) || e <= 0 || e > 1 {
			return nil, fmt.Errorf("%s[%d]: error %v must be greater than 0 and at most 1", pmFieldSummaryQuantilesObjectives, i, e)
		}
		p.objectives[q] = e
	}

	constLabels, err := conf.FieldStringMap(pmFieldConstLabels)
	if err != nil {
		return nil, err
	}
	for k, v := range constLabels {
		if !labelNameRegexp.MatchString(k) || strings.HasPrefix(k, "__") || slices.Contains(reservedConstLabels, k) {
			return nil, fmt.Errorf("const label name %q is invalid: %s", k, constLabelRule)
		}
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("const label %q has a value that is not valid UTF-8", k)
		}
	}

	if p.fileOutputPath, err = conf.FieldString(pmFieldFileOutputPath); err != nil {
		return nil, err
	}

	p.registry = prometheus.NewRegistry()
	p.registerer = prometheus.WrapRegistererWith(prometheus.Labels(constLabels), p.registry)

	addProcess, err := conf.FieldBool(pmFieldAddProcessMetrics)
	if err != nil {
		return nil, err
	}
	if addProcess {
		if err := p.registerer.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("registering process collector: %w", err)
		}
	}
	addGo, err := conf.FieldBool(pmFieldAddGoMetrics)
	if err != nil {
		return nil, err
	}
	if addGo {
		if err := p.registerer.Register(collectors.NewGoCollector()); err != nil {
			return nil, fmt.Errorf("registering Go collector: %w", err)
		}
	}

	// ContinueOnError keeps a scrape useful even if one collector misbehaves:
	// the healthy metrics are served and the failure is logged.
	p.handler = promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{
		ErrorLog:      promErrorLogger{log: log},
		ErrorHandling: promhttp.ContinueOnError,
	})
	return p, nil
}

// validateBuckets rejects buckets the client library would panic on (lazily,
// on first use) so that mistakes surface as a config error at startup.
func validateBuckets(buckets []float64) error {
	for i, b := range buckets {
		if math.IsNaN(b) {
			return fmt.Errorf("%s[%d] must be a number, got NaN", pmFieldHistogramBuckets, i)
		}
		if i > 0 && b <= buckets[i-1] {
			return fmt.Errorf("%s must be listed in strictly increasing order: %v is not greater than %v", pmFieldHistogramBuckets, b, buckets[i-1])
		}
	}
	return nil
}

//------------------------------------------------------------------------------

// sanitiseName turns an arbitrary string into a legal Prometheus metric name
// (allowColon) or label name. Every illegal rune becomes a single underscore
// so that names stay recognisable, and a leading digit is prefixed with an
// underscore rather than replaced so that no information is lost.
func sanitiseName(s string, allowColon bool) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s) + 1)
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', allowColon && r == ':':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// sanitiseLabelName additionally avoids the `__` prefix, which Prometheus
// reserves for internal labels and refuses to register.
func sanitiseLabelName(s string) string {
	n := sanitiseName(s, false)
	if strings.HasPrefix(n, "__") {
		n = "_" + strings.TrimLeft(n, "_")
	}
	return n
}

// metricName builds the exposed name of a Benthos metric, see the package
// documentation for the rationale behind the timer suffix.
func (p *promMetrics) metricName(name string, kind metricKind) string {
	n := sanitiseName(name, true)
	if kind == kindTimer && !strings.HasSuffix(n, "_seconds") {
		n = strings.TrimSuffix(n, "_ns") + "_seconds"
	}
	if p.prefix == "" {
		return n
	}
	if strings.HasSuffix(p.prefix, "_") || strings.HasSuffix(p.prefix, ":") {
		return p.prefix + n
	}
	return p.prefix + "_" + n
}

// warnOnce logs a warning the first time a given message is seen. Metric
// constructors can be called for every component (and sometimes every
// message), so repeating the same warning would flood the logs. Once
// maxWarnings distinct messages have been logged the rest are suppressed, so
// that neither memory nor the log grows without bound.
func (p *promMetrics) warnOnce(msg string) {
	var toLog string
	p.mu.Lock()
	_, seen := p.warned[msg]
	switch {
	case seen:
	case len(p.warned) < maxWarnings:
		p.warned[msg] = struct{}{}
		toLog = msg
	case !p.warnSuppressed:
		p.warnSuppressed = true
		toLog = "Too many distinct Prometheus metric warnings, suppressing further ones"
	}
	p.mu.Unlock()
	if toLog != "" {
		p.log.Warn(toLog)
	}
}

// callSafely runs fn and converts a panic into an error. The client library
// panics on a few inputs (e.g. a `quantile` label on a summary); whatever the
// pipeline throws at us, a metric must never take the process down.
func callSafely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("prometheus client panicked: %v", r)
		}
	}()
	return fn()
}

// labelPermutation returns, for each registered label key, the index of the
// same key in requested, or ok == false if the two are not the same set.
// Benthos orders namespace labels itself, so the same set can arrive in a
// different order (e.g. from a metric processor) and must still be accepted.
func labelPermutation(registered, requested []string) (perm []int, ok bool) {
	if len(registered) != len(requested) {
		return nil, false
	}
	perm = make([]int, len(registered))
	used := make([]bool, len(requested))
	for i, k := range registered {
		found := false
		for j, rk := range requested {
			if !used[j] && rk == k {
				perm[i], used[j], found = j, true, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return perm, true
}

func isIdentity(perm []int) bool {
	for i, j := range perm {
		if i != j {
			return false
		}
	}
	return true
}

// getOrRegister returns the vector registered under name, creating it when
// needed, plus the permutation mapping the caller's label order to the
// registered order (nil for identity). It returns nil when the request cannot
// be honoured, after logging why.
func (p *promMetrics) getOrRegister(name string, kind metricKind, labelKeys []string) (*registeredMetric, []int) {
	fqName := p.metricName(name, kind)
	keys := make([]string, len(labelKeys))
	for i, k := range labelKeys {
		keys[i] = sanitiseLabelName(k)
	}

	p.mu.Lock()
	existing, exists := p.metrics[fqName]
	if exists {
		p.mu.Unlock()
		if existing.kind != kind {
			p.warnOnce(fmt.Sprintf("Ignoring %s metric %q: the name %q is already registered as a %s", kind, name, fqName, existing.kind))
			return nil, nil
		}
		perm, ok := labelPermutation(existing.labelKeys, keys)
		if !ok {
			p.warnOnce(fmt.Sprintf("Ignoring %s metric %q with labels [%s]: %q is already registered with labels [%s] and Prometheus requires one label set per metric name",
				kind, name, strings.Join(keys, ", "), fqName, strings.Join(existing.labelKeys, ", ")))
			return nil, nil
		}
		if isIdentity(perm) {
			perm = nil
		}
		return existing, perm
	}
	m := &registeredMetric{kind: kind, labelKeys: keys}
	help := fmt.Sprintf("Benthos %s metric %s.", kind, strconv.Quote(name))
	if kind == kindTimer {
		help = fmt.Sprintf("Benthos timer metric %s, in seconds.", strconv.Quote(name))
	}
	err := callSafely(func() error {
		var c prometheus.Collector
		switch kind {
		case kindCounter:
			m.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: fqName, Help: help}, keys)
			c = m.counter
		case kindGauge:
			m.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: fqName, Help: help}, keys)
			c = m.gauge
		default:
			if p.useHistogram {
				if slices.Contains(keys, "le") {
					return errors.New(`"le" is not allowed as a label name of histograms`)
				}
				v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: fqName, Help: help, Buckets: p.buckets}, keys)
				m.timer, c = v, v
			} else {
				if slices.Contains(keys, "quantile") {
					return errors.New(`"quantile" is not allowed as a label name of summaries`)
				}
				v := prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: fqName, Help: help, Objectives: p.objectives}, keys)
				m.timer, c = v, v
			}
		}
		return p.registerer.Register(c)
	})
	if err == nil {
		p.metrics[fqName] = m
	}
	p.mu.Unlock()

	if err != nil {
		// Failures are not cached: an identical later request fails the same
		// way and its warning is de-duplicated by warnOnce.
		p.warnOnce(fmt.Sprintf("Ignoring %s metric %q (exposed as %q) with labels [%s]: %v", kind, name, fqName, strings.Join(keys, ", "), err))
		return nil, nil
	}
	return m, nil
}

// labelValues checks, reorders and sanitises the values handed to a
// constructor. A wrong number of values is a caller bug that the client would
// reject anyway; checking it here keeps the warning free of the values
// themselves so that it is logged once per metric rather than once per series.
// Invalid UTF-8 is replaced rather than dropping the whole series.
func (p *promMetrics) labelValues(m *registeredMetric, name string, perm []int, values []string) ([]string, bool) {
	if len(values) != len(m.labelKeys) {
		p.warnOnce(fmt.Sprintf("Dropping values of %s metric %q: expected %d label values for labels [%s], got %d",
			m.kind, name, len(m.labelKeys), strings.Join(m.labelKeys, ", "), len(values)))
		return nil, false
	}
	out := make([]string, len(values))
	if perm != nil {
		for i, j := range perm {
			out[i] = values[j]
		}
	} else {
		copy(out, values)
	}
	for i, v := range out {
		if !utf8.ValidString(v) {
			out[i] = strings.ToValidUTF8(v, "\uFFFD")
		}
	}
	return out, true
}

// NewCounterCtor returns a constructor for counters of the given name and
// label keys.
func (p *promMetrics) NewCounterCtor(name string, labelKeys ...string) service.MetricsExporterCounterCtor {
	m, perm := p.getOrRegister(name, kindCounter, labelKeys)
	if m == nil {
		return func(...string) service.MetricsExporterCounter { return noopMetric{} }
	}
	return func(values ...string) service.MetricsExporterCounter {
		lv, ok := p.labelValues(m, name, perm, values)
		if !ok {
			return noopMetric{}
		}
		var c prometheus.Counter
		err := callSafely(func() (err error) {
			c, err = m.counter.GetMetricWithLabelValues(lv...)
			return
		})
		if err != nil {
			p.warnOnce(fmt.Sprintf("Dropping values of counter metric %q: %v", name, err))
			return noopMetric{}
		}
		return promCounter{c: c}
	}
}

// NewTimerCtor returns a constructor for timers of the given name and label
// keys. Observations are exported in seconds.
func (p *promMetrics) NewTimerCtor(name string, labelKeys ...string) service.MetricsExporterTimerCtor {
	m, perm := p.getOrRegister(name, kindTimer, labelKeys)
	if m == nil {
		return func(...string) service.MetricsExporterTimer { return noopMetric{} }
	}
	return func(values ...string) service.MetricsExporterTimer {
		lv, ok := p.labelValues(m, name, perm, values)
		if !ok {
			return noopMetric{}
		}
		var o prometheus.Observer
		err := callSafely(func() (err error) {
			o, err = m.timer.GetMetricWithLabelValues(lv...)
			return
		})
		if err != nil {
			p.warnOnce(fmt.Sprintf("Dropping values of timer metric %q: %v", name, err))
			return noopMetric{}
		}
		return promTimer{o: o}
	}
}

// NewGaugeCtor returns a constructor for gauges of the given name and label
// keys.
func (p *promMetrics) NewGaugeCtor(name string, labelKeys ...string) service.MetricsExporterGaugeCtor {
	m, perm := p.getOrRegister(name, kindGauge, labelKeys)
	if m == nil {
		return func(...string) service.MetricsExporterGauge { return noopMetric{} }
	}
	return func(values ...string) service.MetricsExporterGauge {
		lv, ok := p.labelValues(m, name, perm, values)
		if !ok {
			return noopMetric{}
		}
		var g prometheus.Gauge
		err := callSafely(func() (err error) {
			g, err = m.gauge.GetMetricWithLabelValues(lv...)
			return
		})
		if err != nil {
			p.warnOnce(fmt.Sprintf("Dropping values of gauge metric %q: %v", name, err))
			return noopMetric{}
		}
		return promGauge{g: g}
	}
}

// HandlerFunc is discovered by Benthos through an interface assertion and
// served at `/metrics` and `/stats` on the service-wide HTTP server.
func (p *promMetrics) HandlerFunc() http.HandlerFunc {
	return p.handler.ServeHTTP
}

// Close writes the final metrics to file_output_path when configured, so that
// batch runs which exit before being scraped still leave their metrics
// behind. The registry itself needs no teardown.
func (p *promMetrics) Close(context.Context) error {
	if p.fileOutputPath == "" {
		return nil
	}
	if err := prometheus.WriteToTextfile(p.fileOutputPath, p.registry); err != nil {
		return fmt.Errorf("writing metrics to %s: %w", p.fileOutputPath, err)
	}
	return nil
}

//------------------------------------------------------------------------------

type promCounter struct{ c prometheus.Counter }

// Incr ignores non-positive deltas: Prometheus counters are monotonic and the
// client panics on negative increments.
func (p promCounter) Incr(n int64) {
	if n > 0 {
		p.c.Add(float64(n))
	}
}

// IncrFloat64 ignores non-positive and NaN deltas, see Incr.
func (p promCounter) IncrFloat64(f float64) {
	if f > 0 {
		p.c.Add(f)
	}
}

type promGauge struct{ g prometheus.Gauge }

func (p promGauge) Set(v int64)          { p.g.Set(float64(v)) }
func (p promGauge) SetFloat64(v float64) { p.g.Set(v) }

type promTimer struct{ o prometheus.Observer }

// Timing converts the Benthos nanosecond delta into seconds.
func (p promTimer) Timing(ns int64) { p.o.Observe(float64(ns) / 1e9) }

// noopMetric stands in for metrics that could not be registered so that
// callers never have to deal with a nil metric.
type noopMetric struct{}

func (noopMetric) Incr(int64)          {}
func (noopMetric) IncrFloat64(float64) {}
func (noopMetric) Set(int64)           {}
func (noopMetric) SetFloat64(float64)  {}
func (noopMetric) Timing(int64)        {}

// promErrorLogger adapts the Benthos logger to promhttp's error log.
type promErrorLogger struct{ log *service.Logger }

func (l promErrorLogger) Println(v ...any) {
	l.log.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// Compile-time interface checks.
var (
	_ service.MetricsExporter = (*promMetrics)(nil)
	_ interface {
		HandlerFunc() http.HandlerFunc
	} = (*promMetrics)(nil)
)
