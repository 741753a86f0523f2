// Package resolution registers the error_resolution processor and output:
// thin Benthos wrappers over agents/resolution, which classifies, diagnoses
// and resolves the errors of the components they wrap.
package resolution

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/agents/resolution"
	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/internal/runctl"
)

// Fields shared by the processor and the output.
const (
	erFieldPipelineID    = "pipeline_id"
	erFieldSchemaVersion = "schema_version"
	erFieldStore         = "store"
	erFieldRetry         = "retry"
	erFieldMaxAttempts   = "max_attempts"
	erFieldInitial       = "initial_interval"
	erFieldMaxInterval   = "max_interval"
	erFieldMaxElapsed    = "max_elapsed"
	erFieldGiveUp        = "give_up_after"
	erFieldRules         = "rules"
	erFieldRuleName      = "name"
	erFieldRuleWhen      = "when"
	erFieldRuleStrategy  = "strategy"
	erFieldRuleCategory  = "category"
	erFieldRuleReason    = "reason"
	erFieldDeadLetter    = "dead_letter"
	erFieldDLPostgres    = "postgres"
	erFieldDLDSN         = "dsn"
	erFieldDLTable       = "table"
	erFieldDLFile        = "file"
	erFieldDLPath        = "path"
	erFieldDLOutput      = "output"
	erFieldEscalation    = "escalation"
	erFieldWebhook       = "webhook_url"
	erFieldBusURL        = "bus_url"

	// Metadata set on messages that pass through with an unresolved error.
	MetaCategory    = "error_resolution_category"
	MetaStrategy    = "error_resolution_strategy"
	MetaFingerprint = "error_resolution_fingerprint"
)

// celMethod is a Bloblang method used by the lint rules: it returns "" for
// a valid rule expression and the problem with its position otherwise. It
// is registered before any spec is built, so lint rules can call it.
var celMethod = func() bool {
	spec := bloblang.NewPluginSpec().
		Category("String Manipulation").
		Description("Checks a CEL error-resolution rule expression and returns an empty string when it compiles, or the first problem with its line and column.")
	bloblang.MustRegisterMethodV2("agentetl_cel_error", spec, func(*bloblang.ParsedParams) (bloblang.Method, error) {
		return bloblang.StringMethod(func(s string) (any, error) {
			err := resolution.CheckRuleExpression(s)
			if err == nil {
				return "", nil
			}
			var re *resolution.RuleError
			if errors.As(err, &re) && re.Line > 0 {
				return fmt.Sprintf("line %d, column %d: %s", re.Line, re.Column, re.Message), nil
			}
			return err.Error(), nil
		}), nil
	})
	return true
}()

// rulesLint reports every rule whose expression does not compile, with its
// index and the position inside the expression, at `agentetl lint` time.
const rulesLint = `this.rules.or([]).enumerated().map_each(e -> if e.value.when.or("").agentetl_cel_error() != "" {
  "rules[%d].when: %s".format(e.index, e.value.when.or("").agentetl_cel_error())
} else { deleted() })`

// lintRule combines lint expressions (each evaluating to an array of
// messages) into one rule: a spec keeps only its last LintRule.
func lintRule(exprs ...string) string {
	var b strings.Builder
	for i, e := range exprs {
		fmt.Fprintf(&b, "let l%d = %s\n", i, e)
	}
	b.WriteString("root = $l0")
	for i := 1; i < len(exprs); i++ {
		fmt.Fprintf(&b, ".merge($l%d)", i)
	}
	return b.String()
}

