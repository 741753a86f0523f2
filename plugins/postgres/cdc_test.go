package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pgcdc/cdctest"
	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

// startStream runs a stream in the background until the test ends or stop
// is called; logs go to the returned buffer.
func startStream(t *testing.T, build func(*service.StreamBuilder)) (stop func(), logs *testutil.Buffer) {
	t.Helper()
	b := service.NewStreamBuilder()
	logs = &testutil.Buffer{}
	b.SetLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	build(b)
	s, err := b.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			_ = s.Stop(sctx)
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop, logs
}

func waitSlotActive(t *testing.T, db *testpg.DB, slot string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return db.Int(t, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active`, slot) == 1
	}, 60*time.Second, 20*time.Millisecond, "slot %s never became active (creating a slot waits for running write transactions)", slot)
}

func TestCDCMessagesCarryOperationImagesAndMetadata(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2), status text)`)
	db.Exec(t, `ALTER TABLE orders REPLICA IDENTITY FULL`)
	db.Exec(t, `INSERT INTO orders VALUES (1, 9.99, 'new')`)
	slot, pub := cdctest.Names(t, "cdc_p_")
	var mu sync.Mutex
	var got []*service.Message
	stop, logs := startStream(t, func(b *service.StreamBuilder) {
		require.NoError(t, b.AddInputYAML(fmt.Sprintf(`
postgres_cdc:
  dsn: %q
  slot: %s
  publication: %s
  tables: [ orders ]
  snapshot: true
  checkpoint_store: %q
  batch_period: 10ms
`, db.DSN, slot, pub, "sqlite://"+filepath.Join(t.TempDir(), "store.db"))))
		require.NoError(t, b.AddBatchConsumerFunc(func(_ context.Context, mb service.MessageBatch) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, mb...)
			return nil
		}))
	})
	waitSlotActive(t, db, slot)
	db.Exec(t, `INSERT INTO orders VALUES (2, 20.00, 'new')`)
	db.Exec(t, `UPDATE orders SET status = 'paid', total = 21.50 WHERE id = 2`)
	db.Exec(t, `DELETE FROM orders WHERE id = 1`)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 4 }, 60*time.Second, 20*time.Millisecond, "%s", logs.String())
	stop()
	require.Len(t, got, 4)

	meta := func(m *service.Message, k string) string { v, _ := m.MetaGet(k); return v }
	var ops []string
	for _, m := range got {
		ops = append(ops, meta(m, "operation"))
		require.Equal(t, "orders", meta(m, "table"))
		require.Equal(t, db.Schema, meta(m, "schema"))
		require.NotEmpty(t, meta(m, "lsn"))
	}
	require.Equal(t, []string{"read", "insert", "update", "delete"}, ops)
	require.Empty(t, meta(got[0], "commit_timestamp"), "snapshot rows have no commit")
	require.Equal(t, `{"id":1}`, meta(got[0], "key"))
	ts, err := time.Parse(time.RFC3339Nano, meta(got[1], "commit_timestamp"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), ts, time.Minute)
	require.NotEmpty(t, meta(got[1], "commit_lsn"))

	// Bloblang sees typed values and the structured before image.
	exec, err := bloblang.Parse(`root = {"after": this, "before_status": @before.status, "before_total": @before.total, "total_type": this.total.type()}`)
	require.NoError(t, err)
	res, err := got[2].BloblangQuery(exec)
	require.NoError(t, err)
	out, err := res.AsStructured()
	require.NoError(t, err)
	o := out.(map[string]any)
	require.Equal(t, "new", o["before_status"])
	require.Equal(t, "number", o["total_type"])
	require.EqualValues(t, "20.00", fmt.Sprint(o["before_total"]))
	after := o["after"].(map[string]any)
	require.Equal(t, "paid", after["status"])

	body, err := got[3].AsBytes()
	require.NoError(t, err)
	require.JSONEq(t, `{"id":1,"total":9.99,"status":"new"}`, string(body), "a delete carries the old row under REPLICA IDENTITY FULL")
}

// produceBatches sends batches through an output config and waits until
// each is acknowledged; it returns each batch's error.
func produceBatches(t *testing.T, outputYAML string, batches ...service.MessageBatch) []error {
	t.Helper()
	var send service.MessageBatchHandlerFunc
	stop, _ := startStream(t, func(b *service.StreamBuilder) {
		require.NoError(t, b.AddOutputYAML(outputYAML))
		var err error
		send, err = b.AddBatchProducerFunc()
		require.NoError(t, err)
	})
	defer stop()
	errs := make([]error, len(batches))
	for i, mb := range batches {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		errs[i] = send(ctx, mb)
		cancel()
	}
	return errs
}

func change(op string, row string) *service.Message {
	m := service.NewMessage([]byte(row))
	if op != "" {
		m.MetaSetMut("operation", op)
	}
	return m
}

