package pgcdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/agentetl/agentetl/internal/checkpoint"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// Stream is one replication session: an optional snapshot, then the
// slot's changes. Next hands out batches; a batch's Ack, once every batch
// before it is acknowledged too, lets the slot's confirmed position pass it.
// A rejected batch ends the stream: the caller opens a new one, which
// replays from the last confirmed position, so nothing after a rejected
// batch is ever confirmed before the batch itself.
type Stream struct {
	cfg    Config
	log    Logger
	tables []*tableInfo
	dec    *decoder

	repl *pgconn.PgConn
	// snap is the connection holding the snapshot transaction; nil when no
	// snapshot is taken.
	snap     *pgx.Conn
	startLSN LSN
	// snapshotFresh is set when the snapshot is a new one taken on an
	// existing slot (the exported one is gone), for the log.
	snapshotFresh bool

	items     chan item
	tracker   *checkpoint.Tracker
	confirmed atomic.Uint64 // highest position whose batches are all acknowledged
	// Event counters: produced by the stream goroutine, handed out by Next,
	// acknowledged by Ack.
	pushed, handed, acked atomic.Int64
	lastPos               LSN   // position of the latest completed transaction handed out (Next only)
	carry                 *item // an event taken after a full batch, for the next one (Next only)

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// Open checks the server and the tables, prepares the publication and the
// slot and starts streaming in the background. Errors that retrying cannot
// fix are permanent *pgutil.Error values; every error is free of passwords.
func Open(ctx context.Context, cfg Config) (*Stream, error) {
	ids, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Stream{cfg: cfg, log: cfg.Logger}
	ok := false
	defer func() {
		if !ok {
			s.closeConns()
		}
	}()
	ctrl, err := connect(ctx, cfg.DSN, false)
	if err != nil {
		return nil, err
	}
	s.snap = ctrl // closed below unless it takes the snapshot
	var level string
	if err := ctrl.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return nil, pgutil.Wrap("read wal_level", err)
	}
	if err := checkWALLevel(level); err != nil {
		return nil, err
	}
	for _, id := range ids {
		t, err := loadTable(ctx, ctrl, id)
		if err != nil {
			return nil, err
		}
		// Before anything is published: a published table without a usable
		// replica identity would make the user's own UPDATEs fail.
		if err := checkReplicaIdentity(t); err != nil {
			return nil, err
		}
		s.tables = append(s.tables, t)
	}
	if err := ensurePublication(ctx, ctrl, cfg.Publication, s.tables, s.log); err != nil {
		return nil, err
	}
	slot, found, err := inspectSlot(ctx, ctrl, cfg.Slot)
	if err != nil {
		return nil, err
	}
	if !found && !cfg.CreateSlot {
		return nil, pgutil.Permanentf("check replication slot", "replication slot %s does not exist and create_slot is false: create it with SELECT pg_create_logical_replication_slot('%s', 'pgoutput') or set create_slot: true", cfg.Slot, cfg.Slot)
	}
	replConn, err := connect(ctx, cfg.DSN, true)
	if err != nil {
		return nil, err
	}
	s.repl = replConn.PgConn()

	snapshotNeeded := false
	if found {
		s.startLSN = slot.confirmed
		if cfg.Snapshot {
			state, recorded, err := cfg.State.Get(ctx, snapshotKey(cfg.Slot))
			if err != nil {
				return nil, errorf("read snapshot state", "%s", redact.String(err.Error()))
			}
			var st snapshotState
			if !recorded || json.Unmarshal([]byte(state), &st) != nil || !st.Done {
				snapshotNeeded, s.snapshotFresh = true, true
			}
		}
	} else {
		action := "NOEXPORT_SNAPSHOT"
		if cfg.Snapshot {
			action = "EXPORT_SNAPSHOT"
			// Recorded before the slot exists: a crash right after its
			// creation must not find an older "done" for this slot name.
			b, _ := json.Marshal(snapshotState{Slot: cfg.Slot})
			if err := cfg.State.Put(ctx, snapshotKey(cfg.Slot), string(b)); err != nil {
				return nil, errorf("save snapshot state", "%s", redact.String(err.Error()))
			}
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, cfg.Slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
		if err != nil {
			return nil, slotError(cfg.Slot, err)
		}
		if s.startLSN, err = parseLSN(res.ConsistentPoint); err != nil {
			return nil, errorf("create replication slot "+cfg.Slot, "consistent point %q: %w", res.ConsistentPoint, err)
		}
		s.log.Infof("Created replication slot %s at %s", cfg.Slot, s.startLSN)
		if cfg.Snapshot {
			snapshotNeeded = true
			if err := s.beginSnapshot(ctx, res.SnapshotName); err != nil {
				return nil, err
			}
		}
	}
	if snapshotNeeded && s.snapshotFresh {
		s.log.Warnf("The initial snapshot for slot %s is not recorded as finished: taking a new one, then replaying the slot from %s (rows changed meanwhile are sent again, so the result converges)", cfg.Slot, s.startLSN)
		if err := s.beginSnapshot(ctx, ""); err != nil {
			return nil, err
		}
	}
	if !snapshotNeeded {
		_ = ctrl.Close(ctx)
		s.snap = nil
	}
	s.startLSN = max(s.startLSN, cfg.Resume)
	s.confirmed.Store(uint64(s.startLSN))
	s.lastPos = s.startLSN
	s.tracker = checkpoint.New(func(_ context.Context, pos string) error {
		l, err := parseLSN(pos)
		if err != nil {
			return err
		}
		for {
			cur := s.confirmed.Load()
			if uint64(l) <= cur || s.confirmed.CompareAndSwap(cur, uint64(l)) {
				return nil
			}
		}
	})
	s.dec = newDecoder(s.tables, s.log)
	s.items = make(chan item, 2*cfg.BatchSize)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.done = make(chan struct{})
	ok = true
	go s.run()
	return s, nil
}

// connect opens a normal or a replication connection. The session settings
// fix how the server prints values, so the text decoders see one format.
func connect(ctx context.Context, dsn string, replication bool) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, pgutil.Permanentf("parse dsn", "invalid DSN %s: %s", redact.DSN(dsn), redact.String(redact.Scrub(dsn, err).Error()))
	}
	for k, v := range map[string]string{"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "extra_float_digits": "3"} {
		cfg.RuntimeParams[k] = v
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "agentetl_postgres_cdc"
	}
	if replication {
		cfg.RuntimeParams["replication"] = "database"
		// The replication protocol has no extended queries.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		what := "connect to "
		if replication {
			what = "open a replication connection to "
		}
		return nil, pgutil.Wrap(what+redact.DSN(dsn), redact.Scrub(dsn, err))
	}
	return conn, nil
}