func sharedFields() []*service.ConfigField {
	_ = celMethod
	return []*service.ConfigField{
		service.NewStringField(erFieldPipelineID).
			Description("Pipeline id recorded with every error, decision and dead letter. Empty uses the component label.").
			Default("").Example("orders-load"),
		service.NewStringField(erFieldSchemaVersion).
			Description("Schema or mapping version the pipeline runs with, stored with each dead letter so a replay can tell which version failed.").
			Default("").Advanced(),
		service.NewStringField(erFieldStore).
			Description("Metadata store DSN (`sqlite://path` or `postgres://...`) that keeps errors, fingerprint history, resolutions, agent decisions and escalations. Empty keeps history in memory only.").
			Default("sqlite://./data/agentetl.db").Secret(),
		service.NewObjectField(erFieldRetry,
			service.NewIntField(erFieldMaxAttempts).Description("Attempts per write or message, the first included. Only transient categories (connection, timeout, rate_limit, conflict) are retried.").
				Default(6).LintRule(`root = if this < 1 || this > 100 { ["max_attempts must be between 1 and 100"] }`),
			service.NewDurationField(erFieldInitial).Description("Delay before the first retry; it doubles each time, with ±30% jitter.").Default("200ms"),
			service.NewDurationField(erFieldMaxInterval).Description("Longest delay between two retries.").Default("5s"),
			service.NewDurationField(erFieldMaxElapsed).Description("Total time budget for the retries of one write: a retry that would start later is not made. A poison record never blocks the records behind it for longer than this plus a few isolation writes.").Default("30s"),
			service.NewIntField(erFieldGiveUp).Description("When this many retry resolutions of one error fingerprint have all failed (counted across runs in the store), the fingerprint is no longer retried.").Default(3).Advanced(),
		).Description("Exponential backoff for transient errors, bounded by attempts and by total time."),
		service.NewObjectListField(erFieldRules,
			service.NewStringField(erFieldRuleName).Description("Name shown in decisions and logs.").Default(""),
			service.NewStringField(erFieldRuleWhen).
				Description("CEL expression over `error` (message, sqlstate, code, category, transient, fingerprint, template, table, column, constraint, source, component, pipeline, attempts, type), `record` (the failed record) and `meta` (metadata). A missing key makes the rule not match; guard with `has(record.x)`.").
				Example(`error.sqlstate.startsWith("23") && record.country == "US"`),
			service.NewStringEnumField(erFieldRuleStrategy, resolution.Strategies()...).Description("Strategy to apply when the rule matches."),
			service.NewStringField(erFieldRuleCategory).Description("Overrides the category recorded for matching errors. Empty keeps the classification.").Default(""),
			service.NewStringField(erFieldRuleReason).Description("Text added to the decision's reasoning.").Default(""),
		).Description("User rules, tried in order before the built-in strategy; the first that matches decides. Invalid CEL is rejected by `agentetl lint` and at start-up with its position.").
			Default([]any{}),
		service.NewObjectField(erFieldDeadLetter,
			service.NewObjectField(erFieldDLPostgres,
				service.NewStringField(erFieldDLDSN).Description("PostgreSQL DSN of the dead-letter table.").Secret(),
				service.NewStringField(erFieldDLTable).Description("Dead-letter table, `name` or `schema.name`; created when missing. Rows are idempotent by id.").Example("public.orders_dead_letters"),
			).Description("Store dead letters in a PostgreSQL table.").Optional(),
			service.NewObjectField(erFieldDLFile,
				service.NewStringField(erFieldDLPath).Description("JSON Lines file; one dead letter per line.").Example("./data/dead-letters.jsonl"),
			).Description("Append dead letters to a file.").Optional(),
			service.NewOutputField(erFieldDLOutput).Description("Send dead letters (as JSON documents) to any output.").Optional(),
		).Description("Where records that cannot be written go, with their payload, category, fingerprint, error text, component path, attempt count and schema version. Exactly one destination must be set.").Optional(),
		service.NewObjectField(erFieldEscalation,
			service.NewStringField(erFieldWebhook).Description("URL that receives each escalation as a JSON POST.").Default("").Secret(),
			service.NewStringField(erFieldBusURL).Description("NATS URL of the event bus; escalations are published on `agentetl.escalation`.").Default("").Advanced(),
		).Description("Escalations are always recorded in the store and logged; these notify people and agents as well.").Optional(),
	}
}

