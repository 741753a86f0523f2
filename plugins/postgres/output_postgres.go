package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/pgsink"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/runctl"
)

const (
	pgoFieldDSN             = "dsn"
	pgoFieldTable           = "table"
	pgoFieldMode            = "mode"
	pgoFieldKeyColumns      = "key_columns"
	pgoFieldCreateTable     = "create_table"
	pgoFieldColumns         = "columns"
	pgoFieldColName         = "name"
	pgoFieldColType         = "type"
	pgoFieldColNullable     = "nullable"
	pgoFieldColPrimaryKey   = "primary_key"
	pgoFieldBatching        = "batching"
	pgoFieldConnectAttempts = "max_connect_attempts"
	pgoFieldOperationMeta   = "operation_meta"
)

func postgresOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Writes structured messages into a PostgreSQL table with binary COPY, as inserts or idempotent upserts.").
		Description(`
Every message must be a JSON object whose keys are column names of the target table. Each batch is written in one
transaction: all of it lands or none of it does, so a retried or replayed batch never leaves a partial write.

- `+"`insert`"+` streams the batch with binary `+"`COPY`"+`.
- `+"`upsert`"+` gives the effect of `+"`INSERT ... ON CONFLICT (key) DO UPDATE`"+`. It first tries a plain binary COPY, which is
  the fastest write and has exactly an upsert's effect when no key exists yet; if a key conflict aborts it, the batch is
  redone as COPY into a session-local staging table followed by one `+"`INSERT ... SELECT ... ON CONFLICT DO UPDATE`"+`,
  and the following batches go straight to that path for a while. Duplicate keys inside one batch keep the last record.
  Rows that are already identical are not rewritten.

A record field with no matching column is an error naming the table's real columns: nothing is silently dropped.
Before a batch is sent, the first non-null value of every column is checked against the column type, so a text
field headed for an integer column fails at once with both types named. Database errors carry their SQLSTATE,
table, column and constraint.

Identifiers are always quoted: a table called `+"`Order Items`"+` or `+"`select`"+` works as written.`).
		Fields(
			service.NewStringField(pgoFieldDSN).
				Description("PostgreSQL connection string. Passwords are redacted in every log and error.").
				Example("postgres://user:${PGPASSWORD}@localhost:5432/warehouse?sslmode=disable").Secret(),
			service.NewStringField(pgoFieldTable).
				Description("Target table, `name` or `schema.name`, taken exactly as written and always quoted.").
				Example("analytics.orders"),
			service.NewStringEnumField(pgoFieldMode, string(pgsink.ModeInsert), string(pgsink.ModeUpsert)).
				Description("`insert` appends with COPY; `upsert` inserts or updates by key and is idempotent, so replays and reruns leave the same rows.").
				Default(string(pgsink.ModeUpsert)),
			service.NewStringListField(pgoFieldKeyColumns).
				Description("Conflict key for upsert. Empty uses the table's primary key. Must match a primary key or unique index.").
				Optional().Example([]string{"order_id"}),
			service.NewBoolField(pgoFieldCreateTable).
				Description("Create the table from `columns` when it does not exist.").
				Default(false),
			service.NewObjectListField(pgoFieldColumns,
				service.NewStringField(pgoFieldColName).Description("Column name, taken exactly as written."),
				service.NewStringField(pgoFieldColType).Description("PostgreSQL type, such as `bigint`, `numeric(12,2)` or `timestamptz`. Checked against the server's types.").
					LintRule(`root = if !this.re_match("^(?i)[a-z_][a-z0-9_]*( [a-z_][a-z0-9_]*){0,3}(\\(\\s*\\d+\\s*(,\\s*\\d+\\s*)?\\))?( with(out)? time zone)?(\\[\\])*$") { ["'%s' is not a valid column type".format(this)] }`),
				service.NewBoolField(pgoFieldColNullable).Description("Whether the column accepts NULL.").Default(true),
				service.NewBoolField(pgoFieldColPrimaryKey).Description("Part of the primary key.").Default(false),
			).Description("Column declarations used by `create_table`.").Optional(),
			service.NewIntField(pgoFieldConnectAttempts).
				Description("Under `agentetl run`, give up after this many failed connection attempts and exit non-zero. 0 retries forever.").
				Default(5).Advanced(),
			service.NewStringField(pgoFieldOperationMeta).
				Description("Metadata key holding a record's change type, as set by the `postgres_cdc` input. In `upsert` mode a record whose value is `delete` deletes the row with its key (the record needs the key columns) instead of being upserted; within a batch the last change of each key wins, and deletes and upserts commit together. `truncate` empties the table in stream order; `schema_change` is logged and acknowledged. Batches without these take the plain path. Empty turns this off.").
				Default("operation").Advanced(),
			service.NewOutputMaxInFlightField().Default(2),
			service.NewBatchPolicyField(pgoFieldBatching),
		).
		LintRule(`root = if this.create_table.or(false) && this.columns.or([]).length() == 0 { ["create_table requires a columns list"] }`).
		Example("Idempotent load", "Upsert into a table by primary key, creating it on first run.", `
output:
  postgres:
    dsn: ${TARGET_DSN}
    table: public.orders
    mode: upsert
    create_table: true
    columns:
      - { name: id, type: bigint, primary_key: true, nullable: false }
      - { name: total, type: "numeric(12,2)" }
      - { name: created_at, type: timestamptz }
    batching:
      count: 10000
      period: 1s
`)
}

