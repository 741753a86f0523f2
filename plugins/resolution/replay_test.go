package resolution_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/plugins/resolution"
)

// Dead letters are replayed through their pipeline after a fix; replaying
// twice does not duplicate rows; a record that still fails is dead-lettered
// again and its old entry is marked replayed, so source = target + pending.
func TestReplayDeadLettersTwiceDoesNotDuplicate(t *testing.T) {
	db := testpg.NewSchema(t)
	seedBadLoad(t, db, 4000)
	pipeline := loadYAML(db.DSN, "src", "dst", "dlq", "insert", "")
	_, err := runStream(t, 60*time.Second, pipeline)
	require.NoError(t, err)
	require.Equal(t, int64(40), db.Int(t, `SELECT count(*) FROM dlq`))
	pending := func() int64 { return db.Int(t, `SELECT count(*) FROM dlq WHERE replayed_at IS NULL`) }
	invariant := func() {
		require.Equal(t, db.Int(t, `SELECT count(*) FROM src`), db.Int(t, `SELECT count(*) FROM dst`)+pending(),
			"source = target + pending dead letters")
	}
	invariant()

	// Fix the cause of the over-long names, then replay that fingerprint.
	fp := db.String(t, `SELECT fingerprint FROM dlq WHERE code = '22001' LIMIT 1`)
	tooLong := db.Int(t, `SELECT count(*) FROM dlq WHERE fingerprint = $1`, fp)
	require.Equal(t, int64(10), tooLong)
	db.Exec(t, `ALTER TABLE dst ALTER COLUMN name TYPE varchar(100)`)
	ctx := context.Background()
	opts := resolution.ReplayOptions{DLQ: db.DSN, DLQTable: "dlq", Fingerprint: fp, ConfigYAML: pipeline, Chunk: 4}
	res, err := resolution.ReplayDeadLetters(ctx, opts)
	require.NoError(t, err)
	require.Equal(t, 10, res.Replayed)
	require.Equal(t, int64(3960+10), db.Int(t, `SELECT count(*) FROM dst`))
	require.Zero(t, db.Int(t, `SELECT count(*) FROM dlq WHERE fingerprint = $1 AND replayed_at IS NULL`, fp))
	invariant()

	// Twice: nothing is sent again.
	res, err = resolution.ReplayDeadLetters(ctx, opts)
	require.NoError(t, err)
	require.Zero(t, res.Replayed)
	require.Equal(t, int64(3970), db.Int(t, `SELECT count(*) FROM dst`))
	require.Zero(t, db.Int(t, `SELECT count(*) FROM (SELECT code FROM dst GROUP BY code HAVING count(*) > 1) d`))

	// The check violations are not fixed: replaying them dead-letters them
	// again under new ids; the old entries are marked replayed.
	before := pending()
	opts.Fingerprint = ""
	res, err = resolution.ReplayDeadLetters(ctx, opts)
	require.NoError(t, err)
	require.Equal(t, int(before), res.Replayed)
	require.Equal(t, before, pending(), "what still fails is pending again")
	require.Equal(t, int64(3970), db.Int(t, `SELECT count(*) FROM dst`))
	invariant()
	require.Equal(t, before, db.Int(t, `SELECT count(*) FROM dlq WHERE replayed_at IS NULL AND metadata ? 'dead_letter_id'`))
}
