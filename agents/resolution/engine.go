package resolution

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
)

// Batch is the engine's view of a batch of messages. Record returns the
// structured record (nil when the message is not a JSON object) and must
// not be modified; SetRecord replaces it after an adjustment.
type Batch interface {
	Len() int
	Record(i int) map[string]any
	SetRecord(i int, rec map[string]any)
	Payload(i int) []byte
	Metadata(i int) map[string]string
}

// WriteFunc writes the records at the given indices of the batch, in that
// order, as one all-or-nothing unit (one transaction for PostgreSQL).
type WriteFunc func(ctx context.Context, idx []int) error

// Observation is reported to EngineConfig.Observe for metrics.
type Observation struct {
	// Kind is error, retry, dead_letter, adjust, escalate or write.
	Kind     string
	Category Category
	Strategy string
	Count    int
}

// EngineConfig configures an Engine.
type EngineConfig struct {
	Agent *Agent
	// Component is the path or label of the wrapped component.
	Component     string
	SchemaVersion string
	DeadLetters   DeadLetterSink
	// AddColumn adds a nullable column to the destination; nil disables
	// the add_nullable_column adjustment.
	AddColumn func(ctx context.Context, column string, sample any) error
	// CheckDefinition returns the definition (pg_get_constraintdef) of a
	// CHECK constraint of the destination; with it, a violated constraint
	// is learned and later violations are set aside without a write. nil
	// disables the check screen.
	CheckDefinition func(ctx context.Context, schema, table, constraint string) (string, error)
	// MaxWindow caps the records per write; 0 writes whole batches.
	MaxWindow int
	Observe   func(Observation)
	Logger    *slog.Logger
}

// Outcome says what happened to one batch.
type Outcome struct {
	Written      int
	DeadLettered int
	Adjusted     int
	Retries      int
	Writes       int
	Escalations  int
	// Skipped were already written by an earlier, failed delivery of the
	// same batch.
	Skipped int
	// Predicted were set aside by a screen learned from an earlier
	// identical failure, without a write.
	Predicted  int
	Categories map[Category]int
}

// Engine delivers batches through a write function and resolves the write
// errors: transient ones are retried with backoff, data errors are
// isolated by bisection (guided by the record the error names, when it
// names one) so that good records commit and only bad ones go to the dead
// letter destination, and allowed adjustments are learned and applied to
// every later record. It is safe for concurrent use.
type Engine struct {
	cfg   EngineConfig
	agent *Agent
	log   *slog.Logger
	adj   *adjuster
	scr   *screens
	// window is the current number of records per write; 0 means whole
	// batches. It shrinks while errors are dense and doubles back on
	// success.
	window atomic.Int64
	// sizeCap is the learned maximum write size (shrink_batch); 0 none.
	sizeCap atomic.Int64

	doneMu sync.Mutex
	done   map[[16]byte]int // records written by deliveries that then failed

	rec     chan func(context.Context)
	recDone chan struct{}
	aggMu   sync.Mutex
	agg     map[string]*groupAgg
	closed  atomic.Bool
}

// NewEngine starts an engine. Close it to flush its records.
func NewEngine(cfg EngineConfig) *Engine {
	if cfg.Agent == nil {
		cfg.Agent = New(Config{})
	}
	log := cfg.Logger
	if log == nil {
		log = cfg.Agent.log
	}
	e := &Engine{cfg: cfg, agent: cfg.Agent, log: log, adj: newAdjuster(), scr: newScreens(), done: map[[16]byte]int{},
		rec: make(chan func(context.Context), 256), recDone: make(chan struct{}), agg: map[string]*groupAgg{}}
	go e.recorder()
	return e
}

// recorder writes audit records (errors, resolutions, decisions, history)
// in the background so the data path never waits on the metadata store.
// Dead-letter groups are aggregated per fingerprint and strategy and
// flushed every five seconds (and on Close), which keeps the store's write rate flat however
// many records fail.
func (e *Engine) recorder() {
	defer close(e.recDone)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	run := func(f func(context.Context)) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		f(ctx)
		cancel()
	}
	for {
		select {
		case f, ok := <-e.rec:
			if !ok {
				run(e.flushGroups)
				return
			}
			run(f)
		case <-tick.C:
			run(e.flushGroups)
		}
	}
}

