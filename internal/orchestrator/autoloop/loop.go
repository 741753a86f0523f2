// Package autoloop is the orchestrator's automatic loop: a discovery worker
// that watches the source table of every pipeline that reads a table or
// file into a table (PostgreSQL, SQLite, CSV; see mappable) and publishes
// the schema changes it finds on the bus (the coordinator turns them into
// mapping tasks), and an in-process mapping worker that derives or adapts
// the pipeline's field mapping. A mapping whose proposals are all accepted
// is written into the pipeline as a new version (the engine hot-reloads
// it); anything else becomes a review item and pauses only that pipeline
// until a reviewer approves or rejects it.
//
// The mapping the loop owns is the transformation with id AgentMappingID:
// a map transformation holding a JSON array of field mappings, which the
// compiler renders with every field name quoted. The full mapping document
// (both schemas, the mappings, the program) is kept in the metadata store
// under the checkpoint "automap:<pipeline id>" so that a later schema change
// adapts it (a rename keeps its target and confidence) instead of matching
// from scratch.
package autoloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentetl/agentetl/agents/discovery"
	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/redact"
)

// AgentMappingID is the id of the map transformation the loop writes.
const AgentMappingID = "agent-mapping"

// Agent ids of the in-process workers, as they appear in decisions.
const (
	DiscoveryAgentID = "discovery-worker"
	MappingAgentID   = "mapping-worker"
)

// TaskTypeReview is the task type of review items. The coordinator has no
// queue for it: reviews are answered through the API, not claimed.
const TaskTypeReview = "review"

// Review statuses.
const (
	ReviewPending  = "pending_review"
	ReviewApproved = "approved"
	ReviewRejected = "rejected"
)

// Errors returned by the review methods.
var (
	ErrReviewNotFound = errors.New("review not found")
	ErrReviewClosed   = errors.New("review is not pending")
	ErrReviewStale    = errors.New("pipeline changed since the review was opened")
)

// Options configure a Loop.
type Options struct {
	Store       metastore.Store
	Manager     *orchestrator.Manager
	Coordinator *orch.Coordinator
	// Bus receives schema-change events; nil hands them to the
	// coordinator directly.
	Bus orch.Publisher
	// DiscoveryInterval is the pause between discovery passes (default 1m).
	DiscoveryInterval time.Duration
	// LookupEnv resolves ${NAME} references in connection values (default
	// os.LookupEnv: the orchestrator has the environment the engine gets).
	LookupEnv func(string) (string, bool)
	Logger    *slog.Logger
}

// Loop runs the discovery and mapping workers and answers reviews.
type Loop struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	agents map[string]*discovery.Agent // by dsn + "\x00" + table
	// asked marks pipelines the loop requested an initial mapping for.
	asked map[string]bool
	// reviewMu serialises approve and reject.
	reviewMu sync.Mutex
	// kick asks Run for a discovery pass before the interval is up.
	kick chan struct{}
}

// New checks the options.
func New(o Options) (*Loop, error) {
	if o.Store == nil || o.Manager == nil || o.Coordinator == nil {
		return nil, errors.New("autoloop: store, manager and coordinator are required")
	}
	if o.DiscoveryInterval <= 0 {
		o.DiscoveryInterval = time.Minute
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Loop{o: o, log: o.Logger.With("component", "autoloop"), agents: map[string]*discovery.Agent{}, asked: map[string]bool{},
		kick: make(chan struct{}, 1)}, nil
}

// Run runs both workers until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	defer l.closeAgents()
	done := make(chan error, 1)
	go func() {
		done <- l.o.Coordinator.RunWorker(ctx, MappingAgentID, model.AgentMapping, 1, l.HandleMapping)
	}()
	t := time.NewTicker(l.o.DiscoveryInterval)
	defer t.Stop()
	for {
		if err := l.DiscoverOnce(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("discovery pass failed", "err", redact.String(err.Error()))
		}
		select {
		case <-ctx.Done():
			return <-done
		case err := <-done:
			return err
		case <-t.C:
		case <-l.kick:
		}
	}
}

// Kick asks for a discovery pass now instead of at the next interval, for
// example right after pipelines were created. Kicks while a pass is
// pending are merged.
func (l *Loop) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *Loop) closeAgents() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, a := range l.agents {
		_ = a.Close()
		delete(l.agents, k)
	}
}

// SourceID names pc's source as discovery names the source of a schema
// change, or "" when the loop does not discover it. The coordinator uses it
// (SetSourceResolver) so a change reaches only the pipelines reading that
// source.
func (l *Loop) SourceID(pc model.PipelineConfig) string {
	if !mappable(pc) {
		return ""
	}
	dsn, err := l.expand(sourceEndpoint(pc).dsn)
	if err != nil || dsn == "" {
		return ""
	}
	return discovery.SourceIDFromDSN(dsn)
}

