package metastore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

const defaultPGDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func pgAdminDSN() string {
	if d := os.Getenv("PG_DSN"); d != "" {
		return d
	}
	return defaultPGDSN
}

// backend knows how to make a fresh, isolated database for one test.
type backend struct {
	name string
	// newDSN returns a DSN for an empty database that is removed when t ends.
	newDSN func(t *testing.T) string
	// migrationVersions reads schema_migrations behind the store's back.
	migrationVersions func(t *testing.T, dsn string) []int
}

func openStore(t *testing.T, dsn string) metastore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := metastore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func sqliteBackend() backend {
	return backend{
		name: "sqlite",
		newDSN: func(t *testing.T) string {
			// A sub-directory that does not exist yet: Open must create it.
			return "sqlite://" + filepath.Join(t.TempDir(), "data", "meta.db")
		},
		migrationVersions: func(t *testing.T, dsn string) []int {
			db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite://"))
			require.NoError(t, err)
			defer db.Close()
			rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
			require.NoError(t, err)
			defer rows.Close()
			var out []int
			for rows.Next() {
				var v int
				require.NoError(t, rows.Scan(&v))
				out = append(out, v)
			}
			require.NoError(t, rows.Err())
			return out
		},
	}
}

func randSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err, "PG_DSN must be a URL")
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func pgConnect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgAdminDSN())
	require.NoError(t, err, "PostgreSQL at PG_DSN (%s) must be reachable; set AGENTETL_SKIP_PG=1 to skip",
		metastore.Redact(pgAdminDSN()))
	return conn
}

// pgDropSchemaLater drops schema (if it exists) when t ends.
func pgDropSchemaLater(t *testing.T, schema string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pgAdminDSN())
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
}

