package orchestrator

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodePipelineConfig feeds arbitrary bodies to the API's decoder.
// Whatever the input, the decoder must not panic, must return either a
// config or a *ValidationError, and a config it accepts must survive a JSON
// round trip and validation (which must not panic either). Run as a normal
// test it checks the seed corpus; `go test -fuzz FuzzDecodePipelineConfig
// ./internal/orchestrator` explores further.
func FuzzDecodePipelineConfig(f *testing.F) {
	seeds := []string{
		validJSON,
		`{}`,
		`{"id": "a", "name": "b", "type": "stream", "source": {"type": "nats", "topic": "agentetl.x.>"}, "destination": {"type": "nats", "topic": "agentetl.y"}}`,
		`{"transformations": [{"type": "map", "logic": "[{\"sourceField\":\"a\",\"targetField\":\"b\"}]"}]}`,
		`{"name": "a", "name": "b"}`,
		`{"source": {"connection": {"dsn": "postgres://u:p@h/db"}}}`,
		`{"errorHandling": {"maxRetries": 1e308}}`,
		`{"metadata": {"createdAt": "2024-01-01T00:00:00Z"}}`,
		`{"metadata": {"createdAt": "yesterday"}}`,
		"name: x\ntype: batch\nsource: {type: postgres, table: t, connection: {dsn: '${D}'}}\n",
		"a: &x [*x]\n",
		"name: !!binary aGVsbG8=\n",
		"? [a]\n: b\n",
		"name: .inf\n",
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		"\xff\xfe{",
		`{"schedule": {"cron": "@every 1s", "timezone": "UTC"}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pc, err := DecodePipelineConfig(body)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("error is not a ValidationError with fields: %T %v", err, err)
			}
			return
		}
		b, err := json.Marshal(pc)
		if err != nil {
			t.Fatalf("accepted config does not re-encode: %v", err)
		}
		again, err := DecodePipelineConfig(b)
		if err != nil {
			t.Fatalf("re-encoded config %s is rejected: %v", b, err)
		}
		b2, _ := json.Marshal(again)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed the config:\n%s\n%s", b, b2)
		}
		if errs := Validate(pc); len(errs) == 0 {
			// A valid config must compile; its lint result may hold
			// problems, but compiling must not fail or panic.
			if _, err := Compile(pc); err != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("valid config does not compile: %v", err)
				}
			}
		}
	})
}
