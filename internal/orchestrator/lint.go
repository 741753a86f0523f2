package orchestrator

import (
	"context"
	"fmt"
	"sort"

	// The same component set as cmd/agentetl, so that the orchestrator
	// lints exactly what the engine will run.
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/engine"
	"github.com/agentetl/agentetl/internal/yamlcheck"
	_ "github.com/agentetl/agentetl/plugins/discovery"
	_ "github.com/agentetl/agentetl/plugins/kafka"
	_ "github.com/agentetl/agentetl/plugins/mapping"
	_ "github.com/agentetl/agentetl/plugins/nats"
	_ "github.com/agentetl/agentetl/plugins/postgres"
	_ "github.com/agentetl/agentetl/plugins/prometheus"
	_ "github.com/agentetl/agentetl/plugins/resolution"
	_ "github.com/agentetl/agentetl/plugins/sqlite"
)

// Lint checks a stream config in process with the engine's component set
// and returns its problems with line and column. Environment references
// are left as they are (each ${NAME} stands in for itself), so the result
// does not depend on this process's environment and positions are exact;
// whether the variables are set is checked separately (MissingEnv).
func Lint(yamlBytes []byte) ([]engine.LintIssue, error) {
	if err := yamlcheck.Bytes("pipeline", yamlBytes); err != nil {
		if ye, ok := err.(*yamlcheck.Error); ok {
			return []engine.LintIssue{{Line: ye.Line, Column: ye.Column, Message: "yaml syntax error: " + ye.Message}}, nil
		}
		return nil, fmt.Errorf("orchestrator: lint: %w", err)
	}
	linter := service.GlobalEnvironment().FullConfigSchema("", "").NewStreamConfigLinter().
		SetSkipEnvVarCheck(true).
		SetEnvVarLookupFunc(func(_ context.Context, name string) (string, bool) {
			return "${" + name + "}", true
		})
	lints, err := linter.LintYAML(yamlBytes)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: lint: %w", err)
	}
	out := make([]engine.LintIssue, 0, len(lints))
	for _, l := range lints {
		out = append(out, engine.LintIssue{Line: l.Line, Column: l.Column, Message: l.What})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Column < out[j].Column
	})
	return out, nil
}
