// Package httpapi is the orchestrator's REST API under /api/v1, documented
// by api/openapi.yaml, plus /healthz, /readyz and /metrics.
//
// Every endpoint except /healthz and /readyz (probes must work without
// secrets) requires "Authorization: Bearer <token>" unless the server runs
// with Insecure (--insecure-dev). Errors are JSON objects:
//
//	{"error": "message", "code": "invalid_config", "fields": [...], "lintErrors": [...]}
//
// Request bodies above MaxBody are rejected with 413 before they are
// parsed.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/engine"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/orchestrator/autoloop"
	"github.com/agentetl/agentetl/internal/redact"
)

// MaxBody is the largest request body accepted (1 MiB). A PipelineConfig
// is a few KiB; anything near this is a mistake or an attack.
const MaxBody = 1 << 20

// Config wires the API to the orchestrator's parts.
type Config struct {
	Manager     *orchestrator.Manager
	Coordinator *orch.Coordinator
	Store       metastore.Store
	Metrics     *Metrics
	Token       string
	Insecure    bool
	Logger      *slog.Logger
	// Ready reports why the orchestrator is not ready ("" when it is).
	Ready func(ctx context.Context) string
	// Reviews answers the review queue; nil when the automatic loop is
	// off (the review endpoints then return 503).
	Reviews ReviewService
}

// ReviewService is the review queue of the automatic loop; *autoloop.Loop
// implements it.
type ReviewService interface {
	Reviews(ctx context.Context, status string) ([]autoloop.Review, error)
	Approve(ctx context.Context, id, reviewer, comment string) (autoloop.Review, error)
	Reject(ctx context.Context, id, reviewer, comment string) (autoloop.Review, error)
	Edit(ctx context.Context, id, reviewer, comment string, edits []autoloop.FieldEdit) (autoloop.Review, error)
}

type server struct {
	Config
	log      *slog.Logger
	patterns []string
}

// New returns the HTTP handler. It refuses to build without a token unless
// Insecure is set, so a misconfigured deployment cannot end up open.
func New(c Config) (http.Handler, error) {
	h, _, err := build(c)
	return h, err
}

// Routes lists every "METHOD /path" the API serves; a test checks each is
// documented in api/openapi.yaml.
func Routes() []string {
	_, s, _ := build(Config{Insecure: true})
	return s.patterns
}

