package resolution

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
)

// Publisher publishes events on the platform bus; *bus.Bus satisfies it.
type Publisher interface {
	Publish(ctx context.Context, ev bus.Event) error
}

// Config configures an Agent. Every field is optional.
type Config struct {
	// AgentID names this agent instance in decisions (default
	// "error-resolution").
	AgentID    string
	PipelineID string
	// Store keeps errors, fingerprint history, resolutions, decisions and
	// escalations. Without it history lives in memory only.
	Store metastore.Store
	Rules *RuleSet
	Retry RetryPolicy
	// RetryGiveUp: once this many retry resolutions of a fingerprint have
	// all failed (and none succeeded), the fingerprint is no longer
	// retried. Default 3.
	RetryGiveUp int
	// Adjustments is the allow-list of configuration adjustments; nil
	// means DefaultAdjustments.
	Adjustments AdjustmentSet
	// DeadLetters receives skipped records when ResolveError is not given
	// a dead-letter function.
	DeadLetters DeadLetterSink
	// Publisher, if set, receives escalations (bus.SubjectEscalation).
	Publisher Publisher
	// WebhookURL, if set, receives every escalation as a JSON POST.
	WebhookURL string
	HTTPClient *http.Client
	Logger     *slog.Logger
	// SimilarLimit bounds Diagnosis.Similar (default 5).
	SimilarLimit int
}

// ErrorRecord is a captured error: the seed's PipelineError with its
// classification, template and fingerprint filled in.
type ErrorRecord struct {
	model.PipelineError
	Template       string         `json:"template"`
	Classification Classification `json:"classification"`
	Component      string         `json:"component,omitempty"`
	Attempts       int            `json:"attempts"`
	// Err is the original Go error, when there was one.
	Err error `json:"-"`
	// Meta is the failed message's metadata, for rules.
	Meta map[string]string `json:"-"`
}

// SimilarError is a past error with the same fingerprint.
type SimilarError struct {
	ID         string    `json:"id"`
	PipelineID string    `json:"pipelineId,omitempty"`
	Message    string    `json:"message"`
	Timestamp  time.Time `json:"timestamp"`
}

// Diagnosis is what the agent concluded about one error.
type Diagnosis struct {
	ErrorID     string   `json:"errorId,omitempty"`
	Category    Category `json:"category"`
	Transient   bool     `json:"transient"`
	Strategy    string   `json:"strategy"`
	Confidence  float64  `json:"confidence"`
	Fingerprint string   `json:"fingerprint"`
	Template    string   `json:"template"`
	Reasoning   string   `json:"reasoning"`
	Evidence    Evidence `json:"evidence"`
	// Rule names the user rule that decided the strategy, if any.
	Rule string `json:"rule,omitempty"`
	// Adjustment is the proposed change when Strategy is adjust_config.
	Adjustment *Adjustment                 `json:"adjustment,omitempty"`
	History    *metastore.FingerprintStats `json:"history,omitempty"`
	Similar    []SimilarError              `json:"similar"`

	record ErrorRecord
}

// Record is the error record the diagnosis is about.
func (d Diagnosis) Record() ErrorRecord { return d.record }

// Escalation is an error handed to a human with its diagnostic context.
type Escalation struct {
	ID          string     `json:"id"`
	ErrorID     string     `json:"errorId"`
	PipelineID  string     `json:"pipelineId,omitempty"`
	Component   string     `json:"component,omitempty"`
	Category    Category   `json:"category"`
	Fingerprint string     `json:"fingerprint"`
	Message     string     `json:"message"`
	Diagnosis   *Diagnosis `json:"diagnosis,omitempty"`
	// Count is how many occurrences this escalation covers.
	Count     int       `json:"count"`
	CreatedAt time.Time `json:"createdAt"`
	// Notified lists where the escalation went: store, bus, webhook.
	Notified []string `json:"notified"`
}