// deadLetterLint requires exactly one destination.
const deadLetterLint = `if this.dead_letter.type() == "object" && [this.dead_letter.postgres.type() == "object", this.dead_letter.file.type() == "object", this.dead_letter.output.type() == "object"].filter(x -> x).length() != 1 { ["dead_letter needs exactly one of postgres, file or output"] } else { [] }`

// shared is what both components build from the shared fields.
type shared struct {
	agent     *resolution.Agent
	store     metastore.Store
	dead      resolution.DeadLetterSink
	busConn   *bus.Bus
	pipeline  string
	schemaVer string
	component string
	metrics   *metrics
	log       *service.Logger
}

func parseShared(conf *service.ParsedConfig, mgr *service.Resources, kind string) (*shared, error) {
	s := &shared{log: mgr.Logger(), metrics: newMetrics(mgr.Metrics())}
	var err error
	if s.pipeline, err = conf.FieldString(erFieldPipelineID); err != nil {
		return nil, err
	}
	s.component = mgr.Label()
	if s.component == "" {
		s.component = kind
	}
	if s.pipeline == "" {
		s.pipeline = s.component
	}
	if s.schemaVer, err = conf.FieldString(erFieldSchemaVersion); err != nil {
		return nil, err
	}
	cfg := resolution.Config{PipelineID: s.pipeline, AgentID: "error-resolution:" + s.component}
	rc := conf.Namespace(erFieldRetry)
	if cfg.Retry.MaxAttempts, err = rc.FieldInt(erFieldMaxAttempts); err != nil {
		return nil, err
	}
	if cfg.Retry.InitialInterval, err = rc.FieldDuration(erFieldInitial); err != nil {
		return nil, err
	}
	if cfg.Retry.MaxInterval, err = rc.FieldDuration(erFieldMaxInterval); err != nil {
		return nil, err
	}
	if cfg.Retry.MaxElapsed, err = rc.FieldDuration(erFieldMaxElapsed); err != nil {
		return nil, err
	}
	if cfg.RetryGiveUp, err = rc.FieldInt(erFieldGiveUp); err != nil {
		return nil, err
	}
	cfg.Retry.Multiplier, cfg.Retry.Jitter = 2, 0.3

	ruleConfs, err := conf.FieldObjectList(erFieldRules)
	if err != nil {
		return nil, err
	}
	var rules []resolution.Rule
	for _, rcf := range ruleConfs {
		var r resolution.Rule
		if r.Name, err = rcf.FieldString(erFieldRuleName); err != nil {
			return nil, err
		}
		if r.When, err = rcf.FieldString(erFieldRuleWhen); err != nil {
			return nil, err
		}
		if r.Strategy, err = rcf.FieldString(erFieldRuleStrategy); err != nil {
			return nil, err
		}
		if r.Category, err = rcf.FieldString(erFieldRuleCategory); err != nil {
			return nil, err
		}
		if r.Reason, err = rcf.FieldString(erFieldRuleReason); err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	if cfg.Rules, err = resolution.CompileRules(rules); err != nil {
		return nil, fmt.Errorf("error_resolution rules: %w", err)
	}

	if conf.Contains(erFieldEscalation) {
		ec := conf.Namespace(erFieldEscalation)
		if cfg.WebhookURL, err = ec.FieldString(erFieldWebhook); err != nil {
			return nil, err
		}
		url, err := ec.FieldString(erFieldBusURL)
		if err != nil {
			return nil, err
		}
		if url != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			b, err := bus.Connect(ctx, url, bus.WithName("error-resolution"))
			cancel()
			if err != nil {
				return nil, fmt.Errorf("error_resolution escalation bus: %s", redact.String(err.Error()))
			}
			s.busConn, cfg.Publisher = b, b
		}
	}

	storeDSN, err := conf.FieldString(erFieldStore)
	if err != nil {
		return nil, err
	}
	if storeDSN != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := metastore.Open(ctx, storeDSN)
		cancel()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("error_resolution store: %s", redact.String(err.Error()))
		}
		s.store, cfg.Store = st, st
	}
	s.agent = resolution.New(cfg)
	return s, nil
}

