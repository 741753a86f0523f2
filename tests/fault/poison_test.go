package fault_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestPoisonEveryThousand: `agentetl run configs/examples/resilient-load.yaml`
// as shipped (insert mode, dead letters in a table) loads 50,000 rows of
// which one in every 1,000 is poison, alternately a CHECK violation and a
// date that does not parse. Exactly the poison rows end in the dead letter,
// each once, with its category; every other row is in the target with the
// source's content.
func TestPoisonEveryThousand(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const rows = 50_000
	db := testpg.NewSchema(t)
	execSQL(t, db.Pool, `CREATE TABLE src (id bigint PRIMARY KEY, name text, qty int, born text, email text)`)
	execSQL(t, db.Pool, `INSERT INTO src SELECT g, 'customer ' || g,
		CASE WHEN g % 2000 = 1000 THEN -g ELSE g % 300 END,
		CASE WHEN g % 2000 = 0 THEN 'not a date ' || g ELSE (date '2000-01-01' + (g % 9000))::text END,
		CASE WHEN g % 3 = 0 THEN NULL ELSE 'c' || g || '@example.com' END
		FROM generate_series(1, $1::int) g`, rows)
	execSQL(t, db.Pool, `CREATE TABLE dst (id bigint PRIMARY KEY, name varchar(40), qty int CHECK (qty >= 0), born date, email text)`)
	const poison = `id % 1000 = 0`

	env := map[string]string{
		"SOURCE_DSN": db.DSN, "SOURCE_TABLE": "src", "TARGET_DSN": db.DSN, "TARGET_TABLE": "dst", "DLQ_TABLE": "dlq",
		"PAGE_SIZE": "2000", "STORE_DSN": "sqlite://" + filepath.Join(t.TempDir(), "store.db"), "LOG_LEVEL": "WARN",
	}
	p := startEngine(t, env, "run", exampleConfig("resilient-load.yaml"))
	code := p.waitExit(t, 120*time.Second)
	require.Equalf(t, 0, code, "the load must finish\n%s", p.tail())

	src := queryStrings(t, db.Pool, `SELECT id::text FROM src`)
	dst := queryStrings(t, db.Pool, `SELECT id::text FROM dst`)
	dead := queryStrings(t, db.Pool, `SELECT payload->>'id' FROM dlq`)
	report(t, "poison_every_1000", start, account(src, dst, dead))
	require.ElementsMatch(t, queryStrings(t, db.Pool, `SELECT id::text FROM src WHERE `+poison), dead,
		"exactly the poison rows are dead letters")
	require.EqualValues(t, rows/2000, queryInt(t, db.Pool, `SELECT count(*) FROM dlq WHERE category = 'constraint' AND code = '23514'`),
		"CHECK violations are dead-lettered as constraint errors")
	require.EqualValues(t, rows/2000, queryInt(t, db.Pool, `SELECT count(*) FROM dlq WHERE category = 'data_type'`),
		"unparseable dates are dead-lettered as data_type errors")
	_, want := orderedMD5(t, db.Pool, `SELECT id, name, qty, born::date, email FROM src WHERE NOT (`+poison+`)`)
	_, got := orderedMD5(t, db.Pool, `SELECT id, name, qty, born, email FROM dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
