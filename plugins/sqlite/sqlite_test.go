package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/sqlitedb"
	_ "github.com/agentetl/agentetl/plugins/resolution"
	_ "github.com/agentetl/agentetl/plugins/sqlite"
)

// newDB creates an SQLite file with the given statements.
func newDB(t *testing.T, stmts ...string) (path string, db *sql.DB) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "db.sqlite")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	for _, s := range stmts {
		_, err := db.Exec(s)
		require.NoError(t, err, s)
	}
	return path, db
}

func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM `+pgutil.QuoteIdent(table)).Scan(&n))
	return n
}

func runStream(t *testing.T, yaml string, consume func(context.Context, service.MessageBatch) error) error {
	t.Helper()
	b := service.NewStreamBuilder()
	if consume != nil {
		require.NoError(t, b.AddInputYAML(yaml))
		require.NoError(t, b.AddBatchConsumerFunc(consume))
	} else {
		require.NoError(t, b.SetYAML(yaml))
	}
	require.NoError(t, b.SetLoggerYAML(`level: warn`))
	s, err := b.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return s.Run(ctx)
}

const hostileSource = `CREATE TABLE "Order Items" (id INTEGER PRIMARY KEY, "select" TEXT, "Ünï ""q""" DECIMAL(12,2), at DATE, flag BOOLEAN)`

func fillHostile(t *testing.T, db *sql.DB, from, to int) {
	t.Helper()
	_, err := db.Exec(`WITH RECURSIVE g(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM g WHERE n < ?)
INSERT INTO "Order Items" SELECT n, CASE WHEN n % 7 = 0 THEN NULL ELSE 'row ' || n END, n / 100.0 - 3,
  date('2024-01-01', '+' || (n % 300) || ' days'), n % 2 FROM g`, from, to)
	require.NoError(t, err)
}

// A table with hostile names is copied into another one, page by page, in
// one transaction per batch; a second run changes nothing.
func TestCopyKeepsValuesAndHostileNames(t *testing.T) {
	src, sdb := newDB(t, hostileSource)
	fillHostile(t, sdb, 1, 2500)
	dst, ddb := newDB(t, `CREATE TABLE "select" (id INTEGER PRIMARY KEY, "select" TEXT, "Ünï ""q""" NUMERIC(12,2) CHECK ("Ünï ""q""" < 100), at DATE NOT NULL, flag BOOLEAN)`)
	cfg := fmt.Sprintf(`
input:
  sqlite:
    dsn: sqlite://%s
    table: Order Items
    page_size: 400
output:
  sqlite:
    dsn: sqlite://%s
    table: select
    batching:
      count: 300
      period: 50ms
