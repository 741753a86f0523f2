package discovery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
)

func fieldNames(d *discovery.SourceMetadata) []string {
	var out []string
	for _, f := range d.Schema.Fields {
		out = append(out, f.Name)
	}
	return out
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	n, ok := v.(json.Number)
	require.True(t, ok, "want a JSON number, got %T %v", v, v)
	f, err := n.Float64()
	require.NoError(t, err)
	return f
}

// TestPostgresHostileIdentifiers discovers and profiles names with spaces,
// quotes, unicode, mixed case, SQL keywords and injection attempts, and
// checks that nothing outside the selected schema was touched.
func TestPostgresHostileIdentifiers(t *testing.T) {
	db := testpg.NewSchema(t)
	hostile := `Sch ema "q" ü.` + testpg.RandName("")
	q := pgutil.QuoteIdent(hostile)
	db.Exec(t, "CREATE SCHEMA "+q)
	t.Cleanup(func() { _, _ = db.Pool.Exec(context.Background(), "DROP SCHEMA "+q+" CASCADE") })
	db.Exec(t, `CREATE TABLE victim (id int)`)
	db.Exec(t, `INSERT INTO victim VALUES (1)`)

	stmts := []string{
		`CREATE TABLE ` + q + `."Order Items" ("Col With Space" text, "from" int, """quoted""" text, "MixedCase" numeric(6,2), "émoji 😀" text, "semi;colon--" text)`,
		`COMMENT ON COLUMN ` + q + `."Order Items"."from" IS 'it''s a "keyword"'`,
		`INSERT INTO ` + q + `."Order Items" VALUES
		   ('a@example.com', 1, 'it''s "q"', 1.50, 'ñ😀', ';'),
		   ('b@example.com', 2, 'it''s "q"', 2.25, 'ñ😀', NULL),
		   ('c@example.com', 3, NULL, -3.75, 'ü', ';')`,
		`CREATE TABLE ` + q + `."select" ("where" int PRIMARY KEY, "group" text)`,
		`INSERT INTO ` + q + `."select" VALUES (10, 'x'), (20, 'y')`,
		`CREATE TABLE ` + q + `."x""; DROP TABLE victim; --" ("a'b" text)`,
		`INSERT INTO ` + q + `."x""; DROP TABLE victim; --" VALUES ('''); DROP TABLE victim; --')`,
		`CREATE TABLE ` + q + `."ünïcødé_表" ("名前" text)`,
		`INSERT INTO ` + q + `."ünïcødé_表" VALUES ('東京'), ('大阪'), ('東京')`,
	}
	for _, s := range stmts {
		db.Exec(t, s)
	}

	a := newAgent(t, discovery.Config{DSN: db.DSN, Include: []string{hostile + ".*"}}, newStore(t))
	res := run(t, a)
	require.Empty(t, res.Skipped)
	require.Len(t, res.Tables, 4)

	oi := table(t, res, hostile+".Order Items")
	require.Equal(t, []string{"Col With Space", "from", `"quoted"`, "MixedCase", "émoji 😀", "semi;colon--"}, fieldNames(oi))
	require.Equal(t, hostile, oi.SchemaName)
	require.Equal(t, `it's a "keyword"`, oi.Schema.Fields[1].Description)
	require.EqualValues(t, 3, oi.Stats.RowCount)
	require.False(t, oi.Stats.Sampled)
	f := oi.Stats.Fields
	require.Equal(t, discovery.SemanticEmail, f["Col With Space"].SemanticType)
	require.EqualValues(t, 3, f["from"].DistinctCount)
	require.Equal(t, 1.0, num(t, f["from"].Min))
	require.Equal(t, 3.0, num(t, f["from"].Max))
	require.Equal(t, `it's "q"`, f[`"quoted"`].TopValues[0].Value)
	require.EqualValues(t, 2, f[`"quoted"`].TopValues[0].Count)
	require.InDelta(t, 1.0/3, f[`"quoted"`].NullFraction, 1e-6)
	require.Equal(t, -3.75, num(t, f["MixedCase"].Min))
	require.Equal(t, 2.25, num(t, f["MixedCase"].Max))
	require.InDelta(t, 5.0/3, f["émoji 😀"].AvgLength, 0.01, "length counts characters, not bytes")
	require.EqualValues(t, 1, f["semi;colon--"].NullCount)

	sel := table(t, res, hostile+".select")
	require.Equal(t, []string{"where"}, sel.PrimaryKey)
	require.Equal(t, 20.0, num(t, sel.Stats.Fields["where"].Max))

	inj := table(t, res, hostile+`.x"; DROP TABLE victim; --`)
	require.Equal(t, "'); DROP TABLE victim; --", inj.Stats.Fields["a'b"].Min)

	uni := table(t, res, hostile+".ünïcødé_表")
	require.Equal(t, "東京", uni.Stats.Fields["名前"].TopValues[0].Value)
	require.EqualValues(t, 2, uni.Stats.Fields["名前"].DistinctCount)

	require.EqualValues(t, 1, db.Int(t, `SELECT count(*) FROM victim`), "discovery must never execute names")

	// A pattern is a glob on the whole name, not SQL: special characters in
	// it are literal.
	b := newAgent(t, discovery.Config{DSN: db.DSN, Include: []string{hostile + `.x"; DROP*`}, MetadataOnly: true}, nil)
	res2, err := b.Discover(context.Background())
	require.NoError(t, err)
	require.Len(t, res2.Tables, 1)
	require.Equal(t, inj.Table, res2.Tables[0].Table)
}