func build(c Config) (http.Handler, *server, error) {
	if c.Token == "" && !c.Insecure {
		return nil, nil, errors.New("httpapi: a bearer token is required (or insecure dev mode)")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	s := &server{Config: c, log: c.Logger.With("component", "api")}
	mux := http.NewServeMux()
	route := func(pattern string, h func(http.ResponseWriter, *http.Request) error, auth bool) {
		var hh http.Handler = s.wrap(pattern, h)
		if auth {
			hh = s.auth(hh)
		}
		mux.Handle(pattern, hh)
		s.patterns = append(s.patterns, pattern)
	}
	route("GET /healthz", s.healthz, false)
	route("GET /readyz", s.readyz, false)
	if c.Metrics != nil {
		mux.Handle("GET /metrics", s.auth(promhttp.HandlerFor(c.Metrics.Registry, promhttp.HandlerOpts{})))
	}
	s.patterns = append(s.patterns, "GET /metrics")

	route("GET /api/v1/pipelines", s.listPipelines, true)
	route("POST /api/v1/pipelines", s.createPipeline, true)
	route("POST /api/v1/pipelines/dry-run", s.dryRunNew, true)
	route("GET /api/v1/pipelines/{id}", s.getPipeline, true)
	route("PUT /api/v1/pipelines/{id}", s.updatePipeline, true)
	route("DELETE /api/v1/pipelines/{id}", s.deletePipeline, true)
	route("GET /api/v1/pipelines/{id}/versions", s.pipelineVersions, true)
	route("POST /api/v1/pipelines/{id}/dry-run", s.dryRunExisting, true)
	route("POST /api/v1/pipelines/{id}/run", s.runPipeline, true)
	route("POST /api/v1/pipelines/{id}/pause", s.pausePipeline, true)
	route("POST /api/v1/pipelines/{id}/resume", s.resumePipeline, true)
	route("POST /api/v1/pipelines/{id}/coordinate", s.coordinate, true)
	route("GET /api/v1/pipelines/{id}/executions", s.pipelineExecutions, true)
	route("POST /api/v1/pipelines/{id}/replay", s.replayDeadLetters, true)

	route("GET /api/v1/executions", s.listExecutions, true)
	route("GET /api/v1/executions/{id}", s.getExecution, true)
	route("POST /api/v1/executions/{id}/cancel", s.cancelExecution, true)

	route("GET /api/v1/decisions", s.listDecisions, true)
	route("GET /api/v1/errors", s.listErrors, true)
	route("GET /api/v1/catalog", s.searchCatalog, true)
	route("GET /api/v1/catalog/{id}", s.getCatalogEntry, true)

	route("GET /api/v1/tasks", s.listTasks, true)
	route("POST /api/v1/tasks", s.createTask, true)
	route("POST /api/v1/tasks/claim", s.claimTask, true)
	route("GET /api/v1/tasks/{id}", s.getTask, true)
	route("POST /api/v1/tasks/{id}/complete", s.completeTask, true)
	route("GET /api/v1/agents", s.listAgents, true)
	route("POST /api/v1/agents", s.registerAgent, true)
	route("POST /api/v1/agents/{id}/heartbeat", s.heartbeat, true)
	route("POST /api/v1/conflicts", s.resolveConflict, true)
	route("POST /api/v1/reconcile", s.reconcile, true)
	route("GET /api/v1/reviews", s.listReviews, true)
	route("POST /api/v1/reviews/{id}/approve", s.approveReview, true)
	route("POST /api/v1/reviews/{id}/reject", s.rejectReview, true)
	route("POST /api/v1/reviews/{id}/edit", s.editReview, true)

	// Everything else under /api/ is a JSON 404 (after auth, so the API's
	// shape is not probeable without a token).
	mux.Handle("/api/", s.auth(s.wrap("unknown", func(w http.ResponseWriter, r *http.Request) error {
		return apiErr(http.StatusNotFound, "not_found", "no such endpoint: %s %s", r.Method, r.URL.Path)
	})))
	return mux, s, nil
}

// ---- plumbing ----

// apiError is an error with its HTTP status and machine-readable code.
type apiError struct {
	status int
	body   map[string]any
}

func (e *apiError) Error() string { return fmt.Sprint(e.body["error"]) }

func apiErr(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, body: map[string]any{"error": fmt.Sprintf(format, args...), "code": code}}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) {
	w.code = c
	w.ResponseWriter.WriteHeader(c)
}

