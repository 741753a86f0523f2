// Package cdctest holds what the change data capture tests share: a source
// table, a reproducible mixed workload of inserts, updates and deletes, and
// the clean-up of replication slots (a server has few of them), and the
// ordered postgres_cdc → postgres pipeline they run.
package cdctest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
)

// SourceDDL creates the workload's table (name is quoted by the caller).
const SourceDDL = `CREATE TABLE %s (
	id bigint PRIMARY KEY,
	name text,
	amount numeric(12,2),
	at timestamptz,
	flag boolean,
	doc jsonb,
	note text)`

// Preload inserts rows 1..n.
func Preload(ctx context.Context, pool *pgxpool.Pool, table string, n int) error {
	_, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s
		SELECT g, CASE WHEN g %% 7 = 0 THEN NULL ELSE 'cüstømer ✓ ' || g END,
		  CASE WHEN g %% 13 = 0 THEN NULL ELSE ((g %% 20000) - 10000) / 100.0 END,
		  timestamptz '2024-01-01 00:00:00.123456+00' + g * interval '1.000001 second',
		  CASE WHEN g %% 11 = 0 THEN NULL ELSE g %% 2 = 0 END,
		  CASE WHEN g %% 5 = 0 THEN NULL ELSE jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g %% 3), 'x', 1.50) END,
		  md5(g::text) || ' "q" '' \ ' || chr(9) || '日本'
		FROM generate_series(1, %d) g`, table, n))
	return err
}

// Workload applies at least Changes row changes to Table in many small
// transactions: inserts, updates (some changing the key), deletes,
// re-inserts of deleted keys, and transactions that insert, update and
// delete one key or delete and re-insert it. Rows 1..Preloaded must exist.
type Workload struct {
	Table     string // quoted
	Preloaded int
	Changes   int
	Seed      uint64
	// Progress, when set, is called after each transaction with the number
	// of changes so far.
	Progress func(changes int)
}

// Run applies the workload and returns the number of row changes made.
func (w Workload) Run(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	rng := rand.New(rand.NewPCG(w.Seed, 42))
	live := make([]int64, 0, w.Preloaded+w.Changes)
	for i := 1; i <= w.Preloaded; i++ {
		live = append(live, int64(i))
	}
	var dead []int64
	next := int64(w.Preloaded + 1)
	pick := func(k int) []int64 {
		k = min(k, len(live))
		out := make([]int64, 0, k)
		for range k {
			i := rng.IntN(len(live))
			out = append(out, live[i])
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		}
		return out
	}
	t := w.Table
	changes := 0
	for changes < w.Changes {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for range 1 + rng.IntN(4) {
				var (
					sql  string
					args []any
					back []int64 // ids that stay live after the statement
				)
				switch r := rng.IntN(100); {
				case r < 35: // insert new rows
					k := int64(1 + rng.IntN(40))
					sql = fmt.Sprintf(`INSERT INTO %s SELECT g, 'new ' || g, g %% 1000 / 7.0, now(), g %% 3 = 0,
						jsonb_build_object('new', g), NULL FROM generate_series($1::bigint, $2::bigint) g`, t)
					args = []any{next, next + k - 1}
					for id := next; id < next+k; id++ {
						back = append(back, id)
					}
					next += k
				case r < 70: // update
					ids := pick(1 + rng.IntN(40))
					sql = fmt.Sprintf(`UPDATE %s SET amount = coalesce(amount, 0) + 1.25, name = name || '+', flag = NOT coalesce(flag, false),
						doc = coalesce(doc, '{}'::jsonb) || jsonb_build_object('u', id), at = at + interval '1 hour' WHERE id = ANY($1)`, t)
					args, back = []any{ids}, ids
				case r < 85: // delete
					ids := pick(1 + rng.IntN(30))
					sql, args = fmt.Sprintf(`DELETE FROM %s WHERE id = ANY($1)`, t), []any{ids}
					dead = append(dead, ids...)
				case r < 92 && len(dead) > 0: // re-insert deleted keys
					k := min(1+rng.IntN(10), len(dead))
					ids := append([]int64(nil), dead[len(dead)-k:]...)
					dead = dead[:len(dead)-k]
					sql = fmt.Sprintf(`INSERT INTO %s (id, name, note) SELECT g, 'back ' || g, 'reborn' FROM unnest($1::bigint[]) g`, t)
					args, back = []any{ids}, ids
				case r < 95: // change keys
					ids := pick(1 + rng.IntN(3))
					sql = fmt.Sprintf(`UPDATE %s SET id = id + 1000000000, name = 'moved' WHERE id = ANY($1)`, t)
					args = []any{ids}
					for _, id := range ids {
						back = append(back, id+1000000000)
					}
				case r < 98: // insert, update and delete one key in one transaction
					id := next
					next++
					for _, q := range []string{
						`INSERT INTO %s (id, name) VALUES ($1, 'short-lived')`,
						`UPDATE %s SET name = 'changed' WHERE id = $1`,
						`DELETE FROM %s WHERE id = $1`,
					} {
						if _, err := tx.Exec(ctx, fmt.Sprintf(q, t), id); err != nil {
							return err
						}
						changes++
					}
					continue
				default: // delete and re-insert one key in one transaction
					ids := pick(1)
					if len(ids) == 0 {
						continue
					}
					if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE id = $1`, t), ids[0]); err != nil {
						return err
					}
					sql = fmt.Sprintf(`INSERT INTO %s (id, name, amount) VALUES ($1, 'replaced', 0.10)`, t)
					args, back = []any{ids[0]}, ids
					changes++
				}
				tag, err := tx.Exec(ctx, sql, args...)
				if err != nil {
					return err
				}
				changes += int(tag.RowsAffected())
				live = append(live, back...)
			}
			return nil
		})
		if err != nil {
			return changes, fmt.Errorf("workload after %d changes: %w", changes, err)
		}
		if w.Progress != nil {
			w.Progress(changes)
		}
	}
	return changes, nil
}

