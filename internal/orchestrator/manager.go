// Package orchestrator is the pipeline half of the orchestrator sidecar: a
// PipelineConfig is validated, compiled to Benthos YAML, linted in process,
// written to --configs-dir, versioned in the metadata store and applied to
// the engine through the streams API, one stream per pipeline. A
// reconciliation loop makes the engine match the stored desired state
// after an engine or orchestrator restart. Batch pipelines run as bounded
// streams (executions), manually or on a cron schedule, never overlapping.
//
// One Manager owns one metadata store's pipelines: it caches them and is
// their only writer, which is what makes its optimistic concurrency check
// (expected version) exact. Run a single orchestrator per store.
package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/engine"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
)

// Pipeline states.
const (
	StateActive = "active"
	StatePaused = "paused"
)

// Execution statuses.
const (
	ExecRunning   = "running"
	ExecSucceeded = "succeeded"
	ExecFailed    = "failed"
	ExecCancelled = "cancelled"
)

// Errors the API maps to status codes.
var (
	ErrNotFound   = errors.New("not found")
	ErrExists     = errors.New("already exists")
	ErrConflict   = errors.New("version conflict")
	ErrPaused     = errors.New("pipeline is paused")
	ErrOverlap    = errors.New("pipeline already has a running execution")
	ErrNotBatch   = errors.New("only batch pipelines have executions")
	ErrNotRunning = errors.New("execution is not running")
)

// LintFailure is a generated config the linter rejected. Nothing was
// stored or applied.
type LintFailure struct {
	Issues []engine.LintIssue
	YAML   string
}

func (e *LintFailure) Error() string {
	parts := make([]string, len(e.Issues))
	for i, l := range e.Issues {
		parts[i] = l.String()
	}
	return "generated config failed lint: " + strings.Join(parts, "; ")
}

// VersionConflict says which version is current.
type VersionConflict struct {
	Expected, Current int
}

func (e *VersionConflict) Error() string {
	return fmt.Sprintf("pipeline was changed meanwhile: you sent version %d, the current version is %d; reload it and apply your change again", e.Expected, e.Current)
}

func (e *VersionConflict) Unwrap() error { return ErrConflict }

// Engine is the part of the streams API the manager uses; *engine.Client
// implements it.
type Engine interface {
	List(ctx context.Context) (map[string]engine.StreamInfo, error)
	Get(ctx context.Context, id string) (engine.StreamInfo, error)
	Create(ctx context.Context, id string, config []byte) error
	Update(ctx context.Context, id string, config []byte, timeout time.Duration) error
	Delete(ctx context.Context, id string, timeout time.Duration) error
	Stats(ctx context.Context, id string) (engine.Stats, error)
}

// DecisionRecorder stores coordination decisions; the agents/orchestrator
// Coordinator implements it.
type DecisionRecorder interface {
	RecordDecision(ctx context.Context, d model.AgentDecision) model.AgentDecision
}

// Publisher publishes bus events; *bus.Bus implements it.
type Publisher interface {
	Publish(ctx context.Context, ev bus.Event) error
}

// Observer receives counts for metrics; nil disables them.
type Observer interface {
	ExecutionFinished(status string, rowsIn, rowsOut, errs int64)
	EngineApply(op string, err error)
}

