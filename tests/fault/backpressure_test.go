package fault_test

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestSlowDestinationBoundedMemory: the source is fast, the destination
// slow (every insert statement sleeps inside its transaction). `agentetl run
// configs/examples/postgres-to-postgres.yaml` must pace the source to the
// destination instead of buffering: the engine's peak resident set
// (VmHWM from /proc) stays under 300 MiB and under the size of the table it
// copies, and the copy is complete and exact.
func TestSlowDestinationBoundedMemory(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const (
		rows        = 30_000
		page        = 500
		rowBytes    = 8192
		delay       = 100 * time.Millisecond
		maxInFlight = 2 // the example's default
		limitMB     = 300
	)
	db := testpg.NewSchema(t)
	execSQL(t, db.Pool, `CREATE TABLE src (id bigint PRIMARY KEY, qty int, note text)`)
	execSQL(t, db.Pool, `INSERT INTO src SELECT g, g % 1000, repeat(md5(g::text), $2::int / 32) FROM generate_series(1, $1::int) g`, rows, rowBytes)
	execSQL(t, db.Pool, `CREATE TABLE dst (id bigint PRIMARY KEY, qty int, note text)`)
	slowDown(t, db.Pool, db.Schema, "dst", delay)
	dataMB := float64(rows*rowBytes) / (1 << 20)

	env := map[string]string{
		"SOURCE_DSN": db.DSN, "SOURCE_TABLE": "src", "TARGET_DSN": db.DSN, "TARGET_TABLE": "dst",
		"PAGE_SIZE": strconv.Itoa(page), "STORE_DSN": "sqlite://" + filepath.Join(t.TempDir(), "store.db"), "LOG_LEVEL": "WARN",
	}
	p := startEngine(t, env, "run", exampleConfig("postgres-to-postgres.yaml"))
	code := p.waitExit(t, 120*time.Second)
	require.Equalf(t, 0, code, "the slow load must finish\n%s", p.tail())
	peak := p.peakRSSMB()
	t.Logf("copied %.0f MiB of text through a destination sleeping %s per batch in %s; engine peak RSS %.1f MiB",
		dataMB, delay, p.elapsed.Round(time.Millisecond), peak)
	require.GreaterOrEqual(t, p.elapsed, time.Duration(rows/page/maxInFlight)*delay, "the destination was not slow")
	require.Positive(t, peak, "the peak RSS was sampled")
	require.Lessf(t, peak, float64(limitMB), "peak RSS %.1f MiB: memory is not bounded", peak)
	require.Lessf(t, peak, dataMB, "peak RSS %.1f MiB is more than the %.0f MiB table: the source was buffered instead of paced", peak, dataMB)

	src := queryStrings(t, db.Pool, `SELECT id::text FROM src`)
	dst := queryStrings(t, db.Pool, `SELECT id::text FROM dst`)
	report(t, "slow_destination_backpressure", start, account(src, dst, nil))
	_, want := orderedMD5(t, db.Pool, `SELECT * FROM src`)
	_, got := orderedMD5(t, db.Pool, `SELECT * FROM dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
