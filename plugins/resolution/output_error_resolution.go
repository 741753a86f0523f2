package resolution

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/agents/resolution"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/runctl"
)

const (
	eroFieldOutput      = "output"
	eroFieldAdjustments = "adjustments"
	eroFieldDestination = "destination"
	eroFieldDestDSN     = "dsn"
	eroFieldDestTable   = "table"
	eroFieldMaxWrite    = "max_write_batch"
	eroFieldBatching    = "batching"
)

func errorResolutionOutputSpec() *service.ConfigSpec {
	adjNames := make([]string, 0, 5)
	for _, k := range resolution.AllAdjustments() {
		adjNames = append(adjNames, string(k))
	}
	fields := []*service.ConfigField{
		service.NewOutputField(eroFieldOutput).Description("The output whose write errors are resolved."),
		service.NewStringListField(eroFieldAdjustments).
			Description("Allow-list of configuration adjustments the agent may make, then retry: `coerce` (convert a value to the column type), `truncate` (cut an over-long string), `null_invalid_date` (NULL for an unparseable date in a nullable column), `shrink_batch` (halve writes on \"too large\"), `add_nullable_column` (add a missing column for additive drift; needs `destination`). The default allows only the lossless ones.").
			Default([]any{"coerce", "shrink_batch"}).
			LintRule(`root = if this.type() == "array" { this.filter(a -> !` + bloblangList(adjNames) + `.contains(a)).map_each(a -> "unknown adjustment %s; allowed: ` + strings.Join(adjNames, ", ") + `".format(a)) } else if !` + bloblangList(adjNames) + `.contains(this) { ["unknown adjustment %s; allowed: ` + strings.Join(adjNames, ", ") + `".format(this)] }`),
		service.NewObjectField(eroFieldDestination,
			service.NewStringField(eroFieldDestDSN).Description("PostgreSQL DSN of the destination.").Secret(),
			service.NewStringField(eroFieldDestTable).Description("Destination table."),
		).Description("The child's PostgreSQL destination. Optional: with it, a violated CHECK constraint is read from the catalog and later rows that certainly violate it are dead-lettered without a failed write, and `add_nullable_column` can alter the table.").Optional().Advanced(),
		service.NewIntField(eroFieldMaxWrite).
			Description("Upper bound on records per write to the child. 0 writes whole batches; while errors are dense the agent writes smaller windows on its own and grows them back on success.").
			Default(0).Advanced(),
		service.NewOutputMaxInFlightField().Default(2),
		service.NewBatchPolicyField(eroFieldBatching),
	}
	fields = append(fields, sharedFields()...)
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Summary("Wraps an output and resolves its write errors: retries transient ones with backoff, isolates bad records by bisection and sends only those to a dead-letter destination, applies allowed adjustments, and escalates what it cannot fix.").
		Description(`
Every write error is classified into the error taxonomy (connection, timeout, rate_limit, authentication, permission,
schema, data_type, constraint, conflict, poison, resource, configuration, unknown) from its structured evidence first
(PostgreSQL SQLSTATE, MySQL error number, Kafka error code, network and context errors) and its message second,
fingerprinted, and resolved:

- **retry**: transient categories are retried with exponential backoff and jitter within `+"`retry`"+`'s attempts and
  time budget. A fingerprint whose retries never succeeded stops being retried.
- **skip**: when a batch fails on a data error, the batch is bisected (guided by the record the error names, such as a
  COPY line, when it names one): good records commit and only the bad ones go to the dead letter, an O(k log n) search.
- **adjust_config**: an allowed adjustment that fits the error is learned, recorded and applied to every later record.
- **escalate**: errors that affect the whole batch (a wrong password, a missing table) are recorded, published and
  handed back, so the input redelivers the batch later; under `+"`agentetl run`"+` a permanent one stops the run.

A transient error that outlasts the retry budget is probed by bisection without retries: if every part fails the
destination is down and the batch is handed back (nothing is lost, the input redelivers it); if only one record keeps
failing it is poison and is dead-lettered, so it never blocks the records behind it for longer than the budget.

User rules in CEL override the built-in strategy, e.g. `+"`error.sqlstate.startsWith(\"23\") && record.country == \"US\"`"+`
→ `+"`skip`"+`. Every decision is recorded in the metadata store; metrics `+"`error_resolution_*`"+` count errors per category
and strategy. Records are never lost: each is written, dead-lettered, or handed back for redelivery.

Configure batching on this output or the input, not on the child: the child must write what it is given as one unit.`).
		Fields(fields...).
		LintRule(lintRule(rulesLint, deadLetterLint,
			`if this.dead_letter.type() != "object" { ["dead_letter is required: records that cannot be written must go somewhere"] } else { [] }`,
			`if this.adjustments.or([]).contains("add_nullable_column") && this.destination.type() != "object" { ["add_nullable_column needs destination (dsn and table)"] } else { [] }`)).
		Example("Resilient load", "Copy rows into PostgreSQL; bad rows go to a dead-letter table, US constraint violations are skipped by rule.", `
output:
  error_resolution:
    pipeline_id: orders-load
    output:
      postgres:
        dsn: ${TARGET_DSN}
        table: public.orders
        mode: insert
    dead_letter:
      postgres:
        dsn: ${TARGET_DSN}
        table: public.orders_dead_letters
    rules:
      - name: us-constraints
        when: 'error.sqlstate.startsWith("23") && record.country == "US"'
        strategy: skip
    retry:
      max_attempts: 8
      max_elapsed: 1m
`)
}

