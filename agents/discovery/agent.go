package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// Config configures the discovery agent. Zero values take the defaults
// noted on each field.
type Config struct {
	// DSN names the source: postgres://, mysql://, sqlite://, file://.
	DSN string
	// SourceID identifies the source in the catalog; default
	// SourceIDFromDSN(DSN).
	SourceID string
	// Include and Exclude are table patterns (see Filter).
	Include, Exclude []string
	// MetadataOnly skips profiling: schemas, keys and row estimates only.
	MetadataOnly bool
	// Concurrency is the number of tables profiled at once (default 4).
	Concurrency int
	// TableTimeout bounds the profiling of one table (default 60s); a table
	// that runs out of time is reported as skipped.
	TableTimeout time.Duration
	// SampleRows is the profiling sample size: tables with more rows are
	// sampled down to about this many (default 100000).
	SampleRows int64
	// TopK is the number of top values per column (default 5).
	TopK int
	// SampleValues is the number of example values per column (default 5).
	SampleValues int
	// Seed makes sampling repeatable (default 42).
	Seed int64
	// RenameThreshold is the similarity needed to report a rename
	// (default 0.6).
	RenameThreshold float64
	// AgentID names this agent in decisions (default "discovery-agent").
	AgentID string
	// Logger receives progress and warnings (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.SourceID == "" {
		c.SourceID = SourceIDFromDSN(c.DSN)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.TableTimeout <= 0 {
		c.TableTimeout = 60 * time.Second
	}
	if c.SampleRows <= 0 {
		c.SampleRows = 100_000
	}
	if c.TopK <= 0 {
		c.TopK = 5
	}
	if c.SampleValues <= 0 {
		c.SampleValues = 5
	}
	if c.Seed == 0 {
		c.Seed = 42
	}
	if c.RenameThreshold <= 0 {
		c.RenameThreshold = defaultRenameThreshold
	}
	if c.AgentID == "" {
		c.AgentID = "discovery-agent"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Agent is the Data Discovery Agent: it extracts metadata and profiles from
// one source, detects schema changes against the catalog and keeps the
// catalog up to date. It keeps its source connection between runs and is
// safe for use by one goroutine at a time.
type Agent struct {
	cfg    Config
	filter *Filter
	store  metastore.Store
	log    *slog.Logger

	mu   sync.Mutex
	conn Connector
}

// New validates cfg and returns an agent. store may be nil: discovery then
// works without catalog, versions, changes or decisions.
func New(cfg Config, store metastore.Store) (*Agent, error) {
	if strings.TrimSpace(cfg.DSN) == "" {
		return nil, errors.New("discovery: no DSN given")
	}
	cfg.defaults()
	f, err := NewFilter(cfg.Include, cfg.Exclude)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, filter: f, store: store, log: cfg.Logger}, nil
}

// SourceID is the catalog identifier of the agent's source.
func (a *Agent) SourceID() string { return a.cfg.SourceID }

// Connect opens the source connection if it is not open. Errors are
// *SourceError with the DSN redacted.
func (a *Agent) Connect(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		return nil
	}
	c, err := OpenConnector(ctx, a.cfg.DSN, ConnectorOptions{MaxConns: a.cfg.Concurrency, Seed: a.cfg.Seed})
	if err != nil {
		return err
	}
	a.conn = c
	return nil
}

// Close releases the source connection. The agent may connect again.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		return nil
	}
	err := a.conn.Close()
	a.conn = nil
	return err
}