// Agent is the Error Resolution Agent. It is safe for concurrent use.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	history map[string]*metastore.FingerprintStats // cache, and the only copy without a store
	loaded  map[string]bool
}

// New builds an agent.
func New(cfg Config) *Agent {
	if cfg.AgentID == "" {
		cfg.AgentID = "error-resolution"
	}
	if cfg.RetryGiveUp <= 0 {
		cfg.RetryGiveUp = 3
	}
	if cfg.SimilarLimit <= 0 {
		cfg.SimilarLimit = 5
	}
	if cfg.Adjustments == nil {
		cfg.Adjustments = DefaultAdjustments()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Agent{cfg: cfg, log: log, history: map[string]*metastore.FingerprintStats{}, loaded: map[string]bool{}}
}

// Config returns the agent's configuration.
func (a *Agent) Config() Config { return a.cfg }

// CaptureError classifies and fingerprints a pipeline error known by its
// message (and optional sqlstate hint) and records it.
func (a *Agent) CaptureError(ctx context.Context, pe model.PipelineError, h Hints) (ErrorRecord, error) {
	c := ClassifyMessage(pe.Message, h)
	return a.capture(ctx, pe, c, nil, "", nil)
}

// CaptureGoError captures a Go error, whose structured evidence
// (SQLSTATE, MySQL number, net errors) classification can use.
func (a *Agent) CaptureGoError(ctx context.Context, err error, pe model.PipelineError, component string, meta map[string]string) (ErrorRecord, error) {
	if pe.Message == "" && err != nil {
		pe.Message = redact.String(err.Error())
	}
	return a.capture(ctx, pe, Classify(err), err, component, meta)
}

func (a *Agent) capture(ctx context.Context, pe model.PipelineError, c Classification, err error, component string, meta map[string]string) (ErrorRecord, error) {
	if pe.ID == "" {
		pe.ID = uuid.NewString()
	}
	if pe.Timestamp.IsZero() {
		pe.Timestamp = time.Now().UTC()
	}
	if pe.PipelineID == "" {
		pe.PipelineID = a.cfg.PipelineID
	}
	pe.Message = redact.String(pe.Message)
	tmpl := Template(pe.Message)
	pe.Category = string(c.Category)
	pe.Fingerprint = FingerprintOfTemplate(c.Category, tmpl)
	if pe.ErrorType == "" {
		pe.ErrorType = string(c.Category)
	}
	if component != "" && pe.Context.SourceLocation == "" {
		pe.Context.SourceLocation = component
	}
	rec := ErrorRecord{PipelineError: pe, Template: tmpl, Classification: c, Component: component, Err: err, Meta: meta}
	a.noteOccurrences(pe.Fingerprint, tmpl, c.Category, pe.Message, 1, pe.Timestamp)
	if a.cfg.Store != nil {
		if err := a.cfg.Store.SavePipelineError(ctx, pe); err != nil {
			return rec, fmt.Errorf("resolution: record error: %w", err)
		}
		if err := a.cfg.Store.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: pe.Fingerprint, Template: tmpl,
			Category: string(c.Category), Message: pe.Message, Count: 1, Seen: pe.Timestamp}); err != nil {
			return rec, fmt.Errorf("resolution: record fingerprint: %w", err)
		}
	}
	return rec, nil
}

// noteOccurrences updates the in-memory history.
func (a *Agent) noteOccurrences(fp, tmpl string, cat Category, msg string, n int64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.history[fp]
	if st == nil {
		st = &metastore.FingerprintStats{Fingerprint: fp, Template: tmpl, Category: string(cat), FirstSeen: at,
			Strategies: map[string]metastore.StrategyStats{}}
		a.history[fp] = st
	}
	st.Count += n
	if at.After(st.LastSeen) {
		st.LastSeen, st.LastMessage = at, msg
	}
	if at.Before(st.FirstSeen) {
		st.FirstSeen = at
	}
}

