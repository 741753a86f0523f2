// Package sqlite registers the sqlite input and output. The plugins are
// thin: reading and writing live in internal/sqlitedb, checkpoints in
// internal/metastore.
package sqlite

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/checkpoint"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/pagequeue"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/runctl"
	"github.com/agentetl/agentetl/internal/sqlitedb"
)

const (
	siFieldDSN             = "dsn"
	siFieldTable           = "table"
	siFieldKeyColumn       = "key_column"
	siFieldColumns         = "columns"
	siFieldPageSize        = "page_size"
	siFieldCheckpointID    = "checkpoint_id"
	siFieldCheckpointStore = "checkpoint_store"
	siFieldResetCheckpoint = "reset_checkpoint"

	// Metadata keys set on every message.
	MetaTable = "sqlite_table"
	MetaPage  = "sqlite_page"
	MetaKey   = "sqlite_key"
)

func sqliteInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Reads an SQLite table in bounded pages with keyset pagination, then ends.").
		Description(`
The database file is opened read-only. Each page is one short statement, `+"`WHERE key > ? ORDER BY key LIMIT page_size`"+`,
so the input never uses OFFSET and keeps memory bounded by the page size. When the last page has been read the input
ends, and `+"`agentetl run`"+` exits 0 once every message is acknowledged.

Rows become structured messages keyed by column name. Integers stay integers and reals stay numbers; a real in a
column declared `+"`NUMERIC`"+` or `+"`DECIMAL`"+` becomes an exact decimal number. Text in a column declared `+"`DATE`"+`,
`+"`DATETIME`"+`, `+"`TIMESTAMP`"+` or `+"`TIME`"+` that parses as one becomes a timestamp; text that does not parse stays
text, so the destination decides what to do with it (and the dead letter shows it). Each message carries the metadata
`+"`sqlite_table`, `sqlite_page` and `sqlite_key`"+`.

### Checkpoints

With `+"`checkpoint_id`"+` set, the key of the last row whose page, and every page before it, has been acknowledged is
stored in the metadata store (`+"`checkpoint_store`"+`). It is written only inside the ack function, so out-of-order
acknowledgements never move it past an unfinished page. A killed run resumes after that position; a finished run
leaves it at the end, so the next run reads only rows with larger keys (an incremental load). A rejected page is sent
again, with backoff, before anything new, and end of input is reported only once every page is acknowledged.

### Errors

A missing file or table, or a key column that is neither the primary key nor alone in a unique index, cannot be
fixed by retrying: under `+"`agentetl run`"+` it stops the run with a clear message and a non-zero exit code.`).
		Fields(
			service.NewStringField(siFieldDSN).
				Description("The database: `sqlite://relative/path.db` or `sqlite:///absolute/path.db`. Relative paths are relative to the working directory.").
				Example("sqlite://./data/legacy.db").Example("sqlite:///var/lib/app/app.db"),
			service.NewStringField(siFieldTable).
				Description("The table to read, `name` or `schema.name` (schema is an attached database, `main` by default). Names are taken exactly as written and always quoted.").
				Example("CUST_ORD").Example("main.orders"),
			service.NewStringField(siFieldKeyColumn).
				Description("The column pages are ordered and resumed on: the single-column primary key (an `INTEGER PRIMARY KEY` is ideal) or a column alone in a unique index, of integer or text type.").
				Default("id").Example("ord_id"),
			service.NewStringListField(siFieldColumns).
				Description("Columns to read. Empty reads every column; the key column is always read.").
				Example([]string{"ord_id", "cst_nm", "amt_usd"}).Optional(),
			service.NewIntField(siFieldPageSize).
				Description("Rows per page. Each page becomes one message batch.").
				Default(5000).LintRule(`root = if this < 1 || this > 1000000 { ["page_size must be between 1 and 1000000"] }`),
			service.NewStringField(siFieldCheckpointID).
				Description("Identifies this pipeline's read position in the checkpoint store. Empty disables checkpointing.").
				Default("").Example("legacy-orders"),
			service.NewStringField(siFieldCheckpointStore).
				Description("Metadata store DSN that holds checkpoints: `sqlite://path` or a `postgres://` DSN.").
				Default("sqlite://./data/agentetl.db").Secret(),
			service.NewBoolField(siFieldResetCheckpoint).
				Description("Ignore and overwrite a stored checkpoint, reading from the start.").
				Default(false).Advanced(),
		).
		Example("Copy a legacy table", "Read a table in pages of 1000 rows and remember the position across runs.", `
input:
  sqlite:
    dsn: sqlite://./resources/demo/legacy.db
    table: CUST_ORD
    key_column: ord_id
    page_size: 1000
    checkpoint_id: legacy-orders
`)
}

func init() {
	service.MustRegisterBatchInput("sqlite", sqliteInputSpec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
		return newSQLiteInput(conf, mgr)
	})
}