// parseDeadLetter opens the configured destination; nil when none is set.
func (s *shared) parseDeadLetter(conf *service.ParsedConfig) error {
	if !conf.Contains(erFieldDeadLetter) {
		return nil
	}
	dc := conf.Namespace(erFieldDeadLetter)
	set := 0
	if dc.Contains(erFieldDLPostgres) {
		set++
		dsn, err := dc.FieldString(erFieldDLPostgres, erFieldDLDSN)
		if err != nil {
			return err
		}
		table, err := dc.FieldString(erFieldDLPostgres, erFieldDLTable)
		if err != nil {
			return err
		}
		s.dead = &lazyPostgresDL{dsn: dsn, table: table}
	}
	if dc.Contains(erFieldDLFile) {
		set++
		path, err := dc.FieldString(erFieldDLFile, erFieldDLPath)
		if err != nil {
			return err
		}
		f, err := resolution.OpenFileDeadLetters(path)
		if err != nil {
			return err
		}
		s.dead = f
	}
	if dc.Contains(erFieldDLOutput) {
		set++
		out, err := dc.FieldOutput(erFieldDLOutput)
		if err != nil {
			return err
		}
		s.dead = &outputDL{out: out}
	}
	if set != 1 {
		return errors.New("dead_letter needs exactly one of postgres, file or output")
	}
	return nil
}

func (s *shared) close() {
	if s.dead != nil {
		_ = s.dead.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.busConn != nil {
		s.busConn.Close()
	}
}

// lazyPostgresDL connects on first use, so a dead-letter database that is
// briefly down at start-up does not stop the pipeline, and retries the
// connection on the next write.
type lazyPostgresDL struct {
	dsn, table string
	mu         sync.Mutex
	pg         *resolution.PostgresDeadLetters
}

func (l *lazyPostgresDL) WriteDeadLetters(ctx context.Context, dls []resolution.DeadLetter) error {
	l.mu.Lock()
	if l.pg == nil {
		pg, err := resolution.OpenPostgresDeadLetters(ctx, l.dsn, l.table)
		if err != nil {
			l.mu.Unlock()
			return err
		}
		l.pg = pg
	}
	pg := l.pg
	l.mu.Unlock()
	return pg.WriteDeadLetters(ctx, dls)
}

func (l *lazyPostgresDL) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pg != nil {
		return l.pg.Close()
	}
	return nil
}

// outputDL sends dead letters to a Benthos output as JSON documents, with
// the dead letter's id and category as metadata.
type outputDL struct{ out *service.OwnedOutput }

func (o *outputDL) WriteDeadLetters(ctx context.Context, dls []resolution.DeadLetter) error {
	batch := make(service.MessageBatch, len(dls))
	for i, d := range dls {
		b, err := d.MarshalJSON()
		if err != nil {
			return err
		}
		m := service.NewMessage(b)
		m.MetaSetMut("dead_letter_id", d.ID)
		m.MetaSetMut("dead_letter_category", string(d.Category))
		m.MetaSetMut("dead_letter_fingerprint", d.Fingerprint)
		batch[i] = m
	}
	return o.out.WriteBatch(ctx, batch)
}

func (o *outputDL) Close() error {
	return o.out.Close(context.Background())
}

// metrics are per category and strategy.
type metrics struct {
	errors      *service.MetricCounter
	resolutions *service.MetricCounter
	deadLetters *service.MetricCounter
	retries     *service.MetricCounter
	adjustments *service.MetricCounter
	escalations *service.MetricCounter
}