func bloblangList(items []string) string {
	out := "["
	for i, s := range items {
		if i > 0 {
			out += ", "
		}
		out += `"` + s + `"`
	}
	return out + "]"
}

func init() {
	service.MustRegisterBatchOutput("error_resolution", errorResolutionOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (out service.BatchOutput, pol service.BatchPolicy, mif int, err error) {
			if mif, err = conf.FieldMaxInFlight(); err != nil {
				return
			}
			if pol, err = conf.FieldBatchPolicy(eroFieldBatching); err != nil {
				return
			}
			out, err = newErrorResolutionOutput(conf, mgr)
			return
		})
}

type errorResolutionOutput struct {
	sh     *shared
	child  *service.OwnedOutput
	engine *resolution.Engine
	log    *service.Logger
}

func newErrorResolutionOutput(conf *service.ParsedConfig, mgr *service.Resources) (*errorResolutionOutput, error) {
	names, err := conf.FieldStringList(eroFieldAdjustments)
	if err != nil {
		return nil, err
	}
	allowed, err := resolution.ParseAdjustments(names)
	if err != nil {
		return nil, err
	}
	maxWrite, err := conf.FieldInt(eroFieldMaxWrite)
	if err != nil {
		return nil, err
	}
	var addColumn func(context.Context, string, any) error
	var checkDef func(ctx context.Context, schema, table, constraint string) (string, error)
	if conf.Contains(eroFieldDestination) {
		dsn, err := conf.FieldString(eroFieldDestination, eroFieldDestDSN)
		if err != nil {
			return nil, err
		}
		table, err := conf.FieldString(eroFieldDestination, eroFieldDestTable)
		if err != nil {
			return nil, err
		}
		addColumn = func(ctx context.Context, column string, sample any) error {
			return resolution.AddNullableColumn(ctx, dsn, table, column, sample)
		}
		checkDef = resolution.PostgresCheckDefinitions(dsn)
	} else if allowed[resolution.AdjustAddNullableColumn] {
		return nil, errors.New("add_nullable_column needs destination (dsn and table)")
	}
	sh, err := parseShared(conf, mgr, "error_resolution")
	if err != nil {
		return nil, err
	}
	if err := sh.parseDeadLetter(conf); err != nil {
		sh.close()
		return nil, err
	}
	if sh.dead == nil {
		sh.close()
		return nil, errors.New("error_resolution output: dead_letter is required")
	}
	// The child is built last: an OwnedOutput that was never started
	// cannot be closed, so nothing may fail after it exists.
	child, err := conf.FieldOutput(eroFieldOutput)
	if err != nil {
		sh.close()
		return nil, err
	}
	cfg := sh.agent.Config()
	cfg.Adjustments = allowed
	sh.agent = resolution.New(cfg)
	o := &errorResolutionOutput{sh: sh, child: child, log: mgr.Logger()}
	o.engine = resolution.NewEngine(resolution.EngineConfig{
		Agent: sh.agent, Component: sh.component, SchemaVersion: sh.schemaVer, DeadLetters: sh.dead,
		AddColumn: addColumn, CheckDefinition: checkDef, MaxWindow: maxWrite, Observe: sh.metrics.observe,
		Logger: slog.New(newServiceLogHandler(mgr.Logger())),
	})
	return o, nil
}

func (o *errorResolutionOutput) Connect(ctx context.Context) error {
	return o.child.Prime()
}

func (o *errorResolutionOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	for _, m := range batch {
		m.MetaSetMut(runctl.HandledMetaKey, true)
	}
	b := newMsgBatch(batch)
	out, err := o.engine.Deliver(ctx, b, func(ctx context.Context, idx []int) error {
		sub := make(service.MessageBatch, len(idx))
		for j, i := range idx {
			sub[j] = b.msgs[i]
		}
		return o.child.WriteBatch(ctx, sub)
	})
	if out.DeadLettered > 0 || out.Adjusted > 0 || out.Retries > 0 {
		o.log.Debugf("error_resolution: %d written, %d dead-lettered %v, %d adjusted, %d retries, %d writes",
			out.Written, out.DeadLettered, out.Categories, out.Adjusted, out.Retries, out.Writes)
	}
	if err != nil {
		var esc *resolution.EscalatedError
		if errors.As(err, &esc) && pgutil.IsPermanent(err) {
			// A permanent batch-wide error (a missing table, a wrong
			// password): redelivering cannot help, so a bounded run stops.
			runctl.Fail(err)
		}
		return fmt.Errorf("error_resolution: %w", err)
	}
	return nil
}

func (o *errorResolutionOutput) Close(ctx context.Context) error {
	err := o.child.Close(ctx)
	o.engine.Close()
	o.sh.close()
	return err
}