func (a *Agent) connector(ctx context.Context) (Connector, error) {
	if err := a.Connect(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conn, nil
}

// Discover extracts the metadata of every selected table in bulk and, unless
// MetadataOnly, profiles the tables concurrently, each within TableTimeout.
// A table that cannot be read (no privilege, timeout, error) is reported in
// Result.Skipped while the others complete. A source without tables gives
// an empty result. A failure of the source itself is a *SourceError, and a
// connection failure closes the connection so the next call reconnects.
func (a *Agent) Discover(ctx context.Context) (*Result, error) {
	start := time.Now()
	res := &Result{RunID: uuid.NewString(), SourceID: a.cfg.SourceID, StartedAt: start.UTC(),
		Tables: []*SourceMetadata{}, Skipped: []SkippedTable{}, Changes: []SchemaChange{}}
	conn, err := a.connector(ctx)
	if err != nil {
		return nil, err
	}
	res.Connector = conn.Kind()
	ents, skipped, err := conn.Entities(ctx, a.filter)
	if err != nil {
		if IsConnectionError(err) {
			_ = a.Close()
		}
		return nil, a.sourceErr("read catalog", err)
	}
	res.Skipped = append(res.Skipped, skipped...)
	for _, s := range skipped {
		a.log.Warn("discovery: skipping table", "source", a.cfg.SourceID, "table", s.Table, "reason", s.Reason)
	}
	docs := make([]*SourceMetadata, len(ents))
	for i, e := range ents {
		docs[i] = a.document(e, start)
	}
	if !a.cfg.MetadataOnly && len(ents) > 0 {
		ok, failed, err := a.profileAll(ctx, conn, ents, docs)
		if err != nil {
			if IsConnectionError(err) {
				_ = a.Close()
			}
			return nil, err
		}
		res.Skipped = append(res.Skipped, failed...)
		docs = ok
	}
	for _, d := range docs {
		if d != nil {
			res.Tables = append(res.Tables, d)
		}
	}
	sort.Slice(res.Tables, func(i, j int) bool { return res.Tables[i].Table < res.Tables[j].Table })
	sort.Slice(res.Skipped, func(i, j int) bool { return res.Skipped[i].Table < res.Skipped[j].Table })
	res.Duration = time.Since(start)
	a.log.Info("discovery: run finished", "source", a.cfg.SourceID, "tables", len(res.Tables),
		"skipped", len(res.Skipped), "profiled", !a.cfg.MetadataOnly, "duration", res.Duration.Round(time.Millisecond))
	return res, nil
}

func (a *Agent) sourceErr(op string, err error) error {
	var se *SourceError
	if errors.As(err, &se) {
		if se.DSN == "" {
			se.DSN = redact.DSN(a.cfg.DSN)
			se.secrets = append(se.secrets, dsnSecrets(a.cfg.DSN)...)
		}
		return err
	}
	return &SourceError{Op: op, DSN: redact.DSN(a.cfg.DSN), Err: err, secrets: dsnSecrets(a.cfg.DSN)}
}

// document builds the metadata document of an entity, before profiling.
func (a *Agent) document(e *Entity, at time.Time) *SourceMetadata {
	d := &SourceMetadata{
		Table: e.QualifiedName(), SchemaName: e.Schema, Name: e.Name, Kind: e.Kind,
		SourceID: a.cfg.SourceID, Description: e.Description,
		PrimaryKey: e.PrimaryKey, ForeignKeys: e.ForeignKeys, DiscoveredAt: at.UTC().Truncate(time.Microsecond),
	}
	d.Connector = a.connKind()
	fields := make([]model.Field, len(e.Columns))
	for i, c := range e.Columns {
		fields[i] = model.Field{Name: c.Name, DataType: c.DataType, Nullable: c.Nullable, Description: c.Description}
	}
	d.Schema = model.Schema{ID: EntityID(a.cfg.SourceID, d.Table), SourceID: a.cfg.SourceID, Fields: fields, Timestamp: d.DiscoveredAt}
	d.Stats = Stats{RowCount: e.RowEstimate, RowCountEstimated: !e.RowCountExact}
	if e.RowEstimate < 0 {
		d.Stats.RowCountEstimated = false
	}
	d.SchemaHash = SchemaHash(d)
	return d
}

func (a *Agent) connKind() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		return ""
	}
	return a.conn.Kind()
}

