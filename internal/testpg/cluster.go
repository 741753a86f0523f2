package testpg

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Change data capture tests need a server of their own. Creating a logical
// replication slot waits until every transaction running anywhere on the
// server has ended; on the shared server, other test packages hold
// transactions open on purpose (the fault suite's gates, slow
// destinations), so a slot could wait for minutes. LogicalDSN starts one
// private PostgreSQL cluster per test process, with wal_level=logical, on a
// free loopback port, and StopClusters (called from TestMain) stops it.

var logical struct {
	once sync.Once
	dsn  string
	err  error
	stop func()
}

// serverBinDirs are where Debian and upstream packages put initdb and
// pg_ctl; PATH is tried last.
var serverBinDirs = []string{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin", "/usr/local/pgsql/bin"}

// LogicalDSN returns the DSN of the test process's private cluster with
// wal_level=logical, starting it on first use. When no private cluster can
// be started (no server binaries, or neither root nor the postgres user),
// it falls back to PG_DSN if that server has wal_level=logical.
func LogicalDSN(t testing.TB) string {
	t.Helper()
	logical.once.Do(func() { logical.dsn, logical.stop, logical.err = startLogicalCluster() })
	if logical.err == nil {
		return logical.dsn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, DSN())
	require.NoError(t, err, "PostgreSQL at PG_DSN must be reachable for integration tests")
	defer c.Close(context.Background())
	var level string
	require.NoError(t, c.QueryRow(ctx, "SHOW wal_level").Scan(&level))
	require.Equal(t, "logical", level, "no private cluster (%v) and PG_DSN has wal_level=%s: change data capture tests need wal_level=logical", logical.err, level)
	t.Logf("no private cluster (%v): using PG_DSN; slot creation may wait for other tests' transactions", logical.err)
	return DSN()
}

// NewLogicalSchema is NewSchema on the LogicalDSN server.
func NewLogicalSchema(t testing.TB) *DB {
	t.Helper()
	return NewSchemaOn(t, LogicalDSN(t))
}

// StopClusters stops the private clusters this process started. Call it
// from TestMain after m.Run.
func StopClusters() {
	if logical.stop != nil {
		logical.stop()
	}
}

func startLogicalCluster() (dsn string, stop func(), err error) {
	bin := ""
	for _, d := range serverBinDirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			bin = d
			break
		}
	}
	if bin == "" {
		p, err := exec.LookPath("initdb")
		if err != nil {
			return "", nil, fmt.Errorf("no initdb found")
		}
		bin = filepath.Dir(p)
	}
	// initdb refuses to run as root: as root, the cluster belongs to and
	// runs as the postgres system user.
	var uid, gid = -1, -1
	run := func(args ...string) *exec.Cmd { return exec.Command(args[0], args[1:]...) }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, fmt.Errorf("running as root needs a postgres system user: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		run = func(args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
	}
	dir, err := os.MkdirTemp("", "agentetl-testpg-")
	if err != nil {
		return "", nil, err
	}
	cleanupDir := func() { _ = os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o700); err != nil {
		cleanupDir()
		return "", nil, err
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			cleanupDir()
			return "", nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		cleanupDir()
		return "", nil, err
	}
	data := filepath.Join(dir, "data")
	if out, err := run(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		cleanupDir()
		return "", nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=40 -c max_wal_senders=40 "+
		"-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c shared_buffers=64MB -c max_connections=100", port, dir)
	if out, err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		cleanupDir()
		return "", nil, fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	stop = func() {
		_ = run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "-t", "30", "stop").Run()
		cleanupDir()
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), stop, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