type groupAgg struct {
	rec      ErrorRecord
	diag     Diagnosis
	strategy string
	n        int
}

func (e *Engine) addGroup(rec ErrorRecord, diag Diagnosis, strategy string, n int) {
	if e.cfg.Agent.cfg.Store == nil {
		return
	}
	e.aggMu.Lock()
	defer e.aggMu.Unlock()
	key := rec.Fingerprint + "\x00" + strategy
	if g := e.agg[key]; g != nil {
		g.n += n
		return
	}
	e.agg[key] = &groupAgg{rec: rec, diag: diag, strategy: strategy, n: n}
}

func (e *Engine) flushGroups(ctx context.Context) {
	e.aggMu.Lock()
	groups := e.agg
	e.agg = map[string]*groupAgg{}
	e.aggMu.Unlock()
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := groups[k]
		e.recordGroup(ctx, g.rec, g.diag, g.strategy, g.n)
	}
}

func (e *Engine) record(f func(context.Context)) {
	if e.cfg.Agent.cfg.Store == nil || e.closed.Load() {
		return
	}
	e.rec <- f
}

// Close flushes pending records.
func (e *Engine) Close() {
	if e.closed.CompareAndSwap(false, true) {
		close(e.rec)
	}
	<-e.recDone
}

func (e *Engine) observe(kind string, cat Category, strategy string, n int) {
	if e.cfg.Observe != nil && n > 0 {
		e.cfg.Observe(Observation{Kind: kind, Category: cat, Strategy: strategy, Count: n})
	}
}

// failure is one record set aside during a delivery.
type failure struct {
	idx      int
	err      error
	cls      Classification
	attempts int
	// fp, tmpl and msg are set for failures predicted by a screen, which
	// carry the fingerprint of the error the screen was learned from.
	fp, tmpl, msg string
}

type delivery struct {
	e       *Engine
	b       Batch
	write   WriteFunc
	out     Outcome
	queue   []int // pending indices, in order
	failed  []failure
	written []int
	// limit is the end (exclusive, in queue positions) of the segment
	// known to contain a bad record while bisecting; -1 when none.
	limit       int
	triedAdjust map[string]bool
}

// Deliver writes the batch and resolves failures. A nil error means every
// record was either written or dead-lettered. A non-nil error means the
// batch must be delivered again later (a transient failure outlasted the
// retry budget, the dead letter destination failed, or the error cannot be
// resolved per record and was escalated); records already written are
// remembered and skipped on that redelivery.
func (e *Engine) Deliver(ctx context.Context, b Batch, write WriteFunc) (Outcome, error) {
	d := &delivery{e: e, b: b, write: write, limit: -1, triedAdjust: map[string]bool{},
		out: Outcome{Categories: map[Category]int{}}}
	n := b.Len()
	if n == 0 {
		return d.out, nil
	}
	d.queue = make([]int, 0, n)
	skip := e.alreadyWritten(b)
	for i := 0; i < n; i++ {
		if skip != nil && skip[i] {
			d.out.Skipped++
			continue
		}
		d.queue = append(d.queue, i)
	}
	if e.adj.isActive() || e.scr.isActive() {
		d.applyAdjustments(0)
	}
	err := d.run(ctx)
	if err == nil {
		err = d.settle(ctx)
	}
	if err != nil {
		e.rememberWritten(b, d.written)
		return d.out, err
	}
	e.forget(b, skip)
	d.out.Written = len(d.written)
	return d.out, nil
}

// applyAdjustments adjusts queue[from:] and screens it; records that cannot
// be adjusted, or that a learned screen knows will fail, leave the queue as
// failures.
func (d *delivery) applyAdjustments(from int) {
	kept := d.queue[:from]
	adjusting, screening := d.e.adj.isActive(), d.e.scr.isActive()
	var batchKeys map[string]struct{}
	if screening {
		batchKeys = map[string]struct{}{}
	}
	for _, i := range d.queue[from:] {
		if adjusting {
			nr, changed, err := d.e.adj.apply(d.b.Record(i))
			if err != nil {
				d.failed = append(d.failed, failure{idx: i, err: err, cls: Classify(err), attempts: 1})
				continue
			}
			if changed {
				d.b.SetRecord(i, nr)
				d.out.Adjusted++
			}
		}
		if screening {
			if f := d.e.scr.check(d.b.Record(i), batchKeys); f != nil {
				f.idx = i
				d.failed = append(d.failed, *f)
				d.out.Predicted++
				continue
			}
		}
		kept = append(kept, i)
	}
	d.queue = kept
}

