package pgcdc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pgcdc"
	"github.com/agentetl/agentetl/internal/pgcdc/cdctest"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

// memState is an in-memory StateStore.
type memState struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memState) Get(_ context.Context, k string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memState) Put(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[k] = v
	return nil
}

func open(t *testing.T, cfg pgcdc.Config) *pgcdc.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := pgcdc.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// collect reads batches, acknowledging each, until n events arrived.
func collect(t *testing.T, s *pgcdc.Stream, n int) []pgcdc.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []pgcdc.Event
	for len(out) < n {
		b, err := s.Next(ctx)
		require.NoError(t, err, "after %d of %d events", len(out), n)
		out = append(out, b.Events...)
		require.NoError(t, b.Ack(ctx, nil))
	}
	require.Len(t, out, n)
	return out
}

func TestDecodesChangesWithTypesAndBeforeImages(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE "Items ü" (id bigint PRIMARY KEY, small int, amount numeric(12,2), big numeric, name text,
		at timestamptz, day date, local timestamp, flag boolean, doc jsonb, u uuid, f float8, tags int[], note varchar(20))`)
	db.Exec(t, `CREATE TABLE full_t (id int PRIMARY KEY, v text, n int)`)
	db.Exec(t, `ALTER TABLE full_t REPLICA IDENTITY FULL`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	s := open(t, pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"Items ü", "full_t"},
		CreateSlot: true, BatchPeriod: 20 * time.Millisecond})

	db.Exec(t, `INSERT INTO "Items ü" VALUES (1, -7, 12.50, 123456789012345678901234567890.000000001, 'Zoë "q" ✓',
		'2024-03-01 10:11:12.123456+02', '2024-02-29', '2024-01-01 00:00:00.5', true, '{"a": 1.10, "b": [1, "x", null]}',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1.5e-7, '{1,2,3}', 'pad')`)
	db.Exec(t, `INSERT INTO "Items ü" (id) VALUES (2)`)
	db.Exec(t, `UPDATE "Items ü" SET amount = -0.01, name = NULL WHERE id = 1`)
	db.Exec(t, `DELETE FROM "Items ü" WHERE id = 2`)
	db.Exec(t, `UPDATE "Items ü" SET id = 10 WHERE id = 1`) // key change: delete old key, then update
	db.Exec(t, `INSERT INTO full_t VALUES (1, 'one', 1)`)
	db.Exec(t, `UPDATE full_t SET v = 'uno' WHERE id = 1`)
	db.Exec(t, `DELETE FROM full_t WHERE id = 1`)

	ev := collect(t, s, 9)
	ops := make([]string, len(ev))
	for i, e := range ev {
		ops[i] = e.Table + ":" + string(e.Op)
	}
	require.Equal(t, []string{"Items ü:insert", "Items ü:insert", "Items ü:update", "Items ü:delete", "Items ü:delete", "Items ü:update",
		"full_t:insert", "full_t:update", "full_t:delete"}, ops)

	row := ev[0].Row
	require.Equal(t, db.Schema, ev[0].Schema)
	require.Equal(t, int64(1), row["id"])
	require.Equal(t, int64(-7), row["small"])
	require.Equal(t, json.Number("12.50"), row["amount"], "numeric keeps its scale exactly")
	require.Equal(t, json.Number("123456789012345678901234567890.000000001"), row["big"])
	require.Equal(t, `Zoë "q" ✓`, row["name"])
	require.Equal(t, time.Date(2024, 3, 1, 8, 11, 12, 123456000, time.UTC), row["at"])
	require.Equal(t, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), row["day"])
	require.Equal(t, time.Date(2024, 1, 1, 0, 0, 0, 500000000, time.UTC), row["local"])
	require.Equal(t, true, row["flag"])
	require.Equal(t, map[string]any{"a": json.Number("1.10"), "b": []any{json.Number("1"), "x", nil}}, row["doc"])
	require.Equal(t, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", row["u"])
	require.Equal(t, 1.5e-7, row["f"])
	require.Len(t, row["tags"], 3)
	require.Equal(t, "pad", row["note"])
	require.Equal(t, map[string]any{"id": int64(1)}, ev[0].Key)
	require.NotZero(t, ev[0].LSN)
	require.NotZero(t, ev[0].CommitLSN)
	require.WithinDuration(t, time.Now(), ev[0].CommitTime, time.Minute)
	require.Nil(t, ev[0].Before)

	require.Nil(t, ev[1].Row["name"])
	require.Contains(t, ev[1].Row, "name", "NULL columns are present as null")

	require.Equal(t, json.Number("-0.01"), ev[2].Row["amount"])
	require.Nil(t, ev[2].Row["name"])
	require.Nil(t, ev[2].Before, "default replica identity sends no old row when the key is unchanged")

	require.Equal(t, map[string]any{"id": int64(2)}, ev[3].Row, "a delete under the default identity carries the key")

	require.True(t, ev[4].KeyChanged)
	require.Equal(t, map[string]any{"id": int64(1)}, ev[4].Row)
	require.Equal(t, int64(10), ev[5].Row["id"])
	require.Equal(t, map[string]any{"id": int64(1)}, ev[5].Before, "the old key of a key-changing update")
	require.Equal(t, map[string]any{"id": int64(10)}, ev[5].Key)

	require.Equal(t, map[string]any{"id": int64(1), "v": "uno", "n": int64(1)}, ev[7].Row)
	require.Equal(t, map[string]any{"id": int64(1), "v": "one", "n": int64(1)}, ev[7].Before, "REPLICA IDENTITY FULL sends the old row")
	require.Equal(t, map[string]any{"id": int64(1)}, ev[7].Key, "the primary key, not every column, is the key")
	require.Equal(t, map[string]any{"id": int64(1), "v": "uno", "n": int64(1)}, ev[8].Row, "a delete under FULL carries the old row")
	require.Equal(t, ev[8].Row, ev[8].Before)
}

func TestSnapshotThenStreamHasNoGapsAndNoDuplicates(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	state := &memState{}
	s := open(t, pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"t"}, CreateSlot: true,
		Snapshot: true, State: state, BatchSize: 500, BatchPeriod: 20 * time.Millisecond})
	// The slot exists now: everything from here on is a change, everything
	// before it is in the snapshot. The changes race the snapshot's reading.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10; i++ {
			db.Exec(t, fmt.Sprintf(`INSERT INTO t SELECT g, 'new' FROM generate_series(%d, %d) g`, 5001+i*100, 5100+i*100))
			db.Exec(t, fmt.Sprintf(`UPDATE t SET v = 'upd' WHERE id = %d`, 1+i))
			db.Exec(t, fmt.Sprintf(`DELETE FROM t WHERE id = %d`, 4000+i))
		}
	}()
	<-done
	ev := collect(t, s, 5000+1000+10+10)
	reads := map[int64]int{}
	var changes []string
	for _, e := range ev {
		id := e.Row["id"].(int64)
		if e.Op == pgcdc.OpRead {
			require.Empty(t, changes, "snapshot rows all come before the first change")
			reads[id]++
			require.Equal(t, fmt.Sprintf("v%d", id), e.Row["v"], "snapshot rows are as of the slot's start")
			require.Equal(t, s.StartLSN(), e.LSN)
			continue
		}
		changes = append(changes, fmt.Sprintf("%s:%d", e.Op, id))
	}
	require.Len(t, reads, 5000)
	for id, n := range reads {
		require.Equal(t, 1, n, "row %d read %d times", id, n)
		require.LessOrEqual(t, id, int64(5000))
	}
	var want []string
	for i := 0; i < 10; i++ {
		for g := 5001 + i*100; g <= 5100+i*100; g++ {
			want = append(want, fmt.Sprintf("insert:%d", g))
		}
		want = append(want, fmt.Sprintf("update:%d", 1+i), fmt.Sprintf("delete:%d", 4000+i))
	}
	require.Equal(t, want, changes, "every change once, in commit order")
	v, ok, _ := state.Get(context.Background(), "postgres_cdc:snapshot:"+slot)
	require.True(t, ok)
	require.Contains(t, v, `"done":true`)
	require.Contains(t, v, `"rows":5000`)
}

// The confirmed position never passes a batch that is not acknowledged,
// however many later batches are.
func TestConfirmedPositionWaitsForEveryEarlierAck(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	s := open(t, pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"t"}, CreateSlot: true,
		BatchSize: 1, BatchPeriod: time.Millisecond, StandbyInterval: 50 * time.Millisecond})
	start := s.Confirmed()
	for i := 1; i <= 3; i++ {
		db.Exec(t, `INSERT INTO t VALUES ($1)`, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var batches []*pgcdc.Batch
	for len(batches) < 3 {
		b, err := s.Next(ctx)
		require.NoError(t, err)
		batches = append(batches, b)
	}
	slotLSN := func() pgcdc.LSN {
		var l string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&l))
		lsn, err := pglogreplParse(l)
		require.NoError(t, err)
		return lsn
	}
	require.NoError(t, batches[1].Ack(ctx, nil))
	require.NoError(t, batches[2].Ack(ctx, nil))
	time.Sleep(300 * time.Millisecond) // several standby intervals
	require.LessOrEqual(t, s.Confirmed(), batches[0].Events[0].CommitLSN, "later acks do not move the position past an unacknowledged batch")
	require.GreaterOrEqual(t, s.Confirmed(), start)
	require.LessOrEqual(t, slotLSN(), batches[0].Events[0].CommitLSN, "the server's confirmed position is before the first change")
	require.NoError(t, batches[0].Ack(ctx, nil))
	require.Greater(t, s.Confirmed(), batches[1].Events[0].CommitLSN)
	// The last transaction's end may still be queued behind its batch; the
	// next read (here: one that finds no new change) takes it.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := s.Next(short)
	cancelShort()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Greater(t, s.Confirmed(), batches[2].Events[0].CommitLSN)
	require.Eventually(t, func() bool { return slotLSN() > batches[2].Events[0].CommitLSN }, 10*time.Second, 50*time.Millisecond,
		"the acknowledged position reaches the server")
}

// A rejected batch ends the stream; a new stream replays it, and what came
// after it, from the confirmed position.
func TestRejectedBatchIsReplayedByTheNextStream(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	// Batches of exactly one transaction each: 10 rows, and a period long
	// enough to fill them.
	cfg := pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"t"}, CreateSlot: true,
		BatchSize: 10, BatchPeriod: 5 * time.Second, StandbyInterval: 50 * time.Millisecond}
	s := open(t, cfg)
	db.Exec(t, `INSERT INTO t SELECT g FROM generate_series(1, 10) g`)
	db.Exec(t, `INSERT INTO t SELECT g FROM generate_series(11, 20) g`)
	first := collect(t, s, 10)
	require.Equal(t, int64(10), first[9].Row["id"])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := s.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(11), b.Events[0].Row["id"])
	require.NoError(t, b.Ack(ctx, fmt.Errorf("destination down")))
	_, err = s.Next(ctx)
	require.ErrorContains(t, err, "rejected downstream")
	require.ErrorContains(t, err, "destination down")
	confirmed := s.Confirmed()
	require.NoError(t, s.Close(ctx))

	cfg.Resume = confirmed
	s2 := open(t, cfg)
	again := collect(t, s2, 10)
	require.Equal(t, int64(11), again[0].Row["id"], "the rejected changes come again, nothing before them")
	require.Equal(t, int64(20), again[9].Row["id"])
}

func TestSchemaChangesAreSurfaced(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, a text, b int)`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	s := open(t, pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"t"}, CreateSlot: true,
		BatchPeriod: 10 * time.Millisecond})
	db.Exec(t, `INSERT INTO t VALUES (1, 'x', 1)`)
	db.Exec(t, `ALTER TABLE t ADD COLUMN c numeric(10,2)`)
	db.Exec(t, `INSERT INTO t VALUES (2, 'y', 2, 2.5)`)
	db.Exec(t, `ALTER TABLE t RENAME COLUMN a TO title`)
	db.Exec(t, `UPDATE t SET title = 'z' WHERE id = 2`)
	db.Exec(t, `ALTER TABLE t ALTER COLUMN b TYPE bigint`)
	db.Exec(t, `ALTER TABLE t DROP COLUMN c`)
	db.Exec(t, `INSERT INTO t VALUES (3, 'w', 3)`)
	ev := collect(t, s, 7)
	var ops []string
	for _, e := range ev {
		ops = append(ops, string(e.Op))
	}
	require.Equal(t, []string{"insert", "schema_change", "insert", "schema_change", "update", "schema_change", "insert"}, ops)
	added := ev[1].Row
	require.Equal(t, []any{"c"}, added["added"])
	require.Equal(t, "t", ev[1].Table)
	cols := added["columns"].([]any)
	require.Equal(t, "numeric(10,2)", cols[3].(map[string]any)["type"])
	require.Equal(t, json.Number("2.50"), ev[2].Row["c"], "the row in the new shape follows its event")
	require.Equal(t, []any{map[string]any{"from": "a", "to": "title"}}, ev[3].Row["renamed"])
	require.Equal(t, "z", ev[4].Row["title"])
	// ALTER TYPE and DROP COLUMN both happened before the next change, so
	// one event carries both.
	require.Equal(t, []any{"c"}, ev[5].Row["dropped"])
	require.Equal(t, []any{map[string]any{"column": "b", "from": "int4", "to": "int8"}}, ev[5].Row["type_changed"])
	require.Equal(t, pgcdc.OpInsert, ev[6].Op)
	require.Equal(t, int64(3), ev[6].Row["b"])
}

