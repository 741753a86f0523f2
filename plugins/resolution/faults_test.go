package resolution_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/testpg"
)

// seedClean creates src with n good rows and an empty dst keyed on id.
func seedClean(t *testing.T, db *testpg.DB, n int) {
	db.Exec(t, `CREATE TABLE src (id bigint PRIMARY KEY, name text, qty int, note text)`)
	db.Exec(t, `INSERT INTO src SELECT g, 'customer ' || g, g % 1000, md5(g::text) FROM generate_series(1, $1) g`, n)
}

const dstDDL = `CREATE TABLE dst (id bigint PRIMARY KEY, name text, qty int, note text)`

func faultYAML(srcDSN, dstDSN, store, extra string) string {
	return fmt.Sprintf(`
input:
  postgres:
    dsn: %[1]q
    table: src
    page_size: 1000
output:
  error_resolution:
    pipeline_id: faults
    store: %[3]q
    retry:
      max_attempts: 40
      initial_interval: 50ms
      max_interval: 1s
      max_elapsed: 30s
    output:
      postgres:
        dsn: %[2]q
        table: dst
        mode: upsert
    dead_letter:
      postgres:
        dsn: %[2]q
        table: dlq
%[4]s
logger:
  level: WARN
`, srcDSN, dstDSN, store, extra)
}

// waitRows waits until the destination holds at least n rows.
func waitRows(t *testing.T, dsn string, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			var got int64
			err = conn.QueryRow(context.Background(), `SELECT count(*) FROM dst`).Scan(&got)
			conn.Close(context.Background())
			if err == nil && got >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("destination did not reach %d rows within %s", n, timeout)
}

func requireFullCopy(t *testing.T, src *testpg.DB, dstDSN string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dstDSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var rows, distinct int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM dst`).Scan(&rows, &distinct))
	require.Equal(t, src.Int(t, `SELECT count(*) FROM src`), rows, "full row count")
	require.Equal(t, rows, distinct, "no duplicates")
	var dlq *string
	require.NoError(t, conn.QueryRow(ctx, `SELECT to_regclass('dlq')::text`).Scan(&dlq))
	if dlq != nil {
		var n int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM dlq`).Scan(&n))
		require.Zero(t, n, "a transient fault never dead-letters good rows")
	}
	var sum string
	require.NoError(t, conn.QueryRow(ctx, `SELECT md5(string_agg(md5(x::text), '' ORDER BY x.id)) FROM dst x`).Scan(&sum))
	require.Equal(t, src.String(t, `SELECT md5(string_agg(md5(x::text), '' ORDER BY x.id)) FROM src x`), sum, "same content")
}