func (d *delivery) windowSize(remaining int) int {
	w := int(d.e.window.Load())
	if w <= 0 || w > remaining {
		w = remaining
	}
	if c := int(d.e.sizeCap.Load()); c > 0 && w > c {
		w = c
	}
	if m := d.e.cfg.MaxWindow; m > 0 && w > m {
		w = m
	}
	if d.limit >= 0 && w > d.limit {
		w = d.limit
	}
	return max(w, 1)
}

func (d *delivery) grow(size int) {
	w := int64(size) * 2
	if cur := d.e.window.Load(); cur == 0 {
		return
	} else if w < cur {
		return
	}
	if m := d.e.cfg.MaxWindow; m > 0 && w > int64(m) {
		w = int64(m)
	}
	if w >= 1<<20 {
		w = 0
	}
	d.e.window.Store(w)
}

func (d *delivery) shrinkTo(w int) {
	d.e.window.Store(int64(max(w, 1)))
}

func (d *delivery) run(ctx context.Context) error {
	for len(d.queue) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		w := d.windowSize(len(d.queue))
		chunk := d.queue[:w]
		err := d.writeChunk(ctx, chunk, true)
		if err == nil {
			d.written = append(d.written, chunk...)
			d.e.scr.wrote(d.b, chunk)
			d.queue = d.queue[w:]
			if d.limit >= 0 {
				if d.limit -= w; d.limit <= 0 {
					d.limit = -1
				}
			}
			d.grow(w)
			continue
		}
		if ctx.Err() != nil {
			return err
		}
		cls := Classify(err)
		msg := redact.String(err.Error())
		fp := FingerprintOfTemplate(cls.Category, Template(msg))

		// 1. An allowed adjustment that fits: learn it and try again.
		if adj, ok := ProposeAdjustment(cls, msg, d.e.agent.cfg.Adjustments); ok && !d.triedAdjust[adjKey(adj)] {
			d.triedAdjust[adjKey(adj)] = true
			if d.adjust(ctx, adj, cls, fp, msg, chunk) {
				continue
			}
		}

		// 2. A transient error that outlasted the retry budget (or whose
		// fingerprint history says retries never work): bisect without
		// retries to tell one poison record from an outage.
		if cls.Transient {
			if len(chunk) == 1 {
				return err
			}
			if perr := d.probe(ctx, chunk); perr != nil {
				return perr
			}
			d.queue = d.queue[len(chunk):]
			d.limit = -1
			continue
		}

		// 3. Record-level errors are isolated: the record the error names,
		// or else by halving the window over the failing segment.
		if d.isolatable(cls) {
			if h := cls.Evidence.Record; h >= 0 && h < len(chunk) {
				d.fail(chunk[h], err, cls)
				d.queue = append(d.queue[:h], d.queue[h+1:]...)
				d.limit = -1
				// The h records before the bad one passed the destination's
				// checks. A long prefix is committed now rather than sent
				// again with every later attempt; a short one rides along.
				if h >= prefixCommit {
					d.shrinkTo(h)
				} else {
					d.shrinkTo(h + max(h+1, minWindow))
				}
				learnt := d.e.scr.learnFrom(err, cls, fp, Template(msg), msg)
				if d.learnCheck(ctx, err, cls, fp, msg) {
					learnt = true
				}
				if learnt {
					d.applyAdjustments(0)
				}
				continue
			}
			if len(chunk) == 1 {
				d.fail(chunk[0], err, cls)
				d.queue = d.queue[1:]
				d.limit = -1
				continue
			}
			if d.systemic(cls, fp) {
				return d.escalateBatch(ctx, err, cls, fp, msg)
			}
			d.limit = len(chunk)
			d.shrinkTo(len(chunk) / 2)
			continue
		}
		return d.escalateBatch(ctx, err, cls, fp, msg)
	}
	return nil
}

