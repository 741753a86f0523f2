package orchestrator

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const validJSON = `{
  "id": "orders-copy",
  "name": "Orders copy",
  "type": "batch",
  "source": {"type": "postgres", "connection": {"dsn": "${SOURCE_DSN}"}, "table": "public.orders"},
  "transformations": [{"id": "rename", "type": "map", "logic": "root = this"}],
  "destination": {"type": "postgres", "connection": {"dsn": "postgres://etl:${PGPASSWORD}@db:5432/wh"}, "table": "public.orders_copy"},
  "schedule": {"cron": "*/5 * * * *", "timezone": "Europe/Paris"},
  "errorHandling": {"maxRetries": 3},
  "metadata": {"owner": "data", "tags": {"team": "core"}}
}`

func fieldPaths(t *testing.T, err error) []string {
	t.Helper()
	var ve *ValidationError
	require.True(t, errors.As(err, &ve), "want *ValidationError, got %T: %v", err, err)
	var out []string
	for _, f := range ve.Errors {
		out = append(out, f.Path)
	}
	return out
}

func TestDecodeValidJSONAndYAMLAgree(t *testing.T) {
	pj, err := DecodePipelineConfig([]byte(validJSON))
	require.NoError(t, err)
	require.Equal(t, "orders-copy", pj.ID)
	require.Equal(t, "${SOURCE_DSN}", pj.Source.Connection["dsn"])
	require.Equal(t, 3, pj.ErrorHandling.MaxRetries)
	require.Equal(t, "Europe/Paris", pj.Schedule.Timezone)
	require.Empty(t, Validate(pj))

	yamlDoc := `
id: orders-copy
name: Orders copy
type: batch
source:
  type: postgres
  connection: {dsn: "${SOURCE_DSN}"}
  table: public.orders
transformations:
  - {id: rename, type: map, logic: "root = this"}
destination:
  type: postgres
  connection: {dsn: "postgres://etl:${PGPASSWORD}@db:5432/wh"}
  table: public.orders_copy
schedule: {cron: "*/5 * * * *", timezone: Europe/Paris}
errorHandling: {maxRetries: 3}
metadata: {owner: data, tags: {team: core}}
`
	py, err := DecodePipelineConfig([]byte(yamlDoc))
	require.NoError(t, err)
	require.Equal(t, pj, py)
}