func slotError(slot string, err error) error {
	e := pgutil.Wrap("create replication slot "+slot, err)
	switch pgutil.SQLState(err) {
	case "53400":
		return fmt.Errorf("%w: every replication slot is in use; drop an unused one (SELECT pg_drop_replication_slot('name')) or raise max_replication_slots", e)
	case "55000":
		return fmt.Errorf("%w: check that wal_level=logical and max_replication_slots > 0 (both need a restart)", e)
	}
	return e
}

// beginSnapshot opens the snapshot transaction on the control connection:
// the slot's exported snapshot when name is set, else a new one.
func (s *Stream) beginSnapshot(ctx context.Context, name string) error {
	if _, err := s.snap.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return pgutil.Wrap("begin snapshot", err)
	}
	if name != "" {
		if _, err := s.snap.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(name, "'", "''")+"'"); err != nil {
			return pgutil.Wrap("import snapshot "+name, err)
		}
		return nil
	}
	// A REPEATABLE READ snapshot is taken by the first statement.
	if _, err := s.snap.Exec(ctx, "SELECT 1"); err != nil {
		return pgutil.Wrap("begin snapshot", err)
	}
	return nil
}

// Err is why the stream stopped, once it has.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.cancel()
}

// Confirmed is the highest position whose changes are all acknowledged.
func (s *Stream) Confirmed() LSN { return LSN(s.confirmed.Load()) }