// probe isolates the records of seg after a transient error outlasted the
// retry budget. Both halves are tried once, without retries: when both
// fail the destination is down (an outage: the error is returned and the
// batch redelivered later); when one fails, the search continues in it, and
// a single record that fails while its neighbours succeed is poison and is
// set aside. A poison record thus blocks the records behind it for at most
// the retry budget plus about 2*log2(n) writes.
func (d *delivery) probe(ctx context.Context, seg []int) error {
	if len(seg) == 1 {
		err := d.writeChunk(ctx, seg, false)
		if err == nil {
			d.written = append(d.written, seg...)
			return nil
		}
		d.fail(seg[0], err, Classify(err))
		return nil
	}
	half := len(seg) / 2
	left, right := seg[:half], seg[half:]
	errL := d.writeChunk(ctx, left, false)
	if errL == nil {
		d.written = append(d.written, left...)
	}
	errR := d.writeChunk(ctx, right, false)
	if errR == nil {
		d.written = append(d.written, right...)
	}
	if errL != nil && errR != nil {
		return errL
	}
	if errL != nil {
		return d.probeOrIsolate(ctx, left, errL)
	}
	if errR != nil {
		return d.probeOrIsolate(ctx, right, errR)
	}
	return nil
}

// probeOrIsolate continues a probe in a failing half: transient errors
// keep probing; a record-level error there is isolated by plain halving.
func (d *delivery) probeOrIsolate(ctx context.Context, seg []int, err error) error {
	cls := Classify(err)
	if cls.Transient || len(seg) == 1 {
		if len(seg) == 1 {
			d.fail(seg[0], err, cls)
			return nil
		}
		return d.probe(ctx, seg)
	}
	if !d.isolatable(cls) {
		return err
	}
	sub := &delivery{e: d.e, b: d.b, write: d.write, limit: -1, triedAdjust: d.triedAdjust, queue: append([]int(nil), seg...),
		out: Outcome{Categories: map[Category]int{}}}
	sub.limit = len(seg)
	sub.shrinkTo(len(seg) / 2)
	rerr := sub.run(ctx)
	d.written = append(d.written, sub.written...)
	d.failed = append(d.failed, sub.failed...)
	d.out.Writes += sub.out.Writes
	d.out.Retries += sub.out.Retries
	return rerr
}

// learnCheck looks up a violated CHECK constraint and adds a screen for it.
func (d *delivery) learnCheck(ctx context.Context, err error, cls Classification, fp, msg string) bool {
	var pg *pgconn.PgError
	if d.e.cfg.CheckDefinition == nil || cls.Evidence.Code != "23514" || !errors.As(err, &pg) || !d.e.scr.wantCheck(pg.ConstraintName) {
		return false
	}
	def, derr := d.e.cfg.CheckDefinition(ctx, pg.SchemaName, pg.TableName, pg.ConstraintName)
	if derr != nil {
		d.e.log.Warn("error resolution: reading a check constraint failed", "constraint", pg.ConstraintName, "err", derr)
		return false
	}
	expr, perr := ParseCheck(def)
	if perr != nil {
		d.e.log.Info("error resolution: check constraint not screened client-side", "constraint", pg.ConstraintName, "reason", perr)
		return false
	}
	d.e.scr.addCheck(pg.ConstraintName, expr, cls, fp, Template(msg), msg)
	return true
}

// prefixCommit is the length of a known-good prefix from which committing it
// on its own is cheaper than re-sending it; minWindow is the smallest window
// after an error.
const (
	prefixCommit = 1 << 30
	minWindow    = 16
)

func adjKey(a Adjustment) string { return string(a.Kind) + "\x00" + a.Column + "\x00" + a.DataType }

