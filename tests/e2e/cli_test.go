package e2e_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCLISubcommands checks that the distribution keeps every Benthos
// subcommand working and lists our components.
func TestCLISubcommands(t *testing.T) {
	code, out, _ := runAgent(t, 30*time.Second, nil, "--version")
	require.Equal(t, 0, code, out)
	require.Regexp(t, `Version: \S+ \(benthos v4\.60\.0\)`, out)

	for kind, want := range map[string]string{"inputs": "postgres", "outputs": "postgres", "metrics": "prometheus"} {
		code, out, _ := runAgent(t, 30*time.Second, nil, "list", kind)
		require.Equal(t, 0, code, out)
		require.Contains(t, strings.Fields(out), want, "list %s", kind)
	}

	cfg := writeConfig(t, "echo.yaml", `
input:
  postgres:
    dsn: postgres://u:secretpw@db/x
    table: Order Items
output:
  drop: {}
`)
	code, out, _ = runAgent(t, 30*time.Second, nil, "echo", cfg)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "table: Order Items")
	require.NotContains(t, out, "secretpw", "the DSN is a secret field: echo must scrub it")
	require.Contains(t, out, "prometheus: {}", "our exporter is the default metrics type")

	code, out, _ = runAgent(t, 30*time.Second, nil, "lint", cfg)
	require.Equal(t, 0, code, out)

	// blobl reads documents on stdin.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, "blobl", `root.total = this.qty * this.price`)
	cmd.Stdin = strings.NewReader(`{"qty":3,"price":2.5}` + "\n")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	require.NoError(t, cmd.Run())
	require.JSONEq(t, `{"total":7.5}`, strings.TrimSpace(stdout.String()))

	// test runs a config's unit tests.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`
pipeline:
  processors:
    - mapping: root = content().uppercase()
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p_benthos_test.yaml"), []byte(`
tests:
  - name: upper
    target_processors: /pipeline/processors
    input_batch: [ { content: abc } ]
    output_batches: [ [ { content_equals: ABC } ] ]
`), 0o644))
	code, out, _ = runAgent(t, 30*time.Second, nil, "test", filepath.Join(dir, "p.yaml"))
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "succeeded")
}
