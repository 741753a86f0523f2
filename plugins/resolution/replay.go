package resolution

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

	"github.com/agentetl/agentetl/agents/resolution"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
)

// MetaDeadLetterID is set on replayed messages: it names the dead letter a
// message came from, so a record that fails again is stored as a new dead
// letter (with its own id) while the old one is marked replayed.
const MetaDeadLetterID = "dead_letter_id"

// metaReplayStage marks replayed records that skip the processors.
const metaReplayStage = "dead_letter_stage"

// ReplayOptions configures ReplayDeadLetters.
type ReplayOptions struct {
	// Store is the metadata store: it records the replay and, when
	// ConfigYAML is empty, holds the pipeline's config (PipelineID).
	Store string
	// StoreHandle is an already open metadata store, used instead of
	// opening Store (the orchestrator replays with its own).
	StoreHandle metastore.Store
	// DLQ is the dead-letter store: a postgres:// DSN (with DLQTable) or a
	// JSON Lines file.
	DLQ, DLQTable string
	Fingerprint   string
	PipelineID    string
	// ConfigYAML is the pipeline to re-send through. Its input is removed:
	// the dead letters take its place; its pipeline and output are used as
	// they are, so the records get the same processing and error handling
	// as the first time.
	ConfigYAML string
	Limit      int
	Chunk      int
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Replayed int `json:"replayed"`
}

// ReplayDeadLetters re-sends pending dead letters through their pipeline
// and marks each chunk replayed once the pipeline has acknowledged it. A
// record already marked is never sent again, so replaying twice does not
// duplicate rows.
func ReplayDeadLetters(ctx context.Context, o ReplayOptions) (ReplayResult, error) {
	st := o.StoreHandle
	if st == nil && o.Store != "" {
		var err error
		if st, err = metastore.Open(ctx, o.Store); err != nil {
			return ReplayResult{}, fmt.Errorf("open store: %s", redact.String(err.Error()))
		}
		defer st.Close()
	}
	conf := o.ConfigYAML
	if conf == "" {
		if st == nil || o.PipelineID == "" {
			return ReplayResult{}, errors.New("give the pipeline config (--config), or --store and --pipeline to load it from the store")
		}
		pc, err := st.GetPipelineConfig(ctx, o.PipelineID, 0)
		if err != nil {
			return ReplayResult{}, fmt.Errorf("load pipeline %q from the store: %w", o.PipelineID, err)
		}
		if pc.YAML == "" {
			return ReplayResult{}, fmt.Errorf("pipeline %q in the store has no config YAML", o.PipelineID)
		}
		conf = pc.YAML
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(conf), &doc); err != nil {
		return ReplayResult{}, fmt.Errorf("pipeline config: %w", err)
	}
	if _, ok := doc["output"]; !ok {
		return ReplayResult{}, errors.New("pipeline config has no output to replay into")
	}
	// The pipeline's own input is replaced by one that ends at once
	// without producing anything; the dead letters come from the producer
	// added below. (Without any input the builder would add a default
	// one that never connects.)
	doc["input"] = map[string]any{"generate": map[string]any{"count": 1, "interval": "", "mapping": "root = deleted()"}}
	// A record the output set aside was already processed: its payload is
	// what the output was given, so it must not run through the
	// processors again. Such records are told apart by the component that
	// stored them, the output's label, and skip the processors.
	outputLabel := ""
	if out, ok := doc["output"].(map[string]any); ok {
		outputLabel, _ = out["label"].(string)
	}
	if pl, ok := doc["pipeline"].(map[string]any); ok && outputLabel != "" {
		if procs, ok := pl["processors"].([]any); ok && len(procs) > 0 {
			pl["processors"] = []any{map[string]any{"switch": []any{
				map[string]any{"check": `@` + metaReplayStage + ` == "output"`, "processors": []any{map[string]any{"noop": map[string]any{}}}},
				map[string]any{"processors": procs},
			}}}
		}
	}
	delete(doc, "input_resources")
	delete(doc, "tests")
	doc["http"] = map[string]any{"enabled": false}
	stripped, err := yaml.Marshal(doc)
	if err != nil {
		return ReplayResult{}, err
	}

	dlq, err := resolution.OpenDeadLetterStore(ctx, o.DLQ, o.DLQTable)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("open dead letters: %s", redact.String(err.Error()))
	}
	defer dlq.Close()

	sb := service.NewStreamBuilder()
	if err := sb.SetYAML(string(stripped)); err != nil {
		return ReplayResult{}, fmt.Errorf("pipeline config: %w", err)
	}
	produce, err := sb.AddBatchProducerFunc()
	if err != nil {
		return ReplayResult{}, err
	}
	stream, err := sb.Build()
	if err != nil {
		return ReplayResult{}, fmt.Errorf("build replay pipeline: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- stream.Run(runCtx) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		_ = stream.Stop(sctx)
	}()

	n, err := dlq.Replay(ctx, resolution.DeadLetterFilter{Fingerprint: o.Fingerprint, PipelineID: o.PipelineID, Limit: o.Limit}, o.Chunk,
		func(ctx context.Context, dls []resolution.DeadLetter) error {
			batch := make(service.MessageBatch, len(dls))
			for i, d := range dls {
				m := service.NewMessage(d.Payload)
				for k, v := range d.Metadata {
					m.MetaSetMut(k, v)
				}
				m.MetaSetMut(MetaDeadLetterID, d.ID)
				if outputLabel != "" && d.Component == outputLabel {
					m.MetaSetMut(metaReplayStage, "output")
				}
				batch[i] = m
			}
			select {
			case err := <-runErr:
				return fmt.Errorf("replay pipeline stopped: %v", err)
			default:
			}
			return produce(ctx, batch)
		})
	if st != nil && n > 0 {
		from := "file " + o.DLQ
		if o.DLQTable != "" {
			// The table, not the DSN: a reasoning is shown to everyone.
			from = "table " + o.DLQTable
		}
		reason := fmt.Sprintf("replayed %d dead letters from %s", n, from)
		if o.Fingerprint != "" {
			reason += " with fingerprint " + o.Fingerprint
		}
		_ = st.SaveAgentDecision(ctx, model.AgentDecision{AgentID: "dlq-replay", AgentType: model.AgentResolution,
			PipelineID: o.PipelineID, Action: "replay", Confidence: 1, Reasoning: reason, Outcome: "replayed"})
	}
	if err != nil {
		return ReplayResult{Replayed: n}, err
	}
	return ReplayResult{Replayed: n}, nil
}