func postgresBackend() backend {
	return backend{
		name: "postgres",
		newDSN: func(t *testing.T) string {
			conn := pgConnect(t)
			defer conn.Close(context.Background())
			schema := "metastore_test_" + randSuffix()
			_, err := conn.Exec(context.Background(), `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
			require.NoError(t, err)
			pgDropSchemaLater(t, schema)
			return withSearchPath(t, pgAdminDSN(), schema)
		},
		migrationVersions: func(t *testing.T, dsn string) []int {
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			require.NoError(t, err)
			defer conn.Close(ctx)
			rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
			require.NoError(t, err)
			out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (int, error) {
				var v int32
				err := r.Scan(&v)
				return int(v), err
			})
			require.NoError(t, err)
			return out
		},
	}
}

// contractCases run unchanged against every backend.
var contractCases = []struct {
	name string
	fn   func(t *testing.T, b backend)
}{
	{"Backend", testBackendName},
	{"CatalogRoundTrip", testCatalogRoundTrip},
	{"CatalogSearch", testCatalogSearch},
	{"CatalogSearchHostileInput", testCatalogSearchHostile},
	{"SchemaVersions", testSchemaVersions},
	{"SchemaVersionsConcurrent", testSchemaVersionsConcurrent},
	{"PipelineConfigs", testPipelineConfigs},
	{"Executions", testExecutions},
	{"AgentDecisions", testAgentDecisions},
	{"PipelineErrorsAndResolutions", testPipelineErrors},
	{"FingerprintStats", testFingerprintStats},
	{"FingerprintStatsConcurrent", testFingerprintStatsConcurrent},
	{"Tasks", testTasks},
	{"Checkpoints", testCheckpoints},
	{"InvalidArguments", testInvalidArguments},
	{"MigrationsIdempotent", testMigrationsIdempotent},
	{"ConcurrentOpen", testConcurrentOpen},
}

func runContract(t *testing.T, b backend) {
	for _, c := range contractCases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, b) })
	}
}

func TestContractSQLite(t *testing.T) {
	runContract(t, sqliteBackend())
}

func TestContractPostgres(t *testing.T) {
	if os.Getenv("AGENTETL_SKIP_PG") == "1" {
		t.Skip("AGENTETL_SKIP_PG=1")
	}
	// Fail once, clearly, rather than in every sub-test.
	pgConnect(t).Close(context.Background())
	runContract(t, postgresBackend())
}

var ctx = context.Background()

// ts returns a fixed UTC instant with sub-microsecond noise that the store
// must truncate away.
func ts(minute int) time.Time {
	return time.Date(2025, 3, 14, 9, minute, 26, 535897932, time.UTC)
}

func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func testBackendName(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))
	require.Equal(t, b.name, s.Backend())
}

func sampleSchema(source string, fields ...model.Field) model.Schema {
	return model.Schema{
		ID:        source + "-schema",
		SourceID:  source,
		Fields:    fields,
		Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func testCatalogRoundTrip(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	_, err := s.GetCatalogEntry(ctx, "nope")
	require.ErrorIs(t, err, metastore.ErrNotFound)

	e := metastore.CatalogEntry{
		ID:          "pg1:public.orders",
		SourceID:    "pg1",
		Name:        "public.orders",
		Kind:        "table",
		Description: "All orders, one row per order",
		Schema: sampleSchema("pg1",
			model.Field{Name: "id", DataType: "bigint", Description: "primary key"},
			model.Field{Name: "note", DataType: "text", Nullable: true, Samples: []any{"a", "b"}},
		),
		// Not canonical on purpose: whitespace and key order must not matter.
		Profile:   json.RawMessage(`{ "rows": 12, "fields": {"note": {"nulls": 3}, "id": {"distinct": 12}} }`),
		RowCount:  12,
		UpdatedAt: ts(1).In(time.FixedZone("CET", 3600)),
	}
	require.NoError(t, s.SaveCatalogEntry(ctx, e))

	got, err := s.GetCatalogEntry(ctx, e.ID)
	require.NoError(t, err)
	want := e
	want.UpdatedAt = micro(e.UpdatedAt)
	want.Profile = json.RawMessage(`{"fields":{"id":{"distinct":12},"note":{"nulls":3}},"rows":12}`)
	require.Equal(t, want, got)
	require.Equal(t, time.UTC, got.UpdatedAt.Location())
	require.Equal(t, 535897000, got.UpdatedAt.Nanosecond())

	// Upsert replaces every field; a nil profile is stored as NULL.
	e.Description = "orders v2"
	e.RowCount = 13
	e.Profile = nil
	e.Schema.Fields = e.Schema.Fields[:1]
	require.NoError(t, s.SaveCatalogEntry(ctx, e))
	got, err = s.GetCatalogEntry(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, "orders v2", got.Description)
	require.Equal(t, int64(13), got.RowCount)
	require.Nil(t, got.Profile)
	require.Len(t, got.Schema.Fields, 1)

	// A zero UpdatedAt becomes "now".
	before := time.Now().Add(-time.Second)
	require.NoError(t, s.SaveCatalogEntry(ctx, metastore.CatalogEntry{ID: "x", SourceID: "pg1", Name: "x"}))
	got, err = s.GetCatalogEntry(ctx, "x")
	require.NoError(t, err)
	require.True(t, got.UpdatedAt.After(before), "UpdatedAt %v should be now", got.UpdatedAt)

	require.NoError(t, s.DeleteCatalogEntry(ctx, e.ID))
	_, err = s.GetCatalogEntry(ctx, e.ID)
	require.ErrorIs(t, err, metastore.ErrNotFound)
	require.ErrorIs(t, s.DeleteCatalogEntry(ctx, e.ID), metastore.ErrNotFound)
}

func catalogNames(es []metastore.CatalogEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name
	}
	return out
}

func seedCatalog(t *testing.T, s metastore.Store) {
	t.Helper()
	entries := []metastore.CatalogEntry{
		{ID: "crm:sales.customers", SourceID: "crm", Name: "sales.customers", Kind: "table",
			Schema: sampleSchema("crm",
				model.Field{Name: "customer_id", DataType: "bigint"},
				model.Field{Name: "email", DataType: "text", Description: "contact address"},
			)},
		{ID: "crm:sales.orders", SourceID: "crm", Name: "sales.orders", Kind: "table",
			Description: "Orders placed in the web shop",
			Schema: sampleSchema("crm",
				model.Field{Name: "order_id", DataType: "bigint"},
				model.Field{Name: "buyer", DataType: "bigint", Description: "references the customers table"},
			)},
		{ID: "hr:hr.employees", SourceID: "hr", Name: "hr.employees", Kind: "table",
			Schema: sampleSchema("hr",
				model.Field{Name: "salary", DataType: "numeric"},
				model.Field{Name: "manager", DataType: "bigint"},
			)},
		{ID: "hr:hr.payroll", SourceID: "hr", Name: "hr.payroll", Kind: "table",
			Description: "Monthly salary payments",
			Schema:      sampleSchema("hr", model.Field{Name: "amount", DataType: "numeric"})},
	}
	for _, e := range entries {
		require.NoError(t, s.SaveCatalogEntry(ctx, e))
	}
}

func testCatalogSearch(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))
	seedCatalog(t, s)

	// Name match outranks a match only in a column description.
	res, err := s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "customers"})
	require.NoError(t, err)
	require.Equal(t, []string{"sales.customers", "sales.orders"}, catalogNames(res))
	require.Greater(t, res[0].Rank, res[1].Rank)
	require.Greater(t, res[1].Rank, 0.0)

	// Prefix of a word in the name.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "cust"})
	require.NoError(t, err)
	require.NotEmpty(t, res)
	require.Equal(t, "sales.customers", res[0].Name)
	require.Contains(t, catalogNames(res), "sales.orders") // "customers" in a description

	// Column names are searchable, case-insensitively.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "EMAIL"})
	require.NoError(t, err)
	require.Equal(t, []string{"sales.customers"}, catalogNames(res))

	// Column name beats description: employees has a "salary" column,
	// payroll only mentions salary in its description.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "salary"})
	require.NoError(t, err)
	require.Equal(t, []string{"hr.employees", "hr.payroll"}, catalogNames(res))
	require.Greater(t, res[0].Rank, res[1].Rank)

	// Several words must all match.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "web shop"})
	require.NoError(t, err)
	require.Equal(t, []string{"sales.orders"}, catalogNames(res))

	// The qualified name as typed.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "sales.orders"})
	require.NoError(t, err)
	require.Equal(t, "sales.orders", res[0].Name)

	// Source filter.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "cust", SourceID: "hr"})
	require.NoError(t, err)
	require.Empty(t, res)

	// No match.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "zebra"})
	require.NoError(t, err)
	require.Empty(t, res)

	// Empty text lists everything by name; limit and source apply.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{})
	require.NoError(t, err)
	require.Equal(t, []string{"hr.employees", "hr.payroll", "sales.customers", "sales.orders"}, catalogNames(res))
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"hr.employees", "hr.payroll"}, catalogNames(res))
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{SourceID: "crm"})
	require.NoError(t, err)
	require.Equal(t, []string{"sales.customers", "sales.orders"}, catalogNames(res))
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "s", Limit: 1})
	require.NoError(t, err)
	require.Len(t, res, 1)

	// Results carry the whole entry.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "email"})
	require.NoError(t, err)
	want, err := s.GetCatalogEntry(ctx, "crm:sales.customers")
	require.NoError(t, err)
	want.Rank = res[0].Rank
	require.Equal(t, want, res[0])

	// The index follows updates and deletes.
	renamed := want
	renamed.Name = "sales.clients"
	renamed.Schema.Fields = []model.Field{{Name: "client_id", DataType: "bigint"}}
	renamed.Rank = 0
	require.NoError(t, s.SaveCatalogEntry(ctx, renamed))
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "email"})
	require.NoError(t, err)
	require.Empty(t, res)
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "clients"})
	require.NoError(t, err)
	require.Equal(t, []string{"sales.clients"}, catalogNames(res))
	require.NoError(t, s.DeleteCatalogEntry(ctx, "crm:sales.orders"))
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: "shop"})
	require.NoError(t, err)
	require.Empty(t, res)
}

func testCatalogSearchHostile(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))
	seedCatalog(t, s)
	require.NoError(t, s.SaveCatalogEntry(ctx, metastore.CatalogEntry{
		ID: "u", SourceID: "x", Name: "ünïcødé_tåble", Schema: sampleSchema("x", model.Field{Name: "größe"}),
	}))

	hostile := []string{
		`"foo`, `a AND (`, `*`, `'; drop table x; --`, `ÜnïcødÉ`, `"`, `'`, `(`, `)`, `NEAR(a b)`,
		`col:val`, `-x`, `a OR`, `NOT`, `^`, `\`, `%`, `_`, `&|!`, `<->`, `a:*`, `{}`, `[`, `cust*`,
		"tab\there", "nul\x00byte", "bad utf8 \xff\xfe", strings.Repeat("a", 3000), `ࢾ`, `😀`, `中文`, `e` + "\u0301", strings.Repeat("word ", 100),
		`"sales" AND "orders"`, `customer_id`,
	}
	for _, q := range hostile {
		res, err := s.QueryCatalog(ctx, metastore.CatalogQuery{Text: q})
		require.NoError(t, err, "query %q", q)
		require.NotNil(t, res, "query %q", q)
	}

	res, err := s.QueryCatalog(ctx, metastore.CatalogQuery{Text: `'; drop table x; --`})
	require.NoError(t, err)
	require.Empty(t, res)
	// The tables survived.
	_, err = s.GetCatalogEntry(ctx, "crm:sales.customers")
	require.NoError(t, err)

	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: `cust*`})
	require.NoError(t, err)
	require.Equal(t, "sales.customers", res[0].Name)

	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: `"sales" AND "orders"`})
	require.NoError(t, err)
	require.Equal(t, []string{"sales.orders"}, catalogNames(res))

	// "customer" and "id" also occur in sales.orders (a description and
	// order_id), but the entry with the column itself ranks first.
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: `customer_id`})
	require.NoError(t, err)
	require.Equal(t, []string{"sales.customers", "sales.orders"}, catalogNames(res))

	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: `ünïcødé`})
	require.NoError(t, err)
	require.Equal(t, []string{"ünïcødé_tåble"}, catalogNames(res))
	res, err = s.QueryCatalog(ctx, metastore.CatalogQuery{Text: `größe`})
	require.NoError(t, err)
	require.Equal(t, []string{"ünïcødé_tåble"}, catalogNames(res))
}

