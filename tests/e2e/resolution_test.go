package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// `agentetl diagnose` answers each JSON line with a diagnosis; a malformed
// line gets its own error and the lines after it are still diagnosed.
func TestDiagnoseCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, "diagnose")
	cmd.Stdin = strings.NewReader(strings.Join([]string{
		`{"message": "ERROR: canceling statement due to statement timeout", "sqlstate": "57014", "component": "root.output"}`,
		`{"message": "half a line`,
		`{"message": "Error 1062 (23000): Duplicate entry '7' for key 'orders.PRIMARY'", "errorType": "load"}`,
	}, "\n"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "a malformed line makes the exit code non-zero")
	require.Equal(t, 1, exit.ExitCode())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Len(t, lines, 3, stdout.String())
	var first, third map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	require.Equal(t, "timeout", first["category"])
	require.Equal(t, "retry", first["strategy"])
	require.Equal(t, true, first["transient"])
	require.Contains(t, lines[1], `"line":2`)
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &third))
	require.Equal(t, "constraint", third["category"])
	require.Equal(t, "skip", third["strategy"])
	require.Contains(t, stderr.String(), "diagnose: line 2: invalid JSON")
}

// The resilient-load example copies a table with bad rows into the target
// and the dead-letter table; after a fix, `agentetl dlq replay` re-sends the
// dead letters, and a second replay changes nothing.
func TestResilientLoadAndReplayCLI(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE src (id bigint PRIMARY KEY, name text, qty int, born text)`)
	db.Exec(t, `INSERT INTO src SELECT g, CASE WHEN g % 50 = 0 THEN repeat('y', 30) ELSE 'n' || g END,
		CASE WHEN g % 70 = 0 THEN -1 ELSE g END, CASE WHEN g % 90 = 0 THEN 'soon' ELSE '2024-01-02' END
		FROM generate_series(1, 3000) g`)
	db.Exec(t, `CREATE TABLE dst (id bigint PRIMARY KEY, name varchar(20), qty int CHECK (qty >= 0), born date)`)
	store := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	env := map[string]string{"SOURCE_DSN": db.DSN, "SOURCE_TABLE": "src", "TARGET_DSN": db.DSN, "TARGET_TABLE": "dst",
		"DLQ_TABLE": "dlq", "STORE_DSN": store, "LOG_LEVEL": "WARN", "PAGE_SIZE": "500"}
	cfg := filepath.Join(moduleRoot, "configs", "examples", "resilient-load.yaml")
	code, out, _ := runAgent(t, 90*time.Second, env, "run", cfg)
	require.Equal(t, 0, code, out)
	src, dst, dlq := db.Int(t, `SELECT count(*) FROM src`), db.Int(t, `SELECT count(*) FROM dst`), db.Int(t, `SELECT count(*) FROM dlq`)
	require.Equal(t, src, dst+dlq)
	require.Equal(t, db.Int(t, `SELECT count(*) FROM src WHERE id % 50 = 0 OR id % 70 = 0 OR id % 90 = 0`), dlq)

	db.Exec(t, `ALTER TABLE dst ALTER COLUMN name TYPE varchar(40)`)
	fp := db.String(t, `SELECT fingerprint FROM dlq WHERE code = '22001' LIMIT 1`)
	sent := db.Int(t, `SELECT count(*) FROM dlq WHERE fingerprint = $1`, fp)
	// Rows that are also bad in another way fail again and are dead-lettered anew.
	fixed := db.Int(t, `SELECT count(*) FROM dlq WHERE fingerprint = $1
		AND (payload->>'id')::bigint % 70 <> 0 AND (payload->>'id')::bigint % 90 <> 0`, fp)
	require.Positive(t, fixed)
	args := []string{"dlq", "replay", "--store", store, "--dlq", db.DSN, "--dlq-table", "dlq", "--fingerprint", fp, "--config", cfg}
	for i, want := range []int64{sent, 0} {
		code, out, _ = runAgent(t, 60*time.Second, env, args...)
		require.Equal(t, 0, code, out)
		require.Contains(t, out, `{"replayed":`+itoa(want)+`}`, "replay %d", i+1)
		require.Equal(t, dst+fixed, db.Int(t, `SELECT count(*) FROM dst`), "replay %d", i+1)
	}
	require.Equal(t, src, db.Int(t, `SELECT count(*) FROM dst`)+db.Int(t, `SELECT count(*) FROM dlq WHERE replayed_at IS NULL`))
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