func (s *server) wrap(route string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(sw, r.Body, MaxBody)
		}
		if err := h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		if s.Metrics != nil {
			s.Metrics.httpRequests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
			s.Metrics.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

func (s *server) auth(next http.Handler) http.Handler {
	if s.Insecure {
		return next
	}
	want := []byte("Bearer " + s.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		// Constant time, so the token cannot be guessed byte by byte from
		// response timings.
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentetl"`)
			msg := "missing bearer token: send Authorization: Bearer <token>"
			if len(got) > 0 {
				msg = "invalid bearer token"
			}
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": msg, "code": "unauthorized"})
			if s.Metrics != nil {
				s.Metrics.httpRequests.WithLabelValues("unauthorized", "401").Inc()
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError maps domain errors to status codes. Messages are redacted:
// they may quote engine or driver errors.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae  *apiError
		ve  *orchestrator.ValidationError
		lf  *orchestrator.LintFailure
		vc  *orchestrator.VersionConflict
		le  *engine.LintError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = apiErr(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes (%d MiB)", MaxBody, MaxBody>>20)
	case errors.As(err, &ve):
		ae = apiErr(http.StatusBadRequest, "invalid_config", "%s", ve.Error())
		ae.body["fields"] = ve.Errors
	case errors.As(err, &lf):
		ae = apiErr(http.StatusBadRequest, "lint_failed", "%s; nothing was applied", lf.Error())
		ae.body["lintErrors"] = lf.Issues
		ae.body["yaml"] = redact.String(lf.YAML)
	case errors.As(err, &le):
		ae = apiErr(http.StatusBadGateway, "engine_lint_failed", "%s", le.Error())
		ae.body["lintErrors"] = le.Issues
	case errors.As(err, &vc):
		ae = apiErr(http.StatusConflict, "version_conflict", "%s", vc.Error())
		ae.body["currentVersion"] = vc.Current
	case errors.Is(err, orchestrator.ErrNotFound), errors.Is(err, metastore.ErrNotFound):
		ae = apiErr(http.StatusNotFound, "not_found", "%s", err.Error())
	case errors.Is(err, orchestrator.ErrExists):
		ae = apiErr(http.StatusConflict, "exists", "%s", err.Error())
	case errors.Is(err, orchestrator.ErrOverlap), errors.Is(err, orchestrator.ErrPaused),
		errors.Is(err, orchestrator.ErrNotBatch), errors.Is(err, orchestrator.ErrNotRunning):
		ae = apiErr(http.StatusConflict, "conflict", "%s", err.Error())
	case errors.Is(err, orch.ErrUnknownAgentType), errors.Is(err, orch.ErrInvalidTask), errors.Is(err, orch.ErrInvalidConflict):
		ae = apiErr(http.StatusBadRequest, "invalid_request", "%s", err.Error())
	case errors.Is(err, orch.ErrNoAgent), errors.Is(err, orch.ErrNotAssigned):
		ae = apiErr(http.StatusConflict, "conflict", "%s", err.Error())
	case errors.Is(err, engine.ErrUnavailable):
		ae = apiErr(http.StatusServiceUnavailable, "engine_unavailable", "%s", err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		ae = apiErr(http.StatusServiceUnavailable, "timeout", "request did not complete: %s", err.Error())
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", redact.String(err.Error()))
		ae = apiErr(http.StatusInternalServerError, "internal", "internal error: %s", err.Error())
	}
	if msg, ok := ae.body["error"].(string); ok {
		ae.body["error"] = redact.String(msg)
	}
	if ae.status >= 500 {
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", ae.status, "err", ae.body["error"])
	}
	writeJSON(w, ae.status, ae.body)
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, apiErr(http.StatusBadRequest, "bad_body", "reading the request body: %v", err)
	}
	return b, nil
}

// decodeJSON decodes a small JSON request strictly.
func decodeJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiErr(http.StatusBadRequest, "bad_json", "malformed request body: %v", err)
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, "bad_json", "trailing data after the JSON body")
	}
	return nil
}

func queryInt(r *http.Request, name string, def, maxV int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, apiErr(http.StatusBadRequest, "bad_query", "query parameter %s must be a non-negative integer", name)
	}
	if maxV > 0 && n > maxV {
		n = maxV
	}
	return n, nil
}

func queryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, apiErr(http.StatusBadRequest, "bad_query", "query parameter %s must be an RFC 3339 time", name)
	}
	return t, nil
}

// ---- health ----

func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	return nil
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if why := s.Ready(ctx); why != "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reason": redact.String(why)})
			return nil
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	return nil
}

// ---- pipelines ----