func testSchemaVersions(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	_, err := s.LatestSchemaVersion(ctx, "src")
	require.ErrorIs(t, err, metastore.ErrNotFound)
	hist, err := s.GetSchemaHistory(ctx, "src")
	require.NoError(t, err)
	require.Empty(t, hist)

	var saved []metastore.SchemaVersion
	for i := range 3 {
		sv, err := s.SaveSchemaVersion(ctx, metastore.SchemaVersion{
			SourceID:  "src",
			Schema:    sampleSchema("src", model.Field{Name: fmt.Sprintf("col%d", i), DataType: "text"}),
			Hash:      fmt.Sprintf("h%d", i),
			Changes:   json.RawMessage(fmt.Sprintf(`{"added": ["col%d"]}`, i)),
			CreatedAt: ts(i),
		})
		require.NoError(t, err)
		require.Equal(t, i+1, sv.Version)
		require.Equal(t, i+1, sv.Schema.Version)
		require.Equal(t, micro(ts(i)), sv.CreatedAt)
		require.Equal(t, json.RawMessage(fmt.Sprintf(`{"added":["col%d"]}`, i)), sv.Changes)
		saved = append(saved, sv)
	}

	// Another source has its own numbering; zero CreatedAt becomes now.
	before := time.Now().Add(-time.Second)
	other, err := s.SaveSchemaVersion(ctx, metastore.SchemaVersion{SourceID: "other", Hash: "x"})
	require.NoError(t, err)
	require.Equal(t, 1, other.Version)
	require.True(t, other.CreatedAt.After(before))
	require.Nil(t, other.Changes)

	latest, err := s.LatestSchemaVersion(ctx, "src")
	require.NoError(t, err)
	require.Equal(t, saved[2], latest)

	hist, err = s.GetSchemaHistory(ctx, "src")
	require.NoError(t, err)
	require.Equal(t, saved, hist) // oldest first

	latestOther, err := s.LatestSchemaVersion(ctx, "other")
	require.NoError(t, err)
	require.Equal(t, other, latestOther)
}

func testSchemaVersionsConcurrent(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))
	const workers, each = 6, 5
	var (
		mu       sync.Mutex
		versions []int
		wg       sync.WaitGroup
		errs     = make(chan error, workers*each)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				sv, err := s.SaveSchemaVersion(ctx, metastore.SchemaVersion{
					SourceID: "busy", Hash: fmt.Sprintf("w%d-%d", w, i),
				})
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				versions = append(versions, sv.Version)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	sort.Ints(versions)
	want := make([]int, workers*each)
	for i := range want {
		want[i] = i + 1
	}
	require.Equal(t, want, versions)

	hist, err := s.GetSchemaHistory(ctx, "busy")
	require.NoError(t, err)
	require.Len(t, hist, workers*each)
	latest, err := s.LatestSchemaVersion(ctx, "busy")
	require.NoError(t, err)
	require.Equal(t, workers*each, latest.Version)
}

func pipelineConfig(id, name string) model.PipelineConfig {
	return model.PipelineConfig{
		ID:   id,
		Name: name,
		Type: "batch",
		Source: model.SourceConfig{
			Type: "postgres", Connection: map[string]string{"dsn": "${SRC_DSN}"}, Table: "public.orders",
		},
		Transformations: []model.Transformation{{ID: "t1", Type: "map", Logic: "root = this"}},
		Destination:     model.DestinationConfig{Type: "postgres", Table: "dw.orders"},
		Schedule:        &model.Schedule{Cron: "0 * * * *", Timezone: "UTC"},
		ErrorHandling:   model.ErrorHandlingConfig{MaxRetries: 3, DeadLetter: "dlq"},
		Metadata: model.PipelineMetadata{
			Owner: "data", Tags: map[string]string{"team": "core"},
			CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		},
	}
}

