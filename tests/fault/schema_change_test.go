package fault_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// schemaResumeYAML is the pipeline after the rename was noticed: the same
// input and checkpoint as configs/examples/postgres-to-postgres.yaml, a
// mapping that puts the renamed column back under the target's name, and an
// error_resolution output allowed to add the new source column to the
// target (add_nullable_column).
const schemaResumeYAML = `
http:
  enabled: false
input:
  postgres:
    dsn: ${SOURCE_DSN}
    table: src
    page_size: 1000
    checkpoint_id: "pg2pg:src:dst"
    checkpoint_store: ${STORE_DSN}
pipeline:
  processors:
    - mapping: |
        root = this.without("remark")
        root.note = this.remark
output:
  error_resolution:
    pipeline_id: fault-schema-change
    store: ""
    output:
      postgres:
        dsn: ${TARGET_DSN}
        table: dst
        mode: upsert
    dead_letter:
      postgres:
        dsn: ${TARGET_DSN}
        table: dlq
    destination:
      dsn: ${TARGET_DSN}
      table: dst
    adjustments: [ coerce, add_nullable_column ]
logger:
  level: INFO
  format: logfmt
`

// TestSourceSchemaChange: the source table changes under a running
// `agentetl run configs/examples/postgres-to-postgres.yaml`, each change
// made while a batch is held half written:
//
//   - a column is added and two types are widened (int to bigint,
//     varchar(10) to text), and rows that need the new column and the wider
//     types are appended: the run goes on;
//   - a column is renamed: the run stops with exit code 3 and an error that
//     names the missing column, its checkpoint behind what the target holds.
//
// The pipeline is then updated (a mapping for the rename, the target allowed
// to gain the new column) and resumed from the checkpoint. Nothing is lost:
// the target ends equal to the source, new column and wide values included.
func TestSourceSchemaChange(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const rows, extra = 60_000, 5_000
	const widenAt, renameAt = 15_500, 30_500
	db := testpg.NewSchema(t)
	execSQL(t, db.Pool, `CREATE TABLE src (id bigint PRIMARY KEY, qty int, name varchar(10), note text)`)
	execSQL(t, db.Pool, `INSERT INTO src SELECT g, g % 100000, 'n' || (g % 100000), md5(g::text) FROM generate_series(1, $1::int) g`, rows)
	execSQL(t, db.Pool, `CREATE TABLE dst (id bigint PRIMARY KEY, qty bigint, name text, note text)`)
	installGate(t, db.Pool, db.Schema, "dst", widenAt, renameAt)

	app := testpg.RandName("fault_schema_")
	store := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	env := map[string]string{
		"SOURCE_DSN": db.DSN, "SOURCE_TABLE": "src", "TARGET_DSN": withApp(db.DSN, app), "TARGET_TABLE": "dst",
		"PAGE_SIZE": "1000", "STORE_DSN": store, "LOG_LEVEL": "INFO",
	}
	p := startEngine(t, env, "run", exampleConfig("postgres-to-postgres.yaml"))

	waitHeld(t, db.Pool, app, p, 90*time.Second)
	execSQL(t, db.Pool, `ALTER TABLE src ADD COLUMN extra text`)
	execSQL(t, db.Pool, `ALTER TABLE src ALTER COLUMN qty TYPE bigint, ALTER COLUMN name TYPE text`)
	execSQL(t, db.Pool, `INSERT INTO src SELECT g, 3000000000 + g, 'a name longer than ten characters ' || g, md5(g::text), 'extra ' || g
		FROM generate_series($1::int + 1, $1::int + $2::int) g`, rows, extra)
	releaseGate(t, db.Pool, db.Schema, widenAt)

	waitUntil(t, 60*time.Second, p, "the first held batch committed", func() bool {
		return queryInt(t, db.Pool, `SELECT count(*) FROM dst WHERE id = $1`, widenAt) == 1
	})
	waitHeld(t, db.Pool, app, p, 60*time.Second)
	// With two batches in flight, every page before the one next to the
	// held one is committed by now: the widening did not stop the run.
	lo, hi := int64(widenAt-widenAt%1000), int64(renameAt-renameAt%1000-1000)
	require.Equal(t, hi-lo, queryInt(t, db.Pool, `SELECT count(*) FROM dst WHERE id > $1 AND id <= $2`, lo, hi),
		"the rows between the widening and the rename were copied: the widening did not stop the run")
	execSQL(t, db.Pool, `ALTER TABLE src RENAME COLUMN note TO remark`)
	releaseGate(t, db.Pool, db.Schema, renameAt)

	code := p.waitExit(t, 60*time.Second)
	require.Equalf(t, 3, code, "a renamed source column stops the run with exit code 3\n%s", p.tail())
	require.Containsf(t, p.output(), `agentetl: error: read page`, "the run says what failed\n%s", p.tail())
	require.Containsf(t, p.output(), `column "note" does not exist`, "the error names the renamed column\n%s", p.tail())
	atStop := queryInt(t, db.Pool, `SELECT count(*) FROM dst`)
	key, found := checkpointKey(t, store, "pg2pg:src:dst")
	require.True(t, found, "a checkpoint was stored before the rename")
	require.Equal(t, key, queryInt(t, db.Pool, `SELECT count(*) FROM dst WHERE id <= $1`, key),
		"the checkpoint claims rows the target does not hold")
	t.Logf("stopped by the rename with %d rows in the target, checkpoint at key %d", atStop, key)

	cfg := filepath.Join(t.TempDir(), "resume.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(schemaResumeYAML), 0o644))
	env["TARGET_DSN"] = db.DSN
	p = startEngine(t, env, "run", cfg)
	code = p.waitExit(t, 120*time.Second)
	require.Equalf(t, 0, code, "the updated pipeline must finish\n%s", p.tail())
	require.Truef(t, resumedFrom(p.output(), "pg2pg:src:dst"), "the updated pipeline resumed from the checkpoint\n%s", p.tail())

	src := queryStrings(t, db.Pool, `SELECT id::text FROM src`)
	dst := queryStrings(t, db.Pool, `SELECT id::text FROM dst`)
	var dead []string
	if queryInt(t, db.Pool, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'dlq'`, db.Schema) > 0 {
		dead = queryStrings(t, db.Pool, `SELECT payload->>'id' FROM dlq`)
	}
	report(t, "source_schema_change", start, account(src, dst, dead))
	require.Empty(t, dead, "a schema change dead-letters nothing")
	require.EqualValues(t, extra, queryInt(t, db.Pool, `SELECT count(*) FROM dst WHERE extra IS NOT NULL AND qty > 2147483647 AND length(name) > 10`),
		"the appended rows arrived with the new column and the wide values")
	_, want := orderedMD5(t, db.Pool, `SELECT id, qty, name, remark, extra FROM src`)
	_, got := orderedMD5(t, db.Pool, `SELECT id, qty, name, note, extra FROM dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