func TestDecodeReportsFieldPaths(t *testing.T) {
	cases := map[string]struct {
		body string
		path string
		msg  string
	}{
		"unknown nested field": {`{"source": {"tabel": "x"}}`, "source.tabel", `did you mean "table"`},
		"wrong type in array":  {`{"transformations": [{"type": "map"}, {"type": 7}]}`, "transformations[1].type", "must be a string"},
		"int out of range":     {`{"errorHandling": {"maxRetries": 1e40}}`, "errorHandling.maxRetries", "integer"},
		"fraction for int":     {`{"errorHandling": {"maxRetries": 1.5}}`, "errorHandling.maxRetries", "integer"},
		"object for string":    {`{"name": {"a": 1}}`, "name", "must be a string"},
		"duplicate key":        {`{"name": "a", "name": "b"}`, "name", "duplicate key"},
		"nested duplicate":     {`{"source": {"connection": {"dsn": "a", "dsn": "b"}}}`, "source.connection.dsn", "duplicate key"},
		"yaml unknown field":   {"name: x\ndestinaton: {}\n", "destinaton", `did you mean "destination"`},
		"yaml duplicate":       {"name: x\nname: y\n", "name", "duplicate key"},
		"yaml alias":           {"name: &a x\nid: *a\n", "id", "aliases"},
		"bad connection value": {`{"source": {"connection": {"dsn": 5}}}`, "source.connection.dsn", "must be a string"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodePipelineConfig([]byte(tc.body))
			require.Error(t, err)
			require.Contains(t, fieldPaths(t, err), tc.path)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestDecodeRejectsMalformedBodies(t *testing.T) {
	for _, body := range []string{"", "   ", `{"name": "x"`, `{"name": "x"} {}`, "[1,2]", "- a\n- b\n", "name: [unclosed\n", "42"} {
		_, err := DecodePipelineConfig([]byte(body))
		var ve *ValidationError
		require.True(t, errors.As(err, &ve), "body %q: want a ValidationError, got %v", body, err)
	}
	_, err := DecodePipelineConfig([]byte("{\n  \"name\": \"x\",\n  oops\n}"))
	require.ErrorContains(t, err, "3:")
}

func TestValidateRejectsLiteralSecrets(t *testing.T) {
	base, err := DecodePipelineConfig([]byte(validJSON))
	require.NoError(t, err)
	for _, dsn := range []string{
		"postgres://etl:hunter2@db:5432/wh",
		"postgres://etl:pre${PGPASSWORD}@db/wh",
		"host=db user=etl password=hunter2 dbname=wh",
		"postgres://etl@db/wh?password=hunter2",
		"postgres://etl:${PGPASSWORD:hunter2}@db/wh",
	} {
		pc := base
		pc.Source.Connection = map[string]string{"dsn": dsn}
		errs := Validate(pc)
		require.NotEmpty(t, errs, dsn)
		require.Equal(t, "source.connection.dsn", errs[0].Path, dsn)
		require.NotContains(t, errs[0].Message, "hunter2", "the message must not echo the secret")
	}
	pc := base
	pc.Source.Connection = map[string]string{"dsn": "${SOURCE_DSN}", "password": "x"}
	require.Equal(t, "source.connection.password", Validate(pc)[0].Path)
	require.Contains(t, Validate(pc)[0].Message, "environment reference")

	pc = base
	pc.Source.Connection = map[string]string{"dsn": "${AGENTETL_TOKEN}"}
	require.Contains(t, Validate(pc)[0].Message, "reserved")

	// ${...} outside connections would be expanded by the engine.
	pc = base
	pc.Transformations = append(pc.Transformations[:0:0], pc.Transformations...)
	pc.Transformations[0].Logic = `root.leak = "${PGPASSWORD}"`
	require.Equal(t, "transformations[0].logic", Validate(pc)[0].Path)
	pc = base
	pc.Destination.Table = "${HOME}"
	require.Equal(t, "destination.table", Validate(pc)[0].Path)
}

func TestValidateFieldPaths(t *testing.T) {
	base, err := DecodePipelineConfig([]byte(validJSON))
	require.NoError(t, err)
	cases := map[string]func(pc *pipelineConfigAlias){
		"id":                          func(pc *pipelineConfigAlias) { pc.ID = "Bad ID!" },
		"type":                        func(pc *pipelineConfigAlias) { pc.Type = "realtime" },
		"source.type":                 func(pc *pipelineConfigAlias) { pc.Source.Type = "kafka" },
		"transformations[0].type":     func(pc *pipelineConfigAlias) { pc.Transformations[0].Type = "join" },
		"schedule":                    func(pc *pipelineConfigAlias) { pc.Schedule.Cron = "every tuesday" },
		"errorHandling.maxRetries":    func(pc *pipelineConfigAlias) { pc.ErrorHandling.MaxRetries = -1 },
		"destination.table":           func(pc *pipelineConfigAlias) { pc.Destination.Table = "" },
		"source.connection.pageSize":  func(pc *pipelineConfigAlias) { pc.Source.Connection["pageSize"] = "0" },
		"errorHandling.deadLetter":    func(pc *pipelineConfigAlias) { pc.ErrorHandling.DeadLetter = "bad subject>" },
		"transformations[0].logic":    func(pc *pipelineConfigAlias) { pc.Transformations[0].Logic = " " },
		"source.connection.keyColumn": func(pc *pipelineConfigAlias) { pc.Source.Connection["keyColumn"] = "${X:y}" },
	}
	for want, mutate := range cases {
		t.Run(want, func(t *testing.T) {
			pc := clone(t, base)
			mutate(&pc)
			var paths []string
			for _, e := range Validate(pc) {
				paths = append(paths, e.Path)
			}
			require.Contains(t, paths, want)
		})
	}
	tzpc := clone(t, base)
	tzpc.Schedule.Timezone = "Mars/Olympus"
	require.Contains(t, Validate(tzpc)[0].Message, "unknown zone")
}

func TestCompileQuotesNamesAndLints(t *testing.T) {
	pc, err := DecodePipelineConfig([]byte(validJSON))
	require.NoError(t, err)
	pc.Transformations[0].Logic = `[{"sourceField":"full name","targetField":"na\"me"},{"sourceField":"amount","targetField":"total","transformation":"this.amount * 100"}]`
	c, err := Compile(pc)
	require.NoError(t, err)
	y := string(c.YAML)
	require.Contains(t, y, `root."na\"me" = this."full name"`)
	require.Contains(t, y, `root."total" = (this.amount * 100)`)
	require.Contains(t, y, "checkpoint_store: ${AGENTETL_STORE_DSN}")
	lints, err := Lint(c.YAML)
	require.NoError(t, err)
	require.Empty(t, lints)

	// A Bloblang syntax error is found by the linter with its position.
	pc.Transformations[0].Logic = "root = this\nroot.total = this.amount +"
	c, err = Compile(pc)
	require.NoError(t, err)
	lints, err = Lint(c.YAML)
	require.NoError(t, err)
	require.NotEmpty(t, lints)
	line := strings.Split(string(c.YAML), "\n")[lints[0].Line-1]
	require.Contains(t, line, "root.total", "lint line %d should point at the broken mapping line, got %q", lints[0].Line, line)

	// Functions that read the engine host are refused.
	pc.Transformations[0].Logic = `root.home = env("HOME")`
	_, err = Compile(pc)
	require.Equal(t, []string{"transformations[0].logic"}, fieldPaths(t, err))
	pc.Transformations[0].Type, pc.Transformations[0].Logic, pc.Transformations[0].Condition = "filter", "", "this.a > 1\nroot = 1"
	_, err = Compile(pc)
	require.Equal(t, []string{"transformations[0].condition"}, fieldPaths(t, err))
}

func TestUnifiedDiff(t *testing.T) {
	require.Empty(t, UnifiedDiff("a\nb\n", "a\nb\n", "x", "y"))
	d := UnifiedDiff("a\nb\nc\nd\ne\nf\ng\nh\ni\n", "a\nb\nc\nd\nE\nf\ng\nh\ni\n", "old", "new")
	require.Equal(t, "--- old\n+++ new\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n", d)
}
