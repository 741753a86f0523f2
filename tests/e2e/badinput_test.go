package e2e_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// badFixture is one isolated schema with a populated source table, an empty
// target and a private checkpoint store.
type badFixture struct {
	db       *testpg.DB
	src, dst string
	storeDSN string
}

// newBadFixture creates src (with srcDDL columns) holding 5000 rows from
// srcFill, and an empty dst with dstDDL columns.
func newBadFixture(t *testing.T, srcDDL, srcFill, dstDDL string) *badFixture {
	t.Helper()
	db := testpg.NewSchema(t)
	f := &badFixture{
		db: db, src: db.Schema + ".src", dst: db.Schema + ".dst",
		storeDSN: "sqlite://" + filepath.Join(t.TempDir(), "store.db"),
	}
	db.Exec(t, `CREATE TABLE `+f.src+` (`+srcDDL+`)`)
	db.Exec(t, `INSERT INTO `+f.src+` SELECT `+srcFill+` FROM generate_series(1, 5000) g`)
	db.Exec(t, `CREATE TABLE `+f.dst+` (`+dstDDL+`)`)
	return f
}

func newPeopleFixture(t *testing.T) *badFixture {
	const ddl = `id bigint PRIMARY KEY, name text`
	return newBadFixture(t, ddl, `g, (ARRAY['alice','bob','carol'])[g % 3 + 1]`, ddl)
}

func (f *badFixture) env() map[string]string {
	return map[string]string{
		"SOURCE_DSN": testpg.DSN(), "SOURCE_TABLE": f.src,
		"TARGET_DSN": testpg.DSN(), "TARGET_TABLE": f.dst,
		"STORE_DSN": f.storeDSN, "PAGE_SIZE": "1000", "LOG_LEVEL": "WARN",
	}
}

func (f *badFixture) checkpointID(env map[string]string) string {
	return "pg2pg:" + env["SOURCE_TABLE"] + ":" + env["TARGET_TABLE"]
}

// requireNothingWritten checks the target is still empty and the store holds
// no checkpoint for the pipeline.
func (f *badFixture) requireNothingWritten(t *testing.T, env map[string]string) {
	t.Helper()
	require.Zero(t, f.db.Int(t, `SELECT count(*) FROM `+f.dst), "rows were written to the target")
	pos, found := getCheckpoint(t, f.storeDSN, f.checkpointID(env))
	require.False(t, found, "a checkpoint was stored: %s", pos)
}

// requireFailed asserts a clean non-zero exit with every substring in the
// combined output.
func requireFailed(t *testing.T, code int, out string, want ...string) {
	t.Helper()
	require.NotZero(t, code, "agentetl must exit non-zero\n%s", out)
	for _, w := range want {
		require.Contains(t, out, w, "output must mention %q\n%s", w, out)
	}
}

// lineOf returns the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	require.FailNow(t, "no line contains "+s)
	return 0
}

func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

const typoConfig = `http:
  enabled: false

input:
  postgres:
    dsn: ${SOURCE_DSN}
    tabel: ${SOURCE_TABLE}
    checkpoint_id: "pg2pg:${SOURCE_TABLE}:${TARGET_TABLE}"
    checkpoint_store: ${STORE_DSN}

output:
  postgres:
    dsn: ${TARGET_DSN}
    table: ${TARGET_TABLE}
`

// A key of the postgres input indented by three spaces instead of four.
const misindentedKeyConfig = `http:
  enabled: false

input:
  postgres:
    dsn: ${SOURCE_DSN}
    table: ${SOURCE_TABLE}
   checkpoint_id: "pg2pg:${SOURCE_TABLE}:${TARGET_TABLE}"
    checkpoint_store: ${STORE_DSN}

output:
  postgres:
    dsn: ${TARGET_DSN}
    table: ${TARGET_TABLE}
`

// A top-level key indented by one space.
const misindentedSectionConfig = `http:
  enabled: false

input:
  postgres:
    dsn: ${SOURCE_DSN}
    table: ${SOURCE_TABLE}
    checkpoint_id: "pg2pg:${SOURCE_TABLE}:${TARGET_TABLE}"
    checkpoint_store: ${STORE_DSN}
 output:
  postgres:
    dsn: ${TARGET_DSN}
    table: ${TARGET_TABLE}
`