func init() {
	service.MustRegisterBatchOutput("postgres", postgresOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (out service.BatchOutput, pol service.BatchPolicy, mif int, err error) {
			if mif, err = conf.FieldMaxInFlight(); err != nil {
				return
			}
			if pol, err = conf.FieldBatchPolicy(pgoFieldBatching); err != nil {
				return
			}
			out, err = newPostgresOutput(conf, mgr, mif)
			return
		})
}

type postgresOutput struct {
	cfg    pgsink.Config
	opMeta string
	log    *service.Logger

	mu       sync.Mutex
	writer   *pgsink.Writer
	attempts runctl.Attempts
}

func newPostgresOutput(conf *service.ParsedConfig, mgr *service.Resources, maxInFlight int) (*postgresOutput, error) {
	o := &postgresOutput{log: mgr.Logger()}
	var err error
	if o.cfg.DSN, err = conf.FieldString(pgoFieldDSN); err != nil {
		return nil, err
	}
	if o.cfg.Table, err = conf.FieldString(pgoFieldTable); err != nil {
		return nil, err
	}
	mode, err := conf.FieldString(pgoFieldMode)
	if err != nil {
		return nil, err
	}
	o.cfg.Mode = pgsink.Mode(mode)
	if conf.Contains(pgoFieldKeyColumns) {
		if o.cfg.KeyColumns, err = conf.FieldStringList(pgoFieldKeyColumns); err != nil {
			return nil, err
		}
	}
	if o.cfg.CreateTable, err = conf.FieldBool(pgoFieldCreateTable); err != nil {
		return nil, err
	}
	if conf.Contains(pgoFieldColumns) {
		cols, err := conf.FieldObjectList(pgoFieldColumns)
		if err != nil {
			return nil, err
		}
		for _, c := range cols {
			var d pgsink.ColumnDef
			if d.Name, err = c.FieldString(pgoFieldColName); err != nil {
				return nil, err
			}
			if d.Type, err = c.FieldString(pgoFieldColType); err != nil {
				return nil, err
			}
			if d.Nullable, err = c.FieldBool(pgoFieldColNullable); err != nil {
				return nil, err
			}
			if d.PrimaryKey, err = c.FieldBool(pgoFieldColPrimaryKey); err != nil {
				return nil, err
			}
			o.cfg.Columns = append(o.cfg.Columns, d)
		}
	}
	if o.attempts.Max, err = conf.FieldInt(pgoFieldConnectAttempts); err != nil {
		return nil, err
	}
	if o.opMeta, err = conf.FieldString(pgoFieldOperationMeta); err != nil {
		return nil, err
	}
	o.cfg.MaxConns = maxInFlight + 1
	return o, nil
}

func (o *postgresOutput) fail(err error) error {
	return o.attempts.Fail(err, pgutil.IsPermanent(err))
}