`, src, dst)
	require.NoError(t, runStream(t, cfg, nil))
	require.Equal(t, 2500, count(t, ddb, "select"))
	same := func() int {
		var n int
		_, err := ddb.Exec(`ATTACH DATABASE ? AS s`, src)
		require.NoError(t, err)
		defer ddb.Exec(`DETACH DATABASE s`)
		require.NoError(t, ddb.QueryRow(`SELECT count(*) FROM main."select" d JOIN s."Order Items" o ON o.id = d.id
			WHERE d."select" IS o."select" AND d."Ünï ""q""" = o."Ünï ""q""" AND d.at = o.at AND d.flag = o.flag`).Scan(&n))
		return n
	}
	require.Equal(t, 2500, same(), "every row arrives with the same values")
	var total float64
	require.NoError(t, ddb.QueryRow(`SELECT sum("Ünï ""q""") FROM "select"`).Scan(&total))
	require.InDelta(t, 23762.5, total, 1e-6)

	// Upsert: a rerun leaves the same rows.
	require.NoError(t, runStream(t, cfg, nil))
	require.Equal(t, 2500, count(t, ddb, "select"))
	require.Equal(t, 2500, same())
}

func TestMessagesCarryTypedValuesAndMetadata(t *testing.T) {
	src, _ := newDB(t, `CREATE TABLE t (id INTEGER PRIMARY KEY, amount DECIMAL(12,2), at DATE, note TEXT, ratio REAL)`,
		`INSERT INTO t VALUES (1, 1.25, '2024-03-02', 'a', 0.5), (2, 7, 'not a date', NULL, 2), (3, 0.1, '2024-02-30', 'c', NULL)`)
	var mu sync.Mutex
	var got []*service.Message
	require.NoError(t, runStream(t, fmt.Sprintf("sqlite:\n  dsn: sqlite://%s\n  table: t\n  page_size: 2\n", src),
		func(_ context.Context, b service.MessageBatch) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, b...)
			return nil
		}))
	require.Len(t, got, 3)
	row := func(i int) map[string]any {
		v, err := got[i].AsStructured()
		require.NoError(t, err)
		return v.(map[string]any)
	}
	require.Equal(t, json.Number("1.25"), row(0)["amount"])
	require.Equal(t, time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC), row(0)["at"])
	require.Equal(t, 0.5, row(0)["ratio"])
	require.Equal(t, int64(1), row(0)["id"])
	require.Equal(t, "not a date", row(1)["at"], "unparseable dates stay text for the destination to judge")
	require.Nil(t, row(1)["note"])
	require.Equal(t, "2024-02-30", row(2)["at"])
	require.Equal(t, json.Number("0.1"), row(2)["amount"])
	table, _ := got[0].MetaGetMut("sqlite_table")
	require.Equal(t, "t", table)
	page, _ := got[2].MetaGetMut("sqlite_page")
	require.Equal(t, 2, page)
	key, _ := got[2].MetaGetMut("sqlite_key")
	require.Equal(t, int64(3), key)
	exec, err := bloblang.Parse(`root = [this.at.type(), this.amount.type(), this.amount * 4]`)
	require.NoError(t, err)
	res, err := got[0].BloblangQuery(exec)
	require.NoError(t, err)
	out, err := res.AsStructured()
	require.NoError(t, err)
	require.Equal(t, []any{"timestamp", "number", float64(5)}, out)
}

func TestCheckpointAdvancesOnlyOnAckAndResumes(t *testing.T) {
	src, sdb := newDB(t, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`)
	insert := func(from, to int) {
		_, err := sdb.Exec(`WITH RECURSIVE g(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM g WHERE n < ?) INSERT INTO t SELECT n, 'v' || n FROM g`, from, to)
		require.NoError(t, err)
	}
	insert(1, 100)
	storeDSN := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	cfg := fmt.Sprintf("sqlite:\n  dsn: sqlite://%s\n  table: t\n  page_size: 10\n  checkpoint_id: cp\n  checkpoint_store: %s\n", src, storeDSN)
	ctx := context.Background()
	st, err := metastore.Open(ctx, storeDSN)
	require.NoError(t, err)
	defer st.Close()

	// While a batch is unacknowledged, the stored position must be before
	// its first row: it may lag, never lead.
	seen := 0
	var violations []string
	require.NoError(t, runStream(t, cfg, func(ctx context.Context, b service.MessageBatch) error {
		first, _ := b[0].MetaGetMut("sqlite_key")
		pos, err := st.GetCheckpoint(ctx, "cp")
		switch {
		case errors.Is(err, metastore.ErrNotFound):
		case err != nil:
			violations = append(violations, err.Error())
		default:
			var p struct{ K int64 }
			if json.Unmarshal([]byte(pos), &p) != nil || p.K >= first.(int64) {
				violations = append(violations, fmt.Sprintf("checkpoint %s while row %d is unacknowledged", pos, first))
			}
		}
		seen += len(b)
		return nil
	}))
	require.Empty(t, violations)
	require.Equal(t, 100, seen)
	pos, err := st.GetCheckpoint(ctx, "cp")
	require.NoError(t, err)
	require.JSONEq(t, `{"k":100}`, pos)

	insert(101, 130)
	var ids []int64
	require.NoError(t, runStream(t, cfg, func(_ context.Context, b service.MessageBatch) error {
		for _, m := range b {
			k, _ := m.MetaGetMut("sqlite_key")
			ids = append(ids, k.(int64))
		}
		return nil
	}))
	require.Len(t, ids, 30, "the next run reads only the new rows")
	require.Equal(t, int64(101), ids[0])
}

