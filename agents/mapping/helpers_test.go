package mapping_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/model"
)

func loadSchema(t testing.TB, name string) model.Schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	s, err := mapping.ParseSchema(b)
	require.NoError(t, err)
	return s
}

func mapPair(t testing.TB, opts mapping.Options, src, tgt model.Schema) *mapping.Result {
	t.Helper()
	res, err := mapping.New(opts).Map(context.Background(), src, tgt)
	require.NoError(t, err)
	return res
}

// byTarget indexes mappings by target field.
func byTarget(ms []mapping.FieldMapping) map[string]mapping.FieldMapping {
	out := map[string]mapping.FieldMapping{}
	for _, m := range ms {
		out[m.TargetField] = m
	}
	return out
}

type pairKey struct{ src, tgt string }

// pairScores returns precision, recall and F1 of the proposals (accepted
// and review) against expected target -> sources, counting one pair per
// listed source as the benchmark scorer does.
func pairScores(ms []mapping.FieldMapping, expected map[string][]string) (p, r, f1 float64) {
	want := map[pairKey]bool{}
	for t, ss := range expected {
		for _, s := range ss {
			want[pairKey{s, t}] = true
		}
	}
	tp, n := 0, 0
	for _, m := range ms {
		if !m.Proposed() {
			continue
		}
		for _, s := range m.SourceField {
			n++
			if want[pairKey{s, m.TargetField}] {
				tp++
			}
		}
	}
	if n == 0 || tp == 0 {
		return 0, 0, 0
	}
	p, r = float64(tp)/float64(n), float64(tp)/float64(len(want))
	return p, r, 2 * p * r / (p + r)
}

func field(name, typ string, samples ...any) model.Field {
	return model.Field{Name: name, DataType: typ, Nullable: true, Samples: samples}
}

func schema(id string, fs ...model.Field) model.Schema {
	return model.Schema{ID: id, SourceID: id, Version: 1, Fields: fs}
}
