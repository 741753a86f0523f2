package mapping_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/model"
)

func hrResult(t *testing.T) (*mapping.Matcher, *mapping.Result) {
	m := mapping.New(mapping.Options{})
	res, err := m.Map(context.Background(), loadSchema(t, "hr_legacy.json"), loadSchema(t, "hr_modern.json"))
	require.NoError(t, err)
	return m, res
}

// requireOnlyChanged checks that every mapping except those for the named
// targets is identical before and after.
func requireOnlyChanged(t *testing.T, before, after []mapping.FieldMapping, targets ...string) {
	t.Helper()
	skip := map[string]bool{}
	for _, n := range targets {
		skip[n] = true
	}
	a := byTarget(after)
	for _, b := range before {
		if skip[b.TargetField] {
			continue
		}
		require.Equal(t, b, a[b.TargetField], "untouched mapping %s changed", b.TargetField)
	}
}

func TestUpdateRenameKeepsTarget(t *testing.T) {
	m, res := hrResult(t)
	before := byTarget(res.Mappings)
	up, err := m.UpdateMappings(context.Background(), res, mapping.SchemaChange{
		ChangeType: mapping.ChangeColumnRenamed, PreviousColumn: "EMP_FNAME", Column: "GIVEN_NM"})
	require.NoError(t, err)
	after := byTarget(up.Mappings)
	require.Equal(t, mapping.Sources{"GIVEN_NM"}, after["first_name"].SourceField)
	require.Equal(t, before["first_name"].Confidence, after["first_name"].Confidence)
	require.Equal(t, before["first_name"].Status, after["first_name"].Status)
	require.Contains(t, after["first_name"].Reasoning, `renamed from "EMP_FNAME"`)
	require.Equal(t, mapping.Sources{"GIVEN_NM", "EMP_LNAME"}, after["full_name"].SourceField)
	require.Contains(t, after["full_name"].Transformation, "this.GIVEN_NM")
	requireOnlyChanged(t, res.Mappings, up.Mappings, "first_name", "full_name")
	// The previous result is untouched.
	require.Equal(t, mapping.Sources{"EMP_FNAME"}, byTarget(res.Mappings)["first_name"].SourceField)

	prog, err := mapping.Program(up)
	require.NoError(t, err)
	rec := map[string]any{}
	for k, v := range hrRecord {
		rec[k] = v
	}
	rec["GIVEN_NM"] = rec["EMP_FNAME"]
	delete(rec, "EMP_FNAME")
	out := runProgram(t, prog, rec)
	require.Equal(t, "Ada Lovelace", out["full_name"])
}

func TestUpdateTypeChangeRegeneratesTransformation(t *testing.T) {
	m, res := hrResult(t)
	require.Contains(t, byTarget(res.Mappings)["hired_at"].Transformation, "/ 1000")
	up, err := m.UpdateMappings(context.Background(), res, mapping.SchemaChange{
		ChangeType: mapping.ChangeTypeChanged, Column: "HIRE_DT",
		After: &model.Field{Name: "HIRE_DT", DataType: "VARCHAR2(19)", Samples: []any{"2010-01-01 09:30:00", "2015-01-01 08:00:00"}}})
	require.NoError(t, err)
	h := byTarget(up.Mappings)["hired_at"]
	require.Equal(t, mapping.Sources{"HIRE_DT"}, h.SourceField)
	require.Contains(t, h.Transformation, `ts_parse("2006-01-02 15:04:05")`)
	require.NotContains(t, h.Transformation, "/ 1000")
	requireOnlyChanged(t, res.Mappings, up.Mappings, "hired_at")
	prog, err := mapping.Program(up)
	require.NoError(t, err)
	require.Equal(t, "2010-01-01T09:30:00Z", runProgram(t, prog, map[string]any{"HIRE_DT": "2010-01-01 09:30:00"})["hired_at"])
}

func TestUpdateRemovedSourceColumn(t *testing.T) {
	m, res := hrResult(t)
	up, err := m.UpdateMappings(context.Background(), res, mapping.SchemaChange{
		ChangeType: mapping.ChangeColumnRemoved, Column: "EMAIL_ADDR"})
	require.NoError(t, err)
	e := byTarget(up.Mappings)["email"]
	require.Equal(t, mapping.StatusUnmapped, e.Status)
	require.Contains(t, e.Reasoning, "EMAIL_ADDR")
	requireOnlyChanged(t, res.Mappings, up.Mappings, "email")
}