// TestBadInput runs agentetl against configurations and databases it cannot
// work with: each must end promptly with a non-zero exit and a message that
// says what is wrong, leaving the target and the checkpoint store untouched.
func TestBadInput(t *testing.T) {
	t.Run("lint/misspelled_field", func(t *testing.T) {
		f := newPeopleFixture(t)
		env := f.env()
		path := writeConfig(t, "typo.yaml", typoConfig)
		line := lineOf(t, typoConfig, "tabel:")

		code, out, _ := runAgent(t, 30*time.Second, env, "lint", path)
		require.Equal(t, 1, code, "lint exit code\n%s", out)
		requireFailed(t, code, out, fmt.Sprintf("typo.yaml(%d,", line), "tabel")

		code, out, _ = runAgent(t, 30*time.Second, env, "run", path)
		requireFailed(t, code, out, fmt.Sprintf("typo.yaml(%d,", line), "field tabel not recognised")
		f.requireNothingWritten(t, env)
	})

	for _, c := range []struct{ name, file, config, badLine string }{
		{"misindented_key", "indent.yaml", misindentedKeyConfig, "   checkpoint_id:"},
		{"misindented_section", "indent.yaml", misindentedSectionConfig, " output:"},
	} {
		t.Run("lint/yaml_"+c.name, func(t *testing.T) {
			f := newPeopleFixture(t)
			env := f.env()
			path := writeConfig(t, c.file, c.config)
			line := lineOf(t, c.config, c.badLine)

			code, lintOut, _ := runAgent(t, 30*time.Second, env, "lint", path)
			require.Equal(t, 1, code, "lint exit code\n%s", lintOut)
			requireFailed(t, code, lintOut, c.file+"(", "yaml")
			code, runOut, _ := runAgent(t, 30*time.Second, env, "run", path)
			requireFailed(t, code, runOut, c.file, "yaml")
			f.requireNothingWritten(t, env)

			// The report must point at the line that is wrong, either as
			// file.yaml(LINE,COL) or as "line LINE".
			lineRe := regexp.MustCompile(fmt.Sprintf(`%s\(%d,|line %d\b`, regexp.QuoteMeta(c.file), line, line))
			require.Regexpf(t, lineRe, lintOut, "`agentetl lint` must report the misindented line %d (%q)", line, c.badLine)
			require.Regexpf(t, lineRe, runOut, "`agentetl run` must report the misindented line %d (%q)", line, c.badLine)
		})
	}

	t.Run("dsn/no_such_database", func(t *testing.T) {
		f := newPeopleFixture(t)
		env := f.env()
		u, err := url.Parse(testpg.DSN())
		require.NoError(t, err)
		u.Path = "/no_such_db_xyz"
		u.RawQuery = "sslmode=disable"
		env["SOURCE_DSN"] = u.String()

		code, out, elapsed := runAgent(t, 30*time.Second, env, "run", exampleConfig())
		requireFailed(t, code, out, `no_such_db_xyz`, "does not exist")
		require.Less(t, elapsed, 10*time.Second, "a missing database is permanent and must fail fast, not be retried")
		f.requireNothingWritten(t, env)
	})

	t.Run("dsn/closed_port", func(t *testing.T) {
		f := newPeopleFixture(t)
		env := f.env()
		env["SOURCE_DSN"] = "postgres://postgres:hunter2@127.0.0.1:1/postgres?sslmode=disable"

		code, out, elapsed := runAgent(t, 45*time.Second, env, "run", exampleConfig())
		requireFailed(t, code, out, "127.0.0.1:1", "connection refused")
		require.Less(t, elapsed, 30*time.Second, "the input must give up after max_connect_attempts")
		require.NotContains(t, out, "hunter2", "the password leaked into the output")
		f.requireNothingWritten(t, env)
	})

	t.Run("dsn/closed_port_target", func(t *testing.T) {
		f := newPeopleFixture(t)
		env := f.env()
		env["TARGET_DSN"] = "postgres://postgres:hunter2@127.0.0.1:1/postgres?sslmode=disable"

		code, out, elapsed := runAgent(t, 45*time.Second, env, "run", exampleConfig())
		requireFailed(t, code, out, "127.0.0.1:1", "connection refused")
		require.Less(t, elapsed, 30*time.Second, "the output must give up after max_connect_attempts")
		require.NotContains(t, out, "hunter2", "the password leaked into the output")
		f.requireNothingWritten(t, env)
	})

	t.Run("source/missing_table", func(t *testing.T) {
		f := newPeopleFixture(t)
		env := f.env()
		env["SOURCE_TABLE"] = f.db.Schema + ".no_such_table"

		code, out, elapsed := runAgent(t, 30*time.Second, env, "run", exampleConfig())
		requireFailed(t, code, out, f.db.Schema+".no_such_table", "does not exist")
		require.Less(t, elapsed, 10*time.Second, "a missing table is permanent and must fail fast")
		f.requireNothingWritten(t, env)
	})

	t.Run("source/missing_key_column", func(t *testing.T) {
		f := newBadFixture(t,
			`id bigint PRIMARY KEY, full_name text, signup_day date`,
			`g, 'n' || g, date '2024-01-01' + g`,
			`id bigint PRIMARY KEY, full_name text, signup_day date`)
		env := f.env()
		env["KEY_COLUMN"] = "nope"

		code, out, elapsed := runAgent(t, 30*time.Second, env, "run", exampleConfig())
		requireFailed(t, code, out, "nope", "does not exist", "full_name", "signup_day")
		require.Regexp(t, `key column \\?"nope\\?" does not exist`, out)
		require.Less(t, elapsed, 10*time.Second, "a missing key column is permanent and must fail fast")
		f.requireNothingWritten(t, env)
	})

	t.Run("target/incompatible_column_type", func(t *testing.T) {
		f := newBadFixture(t,
			`id bigint PRIMARY KEY, name text`,
			`g, (ARRAY['alice','bob','carol'])[g % 3 + 1]`,
			`id bigint PRIMARY KEY, name integer`)
		env := f.env()

		code, out, elapsed := runAgent(t, 30*time.Second, env, "run", exampleConfig())
		requireFailed(t, code, out, "incompatible column type")
		require.Regexp(t, `column \\?"name\\?"`, out, "the message must name the column")
		require.Less(t, elapsed, 10*time.Second, "an incompatible column is permanent and must fail fast")
		f.requireNothingWritten(t, env)
	})

	// Sanity check of the fixture itself: the same pipeline with nothing
	// wrong copies every row and stores a checkpoint, so the "nothing
	// written" assertions above can tell success from failure.
	t.Run("control/valid_run_writes", func(t *testing.T) {
		f := newPeopleFixture(t)
		env := f.env()
		code, out, _ := runAgent(t, 30*time.Second, env, "run", exampleConfig())
		require.Equal(t, 0, code, out)
		require.EqualValues(t, 5000, f.db.Int(t, `SELECT count(*) FROM `+f.dst))
		pos, found := getCheckpoint(t, f.storeDSN, f.checkpointID(env))
		require.True(t, found)
		require.Contains(t, pos, `"key":"5000"`)
	})
}
