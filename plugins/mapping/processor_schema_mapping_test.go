package mapping_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"

	agent "github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	_ "github.com/agentetl/agentetl/plugins/mapping"
)

const fixtures = "../../agents/mapping/testdata/"

func readSchema(t testing.TB, name string) model.Schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	require.NoError(t, err)
	s, err := agent.ParseSchema(b)
	require.NoError(t, err)
	return s
}

// hrDocument writes the proposed HR mapping document to a file.
func hrDocument(t testing.TB) (string, *agent.Result) {
	t.Helper()
	res, err := agent.New(agent.Options{}).Map(context.Background(), readSchema(t, "hr_legacy.json"), readSchema(t, "hr_modern.json"))
	require.NoError(t, err)
	doc, err := res.Document()
	require.NoError(t, err)
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "hr.json")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p, res
}

// processors builds labelled processor resources from YAML snippets.
func processors(t testing.TB, confs map[string]string) *service.Resources {
	t.Helper()
	rb := service.NewResourceBuilder()
	for label, c := range confs {
		require.NoError(t, rb.AddProcessorYAML("label: "+label+"\n"+c))
	}
	res, stop, err := rb.Build()
	require.NoError(t, err)
	t.Cleanup(func() { _ = stop(context.Background()) })
	return res
}

func process(t testing.TB, res *service.Resources, label string, in []byte) *service.Message {
	t.Helper()
	var out service.MessageBatch
	require.NoError(t, res.AccessProcessor(context.Background(), label, func(p *service.ResourceProcessor) {
		var err error
		out, err = p.Process(context.Background(), service.NewMessage(in))
		require.NoError(t, err)
	}))
	require.Len(t, out, 1)
	return out[0]
}

var legacyRecord = `{"EMP_NO":10001,"EMP_FNAME":"Ada","EMP_LNAME":"Lovelace","DOB":"03/15/1985","HIRE_DT":1262304000000,` +
	`"TERM_DT":null,"SAL_AMT":"$85,000.50","DEPT_CD":"FIN","STAT_CD":"A","EMAIL_ADDR":"ada@example.com",` +
	`"PHONE_NBR":"+1 415 555 0100","MGR_EMP_NO":10002,"JOB_TTL":"Senior Software Engineer","ADDR_LN1":"12 Analytical Way",` +
	`"ADDR_LN2":null,"CITY_NM":"London","ST_CD":"CA","ZIP_CD":"02110","GNDR_CD":"F","FT_PT_IND":"Y","SSN":"1","LST_UPD_USR":"X"}`

func TestApplyTransformsRecords(t *testing.T) {
	path, _ := hrDocument(t)
	res := processors(t, map[string]string{"sm": "schema_mapping:\n  mapping_file: " + path})
	out := process(t, res, "sm", []byte(legacyRecord))
	require.NoError(t, out.GetError())
	v, err := out.AsStructured()
	require.NoError(t, err)
	rec := v.(map[string]any)
	require.Equal(t, "Ada Lovelace", rec["full_name"])
	require.Equal(t, "1985-03-15", rec["date_of_birth"])
	require.Equal(t, true, rec["is_active"])
	require.NotContains(t, rec, "SSN")
	_, hasDrift := out.MetaGet("schema_drift")
	require.False(t, hasDrift)
}