// adjust applies an adjustment and reports whether the chunk should simply
// be tried again.
func (d *delivery) adjust(ctx context.Context, adj Adjustment, cls Classification, fp, msg string, chunk []int) bool {
	switch adj.Kind {
	case AdjustCoerce, AdjustTruncate, AdjustNullInvalidDate:
		d.e.adj.learn(adj)
		if cls := typeClass(adj.DataType); adj.Kind == AdjustCoerce && (cls == "date" || cls == "timestamp") &&
			d.e.agent.cfg.Adjustments[AdjustNullInvalidDate] {
			// Text that is not a date becomes NULL rather than a failure;
			// a NOT NULL column still rejects it and the record is isolated.
			d.e.adj.learn(Adjustment{Kind: AdjustNullInvalidDate, Column: adj.Column, DataType: adj.DataType})
		}
		d.applyAdjustments(0)
	case AdjustShrinkBatch:
		if len(chunk) <= 1 {
			return false
		}
		d.e.sizeCap.Store(int64(len(chunk) / 2))
		d.shrinkTo(len(chunk) / 2)
	case AdjustAddNullableColumn:
		if d.e.cfg.AddColumn == nil {
			return false
		}
		var sample any
		for _, i := range chunk {
			if r := d.b.Record(i); r != nil {
				if v, ok := r[adj.Column]; ok && v != nil {
					sample = v
					break
				}
			}
		}
		if err := d.e.cfg.AddColumn(ctx, adj.Column, sample); err != nil {
			d.e.log.Warn("error resolution: adding a column failed", "column", adj.Column, "err", err)
			return false
		}
	default:
		return false
	}
	d.e.log.Info("error resolution: adjusted configuration", "adjustment", adj.Kind, "detail", adj.Detail)
	d.e.observe("adjust", cls.Category, model.StrategyAdjustConfig, 1)
	d.e.agent.noteOutcome(fp, model.StrategyAdjustConfig, 1, 1)
	pipeline := d.e.agent.cfg.PipelineID
	reason := cls.Reason + "; applied the allowed adjustment " + string(adj.Kind) + ": " + adj.Detail
	conf := cls.Confidence
	d.e.record(func(ctx context.Context) {
		st := d.e.agent.cfg.Store
		errID := uuid.NewString()
		_ = st.SavePipelineError(ctx, model.PipelineError{ID: errID, PipelineID: pipeline, ErrorType: string(cls.Category),
			Message: msg, Fingerprint: fp, Category: string(cls.Category), Context: model.ErrorContext{SourceLocation: d.e.cfg.Component}})
		_ = st.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: fp, Template: Template(msg), Category: string(cls.Category),
			Message: msg, Count: 1, Strategy: model.StrategyAdjustConfig, Attempts: 1, Successes: 1})
		_ = st.SaveResolution(ctx, model.Resolution{ErrorID: errID, Strategy: model.StrategyAdjustConfig, Success: true,
			Actions: []model.ResolutionAction{{Type: "adjust", Detail: adj.Detail, Params: map[string]any{"kind": string(adj.Kind), "column": adj.Column}}}})
		_ = st.SaveAgentDecision(ctx, d.e.agent.decision(pipeline, errID, model.StrategyAdjustConfig, conf, reason, "applied"))
	})
	return true
}

// isolatable says whether an error may be caused by individual records.
func (d *delivery) isolatable(c Classification) bool {
	switch {
	case c.Category.RecordLevel():
		return true
	case c.Category == CategorySchema && (c.Evidence.Column != "" || c.Evidence.Code == "42703"):
		return true // a record with an unknown field
	case c.Category == CategoryUnknown:
		return true
	case c.Category == CategoryResource && len(d.queue) > 0:
		return true // one oversized record
	}
	return false
}

// systemic is true when bisection keeps finding the same error on every
// record and nothing has been written: the destination, not the data, is
// wrong. Clear per-record data errors (SQLSTATE classes 22 and 23, JSON)
// never count as systemic: each such record is dead-lettered.
func (d *delivery) systemic(c Classification, fp string) bool {
	code := c.Evidence.Code
	perRecord := c.Category == CategoryPoison || strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23") ||
		(c.Evidence.Source == "mysql" && c.Category.RecordLevel())
	if perRecord || len(d.written) > 0 || len(d.failed) < 8 {
		return false
	}
	for _, f := range d.failed {
		ffp := f.fp
		if ffp == "" {
			ffp = FingerprintOfTemplate(f.cls.Category, Template(redact.String(f.err.Error())))
		}
		if ffp != fp {
			return false
		}
	}
	return true
}

func (d *delivery) fail(i int, err error, c Classification) {
	d.failed = append(d.failed, failure{idx: i, err: err, cls: c, attempts: 1})
}