func TestMariaDBHostileIdentifiers(t *testing.T) {
	db := newMySQL(t)
	db.exec(t,
		"CREATE TABLE victim (id INT)", "INSERT INTO victim VALUES (1)",
		"CREATE TABLE `Order Items` (`Col With Space` TEXT, `from` INT, `we``ird col` TEXT, `MixedCase` DECIMAL(6,2), `émoji ñ` TEXT) DEFAULT CHARSET=utf8mb4",
		"ALTER TABLE `Order Items` MODIFY `from` INT COMMENT 'it''s a \"keyword\"'",
		"INSERT INTO `Order Items` VALUES ('a@example.com', 1, 'it''s `q`', 1.50, 'ñ😀'), ('b@example.com', 2, 'it''s `q`', 2.25, 'ñ😀'), ('c@example.com', 3, NULL, -3.75, 'ü')",
		"CREATE TABLE `select` (`where` INT PRIMARY KEY, `group` TEXT)",
		"INSERT INTO `select` VALUES (10, 'x'), (20, 'y')",
		"CREATE TABLE `x``; DROP TABLE victim; --` (`a'b` TEXT)",
		"INSERT INTO `x``; DROP TABLE victim; --` VALUES ('''); DROP TABLE victim; --')",
		"CREATE TABLE `ünïcødé_表` (`名前` TEXT) DEFAULT CHARSET=utf8mb4",
		"INSERT INTO `ünïcødé_表` VALUES ('東京'), ('大阪'), ('東京')",
	)
	a := newAgent(t, discovery.Config{DSN: db.DSN, Exclude: []string{"victim"}}, newStore(t))
	res := run(t, a)
	require.Empty(t, res.Skipped)
	require.Len(t, res.Tables, 4)

	oi := table(t, res, db.Name+".Order Items")
	require.Equal(t, []string{"Col With Space", "from", "we`ird col", "MixedCase", "émoji ñ"}, fieldNames(oi))
	require.Equal(t, `it's a "keyword"`, oi.Schema.Fields[1].Description)
	f := oi.Stats.Fields
	require.Equal(t, discovery.SemanticEmail, f["Col With Space"].SemanticType)
	require.Equal(t, 3.0, num(t, f["from"].Max))
	require.Equal(t, "it's `q`", f["we`ird col"].TopValues[0].Value)
	require.Equal(t, -3.75, num(t, f["MixedCase"].Min))
	require.InDelta(t, 5.0/3, f["émoji ñ"].AvgLength, 0.01, "values may hold 4-byte characters")

	sel := table(t, res, db.Name+".select")
	require.Equal(t, []string{"where"}, sel.PrimaryKey)
	inj := table(t, res, db.Name+".x`; DROP TABLE victim; --")
	require.Equal(t, "'); DROP TABLE victim; --", inj.Stats.Fields["a'b"].Min)
	uni := table(t, res, db.Name+".ünïcødé_表")
	require.EqualValues(t, 2, uni.Stats.Fields["名前"].DistinctCount)

	var n int
	require.NoError(t, db.DB.QueryRow("SELECT count(*) FROM victim").Scan(&n))
	require.Equal(t, 1, n, fmt.Sprintf("victim table must survive discovery of %s", db.Name))
}
