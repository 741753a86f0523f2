// Package discovery registers the `discovery` input: the Data Discovery
// Agent (agents/discovery) as a message source. Each pass emits one message
// per discovered table and one per schema change, then ends or waits for the
// next pass.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	agent "github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/internal/runctl"
)

const (
	diFieldDSN             = "dsn"
	diFieldInclude         = "include"
	diFieldExclude         = "exclude"
	diFieldProfile         = "profile"
	diFieldInterval        = "interval"
	diFieldStore           = "store"
	diFieldSourceID        = "source_id"
	diFieldConcurrency     = "concurrency"
	diFieldTableTimeout    = "table_timeout"
	diFieldSampleRows      = "sample_rows"
	diFieldTopK            = "top_k"
	diFieldRetryInitial    = "retry_initial_interval"
	diFieldRetryMax        = "retry_max_interval"
	diFieldConnectAttempts = "max_connect_attempts"

	// Metadata keys. Every message has MetaKind, MetaSource, MetaRun and
	// (except for an empty run) MetaTable.
	MetaKind       = "discovery_kind" // KindTable, KindSchemaChange or KindSkipped
	MetaSource     = "discovery_source"
	MetaConnector  = "discovery_connector"
	MetaRun        = "discovery_run"
	MetaTable      = "discovery_table"
	MetaChangeType = "discovery_change_type"
	MetaSeverity   = "discovery_severity"

	// Values of MetaKind.
	KindTable        = "table"
	KindSchemaChange = "schema_change"
	KindSkipped      = "skipped_table"
)

func discoveryInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Runs the Data Discovery Agent against a database or a directory of files and emits what it finds: one message per table and one per schema change.").
		Description(strings.ReplaceAll(`
Connects to the source named by §dsn§ (§postgres://§, §mysql://§, §sqlite://§, §file://§ for a
directory of CSV and JSON Lines files, or §kafka://broker1:9092,broker2:9092/?topics=a,b§, which samples the newest
messages of each topic without joining a group and infers a JSON schema), reads every table's metadata with a few bulk catalog queries and, unless
§profile: false§, profiles each column (null fraction, distinct count, min, max, top values, average length,
semantic type). Tables larger than §sample_rows§ are sampled (§TABLESAMPLE SYSTEM§ on PostgreSQL) and the message
says so.

### Messages

Each pass emits, in this order:

- one message per table: the table document (§table§, §schema.fields[]§, §stats.rowCount§,
  §stats.fields.<column>§, ...), with metadata §discovery_kind: table§;
- with a §store§, one message per schema change against the previous catalog version (§changeType§, §severity§,
  §column§, §previousColumn§, §typeChange§, §reasoning§, ...), with metadata §discovery_kind: schema_change§,
  §discovery_change_type§ and §discovery_severity§;
- one message per table that was found but could not be read (no SELECT privilege, timeout), with metadata
  §discovery_kind: skipped_table§.

Every message also carries §discovery_table§, §discovery_source§, §discovery_connector§ and §discovery_run§ (the
run id, shared by the messages of one pass).

### Catalog

With §store§ set, every pass is recorded in the metadata store: a new schema version for each table whose structure
changed (and only then), the catalog entry with its profile, and an agent decision for the pass and for each
change, with its reasoning. Without it, no changes are computed.

### Passes and errors

With §interval§ empty the input makes one pass and ends, so §agentetl run§ exits once the messages are delivered.
With an interval such as §5m§ it makes a pass every interval. An unreachable source is retried with exponential
backoff between §retry_initial_interval§ and §retry_max_interval§; wrong credentials, a missing database or an
unsupported DSN stop §agentetl run§ at once, and so does an unreachable source after §max_connect_attempts§.
Passwords are redacted in every log line and error.`, "§", "`")).
		Fields(
			service.NewStringField(diFieldDSN).
				Description("The source: `postgres://`, `mysql://`, `sqlite://`, `file://` (a directory) or `kafka://` (brokers and `?topics=`).").
				Example("postgres://discovery:${PGPASSWORD}@localhost:5432/app?sslmode=disable").
				Example("mysql://reader:${MYSQL_PASSWORD}@localhost:3306/shop").
				Example("sqlite:///var/lib/app/app.db").
				Example("file:///data/landing").Secret(),
			service.NewStringListField(diFieldInclude).
				Description("Table patterns to discover, matched case-insensitively against `schema.table` and the bare table name (`*` any characters, `?` one). Empty means every table.").
				Example([]string{"sales.*", "public.orders"}).Default([]string{}),
			service.NewStringListField(diFieldExclude).
				Description("Table patterns to leave out; an exclude match wins over an include.").
				Example([]string{"*.tmp_*", "audit_log"}).Default([]string{}),
			service.NewBoolField(diFieldProfile).
				Description("Profile the columns. `false` emits schemas, keys and row estimates only, which is much faster on large databases.").
				Default(true),
			service.NewStringField(diFieldInterval).
				Description("Time between passes. Empty makes one pass and ends the input.").
				Example("").Example("5m").Example("1h").Default("").
				LintRule(`root = if this != "" && !this.re_match("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$") { ["interval must be empty (one pass) or a positive duration such as 5m"] }`),
			service.NewStringField(diFieldStore).
				Description("Metadata store DSN (`sqlite://path` or `postgres://...`) in which the catalog, schema versions and decisions are kept. Empty disables the catalog and change detection.").
				Example("sqlite://./data/agentetl.db").Default("").Secret(),
			service.NewStringField(diFieldSourceID).
				Description("Catalog identifier of the source. Empty derives it from the DSN as `scheme://host:port/database` (no user, no password).").
				Default("").Advanced(),
			service.NewIntField(diFieldConcurrency).
				Description("Tables profiled at once.").
				Default(4).Advanced().
				LintRule(`root = if this < 1 || this > 64 { ["concurrency must be between 1 and 64"] }`),
			service.NewDurationField(diFieldTableTimeout).
				Description("Time limit for profiling one table; a table that runs out of time is reported as skipped while the others complete.").
				Default("60s").Advanced(),
			service.NewIntField(diFieldSampleRows).
				Description("Tables with more rows than this are profiled on a sample of about this many rows.").
				Default(100000).Advanced().
				LintRule(`root = if this < 100 || this > 10000000 { ["sample_rows must be between 100 and 10000000"] }`),
			service.NewIntField(diFieldTopK).
				Description("Most frequent values kept per column.").
				Default(5).Advanced().
				LintRule(`root = if this < 1 || this > 100 { ["top_k must be between 1 and 100"] }`),
			service.NewDurationField(diFieldRetryInitial).
				Description("First wait after a failed connection; it doubles on each failure.").
				Default("1s").Advanced(),
			service.NewDurationField(diFieldRetryMax).
				Description("Longest wait between connection attempts.").
				Default("1m").Advanced(),
			service.NewIntField(diFieldConnectAttempts).
				Description("Under `agentetl run`, give up after this many consecutive failed connection attempts and exit non-zero. 0 retries forever, which suits a periodic `interval`.").
				Default(5).Advanced().
				LintRule(`root = if this < 0 { ["max_connect_attempts cannot be negative"] }`),
			service.NewAutoRetryNacksToggleField(),
		).
		LintRule(`root = if this.dsn.or("") == "" { ["dsn must be set"] }`).
		Example("Discover a PostgreSQL schema once", "Profile every table of the `sales` schema, record the run in the catalog and print one document per table and per change.", `
input:
  discovery:
    dsn: ${SOURCE_DSN}
    include: [ "sales.*" ]
    store: sqlite://./data/agentetl.db
output:
  stdout: {}
`).
		Example("Watch a database for schema changes", "Every 10 minutes, discover metadata only and keep just the breaking changes.", `
input:
  discovery:
    dsn: ${SOURCE_DSN}
    profile: false
    interval: 10m
    max_connect_attempts: 0
    store: ${STORE_DSN}
pipeline:
  processors:
    - mapping: |
        root = if @discovery_kind != "schema_change" || @discovery_severity != "breaking" { deleted() }
output:
  stdout: {}
`)
}

