package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/pgcdc"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/internal/runctl"
)

const (
	cdcFieldDSN             = "dsn"
	cdcFieldSlot            = "slot"
	cdcFieldPublication     = "publication"
	cdcFieldTables          = "tables"
	cdcFieldCreateSlot      = "create_slot"
	cdcFieldSnapshot        = "snapshot"
	cdcFieldStateStore      = "checkpoint_store"
	cdcFieldBatchSize       = "batch_size"
	cdcFieldBatchPeriod     = "batch_period"
	cdcFieldStandby         = "standby_interval"
	cdcFieldConnectAttempts = "max_connect_attempts"

	// Metadata keys set on every postgres_cdc message.
	CDCMetaOperation  = "operation"
	CDCMetaSchema     = "schema"
	CDCMetaTable      = "table"
	CDCMetaLSN        = "lsn"
	CDCMetaCommitLSN  = "commit_lsn"
	CDCMetaCommitTime = "commit_timestamp"
	CDCMetaXid        = "xid"
	CDCMetaKey        = "key"
	CDCMetaBefore     = "before"
	CDCMetaUnchanged  = "unchanged_columns"
	CDCMetaKeyChanged = "key_changed"
)

func postgresCDCInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Streams row changes of PostgreSQL tables with logical replication (pgoutput), optionally after a snapshot of their rows.").
		Description(`
The input reads a logical replication slot through the built-in `+"`pgoutput`"+` plugin. On connect it checks that the
server runs with `+"`wal_level=logical`"+` and that every table has a usable replica identity, creates the publication
(`+"`FOR TABLE`"+` the listed tables) or reuses it, adding tables it lacks, and creates the slot or reuses it.

### Messages

Each change is one message. The body is the new row for `+"`insert`"+` and `+"`update`"+`, and the old row (with
`+"`REPLICA IDENTITY FULL`"+`) or just its key for `+"`delete`"+`. Values keep their types: integers, exact decimal
numbers for `+"`numeric`"+`, timestamps, booleans, objects for `+"`json`/`jsonb`"+`. Metadata:

- `+"`operation`"+`: `+"`insert`, `update`, `delete`, `read`"+` (snapshot rows), `+"`schema_change`"+` or `+"`truncate`"+`
- `+"`schema`, `table`"+`, `+"`lsn`"+` (the change's WAL position), `+"`commit_lsn`, `commit_timestamp`, `xid`"+`
- `+"`key`"+`: the key columns (primary key, else replica identity) and values as a JSON object, e.g. `+"`{\"id\":42}`"+`
- `+"`before`"+`: the old row (structured) when the server sends one: with `+"`REPLICA IDENTITY FULL`"+` for updates and
  deletes, otherwise the old key when an update changed the key
- `+"`unchanged_columns`"+`: columns of an update whose large (TOASTed) value did not change and was therefore not sent
  and is absent from the body (with `+"`REPLICA IDENTITY FULL`"+` they are filled in from the old row)

An update that changes the key is emitted as a `+"`delete`"+` of the old key (metadata `+"`key_changed: true`"+`)
followed by the `+"`update`"+`, so a keyed destination does not keep the old row.

A `+"`TRUNCATE`"+` arrives as one message per table with operation `+"`truncate`"+` and an empty body, and is logged as a
warning. The `+"`postgres`"+` output in `+"`upsert`"+` mode applies it in stream order (it truncates its table); drop truncate
messages before the output if the destination must keep its rows.

With the `+"`postgres`"+` output in `+"`upsert`"+` mode, `+"`delete`"+` messages delete by key and the other rows are upserted:
at-least-once delivery then has an exactly-once effect. Keep the changes in order on the way: one pipeline thread
(or no processors) and `+"`max_in_flight: 1`"+` on the output.

### Schema changes

When a table's columns change (added, dropped, renamed, retyped, or a changed key) the input logs a warning and
emits a message with operation `+"`schema_change`"+` whose body lists `+"`columns`, `previous_columns`, `added`"+`,
`+"`dropped`, `renamed`, `type_changed`"+` and `+"`key_changed`"+`. PostgreSQL reports a relation's new shape with its
next change, so the event comes just before the first row in the new shape. Route or drop these events before an
output that expects rows.

### Snapshot

With `+"`snapshot: true`"+` a newly created slot exports its snapshot, and the existing rows are emitted first (operation
`+"`read`"+`) from exactly the point where the slot starts, so there is no gap and no overlap. Streaming begins once
every snapshot row is acknowledged; completion is recorded in `+"`checkpoint_store`"+`. If a snapshot was interrupted,
the next start takes a new snapshot and replays the slot from its confirmed position: changes made in between are
sent again and the destination converges.

### Delivery

The slot's confirmed position moves only after the acknowledgement of every message up to it, in order, whatever
order acknowledgements arrive in; it is reported to the server every `+"`standby_interval`"+` and on close. A rejected
message makes the input reconnect and replay from the confirmed position, and a restarted pipeline replays from it
too: delivery is at least once.

### Errors

`+"`wal_level`"+` other than `+"`logical`"+`, a table whose updates and deletes cannot be identified (`+"`REPLICA IDENTITY NOTHING`"+`,
or no primary key under the default identity) and a missing slot with `+"`create_slot: false`"+` are reported with how to
fix them and stop `+"`agentetl run`"+`. Connection failures are retried; passwords never appear in logs or errors.`).
		Fields(
			service.NewStringField(cdcFieldDSN).
				Description("PostgreSQL connection string of the source database. The role needs the REPLICATION attribute (or superuser) and, to create the publication, ownership of the tables.").
				Example("postgres://replicator:${PGPASSWORD}@localhost:5432/app?sslmode=disable").Secret(),
			service.NewStringField(cdcFieldSlot).
				Description("Logical replication slot to read: created when missing (see `create_slot`), reused when present. One consumer at a time.").
				Example("agentetl_orders").
				LintRule(`root = if !this.re_match("^[a-z0-9_]{1,63}$") { ["slot must be 1 to 63 lower-case letters, digits or underscores"] }`),
			service.NewStringField(cdcFieldPublication).
				Description("Publication to read. Created `FOR TABLE` the listed tables when missing; reused when present, with missing tables added.").
				Example("agentetl_orders").
				LintRule(`root = if this == "" { ["publication must not be empty"] }`),
			service.NewStringListField(cdcFieldTables).
				Description("Tables to capture, `name` or `schema.name`, taken exactly as written and always quoted. Changes of other tables in a reused publication are skipped.").
				Example([]string{"public.orders", "public.customers"}).
				LintRule(`root = if this.length() == 0 { ["tables must list at least one table"] }`),
			service.NewBoolField(cdcFieldCreateSlot).
				Description("Create the slot when it does not exist. When false, a missing slot is an error.").
				Default(true),
			service.NewBoolField(cdcFieldSnapshot).
				Description("Emit the tables' existing rows (operation `read`) before streaming, consistent with the slot's start.").
				Default(true),
			service.NewStringField(cdcFieldStateStore).
				Description("Metadata store DSN (`sqlite://path` or `postgres://...`) that records whether the initial snapshot finished. Used only with `snapshot: true`.").
				Default("sqlite://./data/agentetl.db").Secret(),
			service.NewIntField(cdcFieldBatchSize).
				Description("Maximum number of changes per message batch (and rows per snapshot fetch).").
				Default(1000).LintRule(`root = if this < 1 || this > 100000 { ["batch_size must be between 1 and 100000"] }`),
			service.NewDurationField(cdcFieldBatchPeriod).
				Description("How long a batch waits for more changes after its first one.").
				Default("100ms"),
			service.NewDurationField(cdcFieldStandby).
				Description("How often the confirmed position is reported to the server. Keep it well below the server's `wal_sender_timeout`.").
				Default("10s").Advanced(),
			service.NewIntField(cdcFieldConnectAttempts).
				Description("Under `agentetl run`, give up after this many consecutive failed connection attempts and exit non-zero. 0 retries forever.").
				Default(5).Advanced(),
		).
		Example("Stream a table", "Snapshot public.orders, then stream its changes.", `
input:
  postgres_cdc:
    dsn: ${SOURCE_DSN}
    slot: agentetl_orders
    publication: agentetl_orders
    tables: [ public.orders ]
    snapshot: true
`)
}

