// Command orchestrator is the agentetl orchestrator sidecar: it coordinates
// the agents (task queues, conflicts, decisions), manages pipelines
// (compile, lint, version, apply, reconcile, schedule, executions) on an
// agentetl engine in streams mode, and serves the REST API.
//
// Every flag can also be set through an environment variable named
// AGENTETL_ plus the flag in upper case with '-' as '_' (AGENTETL_TOKEN,
// AGENTETL_STORE, ...); a flag on the command line wins. Prefer
// AGENTETL_TOKEN or --token-file to --token: a command line is visible to
// every user of the machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/demo"
	"github.com/agentetl/agentetl/internal/engine"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/orchestrator/autoloop"
	"github.com/agentetl/agentetl/internal/orchestrator/httpapi"
	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/internal/webui"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

type config struct {
	store, bus, engineURL, engineBin, listen, configsDir, dataDir string
	token, tokenFile, logLevel, logFormat, conflictRule           string
	busPort                                                       int
	demoDir, demoPGSchema                                         string
	insecure, autoLoop                                            bool
	reconcileEvery, pollEvery, heartbeatTTL, discoveryEvery       time.Duration
}

func main() {
	os.Exit(run())
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv("AGENTETL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("orchestrator", flag.ContinueOnError)
	fs.StringVar(&c.store, "store", envOr("store", "sqlite://./data/agentetl.db"), "metadata store DSN: sqlite://path or postgres://...")
	fs.StringVar(&c.bus, "bus", envOr("bus", ""), "event bus: empty for an embedded JetStream server on loopback, or nats://host:port")
	fs.IntVar(&c.busPort, "bus-port", 4223, "port of the embedded JetStream server (loopback only; not 4222, so a system NATS keeps working)")
	fs.StringVar(&c.engineURL, "engine", envOr("engine", ""), "Benthos streams API URL of an external engine; empty spawns and supervises `agentetl streams`")
	fs.StringVar(&c.engineBin, "engine-bin", envOr("engine-bin", ""), "agentetl binary to spawn (default: next to this binary, then PATH)")
	fs.StringVar(&c.listen, "listen", envOr("listen", "127.0.0.1:8080"), "API listen address")
	fs.StringVar(&c.configsDir, "configs-dir", envOr("configs-dir", "./data/pipelines"), "where generated pipeline configs are written (not under ./configs: make lint-configs would lint them without their env vars)")
	fs.StringVar(&c.dataDir, "data-dir", envOr("data-dir", "./data"), "orchestrator data: embedded bus storage, engine working directory")
	fs.StringVar(&c.token, "token", envOr("token", ""), "API bearer token (prefer AGENTETL_TOKEN or --token-file)")
	fs.StringVar(&c.tokenFile, "token-file", envOr("token-file", ""), "file holding the API bearer token")
	fs.BoolVar(&c.insecure, "insecure-dev", envOr("insecure-dev", "") == "true", "serve the API without authentication (development only)")
	fs.StringVar(&c.logLevel, "log-level", envOr("log-level", "info"), "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", envOr("log-format", "text"), "text or json")
	fs.StringVar(&c.conflictRule, "conflict-rule", envOr("conflict-rule", ""), "CEL expression over a, b and kind that overrides the built-in conflict ordering")
	fs.DurationVar(&c.reconcileEvery, "reconcile-interval", 5*time.Second, "how often the engine is compared with the desired state")
	fs.DurationVar(&c.pollEvery, "poll-interval", 500*time.Millisecond, "how often running executions read engine stats")
	fs.BoolVar(&c.autoLoop, "auto-loop", envOr("auto-loop", "true") == "true", "run the automatic loop: discovery of pipeline sources (PostgreSQL, SQLite, CSV), schema changes to mapping tasks, an in-process mapping worker, the review queue")
	fs.StringVar(&c.demoDir, "demo", envOr("demo", ""), "load the bundled demo from this directory (resources/demo) once the orchestrator is ready: pipelines, mapping, a batch load and a stream; idempotent across restarts")
	fs.StringVar(&c.demoPGSchema, "demo-pg-schema", envOr("demo-pg-schema", demo.DefaultPGSchema), "PostgreSQL schema of the demo's target tables when PG_DSN answers (otherwise the demo writes to <data-dir>/demo-target.db)")
	fs.DurationVar(&c.discoveryEvery, "discovery-interval", time.Minute, "how often the automatic loop runs discovery on every PostgreSQL pipeline's source table")
	fs.DurationVar(&c.heartbeatTTL, "heartbeat-ttl", 30*time.Second, "agents silent for longer are offline and their tasks requeued")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return c, fmt.Errorf("--token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	if c.token == "" && !c.insecure {
		return c, errors.New("no API token: set AGENTETL_TOKEN, --token-file or --token (or --insecure-dev for local development)")
	}
	return c, nil
}

func newLogger(level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// engineStoreDSN makes a relative sqlite path absolute: the engine runs in
// its own working directory.
func engineStoreDSN(dsn string) string {
	rest, ok := strings.CutPrefix(dsn, "sqlite://")
	if !ok || strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, ":memory:") {
		return dsn
	}
	path, query, _ := strings.Cut(rest, "?")
	abs, err := filepath.Abs(path)
	if err != nil {
		return dsn
	}
	if query != "" {
		return "sqlite://" + abs + "?" + query
	}
	return "sqlite://" + abs
}

func run() int {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "orchestrator:", err)
		return 2
	}
	log := newLogger(cfg.logLevel, cfg.logFormat)
	slog.SetDefault(log)
	if cfg.insecure {
		log.Warn("API authentication is disabled (--insecure-dev); never expose this address")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("orchestrator failed", "err", redact.String(err.Error()))
		return 1
	}
	log.Info("orchestrator stopped")
	return 0
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.dataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if strings.HasPrefix(cfg.store, "sqlite://") {
		p, _, _ := strings.Cut(strings.TrimPrefix(cfg.store, "sqlite://"), "?")
		if p != "" && !strings.HasPrefix(p, ":memory:") {
			_ = os.MkdirAll(filepath.Dir(p), 0o750)
		}
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	store, err := metastore.Open(octx, cfg.store)
	cancel()
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info("metadata store open", "backend", store.Backend(), "dsn", redact.DSN(cfg.store))

	// Bus: embedded unless an external URL is given.
	busURL := cfg.bus
	var embedded *bus.Embedded
	if busURL == "" || busURL == "embedded" {
		embedded, err = bus.StartEmbedded(filepath.Join(cfg.dataDir, "jetstream"), cfg.busPort)
		if err != nil {
			return err
		}
		defer embedded.Shutdown()
		busURL = embedded.URL()
		log.Info("embedded bus started", "url", busURL)
	}
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	b, err := bus.Connect(bctx, busURL, bus.WithName("agentetl-orchestrator"))
	cancel()
	if err != nil {
		return err
	}
	defer b.Close()

	metrics := httpapi.NewMetrics()
	coord, err := orch.New(orch.Options{Store: store, Bus: b, Logger: log, HeartbeatTTL: cfg.heartbeatTTL,
		Observer: metrics, ConflictRule: cfg.conflictRule})
	if err != nil {
		return err
	}
	if err := coord.Load(ctx); err != nil {
		return err
	}

	// Engine: external URL, or a supervised child.
	engineDir, err := filepath.Abs(filepath.Join(cfg.dataDir, "engine"))
	if err != nil {
		return err
	}
	var (
		sup      *engine.Supervisor
		fixed    *engine.Client
		mgr      *orchestrator.Manager
		checkEnv bool
	)
	if cfg.engineURL != "" {
		if fixed, err = engine.NewClient(cfg.engineURL, nil); err != nil {
			return err
		}
		log.Info("using external engine", "url", fixed.URL(),
			"note", "start it with "+orchestrator.EnvStoreDSN+" and "+orchestrator.EnvBusURL+" set")
	} else {
		bin, err := engine.ResolveBinary(firstNonEmpty(cfg.engineBin, os.Getenv("AGENTETL_BINARY")))
		if err != nil {
			return err
		}
		checkEnv = true
		sup, err = engine.NewSupervisor(engine.SupervisorConfig{
			Binary: bin, Dir: engineDir, Logger: log,
			Env: []string{
				orchestrator.EnvStoreDSN + "=" + engineStoreDSN(cfg.store),
				orchestrator.EnvBusURL + "=" + busURL,
			},
			DropEnv: []string{"AGENTETL_TOKEN"},
			OnStart: func(ctx context.Context, _ *engine.Client) error {
				if mgr == nil {
					return nil
				}
				rep, err := mgr.Reconcile(ctx)
				log.Info("engine (re)started; streams re-applied", "created", len(rep.Created), "updated", len(rep.Updated),
					"deleted", len(rep.Deleted), "failed", len(rep.Failed), "duration", rep.Duration.Round(time.Millisecond))
				return err
			},
		})
		if err != nil {
			return err
		}
	}
	engineFn := func() orchestrator.Engine {
		if fixed != nil {
			return fixed
		}
		// Not gated on Ready: the start hook reconciles through this
		// before the supervisor declares the engine ready, and a client of
		// a dead engine fails fast with engine.ErrUnavailable.
		if c := sup.Client(); c != nil {
			return c
		}
		return nil
	}
	mgr, err = orchestrator.NewManager(orchestrator.Options{
		Store: store, Engine: engineFn, ConfigsDir: cfg.configsDir, Decisions: coord, Bus: b, Observer: metrics,
		Logger: log, CheckEnv: checkEnv, PollInterval: cfg.pollEvery, ReconcileInterval: cfg.reconcileEvery,
		EngineEnv: map[string]string{orchestrator.EnvStoreDSN: engineStoreDSN(cfg.store), orchestrator.EnvBusURL: busURL},
		EngineDir: engineDir,
	})
	if err != nil {
		return err
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	if err := mgr.Start(runCtx); err != nil {
		return err
	}
	supDone := make(chan error, 1)
	if sup != nil {
		go func() { supDone <- sup.Run(runCtx) }()
	} else {
		close(supDone)
	}

	// Agents' housekeeping: requeue tasks of silent agents.
	go func() {
		t := time.NewTicker(max(cfg.heartbeatTTL/3, time.Second))
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				if _, err := coord.Reap(runCtx); err != nil {
					log.Warn("reaping tasks failed", "err", err)
				}
			}
		}
	}()

	// Bus consumers: schema changes become mapping tasks, pipeline errors
	// become error-resolution tasks. Durable and idempotent by event id.
	dd := orch.StoreDeduper{Store: store}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	schemaSub, err := b.Subscribe(sctx, "orchestrator-schema-changes", bus.SubjectSchemaChange, dd, func(ctx context.Context, ev bus.Event) error {
		changes, err := decodeChanges(ev)
		if err != nil {
			log.Warn("ignoring undecodable schema change event", "event", ev.ID, "err", err)
			return nil
		}
		_, err = coord.OnSchemaChanges(ctx, changes)
		return err
	})
	if err != nil {
		cancel()
		return err
	}
	defer schemaSub.Stop()
	errSub, err := b.Subscribe(sctx, "orchestrator-pipeline-errors", bus.SubjectError, dd, func(ctx context.Context, ev bus.Event) error {
		_, err := coord.AssignTask(ctx, model.Task{ID: "err-" + ev.ID, Priority: orch.PriorityResolution,
			Payload: errorTaskPayload(ev)}, model.AgentResolution)
		if errors.Is(err, orch.ErrInvalidTask) {
			return nil // already queued by an earlier delivery
		}
		return err
	})
	cancel()
	if err != nil {
		return err
	}
	defer errSub.Stop()

	// The automatic loop: discovery -> schema changes (bus) -> mapping
	// tasks -> applied mapping or review item.
	var reviews httpapi.ReviewService
	var demoLoop *autoloop.Loop
	loopDone := make(chan struct{})
	if cfg.autoLoop {
		loop, err := autoloop.New(autoloop.Options{Store: store, Manager: mgr, Coordinator: coord, Bus: b,
			DiscoveryInterval: cfg.discoveryEvery, Logger: log})
		if err != nil {
			return err
		}
		reviews, demoLoop = loop, loop
		coord.SetSourceResolver(loop.SourceID)
		go func() {
			defer close(loopDone)
			if err := loop.Run(runCtx); err != nil {
				log.Error("automatic loop stopped", "err", err)
			}
		}()
		log.Info("automatic loop started", "discovery_interval", cfg.discoveryEvery)
	} else {
		close(loopDone)
	}

	metrics.Watch(httpapi.Sources{
		Coordinator: coord, Manager: mgr,
		EngineRestarts: func() int64 {
			if sup == nil {
				return 0
			}
			return sup.Restarts()
		},
		EngineUp: func() bool {
			if sup != nil {
				return sup.Ready()
			}
			pctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return fixed.Ping(pctx) == nil
		},
	})
	handler, err := httpapi.New(httpapi.Config{
		Manager: mgr, Coordinator: coord, Store: store, Metrics: metrics, Token: cfg.token, Insecure: cfg.insecure, Logger: log,
		Reviews: reviews,
		Ready: func(ctx context.Context) string {
			if _, err := store.ListTasks(ctx, metastore.TaskFilter{Limit: 1}); err != nil {
				return "metadata store: " + err.Error()
			}
			if !b.Conn().IsConnected() {
				return "bus: not connected"
			}
			if sup != nil && !sup.Ready() {
				return "engine: starting or restarting"
			}
			if fixed != nil {
				if err := fixed.Ping(ctx); err != nil {
					return "engine: " + err.Error()
				}
			}
			return ""
		},
	})
	if err != nil {
		return err
	}
	// The web UI owns / and /ui/; the API keeps /api/, probes and metrics.
	ui, err := webui.New(webui.Config{Manager: mgr, Coordinator: coord, Store: store, Reviews: reviews,
		Token: cfg.token, Insecure: cfg.insecure, Logger: log})
	if err != nil {
		return err
	}
	handler = webui.Mount(handler, ui)
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.listen, err)
	}
	srv := &http.Server{
		Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	log.Info("orchestrator listening", "addr", ln.Addr().String(), "version", Version, "configs_dir", cfg.configsDir)
	demoDone := startDemo(runCtx, cfg, mgr, demoLoop, "http://"+ln.Addr().String()+"/", log)

	select {
	case <-ctx.Done():
	case err := <-srvErr:
		return fmt.Errorf("http server: %w", err)
	case err := <-supDone:
		if err != nil {
			return err
		}
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = srv.Shutdown(shCtx)
	cancelRun()
	<-demoDone
	<-loopDone
	if sup != nil {
		<-supDone
	}
	mgr.Wait()
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// startDemo loads the bundled demo (--demo) in the background once the API
// listens. A demo that fails is reported; the orchestrator keeps running.
func startDemo(ctx context.Context, cfg config, mgr *orchestrator.Manager, loop *autoloop.Loop, uiURL string, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	if cfg.demoDir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		o := demo.Options{Dir: cfg.demoDir, DataDir: cfg.dataDir, Manager: mgr, UIURL: uiURL, Out: os.Stdout,
			Logger: log, PGSchema: cfg.demoPGSchema}
		if loop != nil {
			o.Loop = loop
		}
		if err := demo.Run(ctx, o); err != nil && ctx.Err() == nil {
			log.Error("demo failed", "err", redact.String(err.Error()))
			fmt.Fprintf(os.Stdout, "agentetl demo failed: %s\n", redact.String(err.Error()))
		}
	}()
	return done
}
