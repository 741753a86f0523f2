// Package mapping registers the schema_mapping processor: it applies a
// mapping produced by the Schema Mapping Agent (agents/mapping) at stream
// speed, or proposes one for {source, target} schema messages. The logic
// lives in agents/mapping; this file only adapts it to Benthos.
package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	agent "github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/internal/runctl"
)

const (
	smFieldMode            = "mode"
	smFieldMapping         = "mapping"
	smFieldMappingFile     = "mapping_file"
	smFieldStoreDSN        = "store_dsn"
	smFieldPipelineID      = "pipeline_id"
	smFieldPipelineVersion = "pipeline_version"
	smFieldDriftPolicy     = "drift_policy"
	smFieldDriftMetaKey    = "drift_metadata_key"
	smFieldAcceptThreshold = "accept_threshold"
	smFieldReviewThreshold = "review_threshold"
	smFieldIncludeReview   = "include_review"
	smFieldAgentID         = "agent_id"

	modeApply   = "apply"
	modePropose = "propose"

	driftIgnore      = "ignore"
	driftPassthrough = "passthrough"
	driftReview      = "route_to_review"
	driftFail        = "fail"
)

func schemaMappingSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Mapping").
		Summary("Applies a schema mapping proposed by the agentetl Schema Mapping Agent, or proposes one.").
		Description(`
In `+"`apply`"+` mode every message is a source record (a JSON object). The mapping, a document with both schemas
and their field mappings as printed by `+"`agentetl map --format document`"+` or emitted by `+"`propose`"+` mode, is compiled
once into a Bloblang program and executed per message, producing the record in the target shape.

The mapping comes from exactly one of `+"`mapping`"+` (inline document), `+"`mapping_file`"+` or a pinned pipeline version
in the metadata store (`+"`store_dsn`"+`, `+"`pipeline_id`"+`, `+"`pipeline_version`"+`), whose `+"`map`"+` transformation holds the document.

Source fields the mapping does not know signal drift in flight. They are never silently dropped: their names are
written to the metadata key `+"`drift_metadata_key`"+` as a JSON array and `+"`drift_policy`"+` decides what happens:

- `+"`ignore`"+`: emit the mapped record; the metadata still names the new fields.
- `+"`passthrough`"+`: emit the mapped record with the unknown fields copied through unchanged.
- `+"`route_to_review`"+`: emit the original record unmapped and flagged as errored, so that a `+"`switch`"+` output on
  `+"`errored()`"+` can send it to a review queue.
- `+"`fail`"+`: flag the record as errored and, under `+"`agentetl run`"+`, stop the run with a non-zero exit.

In `+"`propose`"+` mode every message holds `+"`{\"source\": Schema, \"target\": Schema}`"+` and is replaced by the proposed
mapping document, the same shape `+"`apply`"+` consumes.

With `+"`store_dsn`"+` set, both modes record agent decisions: the mapping applied (once), each new drift, and each proposal.`).
		Fields(
			service.NewStringEnumField(smFieldMode, modeApply, modePropose).
				Description("`apply` transforms records with a mapping; `propose` maps `{source, target}` schema messages.").
				Default(modeApply),
			service.NewStringField(smFieldMapping).
				Description("Inline mapping document (JSON): `source`, `target` and `mappings`.").
				Example(`{"source":{"id":"legacy","fields":[{"name":"CUST_NM","dataType":"varchar2(40)"}]},"target":{"id":"crm","fields":[{"name":"customer_name","dataType":"text"}]},"mappings":[{"sourceField":"CUST_NM","targetField":"customer_name","confidence":0.93,"mappingType":"direct","status":"accepted","reasoning":"reviewed"}]}`).
				Optional(),
			service.NewStringField(smFieldMappingFile).
				Description("Path of a mapping document file.").
				Example("./mappings/legacy_to_crm.json").Optional(),
			service.NewStringField(smFieldStoreDSN).
				Description("Metadata store DSN (`sqlite://path` or `postgres://...`). Used to load a pinned mapping and to record agent decisions. Passwords are redacted in logs.").
				Example("sqlite://./data/agentetl.db").Secret().Optional(),
			service.NewStringField(smFieldPipelineID).
				Description("Pipeline whose stored configuration holds the mapping, as a transformation of type `map`.").
				Optional(),
			service.NewIntField(smFieldPipelineVersion).
				Description("Pinned pipeline version; 0 means the latest. Pin a version in production so that a new proposal never changes a running stream.").
				Default(0),
			service.NewStringEnumField(smFieldDriftPolicy, driftIgnore, driftPassthrough, driftReview, driftFail).
				Description("What to do with a record that carries source fields the mapping does not know.").
				Default(driftReview),
			service.NewStringField(smFieldDriftMetaKey).
				Description("Metadata key that receives the unknown field names as a JSON array.").
				Default("schema_drift"),
			service.NewBoolField(smFieldIncludeReview).
				Description("Apply mappings in `review` status too. When false only `accepted` mappings run.").
				Default(true),
			service.NewFloatField(smFieldAcceptThreshold).
				Description("Propose mode: confidence at which a mapping is accepted.").
				Default(agent.DefaultAcceptThreshold).Advanced(),
			service.NewFloatField(smFieldReviewThreshold).
				Description("Propose mode: confidence at which a mapping is proposed for review.").
				Default(agent.DefaultReviewThreshold).Advanced(),
			service.NewStringField(smFieldAgentID).
				Description("Agent id written into recorded decisions.").
				Default("schema_mapping").Advanced(),
		).
		LintRule(`root = match {
  this.mode.or("apply") == "apply" && [this.mapping.or(""), this.mapping_file.or(""), this.pipeline_id.or("")].filter(v -> v != "").length() != 1 => ["apply mode needs exactly one of mapping, mapping_file or pipeline_id"],
  this.pipeline_id.or("") != "" && this.store_dsn.or("") == "" => ["pipeline_id needs store_dsn"],
  this.review_threshold.or(0.5) > this.accept_threshold.or(0.85) => ["review_threshold must not exceed accept_threshold"],
}`).
		Example("Apply a reviewed mapping", "Transform legacy records into the target shape; new columns go to review.", `
pipeline:
  processors:
    - schema_mapping:
        mapping_file: ./mappings/legacy_hr_to_people.json
        drift_policy: route_to_review
output:
  switch:
    cases:
      - check: errored()
        output:
          file: { path: ./review/drift.jsonl, codec: lines }
      - output:
          postgres: { dsn: "${TARGET_DSN}", table: people.employee }
`).
		Example("Propose mappings", "Turn {source, target} schema messages into mapping documents.", `
pipeline:
  processors:
    - schema_mapping:
        mode: propose
        store_dsn: sqlite://./data/agentetl.db
`)
}

