// Package postgres registers the postgres input and output. The plugins are
// thin: paging lives in internal/pgsource, writing in internal/pgsink, and
// checkpoints in internal/metastore.
package postgres

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/checkpoint"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/pagequeue"
	"github.com/agentetl/agentetl/internal/pgsource"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/runctl"
)

const (
	pgiFieldDSN             = "dsn"
	pgiFieldTable           = "table"
	pgiFieldQuery           = "query"
	pgiFieldKeyColumn       = "key_column"
	pgiFieldColumns         = "columns"
	pgiFieldPageSize        = "page_size"
	pgiFieldPrefetch        = "prefetch_pages"
	pgiFieldCheckpointID    = "checkpoint_id"
	pgiFieldCheckpointStore = "checkpoint_store"
	pgiFieldResetCheckpoint = "reset_checkpoint"
	pgiFieldConnectAttempts = "max_connect_attempts"

	// Metadata keys set on every message.
	MetaTable = "postgres_table"
	MetaPage  = "postgres_page"
	MetaKey   = "postgres_key"
)

func postgresInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Reads a PostgreSQL table or query in bounded pages with keyset pagination, then ends.").
		Description(`
Each page is one short statement, `+"`WHERE key > $last ORDER BY key LIMIT page_size`"+`, so the input never uses
OFFSET, never holds a long transaction and keeps memory bounded by the page size on tables of any size. When the last
page has been read the input ends, and `+"`agentetl run`"+` exits 0 once every message is acknowledged.

Rows become structured messages that keep their column types: `+"`numeric`"+` stays an exact decimal number,
timestamps and dates stay timestamps, `+"`json`/`jsonb`"+` become objects, `+"`uuid`"+` and network types become
strings. Each message carries the metadata `+"`postgres_table`, `postgres_page` and `postgres_key`"+`.

### Checkpoints

With `+"`checkpoint_id`"+` set, the last key position whose page and every page before it have been acknowledged is
stored in the metadata store (`+"`checkpoint_store`"+`). It is written only inside the ack function, so
out-of-order acknowledgements never move it past an unfinished page. A run that is killed resumes after that
position; a run that finished leaves the position at the end, so the next run reads only rows with larger keys (an
incremental load). Set `+"`reset_checkpoint: true`"+` to start from the beginning.

### Errors

A missing table, a missing or non-unique key column, a bad password or a missing database cannot be fixed by
retrying: under `+"`agentetl run`"+` they stop the run with a clear message and a non-zero exit code. Connection
failures are retried with backoff.`).
		Fields(
			service.NewStringField(pgiFieldDSN).
				Description("PostgreSQL connection string, URL or key/value form. Passwords are redacted in every log and error.").
				Example("postgres://user:${PGPASSWORD}@localhost:5432/app?sslmode=disable").Secret(),
			service.NewStringField(pgiFieldTable).
				Description("The table to read, `name` or `schema.name`. Names are taken exactly as written (no case folding) and always quoted; double-quote a part that contains a dot.").
				Example("public.orders").Example("Order Items").Optional(),
			service.NewStringField(pgiFieldQuery).
				Description("A SELECT to read instead of a table. It is wrapped as a derived table and paged on `key_column`, which must be unique in its result.").
				Example("SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id").
				Optional().Advanced(),
			service.NewStringField(pgiFieldKeyColumn).
				Description("The column pages are ordered and resumed on. For a table it must be a primary key or have a unique index on exactly that column.").
				Default("id"),
			service.NewStringListField(pgiFieldColumns).
				Description("Columns to read from the table. Empty reads every column.").
				Example([]string{"id", "email", "created_at"}).Optional(),
			service.NewIntField(pgiFieldPageSize).
				Description("Rows per page. Each page becomes one message batch.").
				Default(10000).LintRule(`root = if this < 1 || this > 1000000 { ["page_size must be between 1 and 1000000"] }`),
			service.NewIntField(pgiFieldPrefetch).
				Description("Pages fetched ahead while earlier pages are processed. Memory holds up to prefetch_pages plus in-flight pages.").
				Default(1).Advanced().LintRule(`root = if this < 1 || this > 16 { ["prefetch_pages must be between 1 and 16"] }`),
			service.NewStringField(pgiFieldCheckpointID).
				Description("Identifies this pipeline's read position in the checkpoint store. Empty disables checkpointing.").
				Default("").Example("orders-to-warehouse"),
			service.NewStringField(pgiFieldCheckpointStore).
				Description("Metadata store DSN that holds checkpoints: `sqlite://path` or a `postgres://` DSN.").
				Default("sqlite://./data/agentetl.db").Secret(),
			service.NewBoolField(pgiFieldResetCheckpoint).
				Description("Ignore and overwrite a stored checkpoint, reading from the start.").
				Default(false).Advanced(),
			service.NewIntField(pgiFieldConnectAttempts).
				Description("Under `agentetl run`, give up after this many failed connection attempts and exit non-zero. 0 retries forever.").
				Default(5).Advanced(),
		).
		LintRule(`root = if this.table.or("") == "" && this.query.or("") == "" { ["one of table or query must be set"] } else if this.table.or("") != "" && this.query.or("") != "" { ["table and query cannot both be set"] }`).
		Example("Copy a table", "Read a table in pages of 5000 rows and remember the position across runs.", `
input:
  postgres:
    dsn: ${SOURCE_DSN}
    table: public.orders
    key_column: id
    page_size: 5000
    checkpoint_id: orders-copy
`)
}

func init() {
	service.MustRegisterBatchInput("postgres", postgresInputSpec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
		return newPostgresInput(conf, mgr)
	})
}

