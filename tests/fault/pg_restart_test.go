package fault_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestDestinationRestart: the destination is a private PostgreSQL 15
// cluster (never the shared server, which other packages use meanwhile).
// `agentetl run configs/examples/postgres-to-postgres.yaml` copies a table
// into it; while one batch is held half written inside its transaction,
// the cluster is restarted with `pg_ctl restart -m fast`, which aborts that
// transaction and drops every connection. The run must ride it out and end
// with the target equal to the source.
func TestDestinationRestart(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const rows, heldID = 50_000, 20_500
	db := testpg.NewSchema(t)
	seedSource(t, db.Pool, "src", rows, false)
	c := startCluster(t)
	dstPool := c.pool(t)
	createTarget(t, dstPool, "dst", false)
	installGate(t, dstPool, "public", "dst", heldID)

	app := testpg.RandName("fault_restart_")
	env := map[string]string{
		"SOURCE_DSN": db.DSN, "SOURCE_TABLE": "src",
		"TARGET_DSN": withApp(c.DSN(), app), "TARGET_TABLE": "public.dst",
		"PAGE_SIZE": "1000", "STORE_DSN": "sqlite://" + filepath.Join(t.TempDir(), "store.db"), "LOG_LEVEL": "WARN",
	}
	p := startEngine(t, env, "run", exampleConfig("postgres-to-postgres.yaml"))
	waitHeld(t, dstPool, app, p, 90*time.Second)
	before := queryInt(t, dstPool, `SELECT count(*) FROM dst`)
	restartStart := time.Now()
	c.restart(t, "fast")
	dstPool.Reset() // its connections died with the server
	// The held transaction was aborted by the restart (a retry of its batch
	// is held again until the gate opens).
	require.Zero(t, queryInt(t, dstPool, `SELECT count(*) FROM dst WHERE id BETWEEN 20001 AND 21000`),
		"the batch held at the restart was rolled back")
	setGate(t, dstPool, "public", false)
	t.Logf("destination restarted in %s with %d rows in the target", time.Since(restartStart).Round(time.Millisecond), before)
	require.Less(t, before, int64(rows), "the restart landed before the load finished")
	require.False(t, p.exited(), "the engine must not stop because its destination restarted\n%s", p.tail())

	code := p.waitExit(t, 120*time.Second)
	require.Equalf(t, 0, code, "the run must finish after the restart\n%s", p.tail())

	// Both sides in UTC, so timestamps print alike on both servers.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srcPool, err := pgxpool.New(ctx, testpg.WithParam(db.DSN, "TimeZone", "UTC"))
	require.NoError(t, err)
	defer srcPool.Close()
	src := queryStrings(t, srcPool, `SELECT id::text FROM src`)
	dst := queryStrings(t, dstPool, `SELECT id::text FROM dst`)
	report(t, "destination_pg_restart", start, account(src, dst, nil))
	_, want := orderedMD5(t, srcPool, `SELECT * FROM src`)
	_, got := orderedMD5(t, dstPool, `SELECT * FROM dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
