package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"

	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
)

// Metrics are the orchestrator's Prometheus metrics. It implements the
// Observer interfaces of the coordinator and of the pipeline manager, so
// counts are taken where things happen rather than re-derived by polling.
type Metrics struct {
	Registry *prometheus.Registry

	tasksQueued   *prometheus.CounterVec
	tasksFinished *prometheus.CounterVec
	decisions     *prometheus.CounterVec
	conflicts     *prometheus.CounterVec
	executions    *prometheus.CounterVec
	rowsIn        prometheus.Counter
	rowsOut       prometheus.Counter
	execErrors    prometheus.Counter
	engineApply   *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
}

// Sources are read at scrape time for gauges.
type Sources struct {
	Coordinator    *orch.Coordinator
	Manager        *orchestrator.Manager
	EngineRestarts func() int64
	EngineUp       func() bool
}

// NewMetrics registers every metric on a fresh registry, together with the
// Go and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		tasksQueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_tasks_queued_total", Help: "Tasks put on an agent type's queue (or assigned at once).",
		}, []string{"agent_type"}),
		tasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_tasks_finished_total", Help: "Tasks that ended, by agent type and final status (done, failed, superseded).",
		}, []string{"agent_type", "status"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_decisions_total", Help: "Decisions recorded, by action.",
		}, []string{"action"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_conflicts_total", Help: "Conflicts resolved, by kind and deciding rule.",
		}, []string{"kind", "rule"}),
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_executions_total", Help: "Finished executions by status.",
		}, []string{"status"}),
		rowsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_execution_rows_in_total", Help: "Rows read by finished executions.",
		}),
		rowsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_execution_rows_out_total", Help: "Rows written by finished executions.",
		}),
		execErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_execution_errors_total", Help: "Errors counted by finished executions.",
		}),
		engineApply: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_engine_apply_total", Help: "Stream changes sent to the engine, by operation and result.",
		}, []string{"op", "result"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentetl_orchestrator_http_requests_total", Help: "API requests by route and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentetl_orchestrator_http_request_duration_seconds", Help: "API latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	r.MustRegister(m.tasksQueued, m.tasksFinished, m.decisions, m.conflicts, m.executions,
		m.rowsIn, m.rowsOut, m.execErrors, m.engineApply, m.httpRequests, m.httpDuration,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Watch registers the gauges that are read from live state at scrape time.
func (m *Metrics) Watch(s Sources) {
	m.Registry.MustRegister(&stateCollector{s: s})
}

// TaskQueued implements orch.Observer.
func (m *Metrics) TaskQueued(t model.AgentType) { m.tasksQueued.WithLabelValues(string(t)).Inc() }

// TaskFinished implements orch.Observer.
func (m *Metrics) TaskFinished(t model.AgentType, status string) {
	m.tasksFinished.WithLabelValues(string(t), status).Inc()
}

// Decision implements orch.Observer.
func (m *Metrics) Decision(action string) { m.decisions.WithLabelValues(action).Inc() }

// Conflict implements orch.Observer.
func (m *Metrics) Conflict(kind, rule string) { m.conflicts.WithLabelValues(kind, rule).Inc() }

// ExecutionFinished implements orchestrator.Observer.
func (m *Metrics) ExecutionFinished(status string, in, out, errs int64) {
	m.executions.WithLabelValues(status).Inc()
	m.rowsIn.Add(float64(in))
	m.rowsOut.Add(float64(out))
	m.execErrors.Add(float64(errs))
}

// EngineApply implements orchestrator.Observer.
func (m *Metrics) EngineApply(op string, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.engineApply.WithLabelValues(op, res).Inc()
}

type stateCollector struct{ s Sources }

var (
	descPipelines  = prometheus.NewDesc("agentetl_orchestrator_pipelines", "Pipelines by state and type.", []string{"state", "type"}, nil)
	descQueue      = prometheus.NewDesc("agentetl_orchestrator_tasks", "Live tasks by agent type and status (queued, waiting, running).", []string{"agent_type", "status"}, nil)
	descAgents     = prometheus.NewDesc("agentetl_orchestrator_agents", "Registered agents by type and availability.", []string{"agent_type", "online"}, nil)
	descRestarts   = prometheus.NewDesc("agentetl_orchestrator_engine_restarts_total", "Times the supervised engine was restarted.", nil, nil)
	descEngineUp   = prometheus.NewDesc("agentetl_orchestrator_engine_up", "1 when the engine answers and is reconciled.", nil, nil)
	descRunningExe = prometheus.NewDesc("agentetl_orchestrator_executions_running", "Executions in flight.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPipelines, descQueue, descAgents, descRestarts, descEngineUp, descRunningExe} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.Manager != nil {
		for k, n := range c.s.Manager.States() {
			ch <- prometheus.MustNewConstMetric(descPipelines, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
		running := 0
		for _, p := range c.s.Manager.List() {
			if _, ok := c.s.Manager.Running(p.ID); ok {
				running++
			}
		}
		ch <- prometheus.MustNewConstMetric(descRunningExe, prometheus.GaugeValue, float64(running))
	}
	if c.s.Coordinator != nil {
		for _, w := range c.s.Coordinator.Workload() {
			t := string(w.AgentType)
			ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(w.Queued), t, "queued")
			ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(w.Waiting), t, "waiting")
			ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(w.Running), t, "running")
			ch <- prometheus.MustNewConstMetric(descAgents, prometheus.GaugeValue, float64(w.Online), t, "true")
			ch <- prometheus.MustNewConstMetric(descAgents, prometheus.GaugeValue, float64(w.Agents-w.Online), t, "false")
		}
	}
	if c.s.EngineRestarts != nil {
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(c.s.EngineRestarts()))
	}
	if c.s.EngineUp != nil {
		v := 0.0
		if c.s.EngineUp() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descEngineUp, prometheus.GaugeValue, v)
	}
}