// Options configure a Manager.
type Options struct {
	Store metastore.Store
	// Engine returns the current engine client, or nil while none runs.
	// It is a function because a supervised engine moves to a new port
	// when it restarts.
	Engine     func() Engine
	ConfigsDir string
	Decisions  DecisionRecorder
	Bus        Publisher
	Observer   Observer
	Logger     *slog.Logger
	// CheckEnv rejects configs referencing environment variables this
	// process does not have. Set it when the engine is our child (it
	// inherits our environment); an external engine has its own.
	CheckEnv  bool
	LookupEnv func(string) (string, bool)
	// EngineEnv holds the variables the orchestrator sets for a spawned
	// engine (the store DSN, the bus URL); EngineDir is its working
	// directory. Work the orchestrator does in process on a pipeline's
	// behalf, a dead-letter replay, resolves the config with them.
	EngineEnv map[string]string
	EngineDir string
	// PollInterval is how often running executions read engine stats.
	PollInterval time.Duration
	// ReconcileInterval is how often the engine is compared with the
	// desired state. 0 means 5s.
	ReconcileInterval time.Duration
	// StopTimeout bounds how long a stream may take to stop on update or
	// delete before the engine abandons in-flight messages.
	StopTimeout time.Duration
	// DefaultMaxRetries is the error budget of a run when the pipeline
	// sets none (errorHandling.maxRetries).
	DefaultMaxRetries int
}

// Pipeline is the API view of a pipeline's current version.
type Pipeline struct {
	ID        string               `json:"id"`
	Version   int                  `json:"version"`
	State     string               `json:"state"`
	Config    model.PipelineConfig `json:"config"`
	YAML      string               `json:"yaml,omitempty"`
	Hash      string               `json:"hash"`
	File      string               `json:"file,omitempty"`
	CreatedAt time.Time            `json:"createdAt"`
	// Engine is filled by Get only: the stream's state in the engine.
	Engine *EngineState `json:"engine,omitempty"`
	// Unchanged is set by Update when the new config equals the current
	// one and no version was added.
	Unchanged bool `json:"unchanged,omitempty"`
	// ApplyError is set when the pipeline was stored but the engine could
	// not take it yet; the reconciler retries.
	ApplyError string `json:"applyError,omitempty"`
}

// EngineState is a pipeline's stream as the engine reports it.
type EngineState struct {
	Present bool    `json:"present"`
	Active  bool    `json:"active"`
	Uptime  float64 `json:"uptimeSeconds"`
	Error   string  `json:"error,omitempty"`
}

type appliedEntry struct {
	Hash string `json:"hash"`
}

// appliedKey is the checkpoint holding which config hash the manager last
// applied for each stream. It survives an orchestrator restart, so a
// surviving external engine is not restarted needlessly, and it marks
// which engine streams are ours to delete.
const appliedKey = "orchestrator:engine-applied"

// Manager is the pipeline lifecycle.
type Manager struct {
	o   Options
	log *slog.Logger

	mu    sync.Mutex
	cache map[string]*Pipeline
	// views holds the API form of each cached pipeline. Redaction runs
	// regular expressions over the YAML, far too slow to repeat for every
	// list request; it is done once per change instead.
	views map[string]Pipeline
	// gen counts cache changes; listJSON is the encoded list at listGen.
	gen      uint64
	listGen  uint64
	listJSON []byte
	locks    map[string]*sync.Mutex
	runs     map[string]*run // by pipeline id
	applied  map[string]appliedEntry
	cronIDs  map[string]cron.EntryID

	cron        *cron.Cron
	reconcileMu sync.Mutex
	kick        chan struct{}
	ctx         context.Context
	wg          sync.WaitGroup
}