// Rejected pages, the last one included, are sent again until accepted.
func TestNackedPagesAreReplayedEvenAfterTheLastRead(t *testing.T) {
	src, sdb := newDB(t, `CREATE TABLE t (k TEXT PRIMARY KEY)`)
	for i := 1; i <= 95; i++ {
		_, err := sdb.Exec(`INSERT INTO t VALUES (?)`, fmt.Sprintf("k%03d", i))
		require.NoError(t, err)
	}
	storeDSN := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	rejected := map[string]int{}
	delivered := map[string]int{}
	require.NoError(t, runStream(t, fmt.Sprintf("sqlite:\n  dsn: sqlite://%s\n  table: t\n  key_column: k\n  page_size: 10\n  checkpoint_id: nack\n  checkpoint_store: %s\n", src, storeDSN),
		func(_ context.Context, b service.MessageBatch) error {
			first, _ := b[0].MetaGetMut("sqlite_key")
			k := first.(string)
			if (k == "k021" || k == "k091") && rejected[k] < 2 {
				rejected[k]++
				return fmt.Errorf("simulated write failure for page starting at %s", k)
			}
			for _, m := range b {
				v, _ := m.MetaGetMut("sqlite_key")
				delivered[v.(string)]++
			}
			return nil
		}))
	require.Equal(t, 2, rejected["k021"])
	require.Equal(t, 2, rejected["k091"])
	require.Len(t, delivered, 95)
	for k, n := range delivered {
		require.Equal(t, 1, n, "row %s accepted exactly once", k)
	}
	st, err := metastore.Open(context.Background(), storeDSN)
	require.NoError(t, err)
	defer st.Close()
	pos, err := st.GetCheckpoint(context.Background(), "nack")
	require.NoError(t, err)
	require.JSONEq(t, `{"k":"k095"}`, pos)
}

func TestInputRefusesWhatNoRetryCanFix(t *testing.T) {
	src, _ := newDB(t, `CREATE TABLE t (id INTEGER PRIMARY KEY, grp INTEGER, code TEXT UNIQUE)`)
	ctx := context.Background()
	_, err := sqlitedb.OpenReader(ctx, sqlitedb.ReaderConfig{DSN: "sqlite://" + src, Table: "nope", KeyColumn: "id"})
	require.ErrorContains(t, err, "table nope does not exist (tables in main: t)")
	require.True(t, pgutil.IsPermanent(err))
	_, err = sqlitedb.OpenReader(ctx, sqlitedb.ReaderConfig{DSN: "sqlite://" + src, Table: "t", KeyColumn: "grp"})
	require.ErrorContains(t, err, "neither the primary key nor alone in a unique index")
	_, err = sqlitedb.OpenReader(ctx, sqlitedb.ReaderConfig{DSN: "sqlite://" + src, Table: "t", KeyColumn: "missing"})
	require.ErrorContains(t, err, `key column "missing" is not a column of t (columns: id, grp, code)`)
	r, err := sqlitedb.OpenReader(ctx, sqlitedb.ReaderConfig{DSN: "sqlite://" + src, Table: "t", KeyColumn: "code"})
	require.NoError(t, err, "a column alone in a unique index is a valid key")
	require.NoError(t, r.Close())
	_, err = sqlitedb.OpenReader(ctx, sqlitedb.ReaderConfig{DSN: "sqlite://" + filepath.Join(t.TempDir(), "missing.db"), Table: "t", KeyColumn: "id"})
	require.ErrorContains(t, err, "missing.db")
	require.True(t, pgutil.IsPermanent(err))
	_, err = os.Stat(filepath.Join(filepath.Dir(src), "missing.db"))
	require.True(t, os.IsNotExist(err), "a reader never creates a database")
	_, err = sqlitedb.OpenReader(ctx, sqlitedb.ReaderConfig{DSN: "sqlite://" + src + "?mode=rwc", Table: "t", KeyColumn: "id"})
	require.ErrorContains(t, err, "without query parameters")

	// Under a bounded stream, the error reaches the caller instead of a
	// retry loop only through runctl; here the spec's lint catches bad
	// page sizes before anything runs.
	env := service.NewEnvironment()
	err = env.NewStreamBuilder().AddInputYAML("sqlite:\n  dsn: sqlite://x.db\n  table: t\n  page_size: 0\n")
	require.ErrorContains(t, err, "page_size must be between 1 and 1000000")
}