func testPipelineConfigs(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	_, err := s.GetPipelineConfig(ctx, "p1", 0)
	require.ErrorIs(t, err, metastore.ErrNotFound)
	list, err := s.ListPipelineConfigs(ctx)
	require.NoError(t, err)
	require.Empty(t, list)

	// PipelineID may come from the config itself.
	v1, err := s.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{
		Config: pipelineConfig("p1", "orders"), YAML: "input: {}\n", State: "draft", Comment: "first", CreatedAt: ts(1),
	})
	require.NoError(t, err)
	require.Equal(t, "p1", v1.PipelineID)
	require.Equal(t, 1, v1.Version)
	require.Equal(t, micro(ts(1)), v1.CreatedAt)

	v2, err := s.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{
		PipelineID: "p1", Config: pipelineConfig("p1", "orders v2"), YAML: "input: {}\noutput: {}\n", State: "draft",
		Comment: "second", CreatedAt: ts(2),
	})
	require.NoError(t, err)
	require.Equal(t, 2, v2.Version)

	before := time.Now().Add(-time.Second)
	q1, err := s.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{
		PipelineID: "a-first", Config: pipelineConfig("a-first", "alpha"), State: "active",
	})
	require.NoError(t, err)
	require.Equal(t, 1, q1.Version)
	require.True(t, q1.CreatedAt.After(before))

	got, err := s.GetPipelineConfig(ctx, "p1", 0)
	require.NoError(t, err)
	require.Equal(t, v2, got)
	got, err = s.GetPipelineConfig(ctx, "p1", 1)
	require.NoError(t, err)
	require.Equal(t, v1, got)
	_, err = s.GetPipelineConfig(ctx, "p1", 3)
	require.ErrorIs(t, err, metastore.ErrNotFound)

	list, err = s.ListPipelineConfigs(ctx)
	require.NoError(t, err)
	require.Equal(t, []metastore.PipelineConfigVersion{q1, v2}, list) // by pipeline id, latest only

	hist, err := s.PipelineConfigHistory(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, []metastore.PipelineConfigVersion{v2, v1}, hist) // newest first

	// SetPipelineState touches the latest version only.
	require.NoError(t, s.SetPipelineState(ctx, "p1", "running"))
	got, err = s.GetPipelineConfig(ctx, "p1", 0)
	require.NoError(t, err)
	require.Equal(t, "running", got.State)
	require.Equal(t, 2, got.Version)
	got, err = s.GetPipelineConfig(ctx, "p1", 1)
	require.NoError(t, err)
	require.Equal(t, "draft", got.State)
	require.ErrorIs(t, s.SetPipelineState(ctx, "missing", "running"), metastore.ErrNotFound)

	// Soft delete hides the pipeline everywhere.
	require.NoError(t, s.DeletePipeline(ctx, "p1"))
	_, err = s.GetPipelineConfig(ctx, "p1", 0)
	require.ErrorIs(t, err, metastore.ErrNotFound)
	_, err = s.GetPipelineConfig(ctx, "p1", 1)
	require.ErrorIs(t, err, metastore.ErrNotFound)
	list, err = s.ListPipelineConfigs(ctx)
	require.NoError(t, err)
	require.Equal(t, []metastore.PipelineConfigVersion{q1}, list)
	hist, err = s.PipelineConfigHistory(ctx, "p1")
	require.NoError(t, err)
	require.Empty(t, hist)
	require.ErrorIs(t, s.SetPipelineState(ctx, "p1", "stopped"), metastore.ErrNotFound)
	require.ErrorIs(t, s.DeletePipeline(ctx, "p1"), metastore.ErrNotFound)
	require.ErrorIs(t, s.DeletePipeline(ctx, "never"), metastore.ErrNotFound)

	// Saving again revives it; numbering continues.
	v3, err := s.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{PipelineID: "p1", Config: pipelineConfig("p1", "back")})
	require.NoError(t, err)
	require.Equal(t, 3, v3.Version)
	hist, err = s.PipelineConfigHistory(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, []int{3, 2, 1}, []int{hist[0].Version, hist[1].Version, hist[2].Version})
}

func testExecutions(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	_, err := s.GetExecution(ctx, "missing")
	require.ErrorIs(t, err, metastore.ErrNotFound)

	fin := ts(5)
	e1 := metastore.Execution{ID: "e1", PipelineID: "p1", Status: "succeeded", RowsIn: 100, RowsOut: 98,
		Errors: 2, DeadLetter: 1, StartedAt: ts(1), FinishedAt: &fin, Message: "ok"}
	e2 := metastore.Execution{ID: "e2", PipelineID: "p1", Status: "running", StartedAt: ts(3)}
	e3 := metastore.Execution{ID: "e3", PipelineID: "p2", Status: "queued", StartedAt: ts(2)}
	for _, e := range []metastore.Execution{e1, e2, e3} {
		require.NoError(t, s.SaveExecution(ctx, e))
	}
	norm := func(e metastore.Execution) metastore.Execution {
		e.StartedAt = micro(e.StartedAt)
		if e.FinishedAt != nil {
			f := micro(*e.FinishedAt)
			e.FinishedAt = &f
		}
		return e
	}

	got, err := s.GetExecution(ctx, "e1")
	require.NoError(t, err)
	require.Equal(t, norm(e1), got)
	got, err = s.GetExecution(ctx, "e2")
	require.NoError(t, err)
	require.Equal(t, norm(e2), got)
	require.Nil(t, got.FinishedAt)

	list, err := s.ListExecutions(ctx, "p1", 0)
	require.NoError(t, err)
	require.Equal(t, []metastore.Execution{norm(e2), norm(e1)}, list)
	list, err = s.ListExecutions(ctx, "p1", 1)
	require.NoError(t, err)
	require.Equal(t, []metastore.Execution{norm(e2)}, list)
	list, err = s.ListExecutions(ctx, "", 0)
	require.NoError(t, err)
	require.Equal(t, []string{"e2", "e3", "e1"}, []string{list[0].ID, list[1].ID, list[2].ID})
	list, err = s.ListExecutions(ctx, "nope", 0)
	require.NoError(t, err)
	require.Empty(t, list)

	// Upsert: the run finishes.
	fin2 := ts(4)
	e2.Status, e2.FinishedAt, e2.RowsIn = "failed", &fin2, 7
	require.NoError(t, s.SaveExecution(ctx, e2))
	got, err = s.GetExecution(ctx, "e2")
	require.NoError(t, err)
	require.Equal(t, norm(e2), got)

	// Missing ID and StartedAt are filled in.
	require.NoError(t, s.SaveExecution(ctx, metastore.Execution{PipelineID: "p3", Status: "queued"}))
	list, err = s.ListExecutions(ctx, "p3", 0)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Len(t, list[0].ID, 36)
	require.WithinDuration(t, time.Now(), list[0].StartedAt, time.Minute)
}