func init() {
	service.MustRegisterBatchInput("postgres_cdc", postgresCDCInputSpec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
		return newPostgresCDCInput(conf, mgr)
	})
}

type postgresCDCInput struct {
	cfg      pgcdc.Config
	storeDSN string
	log      *service.Logger

	mu       sync.Mutex
	stream   *pgcdc.Stream
	store    metastore.Store
	attempts runctl.Attempts
	// rejected counts consecutive streams ended by a rejected batch; the
	// next connect waits a little longer each time.
	rejected int
	// resume is the furthest confirmed position of earlier streams.
	resume pgcdc.LSN
}

func newPostgresCDCInput(conf *service.ParsedConfig, mgr *service.Resources) (*postgresCDCInput, error) {
	in := &postgresCDCInput{log: mgr.Logger()}
	c := &in.cfg
	var err error
	if c.DSN, err = conf.FieldString(cdcFieldDSN); err != nil {
		return nil, err
	}
	if c.Slot, err = conf.FieldString(cdcFieldSlot); err != nil {
		return nil, err
	}
	if c.Publication, err = conf.FieldString(cdcFieldPublication); err != nil {
		return nil, err
	}
	if c.Tables, err = conf.FieldStringList(cdcFieldTables); err != nil {
		return nil, err
	}
	if c.CreateSlot, err = conf.FieldBool(cdcFieldCreateSlot); err != nil {
		return nil, err
	}
	if c.Snapshot, err = conf.FieldBool(cdcFieldSnapshot); err != nil {
		return nil, err
	}
	if in.storeDSN, err = conf.FieldString(cdcFieldStateStore); err != nil {
		return nil, err
	}
	if c.BatchSize, err = conf.FieldInt(cdcFieldBatchSize); err != nil {
		return nil, err
	}
	if c.BatchPeriod, err = conf.FieldDuration(cdcFieldBatchPeriod); err != nil {
		return nil, err
	}
	if c.StandbyInterval, err = conf.FieldDuration(cdcFieldStandby); err != nil {
		return nil, err
	}
	if in.attempts.Max, err = conf.FieldInt(cdcFieldConnectAttempts); err != nil {
		return nil, err
	}
	if !pgcdc.ValidSlotName(c.Slot) {
		return nil, pgutil.Permanentf("configure postgres_cdc", "slot %q is not a valid replication slot name: use 1 to 63 lower-case letters, digits and underscores", c.Slot)
	}
	c.Logger = in.log
	return in, nil
}