func init() {
	service.MustRegisterBatchProcessor("schema_mapping", schemaMappingSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			return newSchemaMapping(conf, mgr)
		})
}

type schemaMapping struct {
	mode    string
	policy  string
	metaKey string
	agentID string
	matcher *agent.Matcher
	log     *service.Logger

	exe   *bloblang.Executor
	known map[string]struct{}
	res   *agent.Result

	store      metastore.Store
	pipelineID string
	mu         sync.Mutex
	driftSeen  map[string]bool
}

func newSchemaMapping(conf *service.ParsedConfig, mgr *service.Resources) (*schemaMapping, error) {
	p := &schemaMapping{log: mgr.Logger(), driftSeen: map[string]bool{}}
	var err error
	if p.mode, err = conf.FieldString(smFieldMode); err != nil {
		return nil, err
	}
	if p.policy, err = conf.FieldString(smFieldDriftPolicy); err != nil {
		return nil, err
	}
	if p.metaKey, err = conf.FieldString(smFieldDriftMetaKey); err != nil {
		return nil, err
	}
	if p.agentID, err = conf.FieldString(smFieldAgentID); err != nil {
		return nil, err
	}
	acc, err := conf.FieldFloat(smFieldAcceptThreshold)
	if err != nil {
		return nil, err
	}
	rev, err := conf.FieldFloat(smFieldReviewThreshold)
	if err != nil {
		return nil, err
	}
	p.matcher = agent.New(agent.Options{AcceptThreshold: acc, ReviewThreshold: rev})
	ctx := context.Background()
	if conf.Contains(smFieldStoreDSN) {
		dsn, _ := conf.FieldString(smFieldStoreDSN)
		if dsn != "" {
			if p.store, err = metastore.Open(ctx, dsn); err != nil {
				return nil, fmt.Errorf("schema_mapping: metadata store %s: %w", redact.DSN(dsn), err)
			}
		}
	}
	if p.mode == modePropose {
		return p, nil
	}
	doc, err := p.loadDocument(ctx, conf)
	if err != nil {
		p.closeStore()
		return nil, err
	}
	if p.res, err = agent.ParseDocument(doc); err != nil {
		p.closeStore()
		return nil, fmt.Errorf("schema_mapping: mapping: %w", err)
	}
	includeReview, err := conf.FieldBool(smFieldIncludeReview)
	if err != nil {
		return nil, err
	}
	if !includeReview {
		for i, m := range p.res.Mappings {
			if m.Status == agent.StatusReview {
				p.res.Mappings[i].Status = agent.StatusUnmapped
			}
		}
	}
	prog, err := agent.Program(p.res)
	if err != nil {
		p.closeStore()
		return nil, fmt.Errorf("schema_mapping: %w", err)
	}
	// Compiled once, with the environment that carries the pure
	// components' methods (ts_parse, ts_format...).
	if p.exe, err = bloblang.GlobalEnvironment().Parse(prog); err != nil {
		p.closeStore()
		return nil, fmt.Errorf("schema_mapping: generated program does not compile: %w", err)
	}
	p.known = make(map[string]struct{}, len(p.res.Source.Fields))
	for _, n := range p.res.SourceFieldNames() {
		p.known[n] = struct{}{}
	}
	p.record(ctx, model.AgentDecision{AgentID: p.agentID, AgentType: model.AgentMapping, PipelineID: p.pipelineID,
		Action: "mapping.applied", Confidence: 1,
		Reasoning: fmt.Sprintf("applying %d proposals from %s to %s", len(p.res.Proposals()), p.res.Source.ID, p.res.Target.ID)})
	return p, nil
}

