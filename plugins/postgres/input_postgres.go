// Package postgres registers the postgres input and output. The plugins are
// thin: paging lives in internal/pgsource, writing in internal/pgsink, and
// checkpoints in internal/metastore.
package postgres

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/checkpoint"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/pgsource"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
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
	maxAttempts     int
	log             *service.Logger

	mu       sync.Mutex
	reader   *pgsource.Reader
	store    metastore.Store
	tracker  *checkpoint.Tracker
	attempts int
	rows     int64
	// replay holds pages whose batch was rejected downstream. They are sent
	// again before any new page, so a nack never loses rows and never lets
	// the checkpoint pass them. The rows are kept read-only (SetStructured),
	// so a processor that changes a record works on its own copy and a
	// replay sends the original.
	replay []*pendingPage
	// outstanding counts emitted pages not yet acknowledged. The input
	// reports end of input only when it is zero: a page rejected after the
	// last read must still be replayed.
	outstanding int
	eof         bool
	notify      chan struct{} // closed and replaced on every ack or nack
}

type pendingPage struct {
	page    *pgsource.Page
	seq     uint64
	tracked bool
	nacks   int
}

func newPostgresInput(conf *service.ParsedConfig, mgr *service.Resources) (*postgresInput, error) {
	in := &postgresInput{log: mgr.Logger(), notify: make(chan struct{})}
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
	if in.maxAttempts, err = conf.FieldInt(pgiFieldConnectAttempts); err != nil {
		return nil, err
	}
	return in, nil
}

// fail decides what a connect or read error means for the run: permanent
// errors and exhausted connection attempts stop `agentetl run`.
func (p *postgresInput) fail(err error) error {
	if pgutil.IsPermanent(err) {
		runctl.Fail(err)
		return err
	}
	p.attempts++
	if p.maxAttempts > 0 && p.attempts >= p.maxAttempts {
		runctl.Fail(err)
	}
	return err
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
		st, err := metastore.Open(ctx, p.checkpointStore)
		if err != nil {
			r.Close()
			return p.fail(pgutil.Permanentf("open checkpoint store", "%s", redact.String(err.Error())))
		}
		pos, err := st.GetCheckpoint(ctx, p.checkpointID)
		switch {
		case errors.Is(err, metastore.ErrNotFound) || (err == nil && p.reset):
		case err != nil:
			r.Close()
			_ = st.Close()
			return p.fail(err)
		default:
			if err := r.Resume(pos); err != nil {
				r.Close()
				_ = st.Close()
				return p.fail(err)
			}
			p.log.Infof("Resuming %s from checkpoint %q at %s", r.Source(), p.checkpointID, pos)
		}
		id := p.checkpointID
		p.store = st
		p.tracker = checkpoint.New(func(ctx context.Context, position string) error {
			return st.SaveCheckpoint(ctx, id, position)
		})
	}
	p.reader = r
	p.attempts = 0
	p.log.Infof("Reading %s in pages of %d rows keyed on %q", r.Source(), p.cfg.PageSize, p.cfg.KeyColumn)
	return nil
}

func (p *postgresInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		p.mu.Lock()
		r := p.reader
		if r == nil {
			p.mu.Unlock()
			return nil, nil, service.ErrNotConnected
		}
		if len(p.replay) > 0 {
			pp := p.replay[0]
			p.replay = p.replay[1:]
			p.mu.Unlock()
			// Back off on a page that keeps being rejected, so a failing
			// destination is not hammered; the page itself is never dropped.
			wait := min(time.Duration(pp.nacks)*100*time.Millisecond, 5*time.Second)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				p.mu.Lock()
				p.replay = append([]*pendingPage{pp}, p.replay...)
				p.mu.Unlock()
				return nil, nil, ctx.Err()
			}
			return p.emit(r, pp)
		}
		if p.eof {
			if p.outstanding == 0 {
				p.mu.Unlock()
				return nil, nil, service.ErrEndOfInput
			}
			ch := p.notify
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		p.mu.Unlock()

		page, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			p.log.Infof("Finished reading %s: %d rows", r.Source(), p.rows)
			p.mu.Lock()
			p.eof = true
			p.mu.Unlock()
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, p.fail(err)
		}
		p.attempts = 0 // only consecutive failures count towards giving up
		p.rows += int64(len(page.Rows))
		pp := &pendingPage{page: page}
		if p.tracker != nil {
			pp.seq, pp.tracked = p.tracker.Track(r.EncodePosition(page)), true
		}
		return p.emit(r, pp)
	}
}

func (p *postgresInput) emit(r *pgsource.Reader, pp *pendingPage) (service.MessageBatch, service.AckFunc, error) {
	page := pp.page
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
	p.mu.Lock()
	p.outstanding++
	p.mu.Unlock()
	tracker := p.tracker
	return batch, func(ctx context.Context, err error) error {
		if err != nil {
			pp.nacks++
			p.log.Warnf("Page %d of %s was rejected downstream (%v); it will be sent again", page.Number, r.Source(), err)
			p.mu.Lock()
			p.replay = append(p.replay, pp)
			p.outstanding--
			p.signal()
			p.mu.Unlock()
			return nil
		}
		var saveErr error
		if pp.tracked {
			saveErr = tracker.Ack(ctx, pp.seq)
		}
		p.mu.Lock()
		p.outstanding--
		p.signal()
		p.mu.Unlock()
		return saveErr
	}, nil
}

// signal wakes a ReadBatch waiting at end of input. Called with p.mu held.
func (p *postgresInput) signal() {
	close(p.notify)
	p.notify = make(chan struct{})
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
