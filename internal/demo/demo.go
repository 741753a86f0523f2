// Package demo loads the bundled demo (resources/demo) into a running
// orchestrator, through the same Manager and automatic loop a user of the
// API drives: it prepares the modern target schema, creates three
// pipelines when they do not exist yet, lets discovery and the mapping
// agent map them, runs the batch load once and leaves a generated event
// stream running.
//
//   - demo-orders (batch): the legacy SQLite table CUST_ORD, abbreviated
//     column names and all, into the target table orders. Every proposal
//     of the mapping agent is accepted, so it is applied without a human;
//     the load then writes the good rows and sends the bad ones (an
//     impossible date, a negative amount, a country name where a code
//     belongs, an over-long name) to the dead letter.
//   - demo-orders-csv (batch): the same orders exported as CSV. A CSV has
//     no column types and one of its dates does not parse, so the agent is
//     not sure ord_dt is a date: that field goes to the review queue while
//     the others are accepted, and the pipeline waits, paused, for a
//     reviewer.
//   - demo-order-events (stream): synthetic order events from a generate
//     input into order_events, running until the orchestrator stops.
//
// Everything is idempotent: a second start finds the pipelines, their
// mappings, their checkpoints and the finished load, and adds nothing.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/orchestrator/autoloop"
	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/internal/sqlitedb"
)

// Pipeline ids of the demo.
const (
	OrdersID = "demo-orders"
	CSVID    = "demo-orders-csv"
	EventsID = "demo-order-events"
)

// DefaultPGSchema is the PostgreSQL schema of the demo's target tables.
const DefaultPGSchema = "agentetl_demo"

// Files of resources/demo the demo reads.
const (
	legacyFile    = "legacy.db"
	csvFile       = "csv/cust_ord.csv"
	sqliteDDLFile = "target-sqlite.sql"
	pgDDLFile     = "target-postgres.sql"
)

// eventMapping generates one order event; it is a pure Bloblang mapping
// (no env, file or hostname), as the orchestrator requires of pipeline
// logic.
const eventMapping = `root = {"event_id": uuid_v4(), "order_id": 100001 + random_int(min: 0, max: 2999), ` +
	`"event_type": ["viewed", "paid", "shipped", "delivered", "returned"].index(random_int(min: 0, max: 4)), ` +
	`"occurred_at": now().ts_parse("2006-01-02T15:04:05.999999999Z07:00")}`

// Loop is the part of the automatic loop the demo uses.
type Loop interface {
	Kick()
	Reviews(ctx context.Context, status string) ([]autoloop.Review, error)
}

// Options configure Run.
type Options struct {
	// Dir holds the demo's files (resources/demo).
	Dir string
	// DataDir is the orchestrator's data directory: the SQLite target and
	// the dead-letter file go there.
	DataDir string
	Manager *orchestrator.Manager
	Loop    Loop
	// UIURL is printed for the user, e.g. http://127.0.0.1:8080/.
	UIURL string
	// Out receives the lines meant for the user (stdout).
	Out    io.Writer
	Logger *slog.Logger
	// PGSchema is the schema of the target tables when PostgreSQL is the
	// destination (default DefaultPGSchema).
	PGSchema string
	// LookupEnv reads PG_DSN (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
}

