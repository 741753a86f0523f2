package sqlite

import (
	"context"
	"fmt"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/runctl"
	"github.com/agentetl/agentetl/internal/sqlitedb"
)

const (
	soFieldDSN        = "dsn"
	soFieldTable      = "table"
	soFieldMode       = "mode"
	soFieldKeyColumns = "key_columns"
	soFieldBatching   = "batching"
)

func sqliteOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Writes structured messages into an SQLite table, as inserts or idempotent upserts, one transaction per batch.").
		Description(`
Every message must be a JSON object whose keys are column names of the target table. Each batch is written in one
transaction: all of it lands or none of it does, so a retried or replayed batch never leaves a partial write. The
database file is created when missing and switched to WAL, so readers are never blocked by the writer; the table must
exist (create it with your schema's DDL, CHECK and NOT NULL constraints included).

- `+"`insert`"+` appends; a duplicate key is an error.
- `+"`upsert`"+` (default) has the effect of `+"`INSERT ... ON CONFLICT (key) DO UPDATE`"+`: reruns and replays leave the same
  rows, and identical rows are not rewritten.

Values are checked against the declared column types the way a typed database would, although SQLite itself would
store anything anywhere: text that is not an integer is refused by an `+"`INTEGER`"+` column, and text that is not a
date by a `+"`DATE`"+` column. Dates are stored as `+"`YYYY-MM-DD`"+`, timestamps as RFC 3339 in UTC, booleans as 0 or 1,
objects and arrays as JSON text. A record field with no column is an error naming the table's real columns: nothing
is silently dropped.

Errors carry the SQLSTATE of the same condition in PostgreSQL (23514 for a CHECK violation, 23502 NOT NULL, 23505 a
duplicate key, 22007 an invalid date, 55P03 a busy database) and the position of the failing record in the batch, so
the `+"`error_resolution`"+` output wrapped around this one isolates the bad records and dead-letters only them.

Identifiers are always quoted: a table called `+"`Order Items`"+` or `+"`select`"+` works as written.`).
		Fields(
			service.NewStringField(soFieldDSN).
				Description("The database: `sqlite://relative/path.db` or `sqlite:///absolute/path.db`. Relative paths are relative to the working directory.").
				Example("sqlite://./data/target.db"),
			service.NewStringField(soFieldTable).
				Description("Target table, `name` or `schema.name`, taken exactly as written and always quoted.").
				Example("orders"),
			service.NewStringEnumField(soFieldMode, string(sqlitedb.ModeInsert), string(sqlitedb.ModeUpsert)).
				Description("`insert` appends; `upsert` inserts or updates by key and is idempotent.").
				Default(string(sqlitedb.ModeUpsert)),
			service.NewStringListField(soFieldKeyColumns).
				Description("Conflict key for upsert. Empty uses the table's primary key. Must be the primary key or a unique index's columns.").
				Optional().Example([]string{"order_id"}),
			service.NewOutputMaxInFlightField().
				Description("Batches written at once. SQLite has one writer at a time, so more than 1 only queues behind its lock.").
				Default(1),
			service.NewBatchPolicyField(soFieldBatching),
		).
		Example("Idempotent load", "Upsert into a table by primary key, in batches of 500 records.", `
output:
  sqlite:
    dsn: sqlite://./data/target.db
    table: orders
    mode: upsert
    batching:
      count: 500
      period: 1s
`)
}

func init() {
	service.MustRegisterBatchOutput("sqlite", sqliteOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (out service.BatchOutput, pol service.BatchPolicy, mif int, err error) {
			if mif, err = conf.FieldMaxInFlight(); err != nil {
				return
			}
			if pol, err = conf.FieldBatchPolicy(soFieldBatching); err != nil {
				return
			}
			out, err = newSQLiteOutput(conf, mgr)
			return
		})
}

type sqliteOutput struct {
	cfg sqlitedb.WriterConfig
	log *service.Logger

	mu     sync.Mutex
	writer *sqlitedb.Writer
}

func newSQLiteOutput(conf *service.ParsedConfig, mgr *service.Resources) (*sqliteOutput, error) {
	o := &sqliteOutput{log: mgr.Logger()}
	var err error
	if o.cfg.DSN, err = conf.FieldString(soFieldDSN); err != nil {
		return nil, err
	}
	if o.cfg.Table, err = conf.FieldString(soFieldTable); err != nil {
		return nil, err
	}
	mode, err := conf.FieldString(soFieldMode)
	if err != nil {
		return nil, err
	}
	o.cfg.Mode = sqlitedb.Mode(mode)
	if conf.Contains(soFieldKeyColumns) {
		if o.cfg.KeyColumns, err = conf.FieldStringList(soFieldKeyColumns); err != nil {
			return nil, err
		}
	}
	if _, err := sqlitedb.Path(o.cfg.DSN); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *sqliteOutput) Connect(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.writer != nil {
		return nil
	}
	w, err := sqlitedb.OpenWriter(ctx, o.cfg)
	if err != nil {
		if pgutil.IsPermanent(err) {
			runctl.Fail(err)
		}
		return err
	}
	o.writer = w
	o.log.Infof("Writing to %s in %s mode", w.Table().Ident.String(), o.cfg.Mode)
	return nil
}

func (o *sqliteOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	o.mu.Lock()
	w := o.writer
	o.mu.Unlock()
	if w == nil {
		return service.ErrNotConnected
	}
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
	if err := w.Write(ctx, rows); err != nil {
		// Behind the error_resolution output, that wrapper isolates the bad
		// records; a permanent error about one record does not end a run.
		if _, handled := batch[0].MetaGetMut(runctl.HandledMetaKey); pgutil.IsPermanent(err) && !handled {
			runctl.Fail(err)
		}
		return err
	}
	return nil
}

func (o *sqliteOutput) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.writer != nil {
		err := o.writer.Close()
		o.writer = nil
		return err
	}
	return nil
}
