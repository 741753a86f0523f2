package resolution_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// seedBadLoad creates src with n rows, one in 100 bad in one of four ways
// (rotating): a name too long for varchar(40), a negative qty that violates
// the check constraint, an unparseable date, and a code that duplicates an
// earlier row's key. It returns the expected dead-letter category per kind.
func seedBadLoad(t *testing.T, db *testpg.DB, n int) {
	db.Exec(t, `CREATE TABLE src (id bigint PRIMARY KEY, code bigint NOT NULL, name text, qty int, born text, note text)`)
	db.Exec(t, `INSERT INTO src
		SELECT g,
		       CASE WHEN g % 100 = 0 AND (g / 100) % 4 = 3 THEN g - 50 ELSE g END,
		       CASE WHEN g % 100 = 0 AND (g / 100) % 4 = 0 THEN repeat('x', 60) ELSE 'customer ' || g END,
		       CASE WHEN g % 100 = 0 AND (g / 100) % 4 = 1 THEN -1 ELSE g % 1000 END,
		       CASE WHEN g % 100 = 0 AND (g / 100) % 4 = 2 THEN
		                 CASE WHEN g % 200 = 0 THEN '2024-02-30' ELSE 'not a date' END
		            ELSE to_char(date '2000-01-01' + (g % 9000), 'YYYY-MM-DD') END,
		       md5(g::text)
		FROM generate_series(1, $1) g`, n)
	db.Exec(t, `CREATE TABLE dst (code bigint PRIMARY KEY, id bigint NOT NULL, name varchar(40), qty int CHECK (qty >= 0), born date, note text)`)
}

// expectedKind is the SQL expression of the expected category of source row id.
const expectedCategory = `CASE WHEN id % 100 <> 0 THEN 'none' WHEN (id / 100) % 4 IN (0, 2) THEN 'data_type' ELSE 'constraint' END`

func TestNoLossLoadWithBadRows(t *testing.T) {
	db := testpg.NewSchema(t)
	const n = 100_000
	seedBadLoad(t, db, n)
	// destination lets the agent read the violated CHECK constraint.
	took, err := runStream(t, 90*time.Second, loadYAML(db.DSN, "src", "dst", "dlq", "insert",
		"destination:\n  dsn: "+strconv.Quote(db.DSN)+"\n  table: dst"))
	require.NoError(t, err)
	t.Logf("loaded %d rows with 1%% bad in %s", n, took)

	src := db.Int(t, `SELECT count(*) FROM src`)
	dst := db.Int(t, `SELECT count(*) FROM dst`)
	dlq := db.Int(t, `SELECT count(*) FROM dlq`)
	require.Equal(t, src, dst+dlq, "count(source) = count(target) + count(dead letter)")
	require.Equal(t, int64(n/100), dlq, "exactly the bad rows are dead-lettered")
	require.Zero(t, db.Int(t, `SELECT count(*) FROM dst d JOIN src s ON s.id = d.id WHERE s.id % 100 = 0`), "no bad row reached the target")
	wrong := db.Int(t, `SELECT count(*) FROM dlq q JOIN src s ON s.id = (q.payload->>'id')::bigint
		WHERE q.category <> `+strings.ReplaceAll(expectedCategory, "id", "s.id"))
	require.Zero(t, wrong, "every dead-letter row has the right category")
	require.Zero(t, db.Int(t, `SELECT count(*) FROM dlq WHERE fingerprint = '' OR error = '' OR component = '' OR attempts < 0`))
	// Records that a learned screen set aside without a write say so with
	// zero attempts; they share the fingerprint of the failure they were
	// learned from.
	require.Positive(t, db.Int(t, `SELECT count(*) FROM dlq WHERE attempts = 0`))
	for _, code := range []string{"22001", "23505", "23514"} {
		require.Positive(t, db.Int(t, `SELECT count(*) FROM dlq WHERE attempts = 0 AND code = $1`, code), "screened %s", code)
	}
	require.Zero(t, db.Int(t, `SELECT count(*) FROM dlq p WHERE attempts = 0 AND NOT EXISTS (
		SELECT 1 FROM dlq w WHERE w.attempts > 0 AND w.fingerprint = p.fingerprint)`))
	// The good rows arrived intact.
	require.Zero(t, db.Int(t, `SELECT count(*) FROM src s JOIN dst d ON d.id = s.id
		WHERE d.name <> s.name OR d.qty <> s.qty OR d.born <> s.born::date OR d.note <> s.note`))
}