func newMetrics(m *service.Metrics) *metrics {
	return &metrics{
		errors:      m.NewCounter("error_resolution_errors", "category"),
		resolutions: m.NewCounter("error_resolution_resolutions", "category", "strategy"),
		deadLetters: m.NewCounter("error_resolution_dead_letters", "category"),
		retries:     m.NewCounter("error_resolution_retries", "category"),
		adjustments: m.NewCounter("error_resolution_adjustments", "category"),
		escalations: m.NewCounter("error_resolution_escalations", "category"),
	}
}

func (m *metrics) observe(o resolution.Observation) {
	cat, n := string(o.Category), int64(o.Count)
	switch o.Kind {
	case "retry":
		m.retries.Incr(n, cat)
	case "dead_letter":
		m.errors.Incr(n, cat)
		m.deadLetters.Incr(n, cat)
		m.resolutions.Incr(n, cat, o.Strategy)
	case "adjust":
		m.errors.Incr(n, cat)
		m.adjustments.Incr(n, cat)
		m.resolutions.Incr(n, cat, o.Strategy)
	case "escalate":
		m.escalations.Incr(n, cat)
		m.resolutions.Incr(n, cat, o.Strategy)
	case "resolved":
		m.errors.Incr(n, cat)
		m.resolutions.Incr(n, cat, o.Strategy)
	}
}

// msgBatch adapts a message batch to resolution.Batch.
type msgBatch struct {
	msgs   service.MessageBatch
	recs   []map[string]any
	loaded []bool
}

func newMsgBatch(msgs service.MessageBatch) *msgBatch {
	return &msgBatch{msgs: msgs, recs: make([]map[string]any, len(msgs)), loaded: make([]bool, len(msgs))}
}

func (b *msgBatch) Len() int { return len(b.msgs) }

func (b *msgBatch) Record(i int) map[string]any {
	if !b.loaded[i] {
		b.loaded[i] = true
		if v, err := b.msgs[i].AsStructured(); err == nil {
			b.recs[i], _ = v.(map[string]any)
		}
	}
	return b.recs[i]
}

func (b *msgBatch) SetRecord(i int, rec map[string]any) {
	m := b.msgs[i].Copy()
	m.SetStructuredMut(rec)
	b.msgs[i], b.recs[i], b.loaded[i] = m, rec, true
}

func (b *msgBatch) Payload(i int) []byte {
	p, err := b.msgs[i].AsBytes()
	if err != nil {
		return nil
	}
	return p
}

func (b *msgBatch) Metadata(i int) map[string]string {
	meta := map[string]string{}
	_ = b.msgs[i].MetaWalk(func(k, v string) error {
		if k != runctl.HandledMetaKey && !strings.HasPrefix(k, "error_resolution_") {
			meta[k] = v
		}
		return nil
	})
	return meta
}

// serviceLogHandler forwards the agent's slog records to the component's
// Benthos logger, so they carry its label and honour the configured level.
type serviceLogHandler struct {
	log   *service.Logger
	attrs []slog.Attr
}

func newServiceLogHandler(l *service.Logger) slog.Handler { return &serviceLogHandler{log: l} }

func (h *serviceLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *serviceLogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		b.WriteString(" ")
		b.WriteString(a.Key)
		b.WriteString("=")
		b.WriteString(fmt.Sprint(a.Value.Any()))
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	msg := b.String()
	switch {
	case r.Level >= slog.LevelError:
		h.log.Error(msg)
	case r.Level >= slog.LevelWarn:
		h.log.Warn(msg)
	case r.Level >= slog.LevelInfo:
		h.log.Info(msg)
	default:
		h.log.Debug(msg)
	}
	return nil
}

func (h *serviceLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &serviceLogHandler{log: h.log, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *serviceLogHandler) WithGroup(string) slog.Handler { return h }