func init() {
	service.MustRegisterInput("discovery", discoveryInputSpec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.Input, error) {
		in, err := newDiscoveryInput(conf, mgr)
		if err != nil {
			return nil, err
		}
		return service.AutoRetryNacksToggled(conf, in)
	})
}

type discoveryInput struct {
	cfg          agent.Config
	storeDSN     string
	interval     time.Duration
	retryInitial time.Duration
	retryMax     time.Duration
	maxAttempts  int
	log          *service.Logger

	mu       sync.Mutex
	agent    *agent.Agent
	store    metastore.Store
	queue    []*service.Message
	passes   int
	nextRun  time.Time
	attempts int
}

func newDiscoveryInput(conf *service.ParsedConfig, mgr *service.Resources) (*discoveryInput, error) {
	in := &discoveryInput{log: mgr.Logger()}
	var err error
	if in.cfg.DSN, err = conf.FieldString(diFieldDSN); err != nil {
		return nil, err
	}
	if in.cfg.Include, err = conf.FieldStringList(diFieldInclude); err != nil {
		return nil, err
	}
	if in.cfg.Exclude, err = conf.FieldStringList(diFieldExclude); err != nil {
		return nil, err
	}
	profile, err := conf.FieldBool(diFieldProfile)
	if err != nil {
		return nil, err
	}
	in.cfg.MetadataOnly = !profile
	interval, err := conf.FieldString(diFieldInterval)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(interval) != "" {
		if in.interval, err = time.ParseDuration(interval); err != nil || in.interval <= 0 {
			return nil, fmt.Errorf("interval %q: want empty or a positive duration such as 5m", interval)
		}
	}
	if in.storeDSN, err = conf.FieldString(diFieldStore); err != nil {
		return nil, err
	}
	if in.cfg.SourceID, err = conf.FieldString(diFieldSourceID); err != nil {
		return nil, err
	}
	if in.cfg.Concurrency, err = conf.FieldInt(diFieldConcurrency); err != nil {
		return nil, err
	}
	if in.cfg.TableTimeout, err = conf.FieldDuration(diFieldTableTimeout); err != nil {
		return nil, err
	}
	sampleRows, err := conf.FieldInt(diFieldSampleRows)
	if err != nil {
		return nil, err
	}
	in.cfg.SampleRows = int64(sampleRows)
	if in.cfg.TopK, err = conf.FieldInt(diFieldTopK); err != nil {
		return nil, err
	}
	if in.retryInitial, err = conf.FieldDuration(diFieldRetryInitial); err != nil {
		return nil, err
	}
	if in.retryMax, err = conf.FieldDuration(diFieldRetryMax); err != nil {
		return nil, err
	}
	if in.maxAttempts, err = conf.FieldInt(diFieldConnectAttempts); err != nil {
		return nil, err
	}
	in.cfg.Logger = slog.New(&benthosHandler{log: mgr.Logger()})
	if _, err := agent.New(in.cfg, nil); err != nil {
		return nil, err
	}
	return in, nil
}

// Connect opens the metadata store and the source. A failure waits with
// exponential backoff; a permanent one, or too many attempts, stops
// `agentetl run`.
func (d *discoveryInput) Connect(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.storeDSN != "" && d.store == nil {
		st, err := metastore.Open(ctx, d.storeDSN)
		if err != nil {
			err = fmt.Errorf("discovery: open store: %s", redact.String(err.Error()))
			runctl.Fail(err)
			return err
		}
		d.store = st
	}
	if d.agent == nil {
		a, err := agent.New(d.cfg, d.store)
		if err != nil {
			return err
		}
		d.agent = a
	}
	if err := d.agent.Connect(ctx); err != nil {
		d.attempts++
		if agent.IsPermanent(err) || (d.maxAttempts > 0 && d.attempts >= d.maxAttempts) {
			runctl.Fail(err)
		}
		wait := d.backoff()
		d.log.Warnf("Cannot reach %s (attempt %d, next in %s): %v", redact.DSN(d.cfg.DSN), d.attempts, wait, err)
		return service.NewErrBackOff(err, wait)
	}
	d.attempts = 0
	return nil
}

