package discovery_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/testpg"
)

// mysqlServer is the MariaDB/MySQL server under test (MYSQL_DSN, in the
// agent's mysql:// form, without a database).
func mysqlServer() string {
	if d := os.Getenv("MYSQL_DSN"); d != "" {
		return strings.TrimRight(d, "/")
	}
	return "mysql://root@127.0.0.1:3306"
}

// myDB is a randomly named database, dropped when the test ends.
type myDB struct {
	DSN  string // mysql:// DSN of the database
	Name string
	DB   *sql.DB
}

func newMySQL(t *testing.T) *myDB {
	t.Helper()
	name := testpg.RandName("disc_")
	drv, err := discovery.MySQLDriverDSN(mysqlServer() + "/")
	require.NoError(t, err)
	cfg, err := mysql.ParseDSN(drv)
	require.NoError(t, err)
	cfg.MultiStatements = true
	conn, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	admin := sql.OpenDB(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, admin.PingContext(ctx), "MariaDB/MySQL at %s must be reachable for integration tests", mysqlServer())
	_, err = admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4")
	require.NoError(t, err)
	cfg2 := cfg.Clone()
	cfg2.DBName = name
	conn2, err := mysql.NewConnector(cfg2)
	require.NoError(t, err)
	db := sql.OpenDB(conn2)
	t.Cleanup(func() {
		_ = db.Close()
		_, _ = admin.Exec("DROP DATABASE IF EXISTS `" + name + "`")
		_ = admin.Close()
	})
	return &myDB{DSN: mysqlServer() + "/" + name, Name: name, DB: db}
}

func (m *myDB) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		_, err := m.DB.Exec(s)
		require.NoError(t, err, s)
	}
}

// newStore opens a private SQLite metadata store.
func newStore(t *testing.T) metastore.Store {
	t.Helper()
	st, err := metastore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "meta.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newAgent(t *testing.T, cfg discovery.Config, store metastore.Store) *discovery.Agent {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := discovery.New(cfg, store)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func run(t *testing.T, a *discovery.Agent) *discovery.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := a.Run(ctx)
	require.NoError(t, err)
	return res
}

func table(t *testing.T, res *discovery.Result, name string) *discovery.SourceMetadata {
	t.Helper()
	for _, tb := range res.Tables {
		if tb.Table == name {
			return tb
		}
	}
	var names []string
	for _, tb := range res.Tables {
		names = append(names, tb.Table)
	}
	require.Failf(t, "table not discovered", "%s not in %v", name, names)
	return nil
}

func describeChanges(cs []discovery.SchemaChange) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "\n  %s %s %s<-%s %s (%.2f) %s", c.Table, c.ChangeType, c.Column, c.PreviousColumn, c.Severity, c.Confidence, c.Reasoning)
	}
	return b.String()
}