// DropSlotAndPublication removes a test's replication slot (ending the
// connection that holds it) and publication.
func DropSlotAndPublication(ctx context.Context, dsn, slot, pub string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for i := 0; ; i++ {
		_, _ = c.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, slot)
		_, err = c.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("drop slot %s: %w", slot, err)
	}
	_, err = c.Exec(ctx, `DROP PUBLICATION IF EXISTS `+pgutil.QuoteIdent(pub))
	return err
}

// Names returns a replication slot and publication name for this test,
// starting with prefix, and drops both on the LogicalDSN server when the
// test ends (a server has few slots).
func Names(t testing.TB, prefix string) (slot, pub string) {
	t.Helper()
	slot = testpg.RandName(prefix)
	pub = slot + "_pub"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := DropSlotAndPublication(ctx, testpg.LogicalDSN(t), slot, pub); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return slot, pub
}

// Pipeline is a postgres_cdc → postgres upsert stream config (input,
// pipeline and output) that keeps changes in order: one pipeline thread,
// one batch in flight. Schema-change messages are logged and dropped.
func Pipeline(dsn, slot, pub, src, dst, store string) string {
	return fmt.Sprintf(`
input:
  postgres_cdc:
    dsn: %[1]q
    slot: %[2]s
    publication: %[3]s
    tables: [ %[4]q ]
    snapshot: true
    checkpoint_store: %[6]q
    batch_size: 2000
    batch_period: 20ms
    standby_interval: 500ms
pipeline:
  threads: 1
  processors:
    - switch:
        - check: '@operation == "schema_change"'
          processors:
            - log: { level: WARN, message: 'schema change: ${! content() }' }
            - mapping: 'root = deleted()'
output:
  postgres:
    dsn: %[1]q
    table: %[5]q
    mode: upsert
    max_in_flight: 1
    batching: { count: 5000, period: 50ms }
`, dsn, slot, pub, src, dst, store)
}
