package resolution_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/resolution"
)

// Malformed lines get a clear error each, and the lines after them are
// still diagnosed; output lines match input lines one to one.
func TestDiagnoseLinesContinuesAfterBadInput(t *testing.T) {
	in := strings.Join([]string{
		`{"message": "ERROR: duplicate key value violates unique constraint \"orders_pkey\" (SQLSTATE 23505)"}`,
		`{"message": "connection reset by peer", "errorType": "network"`,
		``,
		`not json at all`,
		`{"errorType": "timeout"}`,
		`{"message": 42}`,
		`{"message": "canceling statement", "sqlstate": "57014", "component": "root.output", "context": {"record": {"id": 1}}}`,
		`{"message": "a"} {"message": "b"}`,
	}, "\n")
	var out, errs bytes.Buffer
	ok, failed, err := resolution.DiagnoseLines(context.Background(), resolution.New(resolution.Config{}), strings.NewReader(in), &out, &errs)
	require.NoError(t, err)
	require.Equal(t, 2, ok)
	require.Equal(t, 5, failed)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 7)

	var d map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &d))
	require.Equal(t, "constraint", d["category"])
	require.Equal(t, "skip", d["strategy"])
	require.Equal(t, false, d["transient"])
	for _, k := range []string{"confidence", "fingerprint", "reasoning"} {
		require.NotEmpty(t, d[k], k)
	}

	var le resolution.LineError
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &le))
	require.Equal(t, 2, le.Line)
	require.Contains(t, le.Error, "invalid JSON")
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &le))
	require.Equal(t, 4, le.Line)
	require.NoError(t, json.Unmarshal([]byte(lines[3]), &le))
	require.Equal(t, 5, le.Line)
	require.Contains(t, le.Error, `"message" is required`)
	require.NoError(t, json.Unmarshal([]byte(lines[4]), &le))
	require.Contains(t, le.Error, `field "message" must be a string`)

	require.NoError(t, json.Unmarshal([]byte(lines[5]), &d))
	require.Equal(t, "timeout", d["category"])
	require.Equal(t, "retry", d["strategy"])
	require.Equal(t, true, d["transient"])

	require.NoError(t, json.Unmarshal([]byte(lines[6]), &le))
	require.Equal(t, 8, le.Line)
	require.Contains(t, le.Error, "more than one value")
	require.Contains(t, errs.String(), "diagnose: line 2: invalid JSON")
	require.Equal(t, 5, strings.Count(errs.String(), "\n"))
}