// destination is where the demo writes.
type destination struct {
	kind            string // orchestrator.ConnSQLite or ConnPostgres
	dsn             string // value of the pipelines' connection.dsn
	orders, events  string // table names
	deadLetter      string // errorHandling.deadLetter of demo-orders
	csvDeadLetter   string // and of demo-orders-csv
	describe        string // for the user
	deadLetterWhere string
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Run sets the demo up and runs its batch load once. It returns when the
// load has finished (or had finished on an earlier start), or when ctx
// ends; the stream pipeline keeps running in the engine.
func Run(ctx context.Context, o Options) error {
	if o.Manager == nil || o.Loop == nil {
		return errors.New("demo: needs the pipeline manager and the automatic loop (--auto-loop)")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.PGSchema == "" {
		o.PGSchema = DefaultPGSchema
	}
	if !schemaName.MatchString(o.PGSchema) {
		return fmt.Errorf("demo: PostgreSQL schema %q must be a plain lower-case identifier", o.PGSchema)
	}
	log := o.Logger.With("component", "demo")
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, f := range []string{legacyFile, csvFile, sqliteDDLFile, pgDDLFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("demo: %s is not the demo directory (resources/demo): %w", o.Dir, err)
		}
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	dst, err := prepareDestination(ctx, o, dir, dataDir, log)
	if err != nil {
		return err
	}
	created, err := ensurePipelines(ctx, o.Manager, dir, dst, log)
	if err != nil {
		return err
	}
	if len(created) > 0 {
		log.Info("demo pipelines created", "pipelines", strings.Join(created, ", "), "destination", dst.describe)
	} else {
		log.Info("demo pipelines already exist; reusing them", "destination", dst.describe)
	}
	// Discovery and mapping now rather than at the next interval.
	o.Loop.Kick()
	fmt.Fprintf(o.Out, "\nagentetl demo: legacy orders -> %s\n  UI:  %s\n  API: %sapi/v1/pipelines\n\n", dst.describe, o.UIURL, o.UIURL)

	if err := waitForMapping(ctx, o, log); err != nil {
		return err
	}
	ex, fresh, err := runOnce(ctx, o.Manager, log)
	if err != nil {
		return err
	}
	verb := "finished"
	if !fresh {
		verb = "had finished on an earlier start (its checkpoint makes a new run read only new rows)"
	}
	fmt.Fprintf(o.Out, "agentetl demo: batch load %s %s: %d rows read, %d loaded into %s, %d dead letters (%s)\n",
		OrdersID, verb, ex.RowsIn, ex.RowsOut, dst.orders, ex.DeadLetter, dst.deadLetterWhere)
	waitForAnswer(ctx, o.Manager, CSVID, 20*time.Second)
	if rs, err := o.Loop.Reviews(ctx, autoloop.ReviewPending); err == nil && len(rs) > 0 {
		fmt.Fprintf(o.Out, "agentetl demo: %d mapping review(s) waiting for you at %sui/reviews (pipeline %s: the CSV export has no types)\n",
			len(rs), o.UIURL, rs[0].PipelineID)
	}
	fmt.Fprintf(o.Out, "agentetl demo: stream %s writes generated order events into %s until you press Ctrl-C\n\n", EventsID, dst.events)
	return nil
}

// prepareDestination picks PostgreSQL when PG_DSN is set and answers,
// the embedded SQLite file otherwise, and applies the target DDL (which is
// idempotent).
func prepareDestination(ctx context.Context, o Options, dir, dataDir string, log *slog.Logger) (destination, error) {
	if dsn, ok := o.LookupEnv("PG_DSN"); ok && strings.TrimSpace(dsn) != "" {
		err := applyPostgres(ctx, dsn, filepath.Join(dir, pgDDLFile), o.PGSchema)
		if err == nil {
			q := o.PGSchema + "."
			return destination{
				kind: orchestrator.ConnPostgres, dsn: "${PG_DSN}",
				orders: q + "orders", events: q + "order_events",
				deadLetter:      "table:" + q + "orders_dead_letters",
				csvDeadLetter:   "table:" + q + "orders_csv_dead_letters",
				describe:        "PostgreSQL " + redact.DSN(dsn) + " (schema " + o.PGSchema + ")",
				deadLetterWhere: "table " + q + "orders_dead_letters",
			}, nil
		}
		if ctx.Err() != nil {
			return destination{}, ctx.Err()
		}
		log.Info("PG_DSN does not answer; the demo writes to the embedded SQLite file instead", "dsn", redact.DSN(dsn), "err", redact.String(err.Error()))
	}
	path := filepath.Join(dataDir, "demo-target.db")
	ddl, err := os.ReadFile(filepath.Join(dir, sqliteDDLFile))
	if err != nil {
		return destination{}, fmt.Errorf("demo: %w", err)
	}
	db, err := sqlitedb.Open(ctx, "sqlite://"+path, false, 1)
	if err != nil {
		return destination{}, fmt.Errorf("demo: target database: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, string(ddl)); err != nil {
		return destination{}, fmt.Errorf("demo: target schema: %w", err)
	}
	dl := filepath.Join(dataDir, "demo-dead-letters.jsonl")
	return destination{
		kind: orchestrator.ConnSQLite, dsn: "sqlite://" + path, orders: "orders", events: "order_events",
		deadLetter: "file:" + dl, csvDeadLetter: "file:" + filepath.Join(dataDir, "demo-csv-dead-letters.jsonl"),
		describe: "SQLite " + path, deadLetterWhere: dl,
	}, nil
}

func applyPostgres(ctx context.Context, dsn, ddlPath, schema string) error {
	ddl, err := os.ReadFile(ddlPath)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The schema name is a validated identifier; the DDL is our own file.
	sql := strings.ReplaceAll(string(ddl), DefaultPGSchema+".", schema+".")
	sql = strings.ReplaceAll(sql, "SCHEMA IF NOT EXISTS "+DefaultPGSchema+";", "SCHEMA IF NOT EXISTS "+schema+";")
	if _, err := conn.Exec(cctx, sql); err != nil {
		return fmt.Errorf("demo: target schema: %w", err)
	}
	return nil
}

// pipelines are the demo's pipeline configs for a destination.
func pipelines(dir string, dst destination) []model.PipelineConfig {
	tags := map[string]string{"demo": "true"}
	return []model.PipelineConfig{
		{
			ID: OrdersID, Name: "Demo: legacy orders (SQLite) into the modern schema", Type: orchestrator.TypeBatch,
			Source: model.SourceConfig{Type: orchestrator.ConnSQLite, Table: "CUST_ORD", Connection: map[string]string{
				"dsn": "sqlite://" + filepath.Join(dir, legacyFile), "keyColumn": "ord_id", "pageSize": "500"}},
			Destination: model.DestinationConfig{Type: dst.kind, Table: dst.orders, Connection: map[string]string{
				"dsn": dst.dsn, "mode": "upsert"}},
			ErrorHandling: model.ErrorHandlingConfig{DeadLetter: dst.deadLetter},
			Metadata: model.PipelineMetadata{Owner: "demo", Tags: tags, Description: "The legacy order table CUST_ORD " +
				"(abbreviated column names, text dates, a few bad records) loaded into the modern orders table. " +
				"Discovery catalogs the source, the mapping agent maps it, bad rows go to the dead letter."},
		},
		{
			ID: CSVID, Name: "Demo: the same orders exported as CSV", Type: orchestrator.TypeBatch,
			Source: model.SourceConfig{Type: orchestrator.ConnCSV, Connection: map[string]string{
				"path": filepath.Join(dir, csvFile)}},
			Destination: model.DestinationConfig{Type: dst.kind, Table: dst.orders, Connection: map[string]string{
				"dsn": dst.dsn, "mode": "upsert"}},
			// Into PostgreSQL, the first writes of CSV text fail until the
			// error-resolution agent learns to coerce it to the column
			// types; those attempts count against the run's error budget.
			ErrorHandling: model.ErrorHandlingConfig{DeadLetter: dst.csvDeadLetter, MaxRetries: 50},
			Metadata: model.PipelineMetadata{Owner: "demo", Tags: tags, Description: "A CSV export has no column types, " +
				"so the mapping agent is less sure of some fields and asks a reviewer before the pipeline may run."},
		},
		{
			ID: EventsID, Name: "Demo: generated order events", Type: orchestrator.TypeStream,
			Source: model.SourceConfig{Type: orchestrator.ConnGenerate, Connection: map[string]string{
				"mapping": eventMapping, "interval": "2s"}},
			Destination: model.DestinationConfig{Type: dst.kind, Table: dst.events, Connection: map[string]string{
				"dsn": dst.dsn, "mode": "upsert"}},
			Metadata: model.PipelineMetadata{Owner: "demo", Tags: tags, Description: "A stream pipeline: one synthetic " +
				"order event every two seconds, idempotent by event id."},
		},
	}
}

// ensurePipelines creates the demo pipelines that do not exist. Existing
// ones are left as they are: the mapping agent, a reviewer or a user may
// have changed them since.
func ensurePipelines(ctx context.Context, m *orchestrator.Manager, dir string, dst destination, log *slog.Logger) ([]string, error) {
	have := map[string]orchestrator.Pipeline{}
	for _, p := range m.List() {
		have[p.ID] = p
	}
	var created []string
	for _, pc := range pipelines(dir, dst) {
		if p, ok := have[pc.ID]; ok {
			if p.Config.Destination.Type != pc.Destination.Type {
				log.Warn("demo pipeline keeps its earlier destination; delete it to switch", "pipeline", pc.ID,
					"has", p.Config.Destination.Type, "now", pc.Destination.Type)
			}
			continue
		}
		if _, err := m.Create(ctx, pc, "created by the bundled demo"); err != nil {
			if errors.Is(err, orchestrator.ErrExists) {
				continue
			}
			return created, fmt.Errorf("demo: create pipeline %s: %w", pc.ID, err)
		}
		created = append(created, pc.ID)
	}
	return created, nil
}

// waitForMapping waits until the mapping agent has written its mapping
// into demo-orders. A review on it (which the bundled data does not
// cause, but a changed mapping history could) is reported and waited for.
func waitForMapping(ctx context.Context, o Options, log *slog.Logger) error {
	told := ""
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		p, err := o.Manager.Get(ctx, OrdersID)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if p.State == orchestrator.StateActive && hasMapping(p.Config) {
			return nil
		}
		if p.State == orchestrator.StatePaused {
			rs, _ := o.Loop.Reviews(ctx, autoloop.ReviewPending)
			for _, r := range rs {
				if r.PipelineID == OrdersID && r.ID != told {
					told = r.ID
					fmt.Fprintf(o.Out, "agentetl demo: the mapping of %s waits for review %s (%s); approve it at %sui/reviews\n",
						OrdersID, r.ID, strings.Join(r.Reasons, "; "), o.UIURL)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if told == "" {
			log.Debug("waiting for the mapping agent", "pipeline", OrdersID)
		}
	}
}

func hasMapping(pc model.PipelineConfig) bool {
	for _, t := range pc.Transformations {
		if t.Type == "map" {
			return true
		}
	}
	return false
}

// runOnce runs demo-orders unless a run already succeeded; a run left
// running by an earlier orchestrator is waited for. It reports whether
// this call started the run.
func runOnce(ctx context.Context, m *orchestrator.Manager, log *slog.Logger) (metastore.Execution, bool, error) {
	xs, err := m.Executions(ctx, OrdersID, 50)
	if err != nil {
		return metastore.Execution{}, false, fmt.Errorf("demo: %w", err)
	}
	for _, x := range xs {
		if x.Status == orchestrator.ExecSucceeded {
			return x, false, nil
		}
	}
	ex, running := m.Running(OrdersID)
	fresh := false
	if !running {
		if ex, err = m.Run(ctx, OrdersID, "demo"); err != nil && !errors.Is(err, orchestrator.ErrOverlap) {
			return ex, false, fmt.Errorf("demo: run %s: %w", OrdersID, err)
		}
		fresh = true
		log.Info("demo batch load started", "pipeline", OrdersID, "execution", ex.ID)
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		cur, err := m.Execution(ctx, ex.ID)
		if err != nil {
			return ex, fresh, fmt.Errorf("demo: %w", err)
		}
		if cur.Status != orchestrator.ExecRunning {
			if cur.Status != orchestrator.ExecSucceeded {
				return cur, fresh, fmt.Errorf("demo: batch load %s %s: %s", OrdersID, cur.Status, cur.Message)
			}
			return cur, fresh, nil
		}
		select {
		case <-ctx.Done():
			return cur, fresh, ctx.Err()
		case <-t.C:
		}
	}
}

// waitForAnswer waits, at most limit, until the mapping agent has answered
// for pipeline id: a mapping applied or a review opened (which pauses it).
func waitForAnswer(ctx context.Context, m *orchestrator.Manager, id string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		p, err := m.Get(ctx, id)
		if err != nil || p.State == orchestrator.StatePaused || hasMapping(p.Config) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
