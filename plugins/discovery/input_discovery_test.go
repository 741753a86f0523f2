package discovery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
	plugin "github.com/agentetl/agentetl/plugins/discovery"
)

type collected struct {
	mu   sync.Mutex
	msgs []*service.Message
}

func (c *collected) consume(_ context.Context, m *service.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m.Copy())
	return nil
}

func (c *collected) byKind(t *testing.T, kind string) []map[string]any {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, m := range c.msgs {
		k, _ := m.MetaGet(plugin.MetaKind)
		if k != kind {
			continue
		}
		b, err := m.AsBytes()
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(b, &doc))
		for _, key := range []string{plugin.MetaSource, plugin.MetaRun, plugin.MetaTable, plugin.MetaConnector, plugin.MetaChangeType, plugin.MetaSeverity} {
			if v, ok := m.MetaGet(key); ok {
				doc["@"+key] = v
			}
		}
		out = append(out, doc)
	}
	return out
}

func stream(t *testing.T, input string, c *collected, logs *bytes.Buffer) *service.Stream {
	t.Helper()
	b := service.NewStreamBuilder()
	if logs != nil {
		b.SetLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	} else {
		require.NoError(t, b.SetLoggerYAML(`level: warn`))
	}
	require.NoError(t, b.AddInputYAML(input))
	require.NoError(t, b.AddConsumerFunc(c.consume))
	s, err := b.Build()
	require.NoError(t, err)
	return s
}

func TestOnePassEmitsTablesAndChangesThenEnds(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE customers (id int PRIMARY KEY, email text)`)
	db.Exec(t, `INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 20) g`)
	db.Exec(t, `CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers (id), total numeric(10,2))`)
	store := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	input := fmt.Sprintf(`
discovery:
  dsn: %q
  include: [ %q ]
  store: %q
`, db.DSN, db.Schema+".*", store)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &collected{}
	require.NoError(t, stream(t, input, c, nil).Run(ctx), "interval \"\" makes one pass and ends")
	tables := c.byKind(t, plugin.KindTable)
	require.Len(t, tables, 2)
	require.Equal(t, db.Schema+".customers", tables[0]["table"])
	require.Equal(t, db.Schema+".customers", tables[0]["@"+plugin.MetaTable])
	require.Equal(t, "postgres", tables[0]["@"+plugin.MetaConnector])
	stats := tables[0]["stats"].(map[string]any)
	require.EqualValues(t, 20, stats["rowCount"])
	email := stats["fields"].(map[string]any)["email"].(map[string]any)
	require.Equal(t, "email", email["semanticType"])
	fields := tables[0]["schema"].(map[string]any)["fields"].([]any)
	require.Equal(t, "id", fields[0].(map[string]any)["name"])
	changes := c.byKind(t, plugin.KindSchemaChange)
	require.Len(t, changes, 2)
	for _, ch := range changes {
		require.Equal(t, "table_added", ch["changeType"])
		require.Equal(t, "table_added", ch["@"+plugin.MetaChangeType])
		require.Equal(t, "info", ch["@"+plugin.MetaSeverity])
		require.Equal(t, tables[0]["@"+plugin.MetaRun], ch["@"+plugin.MetaRun])
	}

	// The next pass reports what changed since.
	db.Exec(t, `ALTER TABLE orders ALTER COLUMN total TYPE numeric(8,2)`)
	c = &collected{}
	require.NoError(t, stream(t, input, c, nil).Run(ctx))
	changes = c.byKind(t, plugin.KindSchemaChange)
	require.Len(t, changes, 1)
	require.Equal(t, "type_changed", changes[0]["changeType"])
	require.Equal(t, "narrowing", changes[0]["typeChange"])
	require.Equal(t, "breaking", changes[0]["@"+plugin.MetaSeverity])
	require.Equal(t, "total", changes[0]["column"])
}

func TestPeriodicPasses(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE t (id int)`)
	c := &collected{}
	s := stream(t, fmt.Sprintf(`
discovery:
  dsn: %q
  include: [ %q ]
  profile: false
  interval: 150ms
`, db.DSN, db.Schema+".*"), c, nil)
	runUntil(t, s, func() bool { return len(c.byKind(t, plugin.KindTable)) >= 3 })
	runs := map[any]bool{}
	for _, m := range c.byKind(t, plugin.KindTable) {
		runs[m["@"+plugin.MetaRun]] = true
		require.Equal(t, false, m["stats"].(map[string]any)["profiled"])
	}
	require.GreaterOrEqual(t, len(runs), 3, "each pass has its own run id")
}

func TestUnreachableSourceRetriesWithBackoff(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	safe := &lockedWriter{w: &logs, mu: &mu}
	c := &collected{}
	b := service.NewStreamBuilder()
	b.SetLogger(slog.New(slog.NewTextHandler(safe, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, b.AddInputYAML(`
discovery:
  dsn: postgres://alice:s3cr3t-pw@127.0.0.1:1/sales?sslmode=disable
  retry_initial_interval: 50ms
  retry_max_interval: 200ms
  max_connect_attempts: 0
`))
	require.NoError(t, b.AddConsumerFunc(c.consume))
	s, err := b.Build()
	require.NoError(t, err)
	runUntil(t, s, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), "Cannot reach") >= 4
	})
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	require.Contains(t, out, "postgres://alice:xxxxx@127.0.0.1:1/sales")
	require.Contains(t, out, "connection refused")
	require.Contains(t, out, "next in 100ms", "the wait doubles")
	require.Contains(t, out, "next in 200ms", "up to the maximum")
	require.NotContains(t, out, "s3cr3t-pw")
	require.Empty(t, c.msgs)
}

// runUntil runs the stream until cond holds, then stops it.
func runUntil(t *testing.T, s *service.Stream, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, cond, 10*time.Second, 20*time.Millisecond)
	stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	require.NoError(t, s.Stop(stopCtx))
	require.NoError(t, <-done)
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestLintRules(t *testing.T) {
	for _, bad := range []string{
		"discovery:\n  dsn: postgres://x@y/z\n  interval: soon\n",
		"discovery:\n  dsn: postgres://x@y/z\n  concurrency: 0\n",
		"discovery:\n  dsn: postgres://x@y/z\n  sample_rows: 5\n",
		"discovery:\n  dsn: \"\"\n",
	} {
		b := service.NewStreamBuilder()
		require.Error(t, b.AddInputYAML(bad), bad)
	}
	b := service.NewStreamBuilder()
	require.NoError(t, b.AddInputYAML("discovery:\n  dsn: postgres://x@y/z\n  interval: 5m\n  include: [ \"sales.*\" ]\n"))
}
