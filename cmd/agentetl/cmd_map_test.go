package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/metastore"
)

// runMapCLI runs `agentetl map args...` in-process and returns stdout.
func runMapCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "agentetl", Commands: []*cli.Command{mapCommand()}, Writer: &out, ErrWriter: &bytes.Buffer{}}
	err := app.RunContext(context.Background(), append([]string{"agentetl", "map"}, args...))
	return out.String(), err
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

const fixtures = "../../agents/mapping/testdata/"

func TestMapCommandJSON(t *testing.T) {
	out, err := runMapCLI(t, "--source", fixtures+"crm_contacts.json", "--target", fixtures+"marketing_contacts.json")
	require.NoError(t, err)
	var ms []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &ms), "stdout is only JSON")
	require.Len(t, ms, 24)
	require.Equal(t, "first_name", ms[1]["targetField"])
	require.Equal(t, "FirstName", ms[1]["sourceField"])
}

func TestMapCommandBloblangAndSQL(t *testing.T) {
	out, err := runMapCLI(t, "-s", fixtures+"hr_legacy.json", "-t", fixtures+"hr_modern.json", "--format", "bloblang")
	require.NoError(t, err)
	_, err = bloblang.Parse(out)
	// ts_* methods live in the pure components, which main links in.
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "# agentetl schema mapping"))

	out, err = runMapCLI(t, "-s", fixtures+"hr_legacy.json", "-t", fixtures+"hr_modern.json", "-f", "sql")
	require.NoError(t, err)
	require.Contains(t, out, `"EMP_NO" AS "employee_id"`)

	out, err = runMapCLI(t, "-s", fixtures+"hr_legacy.json", "-t", fixtures+"hr_modern.json", "-f", "document")
	require.NoError(t, err)
	res, err := mapping.ParseDocument([]byte(out))
	require.NoError(t, err)
	require.Len(t, res.Mappings, 22)
}

func TestMapCommandBadInput(t *testing.T) {
	good := fixtures + "crm_contacts.json"
	bad := writeFile(t, "bad.json", "{\"id\":\"x\",\n\"fields\":[\n{\"name\":\"a\"},,\n]}")
	_, err := runMapCLI(t, "-s", bad, "-t", good)
	require.ErrorContains(t, err, "line 3, column 14")
	require.ErrorContains(t, err, "bad.json")

	dup := writeFile(t, "dup.json", `{"id":"x","fields":[{"name":"a"},{"name":"a"}]}`)
	_, err = runMapCLI(t, "-s", good, "-t", dup)
	require.ErrorContains(t, err, `duplicate field name "a"`)

	empty := writeFile(t, "empty.json", `{"id":"x","fields":[]}`)
	out, err := runMapCLI(t, "-s", empty, "-t", good)
	require.NoError(t, err)
	require.JSONEq(t, "[]", out)

	_, err = runMapCLI(t, "-s", good, "-t", good, "-f", "yaml")
	require.ErrorContains(t, err, "--format")
	_, err = runMapCLI(t, "-s", good, "-t", filepath.Join(t.TempDir(), "missing.json"))
	require.Error(t, err)
	_, err = runMapCLI(t, "-s", good, "-t", good, "--accept", "0.3", "--review", "0.5")
	require.ErrorContains(t, err, "thresholds")
}

func TestMapCommandLLMWithoutConfigStillWorks(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("OPENAI_BASE_URL", "")
	out, err := runMapCLI(t, "--llm", "-s", fixtures+"crm_contacts.json", "-t", fixtures+"marketing_contacts.json")
	require.NoError(t, err)
	var ms []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &ms))
	require.NotEmpty(t, ms)
}

func TestMapCommandHistoryFromStore(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	st, err := metastore.Open(ctx, dsn)
	require.NoError(t, err)
	m := mapping.FieldMapping{SourceField: mapping.Sources{"Phone"}, TargetField: "phone_number", Status: mapping.StatusReview}
	for range 3 {
		require.NoError(t, st.SaveAgentDecision(ctx, mapping.Decision(m, mapping.ActionRejected, "reviewer", "")))
	}
	require.NoError(t, st.Close())
	out, err := runMapCLI(t, "--store", dsn, "-s", fixtures+"crm_contacts.json", "-t", fixtures+"marketing_contacts.json")
	require.NoError(t, err)
	var ms []mapping.FieldMapping
	require.NoError(t, json.Unmarshal([]byte(out), &ms))
	for _, fm := range ms {
		if fm.TargetField == "phone_number" {
			require.NotEqual(t, mapping.Sources{"Phone"}, fm.SourceField, "a pair rejected three times is not proposed")
		}
	}
}