func TestOutputChecksValuesAndReportsTypedErrors(t *testing.T) {
	dst, ddb := newDB(t, `CREATE TABLE o (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) <= 5), d DATE, n INTEGER, amount NUMERIC(10,2) CHECK (amount >= 0), at TIMESTAMP, ok BOOLEAN, doc TEXT)`)
	ctx := context.Background()
	w, err := sqlitedb.OpenWriter(ctx, sqlitedb.WriterConfig{DSN: "sqlite://" + dst, Table: "o"})
	require.NoError(t, err)
	defer w.Close()
	good := func(id int64) map[string]any {
		return map[string]any{"id": id, "name": "ok", "d": time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC), "n": "42",
			"amount": json.Number("12.50"), "at": "2024-05-06T07:08:09+02:00", "ok": "yes", "doc": map[string]any{"a": 1}}
	}
	cases := []struct {
		name   string
		field  string
		value  any
		state  string
		record int
		text   string
	}{
		{"check", "amount", json.Number("-1"), "23514", 2, "CHECK constraint failed: amount >= 0"},
		{"too long", "name", "much too long", "23514", 2, "length(name) <= 5"},
		{"not null", "name", nil, "23502", 2, "o.name"},
		{"bad date", "d", "2023-02-30", "22007", 2, `"2023-02-30" is not a valid date`},
		{"bad integer", "n", "4x", "22P02", 2, `"4x" is not an integer`},
		{"bad number", "amount", "12,50", "22P02", 2, `"12,50" is not a number`},
		{"bad boolean", "ok", "maybe", "22P02", 2, `"maybe" is not a boolean`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := good(2)
			bad[c.field] = c.value
			err := w.Write(ctx, []map[string]any{good(1), bad, good(3)})
			require.Error(t, err)
			var pe *pgutil.Error
			require.True(t, errors.As(err, &pe), "%T %v", err, err)
			require.Equal(t, c.state, pe.SQLState, err.Error())
			require.Equal(t, c.record, pe.Record)
			require.Contains(t, err.Error(), c.text)
			require.Equal(t, 0, count(t, ddb, "o"), "a failed batch writes nothing")
		})
	}
	err = w.Write(ctx, []map[string]any{good(1), {"id": int64(9), "nmae": "typo"}})
	require.ErrorContains(t, err, `record field "nmae" has no column in o (columns: id, name, d, n, amount, at, ok, doc)`)
	require.True(t, pgutil.IsPermanent(err))

	require.NoError(t, w.Write(ctx, []map[string]any{good(1), good(2)}))
	var d, at, doc string
	var n, ok int64
	var amount float64
	require.NoError(t, ddb.QueryRow(`SELECT CAST(d AS TEXT), n, amount, CAST(at AS TEXT), ok, doc FROM o WHERE id = 2`).Scan(&d, &n, &amount, &at, &ok, &doc))
	require.Equal(t, "2024-05-06", d)
	require.Equal(t, int64(42), n)
	require.Equal(t, 12.5, amount)
	require.Equal(t, "2024-05-06T05:08:09Z", at)
	require.Equal(t, int64(1), ok)
	require.JSONEq(t, `{"a":1}`, doc)

	// Upsert by primary key: a changed row is updated, a new one added.
	changed := good(2)
	changed["name"] = "new"
	require.NoError(t, w.Write(ctx, []map[string]any{changed, good(3)}))
	require.Equal(t, 3, count(t, ddb, "o"))
	var name string
	require.NoError(t, ddb.QueryRow(`SELECT name FROM o WHERE id = 2`).Scan(&name))
	require.Equal(t, "new", name)

	ins, err := sqlitedb.OpenWriter(ctx, sqlitedb.WriterConfig{DSN: "sqlite://" + dst, Table: "o", Mode: sqlitedb.ModeInsert})
	require.NoError(t, err)
	defer ins.Close()
	err = ins.Write(ctx, []map[string]any{good(4), good(3)})
	require.Equal(t, "23505", pgutil.SQLState(err), "%v", err)
	require.Equal(t, 3, count(t, ddb, "o"))

	_, err = sqlitedb.OpenWriter(ctx, sqlitedb.WriterConfig{DSN: "sqlite://" + dst, Table: "missing"})
	require.ErrorContains(t, err, "table missing does not exist (tables in main: o)")
	require.True(t, pgutil.IsPermanent(err))
}