// storeState adapts the metadata store's checkpoints to pgcdc.StateStore.
type storeState struct{ st metastore.Store }

func (s storeState) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := s.st.GetCheckpoint(ctx, key)
	if errors.Is(err, metastore.ErrNotFound) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (s storeState) Put(ctx context.Context, key, value string) error {
	return s.st.SaveCheckpoint(ctx, key, value)
}

func (p *postgresCDCInput) fail(err error) error {
	return p.attempts.Fail(err, pgutil.IsPermanent(err))
}

func (p *postgresCDCInput) Connect(ctx context.Context) error {
	p.mu.Lock()
	rejected := p.rejected
	p.mu.Unlock()
	if rejected > 0 {
		// Back off on a destination that keeps rejecting: the changes are
		// replayed from the slot, never dropped.
		select {
		case <-time.After(min(time.Duration(rejected)*200*time.Millisecond, 5*time.Second)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream != nil {
		return nil
	}
	cfg := p.cfg
	if cfg.Snapshot {
		if p.store == nil {
			st, err := metastore.Open(ctx, p.storeDSN)
			if err != nil {
				return p.fail(pgutil.Permanentf("open checkpoint store", "%s", redact.String(err.Error())))
			}
			p.store = st
		}
		cfg.State = storeState{p.store}
	}
	cfg.Resume = p.resume
	s, err := pgcdc.Open(ctx, cfg)
	if err != nil {
		return p.fail(err)
	}
	p.stream = s
	p.attempts.Reset()
	return nil
}

func (p *postgresCDCInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	p.mu.Lock()
	s := p.stream
	p.mu.Unlock()
	if s == nil {
		return nil, nil, service.ErrNotConnected
	}
	b, err := s.Next(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		p.log.Warnf("Change stream of slot %s stopped: %v; reconnecting and replaying from confirmed position %s", p.cfg.Slot, err, s.Confirmed())
		p.drop(ctx, s, err)
		return nil, nil, service.ErrNotConnected
	}
	batch := make(service.MessageBatch, len(b.Events))
	for i := range b.Events {
		batch[i] = cdcMessage(&b.Events[i])
	}
	return batch, func(ctx context.Context, err error) error {
		if err == nil {
			p.mu.Lock()
			p.rejected = 0
			p.mu.Unlock()
		}
		return b.Ack(ctx, err)
	}, nil
}

// drop closes a stopped stream; the next Connect opens a new one, which
// replays from the confirmed position.
func (p *postgresCDCInput) drop(ctx context.Context, s *pgcdc.Stream, cause error) {
	_ = s.Close(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream == s {
		p.stream = nil
	}
	p.resume = max(p.resume, s.Confirmed())
	p.rejected++
	// A rejected batch is the destination's failure, which the output (or
	// error_resolution around it) reports; the input only replays.
	var rejected *pgcdc.RejectedError
	if !errors.As(cause, &rejected) && pgutil.IsPermanent(cause) {
		runctl.Fail(cause)
	}
}

func cdcMessage(ev *pgcdc.Event) *service.Message {
	m := service.NewMessage(nil)
	m.SetStructured(ev.Row)
	m.MetaSetMut(CDCMetaOperation, string(ev.Op))
	m.MetaSetMut(CDCMetaSchema, ev.Schema)
	m.MetaSetMut(CDCMetaTable, ev.Table)
	m.MetaSetMut(CDCMetaLSN, ev.LSN.String())
	if ev.CommitLSN != 0 {
		m.MetaSetMut(CDCMetaCommitLSN, ev.CommitLSN.String())
		m.MetaSetMut(CDCMetaCommitTime, ev.CommitTime.UTC().Format(time.RFC3339Nano))
		m.MetaSetMut(CDCMetaXid, int64(ev.Xid))
	}
	if ev.Key != nil {
		if k, err := json.Marshal(ev.Key); err == nil {
			m.MetaSetMut(CDCMetaKey, string(k))
		}
	}
	if ev.Before != nil {
		m.MetaSetMut(CDCMetaBefore, ev.Before)
	}
	if len(ev.Unchanged) > 0 {
		cols := make([]any, len(ev.Unchanged))
		for i, c := range ev.Unchanged {
			cols[i] = c
		}
		m.MetaSetMut(CDCMetaUnchanged, cols)
	}
	if ev.KeyChanged {
		m.MetaSetMut(CDCMetaKeyChanged, true)
	}
	return m
}

func (p *postgresCDCInput) Close(ctx context.Context) error {
	p.mu.Lock()
	s := p.stream
	p.stream = nil
	st := p.store
	p.store = nil
	p.mu.Unlock()
	if s != nil {
		_ = s.Close(ctx)
	}
	if st != nil {
		return st.Close()
	}
	return nil
}