func testAgentDecisions(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	ds := []model.AgentDecision{
		{ID: "d1", AgentID: "disc-1", AgentType: model.AgentDiscovery, TaskID: "t1", PipelineID: "p1",
			Action: "profile", Confidence: 0.9, Reasoning: "new table", Timestamp: ts(1)},
		{ID: "d2", AgentID: "map-1", AgentType: model.AgentMapping, TaskID: "t2", PipelineID: "p1",
			Action: "map", Confidence: 0.75, Reasoning: "names match", Timestamp: ts(2), Outcome: "accepted"},
		{ID: "d3", AgentID: "map-1", AgentType: model.AgentMapping, TaskID: "t3", PipelineID: "p2",
			Action: "map", Confidence: 0.5, Reasoning: "guess", Timestamp: ts(3)},
	}
	for _, d := range ds {
		require.NoError(t, s.SaveAgentDecision(ctx, d))
	}
	norm := func(d model.AgentDecision) model.AgentDecision { d.Timestamp = micro(d.Timestamp); return d }

	all, err := s.ListAgentDecisions(ctx, metastore.DecisionFilter{})
	require.NoError(t, err)
	require.Equal(t, []model.AgentDecision{norm(ds[2]), norm(ds[1]), norm(ds[0])}, all)

	got, err := s.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: model.AgentMapping})
	require.NoError(t, err)
	require.Equal(t, []model.AgentDecision{norm(ds[2]), norm(ds[1])}, got)
	got, err = s.ListAgentDecisions(ctx, metastore.DecisionFilter{PipelineID: "p1"})
	require.NoError(t, err)
	require.Equal(t, []model.AgentDecision{norm(ds[1]), norm(ds[0])}, got)
	got, err = s.ListAgentDecisions(ctx, metastore.DecisionFilter{TaskID: "t3"})
	require.NoError(t, err)
	require.Equal(t, []model.AgentDecision{norm(ds[2])}, got)
	// Since inclusive, Until exclusive (at microsecond precision).
	got, err = s.ListAgentDecisions(ctx, metastore.DecisionFilter{Since: micro(ts(2)), Until: micro(ts(3))})
	require.NoError(t, err)
	require.Equal(t, []model.AgentDecision{norm(ds[1])}, got)
	got, err = s.ListAgentDecisions(ctx, metastore.DecisionFilter{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"d3", "d2"}, []string{got[0].ID, got[1].ID})
	got, err = s.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: model.AgentOrchestrator})
	require.NoError(t, err)
	require.Empty(t, got)

	// Upsert records an outcome; empty ID and Timestamp are filled.
	ds[0].Outcome = "rejected"
	require.NoError(t, s.SaveAgentDecision(ctx, ds[0]))
	require.NoError(t, s.SaveAgentDecision(ctx, model.AgentDecision{AgentID: "o", AgentType: model.AgentOrchestrator, Action: "schedule"}))
	got, err = s.ListAgentDecisions(ctx, metastore.DecisionFilter{PipelineID: "p1"})
	require.NoError(t, err)
	require.Equal(t, "rejected", got[1].Outcome)
	got, err = s.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: model.AgentOrchestrator})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Len(t, got[0].ID, 36)
	require.WithinDuration(t, time.Now(), got[0].Timestamp, time.Minute)
}