func pglogreplParse(s string) (pgcdc.LSN, error) { return pglogrepl.ParseLSN(s) }

func publicationExists(t *testing.T, db *testpg.DB, pub string) bool {
	return db.Int(t, `SELECT count(*) FROM pg_publication WHERE pubname = $1`, pub) > 0
}

func TestUnsupportedReplicaIdentityExplainsTheFix(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE keyless (a int, b text)`)
	db.Exec(t, `CREATE TABLE nothing (id int PRIMARY KEY, b text)`)
	db.Exec(t, `ALTER TABLE nothing REPLICA IDENTITY NOTHING`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	ctx := context.Background()

	_, err := pgcdc.Open(ctx, pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"keyless"}, CreateSlot: true})
	require.Error(t, err)
	require.True(t, pgutil.IsPermanent(err))
	require.Contains(t, err.Error(), "has no primary key")
	require.Contains(t, err.Error(), `ALTER TABLE "`+db.Schema+`"."keyless" REPLICA IDENTITY FULL`)
	require.Contains(t, err.Error(), "ADD PRIMARY KEY")

	_, err = pgcdc.Open(ctx, pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"nothing"}, CreateSlot: true})
	require.Error(t, err)
	require.True(t, pgutil.IsPermanent(err))
	require.Contains(t, err.Error(), "REPLICA IDENTITY NOTHING")
	require.Contains(t, err.Error(), `ALTER TABLE "`+db.Schema+`"."nothing" REPLICA IDENTITY FULL`)

	// Nothing was published or created: publishing such a table would make
	// the user's own UPDATEs on it fail.
	require.False(t, publicationExists(t, db, pub))
	require.Zero(t, db.Int(t, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, slot))
	db.Exec(t, `UPDATE nothing SET b = 'still works'`)

	// Following the advice fixes it.
	db.Exec(t, `ALTER TABLE keyless REPLICA IDENTITY FULL`)
	s := open(t, pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"keyless"}, CreateSlot: true,
		BatchPeriod: 10 * time.Millisecond})
	db.Exec(t, `INSERT INTO keyless VALUES (1, 'x')`)
	db.Exec(t, `DELETE FROM keyless`)
	ev := collect(t, s, 2)
	require.Equal(t, map[string]any{"a": int64(1), "b": "x"}, ev[1].Row)
	require.Equal(t, map[string]any{"a": int64(1), "b": "x"}, ev[1].Key, "without a primary key the whole row is the key")
}

func TestConfigurationErrors(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	db.Exec(t, `CREATE VIEW v AS SELECT * FROM t`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  pgcdc.Config
		want string
	}{
		{"bad slot name", pgcdc.Config{Slot: "Bad-Slot; DROP", Publication: pub, Tables: []string{"t"}}, "not a valid replication slot name"},
		{"no tables", pgcdc.Config{Slot: slot, Publication: pub}, "at least one table"},
		{"missing table", pgcdc.Config{Slot: slot, Publication: pub, Tables: []string{"nope"}, CreateSlot: true}, "nope does not exist"},
		{"view", pgcdc.Config{Slot: slot, Publication: pub, Tables: []string{"v"}, CreateSlot: true}, "is not a table"},
		{"missing slot", pgcdc.Config{Slot: slot, Publication: pub, Tables: []string{"t"}}, "create_slot is false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DSN = db.DSN
			_, err := pgcdc.Open(ctx, tc.cfg)
			require.Error(t, err)
			require.True(t, pgutil.IsPermanent(err), "%v", err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	require.Zero(t, db.Int(t, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, slot))
}

func TestUnreachableServerIsARetryableErrorWithoutThePassword(t *testing.T) {
	port := testutil.FreePort(t)
	dsn := fmt.Sprintf("postgres://app:s3cr3t-Pa55@127.0.0.1:%d/app?sslmode=disable&connect_timeout=2", port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := pgcdc.Open(ctx, pgcdc.Config{DSN: dsn, Slot: "s", Publication: "p", Tables: []string{"t"}, CreateSlot: true})
	require.Error(t, err)
	require.False(t, pgutil.IsPermanent(err), "a server that is down may come back: %v", err)
	require.True(t, pgutil.IsConnectionError(err), "%v", err)
	require.NotContains(t, err.Error(), "s3cr3t-Pa55")
	require.Contains(t, err.Error(), fmt.Sprintf("postgres://app:xxxxx@127.0.0.1:%d/app", port))
}

// A throwaway server with wal_level=replica shows the wal_level check
// against a real server.
func TestWALLevelOtherThanLogicalSaysHowToFixIt(t *testing.T) {
	srv, err := testpg.StartCluster("wal_level=replica", "max_wal_senders=2")
	require.NoError(t, err, "a throwaway server with wal_level=replica")
	t.Cleanup(srv.Stop)
	dsn := srv.DSN()
	c, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	_, err = c.Exec(context.Background(), `CREATE TABLE t (id int PRIMARY KEY)`)
	require.NoError(t, err)
	require.NoError(t, c.Close(context.Background()))

	_, err = pgcdc.Open(context.Background(), pgcdc.Config{DSN: dsn, Slot: "s", Publication: "p", Tables: []string{"t"}, CreateSlot: true})
	require.Error(t, err)
	require.True(t, pgutil.IsPermanent(err))
	require.Contains(t, err.Error(), "wal_level=replica")
	require.Contains(t, err.Error(), "ALTER SYSTEM SET wal_level = logical")
	require.Contains(t, err.Error(), "restart PostgreSQL")
}

// A snapshot that did not finish is taken again on the next start, and the
// slot is replayed from its start: changes made in between come after the
// new snapshot, so applying everything in order gives the source's state.
func TestInterruptedSnapshotIsTakenAgainAndConverges(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	state := &memState{}
	cfg := pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"t"}, CreateSlot: true,
		Snapshot: true, State: state, BatchSize: 100, BatchPeriod: 10 * time.Millisecond}
	s := open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := s.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, pgcdc.OpRead, b.Events[0].Op)
	require.NoError(t, b.Ack(ctx, fmt.Errorf("target unavailable")))
	require.NoError(t, s.Close(ctx))
	v, _, _ := state.Get(ctx, "postgres_cdc:snapshot:"+slot)
	require.Contains(t, v, `"done":false`)

	db.Exec(t, `INSERT INTO t VALUES (1001, 'new')`)
	db.Exec(t, `UPDATE t SET v = 'changed' WHERE id = 1`)
	db.Exec(t, `DELETE FROM t WHERE id = 2`)

	s2 := open(t, cfg)
	ev := collect(t, s2, 1000+3)
	got := map[int64]string{}
	reads := 0
	for _, e := range ev {
		id := e.Row["id"].(int64)
		switch e.Op {
		case pgcdc.OpRead, pgcdc.OpInsert, pgcdc.OpUpdate:
			if e.Op == pgcdc.OpRead {
				reads++
			}
			got[id] = e.Row["v"].(string)
		case pgcdc.OpDelete:
			delete(got, id)
		}
	}
	require.Equal(t, 1000, reads, "a new, complete snapshot")
	want := map[int64]string{}
	rows, err := db.Pool.Query(ctx, `SELECT id, v FROM t`)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		var v string
		require.NoError(t, rows.Scan(&id, &v))
		want[id] = v
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want, got)
	v, _, _ = state.Get(ctx, "postgres_cdc:snapshot:"+slot)
	require.Contains(t, v, `"done":true`)
}

func TestReusesPublicationAddsTablesAndReportsTruncate(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	db.Exec(t, `CREATE TABLE b (id int PRIMARY KEY)`)
	slot, pub := cdctest.Names(t, "cdc_t_")
	db.Exec(t, `CREATE PUBLICATION `+pgutil.QuoteIdent(pub)+` FOR TABLE a`)
	s := open(t, pgcdc.Config{DSN: db.DSN, Slot: slot, Publication: pub, Tables: []string{"b"}, CreateSlot: true,
		BatchPeriod: 10 * time.Millisecond})
	require.EqualValues(t, 2, db.Int(t, `SELECT count(*) FROM pg_publication_tables WHERE pubname = $1`, pub), "b was added, a kept")
	db.Exec(t, `INSERT INTO a VALUES (1)`) // published, but not asked for
	db.Exec(t, `INSERT INTO b VALUES (1)`)
	db.Exec(t, `TRUNCATE b`)
	ev := collect(t, s, 2)
	require.Equal(t, "b", ev[0].Table)
	require.Equal(t, pgcdc.OpInsert, ev[0].Op)
	require.Equal(t, pgcdc.OpTruncate, ev[1].Op)
	require.Equal(t, "b", ev[1].Table)
}
