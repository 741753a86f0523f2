package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pgcdc/cdctest"
	"github.com/agentetl/agentetl/internal/testpg"
)

// writeCDCConfig writes a postgres_cdc → postgres pipeline that keeps
// changes in order (one pipeline thread, one batch in flight).
func writeCDCConfig(t *testing.T, dsn, slot, pub, src, dst, store string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cdc.yaml")
	body := "http:\n  enabled: false\n" + cdctest.Pipeline(dsn, slot, pub, src, dst, store) + "logger:\n  level: INFO\n  format: logfmt\n"
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

// TestCDCKillAndRestart is the CDC must-show with a real engine process:
// 50,000 mixed inserts, updates (some changing the key) and deletes on top
// of a 10,000-row snapshot stream into a target table; the engine is
// SIGKILLed in the middle and restarted on the same slot while the load
// goes on. The target must end identical to the source.
func TestCDCKillAndRestart(t *testing.T) {
	testStart := time.Now()
	db := testpg.NewLogicalSchema(t)
	ctx := context.Background()
	src, dst := db.Schema+".src", db.Schema+".dst"
	db.Exec(t, fmt.Sprintf(cdctest.SourceDDL, src))
	db.Exec(t, `CREATE TABLE `+dst+` (LIKE `+src+` INCLUDING ALL)`)
	require.NoError(t, cdctest.Preload(ctx, db.Pool, src, 10_000))
	slot, pub := cdctest.Names(t, "cdc_e_")
	cfg := writeCDCConfig(t, testpg.LogicalDSN(t), slot, pub, src, dst, "sqlite://"+filepath.Join(t.TempDir(), "store.db"))

	p1 := startAgent(t, 90*time.Second, nil, "run", cfg)
	require.Eventually(t, func() bool {
		return db.Int(t, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active`, slot) == 1 || p1.exited()
	}, 60*time.Second, 20*time.Millisecond, "slot never became active\n%s", p1.output())
	require.False(t, p1.exited(), "engine exited early\n%s", p1.output())

	var progress atomic.Int64
	workDone := make(chan error, 1)
	var changes int
	go func() {
		var err error
		changes, err = cdctest.Workload{Table: src, Preloaded: 10_000, Changes: 50_000, Seed: 7,
			Progress: func(n int) {
				progress.Store(int64(n))
				time.Sleep(time.Millisecond) // a steady load, so the kill lands mid-stream
			}}.Run(ctx, db.Pool)
		workDone <- err
	}()

	// Kill once the load is well under way and the target has taken part
	// of it.
	before := db.Int(t, `SELECT count(*) FROM `+dst)
	require.Eventually(t, func() bool {
		return progress.Load() >= 20_000 && strings.Contains(p1.output(), "Initial snapshot done: 10000 rows") &&
			db.Int(t, `SELECT count(*) FROM `+dst) != before
	}, 60*time.Second, 10*time.Millisecond, "the load or the engine did not progress\n%s", p1.output())
	p1.kill(t)
	atKill := progress.Load()
	t.Logf("SIGKILL after %s with %d of 50000 changes made", time.Since(testStart).Round(time.Millisecond), atKill)
	require.Less(t, atKill, int64(50_000), "the load finished before the kill")

	p2 := startAgent(t, 90*time.Second, nil, "run", cfg)
	require.NoError(t, <-workDone)
	srcCount, srcSum := db.Checksum(t, src)
	require.Eventually(t, func() bool {
		_, sum := db.Checksum(t, dst)
		return sum == srcSum || p2.exited()
	}, 60*time.Second, 200*time.Millisecond, "target never matched the source\n%s", p2.output())
	require.False(t, p2.exited(), "restarted engine exited\n%s", p2.output())
	t.Logf("%d changes; target identical %s after the test started (%d rows)", changes, time.Since(testStart).Round(time.Millisecond), srcCount)
	p2.kill(t)

	dstCount, dstSum := db.Checksum(t, dst)
	require.Equal(t, srcCount, dstCount, "row count")
	require.Equal(t, srcSum, dstSum, "content checksum")
	require.GreaterOrEqual(t, changes, 50_000)
	out := p2.output()
	require.NotContains(t, out, "Created replication slot", "the restart reuses the slot")
	require.NotContains(t, out, "Initial snapshot done", "the finished snapshot is not taken again")
	require.Contains(t, out, "Streaming changes of slot "+slot)
	require.NotContains(t, strings.ToLower(out), "level=error")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "Streaming changes") {
			t.Logf("restart: %s", line)
		}
	}
}

// A table whose deletes cannot be identified stops the run with the fix.
func TestCDCUnsupportedReplicaIdentityStopsTheRun(t *testing.T) {
	db := testpg.NewLogicalSchema(t)
	src := db.Schema + ".keyless"
	db.Exec(t, `CREATE TABLE `+src+` (a int, b text)`)
	db.Exec(t, `CREATE TABLE `+db.Schema+`.dst (a int PRIMARY KEY, b text)`)
	slot, pub := cdctest.Names(t, "cdc_e_")
	cfg := writeCDCConfig(t, testpg.LogicalDSN(t), slot, pub, src, db.Schema+".dst", "sqlite://"+filepath.Join(t.TempDir(), "store.db"))
	code, out, _ := runAgent(t, 60*time.Second, nil, "run", cfg)
	require.NotEqual(t, 0, code)
	require.Contains(t, out, "has no primary key")
	require.Contains(t, out, "REPLICA IDENTITY FULL")
}
