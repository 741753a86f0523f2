package discovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
)

func TestUnreachableSourceErrorIsClearAndRedacted(t *testing.T) {
	for _, tc := range []struct{ dsn, shown string }{
		{"postgres://alice:s3cr3t-pw@127.0.0.1:1/sales?sslmode=disable&connect_timeout=3", "postgres://alice:xxxxx@127.0.0.1:1/sales"},
		{"mysql://bob:s3cr3t-pw@127.0.0.1:1/sales?timeout=3s", "mysql://bob:xxxxx@127.0.0.1:1/sales"},
	} {
		store := newStore(t)
		a := newAgent(t, discovery.Config{DSN: tc.dsn}, store)
		_, err := a.Run(context.Background())
		require.Error(t, err)
		msg := err.Error()
		require.Contains(t, msg, tc.shown)
		require.Contains(t, msg, "connection refused")
		require.NotContains(t, msg, "s3cr3t-pw")
		var se *discovery.SourceError
		require.True(t, errors.As(err, &se))
		require.True(t, discovery.IsConnectionError(err), "an unreachable source is worth retrying: %v", err)
		require.False(t, discovery.IsPermanent(err))

		// The failed run is an agent decision too, without the secret.
		ds, err := store.ListAgentDecisions(context.Background(), metastore.DecisionFilter{AgentType: model.AgentDiscovery})
		require.NoError(t, err)
		require.Len(t, ds, 1)
		require.Equal(t, "failed", ds[0].Outcome)
		require.NotContains(t, ds[0].Reasoning, "s3cr3t-pw")
	}
}

func TestPermanentSourceErrors(t *testing.T) {
	ctx := context.Background()
	cases := map[string]string{
		"wrong password":  strings.Replace(mysqlServer(), "://root@", "://root:wrong-pw@", 1) + "/test",
		"unknown scheme":  "oracle://scott:tiger-pw@db:1521/orcl",
		"no scheme":       "just-some-text",
		"missing sqlite":  "sqlite://" + filepath.Join(t.TempDir(), "missing.db"),
		"missing dir":     "file://" + filepath.Join(t.TempDir(), "missing"),
		"unknown pg role": testpg.DSN() + "&user=no_such_role_disc",
	}
	for name, dsn := range cases {
		t.Run(name, func(t *testing.T) {
			a := newAgent(t, discovery.Config{DSN: dsn}, nil)
			_, err := a.Discover(ctx)
			require.Error(t, err)
			require.True(t, discovery.IsPermanent(err), "%v", err)
			require.False(t, discovery.IsConnectionError(err), "%v", err)
			require.NotContains(t, err.Error(), "wrong-pw")
			require.NotContains(t, err.Error(), "tiger-pw")
		})
	}
	_, err := discovery.OpenConnector(ctx, "oracle://x", discovery.ConnectorOptions{})
	require.ErrorIs(t, err, discovery.ErrUnsupported)
}

// TestPostgresTableWithoutPrivilegeIsSkipped connects as a role that may
// read one table but not the other.
func TestPostgresTableWithoutPrivilegeIsSkipped(t *testing.T) {
	db := testpg.NewSchema(t)
	role := testpg.RandName("disc_role_")
	qr := pgutil.QuoteIdent(role)
	db.Exec(t, "CREATE ROLE "+qr+" LOGIN")
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = db.Pool.Exec(ctx, "DROP OWNED BY "+qr)
		_, _ = db.Pool.Exec(ctx, "DROP ROLE "+qr)
	})
	db.Exec(t, "CREATE TABLE open_t (id int PRIMARY KEY, v text)")
	db.Exec(t, "INSERT INTO open_t SELECT g, 'v' || g FROM generate_series(1, 50) g")
	db.Exec(t, "CREATE TABLE secret_t (id int, salary numeric)")
	db.Exec(t, "GRANT USAGE ON SCHEMA "+pgutil.QuoteIdent(db.Schema)+" TO "+qr)
	db.Exec(t, "GRANT SELECT ON open_t TO "+qr)

	u, err := url.Parse(db.DSN)
	require.NoError(t, err)
	u.User = url.User(role)
	a := newAgent(t, discovery.Config{DSN: u.String(), Include: []string{db.Schema + ".*"}}, newStore(t))
	res := run(t, a)
	require.Len(t, res.Tables, 1)
	require.Equal(t, db.Schema+".open_t", res.Tables[0].Table)
	require.EqualValues(t, 50, res.Tables[0].Stats.RowCount)
	require.Len(t, res.Skipped, 1)
	require.Equal(t, db.Schema+".secret_t", res.Skipped[0].Table)
	require.Contains(t, res.Skipped[0].Reason, "permission denied")
	for _, c := range res.Changes {
		require.NotEqual(t, db.Schema+".secret_t", c.Table, "a skipped table is neither added nor removed")
	}
	// A second run must not take the skipped table for removed.
	res = run(t, a)
	require.Empty(t, res.Changes, describeChanges(res.Changes))
}

