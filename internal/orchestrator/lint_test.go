package orchestrator

import (
	"go/parser"
	"go/token"
	"sort"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLintUsesTheEngineComponentSet fails when cmd/agentetl links a plugin
// package the orchestrator's in-process linter does not (or the reverse):
// the linter would then reject, or accept, configs differently from the
// engine that runs them.
func TestLintUsesTheEngineComponentSet(t *testing.T) {
	blank := func(path string) []string {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		require.NoError(t, err)
		var out []string
		for _, imp := range f.Imports {
			if imp.Name != nil && imp.Name.Name == "_" {
				p, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				out = append(out, p)
			}
		}
		sort.Strings(out)
		return out
	}
	require.Equal(t, blank("../../cmd/agentetl/main.go"), blank("lint.go"))
}