// noteOutcome updates the in-memory strategy counts.
func (a *Agent) noteOutcome(fp, strategy string, attempts, successes int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.history[fp]
	if st == nil {
		st = &metastore.FingerprintStats{Fingerprint: fp, Strategies: map[string]metastore.StrategyStats{}}
		a.history[fp] = st
	}
	s := st.Strategies[strategy]
	s.Attempts += attempts
	s.Successes += successes
	st.Strategies[strategy] = s
}

// Stats returns the history of a fingerprint: the store's figures (read
// once per fingerprint per agent) merged with what this agent has seen
// since. ok is false when the fingerprint was never seen.
func (a *Agent) Stats(ctx context.Context, fp string) (metastore.FingerprintStats, bool) {
	a.mu.Lock()
	needLoad := a.cfg.Store != nil && !a.loaded[fp]
	a.loaded[fp] = true
	a.mu.Unlock()
	if needLoad {
		stored, err := a.cfg.Store.GetFingerprintStats(ctx, fp)
		switch {
		case err == nil:
			a.mu.Lock()
			cur := a.history[fp]
			merged := stored
			merged.Strategies = map[string]metastore.StrategyStats{}
			for k, v := range stored.Strategies {
				merged.Strategies[k] = v
			}
			if cur != nil {
				// What this agent recorded before loading was also
				// written to the store (or is queued to be): count the
				// larger of the two so nothing is counted twice.
				merged.Count = max(merged.Count, cur.Count)
				for k, v := range cur.Strategies {
					s := merged.Strategies[k]
					s.Attempts, s.Successes = max(s.Attempts, v.Attempts), max(s.Successes, v.Successes)
					merged.Strategies[k] = s
				}
			}
			a.history[fp] = &merged
			a.mu.Unlock()
		case !errors.Is(err, metastore.ErrNotFound):
			a.log.Warn("error resolution: reading fingerprint history failed", "fingerprint", fp, "err", err)
			a.mu.Lock()
			a.loaded[fp] = false
			a.mu.Unlock()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.history[fp]
	if st == nil {
		return metastore.FingerprintStats{}, false
	}
	cp := *st
	cp.Strategies = make(map[string]metastore.StrategyStats, len(st.Strategies))
	for k, v := range st.Strategies {
		cp.Strategies[k] = v
	}
	return cp, true
}

// RetriesFutile reports whether history says retrying this fingerprint
// does not work: RetryGiveUp retry resolutions, none successful.
func (a *Agent) RetriesFutile(st metastore.FingerprintStats) bool {
	r := st.Strategies[model.StrategyRetry]
	return r.Attempts >= int64(a.cfg.RetryGiveUp) && r.Successes == 0
}

// DiagnoseError decides what to do about a captured error: category,
// transience, strategy (rules first, then history, then the category's
// default), confidence, reasoning and similar past errors.
func (a *Agent) DiagnoseError(ctx context.Context, rec ErrorRecord) (Diagnosis, error) {
	d := a.diagnose(ctx, rec, rec.Context.Record)
	if a.cfg.Store != nil {
		past, err := a.cfg.Store.ListPipelineErrors(ctx, metastore.ErrorFilter{Fingerprint: rec.Fingerprint, Limit: a.cfg.SimilarLimit + 1})
		if err != nil {
			return d, fmt.Errorf("resolution: similar errors: %w", err)
		}
		for _, p := range past {
			if p.ID == rec.ID || len(d.Similar) >= a.cfg.SimilarLimit {
				continue
			}
			d.Similar = append(d.Similar, SimilarError{ID: p.ID, PipelineID: p.PipelineID, Message: p.Message, Timestamp: p.Timestamp})
		}
	}
	return d, nil
}

// diagnose is DiagnoseError without the similar-errors query, cheap enough
// to run for every failed record.
func (a *Agent) diagnose(ctx context.Context, rec ErrorRecord, record any) Diagnosis {
	c := rec.Classification
	d := Diagnosis{
		ErrorID: rec.ID, Category: c.Category, Transient: c.Transient, Fingerprint: rec.Fingerprint, Template: rec.Template,
		Evidence: c.Evidence, Confidence: c.Confidence, Similar: []SimilarError{}, record: rec,
	}
	var why []string
	why = append(why, c.Reason)
	d.Strategy = c.Category.DefaultStrategy()
	if c.Evidence.Permanent && d.Strategy == model.StrategyRetry {
		d.Strategy = model.StrategyEscalate
		why = append(why, "the error is permanent, so a retry cannot help")
	}
	if adj, ok := ProposeAdjustment(c, rec.Message, a.cfg.Adjustments); ok {
		d.Strategy, d.Adjustment = model.StrategyAdjustConfig, &adj
		why = append(why, "the allowed adjustment "+string(adj.Kind)+" fits: "+adj.Detail)
	} else if d.Strategy == model.StrategyAdjustConfig {
		d.Strategy = model.StrategyEscalate
		why = append(why, "no allowed adjustment fits")
	}
	if st, ok := a.Stats(ctx, rec.Fingerprint); ok {
		cp := st
		d.History = &cp
		if d.Strategy == model.StrategyRetry && a.RetriesFutile(st) {
			r := st.Strategies[model.StrategyRetry]
			if c.Category.RecordLevel() || c.Evidence.Record >= 0 {
				d.Strategy = model.StrategySkip
			} else {
				d.Strategy = model.StrategyEscalate
			}
			d.Transient = false
			why = append(why, fmt.Sprintf("history: %d retries of this fingerprint never succeeded, so it is no longer retried", r.Attempts))
		} else if s := st.Strategies[d.Strategy]; s.Attempts > 0 {
			rate := float64(s.Successes) / float64(s.Attempts)
			d.Confidence = 0.7*d.Confidence + 0.3*rate
			why = append(why, fmt.Sprintf("history: seen %d times; %s resolved it %d of %d times", st.Count, d.Strategy, s.Successes, s.Attempts))
		} else if st.Count > 1 {
			why = append(why, fmt.Sprintf("history: seen %d times", st.Count))
		}
	}
	if a.cfg.Rules.Len() > 0 {
		r, ok, err := a.cfg.Rules.Match(RuleInput{Error: ruleErrorVars(rec, d), Record: celValue(record), Meta: rec.Meta})
		if err != nil {
			a.log.Debug("error resolution: rule evaluation", "err", err)
		}
		if ok {
			d.Strategy, d.Rule = r.Strategy, ruleName(r)
			if r.Category != "" {
				d.Category = Category(r.Category)
			}
			if d.Strategy != model.StrategyAdjustConfig {
				d.Adjustment = nil
			} else if d.Adjustment == nil {
				d.Strategy = model.StrategySkip
				why = append(why, "rule asked for adjust_config but no allowed adjustment fits")
			}
			d.Confidence = max(d.Confidence, 0.9)
			reason := "rule " + ruleName(r) + " matched"
			if r.Reason != "" {
				reason += ": " + r.Reason
			}
			why = append(why, reason)
		}
	}
	d.Reasoning = strings.Join(why, "; ")
	return d
}

func ruleName(r Rule) string {
	if r.Name != "" {
		return r.Name
	}
	return strings.TrimSpace(r.When)
}

func ruleErrorVars(rec ErrorRecord, d Diagnosis) map[string]any {
	ev := rec.Classification.Evidence
	sqlstate := ""
	if ev.Source == "postgres" {
		sqlstate = ev.Code
	}
	return map[string]any{
		"message": rec.Message, "sqlstate": sqlstate, "code": ev.Code, "category": string(d.Category),
		"transient": d.Transient, "fingerprint": rec.Fingerprint, "template": rec.Template, "table": ev.Table,
		"column": ev.Column, "constraint": ev.Constraint, "source": ev.Source, "component": rec.Component,
		"pipeline": rec.PipelineID, "attempts": int64(rec.Attempts), "type": rec.ErrorType,
	}
}

// Operations are the side effects ResolveError may perform. Nil functions
// make the corresponding strategy a plan only (Success false).
type Operations struct {
	// Retry re-runs the failed operation.
	Retry func(ctx context.Context) error
	// DeadLetter stores the failed record; nil uses Config.DeadLetters.
	DeadLetter func(ctx context.Context, dl DeadLetter) error
	// Adjust applies an adjustment; Retry then runs once more.
	Adjust func(ctx context.Context, adj Adjustment) error
	// Payload is the failed record's original bytes, for the dead letter.
	Payload []byte
}

// ResolveError applies the diagnosed strategy and records the outcome: the
// Resolution, an agent decision, and the strategy's success count in the
// fingerprint history.
func (a *Agent) ResolveError(ctx context.Context, d Diagnosis, ops Operations) (model.Resolution, error) {
	rec := d.record
	res := model.Resolution{ErrorID: rec.ID, Strategy: d.Strategy, AppliedAt: time.Now().UTC(), Actions: []model.ResolutionAction{}}
	var opErr error
	switch d.Strategy {
	case model.StrategyRetry:
		if ops.Retry == nil {
			res.Actions = append(res.Actions, model.ResolutionAction{Type: "plan", Detail: "retry with exponential backoff",
				Params: map[string]any{"maxAttempts": a.cfg.Retry.normalised().MaxAttempts}})
			break
		}
		n, err := Retrier{Policy: a.cfg.Retry}.Do(ctx, func(ctx context.Context, _ int) error { return ops.Retry(ctx) })
		res.Actions = append(res.Actions, model.ResolutionAction{Type: "retry", Params: map[string]any{"attempts": n}})
		res.Success, opErr = err == nil, err
	case model.StrategySkip:
		dl := a.deadLetterOf(rec, d, ops.Payload)
		write := ops.DeadLetter
		if write == nil && a.cfg.DeadLetters != nil {
			write = func(ctx context.Context, dl DeadLetter) error {
				return a.cfg.DeadLetters.WriteDeadLetters(ctx, []DeadLetter{dl})
			}
		}
		if write == nil {
			res.Actions = append(res.Actions, model.ResolutionAction{Type: "plan", Detail: "send the record to the dead letter destination"})
			break
		}
		opErr = write(ctx, dl)
		res.Success = opErr == nil
		res.Actions = append(res.Actions, model.ResolutionAction{Type: "dead_letter", Params: map[string]any{"deadLetterId": dl.ID}})
	case model.StrategyAdjustConfig:
		if d.Adjustment == nil || ops.Adjust == nil {
			res.Actions = append(res.Actions, model.ResolutionAction{Type: "plan", Detail: "adjust the configuration, then retry"})
			break
		}
		res.Actions = append(res.Actions, model.ResolutionAction{Type: "adjust", Detail: d.Adjustment.Detail,
			Params: map[string]any{"kind": string(d.Adjustment.Kind), "column": d.Adjustment.Column}})
		if opErr = ops.Adjust(ctx, *d.Adjustment); opErr == nil && ops.Retry != nil {
			opErr = ops.Retry(ctx)
			res.Actions = append(res.Actions, model.ResolutionAction{Type: "retry", Params: map[string]any{"attempts": 1}})
		}
		res.Success = opErr == nil
	case model.StrategyEscalate:
		esc, err := a.EscalateError(ctx, rec, &d, 1)
		res.Success, opErr = err == nil, err
		res.Actions = append(res.Actions, model.ResolutionAction{Type: "escalate", Params: map[string]any{"escalationId": esc.ID, "notified": esc.Notified}})
	default:
		return res, fmt.Errorf("resolution: unknown strategy %q", d.Strategy)
	}
	planned := len(res.Actions) > 0 && res.Actions[0].Type == "plan"
	if !planned {
		succ := int64(0)
		if res.Success {
			succ = 1
		}
		a.noteOutcome(rec.Fingerprint, d.Strategy, 1, succ)
	}
	if a.cfg.Store != nil {
		if err := a.cfg.Store.SaveResolution(ctx, res); err != nil {
			return res, errors.Join(opErr, fmt.Errorf("resolution: record resolution: %w", err))
		}
		outcome := "planned"
		if !planned {
			outcome = map[bool]string{true: "resolved", false: "failed"}[res.Success]
			succ := int64(0)
			if res.Success {
				succ = 1
			}
			if err := a.cfg.Store.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: rec.Fingerprint,
				Strategy: d.Strategy, Attempts: 1, Successes: succ}); err != nil {
				return res, errors.Join(opErr, fmt.Errorf("resolution: record outcome: %w", err))
			}
		}
		if err := a.cfg.Store.SaveAgentDecision(ctx, a.decision(rec.PipelineID, rec.ID, d.Strategy, d.Confidence, d.Reasoning, outcome)); err != nil {
			return res, errors.Join(opErr, fmt.Errorf("resolution: record decision: %w", err))
		}
	}
	return res, opErr
}

