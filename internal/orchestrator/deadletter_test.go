package orchestrator

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDeadLetterKinds compiles each dead-letter kind and lints the result:
// a subject keeps the bus switch, table: and file: put error_resolution in
// front of the transformations and the destination.
func TestDeadLetterKinds(t *testing.T) {
	pc, err := DecodePipelineConfig([]byte(validJSON))
	require.NoError(t, err)

	pc.ErrorHandling.DeadLetter = "agentetl.deadletter.orders"
	c, err := Compile(pc)
	require.NoError(t, err)
	require.Contains(t, string(c.YAML), "switch:")
	require.NotContains(t, string(c.YAML), "error_resolution")

	pc.ErrorHandling.DeadLetter = `table:public."orders dead letters"`
	require.Empty(t, Validate(pc))
	c, err = Compile(pc)
	require.NoError(t, err)
	y := string(c.YAML)
	require.Contains(t, y, "label: resolve")
	require.Contains(t, y, "label: destination\n  error_resolution:")
	require.Contains(t, y, `table: public."orders dead letters"`)
	require.Contains(t, y, "max_attempts: 4", "maxRetries 3 is four attempts")
	lints, err := Lint(c.YAML)
	require.NoError(t, err)
	require.Empty(t, lints)

	pc.ErrorHandling.DeadLetter = "file:./dead/orders.jsonl"
	c, err = Compile(pc)
	require.NoError(t, err)
	require.Contains(t, string(c.YAML), "path: ./dead/orders.jsonl")
	lints, err = Lint(c.YAML)
	require.NoError(t, err)
	require.Empty(t, lints)

	for dl, want := range map[string]string{
		"table:":                 "must name a table",
		"file:":                  "needs a path",
		"file:/tmp/${HOME}/x":    `must not contain "${"`,
		"file:/tmp/a\nb":         "control characters",
		"not a subject":          "bus subject",
		"agentetl.deadletter.>":  "bus subject",
		"table:public.orders_dl": "",
	} {
		pc.ErrorHandling.DeadLetter = dl
		errs := Validate(pc)
		if want == "" {
			require.Empty(t, errs, dl)
			continue
		}
		require.Len(t, errs, 1, dl)
		require.Equal(t, "errorHandling.deadLetter", errs[0].Path)
		require.Contains(t, errs[0].Message, want, dl)
	}
	pc.Destination.Type, pc.Destination.Table, pc.Destination.Topic = ConnNATS, "", "agentetl.out"
	pc.Destination.Connection = nil
	pc.ErrorHandling.DeadLetter = "table:public.orders_dl"
	errs := Validate(pc)
	require.Len(t, errs, 1)
	require.Contains(t, errs[0].Message, "need a postgres destination")
}
