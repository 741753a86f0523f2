package resolution_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"

	_ "github.com/agentetl/agentetl/plugins/postgres"
	_ "github.com/agentetl/agentetl/plugins/resolution"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// runStream builds a stream from YAML and runs it to completion.
func runStream(t *testing.T, timeout time.Duration, yaml string) (time.Duration, error) {
	t.Helper()
	sb := service.NewStreamBuilder()
	require.NoError(t, sb.SetYAML(yaml))
	stream, err := sb.Build()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err = stream.Run(ctx)
	return time.Since(start), err
}

// loadYAML copies src into dst through error_resolution, dead letters to dlq.
func loadYAML(dsn, src, dst, dlq, mode, extra string) string {
	return fmt.Sprintf(`
input:
  postgres:
    dsn: %[1]q
    table: %[2]s
    page_size: 5000
output:
  error_resolution:
    pipeline_id: test-load
    store: ""
    output:
      postgres:
        dsn: %[1]q
        table: %[3]s
        mode: %[5]s
    dead_letter:
      postgres:
        dsn: %[1]q
        table: %[4]s
%[6]s
logger:
  level: WARN
`, dsn, src, dst, dlq, mode, indent(extra, "    "))
}

func indent(s, by string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = by + l
	}
	return strings.Join(lines, "\n")
}