func (a *Agent) decision(pipelineID, taskID, action string, conf float64, reasoning, outcome string) model.AgentDecision {
	if pipelineID == "" {
		pipelineID = a.cfg.PipelineID
	}
	return model.AgentDecision{ID: uuid.NewString(), AgentID: a.cfg.AgentID, AgentType: model.AgentResolution, TaskID: taskID,
		PipelineID: pipelineID, Action: action, Confidence: conf, Reasoning: reasoning, Timestamp: time.Now().UTC(), Outcome: outcome}
}

func (a *Agent) deadLetterOf(rec ErrorRecord, d Diagnosis, payload []byte) DeadLetter {
	if payload == nil && rec.Context.Record != nil {
		payload, _ = json.Marshal(rec.Context.Record)
	}
	return DeadLetter{
		ID:         DeadLetterID(rec.PipelineID, rec.Component, payload, rec.Meta, 0),
		PipelineID: rec.PipelineID, Component: rec.Component, Payload: payload, Metadata: rec.Meta,
		Category: d.Category, Fingerprint: rec.Fingerprint, Template: rec.Template, Error: rec.Message,
		Code: rec.Classification.Evidence.Code, Attempts: max(rec.Attempts, 1), ErrorID: rec.ID, CreatedAt: time.Now().UTC(),
	}
}