// profileAll profiles entities with a bounded worker pool. It returns the
// documents that were profiled (nil where skipped), the skipped tables, and
// an error only when the source as a whole failed or ctx ended.
func (a *Agent) profileAll(ctx context.Context, conn Connector, ents []*Entity, docs []*SourceMetadata) ([]*SourceMetadata, []SkippedTable, error) {
	type outcome struct {
		skip  *SkippedTable
		fatal error
	}
	outs := make([]outcome, len(ents))
	jobs := make(chan int)
	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < min(a.cfg.Concurrency, len(ents)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				err := a.profileOne(runCtx, conn, ents[i], docs[i])
				switch {
				case err == nil:
				case ctx.Err() != nil:
					outs[i].fatal = ctx.Err()
				case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errTableTimeout):
					outs[i].skip = &SkippedTable{Table: docs[i].Table, Reason: fmt.Sprintf("profiling timed out after %s", a.cfg.TableTimeout)}
				case IsConnectionError(err):
					outs[i].fatal = err
					cancel()
				default:
					outs[i].skip = &SkippedTable{Table: docs[i].Table, Reason: tableReason(err)}
				}
				if s := outs[i].skip; s != nil {
					a.log.Warn("discovery: skipping table", "source", a.cfg.SourceID, "table", s.Table, "reason", s.Reason)
				}
			}
		}()
	}
feed:
	for i := range ents {
		select {
		case jobs <- i:
		case <-runCtx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var skipped []SkippedTable
	for i, o := range outs {
		if o.fatal != nil {
			return nil, nil, a.sourceErr("profile "+docs[i].Table, o.fatal)
		}
		if o.skip != nil {
			skipped = append(skipped, *o.skip)
			docs[i] = nil
		}
	}
	return docs, skipped, nil
}

var errTableTimeout = errors.New("table timeout")

// tableReason phrases a per-table failure for the report.
func tableReason(err error) string {
	msg := redact.String(err.Error())
	switch st := pgutil.SQLState(err); {
	case st == "42501":
		return "permission denied: " + msg
	case st != "":
		return msg
	}
	var se *SourceError
	if errors.As(err, &se) {
		return se.Error()
	}
	if mysqlPermanent(err) {
		return "permission denied: " + msg
	}
	return msg
}

func (a *Agent) profileOne(ctx context.Context, conn Connector, e *Entity, d *SourceMetadata) error {
	tctx, cancel := context.WithTimeoutCause(ctx, a.cfg.TableTimeout, errTableTimeout)
	defer cancel()
	start := time.Now()
	p := NewProfiler(e.Columns, ProfileOptions{TopK: a.cfg.TopK, SampleValues: a.cfg.SampleValues})
	info, err := conn.Rows(tctx, e, a.cfg.SampleRows, func(row [][]byte) error {
		p.Add(row)
		return nil
	})
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("%w: %w", errTableTimeout, err)
		}
		return err
	}
	total := info.RowCount
	if total < p.Rows() {
		total = p.Rows()
	}
	d.Stats = Stats{
		RowCount: total, RowCountEstimated: !info.RowCountExact, Profiled: true,
		Sampled: info.Sampled, SampleMethod: info.Method, SampleSize: p.Rows(),
		ProfileMillis: time.Since(start).Milliseconds(),
		Fields:        p.Finish(total, !info.Sampled),
	}
	if !info.Sampled {
		d.Stats.SampleMethod = "full scan"
	}
	return nil
}

// Run is one complete discovery pass: Discover, then, with a store, detect
// schema changes against the catalog, write new schema versions where the
// structure changed, update the catalog entries and record the run and
// every change as agent decisions. Result.Changes holds the changes.
func (a *Agent) Run(ctx context.Context) (*Result, error) {
	res, err := a.Discover(ctx)
	if err != nil {
		if a.store != nil {
			a.recordRunFailure(ctx, err)
		}
		return nil, err
	}
	if a.store == nil {
		return res, nil
	}
	changes, err := a.DetectSchemaChanges(ctx, res)
	if err != nil {
		return nil, err
	}
	res.Changes = changes
	if err := a.UpdateCatalog(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (a *Agent) recordRunFailure(ctx context.Context, runErr error) {
	d := model.AgentDecision{AgentID: a.cfg.AgentID, AgentType: model.AgentDiscovery, Action: "discovery_run",
		Confidence: 1, Outcome: "failed",
		Reasoning: fmt.Sprintf("discovery of %s failed: %s", a.cfg.SourceID, redact.String(runErr.Error()))}
	if err := a.store.SaveAgentDecision(ctx, d); err != nil {
		a.log.Warn("discovery: cannot record failed run", "err", err)
	}
}