func TestMariaDBTableWithoutPrivilegeIsSkipped(t *testing.T) {
	db := newMySQL(t)
	user := testpg.RandName("dr")
	db.exec(t,
		"CREATE TABLE open_t (id INT PRIMARY KEY, v TEXT)", "INSERT INTO open_t VALUES (1, 'a'), (2, 'b')",
		"CREATE TABLE secret_t (id INT, salary DECIMAL(10,2))",
		"CREATE USER '"+user+"'@'%'",
		"GRANT SELECT ON `"+db.Name+"`.open_t TO '"+user+"'@'%'",
		// INSERT makes the table visible in information_schema, not readable.
		"GRANT INSERT ON `"+db.Name+"`.secret_t TO '"+user+"'@'%'",
	)
	t.Cleanup(func() { _, _ = db.DB.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	dsn := strings.Replace(db.DSN, "://root@", "://"+user+"@", 1)
	a := newAgent(t, discovery.Config{DSN: dsn}, nil)
	res, err := a.Discover(context.Background())
	require.NoError(t, err)
	require.Len(t, res.Tables, 1)
	require.Equal(t, db.Name+".open_t", res.Tables[0].Table)
	require.Len(t, res.Skipped, 1)
	require.Equal(t, db.Name+".secret_t", res.Skipped[0].Table)
	require.Contains(t, res.Skipped[0].Reason, "permission denied")
}

func TestPostgresSlowTableTimesOutAlone(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, "CREATE TABLE fast (id int)")
	db.Exec(t, "INSERT INTO fast VALUES (1), (2)")
	db.Exec(t, "CREATE VIEW slow AS SELECT pg_sleep(5)::text AS s")
	a := newAgent(t, discovery.Config{DSN: db.DSN, Include: []string{db.Schema + ".*"}, TableTimeout: 300 * time.Millisecond}, nil)
	start := time.Now()
	res, err := a.Discover(context.Background())
	require.NoError(t, err)
	require.Less(t, time.Since(start), 4*time.Second)
	require.Len(t, res.Tables, 1)
	require.Equal(t, db.Schema+".fast", res.Tables[0].Table)
	require.Len(t, res.Skipped, 1)
	require.Contains(t, res.Skipped[0].Reason, "timed out")
}

func TestEmptySourcesGiveEmptyResults(t *testing.T) {
	pg := testpg.NewSchema(t)
	my := newMySQL(t)
	dir := t.TempDir()
	sqlitePath := filepath.Join(dir, "empty.db")
	require.NoError(t, os.WriteFile(sqlitePath, nil, 0o644))
	files := filepath.Join(dir, "files")
	require.NoError(t, os.Mkdir(files, 0o755))
	for name, cfg := range map[string]discovery.Config{
		"postgres": {DSN: pg.DSN, Include: []string{pg.Schema + ".*"}},
		"mariadb":  {DSN: my.DSN},
		"sqlite":   {DSN: "sqlite://" + sqlitePath},
		"files":    {DSN: "file://" + files},
	} {
		t.Run(name, func(t *testing.T) {
			res := run(t, newAgent(t, cfg, newStore(t)))
			require.NotNil(t, res.Tables)
			require.Empty(t, res.Tables)
			require.Empty(t, res.Skipped)
			require.Empty(t, res.Changes)
			b, err := json.Marshal(res.Tables)
			require.NoError(t, err)
			require.Equal(t, "[]", string(b))
		})
	}
}