func TestDriftPolicies(t *testing.T) {
	path, _ := hrDocument(t)
	drifted := strings.Replace(legacyRecord, `{"EMP_NO"`, `{"NEW_COL":"x","BADGE":7,"EMP_NO"`, 1)
	res := processors(t, map[string]string{
		"ignore":      "schema_mapping:\n  mapping_file: " + path + "\n  drift_policy: ignore",
		"passthrough": "schema_mapping:\n  mapping_file: " + path + "\n  drift_policy: passthrough",
		"review":      "schema_mapping:\n  mapping_file: " + path + "\n  drift_policy: route_to_review\n  drift_metadata_key: drift",
		"fail":        "schema_mapping:\n  mapping_file: " + path + "\n  drift_policy: fail",
	})
	for _, label := range []string{"ignore", "passthrough", "review", "fail"} {
		out := process(t, res, label, []byte(drifted))
		key := "schema_drift"
		if label == "review" {
			key = "drift"
		}
		meta, ok := out.MetaGet(key)
		require.True(t, ok, label)
		require.JSONEq(t, `["BADGE","NEW_COL"]`, meta, label)
		v, err := out.AsStructured()
		require.NoError(t, err)
		rec := v.(map[string]any)
		switch label {
		case "ignore":
			require.NoError(t, out.GetError())
			require.Contains(t, rec, "full_name")
			require.NotContains(t, rec, "NEW_COL")
		case "passthrough":
			require.NoError(t, out.GetError())
			require.Contains(t, rec, "full_name")
			require.Equal(t, "x", rec["NEW_COL"])
			require.Equal(t, "7", fmt.Sprint(rec["BADGE"]))
		case "review", "fail":
			require.ErrorContains(t, out.GetError(), "NEW_COL")
			require.Contains(t, rec, "EMP_NO", "the original record is kept for review")
		}
	}
}

func TestApplyRejectsBadRecords(t *testing.T) {
	path, _ := hrDocument(t)
	res := processors(t, map[string]string{"sm": "schema_mapping:\n  mapping_file: " + path})
	require.Error(t, process(t, res, "sm", []byte(`not json`)).GetError())
	require.Error(t, process(t, res, "sm", []byte(`[1,2]`)).GetError())
}

func TestProposeEmitsDocumentAndRecordsDecisions(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	res := processors(t, map[string]string{"p": "schema_mapping:\n  mode: propose\n  store_dsn: " + dsn})
	req, err := json.Marshal(map[string]any{"source": readSchema(t, "crm_contacts.json"), "target": readSchema(t, "marketing_contacts.json")})
	require.NoError(t, err)
	out := process(t, res, "p", req)
	require.NoError(t, out.GetError())
	b, err := out.AsBytes()
	require.NoError(t, err)
	doc, err := agent.ParseDocument(b)
	require.NoError(t, err)
	require.Len(t, doc.Mappings, 24)
	require.NotEmpty(t, doc.Proposals())

	// The emitted document is directly applicable.
	res2 := processors(t, map[string]string{"a": "schema_mapping:\n  mapping: '" + strings.ReplaceAll(string(b), "'", "''") + "'"})
	rec := process(t, res2, "a", []byte(`{"FirstName":"Marie","LastName":"Curie","Email":"m@x.example"}`))
	require.NoError(t, rec.GetError())
	v, _ := rec.AsStructured()
	require.Equal(t, "m@x.example", v.(map[string]any)["email_address"])

	require.Error(t, process(t, res, "p", []byte(`{"source":{}}`)).GetError())

	st, err := metastore.Open(context.Background(), dsn)
	require.NoError(t, err)
	defer st.Close()
	ds, err := st.ListAgentDecisions(context.Background(), metastore.DecisionFilter{AgentType: model.AgentMapping})
	require.NoError(t, err)
	require.Len(t, ds, len(doc.Proposals()))
	require.Equal(t, agent.ActionProposed, ds[0].Action)
}

