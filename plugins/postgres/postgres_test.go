package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/testpg"
	_ "github.com/agentetl/agentetl/plugins/postgres"
)

func runStream(t *testing.T, yaml string, consume func(context.Context, service.MessageBatch) error) {
	t.Helper()
	b := service.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML(`level: warn`))
	if consume != nil {
		// With a consumer func the YAML is the input alone: SetYAML would
		// also install the default (rejecting) output beside the consumer.
		require.NoError(t, b.AddInputYAML(yaml))
		require.NoError(t, b.AddBatchConsumerFunc(consume))
	} else {
		require.NoError(t, b.SetYAML(yaml))
	}
	s, err := b.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, s.Run(ctx))
}

func TestCopyKeepsTypesAndHostileNames(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE "Order Items" (id bigint PRIMARY KEY, "select" text, "Ünï ""q""" numeric(12,2), at timestamptz, flag boolean)`)
	db.Exec(t, `INSERT INTO "Order Items" SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'row ' || g END, g / 100.0 - 3,
		timestamptz '2024-01-01' + g * interval '1 minute', g % 2 = 0 FROM generate_series(1, 2500) g`)
	db.Exec(t, `CREATE TABLE "select" (LIKE "Order Items" INCLUDING ALL)`)
	runStream(t, fmt.Sprintf(`
input:
  postgres:
    dsn: %[1]q
    table: Order Items
    page_size: 400
output:
  postgres:
    dsn: %[1]q
    table: select
    mode: upsert
    max_in_flight: 3
`, db.DSN), nil)
	n1, s1 := db.Checksum(t, `"Order Items"`)
	n2, s2 := db.Checksum(t, `"select"`)
	require.Equal(t, int64(2500), n2)
	require.Equal(t, n1, n2)
	require.Equal(t, s1, s2)
}

func TestMessagesCarryTypedValuesAndMetadata(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, amount numeric(12,2), at timestamptz)`)
	db.Exec(t, `INSERT INTO t SELECT g, g + 0.25, timestamptz '2024-03-01 00:00:00+00' + g * interval '1 day' FROM generate_series(1, 25) g`)
	var mu sync.Mutex
	var got []*service.Message
	runStream(t, fmt.Sprintf(`
postgres:
  dsn: %q
  table: t
  page_size: 10
`, db.DSN), func(_ context.Context, b service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, b...)
		return nil
	})
	require.Len(t, got, 25)
	v, err := got[0].AsStructured()
	require.NoError(t, err)
	row := v.(map[string]any)
	require.Equal(t, json.Number("1.25"), row["amount"])
	require.Equal(t, time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC), row["at"])
	table, _ := got[0].MetaGetMut("postgres_table")
	require.Equal(t, db.Schema+".t", table)
	page, _ := got[24].MetaGetMut("postgres_page")
	require.Equal(t, 3, page)
	key, _ := got[24].MetaGetMut("postgres_key")
	require.Equal(t, int64(25), key)
	// Bloblang sees a timestamp and an exact number, not strings.
	exec, err := bloblang.Parse(`root = [this.at.type(), this.amount.type(), this.amount * 4]`)
	require.NoError(t, err)
	res, err := got[0].BloblangQuery(exec)
	require.NoError(t, err)
	out, err := res.AsStructured()
	require.NoError(t, err)
	require.Equal(t, []any{"timestamp", "number", float64(5)}, out)
}

func TestCheckpointAdvancesOnlyOnAckAndResumes(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`)
	storeDSN := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	cfg := fmt.Sprintf(`
postgres:
  dsn: %q
  table: t
  page_size: 10
  checkpoint_id: cp
  checkpoint_store: %q
`, db.DSN, storeDSN)
	ctx := context.Background()
	st, err := metastore.Open(ctx, storeDSN)
	require.NoError(t, err)
	defer st.Close()

	// While each batch is held unacknowledged, the stored position must be
	// strictly before its first row: it may lag, it may never lead.
	seen := 0
	var violations []string
	runStream(t, cfg, func(ctx context.Context, b service.MessageBatch) error {
		first, _ := b[0].MetaGetMut("postgres_key")
		pos, err := st.GetCheckpoint(ctx, "cp")
		switch {
		case errors.Is(err, metastore.ErrNotFound):
		case err != nil:
			violations = append(violations, err.Error())
		default:
			var p struct{ Key string }
			if json.Unmarshal([]byte(pos), &p) != nil || atoi(p.Key) >= int(first.(int64)) {
				violations = append(violations, fmt.Sprintf("checkpoint %s while row %d is unacknowledged", pos, first))
			}
		}
		seen += len(b)
		return nil
	})
	require.Empty(t, violations)
	require.Equal(t, 100, seen)
	pos, err := st.GetCheckpoint(ctx, "cp")
	require.NoError(t, err)
	require.Contains(t, pos, `"key":"100"`)

	// New rows: the next run reads only them.
	db.Exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(101, 130) g`)
	var ids []int64
	runStream(t, cfg, func(_ context.Context, b service.MessageBatch) error {
		for _, m := range b {
			k, _ := m.MetaGetMut("postgres_key")
			ids = append(ids, k.(int64))
		}
		return nil
	})
	require.Len(t, ids, 30)
	require.Equal(t, int64(101), ids[0])
}

func atoi(s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		return -1
	}
	return n
}

// Rejected batches, including the very last one after the table is
// exhausted, are sent again until accepted: nothing is lost and the
// checkpoint ends at the last key.
func TestNackedPagesAreReplayedEvenAfterTheLastRead(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	db.Exec(t, `INSERT INTO t SELECT g FROM generate_series(1, 95) g`)
	storeDSN := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	rejected := map[int64]int{}
	delivered := map[int64]int{}
	runStream(t, fmt.Sprintf(`
postgres:
  dsn: %q
  table: t
  page_size: 10
  checkpoint_id: nack
  checkpoint_store: %q
`, db.DSN, storeDSN), func(_ context.Context, b service.MessageBatch) error {
		first, _ := b[0].MetaGetMut("postgres_key")
		k := first.(int64)
		// Reject pages 3 and 10 (the last, partial one) twice each.
		if (k == 21 || k == 91) && rejected[k] < 2 {
			rejected[k]++
			return fmt.Errorf("simulated write failure for page starting at %d", k)
		}
		for _, m := range b {
			v, _ := m.MetaGetMut("postgres_key")
			delivered[v.(int64)]++
		}
		return nil
	})
	require.Equal(t, 2, rejected[21])
	require.Equal(t, 2, rejected[91])
	require.Len(t, delivered, 95)
	for k, n := range delivered {
		require.Equal(t, 1, n, "row %d accepted exactly once", k)
	}
	st, err := metastore.Open(context.Background(), storeDSN)
	require.NoError(t, err)
	defer st.Close()
	pos, err := st.GetCheckpoint(context.Background(), "nack")
	require.NoError(t, err)
	require.Contains(t, pos, `"key":"95"`)
}