func testPipelineErrors(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	es := []model.PipelineError{
		{ID: "x1", PipelineID: "p1", ExecutionID: "e1", ErrorType: "type_mismatch", Message: "bad int 'abc'",
			StackTrace: "at map", Context: model.ErrorContext{
				Record: map[string]any{"id": "abc", "n": 1.5}, Transformation: "t1", SourceLocation: "row 7",
			}, Timestamp: ts(1), Fingerprint: "bad int <str>", Category: "data"},
		{ID: "x2", PipelineID: "p1", ExecutionID: "e1", ErrorType: "timeout", Message: "dial tcp: timeout",
			Timestamp: ts(2), Category: "network"},
		{ID: "x3", PipelineID: "p2", ExecutionID: "e9", ErrorType: "type_mismatch", Message: "bad int 'x'",
			Timestamp: ts(3), Fingerprint: "bad int <str>", Category: "data"},
	}
	for _, e := range es {
		require.NoError(t, s.SavePipelineError(ctx, e))
	}
	norm := func(e model.PipelineError) model.PipelineError { e.Timestamp = micro(e.Timestamp); return e }

	all, err := s.ListPipelineErrors(ctx, metastore.ErrorFilter{})
	require.NoError(t, err)
	require.Equal(t, []model.PipelineError{norm(es[2]), norm(es[1]), norm(es[0])}, all)

	got, err := s.ListPipelineErrors(ctx, metastore.ErrorFilter{Fingerprint: "bad int <str>"})
	require.NoError(t, err)
	require.Equal(t, []model.PipelineError{norm(es[2]), norm(es[0])}, got)
	got, err = s.ListPipelineErrors(ctx, metastore.ErrorFilter{PipelineID: "p1", Category: "data"})
	require.NoError(t, err)
	require.Equal(t, []model.PipelineError{norm(es[0])}, got)
	got, err = s.ListPipelineErrors(ctx, metastore.ErrorFilter{Since: micro(ts(2))})
	require.NoError(t, err)
	require.Equal(t, []string{"x3", "x2"}, []string{got[0].ID, got[1].ID})
	got, err = s.ListPipelineErrors(ctx, metastore.ErrorFilter{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []model.PipelineError{norm(es[2])}, got)

	// The resolution agent fills the fingerprint later (upsert by ID).
	es[1].Fingerprint = "dial tcp: timeout"
	require.NoError(t, s.SavePipelineError(ctx, es[1]))
	got, err = s.ListPipelineErrors(ctx, metastore.ErrorFilter{Fingerprint: "dial tcp: timeout"})
	require.NoError(t, err)
	require.Equal(t, []model.PipelineError{norm(es[1])}, got)

	require.NoError(t, s.SavePipelineError(ctx, model.PipelineError{PipelineID: "p9", Message: "m"}))
	got, err = s.ListPipelineErrors(ctx, metastore.ErrorFilter{PipelineID: "p9"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Len(t, got[0].ID, 36)
	require.WithinDuration(t, time.Now(), got[0].Timestamp, time.Minute)

	// Resolutions.
	rs, err := s.ListResolutions(ctx, "x1")
	require.NoError(t, err)
	require.Empty(t, rs)
	r1 := model.Resolution{ErrorID: "x1", Strategy: model.StrategyRetry, Success: false, AppliedAt: ts(4),
		Actions: []model.ResolutionAction{{Type: "retry", Detail: "once", Params: map[string]any{"delay": "1s", "n": 2.0}}}}
	r2 := model.Resolution{ErrorID: "x1", Strategy: model.StrategySkip, Success: true, AppliedAt: ts(5),
		Actions: []model.ResolutionAction{{Type: "skip"}}}
	r3 := model.Resolution{ErrorID: "x2", Strategy: model.StrategyEscalate, AppliedAt: ts(6)}
	for _, r := range []model.Resolution{r1, r2, r3} {
		require.NoError(t, s.SaveResolution(ctx, r))
	}
	normR := func(r model.Resolution) model.Resolution { r.AppliedAt = micro(r.AppliedAt); return r }
	rs, err = s.ListResolutions(ctx, "x1")
	require.NoError(t, err)
	require.Equal(t, []model.Resolution{normR(r2), normR(r1)}, rs)
	rs, err = s.ListResolutions(ctx, "x2")
	require.NoError(t, err)
	require.Equal(t, []model.Resolution{normR(r3)}, rs)
	rs, err = s.ListResolutions(ctx, "")
	require.NoError(t, err)
	require.Len(t, rs, 3)
}

func testFingerprintStats(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	_, err := s.GetFingerprintStats(ctx, "nope")
	require.ErrorIs(t, err, metastore.ErrNotFound)
	list, err := s.ListFingerprintStats(ctx, metastore.FingerprintFilter{})
	require.NoError(t, err)
	require.NotNil(t, list)
	require.Empty(t, list)

	require.NoError(t, s.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: "fp1", Template: "value too long <n>",
		Category: "data_type", Message: "value too long 20", Count: 3, Seen: ts(5)}))
	// An older occurrence moves FirstSeen back but not LastSeen or the message.
	require.NoError(t, s.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: "fp1", Message: "older", Count: 1, Seen: ts(2),
		Strategy: "skip", Attempts: 4, Successes: 4}))
	require.NoError(t, s.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: "fp1", Seen: ts(6),
		Strategy: "retry", Attempts: 2}))
	require.NoError(t, s.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: "fp2", Template: "dial tcp <addr>",
		Category: "connection", Message: "dial tcp 10.0.0.1:5432", Count: 1, Seen: ts(4), Strategy: "retry", Attempts: 1, Successes: 1}))

	got, err := s.GetFingerprintStats(ctx, "fp1")
	require.NoError(t, err)
	require.Equal(t, metastore.FingerprintStats{
		Fingerprint: "fp1", Template: "value too long <n>", Category: "data_type", Count: 4,
		FirstSeen: micro(ts(2)), LastSeen: micro(ts(6)), LastMessage: "value too long 20",
		Strategies: map[string]metastore.StrategyStats{"skip": {Attempts: 4, Successes: 4}, "retry": {Attempts: 2}},
	}, got)

	list, err = s.ListFingerprintStats(ctx, metastore.FingerprintFilter{})
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "fp1", list[0].Fingerprint, "newest last_seen first")
	require.Equal(t, map[string]metastore.StrategyStats{"retry": {Attempts: 1, Successes: 1}}, list[1].Strategies)
	list, err = s.ListFingerprintStats(ctx, metastore.FingerprintFilter{Category: "connection"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "fp2", list[0].Fingerprint)
	list, err = s.ListFingerprintStats(ctx, metastore.FingerprintFilter{Limit: 1})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Len(t, list[0].Strategies, 2, "limit counts fingerprints, not strategy rows")

	require.ErrorIs(t, s.RecordFingerprint(ctx, metastore.FingerprintDelta{}), metastore.ErrInvalid)
	require.ErrorIs(t, s.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: "x", Count: -1}), metastore.ErrInvalid)
	require.ErrorIs(t, s.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: "x", Attempts: 1}), metastore.ErrInvalid)
}

func testFingerprintStatsConcurrent(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- s.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: "hot", Count: 1, Seen: ts(w*each + i),
					Strategy: "retry", Attempts: 1, Successes: int64(i % 2)})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := s.GetFingerprintStats(ctx, "hot")
	require.NoError(t, err)
	require.Equal(t, int64(workers*each), got.Count)
	require.Equal(t, metastore.StrategyStats{Attempts: workers * each, Successes: workers * each / 2}, got.Strategies["retry"])
	require.Equal(t, micro(ts(0)), got.FirstSeen)
	require.Equal(t, micro(ts(workers*each-1)), got.LastSeen)
}