// EscalateError records an escalation (agent decision and a queued
// error_resolution task in the store), publishes it on the bus and posts
// it to the webhook. Failures to notify are logged, not returned, unless
// nothing at all could record the escalation.
func (a *Agent) EscalateError(ctx context.Context, rec ErrorRecord, d *Diagnosis, count int) (Escalation, error) {
	esc := Escalation{
		ID: uuid.NewString(), ErrorID: rec.ID, PipelineID: rec.PipelineID, Component: rec.Component,
		Category: rec.Classification.Category, Fingerprint: rec.Fingerprint, Message: rec.Message, Diagnosis: d,
		Count: max(count, 1), CreatedAt: time.Now().UTC(), Notified: []string{},
	}
	if d != nil {
		esc.Category = d.Category
	}
	payload, err := json.Marshal(esc)
	if err != nil {
		return esc, fmt.Errorf("resolution: encode escalation: %w", err)
	}
	var errs []error
	if a.cfg.Store != nil {
		reason := "escalated: " + rec.Message
		if d != nil {
			reason = d.Reasoning
		}
		if err := a.cfg.Store.SaveTask(ctx, model.Task{ID: esc.ID, Type: model.TaskErrorResolution, Priority: 5, Payload: payload,
			CreatedAt: esc.CreatedAt, Status: "queued"}); err != nil {
			errs = append(errs, err)
		} else if err := a.cfg.Store.SaveAgentDecision(ctx, a.decision(rec.PipelineID, esc.ID, model.StrategyEscalate, 1, reason, "escalated")); err != nil {
			errs = append(errs, err)
		} else {
			esc.Notified = append(esc.Notified, "store")
		}
	}
	if a.cfg.Publisher != nil {
		ev, err := bus.NewEvent(bus.SubjectEscalation, "error.escalated", esc)
		if err == nil {
			ev.PipelineID, ev.Source = esc.PipelineID, a.cfg.AgentID
			err = a.cfg.Publisher.Publish(ctx, ev)
		}
		if err != nil {
			a.log.Warn("error resolution: publishing escalation failed", "err", err)
		} else {
			esc.Notified = append(esc.Notified, "bus")
		}
	}
	if a.cfg.WebhookURL != "" {
		if err := a.postWebhook(ctx, esc); err != nil {
			a.log.Warn("error resolution: escalation webhook failed", "url", redact.DSN(a.cfg.WebhookURL), "err", err)
		} else {
			esc.Notified = append(esc.Notified, "webhook")
		}
	}
	a.log.Warn("error resolution: escalated", "pipeline", esc.PipelineID, "category", esc.Category,
		"fingerprint", esc.Fingerprint, "count", esc.Count, "message", esc.Message)
	if len(esc.Notified) == 0 && len(errs) > 0 {
		return esc, fmt.Errorf("resolution: record escalation: %w", errors.Join(errs...))
	}
	return esc, nil
}