func (s *server) listPipelines(w http.ResponseWriter, r *http.Request) error {
	st := r.URL.Query().Get("state")
	if st == "" {
		b, err := s.Manager.ListJSON()
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(b)
		return nil
	}
	// The list omits each YAML: it is large and GET /pipelines/{id} has it.
	var out []orchestrator.Pipeline
	for _, p := range s.Manager.List() {
		if p.State == st {
			p.YAML = ""
			out = append(out, p)
		}
	}
	if out == nil {
		out = []orchestrator.Pipeline{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": out, "count": len(out)})
	return nil
}

func decodeConfig(r *http.Request) (model.PipelineConfig, error) {
	b, err := readBody(r)
	if err != nil {
		return model.PipelineConfig{}, err
	}
	return orchestrator.DecodePipelineConfig(b)
}

func dryRunFlag(r *http.Request) bool {
	v := r.URL.Query().Get("dry_run")
	return v == "true" || v == "1"
}

func (s *server) createPipeline(w http.ResponseWriter, r *http.Request) error {
	pc, err := decodeConfig(r)
	if err != nil {
		return err
	}
	if dryRunFlag(r) {
		writeJSON(w, http.StatusOK, s.Manager.DryRun(pc, ""))
		return nil
	}
	p, err := s.Manager.Create(r.Context(), pc, r.URL.Query().Get("comment"))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/pipelines/"+p.ID)
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(p.Version)))
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (s *server) dryRunNew(w http.ResponseWriter, r *http.Request) error {
	pc, err := decodeConfig(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.Manager.DryRun(pc, ""))
	return nil
}

func (s *server) dryRunExisting(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	pc, err := decodeConfig(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.Manager.DryRun(pc, id))
	return nil
}

func (s *server) getPipeline(w http.ResponseWriter, r *http.Request) error {
	p, err := s.Manager.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(p.Version)))
	type withRun struct {
		orchestrator.Pipeline
		Running *metastore.Execution `json:"runningExecution,omitempty"`
		NextRun *time.Time           `json:"nextRun,omitempty"`
	}
	out := withRun{Pipeline: p}
	if ex, ok := s.Manager.Running(p.ID); ok {
		out.Running = &ex
	}
	if t := s.Manager.NextRun(p.ID); !t.IsZero() {
		out.NextRun = &t
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// expectedVersion reads the version an update is based on, from If-Match
// ("3" or W/"3") or ?version=3. It is required: an update without it
// could silently overwrite someone else's change.
func expectedVersion(r *http.Request) (int, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	if v == "" {
		v = r.URL.Query().Get("version")
	}
	if v == "" {
		return 0, apiErr(http.StatusPreconditionRequired, "version_required",
			"send the version your change is based on, as If-Match: \"<version>\" or ?version=<version>, so concurrent updates cannot overwrite each other")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, apiErr(http.StatusBadRequest, "bad_version", "version must be a positive integer, not %q", v)
	}
	return n, nil
}

func (s *server) updatePipeline(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	pc, err := decodeConfig(r)
	if err != nil {
		return err
	}
	if dryRunFlag(r) {
		writeJSON(w, http.StatusOK, s.Manager.DryRun(pc, id))
		return nil
	}
	ver, err := expectedVersion(r)
	if err != nil {
		return err
	}
	p, err := s.Manager.Update(r.Context(), id, pc, ver, r.URL.Query().Get("comment"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(p.Version)))
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *server) deletePipeline(w http.ResponseWriter, r *http.Request) error {
	if err := s.Manager.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) pipelineVersions(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.Manager.History(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": vs, "count": len(vs)})
	return nil
}

func (s *server) runPipeline(w http.ResponseWriter, r *http.Request) error {
	ex, err := s.Manager.Run(r.Context(), r.PathValue("id"), "manual")
	if err != nil {
		if errors.Is(err, orchestrator.ErrOverlap) {
			ae := apiErr(http.StatusConflict, "overlap", "%s", err.Error())
			ae.body["execution"] = ex
			return ae
		}
		return err
	}
	w.Header().Set("Location", "/api/v1/executions/"+ex.ID)
	writeJSON(w, http.StatusAccepted, ex)
	return nil
}

// replayDeadLetters re-sends a pipeline's pending dead letters (of one
// fingerprint, when given) through its current config.
func (s *server) replayDeadLetters(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Fingerprint string `json:"fingerprint"`
		Limit       int    `json:"limit"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &body); err != nil {
			return err
		}
	}
	if len(body.Fingerprint) > 128 {
		return apiErr(http.StatusBadRequest, "invalid_request", "fingerprint is longer than 128 characters")
	}
	if body.Limit < 0 {
		return apiErr(http.StatusBadRequest, "invalid_request", "limit must not be negative")
	}
	id := r.PathValue("id")
	start := time.Now()
	n, err := s.Manager.ReplayDeadLetters(r.Context(), id, body.Fingerprint, body.Limit)
	if err != nil {
		if errors.Is(err, orchestrator.ErrNoDeadLetter) {
			return apiErr(http.StatusConflict, "no_dead_letter", "%s", err.Error())
		}
		if !errors.Is(err, orchestrator.ErrNotFound) {
			return apiErr(http.StatusBadGateway, "replay_failed", "%s (%d replayed before the failure)", redact.String(err.Error()), n)
		}
		return err
	}
	s.log.Info("dead letters replayed", "pipeline", id, "fingerprint", body.Fingerprint, "replayed", n)
	writeJSON(w, http.StatusOK, map[string]any{"pipelineId": id, "fingerprint": body.Fingerprint, "replayed": n,
		"durationMs": time.Since(start).Milliseconds()})
	return nil
}

func (s *server) setState(w http.ResponseWriter, r *http.Request, state string) error {
	var body struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &body); err != nil {
			return err
		}
	}
	p, err := s.Manager.SetState(r.Context(), r.PathValue("id"), state, body.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *server) pausePipeline(w http.ResponseWriter, r *http.Request) error {
	return s.setState(w, r, orchestrator.StatePaused)
}

func (s *server) resumePipeline(w http.ResponseWriter, r *http.Request) error {
	return s.setState(w, r, orchestrator.StateActive)
}

func (s *server) coordinate(w http.ResponseWriter, r *http.Request) error {
	plan, err := s.Coordinator.CoordinateAgents(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, plan)
	return nil
}

// ---- executions ----

func (s *server) pipelineExecutions(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 50, 1000)
	if err != nil {
		return err
	}
	xs, err := s.Manager.Executions(r.Context(), r.PathValue("id"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"executions": xs, "count": len(xs)})
	return nil
}

func (s *server) listExecutions(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 50, 1000)
	if err != nil {
		return err
	}
	xs, err := s.Manager.Executions(r.Context(), r.URL.Query().Get("pipelineId"), limit)
	if err != nil {
		return err
	}
	if st := r.URL.Query().Get("status"); st != "" {
		kept := xs[:0]
		for _, x := range xs {
			if x.Status == st {
				kept = append(kept, x)
			}
		}
		xs = kept
	}
	writeJSON(w, http.StatusOK, map[string]any{"executions": xs, "count": len(xs)})
	return nil
}

func (s *server) getExecution(w http.ResponseWriter, r *http.Request) error {
	ex, err := s.Manager.Execution(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ex)
	return nil
}

func (s *server) cancelExecution(w http.ResponseWriter, r *http.Request) error {
	ex, err := s.Manager.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ex)
	return nil
}

// ---- decisions, errors, catalog ----

func (s *server) listDecisions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 100, 10000)
	if err != nil {
		return err
	}
	since, err := queryTime(r, "since")
	if err != nil {
		return err
	}
	until, err := queryTime(r, "until")
	if err != nil {
		return err
	}
	ds, err := s.Store.ListAgentDecisions(r.Context(), metastore.DecisionFilter{
		AgentType: model.AgentType(q.Get("agentType")), PipelineID: q.Get("pipelineId"), TaskID: q.Get("taskId"),
		Since: since, Until: until, Limit: limit,
	})
	if err != nil {
		return fmt.Errorf("list decisions: %w", err)
	}
	if a := q.Get("action"); a != "" {
		kept := ds[:0]
		for _, d := range ds {
			if d.Action == a {
				kept = append(kept, d)
			}
		}
		ds = kept
	}
	writeJSON(w, http.StatusOK, map[string]any{"decisions": ds, "count": len(ds)})
	return nil
}

func (s *server) listErrors(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 100, 10000)
	if err != nil {
		return err
	}
	since, err := queryTime(r, "since")
	if err != nil {
		return err
	}
	es, err := s.Store.ListPipelineErrors(r.Context(), metastore.ErrorFilter{
		PipelineID: q.Get("pipelineId"), Fingerprint: q.Get("fingerprint"), Category: q.Get("category"), Since: since, Limit: limit,
	})
	if err != nil {
		return fmt.Errorf("list errors: %w", err)
	}
	for i := range es {
		es[i].Message = redact.String(es[i].Message)
		es[i].StackTrace = redact.String(es[i].StackTrace)
	}
	writeJSON(w, http.StatusOK, map[string]any{"errors": es, "count": len(es)})
	return nil
}

func (s *server) searchCatalog(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 50, 1000)
	if err != nil {
		return err
	}
	es, err := s.Store.QueryCatalog(r.Context(), metastore.CatalogQuery{Text: q.Get("q"), SourceID: q.Get("sourceId"), Limit: limit})
	if err != nil {
		return fmt.Errorf("search catalog: %w", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es, "count": len(es)})
	return nil
}

func (s *server) getCatalogEntry(w http.ResponseWriter, r *http.Request) error {
	e, err := s.Store.GetCatalogEntry(r.Context(), r.PathValue("id"))
	if err != nil {
		if errors.Is(err, metastore.ErrNotFound) {
			return apiErr(http.StatusNotFound, "not_found", "catalog entry %q not found", r.PathValue("id"))
		}
		return fmt.Errorf("get catalog entry: %w", err)
	}
	// Schema versions are kept per entity; discovery keys them by the
	// entry id or by the schema's source id.
	hist, err := s.Store.GetSchemaHistory(r.Context(), e.ID)
	if err == nil && len(hist) == 0 && e.Schema.SourceID != "" {
		hist, err = s.Store.GetSchemaHistory(r.Context(), e.Schema.SourceID)
	}
	if err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return fmt.Errorf("schema history: %w", err)
	}
	if hist == nil {
		hist = []metastore.SchemaVersion{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entry": e, "versions": hist})
	return nil
}

// ---- tasks, agents, conflicts ----

func (s *server) listTasks(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 100, 10000)
	if err != nil {
		return err
	}
	ts, err := s.Store.ListTasks(r.Context(), metastore.TaskFilter{Type: q.Get("type"), Status: q.Get("status"), AssignedTo: q.Get("assignedTo"), Limit: limit})
	if err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": ts, "count": len(ts)})
	return nil
}

func (s *server) getTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.Store.GetTask(r.Context(), r.PathValue("id"))
	if err != nil {
		if errors.Is(err, metastore.ErrNotFound) {
			return apiErr(http.StatusNotFound, "not_found", "task %q not found", r.PathValue("id"))
		}
		return fmt.Errorf("get task: %w", err)
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *server) createTask(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ID       string          `json:"id"`
		Type     string          `json:"type"`
		Priority int             `json:"priority"`
		Payload  json.RawMessage `json:"payload"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if body.Type == "" {
		return apiErr(http.StatusBadRequest, "invalid_request", "type is required: discovery, mapping or error_resolution")
	}
	asg, err := s.Coordinator.AssignTask(r.Context(), model.Task{ID: body.ID, Priority: body.Priority, Payload: body.Payload}, model.AgentType(body.Type))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, asg)
	return nil
}

func (s *server) claimTask(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		AgentID string `json:"agentId"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	t, ok, err := s.Coordinator.Claim(r.Context(), body.AgentID)
	if err != nil {
		return err
	}
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *server) completeTask(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		AgentID string `json:"agentId"`
		orch.TaskResult
	}
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	t, err := s.Coordinator.Complete(r.Context(), r.PathValue("id"), body.AgentID, body.TaskResult)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *server) listAgents(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"agents": s.Coordinator.Agents(), "workload": s.Coordinator.Workload()})
	return nil
}

func (s *server) registerAgent(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Capacity int    `json:"capacity"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	a, err := s.Coordinator.Register(body.ID, model.AgentType(body.Type), body.Capacity, true)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	a, err := s.Coordinator.Heartbeat(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *server) resolveConflict(w http.ResponseWriter, r *http.Request) error {
	var c orch.AgentConflict
	if err := decodeJSON(r, &c); err != nil {
		return err
	}
	res, err := s.Coordinator.ResolveConflict(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *server) reconcile(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.Manager.Reconcile(r.Context())
	if err != nil && !rep.Changed() && len(rep.Failed) == 0 {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// ---- reviews ----

func (s *server) reviews() (ReviewService, error) {
	if s.Reviews == nil {
		return nil, apiErr(http.StatusServiceUnavailable, "loop_disabled", "the automatic loop is disabled (--auto-loop=false): there is no review queue")
	}
	return s.Reviews, nil
}

func (s *server) listReviews(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.reviews()
	if err != nil {
		return err
	}
	status := r.URL.Query().Get("status")
	switch status {
	case "", autoloop.ReviewPending, autoloop.ReviewApproved, autoloop.ReviewRejected:
	default:
		return apiErr(http.StatusBadRequest, "invalid_query", "status must be %s, %s or %s", autoloop.ReviewPending, autoloop.ReviewApproved, autoloop.ReviewRejected)
	}
	list, err := rs.Reviews(r.Context(), status)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"reviews": list, "count": len(list)})
	return nil
}

func (s *server) approveReview(w http.ResponseWriter, r *http.Request) error {
	return s.answerReview(w, r, true)
}

func (s *server) rejectReview(w http.ResponseWriter, r *http.Request) error {
	return s.answerReview(w, r, false)
}

// editReview corrects some pairs of the proposed mapping and approves it.
func (s *server) editReview(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.reviews()
	if err != nil {
		return err
	}
	var body struct {
		Reviewer string               `json:"reviewer"`
		Comment  string               `json:"comment"`
		Mappings []autoloop.FieldEdit `json:"mappings"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if len(body.Reviewer) > 200 || len(body.Comment) > 4000 {
		return apiErr(http.StatusBadRequest, "invalid_body", "reviewer is limited to 200 bytes and comment to 4000")
	}
	if len(body.Mappings) == 0 {
		return apiErr(http.StatusBadRequest, "invalid_body", "mappings: give at least one {targetField, sourceField} edit")
	}
	for i, m := range body.Mappings {
		if m.TargetField == "" {
			return apiErr(http.StatusBadRequest, "invalid_body", "mappings[%d].targetField is required", i)
		}
	}
	rv, err := rs.Edit(r.Context(), r.PathValue("id"), body.Reviewer, body.Comment, body.Mappings)
	switch {
	case errors.Is(err, autoloop.ErrReviewNotFound):
		return apiErr(http.StatusNotFound, "not_found", "%s", err.Error())
	case errors.Is(err, autoloop.ErrInvalidEdit):
		return apiErr(http.StatusBadRequest, "invalid_edit", "%s", err.Error())
	case errors.Is(err, autoloop.ErrReviewClosed), errors.Is(err, autoloop.ErrReviewStale):
		return apiErr(http.StatusConflict, "conflict", "%s", err.Error())
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, rv)
	return nil
}

func (s *server) answerReview(w http.ResponseWriter, r *http.Request, approve bool) error {
	rs, err := s.reviews()
	if err != nil {
		return err
	}
	var body struct {
		Reviewer string `json:"reviewer"`
		Comment  string `json:"comment"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &body); err != nil {
			return err
		}
	}
	if len(body.Reviewer) > 200 || len(body.Comment) > 4000 {
		return apiErr(http.StatusBadRequest, "invalid_body", "reviewer is limited to 200 bytes and comment to 4000")
	}
	answer := rs.Reject
	if approve {
		answer = rs.Approve
	}
	rv, err := answer(r.Context(), r.PathValue("id"), body.Reviewer, body.Comment)
	switch {
	case errors.Is(err, autoloop.ErrReviewNotFound):
		return apiErr(http.StatusNotFound, "not_found", "%s", err.Error())
	case errors.Is(err, autoloop.ErrReviewClosed), errors.Is(err, autoloop.ErrReviewStale):
		return apiErr(http.StatusConflict, "conflict", "%s", err.Error())
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, rv)
	return nil
}