// expand resolves ${NAME} and ${NAME:default} references as the engine
// does; an unset variable without a default is an error, so a DSN is never
// used half-expanded.
func (l *Loop) expand(v string) (string, error) {
	out, missing := orchestrator.ExpandEnv(v, l.o.LookupEnv)
	if len(missing) > 0 {
		return "", fmt.Errorf("autoloop: environment variable %s is not set", strings.Join(missing, ", "))
	}
	return out, nil
}

// mappable reports whether the loop manages pc: a source table or file it
// can discover (PostgreSQL or SQLite table, CSV file) and a destination
// table it can describe (PostgreSQL or SQLite).
func mappable(pc model.PipelineConfig) bool {
	src, dst := sourceEndpoint(pc), destinationEndpoint(pc)
	return src.table != "" && dst.table != "" && !strings.ContainsAny(src.table+dst.table, "*?")
}

// endpoint is what discovery needs to describe one side of a pipeline: a
// DSN (with ${ENV} references still unexpanded) and a table name.
type endpoint struct{ dsn, table string }

func sourceEndpoint(pc model.PipelineConfig) endpoint {
	switch pc.Source.Type {
	case orchestrator.ConnPostgres, orchestrator.ConnSQLite:
		return endpoint{pc.Source.Connection["dsn"], pc.Source.Table}
	case orchestrator.ConnCSV:
		// A CSV file is discovered as the entity named after it in the
		// directory that holds it.
		if p := pc.Source.Connection["path"]; p != "" {
			return endpoint{"file://" + filepath.Dir(p), filepath.Base(p)}
		}
	}
	return endpoint{}
}

func destinationEndpoint(pc model.PipelineConfig) endpoint {
	switch pc.Destination.Type {
	case orchestrator.ConnPostgres, orchestrator.ConnSQLite:
		return endpoint{pc.Destination.Connection["dsn"], pc.Destination.Table}
	}
	return endpoint{}
}

// ---- discovery ----

// DiscoverOnce runs discovery on the source table of every mappable
// pipeline (metadata only) against the metadata store's catalog, publishes
// every schema change on the bus with the change id as event id, and
// records one decision per change and affected pipeline. A pipeline that
// has no mapping yet and whose table did not change gets a mapping task.
func (l *Loop) DiscoverOnce(ctx context.Context) error {
	pvs, err := l.o.Store.ListPipelineConfigs(ctx)
	if err != nil {
		return fmt.Errorf("autoloop: list pipelines: %w", err)
	}
	type target struct {
		dsn, table string
		pipelines  []metastore.PipelineConfigVersion
	}
	targets := map[string]*target{}
	var keys []string
	for _, pv := range pvs {
		if !mappable(pv.Config) {
			continue
		}
		src := sourceEndpoint(pv.Config)
		dsn, err := l.expand(src.dsn)
		if err != nil {
			l.log.Warn("pipeline source not discoverable", "pipeline", pv.PipelineID, "err", err)
			continue
		}
		k := dsn + "\x00" + src.table
		if targets[k] == nil {
			targets[k] = &target{dsn: dsn, table: src.table}
			keys = append(keys, k)
		}
		targets[k].pipelines = append(targets[k].pipelines, pv)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		tg := targets[k]
		changes, err := l.discoverTable(ctx, k, tg.dsn, tg.table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(changes) > 0 {
			l.publishChanges(ctx, changes, tg.pipelines)
			// The coordinator matches changes to pipelines by source table;
			// a CSV source has none (it names a file), so the loop asks for
			// its mapping task itself.
			for _, pv := range tg.pipelines {
				if pv.Config.Source.Table == "" {
					l.fileMappingTask(ctx, pv, changes)
				}
			}
			continue
		}
		for _, pv := range tg.pipelines {
			l.ensureMapping(ctx, pv)
		}
	}
	return errors.Join(errs...)
}

func (l *Loop) discoverTable(ctx context.Context, key, dsn, table string) ([]discovery.SchemaChange, error) {
	l.mu.Lock()
	a := l.agents[key]
	l.mu.Unlock()
	if a == nil {
		var err error
		a, err = discovery.New(discovery.Config{DSN: dsn, Include: []string{table}, MetadataOnly: true,
			Concurrency: 1, AgentID: DiscoveryAgentID, Logger: l.log}, l.o.Store)
		if err != nil {
			return nil, fmt.Errorf("autoloop: discovery of %s: %w", table, err)
		}
		l.mu.Lock()
		l.agents[key] = a
		l.mu.Unlock()
	}
	res, err := a.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("autoloop: discovery of %s: %w", table, err)
	}
	return res.Changes, nil
}

