package resolution_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/resolution"
)

// CHECK definitions as pg_get_constraintdef prints them; Violated is true
// only when the expression is certainly false (NULL passes, as in SQL).
func TestCheckExpressions(t *testing.T) {
	cases := []struct {
		def      string
		rec      map[string]any
		violated bool
	}{
		{"CHECK ((qty >= 0))", map[string]any{"qty": int64(-1)}, true},
		{"CHECK ((qty >= 0))", map[string]any{"qty": int64(0)}, false},
		{"CHECK ((qty >= 0))", map[string]any{"qty": nil}, false},
		{"CHECK ((qty >= 0))", map[string]any{}, false},
		{"CHECK ((qty >= 0))", map[string]any{"qty": json.Number("-0.5")}, true},
		{"CHECK ((price > 0.5))", map[string]any{"price": 0.25}, true},
		{"CHECK (((qty >= 0) AND (qty <= 100)))", map[string]any{"qty": int64(101)}, true},
		{"CHECK (((qty < 0) OR (note IS NOT NULL)))", map[string]any{"qty": int64(5), "note": nil}, true},
		{"CHECK (((qty < 0) OR (note IS NOT NULL)))", map[string]any{"qty": int64(5), "note": "x"}, false},
		{"CHECK ((length((code)::text) = 3))", map[string]any{"code": "ABCD"}, true},
		{"CHECK ((char_length(code) <= 3))", map[string]any{"code": "äöü"}, false},
		{"CHECK (((status)::text = ANY ((ARRAY['new'::character varying, 'paid'::character varying])::text[])))", map[string]any{"status": "lost"}, true},
		{"CHECK (((status)::text = ANY ((ARRAY['new'::character varying, 'paid'::character varying])::text[])))", map[string]any{"status": "paid"}, false},
		{"CHECK ((name <> ''::text))", map[string]any{"name": ""}, true},
		{"CHECK ((NOT (flag = false)))", map[string]any{"flag": false}, true},
		{"CHECK ((name > 'm'::text))", map[string]any{"name": "a"}, false}, // collation-dependent: left to the server
		{"CHECK ((start_at < end_at))", map[string]any{"start_at": int64(5), "end_at": int64(3)}, true},
	}
	for _, c := range cases {
		e, err := resolution.ParseCheck(c.def)
		require.NoError(t, err, c.def)
		require.Equal(t, c.violated, e.Violated(c.rec), "%s with %v", c.def, c.rec)
	}
	for _, bad := range []string{
		"UNIQUE (id)",
		"CHECK ((my_func(qty) > 0))",
		"CHECK ((created_at < now()))",
		"CHECK ((qty ~~ 'x%'::text))",
	} {
		_, err := resolution.ParseCheck(bad)
		require.Error(t, err, bad)
	}
}