// writeChunk writes, with retries for transient errors when retry is set,, recording each retry outcome in the fingerprint history.
func (d *delivery) writeChunk(ctx context.Context, chunk []int, retry bool) error {
	if !retry {
		d.out.Writes++
		return d.write(ctx, chunk)
	}
	var lastFP string
	var lastCat Category
	retried := 0
	r := Retrier{
		Policy: d.e.agent.cfg.Retry,
		Retryable: func(err error) bool {
			c := Classify(err)
			if !c.Transient {
				return false
			}
			lastFP = FingerprintOfTemplate(c.Category, Template(redact.String(err.Error())))
			lastCat = c.Category
			if st, ok := d.e.agent.Stats(ctx, lastFP); ok && d.e.agent.RetriesFutile(st) {
				return false
			}
			return true
		},
		OnRetry: func(attempt int, err error, wait time.Duration) {
			retried++
			d.out.Retries++
			d.e.observe("retry", lastCat, model.StrategyRetry, 1)
			d.e.log.Warn("error resolution: transient write error, retrying", "attempt", attempt, "wait", wait.Round(time.Millisecond),
				"category", lastCat, "err", redact.String(err.Error()))
		},
	}
	_, err := r.Do(ctx, func(ctx context.Context, _ int) error {
		d.out.Writes++
		return d.write(ctx, chunk)
	})
	if retried > 0 {
		succ := int64(0)
		if err == nil {
			succ = 1
		}
		d.e.agent.noteOutcome(lastFP, model.StrategyRetry, 1, succ)
		fp, cat := lastFP, lastCat
		d.e.record(func(ctx context.Context) {
			_ = d.e.agent.cfg.Store.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: fp, Category: string(cat),
				Count: int64(retried), Strategy: model.StrategyRetry, Attempts: 1, Successes: succ})
		})
		if err == nil {
			d.e.observe("resolved", lastCat, model.StrategyRetry, 1)
		}
	}
	return err
}

// escalateBatch handles an error that no per-record action can fix: it is
// escalated and the batch is handed back for redelivery.
func (d *delivery) escalateBatch(ctx context.Context, err error, cls Classification, fp, msg string) error {
	d.out.Escalations++
	d.e.observe("escalate", cls.Category, model.StrategyEscalate, 1)
	rec := ErrorRecord{
		PipelineError: model.PipelineError{ID: uuid.NewString(), PipelineID: d.e.agent.cfg.PipelineID, ErrorType: string(cls.Category),
			Message: msg, Fingerprint: fp, Category: string(cls.Category), Timestamp: time.Now().UTC(),
			Context: model.ErrorContext{SourceLocation: d.e.cfg.Component}},
		Template: Template(msg), Classification: cls, Component: d.e.cfg.Component, Err: err,
	}
	diag := d.e.agent.diagnose(ctx, rec, nil)
	diag.Strategy = model.StrategyEscalate
	if diag.Reasoning != "" {
		diag.Reasoning += "; "
	}
	diag.Reasoning += "the error affects the whole batch and no allowed action resolves it per record"
	if _, eerr := d.e.agent.EscalateError(ctx, rec, &diag, len(d.queue)); eerr != nil {
		d.e.log.Error("error resolution: escalation could not be recorded", "err", eerr)
	}
	return &EscalatedError{Err: err, Category: cls.Category, Fingerprint: fp}
}

// EscalatedError is returned by Deliver for a batch-wide error that was
// escalated.
type EscalatedError struct {
	Err         error
	Category    Category
	Fingerprint string
}

func (e *EscalatedError) Error() string {
	return fmt.Sprintf("escalated %s error: %v", e.Category, e.Err)
}

func (e *EscalatedError) Unwrap() error { return e.Err }