// loadDocument reads the mapping from exactly one configured place.
func (p *schemaMapping) loadDocument(ctx context.Context, conf *service.ParsedConfig) ([]byte, error) {
	inline, _ := conf.FieldString(smFieldMapping)
	file, _ := conf.FieldString(smFieldMappingFile)
	p.pipelineID, _ = conf.FieldString(smFieldPipelineID)
	n := 0
	for _, s := range []string{inline, file, p.pipelineID} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("schema_mapping: apply mode needs exactly one of mapping, mapping_file or pipeline_id")
	}
	switch {
	case inline != "":
		return []byte(inline), nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("schema_mapping: %w", err)
		}
		return b, nil
	}
	if p.store == nil {
		return nil, errors.New("schema_mapping: pipeline_id needs store_dsn")
	}
	ver, err := conf.FieldInt(smFieldPipelineVersion)
	if err != nil {
		return nil, err
	}
	pc, err := p.store.GetPipelineConfig(ctx, p.pipelineID, ver)
	if err != nil {
		return nil, fmt.Errorf("schema_mapping: pipeline %q version %d: %w", p.pipelineID, ver, err)
	}
	for _, t := range pc.Config.Transformations {
		if t.Type == "map" {
			return []byte(t.Logic), nil
		}
	}
	return nil, fmt.Errorf("schema_mapping: pipeline %q version %d has no map transformation", p.pipelineID, pc.Version)
}

func (p *schemaMapping) ProcessBatch(ctx context.Context, b service.MessageBatch) ([]service.MessageBatch, error) {
	if p.mode == modePropose {
		return []service.MessageBatch{p.propose(ctx, b)}, nil
	}
	out := make(service.MessageBatch, 0, len(b))
	for _, msg := range b {
		out = append(out, p.apply(ctx, msg))
	}
	return []service.MessageBatch{out}, nil
}

