package discovery_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/testpg"
)

func TestSQLiteDiscovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shop.db")
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	db.SetMaxOpenConns(1) // BEGIN and COMMIT on the same connection
	for _, s := range []string{
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, country TEXT, vip TEXT, signup_ms INTEGER)`,
		`CREATE TABLE "order lines" (order_id INTEGER, line INTEGER, customer_id INTEGER REFERENCES customers(id), price REAL, PRIMARY KEY (order_id, line))`,
		`CREATE VIEW big_spenders AS SELECT customer_id, sum(price) AS total FROM "order lines" GROUP BY customer_id`,
	} {
		_, err := db.Exec(s)
		require.NoError(t, err, s)
	}
	countries := []string{"DE", "FR", "US", "GB", "IT"}
	_, err = db.Exec("BEGIN")
	require.NoError(t, err)
	for i := 1; i <= 300; i++ {
		vip := "N"
		if i%4 == 0 {
			vip = "Y"
		}
		_, err := db.Exec(`INSERT INTO customers VALUES (?, ?, ?, ?, ?)`, i, fmt.Sprintf("c%d@shop.example", i), countries[i%5], vip, 1700000000000+int64(i)*86400000)
		require.NoError(t, err)
		_, err = db.Exec(`INSERT INTO "order lines" VALUES (?, 1, ?, ?)`, i, i, float64(i)/4)
		require.NoError(t, err)
	}
	_, err = db.Exec("COMMIT")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	a := newAgent(t, discovery.Config{DSN: "sqlite://" + path}, newStore(t))
	res := run(t, a)
	require.Equal(t, "sqlite", res.Connector)
	require.Len(t, res.Tables, 3)
	c := table(t, res, "main.customers")
	require.Equal(t, []string{"id"}, c.PrimaryKey)
	require.False(t, c.Schema.Fields[1].Nullable)
	require.EqualValues(t, 300, c.Stats.RowCount)
	require.False(t, c.Stats.RowCountEstimated)
	f := c.Stats.Fields
	require.Equal(t, discovery.SemanticEmail, f["email"].SemanticType)
	require.Equal(t, discovery.SemanticCountryCode, f["country"].SemanticType)
	require.Equal(t, discovery.SemanticBooleanFlag, f["vip"].SemanticType)
	require.Equal(t, discovery.SemanticEpochMillis, f["signup_ms"].SemanticType)
	require.EqualValues(t, 5, f["country"].DistinctCount)
	require.InDelta(t, 0.25, f["vip"].TopValues[1].Frequency, 1e-9)

	ol := table(t, res, "main.order lines")
	require.Equal(t, []string{"order_id", "line"}, ol.PrimaryKey)
	require.Len(t, ol.ForeignKeys, 1)
	require.Equal(t, "main.customers", ol.ForeignKeys[0].RefTable)
	require.Equal(t, []string{"customer_id"}, ol.ForeignKeys[0].Columns)
	require.Equal(t, 75.0, num(t, ol.Stats.Fields["price"].Max))

	v := table(t, res, "main.big_spenders")
	require.Equal(t, discovery.KindView, v.Kind)
	require.EqualValues(t, 300, v.Stats.RowCount)

	// Sampling kicks in above SampleRows.
	b := newAgent(t, discovery.Config{DSN: "sqlite://" + path, Include: []string{"customers"}, SampleRows: 50}, nil)
	res2, err := b.Discover(context.Background())
	require.NoError(t, err)
	s := res2.Tables[0].Stats
	require.True(t, s.Sampled)
	require.LessOrEqual(t, s.SampleSize, int64(50))
	require.EqualValues(t, 300, s.RowCount)
	require.True(t, s.Fields["id"].DistinctEstimated)
}

func TestFileDiscovery(t *testing.T) {
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("\ufeffid,email,zip_code,amount,active,created,note,Name With Space\n")
	for i := 1; i <= 120; i++ {
		note := ""
		if i%2 == 0 {
			note = fmt.Sprintf("n%d", i%9)
		}
		fmt.Fprintf(&csv, "%d,user%d@example.org,%05d,%d.%02d,%s,2024-03-%02d,%s,\"x, %d\"\n",
			i, i, 1000+i*7, i, i%100, map[bool]string{true: "true", false: "false"}[i%3 == 0], 1+i%28, note, i)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "customers.csv"), []byte(csv.String()), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "events"), 0o755))
	var jl strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&jl, `{"id":%d,"ts":"2024-01-01T00:00:%02dZ","ip":"10.0.0.%d","payload":{"k":%d},"score":%d.5`, i, i%60, i, i, i)
		if i%4 == 0 {
			fmt.Fprintf(&jl, `,"flag":"yes"`)
		} else if i%4 == 1 {
			fmt.Fprintf(&jl, `,"flag":"no"`)
		}
		jl.WriteString("}\n")
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "events", "click.jsonl"), []byte(jl.String()), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "readme.txt"), []byte("not data"), 0o644))

	a := newAgent(t, discovery.Config{DSN: "file://" + dir}, newStore(t))
	res := run(t, a)
	require.Equal(t, "file", res.Connector)
	require.Len(t, res.Tables, 2)

	c := table(t, res, "customers.csv")
	types := map[string]string{}
	nullable := map[string]bool{}
	for _, f := range c.Schema.Fields {
		types[f.Name], nullable[f.Name] = f.DataType, f.Nullable
	}
	require.Equal(t, map[string]string{"id": "bigint", "email": "string", "zip_code": "string", "amount": "double",
		"active": "boolean", "created": "date", "note": "string", "Name With Space": "string"}, types)
	require.True(t, nullable["note"])
	require.False(t, nullable["id"])
	require.EqualValues(t, 120, c.Stats.RowCount)
	require.False(t, c.Stats.RowCountEstimated)
	f := c.Stats.Fields
	require.Equal(t, discovery.SemanticEmail, f["email"].SemanticType)
	require.Equal(t, discovery.SemanticPostalCode, f["zip_code"].SemanticType, "leading zeros keep zip codes text")
	require.Equal(t, discovery.SemanticISODate, f["created"].SemanticType)
	require.InDelta(t, 0.5, f["note"].NullFraction, 1e-9)
	require.Equal(t, 120.0, num(t, f["id"].Max))

	e := table(t, res, "events/click.jsonl")
	types = map[string]string{}
	for _, f := range e.Schema.Fields {
		types[f.Name], nullable[f.Name] = f.DataType, f.Nullable
	}
	require.Equal(t, map[string]string{"id": "bigint", "ts": "timestamp", "ip": "string", "payload": "object", "score": "double", "flag": "string"}, types)
	require.True(t, nullable["flag"])
	require.Equal(t, discovery.SemanticIP, e.Stats.Fields["ip"].SemanticType)
	require.Equal(t, discovery.SemanticISOTimestamp, e.Stats.Fields["ts"].SemanticType)
	require.Equal(t, discovery.SemanticBooleanFlag, e.Stats.Fields["flag"].SemanticType)
	require.InDelta(t, 0.5, e.Stats.Fields["flag"].NullFraction, 1e-9)

	// Patterns match relative paths; a small sample size samples the file.
	b := newAgent(t, discovery.Config{DSN: "file://" + dir, Include: []string{"*.csv"}, SampleRows: 30}, nil)
	res2, err := b.Discover(context.Background())
	require.NoError(t, err)
	require.Len(t, res2.Tables, 1)
	require.True(t, res2.Tables[0].Stats.Sampled)
	require.EqualValues(t, 30, res2.Tables[0].Stats.SampleSize)
	require.EqualValues(t, 120, res2.Tables[0].Stats.RowCount)
}

// TestPostgresLargeTableIsSampled checks TABLESAMPLE sampling and the
// extrapolated statistics on a table well above the sample size.
func TestPostgresLargeTableIsSampled(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE big (id bigint PRIMARY KEY, grp int NOT NULL, maybe text)`)
	db.Exec(t, `INSERT INTO big SELECT g, g % 10, CASE WHEN g % 4 = 0 THEN NULL ELSE 'v' || (g % 100) END FROM generate_series(1, 60000) g`)
	db.Exec(t, `ANALYZE big`)
	a := newAgent(t, discovery.Config{DSN: db.DSN, Include: []string{db.Schema + ".big"}, SampleRows: 3000}, nil)
	res, err := a.Discover(context.Background())
	require.NoError(t, err)
	s := res.Tables[0].Stats
	require.True(t, s.Sampled)
	require.Contains(t, s.SampleMethod, "TABLESAMPLE SYSTEM")
	require.LessOrEqual(t, s.SampleSize, int64(3000))
	require.Greater(t, s.SampleSize, int64(1000))
	require.True(t, s.RowCountEstimated)
	require.InDelta(t, 60000, s.RowCount, 6000)
	require.InDelta(t, 60000, s.Fields["id"].DistinctCount, 6000, "a unique column extrapolates to the row count")
	require.True(t, s.Fields["id"].DistinctEstimated)
	require.EqualValues(t, 10, s.Fields["grp"].DistinctCount, "a low-cardinality column is fully seen")
	require.InDelta(t, 0.25, s.Fields["maybe"].NullFraction, 0.05)
	require.EqualValues(t, 75, s.Fields["maybe"].DistinctCount, "g % 100 where g % 4 <> 0: 75 values, all seen")
}