func (a *Agent) postWebhook(ctx context.Context, esc Escalation) error {
	body, err := json.Marshal(esc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// Diagnose is DiagnoseError without the similar-errors query, cheap enough
// for every failed record; record is the failed record for rules.
func (a *Agent) Diagnose(ctx context.Context, rec ErrorRecord, record any) Diagnosis {
	return a.diagnose(ctx, rec, record)
}

// NoteOutcome records, in memory and in the store, one application of a
// strategy to a fingerprint and whether it resolved the error.
func (a *Agent) NoteOutcome(fp, strategy string, success bool) {
	succ := int64(0)
	if success {
		succ = 1
	}
	a.noteOutcome(fp, strategy, 1, succ)
	if a.cfg.Store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.cfg.Store.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: fp, Strategy: strategy,
			Attempts: 1, Successes: succ}); err != nil {
			a.log.Warn("error resolution: recording an outcome failed", "err", err)
		}
	}
}

// RecordResolution stores an error that a component resolved itself: the
// error, its fingerprint occurrence, the Resolution and the decision.
func (a *Agent) RecordResolution(ctx context.Context, rec ErrorRecord, d Diagnosis, strategy string, success bool) error {
	if rec.ID == "" {
		rec.ID = uuid.NewString()
	}
	a.noteOccurrences(rec.Fingerprint, rec.Template, rec.Classification.Category, rec.Message, 1, rec.Timestamp)
	succ := int64(0)
	if success {
		succ = 1
	}
	a.noteOutcome(rec.Fingerprint, strategy, 1, succ)
	st := a.cfg.Store
	if st == nil {
		return nil
	}
	if err := st.SavePipelineError(ctx, rec.PipelineError); err != nil {
		return err
	}
	if err := st.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: rec.Fingerprint, Template: rec.Template,
		Category: rec.Category, Message: rec.Message, Count: 1, Seen: rec.Timestamp, Strategy: strategy, Attempts: 1, Successes: succ}); err != nil {
		return err
	}
	action := "dead_letter"
	if !success {
		action = "pass_flagged"
	}
	if err := st.SaveResolution(ctx, model.Resolution{ErrorID: rec.ID, Strategy: strategy, Success: success, AppliedAt: time.Now().UTC(),
		Actions: []model.ResolutionAction{{Type: action, Params: map[string]any{"attempts": rec.Attempts}}}}); err != nil {
		return err
	}
	outcome := map[bool]string{true: "resolved", false: "unresolved"}[success]
	return st.SaveAgentDecision(ctx, a.decision(rec.PipelineID, rec.ID, strategy, d.Confidence, d.Reasoning, outcome))
}