func testTasks(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	_, err := s.GetTask(ctx, "missing")
	require.ErrorIs(t, err, metastore.ErrNotFound)

	tasks := []model.Task{
		{ID: "t1", Type: model.TaskDiscovery, Priority: 1, Payload: json.RawMessage(`{"source": "pg1"}`),
			CreatedAt: ts(1), Status: "queued", UpdatedAt: ts(1)},
		{ID: "t2", Type: model.TaskMapping, Priority: 5, CreatedAt: ts(2), Status: "queued", UpdatedAt: ts(2)},
		{ID: "t3", Type: model.TaskMapping, Priority: 5, CreatedAt: ts(3), Status: "running",
			AssignedTo: "map-1", UpdatedAt: ts(4)},
		{ID: "t4", Type: model.TaskErrorResolution, Priority: 9, CreatedAt: ts(4), Status: "done",
			AssignedTo: "res-1", UpdatedAt: ts(5)},
	}
	for _, tk := range tasks {
		require.NoError(t, s.SaveTask(ctx, tk))
	}
	norm := func(tk model.Task) model.Task {
		tk.CreatedAt, tk.UpdatedAt = micro(tk.CreatedAt), micro(tk.UpdatedAt)
		return tk
	}

	got, err := s.GetTask(ctx, "t1")
	require.NoError(t, err)
	want := norm(tasks[0])
	want.Payload = json.RawMessage(`{"source":"pg1"}`)
	require.Equal(t, want, got)
	got, err = s.GetTask(ctx, "t3")
	require.NoError(t, err)
	require.Equal(t, norm(tasks[2]), got)

	ids := func(list []model.Task) []string {
		out := make([]string, len(list))
		for i, tk := range list {
			out[i] = tk.ID
		}
		return out
	}
	list, err := s.ListTasks(ctx, metastore.TaskFilter{})
	require.NoError(t, err)
	require.Equal(t, []string{"t4", "t2", "t3", "t1"}, ids(list)) // priority desc, then oldest first
	list, err = s.ListTasks(ctx, metastore.TaskFilter{Type: model.TaskMapping})
	require.NoError(t, err)
	require.Equal(t, []string{"t2", "t3"}, ids(list))
	list, err = s.ListTasks(ctx, metastore.TaskFilter{Status: "queued"})
	require.NoError(t, err)
	require.Equal(t, []string{"t2", "t1"}, ids(list))
	list, err = s.ListTasks(ctx, metastore.TaskFilter{AssignedTo: "map-1"})
	require.NoError(t, err)
	require.Equal(t, []model.Task{norm(tasks[2])}, list)
	list, err = s.ListTasks(ctx, metastore.TaskFilter{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"t4", "t2"}, ids(list))

	// Upsert: claim the task.
	tasks[1].Status, tasks[1].AssignedTo, tasks[1].UpdatedAt = "running", "map-2", ts(9)
	require.NoError(t, s.SaveTask(ctx, tasks[1]))
	got, err = s.GetTask(ctx, "t2")
	require.NoError(t, err)
	require.Equal(t, norm(tasks[1]), got)

	// Defaults: id, status, timestamps.
	require.NoError(t, s.SaveTask(ctx, model.Task{Type: "custom", Priority: -1}))
	list, err = s.ListTasks(ctx, metastore.TaskFilter{Type: "custom"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Len(t, list[0].ID, 36)
	require.Equal(t, "queued", list[0].Status)
	require.WithinDuration(t, time.Now(), list[0].CreatedAt, time.Minute)
	require.Equal(t, list[0].CreatedAt, list[0].UpdatedAt)
	require.Nil(t, list[0].Payload)
}

func testCheckpoints(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))

	_, err := s.GetCheckpoint(ctx, "p1/input")
	require.ErrorIs(t, err, metastore.ErrNotFound)

	require.NoError(t, s.SaveCheckpoint(ctx, "p1/input", `{"lsn":"0/16B3740"}`))
	require.NoError(t, s.SaveCheckpoint(ctx, "p2/input", "offset=7"))
	pos, err := s.GetCheckpoint(ctx, "p1/input")
	require.NoError(t, err)
	require.Equal(t, `{"lsn":"0/16B3740"}`, pos)

	require.NoError(t, s.SaveCheckpoint(ctx, "p1/input", `{"lsn":"0/16B3800"}`))
	pos, err = s.GetCheckpoint(ctx, "p1/input")
	require.NoError(t, err)
	require.Equal(t, `{"lsn":"0/16B3800"}`, pos)

	require.NoError(t, s.DeleteCheckpoint(ctx, "p1/input"))
	_, err = s.GetCheckpoint(ctx, "p1/input")
	require.ErrorIs(t, err, metastore.ErrNotFound)
	require.NoError(t, s.DeleteCheckpoint(ctx, "p1/input"), "delete is idempotent")
	pos, err = s.GetCheckpoint(ctx, "p2/input")
	require.NoError(t, err)
	require.Equal(t, "offset=7", pos)
}

func testInvalidArguments(t *testing.T, b backend) {
	s := openStore(t, b.newDSN(t))
	require.ErrorIs(t, s.SaveCatalogEntry(ctx, metastore.CatalogEntry{Name: "no id"}), metastore.ErrInvalid)
	require.ErrorIs(t, s.SaveCatalogEntry(ctx, metastore.CatalogEntry{ID: "a", Profile: json.RawMessage(`{"a":`)}), metastore.ErrInvalid)
	_, err := s.SaveSchemaVersion(ctx, metastore.SchemaVersion{})
	require.ErrorIs(t, err, metastore.ErrInvalid)
	_, err = s.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{})
	require.ErrorIs(t, err, metastore.ErrInvalid)
	require.ErrorIs(t, s.SaveTask(ctx, model.Task{ID: "t", Payload: json.RawMessage(`nope`)}), metastore.ErrInvalid)
	require.ErrorIs(t, s.SaveCheckpoint(ctx, "", "x"), metastore.ErrInvalid)
	require.ErrorIs(t, s.SaveResolution(ctx, model.Resolution{}), metastore.ErrInvalid)
	require.ErrorIs(t, s.SaveExecution(ctx, metastore.Execution{ID: "e"}), metastore.ErrInvalid)
}