// The writer's connection is terminated with pg_terminate_backend in the
// middle of the load, several times; the load ends complete, without
// duplicates and without dead letters.
func TestTransientTerminateBackend(t *testing.T) {
	db := testpg.NewSchema(t)
	seedClean(t, db, 60_000)
	db.Exec(t, dstDDL)
	dst := testpg.WithParam(db.DSN, "application_name", "er_fault_writer")
	store := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	done := make(chan error, 1)
	go func() {
		_, err := runStream(t, 90*time.Second, faultYAML(db.DSN, dst, store, ""))
		done <- err
	}()
	killed := 0
	for _, at := range []int64{5_000, 20_000, 40_000} {
		waitRows(t, db.DSN, at, 30*time.Second)
		n := db.Int(t, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'er_fault_writer' AND pid <> pg_backend_pid()`)
		killed += int(n)
	}
	require.NoError(t, <-done)
	require.Positive(t, killed, "writer connections were terminated")
	requireFullCopy(t, db, db.DSN)
	// The retries are in the fingerprint history as successful.
	st, err := metastore.Open(context.Background(), store)
	require.NoError(t, err)
	defer st.Close()
	stats, err := st.ListFingerprintStats(context.Background(), metastore.FingerprintFilter{Category: "connection"})
	require.NoError(t, err)
	require.NotEmpty(t, stats)
	var ok int64
	for _, s := range stats {
		ok += s.Strategies[model.StrategyRetry].Successes
	}
	require.Positive(t, ok, "retries resolved the terminated connections")
}

// A lock held on the target makes the writer's COPY hit statement_timeout;
// the timeouts are retried with backoff until the lock goes away.
func TestTransientStatementTimeout(t *testing.T) {
	db := testpg.NewSchema(t)
	seedClean(t, db, 30_000)
	db.Exec(t, dstDDL)
	dst := testpg.WithParam(db.DSN, "statement_timeout", "200")
	store := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	done := make(chan error, 1)
	go func() {
		_, err := runStream(t, 90*time.Second, faultYAML(db.DSN, dst, store, ""))
		done <- err
	}()
	waitRows(t, db.DSN, 3_000, 30*time.Second)
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE dst IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, <-done)
	requireFullCopy(t, db, db.DSN)
	st, err := metastore.Open(ctx, store)
	require.NoError(t, err)
	defer st.Close()
	stats, err := st.ListFingerprintStats(ctx, metastore.FingerprintFilter{Category: "timeout"})
	require.NoError(t, err)
	require.NotEmpty(t, stats, "the statement timeouts were seen")
	require.Positive(t, stats[0].Strategies[model.StrategyRetry].Successes, "and resolved by retrying")
}

// privateCluster is a PostgreSQL server of our own, in a temp dir, that the
// test may stop and start.
type privateCluster struct {
	bin, dir, data string
	port           int
}

func (c *privateCluster) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func (c *privateCluster) run(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
	if os.Geteuid() != 0 {
		cmd = exec.Command(args[0], args[1:]...)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%v: %s", args, out)
}

func (c *privateCluster) start(t *testing.T) {
	c.run(t, filepath.Join(c.bin, "pg_ctl"), "-D", c.data, "-l", filepath.Join(c.dir, "log"), "-w", "-t", "30",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", c.port, c.dir), "start")
}

func (c *privateCluster) stop(t *testing.T, mode string) {
	c.run(t, filepath.Join(c.bin, "pg_ctl"), "-D", c.data, "-w", "-t", "30", "-m", mode, "stop")
}

func startPrivateCluster(t *testing.T) *privateCluster {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin"
	_, err := os.Stat(filepath.Join(bin, "initdb"))
	require.NoError(t, err, "PostgreSQL 15 server binaries are needed to stop and start a destination")
	dir, err := os.MkdirTemp("", "agentetl-pgcluster-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: the cluster belongs to postgres.
		u, err := user.Lookup("postgres")
		require.NoError(t, err, "a postgres system user is needed to run a private cluster as root")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	c := &privateCluster{bin: bin, dir: dir, data: filepath.Join(dir, "data"), port: port}
	c.run(t, filepath.Join(bin, "initdb"), "-D", c.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	c.start(t)
	t.Cleanup(func() {
		cmd := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(bin, "pg_ctl"), "-D", c.data, "-m", "immediate", "-w", "stop")
		if os.Geteuid() != 0 {
			cmd = exec.Command(filepath.Join(bin, "pg_ctl"), "-D", c.data, "-m", "immediate", "-w", "stop")
		}
		_ = cmd.Run()
	})
	return c
}

// The destination server is stopped in the middle of the load and started
// again two seconds later; the load waits it out and completes.
func TestTransientStoppedDestination(t *testing.T) {
	src := testpg.NewSchema(t)
	seedClean(t, src, 40_000)
	cluster := startPrivateCluster(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cluster.dsn())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, dstDDL)
	require.NoError(t, err)
	conn.Close(ctx)

	done := make(chan error, 1)
	go func() {
		_, err := runStream(t, 120*time.Second, faultYAML(src.DSN, cluster.dsn(), "", ""))
		done <- err
	}()
	waitRows(t, cluster.dsn(), 5_000, 30*time.Second)
	cluster.stop(t, "fast")
	time.Sleep(2 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("the load ended while its destination was down: %v", err)
	default:
	}
	cluster.start(t)
	require.NoError(t, <-done)
	// Compare with the source from the destination's side.
	conn, err = pgx.Connect(ctx, cluster.dsn())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var rows, distinct int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM dst`).Scan(&rows, &distinct))
	require.Equal(t, src.Int(t, `SELECT count(*) FROM src`), rows, "full row count")
	require.Equal(t, rows, distinct, "no duplicates")
	var dlq *string
	require.NoError(t, conn.QueryRow(ctx, `SELECT to_regclass('dlq')::text`).Scan(&dlq))
	require.Nil(t, dlq, "nothing was dead-lettered")
}
