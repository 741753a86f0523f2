package orchestrator

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/model"
)

type pipelineConfigAlias = model.PipelineConfig

// clone deep-copies a config so a test case can mutate maps and slices.
func clone(t *testing.T, pc model.PipelineConfig) model.PipelineConfig {
	t.Helper()
	b, err := json.Marshal(pc)
	require.NoError(t, err)
	var out model.PipelineConfig
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}