func (l *Loop) publishChanges(ctx context.Context, changes []discovery.SchemaChange, pvs []metastore.PipelineConfigVersion) {
	for _, ch := range changes {
		for _, pv := range pvs {
			l.o.Coordinator.RecordDecision(ctx, model.AgentDecision{
				AgentID: DiscoveryAgentID, AgentType: model.AgentDiscovery, PipelineID: pv.PipelineID,
				Action: "schema_change_detected", Confidence: ch.Confidence, Outcome: ch.ChangeType,
				Reasoning: fmt.Sprintf("discovery of source table %s of pipeline %s: %s", ch.Table, pv.PipelineID, ch.Reasoning),
			})
		}
		ev, err := bus.NewEvent(bus.SubjectSchemaChange, "schema.changed", ch)
		if err == nil && l.o.Bus != nil {
			ev.ID, ev.Source = ch.ID, DiscoveryAgentID
			if err = l.o.Bus.Publish(ctx, ev); err == nil {
				continue
			}
		}
		// Without the bus the coordinator gets the change directly: it is
		// already in the catalog and would not be detected again.
		if err != nil {
			l.log.Warn("schema change not published; handing it to the coordinator", "change", ch.ID, "err", err)
		}
		if _, err := l.o.Coordinator.OnSchemaChanges(ctx, []orch.SchemaChange{{
			ID: ch.ID, SourceID: ch.SourceID, Table: ch.Table, ChangeType: ch.ChangeType, Severity: ch.Severity,
			Column: ch.Column, PreviousColumn: ch.PreviousColumn, Confidence: ch.Confidence,
		}}); err != nil {
			l.log.Error("schema change lost", "change", ch.ID, "err", err)
		}
	}
}

// ensureMapping asks once (per process) for a mapping task for a pipeline
// that has neither the loop's mapping nor one of its own, nor a pending
// review.
func (l *Loop) ensureMapping(ctx context.Context, pv metastore.PipelineConfigVersion) {
	if hasMap(pv.Config) {
		return
	}
	l.mu.Lock()
	asked := l.asked[pv.PipelineID]
	l.asked[pv.PipelineID] = true
	l.mu.Unlock()
	if asked {
		return
	}
	// A pipeline paused for a pending review already has its mapping
	// task's answer; asking again (after a restart) would open a second
	// review of the same thing.
	if rs, err := l.Reviews(ctx, ReviewPending); err == nil {
		for _, r := range rs {
			if r.PipelineID == pv.PipelineID {
				return
			}
		}
	}
	b, err := json.Marshal(map[string]any{"pipelineId": pv.PipelineID, "key": pv.PipelineID + "/mapping",
		"reason": "no_mapping", "sourceTable": sourceEndpoint(pv.Config).table, "targetTable": destinationEndpoint(pv.Config).table,
		"pipelineVersion": pv.Version})
	if err != nil {
		return
	}
	if _, err := l.o.Coordinator.AssignTask(ctx, model.Task{Priority: orch.PriorityMapping, Payload: b}, model.AgentMapping); err != nil {
		l.log.Warn("mapping task not created", "pipeline", pv.PipelineID, "err", err)
	}
}

func hasMap(pc model.PipelineConfig) bool {
	for _, t := range pc.Transformations {
		if t.Type == "map" {
			return true
		}
	}
	return false
}

func ownMapIndex(pc model.PipelineConfig) (own int, foreign bool) {
	own = -1
	for i, t := range pc.Transformations {
		if t.Type != "map" {
			continue
		}
		if t.ID == AgentMappingID {
			own = i
		} else {
			foreign = true
		}
	}
	return own, foreign
}

// fileMappingTask queues a mapping task for a pipeline whose source is a
// file, with the changes discovery found in it, as the coordinator does for
// a source table.
func (l *Loop) fileMappingTask(ctx context.Context, pv metastore.PipelineConfigVersion, changes []discovery.SchemaChange) {
	chs := make([]orch.SchemaChange, 0, len(changes))
	for _, ch := range changes {
		chs = append(chs, orch.SchemaChange{ID: ch.ID, SourceID: ch.SourceID, Table: ch.Table, ChangeType: ch.ChangeType,
			Severity: ch.Severity, Column: ch.Column, PreviousColumn: ch.PreviousColumn, Confidence: ch.Confidence})
	}
	src := sourceEndpoint(pv.Config)
	b, err := json.Marshal(map[string]any{"pipelineId": pv.PipelineID, "key": pv.PipelineID + "/mapping",
		"reason": "schema_change", "sourceTable": src.table, "targetTable": destinationEndpoint(pv.Config).table,
		"pipelineVersion": pv.Version, "changes": chs})
	if err != nil {
		return
	}
	asg, err := l.o.Coordinator.AssignTask(ctx, model.Task{Priority: orch.PriorityMapping + 5, Payload: b}, model.AgentMapping)
	if err != nil {
		l.log.Warn("mapping task not created", "pipeline", pv.PipelineID, "err", err)
		return
	}
	l.mu.Lock()
	l.asked[pv.PipelineID] = true
	l.mu.Unlock()
	l.o.Coordinator.RecordDecision(ctx, model.AgentDecision{AgentID: DiscoveryAgentID, AgentType: model.AgentDiscovery,
		TaskID: asg.Task.ID, PipelineID: pv.PipelineID, Action: "schema_change_to_mapping", Confidence: 1, Outcome: asg.Status,
		Reasoning: fmt.Sprintf("source file %s of pipeline %s changed (%d changes); its mapping must be re-derived", src.table, pv.PipelineID, len(chs))})
}
