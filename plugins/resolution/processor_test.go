package resolution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/resolution"
)

// runProcessor sends batches through a pipeline of one error_resolution
// processor and returns what came out.
func runProcessor(t *testing.T, procYAML string, batches ...service.MessageBatch) service.MessageBatch {
	t.Helper()
	sb := service.NewStreamBuilder()
	require.NoError(t, sb.SetLoggerYAML("level: WARN"))
	require.NoError(t, sb.AddProcessorYAML(procYAML))
	produce, err := sb.AddBatchProducerFunc()
	require.NoError(t, err)
	var mu sync.Mutex
	var out service.MessageBatch
	require.NoError(t, sb.AddBatchConsumerFunc(func(_ context.Context, b service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, b...)
		return nil
	}))
	stream, err := sb.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _ = stream.Run(ctx) }()
	for _, b := range batches {
		require.NoError(t, produce(ctx, b))
	}
	require.NoError(t, stream.Stop(ctx))
	return out
}

func jsonBatch(docs ...string) service.MessageBatch {
	b := make(service.MessageBatch, len(docs))
	for i, d := range docs {
		b[i] = service.NewMessage([]byte(d))
		b[i].MetaSetMut("source_offset", fmt.Sprint(i))
	}
	return b
}

func TestProcessorDeadLettersFailuresAndKeepsOrder(t *testing.T) {
	dl := filepath.Join(t.TempDir(), "dead.jsonl")
	out := runProcessor(t, fmt.Sprintf(`
error_resolution:
  pipeline_id: proc-test
  store: ""
  processors:
    - mapping: |
        root = content().parse_json()
        root.n = if this.id %% 3 == 0 { throw("invalid input syntax for type integer: \"x\"") } else { this.id * 10 }
  dead_letter:
    file:
      path: %q
`, dl), jsonBatch(`{"id":1}`, `{"id":2}`, `{"id":3}`, `{"id":`, `{"id":4}`, `{"id":6}`))
	var ids []string
	for _, m := range out {
		require.NoError(t, m.GetError())
		b, _ := m.AsBytes()
		ids = append(ids, string(b))
	}
	require.Equal(t, []string{`{"id":1,"n":10}`, `{"id":2,"n":20}`, `{"id":4,"n":40}`}, ids, "good messages pass in order")

	raw, err := os.ReadFile(dl)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	require.Len(t, lines, 3)
	cats := map[string]resolution.Category{}
	for _, l := range lines {
		var d resolution.DeadLetter
		require.NoError(t, json.Unmarshal([]byte(l), &d))
		cats[string(d.Payload)] = d.Category
		require.Equal(t, "proc-test", d.PipelineID)
		require.NotEmpty(t, d.Fingerprint)
		require.Equal(t, 1, d.Attempts)
		require.NotEmpty(t, d.Metadata["source_offset"], "metadata is kept for replay")
	}
	require.Equal(t, map[string]resolution.Category{
		`{"id":3}`: resolution.CategoryDataType, `{"id":6}`: resolution.CategoryDataType, `{"id":`: resolution.CategoryPoison,
	}, cats)
}

// A transient failure of a child is retried with backoff from the original
// message and the message passes once the child succeeds.
func TestProcessorRetriesTransientFailures(t *testing.T) {
	out := runProcessor(t, `
error_resolution:
  store: ""
  retry:
    max_attempts: 5
    initial_interval: 1ms
  processors:
    - mapping: |
        root = this
        root.try = count("er-proc-transient")
        root = if root.try < 3 { throw("dial tcp 10.0.0.9:443: connect: connection refused") } else { root }
`, jsonBatch(`{"id":1}`))
	require.Len(t, out, 1)
	require.NoError(t, out[0].GetError())
	b, _ := out[0].AsBytes()
	require.JSONEq(t, `{"id":1,"try":3}`, string(b))
}

// Without a dead letter destination a failed message passes on flagged,
// with the diagnosis in metadata, as after try.
func TestProcessorWithoutDeadLetterFlags(t *testing.T) {
	out := runProcessor(t, `
error_resolution:
  store: ""
  rules:
    - name: escalate-money
      when: 'error.category == "data_type" && record.kind == "payment"'
      strategy: escalate
  processors:
    - mapping: 'root = if this.amount < 0 { throw("numeric field overflow") } else { this }'
`, jsonBatch(`{"kind":"payment","amount":-1}`, `{"kind":"refund","amount":-5}`, `{"kind":"payment","amount":3}`))
	require.Len(t, out, 3)
	require.Error(t, out[0].GetError())
	s, _ := out[0].MetaGet("error_resolution_strategy")
	require.Equal(t, "escalate", s)
	c, _ := out[0].MetaGet("error_resolution_category")
	require.Equal(t, "data_type", c)
	require.Error(t, out[1].GetError())
	s, _ = out[1].MetaGet("error_resolution_strategy")
	require.Equal(t, "skip", s)
	require.NoError(t, out[2].GetError())
}

func TestInvalidRuleRejectedAtStartWithPosition(t *testing.T) {
	sb := service.NewStreamBuilder()
	err := sb.SetYAML(`
input:
  generate: { count: 1, interval: "", mapping: 'root = {}' }
pipeline:
  processors:
    - error_resolution:
        store: ""
        processors: [ { mapping: 'root = this' } ]
        rules:
          - name: typo
            when: 'error.sqlstate.startsWith("23") && record.country = "US"'
            strategy: skip
output:
  drop: {}
`)
	require.Error(t, err, "linting rejects the rule")
	require.Contains(t, err.Error(), "rules[0].when: line 1, column 51")

	sb = service.NewStreamBuilder()
	sb.DisableLinting()
	require.NoError(t, sb.SetYAML(`
input:
  generate: { count: 1, interval: "", mapping: 'root = {}' }
pipeline:
  processors:
    - error_resolution:
        store: ""
        processors: [ { mapping: 'root = this' } ]
        rules:
          - { name: typo, when: 'record.country = "US"', strategy: skip }
output:
  drop: {}
`))
	_, err = sb.Build()
	if err == nil {
		stream, _ := sb.Build()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = stream.Run(ctx)
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), "rule 1 (typo): when: line 1, column 16")
}
