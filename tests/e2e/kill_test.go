package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

const (
	killRows     = 300_000
	killPageSize = 2000
)

// killPosition is the checkpoint value written by the postgres input.
type killPosition struct {
	Key     string `json:"key"`
	KeyType uint32 `json:"keyType"`
	Page    int    `json:"page"`
}

// TestKillAndResume copies a 300k-row table with the example pipeline,
// SIGKILLs the copy twice (the second time while it is resuming from the
// first kill's checkpoint) and then lets a final run finish. The target
// must end up identical to the source, and at every kill the checkpoint
// must never be ahead of what the target durably holds.
func TestKillAndResume(t *testing.T) {
	testStart := time.Now()
	db := testpg.NewSchema(t)
	src, dst := db.Schema+".src", db.Schema+".dst"

	setup := time.Now()
	db.Exec(t, `CREATE TABLE `+src+` (id bigint PRIMARY KEY, name text, email text, created_at timestamptz,
		amount numeric(12,2), qty int, active boolean, note text)`)
	// NULLs in every nullable column, '' next to NULL, negative and
	// fractional numerics up to the type's limits, non-ASCII and control
	// characters, sub-second timestamps.
	db.Exec(t, fmt.Sprintf(`INSERT INTO %s
		SELECT g,
		  CASE WHEN g %% 7 = 0 THEN NULL ELSE 'cüstømer ✓ ' || g END,
		  CASE WHEN g %% 29 = 0 THEN NULL ELSE 'user' || g || '@exämple.com' END,
		  CASE WHEN g %% 11 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00:00.123456+00' + g * interval '1.000001 second' END,
		  CASE WHEN g %% 13 = 0 THEN NULL
		       WHEN g %% 1000 = 3 THEN -9999999999.99
		       WHEN g %% 1000 = 4 THEN 9999999999.99
		       ELSE ((g %% 200000) - 100000) / 100.0 END,
		  CASE WHEN g %% 17 = 0 THEN NULL ELSE g %% 1000 - 500 END,
		  CASE WHEN g %% 19 = 0 THEN NULL ELSE g %% 2 = 0 END,
		  CASE WHEN g %% 5 = 0 THEN NULL WHEN g %% 5 = 1 THEN ''
		       ELSE md5(g::text) || ' 日本語 🚀 "q" '' \ ' || chr(9) || 'x' || chr(10) || 'y' END
		FROM generate_series(1, %d) g`, src, killRows))
	db.Exec(t, `ANALYZE `+src)
	db.Exec(t, `CREATE TABLE `+dst+` (LIKE `+src+` INCLUDING ALL)`)
	srcCount, srcSum := db.Checksum(t, src)
	require.EqualValues(t, killRows, srcCount)
	require.EqualValues(t, killRows/7, db.Int(t, `SELECT count(*) FROM `+src+` WHERE name IS NULL`), "fixture has NULLs")
	require.Positive(t, db.Int(t, `SELECT count(*) FROM `+src+` WHERE amount < 0 AND amount <> trunc(amount)`), "fixture has negative fractional numerics")
	t.Logf("fixture: %d rows in %s (%s)", srcCount, src, time.Since(setup).Round(time.Millisecond))

	storeDSN := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	checkpointID := "pg2pg:" + src + ":" + dst
	env := func(logLevel string) map[string]string {
		return map[string]string{
			"SOURCE_DSN": testpg.DSN(), "SOURCE_TABLE": src,
			"TARGET_DSN": testpg.DSN(), "TARGET_TABLE": dst,
			"STORE_DSN": storeDSN, "PAGE_SIZE": strconv.Itoa(killPageSize),
			"LOG_LEVEL": logLevel,
		}
	}
	count := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var n int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM `+dst).Scan(&n))
		return n
	}

	// Each round starts where the previous one left the target and the
	// store; the second round is itself a resumed run.
	rounds := []struct{ lo, hi float64 }{{0.20, 0.80}, {0.55, 0.90}}
	var prevKey int64
	for i, r := range rounds {
		lo, hi := int64(r.lo*killRows), int64(r.hi*killRows)
		logLevel := "WARN"
		if i > 0 {
			// INFO only for resumed runs: the resume line proves the run
			// started from the checkpoint rather than from scratch.
			logLevel = "INFO"
		}
		roundStart := time.Now()
		p := startAgent(t, 60*time.Second, env(logLevel), "run", exampleConfig())
		var seen int64
		for {
			if p.exited() {
				require.FailNowf(t, "agentetl finished before it could be killed",
					"round %d: the process exited (code %d) after %s with %d of %d rows in the target, before the kill window [%d, %d]; make the table bigger\n%s",
					i+1, p.cmd.ProcessState.ExitCode(), p.elapsed, count(), killRows, lo, hi, p.output())
			}
			seen = count()
			if seen >= lo {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.kill(t)
		atKill := count()
		t.Logf("round %d: SIGKILL after %s when the target had %d rows; %d rows (%.1f%%) after the process died",
			i+1, time.Since(roundStart).Round(time.Millisecond), seen, atKill, 100*float64(atKill)/killRows)
		require.LessOrEqualf(t, seen, hi, "round %d: the target already had %d rows (> %d) when first seen past %d: polling missed the kill window", i+1, seen, hi, lo)
		require.Less(t, atKill, int64(killRows), "round %d: the copy completed before the kill landed", i+1)

		if i > 0 {
			out := strings.ReplaceAll(p.stdout.String()+p.stderr.String(), `\"`, `"`)
			require.Containsf(t, out, fmt.Sprintf(`Resuming %s from checkpoint "%s" at {"key":"%d"`, src, checkpointID, prevKey),
				"round %d did not resume from the stored checkpoint\n%s", i+1, p.output())
		}

		// Batches are written in one transaction each and pages hold
		// contiguous ids, so only whole pages can be in the target.
		require.Zerof(t, atKill%killPageSize, "round %d: %d rows in the target is not a whole number of %d-row pages: a batch was partly committed", i+1, atKill, killPageSize)
		// Whatever is there is a faithful copy of the source rows.
		_, partSum := db.Checksum(t, `(SELECT * FROM `+dst+`)`)
		_, wantSum := db.Checksum(t, `(SELECT s.* FROM `+src+` s WHERE s.id IN (SELECT id FROM `+dst+`))`)
		require.Equal(t, wantSum, partSum, "round %d: rows in the target at kill time differ from the source", i+1)

		raw, found := getCheckpoint(t, storeDSN, checkpointID)
		require.Truef(t, found, "round %d: no checkpoint %q stored after %d rows were written", i+1, checkpointID, atKill)
		var pos killPosition
		require.NoError(t, json.Unmarshal([]byte(raw), &pos), "checkpoint %q", raw)
		key, err := strconv.ParseInt(pos.Key, 10, 64)
		require.NoError(t, err, "checkpoint key in %q", raw)
		t.Logf("round %d: checkpoint %s", i+1, raw)
		require.EqualValues(t, 20, pos.KeyType, "checkpoint key type is bigint (oid 20)")
		require.Positive(t, key)
		require.Zero(t, key%killPageSize, "checkpoint %s is not at a page boundary", raw)
		require.Equal(t, int(key/killPageSize), pos.Page, "checkpoint %s: page number does not match the key", raw)
		require.GreaterOrEqual(t, key, prevKey, "checkpoint moved backwards")
		require.LessOrEqual(t, key, atKill, "checkpoint %s is ahead of the %d rows in the target", raw, atKill)
		// Never ahead of the data: every row up to the checkpoint is there.
		require.Equal(t, key, db.Int(t, `SELECT count(*) FROM `+dst+` WHERE id <= $1`, key),
			"checkpoint %s claims rows the target does not hold", raw)
		prevKey = key
	}

	p := startAgent(t, 60*time.Second, env("INFO"), "run", exampleConfig())
	code := p.waitExit(t)
	t.Logf("final run: exit %d after %s", code, p.elapsed.Round(time.Millisecond))
	require.Equal(t, 0, code, "final run must finish cleanly\n%s", p.output())
	out := strings.ReplaceAll(p.stdout.String()+p.stderr.String(), `\"`, `"`)
	require.Containsf(t, out, fmt.Sprintf(`Resuming %s from checkpoint "%s" at {"key":"%d"`, src, checkpointID, prevKey),
		"final run did not resume from the stored checkpoint\n%s", p.output())
	require.Containsf(t, out, fmt.Sprintf("Finished reading %s: %d rows", src, killRows-prevKey),
		"final run should read exactly the rows after the checkpoint\n%s", p.output())

	dstCount, dstSum := db.Checksum(t, dst)
	require.EqualValues(t, killRows, dstCount, "target row count")
	require.Equal(t, srcSum, dstSum, "target content checksum differs from the source")
	require.Zero(t, db.Int(t, `SELECT count(*) - count(DISTINCT id) FROM `+dst), "duplicate ids in the target")
	require.Zero(t, db.Int(t, `SELECT count(*) FROM `+src+` s FULL JOIN `+dst+` d USING (id) WHERE s.id IS NULL OR d.id IS NULL`),
		"ids missing on one side")

	raw, found := getCheckpoint(t, storeDSN, checkpointID)
	require.True(t, found)
	var pos killPosition
	require.NoError(t, json.Unmarshal([]byte(raw), &pos))
	require.Equal(t, killPosition{Key: strconv.Itoa(killRows), KeyType: 20, Page: killRows / killPageSize}, pos,
		"final checkpoint is the last key")
	t.Logf("total %s", time.Since(testStart).Round(time.Millisecond))
}
