package resolution

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/agents/resolution"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
)

const (
	erpFieldProcessors = "processors"
)

func errorResolutionProcessorSpec() *service.ConfigSpec {
	fields := []*service.ConfigField{
		service.NewProcessorListField(erpFieldProcessors).
			Description("Child processors, run in order on each message like `try`: after the first failure the rest are skipped for that message."),
	}
	fields = append(fields, sharedFields()...)
	return service.NewConfigSpec().
		Beta().
		Categories("Composition").
		Summary("Runs child processors like `try` and resolves their failures per message: transient ones are retried with backoff, the others go to a dead-letter destination (or pass on flagged) and may be escalated.").
		Description(`
Each message runs through the child processors on its own, from a copy of the original, so a failure affects only that
message and a retry starts from the original. A failure is classified into the error taxonomy, fingerprinted and
diagnosed (user CEL rules first, then the fingerprint's history, then the category's default):

- **retry**: transient categories are run again with exponential backoff and jitter, within the retry budget; a
  fingerprint whose retries never succeeded stops being retried.
- **skip**: the original message goes to the dead-letter destination with its category, fingerprint, error, component
  path and attempt count, and is removed from the batch.
- **escalate**: as skip, and the error is also recorded as an escalation, published and sent to the webhook.
- **adjust_config** does not apply to processors and is treated as skip.

Without a dead-letter destination, a failed message passes on with its error flag set (as after `+"`try`"+`) and the
metadata `+"`error_resolution_category`, `error_resolution_strategy` and `error_resolution_fingerprint`"+`, so a later
`+"`catch`"+` or `+"`switch`"+` can route it. If the dead-letter write fails, the messages also pass on flagged: nothing is dropped.`).
		Fields(fields...).
		LintRule(lintRule(rulesLint, deadLetterLint)).
		Example("Parse with a safety net", "Unparseable payloads go to a dead-letter file; timeouts of an enrichment call are retried.", `
pipeline:
  processors:
    - error_resolution:
        processors:
          - mapping: 'root = content().parse_json()'
          - http:
              url: http://enrich.local/customers
              verb: POST
        dead_letter:
          file:
            path: ./data/dead-letters.jsonl
        retry:
          max_attempts: 5
          max_elapsed: 20s
`)
}

func init() {
	service.MustRegisterBatchProcessor("error_resolution", errorResolutionProcessorSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			return newErrorResolutionProcessor(conf, mgr)
		})
}

type errorResolutionProcessor struct {
	sh       *shared
	children []*service.OwnedProcessor
	log      *service.Logger
}

func newErrorResolutionProcessor(conf *service.ParsedConfig, mgr *service.Resources) (*errorResolutionProcessor, error) {
	children, err := conf.FieldProcessorList(erpFieldProcessors)
	if err != nil {
		return nil, err
	}
	sh, err := parseShared(conf, mgr, "error_resolution")
	if err != nil {
		return nil, err
	}
	if err := sh.parseDeadLetter(conf); err != nil {
		sh.close()
		return nil, err
	}
	return &errorResolutionProcessor{sh: sh, children: children, log: mgr.Logger()}, nil
}

// runChildren runs the children on a copy of msg and returns the results
// and the first error any result carries.
func (p *errorResolutionProcessor) runChildren(ctx context.Context, msg *service.Message) (service.MessageBatch, error) {
	batch := service.MessageBatch{msg.Copy()}
	for _, c := range p.children {
		var next service.MessageBatch
		outs, err := c.ProcessBatch(ctx, batch)
		if err != nil {
			return nil, err
		}
		for _, o := range outs {
			next = append(next, o...)
		}
		for _, m := range next {
			if merr := m.GetError(); merr != nil {
				return next, merr
			}
		}
		batch = next
		if len(batch) == 0 {
			break
		}
	}
	return batch, nil
}

type pending struct {
	pos     int
	orig    *service.Message
	failed  service.MessageBatch
	err     error
	diag    resolution.Diagnosis
	rec     resolution.ErrorRecord
	attempt int
}

func (p *errorResolutionProcessor) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	results := make([]service.MessageBatch, len(batch))
	var failed []pending
	agent := p.sh.agent
	for pos, msg := range batch {
		res, err := p.runChildren(ctx, msg)
		if err == nil {
			results[pos] = res
			continue
		}
		meta := (&msgBatch{msgs: service.MessageBatch{msg}, recs: make([]map[string]any, 1), loaded: make([]bool, 1)}).Metadata(0)
		rec := p.record(err, meta)
		var record any
		if v, serr := msg.AsStructured(); serr == nil {
			record = v
		}
		diag := agent.Diagnose(ctx, rec, record)
		attempts := 1
		if diag.Strategy == model.StrategyRetry {
			var retryRes service.MessageBatch
			n, rerr := resolution.Retrier{
				Policy: agent.Config().Retry,
				Retryable: func(e error) bool {
					return resolution.Classify(e).Transient
				},
				OnRetry: func(int, error, time.Duration) { p.sh.metrics.retries.Incr(1, string(diag.Category)) },
			}.Do(ctx, func(ctx context.Context, attempt int) error {
				if attempt == 1 {
					return err
				}
				r, e := p.runChildren(ctx, msg)
				retryRes = r
				return e
			})
			attempts = n
			agent.NoteOutcome(diag.Fingerprint, model.StrategyRetry, rerr == nil)
			if rerr == nil {
				p.sh.metrics.observe(resolution.Observation{Kind: "resolved", Category: diag.Category, Strategy: model.StrategyRetry, Count: 1})
				results[pos] = retryRes
				continue
			}
			err, res = rerr, retryRes
			rec = p.record(err, meta)
			rec.Attempts = attempts
			diag = agent.Diagnose(ctx, rec, record)
			if diag.Strategy == model.StrategyRetry {
				diag.Strategy = model.StrategySkip
				diag.Reasoning += "; the retry budget is spent"
			}
		}
		rec.Attempts = attempts
		failed = append(failed, pending{pos: pos, orig: msg, failed: res, err: err, diag: diag, rec: rec, attempt: attempts})
	}
	if len(failed) > 0 {
		p.settle(ctx, failed, results)
	}
	var out service.MessageBatch
	for _, r := range results {
		out = append(out, r...)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return []service.MessageBatch{out}, nil
}

