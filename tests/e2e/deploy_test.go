package e2e_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestDeployManifest checks the Kubernetes manifest in resources/deploy:
// every document names its kind, the pods run the image's binaries with
// flags the orchestrator knows, secrets come from the Secret (no DSN with a
// password in the manifest), and every engine config embedded in the
// ConfigMap passes `agentetl lint`.
func TestDeployManifest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(moduleRoot, "resources", "deploy", "agentetl.yaml"))
	require.NoError(t, err)
	require.NotRegexp(t, `postgres://[^\s'"]*:[^\s'"@$]+@`, stripComments(string(raw)), "no DSN with a literal password outside comments")

	dec := yaml.NewDecoder(bytes.NewReader(raw))
	kinds := map[string]int{}
	var configs map[string]string
	var orchArgs []string
	for {
		var doc struct {
			Kind string `yaml:"kind"`
			Data map[string]string
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Name    string   `yaml:"name"`
							Command []string `yaml:"command"`
							Args    []string `yaml:"args"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.NotEmpty(t, doc.Kind)
		kinds[doc.Kind]++
		if doc.Kind == "ConfigMap" {
			configs = doc.Data
		}
		for _, c := range doc.Spec.Template.Spec.Containers {
			if c.Name == "orchestrator" {
				require.Equal(t, []string{"/usr/local/bin/orchestrator"}, c.Command)
				orchArgs = c.Args
			}
		}
	}
	require.Equal(t, map[string]int{"ConfigMap": 1, "Deployment": 2, "Service": 1}, kinds)

	// Every flag the control pod passes is one the orchestrator defines.
	src, err := os.ReadFile(filepath.Join(moduleRoot, "cmd", "orchestrator", "main.go"))
	require.NoError(t, err)
	require.NotEmpty(t, orchArgs)
	for _, a := range orchArgs {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		require.Contains(t, string(src), `, "`+name+`", `, "orchestrator flag %s", a)
	}

	require.Len(t, configs, 3)
	dir := t.TempDir()
	for name, body := range configs {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		code, out, _ := runAgent(t, time.Minute, map[string]string{"TARGET_DSN": "postgres://u@h/db"}, "lint", p)
		require.Equal(t, 0, code, "%s: %s", name, out)
		require.NotContains(t, out, p+"(", "%s lints clean", name)
	}
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
