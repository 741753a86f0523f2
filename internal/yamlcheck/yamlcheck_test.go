package yamlcheck_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/yamlcheck"
)

func TestPositions(t *testing.T) {
	cases := []struct {
		name, doc string
		line      int
	}{
		{"misindented key", "input:\n  postgres:\n    dsn: x\n    table: t\noutput:\n  postgres:\n     dsn: y\n    table: z\n", 8},
		{"misindented section", "input:\n  generate:\n    mapping: root = 1\n\n output:\n  drop: {}\n", 5},
		{"tab indentation", "input:\n  generate:\n\tmapping: root = 1\n", 3},
		{"unclosed flow", "input: { generate: { mapping: x }\noutput: {}\n", 2},
	}
	for _, c := range cases {
		err := yamlcheck.Bytes("c.yaml", []byte(c.doc))
		require.Error(t, err, c.name)
		var ye *yamlcheck.Error
		require.ErrorAs(t, err, &ye)
		require.Equal(t, c.line, ye.Line, "%s: %v", c.name, err)
		require.Contains(t, err.Error(), "c.yaml(")
	}
}

func TestValidYAMLPasses(t *testing.T) {
	for _, doc := range []string{"", "a: 1\n", "input:\n  generate:\n    mapping: |\n      root = {\"a\": 1}\n", "x: ${ENV:default}\n"} {
		require.NoError(t, yamlcheck.Bytes("ok.yaml", []byte(doc)), doc)
	}
}

func TestPathsWalksDirectories(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "bad.yaml"), []byte("output:\n  postgres:\n     dsn: y\n    table: z\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "good.yml"), []byte("a: 1\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("a:\n b\n  c: :\n"), 0o644))
	errs := yamlcheck.Paths([]string{dir + "/...", filepath.Join(dir, "missing.yaml")})
	require.Len(t, errs, 1)
	require.Contains(t, errs[0].Error(), "bad.yaml(4,")
}