func (p *errorResolutionProcessor) record(err error, meta map[string]string) resolution.ErrorRecord {
	msg := redact.String(err.Error())
	c := resolution.Classify(err)
	tmpl := resolution.Template(msg)
	return resolution.ErrorRecord{
		PipelineError: model.PipelineError{PipelineID: p.sh.pipeline, ErrorType: string(c.Category), Message: msg,
			Fingerprint: resolution.FingerprintOfTemplate(c.Category, tmpl), Category: string(c.Category), Timestamp: time.Now().UTC(),
			Context: model.ErrorContext{SourceLocation: p.sh.component}},
		Template: tmpl, Classification: c, Component: p.sh.component, Err: err, Meta: meta, Attempts: 1,
	}
}

// settle dead-letters the failed messages (leaving their slots empty) or,
// without a destination or when it fails, puts them in their slots flagged,
// so the batch keeps its order.
func (p *errorResolutionProcessor) settle(ctx context.Context, failed []pending, results []service.MessageBatch) {
	if p.sh.dead != nil {
		dls := make([]resolution.DeadLetter, len(failed))
		occ := map[[32]byte]int{}
		for i, f := range failed {
			payload, _ := f.orig.AsBytes()
			h := sha256.Sum256(payload)
			dls[i] = resolution.DeadLetter{
				ID:         resolution.DeadLetterID(p.sh.pipeline, p.sh.component, payload, f.rec.Meta, occ[h]),
				PipelineID: p.sh.pipeline, Component: p.sh.component, Payload: payload, Metadata: f.rec.Meta,
				Category: f.diag.Category, Fingerprint: f.diag.Fingerprint, Template: f.diag.Template, Error: f.rec.Message,
				Code: f.diag.Evidence.Code, Attempts: f.attempt, SchemaVersion: p.sh.schemaVer, CreatedAt: time.Now().UTC(),
			}
			occ[h]++
		}
		err := p.sh.dead.WriteDeadLetters(ctx, dls)
		if err == nil {
			for _, f := range failed {
				p.sh.metrics.observe(resolution.Observation{Kind: "dead_letter", Category: f.diag.Category, Strategy: f.diag.Strategy, Count: 1})
				p.finish(ctx, f, true)
			}
			return
		}
		p.log.Errorf("error_resolution: dead letter write failed, passing %d failed messages on flagged: %v", len(failed), err)
	}
	for _, f := range failed {
		p.sh.metrics.errors.Incr(1, string(f.diag.Category))
		msgs := f.failed
		if len(msgs) == 0 {
			m := f.orig.Copy()
			m.SetError(f.err)
			msgs = service.MessageBatch{m}
		}
		for _, m := range msgs {
			m.MetaSetMut(MetaCategory, string(f.diag.Category))
			m.MetaSetMut(MetaStrategy, f.diag.Strategy)
			m.MetaSetMut(MetaFingerprint, f.diag.Fingerprint)
			if m.GetError() == nil {
				m.SetError(f.err)
			}
		}
		results[f.pos] = msgs
		p.finish(ctx, f, false)
	}
}

// finish records the error, its resolution and the decision, and
// escalates when the diagnosis says so.
func (p *errorResolutionProcessor) finish(ctx context.Context, f pending, deadLettered bool) {
	agent := p.sh.agent
	strategy := f.diag.Strategy
	if strategy == model.StrategyAdjustConfig {
		strategy = model.StrategySkip
	}
	if strategy == model.StrategyEscalate {
		p.sh.metrics.observe(resolution.Observation{Kind: "escalate", Category: f.diag.Category, Strategy: strategy, Count: 1})
		if _, err := agent.EscalateError(ctx, f.rec, &f.diag, 1); err != nil {
			p.log.Errorf("error_resolution: escalation could not be recorded: %v", err)
		}
	}
	if err := agent.RecordResolution(ctx, f.rec, f.diag, strategy, deadLettered); err != nil && !errors.Is(err, context.Canceled) {
		p.log.Warnf("error_resolution: recording the resolution failed: %v", err)
	}
}

func (p *errorResolutionProcessor) Close(ctx context.Context) error {
	for _, c := range p.children {
		_ = c.Close(ctx)
	}
	p.sh.close()
	return nil
}