// apply maps one record and enforces the drift policy.
func (p *schemaMapping) apply(ctx context.Context, msg *service.Message) *service.Message {
	v, err := msg.AsStructured()
	if err != nil {
		msg.SetError(fmt.Errorf("schema_mapping: record is not JSON: %w", err))
		return msg
	}
	rec, ok := v.(map[string]any)
	if !ok {
		msg.SetError(errors.New("schema_mapping: record is not a JSON object"))
		return msg
	}
	var unknown []string
	for k := range rec {
		if _, ok := p.known[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		names, _ := json.Marshal(unknown)
		msg.MetaSetMut(p.metaKey, string(names))
		p.noteDrift(ctx, unknown)
		switch p.policy {
		case driftReview:
			msg.SetError(fmt.Errorf("schema_mapping: unmapped source fields %s", names))
			return msg
		case driftFail:
			err := fmt.Errorf("schema_mapping: unmapped source fields %s (drift_policy: fail)", names)
			runctl.Fail(err)
			msg.SetError(err)
			return msg
		}
	}
	res, err := msg.BloblangQuery(p.exe)
	if err != nil {
		msg.SetError(fmt.Errorf("schema_mapping: %w", err))
		return msg
	}
	if len(unknown) > 0 && p.policy == driftPassthrough {
		outV, err := res.AsStructuredMut()
		if obj, ok := outV.(map[string]any); ok && err == nil {
			for _, k := range unknown {
				if _, taken := obj[k]; !taken {
					obj[k] = rec[k]
				}
			}
			res.SetStructuredMut(obj)
		}
	}
	return res
}

// noteDrift logs and records each new set of unknown fields once.
func (p *schemaMapping) noteDrift(ctx context.Context, unknown []string) {
	key := strings.Join(unknown, "\x00")
	p.mu.Lock()
	seen := p.driftSeen[key]
	if !seen && len(p.driftSeen) < 1024 {
		p.driftSeen[key] = true
	}
	p.mu.Unlock()
	if seen {
		return
	}
	p.log.Warnf("schema_mapping: source fields not in the mapping: %s (drift_policy %s)", strings.Join(unknown, ", "), p.policy)
	p.record(ctx, model.AgentDecision{AgentID: p.agentID, AgentType: model.AgentMapping, PipelineID: p.pipelineID,
		Action: "mapping.drift", Confidence: 1, Outcome: p.policy,
		Reasoning: fmt.Sprintf("records carry %d source fields the mapping does not know: %s", len(unknown), strings.Join(unknown, ", "))})
}

type proposeRequest struct {
	Source *model.Schema `json:"source"`
	Target *model.Schema `json:"target"`
}

// propose replaces each {source, target} message by a mapping document.
func (p *schemaMapping) propose(ctx context.Context, b service.MessageBatch) service.MessageBatch {
	out := make(service.MessageBatch, 0, len(b))
	for _, msg := range b {
		raw, err := msg.AsBytes()
		if err != nil {
			msg.SetError(err)
			out = append(out, msg)
			continue
		}
		var req proposeRequest
		if err := json.Unmarshal(raw, &req); err != nil || req.Source == nil || req.Target == nil {
			msg.SetError(errors.New("schema_mapping: propose needs a JSON object with source and target schemas"))
			out = append(out, msg)
			continue
		}
		res, err := p.matcher.Map(ctx, *req.Source, *req.Target)
		if err == nil {
			var doc agent.Document
			if doc, err = res.Document(); err == nil {
				var body []byte
				if body, err = json.Marshal(doc); err == nil {
					nm := msg.Copy()
					nm.SetBytes(body)
					out = append(out, nm)
					p.recordProposal(ctx, res)
					continue
				}
			}
		}
		msg.SetError(fmt.Errorf("schema_mapping: %w", err))
		out = append(out, msg)
	}
	return out
}

func (p *schemaMapping) recordProposal(ctx context.Context, res *agent.Result) {
	if p.store == nil {
		return
	}
	for _, m := range res.Mappings {
		if m.Proposed() {
			p.record(ctx, agent.Decision(m, agent.ActionProposed, p.agentID, p.pipelineID))
		}
	}
}

func (p *schemaMapping) record(ctx context.Context, d model.AgentDecision) {
	if p.store == nil {
		return
	}
	if err := p.store.SaveAgentDecision(ctx, d); err != nil {
		p.log.Warnf("schema_mapping: recording decision: %v", redact.String(err.Error()))
	}
}

func (p *schemaMapping) closeStore() {
	if p.store != nil {
		_ = p.store.Close()
	}
}

func (p *schemaMapping) Close(ctx context.Context) error {
	p.closeStore()
	return nil
}
