// Package sqlite registers the sqlite input and output. The plugins are
// thin: reading and writing live in internal/sqlitedb, checkpoints in
// internal/metastore.
package sqlite

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/checkpoint"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
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
	// replay holds pages whose batch was rejected downstream; they are
	// sent again before any new page.
	replay []*pendingPage
	// outstanding counts emitted pages not yet acknowledged; end of input
	// is reported only when it is zero.
	outstanding int
	eof         bool
	notify      chan struct{} // closed and replaced on every ack or nack
}

type pendingPage struct {
	page    *sqlitedb.Page
	seq     uint64
	tracked bool
	nacks   int
}

func newSQLiteInput(conf *service.ParsedConfig, mgr *service.Resources) (*sqliteInput, error) {
	in := &sqliteInput{log: mgr.Logger(), notify: make(chan struct{})}
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
		st, err := metastore.Open(ctx, s.checkpointStore)
		if err != nil {
			_ = r.Close()
			return s.fail(pgutil.Permanentf("open checkpoint store", "%s", redact.String(err.Error())))
		}
		pos, err := st.GetCheckpoint(ctx, s.checkpointID)
		switch {
		case errors.Is(err, metastore.ErrNotFound) || (err == nil && s.reset):
		case err != nil:
			_ = r.Close()
			_ = st.Close()
			return err
		default:
			if err := r.Resume(pos); err != nil {
				_ = r.Close()
				_ = st.Close()
				return s.fail(err)
			}
			s.log.Infof("Resuming %s from checkpoint %q at %s", r.Source(), s.checkpointID, pos)
		}
		id := s.checkpointID
		s.store = st
		s.tracker = checkpoint.New(func(ctx context.Context, position string) error {
			return st.SaveCheckpoint(ctx, id, position)
		})
	}
	s.reader = r
	s.log.Infof("Reading %s in pages of %d rows keyed on %q", r.Source(), s.cfg.PageSize, s.cfg.KeyColumn)
	return nil
}

func (s *sqliteInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		s.mu.Lock()
		r := s.reader
		if r == nil {
			s.mu.Unlock()
			return nil, nil, service.ErrNotConnected
		}
		if len(s.replay) > 0 {
			pp := s.replay[0]
			s.replay = s.replay[1:]
			s.mu.Unlock()
			// Back off on a page that keeps being rejected; it is never
			// dropped.
			wait := min(time.Duration(pp.nacks)*100*time.Millisecond, 5*time.Second)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				s.mu.Lock()
				s.replay = append([]*pendingPage{pp}, s.replay...)
				s.mu.Unlock()
				return nil, nil, ctx.Err()
			}
			return s.emit(r, pp)
		}
		if s.eof {
			if s.outstanding == 0 {
				s.mu.Unlock()
				return nil, nil, service.ErrEndOfInput
			}
			ch := s.notify
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		s.mu.Unlock()

		page, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			s.log.Infof("Finished reading %s: %d rows", r.Source(), s.rows)
			s.mu.Lock()
			s.eof = true
			s.mu.Unlock()
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, s.fail(err)
		}
		s.rows += int64(len(page.Rows))
		pp := &pendingPage{page: page}
		if s.tracker != nil {
			pp.seq, pp.tracked = s.tracker.Track(r.EncodePosition(page)), true
		}
		return s.emit(r, pp)
	}
}

func (s *sqliteInput) emit(r *sqlitedb.Reader, pp *pendingPage) (service.MessageBatch, service.AckFunc, error) {
	page := pp.page
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
	s.mu.Lock()
	s.outstanding++
	s.mu.Unlock()
	tracker := s.tracker
	return batch, func(ctx context.Context, err error) error {
		if err != nil {
			pp.nacks++
			s.log.Warnf("Page %d of %s was rejected downstream (%v); it will be sent again", page.Number, r.Source(), err)
			s.mu.Lock()
			s.replay = append(s.replay, pp)
			s.outstanding--
			s.signal()
			s.mu.Unlock()
			return nil
		}
		var saveErr error
		if pp.tracked {
			saveErr = tracker.Ack(ctx, pp.seq)
		}
		s.mu.Lock()
		s.outstanding--
		s.signal()
		s.mu.Unlock()
		return saveErr
	}, nil
}

// signal wakes a ReadBatch waiting at end of input. Called with s.mu held.
func (s *sqliteInput) signal() {
	close(s.notify)
	s.notify = make(chan struct{})
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