// Behind the error_resolution output, a load with bad records writes every
// good record and dead-letters exactly the bad ones: source = target +
// dead letters.
func TestErrorResolutionDeadLettersOnlyTheBadRows(t *testing.T) {
	src, sdb := newDB(t, `CREATE TABLE legacy (ord_id INTEGER PRIMARY KEY, amt DECIMAL(10,2), ord_dt DATE, cntry TEXT)`)
	_, err := sdb.Exec(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000)
INSERT INTO legacy SELECT n, n / 10.0, date('2023-01-01', '+' || (n % 365) || ' days'), 'DE' FROM g`)
	require.NoError(t, err)
	for _, stmt := range []string{
		`UPDATE legacy SET amt = -5 WHERE ord_id = 17`,
		`UPDATE legacy SET ord_dt = '2023-02-30' WHERE ord_id = 400`,
		`UPDATE legacy SET cntry = 'Germany' WHERE ord_id = 999`,
	} {
		_, err := sdb.Exec(stmt)
		require.NoError(t, err)
	}
	dst, ddb := newDB(t, `CREATE TABLE orders (order_id INTEGER PRIMARY KEY, amount NUMERIC(10,2) NOT NULL CHECK (amount >= 0), order_date DATE NOT NULL, country TEXT NOT NULL CHECK (length(country) = 2))`)
	dl := filepath.Join(t.TempDir(), "dead.jsonl")
	require.NoError(t, runStream(t, fmt.Sprintf(`
input:
  sqlite:
    dsn: sqlite://%s
    table: legacy
    key_column: ord_id
    page_size: 250
pipeline:
  processors:
    - mapping: 'root = {"order_id": this.ord_id, "amount": this.amt, "order_date": this.ord_dt, "country": this.cntry}'
output:
  error_resolution:
    pipeline_id: sqlite-test
    store: ""
    output:
      sqlite:
        dsn: sqlite://%s
        table: orders
    dead_letter:
      file:
        path: %s
`, src, dst, dl), nil))
	require.Equal(t, 997, count(t, ddb, "orders"))
	f, err := os.Open(dl)
	require.NoError(t, err)
	defer f.Close()
	var ids []int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), sc.Text())
		line := sc.Text()
		switch {
		case strings.Contains(line, `"order_id":17`):
			ids = append(ids, 17)
			require.Contains(t, line, "23514")
		case strings.Contains(line, `"order_id":400`):
			ids = append(ids, 400)
			require.Contains(t, line, "22007")
		case strings.Contains(line, `"order_id":999`):
			ids = append(ids, 999)
			require.Contains(t, line, "length(country) = 2")
		default:
			t.Fatalf("unexpected dead letter: %s", line)
		}
	}
	require.NoError(t, sc.Err())
	sort.Ints(ids)
	require.Equal(t, []int{17, 400, 999}, ids)
}
