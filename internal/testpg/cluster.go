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
	c, err := StartCluster("wal_level=logical", "max_replication_slots=40", "max_wal_senders=40",
		"shared_buffers=64MB", "max_connections=100")
	if err != nil {
		return "", nil, err
	}
	return c.DSN(), c.Stop, nil
}

// Cluster is a private PostgreSQL server in a temporary directory, on a
// free loopback port, that a test may restart or stop without touching
// the shared server. It is tuned for tests (no fsync).
type Cluster struct {
	bin, dir, data string
	port           int
	asPostgres     bool
}

// StartCluster initialises and starts a cluster with the given extra
// settings ("name=value"). As root, it belongs to and runs as the postgres
// system user (initdb refuses root).
func StartCluster(settings ...string) (*Cluster, error) {
	c := &Cluster{asPostgres: os.Geteuid() == 0}
	for _, d := range serverBinDirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			c.bin = d
			break
		}
	}
	if c.bin == "" {
		p, err := exec.LookPath("initdb")
		if err != nil {
			return nil, fmt.Errorf("no initdb found")
		}
		c.bin = filepath.Dir(p)
	}
	var err error
	if c.dir, err = os.MkdirTemp("", "agentetl-testpg-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(c.dir)
		}
	}()
	if err := os.Chmod(c.dir, 0o700); err != nil {
		return nil, err
	}
	if c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres system user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	c.data = filepath.Join(c.dir, "data")
	if err := c.run("initdb", "-D", c.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off", c.port, c.dir)
	for _, s := range settings {
		opts += " -c " + s
	}
	if err := c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// DSN connects to the cluster's postgres database as postgres.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Restart stops the server with mode (fast or immediate) and starts it
// again with the same settings.
func (c *Cluster) Restart(mode string) error {
	return c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "-m", mode, "restart")
}

// Stop stops the server at once and removes its directory.
func (c *Cluster) Stop() {
	_ = c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "-t", "30", "stop")
	_ = os.RemoveAll(c.dir)
}

// run runs a server program of the cluster's installation, as its owner.
func (c *Cluster) run(prog string, args ...string) error {
	argv := append([]string{filepath.Join(c.bin, prog)}, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--"}, argv...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", prog, err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