func testMigrationsIdempotent(t *testing.T, b backend) {
	dsn := b.newDSN(t)
	s1, err := metastore.Open(ctx, dsn)
	require.NoError(t, err)
	require.NoError(t, s1.SaveCheckpoint(ctx, "k", "v1"))
	versions := b.migrationVersions(t, dsn)
	require.NotEmpty(t, versions)
	for i, v := range versions {
		require.Equal(t, i+1, v)
	}
	require.NoError(t, s1.Close())

	// Re-opening applies nothing and keeps the data.
	s2 := openStore(t, dsn)
	pos, err := s2.GetCheckpoint(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v1", pos)
	require.Equal(t, versions, b.migrationVersions(t, dsn))
}

func testConcurrentOpen(t *testing.T, b backend) {
	dsn := b.newDSN(t)
	const n = 3
	stores := make([]metastore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = metastore.Open(ctx, dsn)
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	versions := b.migrationVersions(t, dsn)
	require.NotEmpty(t, versions)
	for i, v := range versions {
		require.Equal(t, i+1, v)
	}
	require.NoError(t, stores[0].SaveCheckpoint(ctx, "k", "from 0"))
	pos, err := stores[n-1].GetCheckpoint(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "from 0", pos)
}

// ---- backend-specific tests ----

// Two independent Opens of one SQLite file (as an engine process and the
// orchestrator would have) write concurrently; busy_timeout and short
// immediate transactions must keep SQLITE_BUSY from surfacing.
func TestSQLiteConcurrentWritersSameFile(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "shared.db")
	var (
		stores [2]metastore.Store
		errs   [2]error
		wg     sync.WaitGroup
	)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = metastore.Open(ctx, dsn)
		}()
	}
	wg.Wait()
	for i := range stores {
		require.NoError(t, errs[i])
		t.Cleanup(func() { _ = stores[i].Close() })
	}

	// WAL is a property of the file; a plain connection sees it.
	raw, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite://"))
	require.NoError(t, err)
	defer raw.Close()
	var mode string
	require.NoError(t, raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode)

	const writers, writes = 3, 40
	failures := make(chan error, 2*writers*writes)
	for si, s := range stores {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("s%d-w%d", si, w)
				for i := range writes {
					if err := s.SaveCheckpoint(ctx, id, fmt.Sprint(i)); err != nil {
						failures <- err
					}
					if i%10 == 0 {
						if _, err := s.SaveSchemaVersion(ctx, metastore.SchemaVersion{SourceID: "shared"}); err != nil {
							failures <- err
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		require.NoError(t, err)
	}
	// Each store sees the other's final writes.
	for si := range stores {
		for w := range writers {
			pos, err := stores[1-si].GetCheckpoint(ctx, fmt.Sprintf("s%d-w%d", si, w))
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(writes-1), pos)
		}
	}
	hist, err := stores[0].GetSchemaHistory(ctx, "shared")
	require.NoError(t, err)
	require.Len(t, hist, 2*writers*writes/10)
	for i, sv := range hist {
		require.Equal(t, i+1, sv.Version)
	}
}

func TestSQLiteDSNForms(t *testing.T) {
	// Relative path with a missing parent directory.
	t.Chdir(t.TempDir())
	s := openStore(t, "sqlite://./data/agentetl.db")
	require.NoError(t, s.SaveCheckpoint(ctx, "a", "1"))
	_, err := os.Stat(filepath.Join("data", "agentetl.db"))
	require.NoError(t, err)

	// In-memory stores are private to their Open.
	for _, dsn := range []string{"sqlite::memory:", "sqlite://:memory:"} {
		m := openStore(t, dsn)
		require.Equal(t, "sqlite", m.Backend())
		_, err := m.GetCheckpoint(ctx, "a")
		require.ErrorIs(t, err, metastore.ErrNotFound)
		require.NoError(t, m.SaveCheckpoint(ctx, "a", dsn))
		_, err = m.SaveSchemaVersion(ctx, metastore.SchemaVersion{SourceID: "s"})
		require.NoError(t, err)
		pos, err := m.GetCheckpoint(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, dsn, pos)
	}

	_, err = metastore.Open(ctx, "sqlite://")
	require.ErrorIs(t, err, metastore.ErrInvalid)
	_, err = metastore.Open(ctx, "sqlite://x.db?mode=ro")
	require.ErrorIs(t, err, metastore.ErrInvalid)
}

func TestOpenUnknownSchemeRedacted(t *testing.T) {
	for _, dsn := range []string{"mysql://root:hunter2pw@db:3306/app", "hunter2pw", "", "root:hunter2pw@db/app", "host=db password=hunter2pw"} {
		_, err := metastore.Open(ctx, dsn)
		require.ErrorIs(t, err, metastore.ErrInvalid, dsn)
		require.NotContains(t, err.Error(), "hunter2pw")
	}
	_, err := metastore.Open(ctx, "mysql://root:hunter2pw@db:3306/app")
	require.Contains(t, err.Error(), "mysql")
	require.Contains(t, err.Error(), "root:xxxxx@db")
}

func TestOpenPostgresErrorsRedacted(t *testing.T) {
	// Nothing listens on port 1: the connect error must not echo the password.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := metastore.Open(cctx, "postgres://agent:s3cr3t-pw@127.0.0.1:1/meta?sslmode=disable&connect_timeout=2")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cr3t-pw")
	require.Contains(t, err.Error(), "xxxxx")

	_, err = metastore.Open(cctx, "postgres://agent:s3cr3t-pw@127.0.0.1:1/meta?sslmode=bogus")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cr3t-pw")
}

func TestPostgresSpecific(t *testing.T) {
	if os.Getenv("AGENTETL_SKIP_PG") == "1" {
		t.Skip("AGENTETL_SKIP_PG=1")
	}
	pgConnect(t).Close(ctx)

	t.Run("PgErrorReachable", func(t *testing.T) {
		u, err := url.Parse(pgAdminDSN())
		require.NoError(t, err)
		u.Path = "/agentetl_no_such_db_" + randSuffix()
		_, err = metastore.Open(ctx, u.String())
		require.Error(t, err)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "want *pgconn.PgError in %v", err)
		require.Equal(t, "3D000", pgErr.Code) // invalid_catalog_name
	})

	t.Run("CreatesMissingSearchPathSchema", func(t *testing.T) {
		schema := "metastore_new_" + randSuffix()
		pgDropSchemaLater(t, schema)
		s := openStore(t, withSearchPath(t, pgAdminDSN(), schema))
		require.NoError(t, s.SaveCheckpoint(ctx, "k", "v"))

		conn := pgConnect(t)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx,
			`SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'checkpoints'`,
			schema).Scan(&n))
		require.Equal(t, 1, n)
		// Nothing leaked into public.
		require.NoError(t, conn.QueryRow(ctx,
			`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'checkpoints'`).Scan(&n))
		require.Equal(t, 0, n)
	})
}

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://user:secret@localhost:5432/db?sslmode=disable",
			"postgres://user:xxxxx@localhost:5432/db?sslmode=disable"},
		{"postgresql://user:p%40ss%2Fw@db.example.com/app",
			"postgresql://user:xxxxx@db.example.com/app"},
		// Unescaped '/', '?' and '@' in the password must not leak pieces.
		{"postgres://user:pa/ss?w@rd@host/db", "postgres://user:xxxxx@host/db"},
		{"postgres://user@localhost/db", "postgres://user@localhost/db"},
		{"postgres://localhost:5432/db?sslmode=disable", "postgres://localhost:5432/db?sslmode=disable"},
		{"postgres://localhost/db?user=u&password=secret&sslmode=disable",
			"postgres://localhost/db?user=u&password=xxxxx&sslmode=disable"},
		{"postgres://localhost/db?sslpassword=secret", "postgres://localhost/db?sslpassword=xxxxx"},
		{"host=localhost user=u password=secret dbname=x", "host=localhost user=u password=xxxxx dbname=x"},
		{"host=localhost password = 'se cret' dbname=x", "host=localhost password = xxxxx dbname=x"},
		{"PASSWORD=secret", "PASSWORD=xxxxx"},
		{"sqlite://./data/agentetl.db", "sqlite://./data/agentetl.db"},
		{"", ""},
	}
	for _, c := range cases {
		got := metastore.Redact(c.in)
		require.Equal(t, c.want, got, "Redact(%q)", c.in)
		require.NotContains(t, got, "secret")
	}
}