// NewManager checks options. Call Start before use.
func NewManager(o Options) (*Manager, error) {
	if o.Store == nil {
		return nil, errors.New("orchestrator: no metadata store")
	}
	if o.Engine == nil {
		return nil, errors.New("orchestrator: no engine")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = 5 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.DefaultMaxRetries <= 0 {
		o.DefaultMaxRetries = 10
	}
	if o.ConfigsDir != "" {
		if err := os.MkdirAll(o.ConfigsDir, 0o750); err != nil {
			return nil, fmt.Errorf("orchestrator: configs dir: %w", err)
		}
	}
	return &Manager{
		o: o, log: o.Logger.With("component", "pipelines"),
		cache: map[string]*Pipeline{}, views: map[string]Pipeline{}, locks: map[string]*sync.Mutex{}, runs: map[string]*run{},
		applied: map[string]appliedEntry{}, cronIDs: map[string]cron.EntryID{},
		cron: cron.New(), kick: make(chan struct{}, 1),
	}, nil
}

// Start loads pipelines and running executions from the store, schedules
// cron jobs and starts the reconciliation loop and execution monitors.
// Everything stops when ctx ends; Wait waits for that.
func (m *Manager) Start(ctx context.Context) error {
	m.ctx = ctx
	pvs, err := m.o.Store.ListPipelineConfigs(ctx)
	if err != nil {
		return fmt.Errorf("orchestrator: load pipelines: %w", err)
	}
	if raw, err := m.o.Store.GetCheckpoint(ctx, appliedKey); err == nil {
		if err := json.Unmarshal([]byte(raw), &m.applied); err != nil {
			m.log.Warn("ignoring unreadable applied-streams record", "err", err)
			m.applied = map[string]appliedEntry{}
		}
	} else if !errors.Is(err, metastore.ErrNotFound) {
		return fmt.Errorf("orchestrator: load applied streams: %w", err)
	}
	m.mu.Lock()
	for _, pv := range pvs {
		p := viewOf(pv)
		if c, err := Compile(pv.Config); err == nil {
			p.Hash = c.Hash
		}
		m.putLocked(p)
	}
	m.mu.Unlock()
	for _, pv := range pvs {
		m.schedule(pv.PipelineID)
	}
	if err := m.recoverRuns(ctx); err != nil {
		return err
	}
	m.cron.Start()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.reconcileLoop(ctx)
	}()
	go func() {
		<-ctx.Done()
		<-m.cron.Stop().Done()
	}()
	m.log.Info("pipelines loaded", "pipelines", len(pvs))
	return nil
}

// Wait blocks until the loops started by Start have ended.
func (m *Manager) Wait() { m.wg.Wait() }

func viewOf(pv metastore.PipelineConfigVersion) *Pipeline {
	state := pv.State
	if state == "" {
		state = StateActive
	}
	return &Pipeline{ID: pv.PipelineID, Version: pv.Version, State: state, Config: pv.Config, YAML: pv.YAML, CreatedAt: pv.CreatedAt}
}

