package orchestrator_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
)

func paths(errs []orchestrator.FieldError) map[string]string {
	out := map[string]string{}
	for _, e := range errs {
		out[e.Path] = e.Message
	}
	return out
}

// TestLocalEndpointsCompileAndLint: sqlite, csv and generate endpoints
// compile to configs the engine's linter accepts, with the checkpoint of an
// sqlite source in the store and CSV empty fields read as null.
func TestLocalEndpointsCompileAndLint(t *testing.T) {
	sqliteTarget := model.DestinationConfig{Type: "sqlite", Table: "orders",
		Connection: map[string]string{"dsn": "sqlite:///var/lib/demo/target.db", "keyColumns": "order_id"}}
	cases := map[string]struct {
		pc   model.PipelineConfig
		want []string
	}{
		"sqlite to sqlite": {model.PipelineConfig{ID: "a", Name: "a", Type: "batch",
			Source: model.SourceConfig{Type: "sqlite", Table: "CUST_ORD", Connection: map[string]string{
				"dsn": "sqlite:///var/lib/demo/legacy.db", "keyColumn": "ord_id", "pageSize": "500", "columns": "ord_id, cst_nm"}},
			Destination:   sqliteTarget,
			ErrorHandling: model.ErrorHandlingConfig{DeadLetter: "file:/var/lib/demo/dead.jsonl"}},
			[]string{"sqlite:\n    checkpoint_id: pipeline:a\n    checkpoint_store: ${AGENTETL_STORE_DSN}", "key_column: ord_id", "page_size: 500",
				"- ord_id\n      - cst_nm", "table: CUST_ORD", "error_resolution:", "sqlite:\n        dsn: sqlite:///var/lib/demo/target.db",
				"key_columns:\n          - order_id", "path: /var/lib/demo/dead.jsonl"}},
		"csv to postgres": {model.PipelineConfig{ID: "b", Name: "b", Type: "batch",
			Source:          model.SourceConfig{Type: "csv", Connection: map[string]string{"path": "/data/export.csv", "delimiter": ";"}},
			Destination:     model.DestinationConfig{Type: "postgres", Table: "public.orders", Connection: map[string]string{"dsn": "${PG_DSN}"}},
			Transformations: []model.Transformation{{ID: "m", Type: "map", Logic: `root = this`}}},
			[]string{"csv:\n    batch_count: 500\n    delimiter: ;\n    parse_header_row: true\n    paths:\n      - /data/export.csv",
				"label: csv_empty_as_null", "label: m"}},
		"generate to sqlite": {model.PipelineConfig{ID: "c", Name: "c", Type: "stream",
			Source: model.SourceConfig{Type: "generate", Connection: map[string]string{
				"mapping": `root = {"event_id": uuid_v4(), "at": now()}`, "interval": "2s", "count": "10"}},
			Destination: sqliteTarget},
			[]string{"generate:\n    count: 10\n    interval: 2s\n    mapping: 'root = {\"event_id\": uuid_v4(), \"at\": now()}'"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			require.Empty(t, orchestrator.Validate(c.pc))
			out, err := orchestrator.Compile(c.pc)
			require.NoError(t, err)
			y := string(out.YAML)
			for _, w := range c.want {
				require.Contains(t, y, w)
			}
			lints, err := orchestrator.Lint(out.YAML)
			require.NoError(t, err)
			require.Empty(t, lints, y)
		})
	}
}

func TestLocalEndpointsRejectWhatWouldMisbehave(t *testing.T) {
	base := func() model.PipelineConfig {
		return model.PipelineConfig{ID: "x", Name: "x", Type: "batch",
			Source: model.SourceConfig{Type: "sqlite", Table: "t", Connection: map[string]string{"dsn": "sqlite:///d/src.db"}},
			Destination: model.DestinationConfig{Type: "sqlite", Table: "u",
				Connection: map[string]string{"dsn": "sqlite:///d/dst.db"}}}
	}
	cases := map[string]struct {
		change func(*model.PipelineConfig)
		path   string
		text   string
	}{
		"relative sqlite path": {func(pc *model.PipelineConfig) { pc.Source.Connection["dsn"] = "sqlite://./data/src.db" },
			"source.connection.dsn", "absolute"},
		"sqlite query parameters": {func(pc *model.PipelineConfig) { pc.Destination.Connection["dsn"] = "sqlite:///d/x.db?mode=rwc" },
			"destination.connection.dsn", "without query parameters"},
		"sqlite without table": {func(pc *model.PipelineConfig) { pc.Destination.Table = "" },
			"destination.table", "is required"},
		"unknown sqlite key": {func(pc *model.PipelineConfig) { pc.Source.Connection["password"] = "x" },
			"source.connection.password", "secrets are not separate connection fields"},
		"relative csv path": {func(pc *model.PipelineConfig) {
			pc.Source = model.SourceConfig{Type: "csv", Connection: map[string]string{"path": "export.csv"}}
		}, "source.connection.path", "absolute path"},
		"csv with a table": {func(pc *model.PipelineConfig) {
			pc.Source = model.SourceConfig{Type: "csv", Table: "t", Connection: map[string]string{"path": "/e.csv"}}
		}, "source.table", "connection.path"},
		"long csv delimiter": {func(pc *model.PipelineConfig) {
			pc.Source = model.SourceConfig{Type: "csv", Connection: map[string]string{"path": "/e.csv", "delimiter": ";;"}}
		}, "source.connection.delimiter", "single character"},
		"generate in a batch pipeline": {func(pc *model.PipelineConfig) {
			pc.Source = model.SourceConfig{Type: "generate", Connection: map[string]string{"mapping": "root = {}"}}
		}, "source.type", "for stream pipelines"},
		"sqlite in a stream pipeline": {func(pc *model.PipelineConfig) { pc.Type = "stream" },
			"source.type", "for batch pipelines"},
		"env in a generate mapping": {func(pc *model.PipelineConfig) {
			pc.Type = "stream"
			pc.Source = model.SourceConfig{Type: "generate", Connection: map[string]string{"mapping": `root = "${SECRET}"`}}
		}, "source.connection.mapping", "must not contain"},
		"bad interval": {func(pc *model.PipelineConfig) {
			pc.Type = "stream"
			pc.Source = model.SourceConfig{Type: "generate", Connection: map[string]string{"interval": "soon"}}
		}, "source.connection.interval", "duration"},
		"table dead letter without postgres": {func(pc *model.PipelineConfig) { pc.ErrorHandling.DeadLetter = "table:dl" },
			"errorHandling.deadLetter", "file:<path>"},
		"unknown type": {func(pc *model.PipelineConfig) { pc.Destination.Type = "mysql" },
			"destination.type", `must be one of "nats", "postgres", "sqlite"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			pc := base()
			require.Empty(t, orchestrator.Validate(pc))
			c.change(&pc)
			got := paths(orchestrator.Validate(pc))
			require.Contains(t, got, c.path, "%v", got)
			require.Contains(t, got[c.path], c.text)
		})
	}

	// Impure Bloblang in a generate mapping is refused at compile time.
	pc := base()
	pc.Type = "stream"
	pc.Source = model.SourceConfig{Type: "generate", Connection: map[string]string{"mapping": `root = env("HOME")`}}
	require.Empty(t, orchestrator.Validate(pc))
	_, err := orchestrator.Compile(pc)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "not allowed in pipeline logic"), err.Error())
}
