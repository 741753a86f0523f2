package mapping_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/mapping"
)

func TestParseSchemaErrorsHavePositions(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"trailing comma", "{\"id\":\"s\",\n \"fields\":[\n  {\"name\":\"a\",\"dataType\":\"int\"},\n ]\n}", "line 4, column 2"},
		{"missing quote", "{\"id\":\"s\",\"fields\":[{\"name\":\"a,\"dataType\":\"int\"}]}", "line 1, column 33: invalid JSON: invalid character 'd'"},
		{"wrong type", "{\"id\":\"s\",\n\"fields\":{\"name\":\"a\"}}", "line 2, column 11: fields must be an array, not JSON object"},
		{"wrong field type", "{\"id\":\"s\",\"fields\":[\n{\"name\":42}]}", "line 2, column 11: fields.name must be a string, not JSON number"},
		{"truncated", "{\"id\":\"s\",\"fields\":[", "unexpected end of JSON"},
		{"empty", "", "empty document"},
		{"trailing data", "{\"id\":\"s\",\"fields\":[]} {}", "line 1, column 24"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := mapping.ParseSchema([]byte(c.doc))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestParseSchemaRejectsDuplicatesAndEmptyNames(t *testing.T) {
	_, err := mapping.ParseSchema([]byte(`{"id":"s","fields":[{"name":"a"},{"name":"b"},{"name":"a"}]}`))
	require.EqualError(t, err, `duplicate field name "a" (fields #1 and #3)`)
	_, err = mapping.ParseSchema([]byte(`{"id":"s","fields":[{"name":""}]}`))
	require.ErrorContains(t, err, "empty name")
}

func TestParseSchemaKeepsBigIntegersExact(t *testing.T) {
	s, err := mapping.ParseSchema([]byte(`{"id":"s","fields":[{"name":"a","samples":[12345678901234567890, 7, 1.5]}]}`))
	require.NoError(t, err)
	require.Equal(t, []any{"12345678901234567890", 7.0, 1.5}, s.Fields[0].Samples)
}