type sqliteInput struct {
	cfg             sqlitedb.ReaderConfig
	checkpointID    string
	checkpointStore string
	reset           bool
	log             *service.Logger

	mu      sync.Mutex
	reader  *sqlitedb.Reader
	store   metastore.Store
	tracker *checkpoint.Tracker
	rows    int64
	// pages tracks the pages out downstream and replays rejected ones
	// (internal/pagequeue). The rows are kept read-only
	// (SetStructured), so a processor that changes a record works on its
	// own copy and a replay sends the original.
	pages *pagequeue.Queue[*sqlitedb.Page]
}

func newSQLiteInput(conf *service.ParsedConfig, mgr *service.Resources) (*sqliteInput, error) {
	in := &sqliteInput{log: mgr.Logger(), pages: pagequeue.New[*sqlitedb.Page]()}
	var err error
	if in.cfg.DSN, err = conf.FieldString(siFieldDSN); err != nil {
		return nil, err
	}
	if in.cfg.Table, err = conf.FieldString(siFieldTable); err != nil {
		return nil, err
	}
	if in.cfg.KeyColumn, err = conf.FieldString(siFieldKeyColumn); err != nil {
		return nil, err
	}
	if conf.Contains(siFieldColumns) {
		if in.cfg.Columns, err = conf.FieldStringList(siFieldColumns); err != nil {
			return nil, err
		}
	}
	if in.cfg.PageSize, err = conf.FieldInt(siFieldPageSize); err != nil {
		return nil, err
	}
	if in.checkpointID, err = conf.FieldString(siFieldCheckpointID); err != nil {
		return nil, err
	}
	if in.checkpointStore, err = conf.FieldString(siFieldCheckpointStore); err != nil {
		return nil, err
	}
	if in.reset, err = conf.FieldBool(siFieldResetCheckpoint); err != nil {
		return nil, err
	}
	if _, err := sqlitedb.Path(in.cfg.DSN); err != nil {
		return nil, err
	}
	return in, nil
}

// fail stops `agentetl run` on errors no retry can fix.
func (s *sqliteInput) fail(err error) error {
	if pgutil.IsPermanent(err) {
		runctl.Fail(err)
	}
	return err
}

func (s *sqliteInput) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reader != nil {
		return nil
	}
	r, err := sqlitedb.OpenReader(ctx, s.cfg)
	if err != nil {
		return s.fail(err)
	}
	if s.checkpointID != "" && s.store == nil {
		cp, err := checkpoint.OpenStored(ctx, s.checkpointStore, s.checkpointID, s.reset, r.Resume)
		if err != nil {
			_ = r.Close()
			return s.fail(err)
		}
		if cp.Resumed != "" {
			s.log.Infof("Resuming %s from checkpoint %q at %s", r.Source(), s.checkpointID, cp.Resumed)
		}
		s.store, s.tracker = cp.Store, cp.Tracker
	}
	s.reader = r
	s.log.Infof("Reading %s in pages of %d rows keyed on %q", r.Source(), s.cfg.PageSize, s.cfg.KeyColumn)
	return nil
}

func (s *sqliteInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	s.mu.Lock()
	r := s.reader
	s.mu.Unlock()
	if r == nil {
		return nil, nil, service.ErrNotConnected
	}
	pp, err := s.pages.Next(ctx, func(ctx context.Context) (*pagequeue.Page[*sqlitedb.Page], error) {
		page, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			s.log.Infof("Finished reading %s: %d rows", r.Source(), s.rows)
			return nil, io.EOF
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, s.fail(err)
		}
		s.rows += int64(len(page.Rows))
		pp := &pagequeue.Page[*sqlitedb.Page]{Page: page}
		if s.tracker != nil {
			pp.Seq, pp.Tracked = s.tracker.Track(r.EncodePosition(page)), true
		}
		return pp, nil
	})
	if errors.Is(err, pagequeue.ErrEndOfInput) {
		return nil, nil, service.ErrEndOfInput
	}
	if err != nil {
		return nil, nil, err
	}
	return s.emit(r, pp)
}

func (s *sqliteInput) emit(r *sqlitedb.Reader, pp *pagequeue.Page[*sqlitedb.Page]) (service.MessageBatch, service.AckFunc, error) {
	page := pp.Page
	var table, number any = r.Source(), page.Number
	key := s.cfg.KeyColumn
	batch := make(service.MessageBatch, len(page.Rows))
	for i, row := range page.Rows {
		m := service.NewMessage(nil)
		// Read-only: a processor that changes a record works on its own
		// copy, so a replay sends the original.
		m.SetStructured(row)
		m.MetaSetMut(MetaTable, table)
		m.MetaSetMut(MetaPage, number)
		m.MetaSetMut(MetaKey, row[key])
		batch[i] = m
	}
	tracker := s.tracker
	return batch, func(ctx context.Context, err error) error {
		if err != nil {
			s.log.Warnf("Page %d of %s was rejected downstream (%v); it will be sent again", page.Number, r.Source(), err)
			s.pages.Done(pp, err)
			return nil
		}
		var saveErr error
		if pp.Tracked {
			saveErr = tracker.Ack(ctx, pp.Seq)
		}
		s.pages.Done(pp, nil)
		return saveErr
	}, nil
}

func (s *sqliteInput) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
		s.reader = nil
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
		s.store = nil
	}
	return errors.Join(errs...)
}