// StartLSN is where streaming starts.
func (s *Stream) StartLSN() LSN { return s.startLSN }

// Batch is a group of events handed out together; acknowledge it once.
type Batch struct {
	Events []Event
	s      *Stream
	seq    uint64
}

// RejectedError ends a stream whose batch was rejected downstream. It is the
// destination's error, not the source's: whoever reads it should replay,
// not give up.
type RejectedError struct {
	Changes int
	Err     error
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("a batch of %d changes was rejected downstream: %v", e.Changes, e.Err)
}

func (e *RejectedError) Unwrap() error { return e.Err }

// Ack acknowledges the batch. A nil err lets the confirmed position move
// past it once every earlier batch is acknowledged; an error ends the
// stream so that a new one replays from the confirmed position.
func (b *Batch) Ack(ctx context.Context, err error) error {
	s := b.s
	if err != nil {
		s.fail(&RejectedError{Changes: len(b.Events), Err: err})
		return nil
	}
	s.acked.Add(int64(len(b.Events)))
	return s.tracker.Ack(ctx, b.seq)
}

// Next returns the next batch: up to BatchSize events, waiting at most
// BatchPeriod after the first one for more. It returns the stream's error
// once the stream has stopped. Not safe for concurrent use.
func (s *Stream) Next(ctx context.Context) (*Batch, error) {
	var evs []Event
	var timer *time.Timer
	var expired <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	add := func(it item) error {
		if it.pos > s.lastPos {
			s.lastPos = it.pos
		}
		if it.ev != nil {
			evs = append(evs, *it.ev)
			if timer == nil {
				timer = time.NewTimer(s.cfg.BatchPeriod)
				expired = timer.C
			}
			return nil
		}
		if len(evs) == 0 {
			// A bare position (a commit of filtered changes, an idle
			// server's WAL end): nothing to deliver, so it is acknowledged
			// at once, still in order behind every earlier batch.
			return s.tracker.Ack(ctx, s.tracker.Track(s.lastPos.String()))
		}
		return nil
	}
	if s.carry != nil {
		it := *s.carry
		s.carry = nil
		if err := add(it); err != nil {
			return nil, err
		}
	}
collect:
	for len(evs) < s.cfg.BatchSize {
		select {
		case it := <-s.items:
			if err := add(it); err != nil {
				return nil, err
			}
		case <-expired:
			break collect
		case <-s.done:
			// Deliver what the stream produced before it stopped.
			select {
			case it := <-s.items:
				if err := add(it); err != nil {
					return nil, err
				}
				continue
			default:
			}
			if len(evs) > 0 {
				break collect
			}
			if err := s.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("change stream closed")
		case <-ctx.Done():
			if len(evs) > 0 {
				break collect
			}
			return nil, ctx.Err()
		}
	}
	// Positions waiting right behind a full batch belong to it: the
	// transaction that ends there is complete once the batch is.
	for {
		select {
		case it := <-s.items:
			if it.ev == nil {
				if it.pos > s.lastPos {
					s.lastPos = it.pos
				}
				continue
			}
			s.carry = &it
		default:
		}
		break
	}
	s.handed.Add(int64(len(evs)))
	return &Batch{Events: evs, s: s, seq: s.tracker.Track(s.lastPos.String())}, nil
}