func TestPinnedMappingFromStore(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	st, err := metastore.Open(ctx, dsn)
	require.NoError(t, err)
	path, _ := hrDocument(t)
	docV1, err := os.ReadFile(path)
	require.NoError(t, err)
	_, err = st.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{PipelineID: "hr", Config: model.PipelineConfig{
		ID: "hr", Name: "hr", Type: "stream", Transformations: []model.Transformation{{ID: "m", Type: "map", Logic: string(docV1)}}}})
	require.NoError(t, err)
	// Version 2 maps nothing: a stream pinned to version 1 must not see it.
	_, err = st.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{PipelineID: "hr", Config: model.PipelineConfig{
		ID: "hr", Name: "hr", Type: "stream", Transformations: []model.Transformation{{ID: "m", Type: "map",
			Logic: `{"source":{"id":"s","fields":[{"name":"EMP_NO"}]},"target":{"id":"t","fields":[{"name":"x"}]},"mappings":[]}`}}}})
	require.NoError(t, err)
	require.NoError(t, st.Close())

	res := processors(t, map[string]string{
		"v1":     "schema_mapping:\n  store_dsn: " + dsn + "\n  pipeline_id: hr\n  pipeline_version: 1\n  drift_policy: ignore",
		"latest": "schema_mapping:\n  store_dsn: " + dsn + "\n  pipeline_id: hr\n  drift_policy: ignore",
	})
	v, _ := process(t, res, "v1", []byte(legacyRecord)).AsStructured()
	require.Equal(t, "Ada Lovelace", v.(map[string]any)["full_name"])
	v, _ = process(t, res, "latest", []byte(legacyRecord)).AsStructured()
	require.Empty(t, v.(map[string]any))

	st, err = metastore.Open(ctx, dsn)
	require.NoError(t, err)
	defer st.Close()
	ds, err := st.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: model.AgentMapping})
	require.NoError(t, err)
	actions := map[string]int{}
	for _, d := range ds {
		actions[d.Action]++
	}
	require.Equal(t, 2, actions["mapping.applied"])
	require.Equal(t, 1, actions["mapping.drift"], "drift is recorded once per new field set")
}

func TestConfigErrors(t *testing.T) {
	path, _ := hrDocument(t)
	for name, conf := range map[string]string{
		"no mapping":      "schema_mapping: {}",
		"two sources":     "schema_mapping:\n  mapping_file: " + path + "\n  pipeline_id: x\n  store_dsn: sqlite://x.db",
		"bad policy":      "schema_mapping:\n  mapping_file: " + path + "\n  drift_policy: shrug",
		"missing file":    "schema_mapping:\n  mapping_file: /nonexistent/x.json",
		"bad document":    "schema_mapping:\n  mapping: '{\"source\":{\"fields\":[]},\"target\":{\"fields\":[{\"name\":\"a\"}]},\"mappings\":[{\"sourceField\":\"ghost\",\"targetField\":\"a\",\"status\":\"accepted\"}]}'",
		"no store for id": "schema_mapping:\n  pipeline_id: hr",
	} {
		t.Run(name, func(t *testing.T) {
			rb := service.NewResourceBuilder()
			err := rb.AddProcessorYAML("label: x\n" + conf)
			if err == nil {
				var res *service.Resources
				var stop func(context.Context) error
				res, stop, err = rb.Build()
				if err == nil {
					// Resources are built lazily: the constructor runs on access.
					err = res.AccessProcessor(context.Background(), "x", func(*service.ResourceProcessor) {})
					_ = stop(context.Background())
				}
			}
			require.Error(t, err)
		})
	}
}

// BenchmarkApplyVsMapping runs the same generated Bloblang through
// schema_mapping (apply, with drift detection) and through a plain mapping
// processor, in one benchmark run so the ratio is comparable.
func BenchmarkApplyVsMapping(b *testing.B) {
	path, r := hrDocument(b)
	prog, err := agent.Program(r)
	require.NoError(b, err)
	indented := "    " + strings.ReplaceAll(strings.TrimSpace(prog), "\n", "\n    ")
	res := processors(b, map[string]string{
		"schema_mapping": "schema_mapping:\n  mapping_file: " + path,
		"mapping":        "mapping: |\n" + indented,
	})
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = []byte(strings.Replace(legacyRecord, "10001", fmt.Sprint(10001+i), 1))
	}
	for _, label := range []string{"mapping", "schema_mapping"} {
		b.Run(label, func(b *testing.B) {
			b.ReportAllocs()
			require.NoError(b, res.AccessProcessor(context.Background(), label, func(p *service.ResourceProcessor) {
				for b.Loop() {
					mb := make(service.MessageBatch, len(batch))
					for i, raw := range batch {
						mb[i] = service.NewMessage(raw)
					}
					out, err := p.ProcessBatch(context.Background(), mb)
					if err != nil || len(out) != 1 || len(out[0]) != len(batch) || out[0][0].GetError() != nil {
						b.Fatalf("unexpected result: %v", err)
					}
				}
			}))
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
		})
	}
}