func (m *Manager) lock(id string) func() {
	m.mu.Lock()
	l, ok := m.locks[id]
	if !ok {
		l = &sync.Mutex{}
		m.locks[id] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (m *Manager) engine() (Engine, error) {
	e := m.o.Engine()
	if e == nil {
		return nil, fmt.Errorf("%w: no engine process is running (it may be restarting)", engine.ErrUnavailable)
	}
	return e, nil
}

// StreamStats reads a pipeline's counters from the engine: for a stream
// pipeline, what it has done since the engine started it.
func (m *Manager) StreamStats(ctx context.Context, id string) (engine.Stats, error) {
	e, err := m.engine()
	if err != nil {
		return engine.Stats{}, err
	}
	return e.Stats(ctx, id)
}

// ---- queries ----

// List returns every pipeline's current version, by id. It is served from
// memory: the manager is the only writer.
func (m *Manager) List() []Pipeline {
	m.mu.Lock()
	out := make([]Pipeline, 0, len(m.cache))
	for _, v := range m.views {
		out = append(out, v)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// States counts pipelines by state and type, for metrics.
func (m *Manager) States() map[[2]string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[[2]string]int{}
	for _, p := range m.cache {
		out[[2]string{p.State, p.Config.Type}]++
	}
	return out
}

// Get returns one pipeline with its stream's state in the engine.
func (m *Manager) Get(ctx context.Context, id string) (Pipeline, error) {
	m.mu.Lock()
	cp, ok := m.views[id]
	m.mu.Unlock()
	if !ok {
		return Pipeline{}, fmt.Errorf("pipeline %q: %w", id, ErrNotFound)
	}
	es := &EngineState{}
	if e, err := m.engine(); err != nil {
		es.Error = err.Error()
	} else {
		info, err := e.Get(ctx, id)
		switch {
		case err == nil:
			es.Present, es.Active, es.Uptime = true, info.Active, info.Uptime
		case errors.Is(err, engine.ErrNotFound):
		default:
			es.Error = redact.String(err.Error())
		}
	}
	cp.Engine = es
	return cp, nil
}

// putLocked caches p and its API view. Called with m.mu held.
func (m *Manager) putLocked(p *Pipeline) {
	m.cache[p.ID] = p
	m.views[p.ID] = m.present(*p)
	m.gen++
}

// ListJSON is the body of GET /api/v1/pipelines: every pipeline without
// its YAML, encoded once per change. The list endpoint is the one clients
// poll, and re-encoding hundreds of configs per request would make its
// latency grow with the number of pipelines and of clients.
func (m *Manager) ListJSON() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listJSON != nil && m.listGen == m.gen {
		return m.listJSON, nil
	}
	items := make([]Pipeline, 0, len(m.views))
	for _, v := range m.views {
		v.YAML = ""
		items = append(items, v)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	b, err := json.Marshal(map[string]any{"pipelines": items, "count": len(items)})
	if err != nil {
		return nil, fmt.Errorf("orchestrator: encode pipeline list: %w", err)
	}
	m.listJSON, m.listGen = append(b, '\n'), m.gen
	return m.listJSON, nil
}

// present returns the API form: connection values and YAML redacted (they
// hold only ${ENV} references by construction; this is the second line of
// defence for anything stored before that rule).
func (m *Manager) present(p Pipeline) Pipeline {
	p.Config = RedactConfig(p.Config)
	p.YAML = redact.String(p.YAML)
	if m.o.ConfigsDir != "" {
		p.File = m.configPath(p.ID)
	}
	return p
}

// RedactConfig masks passwords in a config's connection values, as every
// view of a pipeline (API, UI, diffs) shows it.
func RedactConfig(pc model.PipelineConfig) model.PipelineConfig {
	red := func(in map[string]string) map[string]string {
		if in == nil {
			return nil
		}
		out := make(map[string]string, len(in))
		for k, v := range in {
			out[k] = redact.String(redact.DSN(v))
		}
		return out
	}
	pc.Source.Connection = red(pc.Source.Connection)
	pc.Destination.Connection = red(pc.Destination.Connection)
	pc.Transformations = append([]model.Transformation(nil), pc.Transformations...)
	return pc
}

// ---- create, update, delete ----

var slugRe = regexp.MustCompile(`[^a-z0-9]+`)

// normalize fills defaults the API allows callers to omit.
func normalize(pc *model.PipelineConfig) {
	if pc.ID == "" {
		s := strings.Trim(slugRe.ReplaceAllString(strings.ToLower(pc.Name), "-"), "-")
		if len(s) > 63 {
			s = strings.TrimRight(s[:63], "-")
		}
		pc.ID = s
	}
	if pc.Transformations == nil {
		pc.Transformations = []model.Transformation{}
	}
	for i := range pc.Transformations {
		if pc.Transformations[i].ID == "" {
			pc.Transformations[i].ID = fmt.Sprintf("t%d", i)
		}
	}
}

// Prepared is a checked and compiled config, ready to store.
type Prepared struct {
	Config   model.PipelineConfig
	Compiled Compiled
	Lint     []engine.LintIssue
	Missing  []EnvRef
}

// Prepare validates, compiles and lints pc without storing anything. The
// error is a *ValidationError (field paths) or *LintFailure (line:col).
func (m *Manager) Prepare(pc model.PipelineConfig) (Prepared, error) {
	normalize(&pc)
	if errs := Validate(pc); len(errs) > 0 {
		return Prepared{Config: pc}, &ValidationError{Errors: errs}
	}
	c, err := Compile(pc)
	if err != nil {
		return Prepared{Config: pc}, err
	}
	pr := Prepared{Config: pc, Compiled: c}
	issues, err := Lint(c.YAML)
	if err != nil {
		return pr, err
	}
	pr.Lint = issues
	if len(issues) > 0 {
		return pr, &LintFailure{Issues: issues, YAML: string(c.YAML)}
	}
	for _, r := range EnvRefs(pc) {
		if _, ok := m.o.LookupEnv(r.Name); !ok {
			pr.Missing = append(pr.Missing, r)
		}
	}
	if m.o.CheckEnv && len(pr.Missing) > 0 {
		ve := &ValidationError{}
		for _, r := range pr.Missing {
			ve.Errors = append(ve.Errors, FieldError{Path: r.Path, Message: fmt.Sprintf(
				"references ${%s}, which is not set in the orchestrator's environment (the engine inherits it); export it and restart the orchestrator", r.Name)})
		}
		return pr, ve
	}
	return pr, nil
}

// Create stores a new pipeline as version 1 and applies it: a stream
// pipeline starts in the engine, a batch pipeline gets its schedule.
func (m *Manager) Create(ctx context.Context, pc model.PipelineConfig, comment string) (Pipeline, error) {
	pr, err := m.Prepare(pc)
	if err != nil {
		return Pipeline{}, err
	}
	pc = pr.Config
	unlock := m.lock(pc.ID)
	defer unlock()
	m.mu.Lock()
	_, exists := m.cache[pc.ID]
	m.mu.Unlock()
	if exists {
		return Pipeline{}, fmt.Errorf("pipeline %q: %w; update it with PUT and its current version", pc.ID, ErrExists)
	}
	now := time.Now().UTC()
	pc.Metadata.CreatedAt, pc.Metadata.UpdatedAt = now, now
	return m.store(ctx, pc, pr.Compiled, StateActive, firstNonEmpty(comment, "created"), "create_pipeline")
}

// Update stores pc as the next version when expectedVersion is the
// current one (optimistic concurrency: a stale writer gets a
// *VersionConflict instead of silently overwriting), then applies it. Only
// this pipeline's stream is restarted.
func (m *Manager) Update(ctx context.Context, id string, pc model.PipelineConfig, expectedVersion int, comment string) (Pipeline, error) {
	if pc.ID == "" {
		pc.ID = id
	}
	if pc.ID != id {
		return Pipeline{}, invalid("id", "is %q but the URL names pipeline %q", truncate(pc.ID, 63), id)
	}
	pr, err := m.Prepare(pc)
	if err != nil {
		return Pipeline{}, err
	}
	pc = pr.Config
	unlock := m.lock(id)
	defer unlock()
	m.mu.Lock()
	cur, ok := m.cache[id]
	var curCopy Pipeline
	if ok {
		curCopy = *cur
	}
	m.mu.Unlock()
	if !ok {
		return Pipeline{}, fmt.Errorf("pipeline %q: %w", id, ErrNotFound)
	}
	if expectedVersion != curCopy.Version {
		return Pipeline{}, &VersionConflict{Expected: expectedVersion, Current: curCopy.Version}
	}
	pc.Metadata.CreatedAt = curCopy.Config.Metadata.CreatedAt
	pc.Metadata.UpdatedAt = curCopy.Config.Metadata.UpdatedAt
	if sameConfig(curCopy.Config, pc) && curCopy.Hash == pr.Compiled.Hash {
		out := m.present(curCopy)
		out.Unchanged = true
		return out, nil
	}
	pc.Metadata.UpdatedAt = time.Now().UTC()
	if pc.Metadata.CreatedAt.IsZero() {
		pc.Metadata.CreatedAt = curCopy.CreatedAt
	}
	return m.store(ctx, pc, pr.Compiled, curCopy.State, firstNonEmpty(comment, "updated"), "update_pipeline")
}

func sameConfig(a, b model.PipelineConfig) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// store saves a version, writes the file, applies it and records the
// decision. Called with the pipeline lock held.
func (m *Manager) store(ctx context.Context, pc model.PipelineConfig, c Compiled, state, comment, action string) (Pipeline, error) {
	pv, err := m.o.Store.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{
		PipelineID: pc.ID, Config: pc, YAML: string(c.YAML), State: state, Comment: comment,
	})
	if err != nil {
		return Pipeline{}, fmt.Errorf("orchestrator: save pipeline %s: %w", pc.ID, err)
	}
	p := viewOf(pv)
	p.Hash = c.Hash
	m.mu.Lock()
	m.putLocked(p)
	m.mu.Unlock()
	if err := m.writeFile(p); err != nil {
		m.log.Error("config file not written", "pipeline", p.ID, "err", err)
	}
	m.schedule(p.ID)
	out := m.present(*p)
	applied, applyErr := m.applyStreamLocked(ctx, p)
	if applyErr != nil {
		out.ApplyError = redact.String(applyErr.Error())
		m.kickReconcile()
	}
	reason := fmt.Sprintf("%s pipeline %s stored as version %d (%s); ", pc.Type, p.ID, p.Version, c.Hash)
	switch {
	case applyErr != nil:
		reason += "the engine could not take it yet (" + out.ApplyError + "); the reconciler retries"
	case applied != "":
		reason += applied
	case pc.Type == TypeBatch && pc.Schedule != nil:
		reason += "batch pipeline scheduled with cron " + pc.Schedule.Cron
	default:
		reason += "batch pipeline ready for manual runs"
	}
	m.decide(ctx, action, p.ID, reason, fmt.Sprintf("version %d", p.Version))
	return out, nil
}

// applyStreamLocked makes the engine run (or not run) a stream pipeline's
// current version. It reports what it did. Batch pipelines have no stream
// outside executions.
func (m *Manager) applyStreamLocked(ctx context.Context, p *Pipeline) (string, error) {
	if p.Config.Type != TypeStream {
		return "", nil
	}
	e, err := m.engine()
	if err != nil {
		return "", err
	}
	if p.State != StateActive {
		err := e.Delete(ctx, p.ID, m.o.StopTimeout)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return "", err
		}
		m.setApplied(ctx, p.ID, "")
		return "stream stopped (pipeline paused)", nil
	}
	op := "created stream"
	err = e.Create(ctx, p.ID, []byte(p.YAML))
	if errors.Is(err, engine.ErrExists) {
		op = "updated stream (only this stream restarted)"
		err = e.Update(ctx, p.ID, []byte(p.YAML), m.o.StopTimeout)
	}
	if m.o.Observer != nil {
		m.o.Observer.EngineApply(op, err)
	}
	if err != nil {
		return "", err
	}
	m.setApplied(ctx, p.ID, p.Hash)
	return op + " in the engine", nil
}

func (m *Manager) setApplied(ctx context.Context, id, hash string) {
	m.mu.Lock()
	if hash == "" {
		delete(m.applied, id)
	} else {
		m.applied[id] = appliedEntry{Hash: hash}
	}
	b, err := json.Marshal(m.applied)
	m.mu.Unlock()
	if err != nil {
		return
	}
	if err := m.o.Store.SaveCheckpoint(context.WithoutCancel(ctx), appliedKey, string(b)); err != nil {
		m.log.Warn("applied-streams record not saved", "err", err)
	}
}

func (m *Manager) appliedHash(id string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.applied[id]
	return a.Hash, ok
}

// Delete removes a pipeline: a running execution is cancelled, its stream
// deleted and its schedule dropped. The store keeps its history.
func (m *Manager) Delete(ctx context.Context, id string) error {
	unlock := m.lock(id)
	defer unlock()
	m.mu.Lock()
	_, ok := m.cache[id]
	r := m.runs[id]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("pipeline %q: %w", id, ErrNotFound)
	}
	if r != nil {
		m.finishRunLocked(ctx, r, ExecCancelled, "pipeline deleted")
	}
	var engErr error
	if e, err := m.engine(); err == nil {
		engErr = e.Delete(ctx, id, m.o.StopTimeout)
		if errors.Is(engErr, engine.ErrNotFound) {
			engErr = nil
		}
	} else {
		engErr = err
	}
	if err := m.o.Store.DeletePipeline(ctx, id); err != nil {
		return fmt.Errorf("orchestrator: delete pipeline %s: %w", id, err)
	}
	m.mu.Lock()
	delete(m.cache, id)
	delete(m.views, id)
	m.gen++
	m.mu.Unlock()
	m.schedule(id)
	if engErr == nil {
		m.setApplied(ctx, id, "")
	} else {
		// The applied record stays, so the reconciler knows the stream is
		// ours and removes it once the engine answers.
		m.kickReconcile()
	}
	if m.o.ConfigsDir != "" {
		if err := os.Remove(m.configPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("config file not removed", "pipeline", id, "err", err)
		}
	}
	m.decide(ctx, "delete_pipeline", id, "pipeline deleted; its stream and schedule are removed, its history is kept", "deleted")
	return nil
}

// SetState pauses or resumes a pipeline. Pausing stops a stream pipeline's
// stream and a batch pipeline's schedule and manual runs; a running
// execution finishes.
func (m *Manager) SetState(ctx context.Context, id, state, reason string) (Pipeline, error) {
	if state != StateActive && state != StatePaused {
		return Pipeline{}, invalid("state", "must be %q or %q", StateActive, StatePaused)
	}
	unlock := m.lock(id)
	defer unlock()
	m.mu.Lock()
	p, ok := m.cache[id]
	var cp Pipeline
	if ok {
		cp = *p
	}
	m.mu.Unlock()
	if !ok {
		return Pipeline{}, fmt.Errorf("pipeline %q: %w", id, ErrNotFound)
	}
	if cp.State == state {
		return m.present(cp), nil
	}
	if err := m.o.Store.SetPipelineState(ctx, id, state); err != nil {
		return Pipeline{}, fmt.Errorf("orchestrator: set state of %s: %w", id, err)
	}
	cp.State = state
	m.mu.Lock()
	m.cache[id].State = state
	m.putLocked(m.cache[id])
	m.mu.Unlock()
	m.schedule(id)
	out := m.present(cp)
	if _, err := m.applyStreamLocked(ctx, &cp); err != nil {
		out.ApplyError = redact.String(err.Error())
		m.kickReconcile()
	}
	action := "pause_pipeline"
	if state == StateActive {
		action = "resume_pipeline"
	}
	m.decide(ctx, action, id, firstNonEmpty(reason, "requested through the API"), state)
	return out, nil
}

// History lists stored versions, newest first.
func (m *Manager) History(ctx context.Context, id string) ([]Pipeline, error) {
	pvs, err := m.o.Store.PipelineConfigHistory(ctx, id)
	if err != nil {
		if errors.Is(err, metastore.ErrNotFound) {
			return nil, fmt.Errorf("pipeline %q: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("orchestrator: history of %s: %w", id, err)
	}
	if len(pvs) == 0 {
		return nil, fmt.Errorf("pipeline %q: %w", id, ErrNotFound)
	}
	out := make([]Pipeline, 0, len(pvs))
	for _, pv := range pvs {
		p := m.present(*viewOf(pv))
		p.File = ""
		out = append(out, p)
	}
	return out, nil
}

// ---- dry run ----

// DryRun is what a config would become, with nothing stored or applied.
type DryRun struct {
	Valid          bool               `json:"valid"`
	Errors         []FieldError       `json:"errors,omitempty"`
	YAML           string             `json:"yaml,omitempty"`
	Lint           []engine.LintIssue `json:"lint"`
	MissingEnv     []EnvRef           `json:"missingEnv,omitempty"`
	CurrentVersion int                `json:"currentVersion,omitempty"`
	// Diff is a unified diff of the generated YAML against the current
	// version's ("" when new or identical).
	Diff       string `json:"diff"`
	ConfigDiff string `json:"configDiff"`
	Changed    bool   `json:"changed"`
}

// DryRun compiles and lints pc and diffs it against pipeline id's current
// version (id may be empty for a new pipeline).
func (m *Manager) DryRun(pc model.PipelineConfig, id string) DryRun {
	if id != "" && pc.ID == "" {
		pc.ID = id
	}
	pr, err := m.Prepare(pc)
	out := DryRun{Valid: err == nil, YAML: redact.String(string(pr.Compiled.YAML)), Lint: pr.Lint, MissingEnv: pr.Missing}
	if out.Lint == nil {
		out.Lint = []engine.LintIssue{}
	}
	var ve *ValidationError
	var lf *LintFailure
	switch {
	case errors.As(err, &ve):
		out.Errors = ve.Errors
	case errors.As(err, &lf):
		out.YAML = redact.String(lf.YAML)
	case err != nil:
		out.Errors = []FieldError{{Message: err.Error()}}
	}
	key := firstNonEmpty(id, pr.Config.ID)
	m.mu.Lock()
	cur, ok := m.cache[key]
	var curCopy Pipeline
	if ok {
		curCopy = *cur
	}
	m.mu.Unlock()
	if ok {
		out.CurrentVersion = curCopy.Version
		if len(pr.Compiled.YAML) > 0 {
			out.Diff = UnifiedDiff(redact.String(curCopy.YAML), out.YAML, fmt.Sprintf("%s v%d", key, curCopy.Version), key+" (proposed)")
		}
		a, _ := json.MarshalIndent(RedactConfig(curCopy.Config), "", "  ")
		pcNorm := pr.Config
		pcNorm.Metadata.CreatedAt, pcNorm.Metadata.UpdatedAt = curCopy.Config.Metadata.CreatedAt, curCopy.Config.Metadata.UpdatedAt
		b, _ := json.MarshalIndent(RedactConfig(pcNorm), "", "  ")
		out.ConfigDiff = UnifiedDiff(string(a)+"\n", string(b)+"\n", fmt.Sprintf("%s v%d config", key, curCopy.Version), key+" (proposed) config")
		out.Changed = out.Diff != "" || out.ConfigDiff != ""
	} else {
		out.Changed = true
	}
	return out
}

// ---- files ----

func (m *Manager) configPath(id string) string {
	return filepath.Join(m.o.ConfigsDir, id+".yaml")
}

// writeFile writes the pipeline's YAML atomically, so a reader (or `agentetl
// lint`) never sees half a file.
func (m *Manager) writeFile(p *Pipeline) error {
	if m.o.ConfigsDir == "" {
		return nil
	}
	body := FileHeader(p.ID, p.Version, p.Hash) + p.YAML
	tmp, err := os.CreateTemp(m.o.ConfigsDir, "."+p.ID+".*.tmp")
	if err != nil {
		return fmt.Errorf("orchestrator: write config file: %w", err)
	}
	if _, err := tmp.WriteString(body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("orchestrator: write config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("orchestrator: write config file: %w", err)
	}
	if err := os.Rename(tmp.Name(), m.configPath(p.ID)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("orchestrator: write config file: %w", err)
	}
	return nil
}

// ---- decisions and events ----

func (m *Manager) decide(ctx context.Context, action, pipelineID, reasoning, outcome string) {
	if m.o.Decisions == nil {
		return
	}
	m.o.Decisions.RecordDecision(context.WithoutCancel(ctx), model.AgentDecision{
		AgentID: "orchestrator", AgentType: model.AgentOrchestrator, PipelineID: pipelineID,
		Action: action, Confidence: 1, Reasoning: reasoning, Outcome: outcome,
	})
}

func (m *Manager) publish(subject, typ, pipelineID string, data any) {
	if m.o.Bus == nil {
		return
	}
	ev, err := bus.NewEvent(subject, typ, data)
	if err != nil {
		return
	}
	ev.PipelineID, ev.Source = pipelineID, "orchestrator"
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := m.o.Bus.Publish(ctx, ev); err != nil {
			m.log.Warn("event not published", "subject", subject, "err", err)
		}
	}()
}
