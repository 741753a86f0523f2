package fault_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestTerminateBackends: while `agentetl run
// configs/examples/postgres-to-postgres.yaml` copies a table, every
// connection of the run, source side and destination side, is ended with
// pg_terminate_backend, again and again. Only the run's own connections
// are touched: each side has its own application_name. The destination is
// slowed a little so that some of its connections die inside an open
// write transaction. The run must finish with the target equal to the
// source.
func TestTerminateBackends(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const rows = 60_000
	db := testpg.NewSchema(t)
	seedSource(t, db.Pool, "src", rows, false)
	createTarget(t, db.Pool, "dst", false)
	slowDown(t, db.Pool, db.Schema, "dst", 40*time.Millisecond)

	srcApp, dstApp := testpg.RandName("fault_term_src_"), testpg.RandName("fault_term_dst_")
	env := map[string]string{
		"SOURCE_DSN": withApp(db.DSN, srcApp), "SOURCE_TABLE": "src",
		"TARGET_DSN": withApp(db.DSN, dstApp), "TARGET_TABLE": "dst",
		"PAGE_SIZE": "1000", "STORE_DSN": "sqlite://" + filepath.Join(t.TempDir(), "store.db"), "LOG_LEVEL": "WARN",
	}
	p := startEngine(t, env, "run", exampleConfig("postgres-to-postgres.yaml"))
	waitUntil(t, 60*time.Second, p, "the first rows in the target", func() bool {
		return queryInt(t, db.Pool, `SELECT count(*) FROM dst`) >= 3000
	})
	// Each round waits for progress since the last one (so the reader has
	// connected again), then until a destination connection is inside its
	// write transaction (in the slow-down trigger), and ends every
	// connection of both sides.
	var srcKilled, dstKilled, last int64
	const rounds = 6
	for round := 0; round < rounds; round++ {
		waitUntil(t, 60*time.Second, p, "progress after a round of terminations", func() bool {
			n := queryInt(t, db.Pool, `SELECT count(*) FROM dst`)
			if n >= last+3000 {
				last = n
				return true
			}
			return false
		})
		waitHeld(t, db.Pool, dstApp, p, 60*time.Second)
		dstKilled += terminate(t, db.Pool, dstApp)
		srcKilled += terminate(t, db.Pool, srcApp)
		time.Sleep(100 * time.Millisecond)
	}
	atEnd := queryInt(t, db.Pool, `SELECT count(*) FROM dst`)
	t.Logf("%d rounds: terminated %d source and %d destination connections, each round during a write transaction; %d rows in the target after the last round",
		rounds, srcKilled, dstKilled, atEnd)
	require.Positive(t, srcKilled, "source connections were terminated")
	require.Positive(t, dstKilled, "destination connections were terminated")
	require.Less(t, atEnd, int64(rows), "the terminations must land while the load runs; make the table bigger")

	code := p.waitExit(t, 120*time.Second)
	require.Equalf(t, 0, code, "the run must finish despite the terminated connections\n%s", p.tail())

	src := queryStrings(t, db.Pool, `SELECT id::text FROM src`)
	dst := queryStrings(t, db.Pool, `SELECT id::text FROM dst`)
	report(t, "pg_terminate_backend", start, account(src, dst, nil))
	_, want := orderedMD5(t, db.Pool, `SELECT * FROM src`)
	_, got := orderedMD5(t, db.Pool, `SELECT * FROM dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