type postgresInput struct {
	cfg             pgsource.Config
	checkpointID    string
	checkpointStore string
	reset           bool
	log             *service.Logger

	mu       sync.Mutex
	reader   *pgsource.Reader
	store    metastore.Store
	tracker  *checkpoint.Tracker
	attempts runctl.Attempts
	rows     int64
	// pages tracks the pages out downstream and replays rejected ones
	// (internal/pagequeue). The rows are kept read-only
	// (SetStructured), so a processor that changes a record works on its
	// own copy and a replay sends the original.
	pages *pagequeue.Queue[*pgsource.Page]
}

func newPostgresInput(conf *service.ParsedConfig, mgr *service.Resources) (*postgresInput, error) {
	in := &postgresInput{log: mgr.Logger(), pages: pagequeue.New[*pgsource.Page]()}
	var err error
	if in.cfg.DSN, err = conf.FieldString(pgiFieldDSN); err != nil {
		return nil, err
	}
	if conf.Contains(pgiFieldTable) {
		if in.cfg.Table, err = conf.FieldString(pgiFieldTable); err != nil {
			return nil, err
		}
	}
	if conf.Contains(pgiFieldQuery) {
		if in.cfg.Query, err = conf.FieldString(pgiFieldQuery); err != nil {
			return nil, err
		}
	}
	if in.cfg.KeyColumn, err = conf.FieldString(pgiFieldKeyColumn); err != nil {
		return nil, err
	}
	if conf.Contains(pgiFieldColumns) {
		if in.cfg.Columns, err = conf.FieldStringList(pgiFieldColumns); err != nil {
			return nil, err
		}
	}
	if in.cfg.PageSize, err = conf.FieldInt(pgiFieldPageSize); err != nil {
		return nil, err
	}
	if in.cfg.Prefetch, err = conf.FieldInt(pgiFieldPrefetch); err != nil {
		return nil, err
	}
	if in.checkpointID, err = conf.FieldString(pgiFieldCheckpointID); err != nil {
		return nil, err
	}
	if in.checkpointStore, err = conf.FieldString(pgiFieldCheckpointStore); err != nil {
		return nil, err
	}
	if in.reset, err = conf.FieldBool(pgiFieldResetCheckpoint); err != nil {
		return nil, err
	}
	if in.attempts.Max, err = conf.FieldInt(pgiFieldConnectAttempts); err != nil {
		return nil, err
	}
	return in, nil
}

// fail decides what a connect or read error means for the run: permanent
// errors and exhausted connection attempts stop `agentetl run`.
func (p *postgresInput) fail(err error) error {
	return p.attempts.Fail(err, pgutil.IsPermanent(err))
}

func (p *postgresInput) Connect(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reader != nil {
		return nil
	}
	r, err := pgsource.Open(ctx, p.cfg)
	if err != nil {
		return p.fail(err)
	}
	if p.checkpointID != "" && p.store == nil {
		cp, err := checkpoint.OpenStored(ctx, p.checkpointStore, p.checkpointID, p.reset, r.Resume)
		if err != nil {
			r.Close()
			return p.fail(err)
		}
		if cp.Resumed != "" {
			p.log.Infof("Resuming %s from checkpoint %q at %s", r.Source(), p.checkpointID, cp.Resumed)
		}
		p.store, p.tracker = cp.Store, cp.Tracker
	}
	p.reader = r
	p.attempts.Reset()
	p.log.Infof("Reading %s in pages of %d rows keyed on %q", r.Source(), p.cfg.PageSize, p.cfg.KeyColumn)
	return nil
}

func (p *postgresInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	p.mu.Lock()
	r := p.reader
	p.mu.Unlock()
	if r == nil {
		return nil, nil, service.ErrNotConnected
	}
	pp, err := p.pages.Next(ctx, func(ctx context.Context) (*pagequeue.Page[*pgsource.Page], error) {
		page, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			p.log.Infof("Finished reading %s: %d rows", r.Source(), p.rows)
			return nil, io.EOF
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, p.fail(err)
		}
		p.attempts.Reset() // only consecutive failures count towards giving up
		p.rows += int64(len(page.Rows))
		pp := &pagequeue.Page[*pgsource.Page]{Page: page}
		if p.tracker != nil {
			pp.Seq, pp.Tracked = p.tracker.Track(r.EncodePosition(page)), true
		}
		return pp, nil
	})
	if errors.Is(err, pagequeue.ErrEndOfInput) {
		return nil, nil, service.ErrEndOfInput
	}
	if err != nil {
		return nil, nil, err
	}
	return p.emit(r, pp)
}

func (p *postgresInput) emit(r *pgsource.Reader, pp *pagequeue.Page[*pgsource.Page]) (service.MessageBatch, service.AckFunc, error) {
	page := pp.Page
	// Metadata values shared by the whole page are boxed once.
	var table, number any = r.Source(), page.Number
	batch := make(service.MessageBatch, len(page.Rows))
	for i, row := range page.Rows {
		m := service.NewMessage(nil)
		m.SetStructured(row)
		m.MetaSetMut(MetaTable, table)
		m.MetaSetMut(MetaPage, number)
		m.MetaSetMut(MetaKey, row[p.cfg.KeyColumn])
		batch[i] = m
	}
	tracker := p.tracker
	return batch, func(ctx context.Context, err error) error {
		if err != nil {
			p.log.Warnf("Page %d of %s was rejected downstream (%v); it will be sent again", page.Number, r.Source(), err)
			p.pages.Done(pp, err)
			return nil
		}
		var saveErr error
		if pp.Tracked {
			saveErr = tracker.Ack(ctx, pp.Seq)
		}
		p.pages.Done(pp, nil)
		return saveErr
	}, nil
}

func (p *postgresInput) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reader != nil {
		p.reader.Close()
		p.reader = nil
	}
	if p.store != nil {
		err := p.store.Close()
		p.store = nil
		return err
	}
	return nil
}