func TestUpdateAddedSourceColumn(t *testing.T) {
	m, res := hrResult(t)
	require.Equal(t, mapping.StatusUnmapped, byTarget(res.Mappings)["badge_color"].Status)
	up, err := m.UpdateMappings(context.Background(), res, mapping.SchemaChange{
		ChangeType: mapping.ChangeColumnAdded, Column: "BADGE_CLR",
		After: &model.Field{DataType: "VARCHAR2(10)", Samples: []any{"red", "blue"}}})
	require.NoError(t, err)
	b := byTarget(up.Mappings)["badge_color"]
	require.Equal(t, mapping.Sources{"BADGE_CLR"}, b.SourceField)
	require.True(t, b.Proposed())
	requireOnlyChanged(t, res.Mappings, up.Mappings, "badge_color")
	require.Len(t, up.Source.Fields, len(res.Source.Fields)+1)
}

func TestUpdateTargetSide(t *testing.T) {
	m, res := hrResult(t)
	up, err := m.UpdateMappings(context.Background(), res, mapping.SchemaChange{
		Side: mapping.SideTarget, ChangeType: mapping.ChangeColumnRenamed, PreviousColumn: "email", Column: "work_email"})
	require.NoError(t, err)
	require.Equal(t, mapping.Sources{"EMAIL_ADDR"}, byTarget(up.Mappings)["work_email"].SourceField)
	require.NotContains(t, byTarget(up.Mappings), "email")

	up, err = m.UpdateMappings(context.Background(), res, mapping.SchemaChange{
		Side: mapping.SideTarget, ChangeType: mapping.ChangeColumnRemoved, Column: "badge_color"})
	require.NoError(t, err)
	require.Len(t, up.Mappings, len(res.Mappings)-1)
	requireOnlyChanged(t, res.Mappings, up.Mappings, "badge_color")

	up, err = m.UpdateMappings(context.Background(), res, mapping.SchemaChange{
		Side: mapping.SideTarget, ChangeType: mapping.ChangeColumnAdded, Column: "social_security_number",
		After: &model.Field{DataType: "text"}})
	require.NoError(t, err)
	require.Len(t, up.Mappings, len(res.Mappings)+1)
	require.Equal(t, mapping.Sources{"SSN"}, byTarget(up.Mappings)["social_security_number"].SourceField)
	requireOnlyChanged(t, res.Mappings, up.Mappings, "social_security_number")
}

func TestUpdateRejectsBadChanges(t *testing.T) {
	m, res := hrResult(t)
	for _, ch := range []mapping.SchemaChange{
		{ChangeType: mapping.ChangeColumnRenamed, PreviousColumn: "NOPE", Column: "X"},
		{ChangeType: mapping.ChangeColumnRenamed, PreviousColumn: "EMP_NO", Column: "DOB"},
		{ChangeType: mapping.ChangeColumnAdded, Column: "EMP_NO"},
		{ChangeType: mapping.ChangeColumnRemoved, Column: "NOPE"},
		{ChangeType: mapping.ChangeTypeChanged, Column: "EMP_NO"},
		{ChangeType: "table_dropped", Column: "EMP_NO"},
		{ChangeType: mapping.ChangeColumnRemoved, Column: "EMP_NO", Side: "middle"},
	} {
		_, err := m.UpdateMappings(context.Background(), res, ch)
		require.Error(t, err, "%+v", ch)
	}
}

func TestUpdateMetadataOnlyChangeKeepsMappings(t *testing.T) {
	m, res := hrResult(t)
	up, err := m.UpdateMappings(context.Background(), res, mapping.SchemaChange{
		ChangeType: mapping.ChangeNullability, Column: "EMP_NO", After: &model.Field{Nullable: true}})
	require.NoError(t, err)
	require.Equal(t, res.Mappings, up.Mappings)
	require.True(t, up.Source.Fields[0].Nullable)
	require.False(t, res.Source.Fields[0].Nullable, "the previous result is not modified")
}