func (o *postgresOutput) Connect(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.writer != nil {
		return nil
	}
	w, err := pgsink.Open(ctx, o.cfg)
	if err != nil {
		return o.fail(err)
	}
	o.writer = w
	o.attempts.Reset()
	o.log.Infof("Writing to %s in %s mode", w.Table().Ident.String(), o.cfg.Mode)
	return nil
}

func (o *postgresOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	o.mu.Lock()
	w := o.writer
	o.mu.Unlock()
	if w == nil {
		return service.ErrNotConnected
	}
	if o.opMeta != "" && hasControl(batch, o.opMeta) {
		return o.writeWithControl(ctx, w, batch)
	}
	return o.writeRows(ctx, w, batch)
}

// Operations of a change stream that are not rows: a truncate of the
// source table empties the destination table in stream order; a schema
// change is reported and acknowledged (the destination is not altered;
// the discovery and mapping agents handle drift).
const (
	opTruncate     = "truncate"
	opSchemaChange = "schema_change"
)

func hasControl(batch service.MessageBatch, key string) bool {
	for _, m := range batch {
		if op, _ := m.MetaGet(key); op == opTruncate || op == opSchemaChange {
			return true
		}
	}
	return false
}

// writeWithControl writes the rows between control messages in order,
// applying each truncate between them. A redelivered batch repeats the
// same steps, which gives the same end state.
func (o *postgresOutput) writeWithControl(ctx context.Context, w *pgsink.Writer, batch service.MessageBatch) error {
	start := 0
	for i, m := range batch {
		op, _ := m.MetaGet(o.opMeta)
		if op != opTruncate && op != opSchemaChange {
			continue
		}
		if i > start {
			if err := o.writeRows(ctx, w, batch[start:i]); err != nil {
				return err
			}
		}
		start = i + 1
		if op == opSchemaChange {
			o.log.Infof("Schema change in the source passed through to %s; the table is not altered: %s", w.Table().Ident.String(), truncateText(m))
			continue
		}
		if o.cfg.Mode != pgsink.ModeUpsert {
			err := pgutil.Permanentf("truncate "+w.Table().Ident.String(), "a truncate message needs mode: upsert (a change stream); in insert mode drop it before the output")
			if _, handled := m.MetaGetMut(runctl.HandledMetaKey); !handled {
				runctl.Fail(err)
			}
			return err
		}
		if err := w.Truncate(ctx); err != nil {
			return err
		}
		o.log.Warnf("Truncated %s: the source table was truncated", w.Table().Ident.String())
	}
	if start < len(batch) {
		return o.writeRows(ctx, w, batch[start:])
	}
	return nil
}

func truncateText(m *service.Message) string {
	b, err := m.AsBytes()
	if err != nil {
		return ""
	}
	if len(b) > 300 {
		b = b[:300]
	}
	return string(b)
}

func (o *postgresOutput) writeRows(ctx context.Context, w *pgsink.Writer, batch service.MessageBatch) error {
	rows := make([]map[string]any, len(batch))
	for i, m := range batch {
		v, err := m.AsStructured()
		if err != nil {
			return fmt.Errorf("record %d of the batch is not JSON: %w", i, err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("record %d of the batch is a %T, not a JSON object of columns", i, v)
		}
		rows[i] = obj
	}
	var del []bool
	if o.opMeta != "" {
		for i, m := range batch {
			if op, ok := m.MetaGet(o.opMeta); ok && op == "delete" {
				if del == nil {
					del = make([]bool, len(batch))
				}
				del[i] = true
			}
		}
	}
	write := w.Write
	if del != nil {
		write = func(ctx context.Context, rows []map[string]any) error { return w.WriteChanges(ctx, rows, del) }
	}
	if err := write(ctx, rows); err != nil {
		// A batch that comes through the error_resolution output is that
		// wrapper's to resolve: it isolates the bad records and escalates
		// what cannot be fixed, so a permanent error here does not stop
		// the run.
		if _, handled := batch[0].MetaGetMut(runctl.HandledMetaKey); pgutil.IsPermanent(err) && !handled {
			runctl.Fail(err)
		}
		return err
	}
	return nil
}

func (o *postgresOutput) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.writer != nil {
		o.writer.Close()
		o.writer = nil
	}
	return nil
}