// settle decides what happens to each failed record (rules and history
// may ask for a retry, an adjustment or an escalation rather than the dead
// letter) and writes the dead letters.
func (d *delivery) settle(ctx context.Context) error {
	if len(d.failed) == 0 {
		return nil
	}
	type group struct {
		rec      ErrorRecord
		diag     Diagnosis
		n        int
		strategy string
	}
	groups := map[string]*group{}
	var order []string
	var dls []DeadLetter
	occurrence := map[[32]byte]int{}
	now := time.Now().UTC()
	pipeline := d.e.agent.cfg.PipelineID
	for _, f := range d.failed {
		msg, tmpl, fp := f.msg, f.tmpl, f.fp
		if fp == "" {
			msg = redact.String(f.err.Error())
			tmpl = Template(msg)
			fp = FingerprintOfTemplate(f.cls.Category, tmpl)
		}
		meta := d.b.Metadata(f.idx)
		record := d.b.Record(f.idx)
		rec := ErrorRecord{
			PipelineError: model.PipelineError{PipelineID: pipeline, ErrorType: string(f.cls.Category), Message: msg,
				Fingerprint: fp, Category: string(f.cls.Category), Timestamp: now,
				Context: model.ErrorContext{SourceLocation: d.e.cfg.Component}},
			Template: tmpl, Classification: f.cls, Component: d.e.cfg.Component, Attempts: f.attempts, Err: f.err, Meta: meta,
		}
		diag := d.e.agent.diagnose(ctx, rec, record)
		strategy := diag.Strategy
		// A record-level failure is resolved per record: retry it alone
		// when a rule asks for it, otherwise it goes to the dead letter
		// (escalation additionally notifies a human).
		if strategy == model.StrategyRetry || strategy == model.StrategyAdjustConfig {
			if d.retryOne(ctx, f, diag) {
				continue
			}
			strategy = model.StrategySkip
		}
		key := fp + "\x00" + strategy
		g := groups[key]
		if g == nil {
			rec.ID = uuid.NewString()
			rec.Context.Record = record
			g = &group{rec: rec, diag: diag, strategy: strategy}
			groups[key] = g
			order = append(order, key)
		}
		g.n++
		payload := d.b.Payload(f.idx)
		h := sha256.Sum256(payload)
		occ := occurrence[h]
		occurrence[h]++
		dls = append(dls, DeadLetter{
			ID: DeadLetterID(pipeline, d.e.cfg.Component, payload, meta, occ), PipelineID: pipeline, Component: d.e.cfg.Component,
			Payload: payload, Metadata: meta, Category: diag.Category, Fingerprint: fp, Template: tmpl, Error: msg,
			Code: f.cls.Evidence.Code, Attempts: f.attempts, SchemaVersion: d.e.cfg.SchemaVersion, ErrorID: g.rec.ID, CreatedAt: now,
		})
	}
	if len(dls) > 0 {
		if d.e.cfg.DeadLetters == nil {
			return errors.New("records failed and no dead letter destination is configured")
		}
		if err := d.e.cfg.DeadLetters.WriteDeadLetters(ctx, dls); err != nil {
			return fmt.Errorf("writing %d records to the dead letter destination: %w", len(dls), err)
		}
	}
	d.out.DeadLettered = len(dls)
	sort.Strings(order)
	for _, key := range order {
		g := groups[key]
		d.out.Categories[g.diag.Category] += g.n
		d.e.observe("dead_letter", g.diag.Category, g.strategy, g.n)
		d.e.agent.noteOccurrences(g.rec.Fingerprint, g.rec.Template, g.rec.Classification.Category, g.rec.Message, int64(g.n), now)
		d.e.agent.noteOutcome(g.rec.Fingerprint, model.StrategySkip, int64(g.n), int64(g.n))
		if g.strategy == model.StrategyEscalate {
			d.out.Escalations++
			d.e.observe("escalate", g.diag.Category, model.StrategyEscalate, 1)
			rec, diag, n := g.rec, g.diag, g.n
			if _, err := d.e.agent.EscalateError(ctx, rec, &diag, n); err != nil {
				d.e.log.Error("error resolution: escalation could not be recorded", "err", err)
			}
		}
		d.e.addGroup(g.rec, g.diag, g.strategy, g.n)
	}
	return nil
}