func TestPostgresOutputAppliesDeletesInBatchOrder(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE "Tgt ü" (id int, part text, v text, PRIMARY KEY (id, part))`)
	db.Exec(t, `INSERT INTO "Tgt ü" SELECT g, 'a', 'v' || g FROM generate_series(1, 6) g`)
	out := fmt.Sprintf(`
postgres:
  dsn: %q
  table: Tgt ü
  mode: upsert
`, db.DSN)
	errs := produceBatches(t, out,
		service.MessageBatch{
			change("insert", `{"id": 10, "part": "a", "v": "short-lived"}`),
			change("update", `{"id": 10, "part": "a", "v": "changed"}`),
			change("delete", `{"id": 10, "part": "a"}`), // insert, update, delete: gone
			change("delete", `{"id": 1, "part": "a", "v": "v1"}`),
			change("insert", `{"id": 1, "part": "a", "v": "reborn"}`), // delete, insert: present
			change("delete", `{"id": 2, "part": "a"}`),                // plain delete
			change("read", `{"id": 3, "part": "a", "v": "snap"}`),     // read is an upsert
			change("delete", `{"id": 99, "part": "a"}`),               // deleting a missing row is a no-op
			change("update", `{"id": 4, "part": "a", "v": "upd"}`),
			change("delete", `{"id": 4, "part": "a"}`),
			change("insert", `{"id": 4, "part": "a", "v": "again"}`),
			change("delete", `{"id": 5, "part": "b"}`), // other key: row (5,'a') stays
		},
		// A batch without deletes takes the plain path and still works.
		service.MessageBatch{change("", `{"id": 6, "part": "a", "v": "six"}`), change("insert", `{"id": 7, "part": "a", "v": "seven"}`)},
		// A delete without its key is refused with a clear error.
		service.MessageBatch{change("delete", `{"part": "a"}`)},
	)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.ErrorContains(t, errs[2], `no value for key column "id"`)
	require.Equal(t, "1:reborn,3:snap,4:again,5:v5,6:six,7:seven",
		db.String(t, `SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM "Tgt ü"`))
}

func TestPostgresOutputDeleteOptions(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3) g`)
	custom := func(op string, row string) *service.Message {
		m := service.NewMessage([]byte(row))
		m.MetaSetMut("op", op)
		m.MetaSetMut("operation", "delete") // ignored: the output looks at op
		return m
	}
	errs := produceBatches(t, fmt.Sprintf(`
postgres:
  dsn: %q
  table: t
  operation_meta: op
`, db.DSN), service.MessageBatch{custom("delete", `{"id": 1}`), custom("update", `{"id": 2, "v": "two"}`)})
	require.NoError(t, errs[0])
	require.Equal(t, "2:two,3:v3", db.String(t, `SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t`))

	errs = produceBatches(t, fmt.Sprintf(`
postgres:
  dsn: %q
  table: t
  mode: insert
`, db.DSN), service.MessageBatch{change("delete", `{"id": 2}`)})
	require.ErrorContains(t, errs[0], "needs mode: upsert")
	require.EqualValues(t, 2, db.Int(t, `SELECT count(*) FROM t`))
}

func TestCDCUnreachableServerIsRetriedWithPasswordRedacted(t *testing.T) {
	port := testutil.FreePort(t)
	slot := testpg.RandName("cdc_p_")
	stop, logs := startStream(t, func(b *service.StreamBuilder) {
		require.NoError(t, b.AddInputYAML(fmt.Sprintf(`
postgres_cdc:
  dsn: postgres://app:Sup3r-s3cret@127.0.0.1:%d/app?sslmode=disable&connect_timeout=2
  slot: %s
  publication: p
  tables: [ t ]
  snapshot: false
  max_connect_attempts: 0
`, port, slot)))
		require.NoError(t, b.AddBatchConsumerFunc(func(context.Context, service.MessageBatch) error { return nil }))
	})
	want := fmt.Sprintf("postgres://app:xxxxx@127.0.0.1:%d/app", port)
	require.Eventually(t, func() bool { return strings.Count(logs.String(), want) >= 2 }, 30*time.Second, 50*time.Millisecond,
		"the connection is retried and each failure names the server: %s", logs.String())
	stop()
	require.NotContains(t, logs.String(), "Sup3r-s3cret")
	require.Contains(t, logs.String(), "connect")
}