func (d *discoveryInput) backoff() time.Duration {
	wait := d.retryInitial
	for i := 1; i < d.attempts && wait < d.retryMax; i++ {
		wait *= 2
	}
	return min(wait, d.retryMax)
}

func (d *discoveryInput) Read(ctx context.Context) (*service.Message, service.AckFunc, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.queue) == 0 {
		if d.agent == nil {
			return nil, nil, service.ErrNotConnected
		}
		if d.passes > 0 && d.interval == 0 {
			return nil, nil, service.ErrEndOfInput
		}
		if wait := time.Until(d.nextRun); wait > 0 {
			d.mu.Unlock()
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				d.mu.Lock()
				return nil, nil, ctx.Err()
			}
			d.mu.Lock()
			continue
		}
		if err := d.pass(ctx); err != nil {
			return nil, nil, err
		}
	}
	m := d.queue[0]
	d.queue[0] = nil
	d.queue = d.queue[1:]
	return m, func(context.Context, error) error { return nil }, nil
}

// pass runs the agent once and queues its messages.
func (d *discoveryInput) pass(ctx context.Context) error {
	start := time.Now()
	res, err := d.agent.Run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if agent.IsConnectionError(err) {
			d.log.Warnf("Lost the source during discovery, reconnecting: %v", err)
			return service.ErrNotConnected
		}
		if agent.IsPermanent(err) {
			runctl.Fail(err)
		}
		d.attempts++
		d.nextRun = time.Now().Add(d.backoff())
		return err
	}
	d.attempts = 0
	d.passes++
	d.nextRun = start.Add(d.interval)
	meta := func(m *service.Message, kind, table string) *service.Message {
		m.MetaSetMut(MetaKind, kind)
		m.MetaSetMut(MetaSource, res.SourceID)
		m.MetaSetMut(MetaConnector, res.Connector)
		m.MetaSetMut(MetaRun, res.RunID)
		m.MetaSetMut(MetaTable, table)
		return m
	}
	for _, t := range res.Tables {
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("discovery: encode %s: %w", t.Table, err)
		}
		d.queue = append(d.queue, meta(service.NewMessage(b), KindTable, t.Table))
	}
	for _, c := range res.Changes {
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("discovery: encode change: %w", err)
		}
		m := meta(service.NewMessage(b), KindSchemaChange, c.Table)
		m.MetaSetMut(MetaChangeType, c.ChangeType)
		m.MetaSetMut(MetaSeverity, c.Severity)
		d.queue = append(d.queue, m)
	}
	for _, s := range res.Skipped {
		b, _ := json.Marshal(s)
		d.queue = append(d.queue, meta(service.NewMessage(b), KindSkipped, s.Table))
	}
	d.log.Infof("Discovery pass over %s: %d tables, %d changes, %d skipped in %s",
		res.SourceID, len(res.Tables), len(res.Changes), len(res.Skipped), time.Since(start).Round(time.Millisecond))
	return nil
}

func (d *discoveryInput) Close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if d.agent != nil {
		errs = append(errs, d.agent.Close())
		d.agent = nil
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
		d.store = nil
	}
	return errors.Join(errs...)
}

// benthosHandler forwards the agent's slog records to the Benthos logger.
type benthosHandler struct {
	log   *service.Logger
	attrs []slog.Attr
}

func (h *benthosHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *benthosHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	msg := redact.String(b.String())
	switch {
	case r.Level >= slog.LevelError:
		h.log.Error(msg)
	case r.Level >= slog.LevelWarn:
		h.log.Warn(msg)
	case r.Level >= slog.LevelInfo:
		h.log.Debug(msg) // the input logs its own summary at info
	default:
		h.log.Trace(msg)
	}
	return nil
}

func (h *benthosHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &benthosHandler{log: h.log, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h *benthosHandler) WithGroup(string) slog.Handler { return h }
