package fault_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestEngineKillNine: `agentetl run configs/examples/resilient-load.yaml`
// (upsert, dead letters in a table, one poison row in every 1,000) is
// killed with SIGKILL while a batch is certainly half written: the writer's
// transaction is held open by a trigger on the target when the signal
// lands, and the batch after it has committed without being checkpointed.
// The checkpoint left behind never claims a row the target or the dead
// letter does not hold, and a second run resumes from it and finishes:
// every source row is in the target or, for the poison rows only, in the
// dead letter, once, with the source's exact content.
func TestEngineKillNine(t *testing.T) {
	t.Parallel()
	engineKill(t, "engine_kill9", "upsert")
}

// TestEngineKillNineInsertMode is the same in insert mode: the batch that
// was committed but not checkpointed is sent again after the resume; its
// rows conflict with themselves and must count as written (the postgres
// output compares them with the stored rows), not go to the dead letter.
func TestEngineKillNineInsertMode(t *testing.T) {
	t.Parallel()
	engineKill(t, "engine_kill9_insert", "insert")
}

func engineKill(t *testing.T, name, mode string) {
	start := time.Now()
	const rows, page, heldID = 60_000, 1000, 30_500
	db := testpg.NewSchema(t)
	seedSource(t, db.Pool, "src", rows, true)
	createTarget(t, db.Pool, "dst", true)
	installGate(t, db.Pool, db.Schema, "dst", heldID)

	app := testpg.RandName("fault_kill_")
	store := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	env := map[string]string{
		"SOURCE_DSN": db.DSN, "SOURCE_TABLE": "src",
		"TARGET_DSN": withApp(db.DSN, app), "TARGET_TABLE": "dst", "DLQ_TABLE": "dlq",
		"WRITE_MODE": mode, "PAGE_SIZE": "1000", "STORE_DSN": store, "LOG_LEVEL": "INFO",
	}
	cfg := exampleConfig("resilient-load.yaml")
	const checkpointID = "resilient:src:dst"

	p := startEngine(t, env, "run", cfg)
	waitHeld(t, db.Pool, app, p, 90*time.Second)
	// The example writes two batches at a time: the page after the held one
	// commits, so the kill leaves a batch that is written but, being behind
	// an unfinished one, not yet checkpointed. The resumed run sends it again.
	next := int64(heldID - heldID%page + page)
	waitUntil(t, 30*time.Second, p, "the batch after the held one committed", func() bool {
		return queryInt(t, db.Pool, `SELECT count(*) FROM dst WHERE id > $1 AND id <= $2`, next, next+page) > 0
	})
	p.kill9(t)
	// The dead engine's transaction is still open on the server: end it
	// (it must roll back) and let later inserts of the held row through.
	setGate(t, db.Pool, db.Schema, false)
	terminate(t, db.Pool, app)
	waitUntil(t, 15*time.Second, nil, "the killed engine's connections gone", func() bool { return backends(t, db.Pool, app) == 0 })

	atKill := queryInt(t, db.Pool, `SELECT count(*) FROM dst`)
	t.Logf("SIGKILL after %s with %d rows in the target", time.Since(start).Round(time.Millisecond), atKill)
	require.Less(t, atKill, int64(rows), "the kill landed before the load finished")
	lo, hi := int64(heldID-heldID%page+1), int64(heldID-heldID%page+page)
	require.Zero(t, queryInt(t, db.Pool, `SELECT count(*) FROM dst WHERE id BETWEEN $1 AND $2`, lo, hi),
		"the batch that was half written at the kill left nothing behind")

	key, found := checkpointKey(t, store, checkpointID)
	if found {
		t.Logf("checkpoint at the kill: key %d", key)
		require.Less(t, key, lo, "the checkpoint passed the batch that was never committed")
		held := queryInt(t, db.Pool, `SELECT count(*) FROM dst WHERE id <= $1`, key) +
			queryInt(t, db.Pool, `SELECT count(*) FROM dlq WHERE (payload->>'id')::bigint <= $1`, key)
		require.Equal(t, key, held, "the checkpoint claims rows that are neither in the target nor in the dead letter")
	}

	p = startEngine(t, env, "run", cfg)
	code := p.waitExit(t, 120*time.Second)
	require.Equalf(t, 0, code, "the resumed run must finish\n%s", p.tail())
	if found {
		require.Truef(t, resumedFrom(p.output(), checkpointID), "the second run did not resume from the checkpoint\n%s", p.tail())
	}

	src := queryStrings(t, db.Pool, `SELECT id::text FROM src`)
	dst := queryStrings(t, db.Pool, `SELECT id::text FROM dst`)
	dead := queryStrings(t, db.Pool, `SELECT payload->>'id' FROM dlq`)
	report(t, name, start, account(src, dst, dead))
	require.ElementsMatch(t, queryStrings(t, db.Pool, `SELECT id::text FROM src WHERE `+poisonWhere), dead,
		"exactly the poison rows are dead letters")
	_, want := orderedMD5(t, db.Pool, `SELECT * FROM src WHERE NOT (`+poisonWhere+`)`)
	_, got := orderedMD5(t, db.Pool, `SELECT * FROM dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