// The CDC must-show, in process: 50,000 mixed changes (on top of a
// snapshot of 10,000 rows) leave the target identical to the source.
func TestCDC50kMixedChangesLeaveTargetIdentical(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	ctx := context.Background()
	db.Exec(t, fmt.Sprintf(cdctest.SourceDDL, "src"))
	db.Exec(t, `CREATE TABLE dst (LIKE src INCLUDING ALL)`)
	require.NoError(t, cdctest.Preload(ctx, db.Pool, "src", 10_000))
	slot, pub := cdctest.Names(t, "cdc_p_")
	start := time.Now()
	stop, logs := startStream(t, func(b *service.StreamBuilder) {
		require.NoError(t, b.SetYAML(cdctest.Pipeline(db.DSN, slot, pub, "src", "dst", "sqlite://"+filepath.Join(t.TempDir(), "store.db"))))
	})
	waitSlotActive(t, db, slot)
	n, err := cdctest.Workload{Table: "src", Preloaded: 10_000, Changes: 50_000, Seed: 1}.Run(ctx, db.Pool)
	require.NoError(t, err)
	workload := time.Since(start)
	srcCount, srcSum := db.Checksum(t, "src")
	require.Eventually(t, func() bool {
		_, sum := db.Checksum(t, "dst")
		return sum == srcSum
	}, 60*time.Second, 200*time.Millisecond, "target never matched the source\n%s", logs.String())
	t.Logf("%d changes on %d preloaded rows: workload %s, target identical after %s (%d rows)",
		n, 10_000, workload.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), srcCount)
	stop()
	dstCount, dstSum := db.Checksum(t, "dst")
	require.Equal(t, srcCount, dstCount)
	require.Equal(t, srcSum, dstSum)
	require.GreaterOrEqual(t, n, 50_000)
	require.Positive(t, db.Int(t, `SELECT count(*) FROM src WHERE id > 1000000000`), "the workload changed keys")
	require.Less(t, srcCount, int64(10_000+n), "the workload deleted rows")
	require.NotContains(t, logs.String(), "level=ERROR")
}

// A batch the output rejects is not lost: the input reconnects and the slot
// replays it (and anything after it) until it is accepted.
func TestCDCRejectedBatchIsReplayed(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	slot, pub := cdctest.Names(t, "cdc_p_")
	var mu sync.Mutex
	accepted := map[int64]int{}
	rejections := 0
	stop, logs := startStream(t, func(b *service.StreamBuilder) {
		require.NoError(t, b.AddInputYAML(fmt.Sprintf(`
postgres_cdc:
  dsn: %q
  slot: %s
  publication: %s
  tables: [ t ]
  snapshot: false
  batch_size: 10
  batch_period: 10ms
  standby_interval: 100ms
`, db.DSN, slot, pub)))
		require.NoError(t, b.AddBatchConsumerFunc(func(_ context.Context, mb service.MessageBatch) error {
			mu.Lock()
			defer mu.Unlock()
			var ids []int64
			for _, m := range mb {
				v, err := m.AsStructured()
				if err != nil {
					return err
				}
				ids = append(ids, v.(map[string]any)["id"].(int64))
			}
			for _, id := range ids {
				if id == 25 && rejections < 2 {
					rejections++
					return fmt.Errorf("simulated outage")
				}
			}
			for _, id := range ids {
				accepted[id]++
			}
			return nil
		}))
	})
	waitSlotActive(t, db, slot)
	for i := 0; i < 5; i++ {
		db.Exec(t, fmt.Sprintf(`INSERT INTO t SELECT g FROM generate_series(%d, %d) g`, i*10+1, i*10+10))
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(accepted) == 50 }, 60*time.Second, 20*time.Millisecond,
		"every row accepted in the end\n%s", logs.String())
	stop()
	require.Equal(t, 2, rejections)
	for id := int64(1); id <= 50; id++ {
		require.Positive(t, accepted[id], "row %d", id)
	}
	require.Equal(t, 1, accepted[1], "rows confirmed before the rejection are not replayed")
	require.Contains(t, logs.String(), "rejected downstream")
}

// TestPostgresOutputAppliesTruncateInStreamOrder: a truncate message in a
// change stream empties the table between the changes before and after it;
// a schema_change message is acknowledged without touching the table; in
// insert mode a truncate is refused clearly.
func TestPostgresOutputAppliesTruncateInStreamOrder(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	db.Exec(t, `CREATE TABLE tgt (id int PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO tgt SELECT g, 'old' FROM generate_series(1, 5) g`)
	out := fmt.Sprintf(`
postgres:
  dsn: %q
  table: tgt
  mode: upsert
`, db.DSN)
	errs := produceBatches(t, out, service.MessageBatch{
		change("insert", `{"id": 10, "v": "before"}`),
		change("truncate", `{}`),
		change("schema_change", `{"kind": "column_added", "column": "w"}`),
		change("insert", `{"id": 11, "v": "after"}`),
		change("delete", `{"id": 11}`),
		change("insert", `{"id": 12, "v": "after"}`),
	})
	require.NoError(t, errs[0])
	require.Equal(t, "12:after", db.String(t, `SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM tgt`))

	errs = produceBatches(t, fmt.Sprintf("postgres:\n  dsn: %q\n  table: tgt\n  mode: insert\n", db.DSN),
		service.MessageBatch{change("truncate", `{}`)})
	require.ErrorContains(t, errs[0], "a truncate message needs mode: upsert")
	require.EqualValues(t, 1, db.Int(t, `SELECT count(*) FROM tgt`))
}