// Close stops the stream. It waits briefly for outstanding batches to be
// acknowledged, then reports the confirmed position to the server.
func (s *Stream) Close(ctx context.Context) error {
	wait, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for s.acked.Load() < s.handed.Load() && s.Err() == nil {
		select {
		case <-wait.Done():
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	s.cancel()
	// The goroutine owns the connections until it ends; it ends promptly
	// once cancelled (receives wake up through the context's deadline).
	<-s.done
	s.closeConns()
	return nil
}

func (s *Stream) closeConns() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.snap != nil {
		_ = s.snap.Close(ctx)
		s.snap = nil
	}
	if s.repl != nil {
		_ = s.repl.Close(ctx)
		s.repl = nil
	}
}

// run is the stream goroutine: snapshot, then replication.
func (s *Stream) run() {
	defer close(s.done)
	err := s.runSnapshot()
	if err == nil {
		err = s.runReplication()
	}
	if err != nil && s.ctx.Err() == nil {
		s.fail(err)
	}
}

// push hands an item to Next, giving up when the stream stops.
func (s *Stream) push(it item) error {
	select {
	case s.items <- it:
		if it.ev != nil {
			s.pushed.Add(1)
		}
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// snapshotState is what the state store keeps per slot.
type snapshotState struct {
	Slot string `json:"slot"`
	LSN  string `json:"lsn"`
	Rows int64  `json:"rows"`
	Done bool   `json:"done"`
}

func (s *Stream) runSnapshot() error {
	if s.snap == nil {
		return nil
	}
	ctx := s.ctx
	key := snapshotKey(s.cfg.Slot)
	mark := func(st snapshotState) error {
		b, _ := json.Marshal(st)
		if err := s.cfg.State.Put(ctx, key, string(b)); err != nil {
			return errorf("save snapshot state", "%s", redact.String(err.Error()))
		}
		return nil
	}
	if err := mark(snapshotState{Slot: s.cfg.Slot, LSN: s.startLSN.String()}); err != nil {
		return err
	}
	start := time.Now()
	var total int64
	for _, t := range s.tables {
		n, err := s.snapshotTable(ctx, t)
		if err != nil {
			return err
		}
		total += n
	}
	if _, err := s.snap.Exec(ctx, "COMMIT"); err != nil {
		return pgutil.Wrap("end snapshot", err)
	}
	_ = s.snap.Close(ctx)
	s.snap = nil
	// Streaming starts only once every snapshot row is acknowledged: a
	// change applied before the snapshot row of the same key would be
	// overwritten by the older row.
	for s.acked.Load() < s.pushed.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := mark(snapshotState{Slot: s.cfg.Slot, LSN: s.startLSN.String(), Rows: total, Done: true}); err != nil {
		return err
	}
	s.log.Infof("Initial snapshot done: %d rows from %d tables in %s; streaming from %s", total, len(s.tables), time.Since(start).Round(time.Millisecond), s.startLSN)
	return nil
}

func (s *Stream) snapshotTable(ctx context.Context, t *tableInfo) (int64, error) {
	cols := make([]string, len(t.cols))
	decs := make([]valueDecoder, len(t.cols))
	for i, c := range t.cols {
		cols[i] = c.name
		decs[i] = textDecoder(s.dec.tm, c.typeOID)
	}
	const cursor = "agentetl_cdc_snapshot"
	if _, err := s.snap.Exec(ctx, "DECLARE "+cursor+" NO SCROLL CURSOR FOR SELECT "+pgutil.QuoteList(cols)+" FROM "+t.ident.Quoted()); err != nil {
		return 0, pgutil.Wrap("snapshot "+t.ident.String(), err)
	}
	r := &relation{schema: t.ident.Schema, name: t.ident.Name, keys: t.keys, want: true}
	for i, c := range t.cols {
		r.cols = append(r.cols, relColumn{name: c.name, oid: c.typeOID, typmod: c.typmod, dec: decs[i]})
	}
	fetch := fmt.Sprintf("FETCH %d FROM %s", s.cfg.BatchSize, cursor)
	var n int64
	for {
		// The simple protocol returns text, so snapshot rows decode
		// exactly like streamed ones.
		res := s.snap.PgConn().Exec(ctx, fetch)
		results, err := res.ReadAll()
		if err != nil {
			return n, pgutil.Wrap("snapshot "+t.ident.String(), err)
		}
		if len(results) != 1 {
			return n, errorf("snapshot "+t.ident.String(), "FETCH returned %d results", len(results))
		}
		rows := results[0].Rows
		for _, raw := range rows {
			row := make(map[string]any, len(cols))
			for i, v := range raw {
				if v == nil {
					row[cols[i]] = nil
					continue
				}
				row[cols[i]] = s.dec.value(r, &r.cols[i], v)
			}
			ev := &Event{Op: OpRead, Schema: r.schema, Table: r.name, LSN: s.startLSN, Row: row, Key: keyOf(t.keys, row)}
			if err := s.push(item{ev: ev}); err != nil {
				return n, err
			}
			n++
		}
		if len(rows) < s.cfg.BatchSize {
			break
		}
	}
	if _, err := s.snap.Exec(ctx, "CLOSE "+cursor); err != nil {
		return n, pgutil.Wrap("snapshot "+t.ident.String(), err)
	}
	return n, nil
}

func (s *Stream) runReplication() error {
	ctx := s.ctx
	pub := strings.ReplaceAll(pgutil.QuoteIdent(s.cfg.Publication), "'", "''")
	err := pglogrepl.StartReplication(ctx, s.repl, s.cfg.Slot, s.startLSN, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names '" + pub + "'"},
	})
	if err != nil {
		return pgutil.Wrap("start replication from slot "+s.cfg.Slot, err)
	}
	s.log.Infof("Streaming changes of slot %s (publication %s) from %s", s.cfg.Slot, s.cfg.Publication, s.startLSN)
	sent := LSN(0)
	// status reports the confirmed position; sent every interval even when
	// unchanged, it is also the client's keepalive.
	status := func() error {
		l := s.Confirmed()
		if err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: l, WALFlushPosition: l, WALApplyPosition: l}); err != nil {
			return pgutil.Wrap("send standby status", err)
		}
		sent = l
		return nil
	}
	defer func() {
		// Report the final position on the way out, whatever stopped us.
		if s.repl != nil && !s.repl.IsClosed() {
			if l := s.Confirmed(); l != sent {
				_ = pglogrepl.SendStandbyStatusUpdate(context.Background(), s.repl, pglogrepl.StandbyStatusUpdate{
					WALWritePosition: l, WALFlushPosition: l, WALApplyPosition: l})
			}
		}
	}()
	next := time.Now().Add(s.cfg.StandbyInterval)
	var pending []item
	lastPos := s.startLSN
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	for {
		if now := time.Now(); !now.Before(next) {
			if err := status(); err != nil {
				return err
			}
			next = now.Add(s.cfg.StandbyInterval)
		}
		if len(pending) > 0 {
			wait.Reset(time.Until(next))
			select {
			case s.items <- pending[0]:
				pending = pending[1:]
			case <-wait.C:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		rctx, cancel := context.WithDeadline(ctx, next)
		raw, err := s.repl.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return pgutil.Wrap("receive changes from slot "+s.cfg.Slot, err)
		}
		switch m := raw.(type) {
		case *pgproto3.ErrorResponse:
			return pgutil.Wrap("replication from slot "+s.cfg.Slot, pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return errorf("decode keepalive", "%w", err)
				}
				// Outside a transaction everything before the server's
				// position has been sent, so once acknowledged that far it
				// may be confirmed: an idle slot then does not hold WAL.
				if !s.dec.inTx && k.ServerWALEnd > lastPos {
					lastPos = k.ServerWALEnd
					pending = append(pending, item{pos: k.ServerWALEnd})
				}
				if k.ReplyRequested {
					next = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return errorf("decode change", "%w", err)
				}
				items, err := s.dec.handle(x.WALStart, x.WALData)
				if err != nil {
					return err
				}
				for _, it := range items {
					if it.pos > lastPos {
						lastPos = it.pos
					}
				}
				pending = append(pending, items...)
			}
		default:
			// CopyDone and notices need no action.
		}
	}
}