// retryOne retries one failed record alone (a rule asked for a retry or
// an adjustment). It reports whether the record was written.
func (d *delivery) retryOne(ctx context.Context, f failure, diag Diagnosis) bool {
	if diag.Strategy == model.StrategyAdjustConfig && diag.Adjustment != nil {
		switch diag.Adjustment.Kind {
		case AdjustCoerce, AdjustTruncate, AdjustNullInvalidDate:
			d.e.adj.learn(*diag.Adjustment)
			nr, changed, err := d.e.adj.apply(d.b.Record(f.idx))
			if err != nil {
				return false
			}
			if changed {
				d.b.SetRecord(f.idx, nr)
			}
		}
	}
	_, err := Retrier{Policy: d.e.agent.cfg.Retry, Retryable: func(error) bool { return diag.Strategy == model.StrategyRetry }}.Do(ctx,
		func(ctx context.Context, _ int) error {
			d.out.Writes++
			return d.write(ctx, []int{f.idx})
		})
	ok := err == nil
	succ := int64(0)
	if ok {
		succ = 1
		d.written = append(d.written, f.idx)
	}
	d.e.agent.noteOutcome(diag.Fingerprint, diag.Strategy, 1, succ)
	d.e.observe("resolved", diag.Category, diag.Strategy, int(succ))
	return ok
}

// recordGroup stores one error (a sample of the group), its resolution,
// the agent's decision and the fingerprint history.
func (e *Engine) recordGroup(ctx context.Context, rec ErrorRecord, diag Diagnosis, strategy string, n int) {
	st := e.agent.cfg.Store
	if st == nil {
		return
	}
	pe := rec.PipelineError
	if err := st.SavePipelineError(ctx, pe); err != nil {
		e.log.Warn("error resolution: recording an error failed", "err", err)
		return
	}
	_ = st.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: pe.Fingerprint, Template: rec.Template,
		Category: pe.Category, Message: pe.Message, Count: int64(n), Seen: pe.Timestamp,
		Strategy: model.StrategySkip, Attempts: int64(n), Successes: int64(n)})
	_ = st.SaveResolution(ctx, model.Resolution{ErrorID: pe.ID, Strategy: strategy, Success: true, AppliedAt: time.Now().UTC(),
		Actions: []model.ResolutionAction{{Type: "dead_letter", Detail: fmt.Sprintf("%d record(s) isolated and sent to the dead letter destination", n),
			Params: map[string]any{"count": n}}}})
	_ = st.SaveAgentDecision(ctx, e.agent.decision(pe.PipelineID, pe.ID, strategy, diag.Confidence,
		fmt.Sprintf("%s; %d record(s) isolated by bisection and dead-lettered", diag.Reasoning, n), "resolved"))
}

// ---- records written by failed deliveries ----

func identity(b Batch, i int) [16]byte {
	h := sha256.New()
	h.Write(b.Payload(i))
	meta := b.Metadata(i)
	keys := make([]string, 0, len(meta))
	for k := range meta {
		if !VolatileMetaKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k + "=" + meta[k]))
	}
	var id [16]byte
	copy(id[:], h.Sum(nil))
	return id
}

// maxRemembered bounds the memory of records written by failed deliveries.
const maxRemembered = 1 << 20

func (e *Engine) rememberWritten(b Batch, idx []int) {
	if len(idx) == 0 {
		return
	}
	ids := make([][16]byte, len(idx))
	for j, i := range idx {
		ids[j] = identity(b, i)
	}
	e.doneMu.Lock()
	defer e.doneMu.Unlock()
	for _, id := range ids {
		if len(e.done) >= maxRemembered {
			e.log.Warn("error resolution: too many partially written batches remembered; later redeliveries may write duplicates in insert mode")
			return
		}
		e.done[id]++
	}
}

func (e *Engine) alreadyWritten(b Batch) map[int]bool {
	e.doneMu.Lock()
	empty := len(e.done) == 0
	e.doneMu.Unlock()
	if empty {
		return nil
	}
	out := map[int]bool{}
	for i := 0; i < b.Len(); i++ {
		id := identity(b, i)
		e.doneMu.Lock()
		if e.done[id] > 0 {
			out[i] = true
		}
		e.doneMu.Unlock()
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (e *Engine) forget(b Batch, skipped map[int]bool) {
	if len(skipped) == 0 {
		return
	}
	e.doneMu.Lock()
	defer e.doneMu.Unlock()
	for i := range skipped {
		id := identity(b, i)
		if e.done[id]--; e.done[id] <= 0 {
			delete(e.done, id)
		}
	}
}
