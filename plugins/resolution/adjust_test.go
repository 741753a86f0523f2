package resolution_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/testpg"
)

// With the lossy adjustments allowed, the agent converts text dates, writes
// NULL for impossible ones, truncates over-long names and adds a column the
// records carry but the destination lacks; every adjustment is recorded and
// nothing is dead-lettered.
func TestAllowedAdjustments(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE src (id bigint PRIMARY KEY, name text, born text, email text)`)
	db.Exec(t, `INSERT INTO src SELECT g, CASE WHEN g % 10 = 0 THEN repeat('z', 30) ELSE 'n' || g END,
		CASE WHEN g % 7 = 0 THEN '2023-02-30' ELSE '2020-05-17' END, 'u' || g || '@example.test'
		FROM generate_series(1, 2000) g`)
	db.Exec(t, `CREATE TABLE dst (id bigint PRIMARY KEY, name varchar(12), born date)`)
	store := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	yaml := fmt.Sprintf(`
input:
  postgres:
    dsn: %[1]q
    table: src
    page_size: 500
output:
  error_resolution:
    pipeline_id: adjust-test
    store: %[2]q
    adjustments: [coerce, truncate, null_invalid_date, add_nullable_column]
    destination:
      dsn: %[1]q
      table: dst
    output:
      postgres:
        dsn: %[1]q
        table: dst
        mode: upsert
    dead_letter:
      postgres:
        dsn: %[1]q
        table: dlq
logger:
  level: WARN
`, db.DSN, store)
	_, err := runStream(t, 60*time.Second, yaml)
	require.NoError(t, err)
	require.Equal(t, int64(2000), db.Int(t, `SELECT count(*) FROM dst`))
	require.Zero(t, db.Int(t, `SELECT count(*) FROM pg_tables WHERE tablename = 'dlq' AND schemaname = current_schema()`),
		"no dead letters were needed")
	require.Equal(t, "YES", db.String(t, `SELECT is_nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'dst' AND column_name = 'email'`))
	require.Zero(t, db.Int(t, `SELECT count(*) FROM dst d JOIN src s USING (id) WHERE d.email IS DISTINCT FROM s.email`), "the new column is filled")
	require.Equal(t, int64(200), db.Int(t, `SELECT count(*) FROM dst WHERE length(name) = 12 AND name LIKE 'zzz%'`), "over-long names truncated")
	require.Equal(t, int64(2000/7), db.Int(t, `SELECT count(*) FROM dst WHERE born IS NULL`), "impossible dates became NULL")
	require.Zero(t, db.Int(t, `SELECT count(*) FROM dst WHERE born IS NOT NULL AND born <> date '2020-05-17'`))

	st, err := metastore.Open(context.Background(), store)
	require.NoError(t, err)
	defer st.Close()
	decisions, err := st.ListAgentDecisions(context.Background(), metastore.DecisionFilter{PipelineID: "adjust-test"})
	require.NoError(t, err)
	adjusted := 0
	for _, d := range decisions {
		if d.Action == model.StrategyAdjustConfig {
			adjusted++
			require.NotEmpty(t, d.Reasoning)
		}
	}
	require.GreaterOrEqual(t, adjusted, 3, "coerce, truncate and add column are each recorded")
}
