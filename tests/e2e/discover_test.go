package e2e_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

// TestDiscoverCLI drives `agentetl discover` end to end: the JSON keys the
// README documents, then a column rename reported as a rename by --changes.
func TestDiscoverCLI(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE customers (id bigint PRIMARY KEY, email text, signup date)`)
	db.Exec(t, `COMMENT ON COLUMN customers.email IS 'primary contact address'`)
	db.Exec(t, `INSERT INTO customers SELECT g, 'user' || g || '@example.com', date '2024-01-01' + g FROM generate_series(1, 500) g`)
	db.Exec(t, `ANALYZE customers`)
	store := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	include := db.Schema + ".*"

	code, stdout, _ := runAgentSplit(t, 60*time.Second, "discover", "--dsn", testpg.DSN(), "--include", include, "--store", store)
	require.Equal(t, 0, code, stdout)
	var tables []struct {
		Table  string `json:"table"`
		Schema struct {
			Fields []struct {
				Name, DataType, Description string
				Nullable                    bool
			} `json:"fields"`
		} `json:"schema"`
		Stats struct {
			RowCount int64 `json:"rowCount"`
			Fields   map[string]struct {
				NullFraction  float64         `json:"nullFraction"`
				DistinctCount int64           `json:"distinctCount"`
				Min           any             `json:"min"`
				Max           any             `json:"max"`
				TopValues     json.RawMessage `json:"topValues"`
				SemanticType  string          `json:"semanticType"`
			} `json:"fields"`
		} `json:"stats"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &tables), stdout)
	require.Len(t, tables, 1)
	require.Equal(t, db.Schema+".customers", tables[0].Table)
	require.Equal(t, int64(500), tables[0].Stats.RowCount)
	require.Len(t, tables[0].Schema.Fields, 3)
	require.Equal(t, "primary contact address", tables[0].Schema.Fields[1].Description)
	email := tables[0].Stats.Fields["email"]
	require.Equal(t, int64(500), email.DistinctCount)
	require.Equal(t, "email", email.SemanticType)
	require.Zero(t, email.NullFraction)
	signup := tables[0].Stats.Fields["signup"]
	require.Contains(t, signup.Min, "2024-01-02")
	require.Contains(t, signup.Max, "2025-05-15")

	db.Exec(t, `ALTER TABLE customers RENAME COLUMN email TO email_address`)
	code, stdout, _ = runAgentSplit(t, 60*time.Second, "discover", "--dsn", testpg.DSN(), "--include", include, "--store", store, "--changes")
	require.Equal(t, 0, code, stdout)
	var changes []struct {
		ChangeType, Severity, Column, PreviousColumn string
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &changes), stdout)
	require.Len(t, changes, 1, stdout)
	require.Equal(t, "column_renamed", changes[0].ChangeType)
	require.Equal(t, "breaking", changes[0].Severity)
	require.Equal(t, "email_address", changes[0].Column)
	require.Equal(t, "email", changes[0].PreviousColumn)
}

// TestDiscoverExampleRuns runs configs/examples/discover-postgres.yaml for
// real, publishing to the system NATS: lint and unit tests do not build every
// component, and an output that fails to initialise only shows up here.
func TestDiscoverExampleRuns(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE items (id int PRIMARY KEY, label text)`)
	db.Exec(t, `INSERT INTO items SELECT g, 'l' || g FROM generate_series(1, 20) g`)
	dir := t.TempDir()
	env := map[string]string{
		"SOURCE_DSN":       testpg.DSN(),
		"DISCOVER_INCLUDE": db.Schema + ".*",
		"STORE_DSN":        "sqlite://" + filepath.Join(dir, "store.db"),
		"ALERT_FILE":       filepath.Join(dir, "alerts.jsonl"),
		"BUS_URL":          "nats://127.0.0.1:4222",
		"LOG_LEVEL":        "WARN",
	}
	root, err := testutil.ModuleRoot()
	require.NoError(t, err)
	p := startAgent(t, 60*time.Second, env, "run", filepath.Join(root, "configs/examples/discover-postgres.yaml"))
	code := p.waitExit(t)
	require.Equal(t, 0, code, p.output())
	require.Contains(t, p.stdout.String(), `"table":"`+db.Schema+`.items"`)
}
