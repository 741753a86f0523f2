// Command uibench measures how long the orchestrator's web UI takes to
// render each page on the server, with a realistic amount of metadata:
// -pipelines pipelines (one with a long run history and several versions),
// -catalog catalog entries with column profiles, thousands of decisions and
// errors, and pending mapping reviews. It seeds a SQLite metadata store,
// starts bin/orchestrator on it (which spawns bin/agentetl), logs in through
// the login form and requests every page -requests times, one request at a
// time. The server's own time comes from the Server-Timing header the UI
// sets (rendering included); the client time adds the loopback round trip.
// It prints p50 and p99 per page as markdown; with -max-p99 it exits 1 when
// a page's server p99 is above the bound.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/orchestrator/autoloop"
)

func main() {
	orchBin := flag.String("orchestrator", "./bin/orchestrator", "orchestrator binary")
	engBin := flag.String("bin", "./bin/agentetl", "agentetl engine binary")
	pipelines := flag.Int("pipelines", 500, "pipelines to seed")
	catalog := flag.Int("catalog", 10000, "catalog entries to seed")
	requests := flag.Int("requests", 200, "requests per page")
	out := flag.String("out", "", "also write the markdown report here")
	maxP99 := flag.Duration("max-p99", 0, "fail when a page's server p99 is above this (0: report only)")
	budget := flag.Duration("page-budget", 20*time.Second, "stop measuring a page after this long (at least 10 requests), so a slow page cannot stall the run")
	stores := flag.String("stores", "sqlite,postgres", "metadata store backends to measure: sqlite, postgres (PG_DSN, a private schema)")
	flag.Parse()
	var md bytes.Buffer
	fmt.Fprintf(&md, "## Web UI page latency\n\n")
	var failed []string
	for _, backend := range strings.Split(*stores, ",") {
		backend = strings.TrimSpace(backend)
		if backend == "" {
			continue
		}
		worst, page, err := run(&md, backend, *orchBin, *engBin, *pipelines, *catalog, *requests, *budget)
		if err != nil {
			slog.Error("uibench failed", "store", backend, "err", err)
			os.Exit(1)
		}
		if *maxP99 > 0 && worst > *maxP99 {
			failed = append(failed, fmt.Sprintf("%s store: %s has a server p99 of %s, above %s", backend, page, worst.Round(100*time.Microsecond), *maxP99))
		}
	}
	fmt.Print(md.String())
	if *out != "" {
		if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
			slog.Error("uibench: write report", "err", err)
			os.Exit(1)
		}
	}
	if len(failed) > 0 {
		slog.Error("uibench: pages above the bound", "pages", strings.Join(failed, "; "))
		os.Exit(1)
	}
}

// pgStore makes a private schema in PG_DSN's database for one run and
// returns its DSN and a cleanup.
func pgStore(ctx context.Context) (string, func(), error) {
	base := os.Getenv("PG_DSN")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres store: %w", err)
	}
	schema := fmt.Sprintf("uibench_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("postgres store: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// seeded names what the pages are measured on.
type seeded struct {
	pipeline, execution, entryID, reviewID, fingerprint string
}

var words = []string{"customer", "order", "invoice", "payment", "shipment", "product", "account", "ledger", "refund", "session",
	"device", "campaign", "region", "supplier", "contract", "ticket", "address", "warehouse", "subscription", "event"}

func seed(ctx context.Context, storeDSN string, nPipes, nCatalog int) (seeded, error) {
	var s seeded
	st, err := metastore.Open(ctx, storeDSN)
	if err != nil {
		return s, err
	}
	defer st.Close()
	rng := rand.New(rand.NewSource(42))
	now := time.Now().UTC()

	// Pipelines: batch PostgreSQL copies; the first has several versions.
	for i := 0; i < nPipes; i++ {
		id := fmt.Sprintf("bench-%04d", i)
		w := words[i%len(words)]
		pc := model.PipelineConfig{ID: id, Name: fmt.Sprintf("%s copy %d", w, i), Type: orchestrator.TypeBatch,
			Source:          model.SourceConfig{Type: "postgres", Table: fmt.Sprintf("public.%s_%d", w, i), Connection: map[string]string{"dsn": "${BENCH_SRC_DSN}"}},
			Destination:     model.DestinationConfig{Type: "postgres", Table: fmt.Sprintf("dwh.%s_%d", w, i), Connection: map[string]string{"dsn": "${BENCH_DST_DSN}"}},
			Transformations: []model.Transformation{{ID: "t0", Type: "map", Logic: `root = this` + "\n" + `root.loaded_at = now()`}},
			ErrorHandling:   model.ErrorHandlingConfig{MaxRetries: 3, DeadLetter: "table:dwh." + w + "_dead"},
			Metadata:        model.PipelineMetadata{Owner: "data-team", Description: "benchmark pipeline " + id}}
		versions := 1
		if i == 0 {
			versions = 6
		}
		for v := 1; v <= versions; v++ {
			if v > 1 {
				pc.Transformations[0].Logic += fmt.Sprintf("\nroot.v%d = %d", v, v)
				pc.ErrorHandling.MaxRetries = v
			}
			c, err := orchestrator.Compile(pc)
			if err != nil {
				return s, fmt.Errorf("compile %s: %w", id, err)
			}
			if _, err := st.SavePipelineConfig(ctx, metastore.PipelineConfigVersion{PipelineID: id, Config: pc, YAML: string(c.YAML),
				State: orchestrator.StateActive, Comment: fmt.Sprintf("version %d", v)}); err != nil {
				return s, err
			}
		}
		runs := 2
		if i == 0 {
			runs = 60
		}
		for r := 0; r < runs; r++ {
			started := now.Add(-time.Duration(runs-r) * time.Hour)
			fin := started.Add(time.Duration(20+rng.Intn(40)) * time.Second)
			in := int64(100000 + rng.Intn(50000))
			dl := int64(rng.Intn(20))
			ex := metastore.Execution{ID: uuid.NewString(), PipelineID: id, Status: orchestrator.ExecSucceeded, RowsIn: in, RowsOut: in - dl,
				Errors: dl, DeadLetter: dl, StartedAt: started, FinishedAt: &fin, Message: fmt.Sprintf("read %d rows, wrote %d", in, in-dl)}
			if err := st.SaveExecution(ctx, ex); err != nil {
				return s, err
			}
			if i == 0 {
				s.execution = ex.ID
			}
		}
	}
	s.pipeline = "bench-0000"

	// Catalog: tables with eight profiled columns each.
	src := "postgres://db.bench:5432/app"
	for i := 0; i < nCatalog; i++ {
		w := words[i%len(words)]
		table := fmt.Sprintf("%s.%s_%05d", words[(i/len(words))%len(words)], w, i)
		fields := []model.Field{{Name: "id", DataType: "bigint"}}
		prof := map[string]*discovery.FieldProfile{"id": {DistinctCount: 5000, Min: 1.0, Max: 5000.0}}
		for c := 1; c < 8; c++ {
			name := fmt.Sprintf("%s_%s", w, words[(i+c)%len(words)])
			fields = append(fields, model.Field{Name: name, DataType: "text", Nullable: true, Description: "the " + words[(i+c)%len(words)] + " of the " + w})
			prof[name] = &discovery.FieldProfile{NullFraction: rng.Float64() / 4, DistinctCount: int64(rng.Intn(5000)), Min: "a", Max: "z",
				TopValues: []discovery.ValueFrequency{{Value: "alpha", Count: 300, Frequency: 0.3}, {Value: "beta", Count: 200, Frequency: 0.2}, {Value: "gamma", Count: 50, Frequency: 0.05}},
				AvgLength: 8, SemanticType: []string{"", "email", "country_code", "url"}[c%4], Sample: []string{"alpha", "beta", "gamma"}}
		}
		id := discovery.EntityID(src, table)
		schema := model.Schema{ID: id, SourceID: src, Version: 1, Fields: fields, Timestamp: now}
		doc := discovery.SourceMetadata{Table: table, Name: table, Kind: "table", SourceID: src, Connector: "postgres", Description: "all " + w + " records",
			Schema: schema, PrimaryKey: []string{"id"}, Stats: discovery.Stats{RowCount: 5000, Profiled: true, SampleSize: 5000, Fields: prof}, DiscoveredAt: now}
		b, err := json.Marshal(doc)
		if err != nil {
			return s, err
		}
		if err := st.SaveCatalogEntry(ctx, metastore.CatalogEntry{ID: id, SourceID: src, Name: table, Kind: "table", Description: doc.Description,
			Schema: schema, Profile: b, RowCount: 5000, UpdatedAt: now}); err != nil {
			return s, err
		}
		if i == 7 {
			s.entryID = id
			for v := 1; v <= 3; v++ {
				sv := schema
				sv.Fields = fields[:5+v]
				ch, _ := json.Marshal([]discovery.SchemaChange{{Table: table, ChangeType: discovery.ChangeColumnAdded, Severity: discovery.SeverityNonBreaking,
					Column: fields[4+v].Name, Confidence: 1, Reasoning: "a column was added"}})
				if _, err := st.SaveSchemaVersion(ctx, metastore.SchemaVersion{SourceID: id, Schema: sv, Hash: strconv.Itoa(v), Changes: ch}); err != nil {
					return s, err
				}
			}
		}
	}

	// Decisions, errors with fingerprints, and pending reviews.
	types := []model.AgentType{model.AgentDiscovery, model.AgentMapping, model.AgentResolution, model.AgentOrchestrator}
	for i := 0; i < 5000; i++ {
		at := types[i%len(types)]
		d := model.AgentDecision{AgentID: string(at) + "-1", AgentType: at, PipelineID: fmt.Sprintf("bench-%04d", i%nPipes),
			Action: []string{"run_pipeline", "mapping.accepted", "retry", "escalate", "schema_change_detected"}[i%5], Confidence: 0.9,
			Reasoning: "benchmark decision " + strconv.Itoa(i), Outcome: "ok", Timestamp: now.Add(-time.Duration(i) * time.Minute)}
		if err := st.SaveAgentDecision(ctx, d); err != nil {
			return s, err
		}
	}
	cats := []string{"constraint", "data_type", "connection", "timeout", "schema"}
	for i := 0; i < 2000; i++ {
		fp := fmt.Sprintf("fp%014d", i%200)
		cat := cats[i%len(cats)]
		pid := fmt.Sprintf("bench-%04d", i%50)
		ts := now.Add(-time.Duration(i) * time.Minute)
		if err := st.SavePipelineError(ctx, model.PipelineError{PipelineID: pid, ErrorType: cat, Category: cat, Fingerprint: fp,
			Message:   fmt.Sprintf("copy into dwh.t: value %d violates constraint c%d", i, i%200),
			Context:   model.ErrorContext{Record: map[string]any{"id": i, "email": "a@b.example", "amount": i * 3}, SourceLocation: "destination"},
			Timestamp: ts}); err != nil {
			return s, err
		}
		if err := st.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: fp, Template: "copy into dwh.t: value <n> violates constraint <id>",
			Category: cat, Message: "value violates constraint", Count: 1, Seen: ts, Strategy: []string{"skip", "retry"}[i%2], Attempts: 1, Successes: int64(i % 3 / 2)}); err != nil {
			return s, err
		}
	}
	s.fingerprint = "fp00000000000001"
	for i := 0; i < 20; i++ {
		var srcF, tgtF []model.Field
		var ms []mapping.FieldMapping
		for c := 0; c < 12; c++ {
			sn, tn := fmt.Sprintf("src_col_%d", c), fmt.Sprintf("target_column_%d", c)
			srcF = append(srcF, model.Field{Name: sn, DataType: "text", Nullable: true})
			tgtF = append(tgtF, model.Field{Name: tn, DataType: "text", Nullable: true})
			status := mapping.StatusAccepted
			if c%4 == 0 {
				status = mapping.StatusReview
			}
			ms = append(ms, mapping.FieldMapping{SourceField: mapping.Sources{sn}, TargetField: tn, Confidence: 0.5 + float64(c)/30, MappingType: mapping.TypeDirect,
				Status: status, Signals: map[string]float64{"name": 0.6, "type": 1, "instance": 0.4}, Reasoning: "names are similar"})
		}
		doc := &mapping.Document{Source: model.Schema{ID: "s", Fields: srcF}, Target: model.Schema{ID: "t", Fields: tgtF}, Mappings: ms,
			Program: "root = {}\nroot.target_column_0 = this.src_col_0"}
		rv := autoloop.Review{ID: fmt.Sprintf("review-bench-%02d", i), PipelineID: fmt.Sprintf("bench-%04d", i+1), PipelineVersion: 1,
			Status: autoloop.ReviewPending, Reasons: []string{"target_column_0 <- src_col_0 has confidence 0.50, below the accept threshold"},
			Document: doc, CreatedAt: now.Add(-time.Duration(i) * time.Minute), UpdatedAt: now}
		b, err := json.Marshal(rv)
		if err != nil {
			return s, err
		}
		if err := st.SaveTask(ctx, model.Task{ID: rv.ID, Type: autoloop.TaskTypeReview, Status: rv.Status, Priority: 50, Payload: b,
			CreatedAt: rv.CreatedAt, UpdatedAt: rv.UpdatedAt}); err != nil {
			return s, err
		}
		if i == 0 {
			s.reviewID = rv.ID
		}
	}
	return s, nil
}

type page struct {
	name, path string
	post       url.Values
}

type result struct {
	page
	server, client []time.Duration
	bytes          int
}

func pct(ds []time.Duration, p float64) time.Duration {
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

var timingRe = regexp.MustCompile(`app;dur=([0-9.]+)`)

func run(md *bytes.Buffer, backend, orchBin, engBin string, nPipes, nCatalog, requests int, budget time.Duration) (time.Duration, string, error) {
	dir, err := os.MkdirTemp("", "uibench-")
	if err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		return 0, "", err
	}
	ctx := context.Background()
	var storeDSN string
	switch backend {
	case "sqlite":
		storeDSN = "sqlite://" + filepath.Join(dir, "data", "meta.db")
	case "postgres":
		dsn, cleanup, err := pgStore(ctx)
		if err != nil {
			return 0, "", err
		}
		defer cleanup()
		storeDSN = dsn
	default:
		return 0, "", fmt.Errorf("unknown store %q: sqlite or postgres", backend)
	}
	t0 := time.Now()
	sd, err := seed(ctx, storeDSN, nPipes, nCatalog)
	if err != nil {
		return 0, "", fmt.Errorf("seed: %w", err)
	}
	seedTime := time.Since(t0)

	api, err := freePort()
	if err != nil {
		return 0, "", err
	}
	busPort, err := freePort()
	if err != nil {
		return 0, "", err
	}
	engAbs, err := filepath.Abs(engBin)
	if err != nil {
		return 0, "", err
	}
	token := "uibench-token"
	cmd := exec.Command(orchBin, "--listen", "127.0.0.1:"+strconv.Itoa(api), "--bus-port", strconv.Itoa(busPort),
		"--data-dir", filepath.Join(dir, "data"), "--store", storeDSN, "--configs-dir", filepath.Join(dir, "configs"),
		"--engine-bin", engAbs, "--log-level", "error", "--discovery-interval", "1h")
	// Set, so that the seeded configs are complete (the lint page checks
	// them fully); nothing listens there and no pipeline runs.
	cmd.Env = append(os.Environ(), "AGENTETL_TOKEN="+token, "BENCH_SRC_DSN=postgres://127.0.0.1:1/none", "BENCH_DST_DSN=postgres://127.0.0.1:1/none")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start orchestrator: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(api)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Timeout: 60 * time.Second, Jar: jar}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := hc.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, "", fmt.Errorf("orchestrator not ready:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Let the start-up work (the automatic loop's first discovery pass
	// over every pipeline) finish before measuring.
	time.Sleep(5 * time.Second)
	csrf, err := login(hc, base, token)
	if err != nil {
		return 0, "", err
	}
	editText, err := configText(hc, base+"/ui/pipelines/"+sd.pipeline+"/edit")
	if err != nil {
		return 0, "", err
	}
	pages := []page{
		{name: "Overview", path: "/ui/"},
		{name: "Overview (live update)", path: "/ui/live/overview"},
		{name: "Pipelines", path: "/ui/pipelines"},
		{name: "Pipelines, page 8", path: "/ui/pipelines?page=8"},
		{name: "Pipelines, search", path: "/ui/pipelines?q=bench-04"},
		{name: "Pipeline detail (60 runs, charts)", path: "/ui/pipelines/" + sd.pipeline},
		{name: "Pipeline version diff", path: "/ui/pipelines/" + sd.pipeline + "?v=4"},
		{name: "Pipeline editor", path: "/ui/pipelines/" + sd.pipeline + "/edit"},
		{name: "Live lint (POST)", path: "/ui/lint", post: url.Values{"csrf": {csrf}, "id": {sd.pipeline}, "config": {editText}}},
		{name: "Execution", path: "/ui/executions/" + sd.execution},
		{name: "Catalog", path: "/ui/catalog"},
		{name: "Catalog, search", path: "/ui/catalog?q=customer+order"},
		{name: "Catalog, 100 results (the most it shows)", path: "/ui/catalog?q=order&limit=100"},
		{name: "Catalog table", path: "/ui/catalog/entry?id=" + url.QueryEscape(sd.entryID)},
		{name: "Reviews", path: "/ui/reviews"},
		{name: "Review", path: "/ui/reviews/" + sd.reviewID},
		{name: "Errors", path: "/ui/errors"},
		{name: "Errors of a pipeline", path: "/ui/errors?pipeline=bench-0001"},
		{name: "Error fingerprint", path: "/ui/errors/fingerprint?fp=" + sd.fingerprint},
		{name: "Decisions", path: "/ui/decisions"},
		{name: "Decisions, filtered", path: "/ui/decisions?agent=mapping&pipeline=bench-0003"},
	}
	get := func(p page) (server, client time.Duration, size int, err error) {
		st := time.Now()
		var resp *http.Response
		if p.post != nil {
			resp, err = hc.PostForm(base+p.path, p.post)
		} else {
			resp, err = hc.Get(base + p.path)
		}
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%s: %w", p.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		client = time.Since(st)
		if resp.StatusCode != http.StatusOK {
			return 0, 0, 0, fmt.Errorf("%s: status %d: %.300s", p.path, resp.StatusCode, b)
		}
		m := timingRe.FindStringSubmatch(resp.Header.Get("Server-Timing"))
		if m == nil {
			return 0, 0, 0, fmt.Errorf("%s: no Server-Timing header", p.path)
		}
		ms, _ := strconv.ParseFloat(m[1], 64)
		return time.Duration(ms * float64(time.Millisecond)), client, len(b), nil
	}
	for round := 0; round < 3; round++ { // warm-up of every page
		for _, p := range pages {
			if _, _, _, err := get(p); err != nil {
				return 0, "", err
			}
		}
	}
	var results []result
	for _, p := range pages {
		r := result{page: p}
		started := time.Now()
		for i := 0; i < requests; i++ {
			sv, cl, size, err := get(p)
			if err != nil {
				return 0, "", err
			}
			r.server = append(r.server, sv)
			r.client = append(r.client, cl)
			r.bytes = size
			if i >= 9 && time.Since(started) > budget {
				break
			}
		}
		sort.Slice(r.server, func(i, j int) bool { return r.server[i] < r.server[j] })
		sort.Slice(r.client, func(i, j int) bool { return r.client[i] < r.client[j] })
		results = append(results, r)
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(md, "### %s metadata store\n\n", backend)
	fmt.Fprintf(md, "%d pipelines (one with 6 versions and 60 runs), %d catalog entries with 8 profiled columns each, 5,000 decisions, "+
		"2,000 errors in 200 fingerprints, 20 pending reviews (seeded in %s). Each page requested %d times (fewer when a page "+
		"takes longer than %s in all), one at a time, after 3 warm-up rounds, by a logged-in client on the same %d-CPU machine. "+
		"Server: the UI's Server-Timing (handler and rendering); client: until the last byte.\n\n",
		nPipes, nCatalog, seedTime.Round(time.Second), requests, budget, runtime.NumCPU())
	fmt.Fprintf(md, "| page | requests | server p50 | server p99 | client p50 | client p99 | size |\n|---|---|---|---|---|---|---|\n")
	var worst time.Duration
	var worstPage string
	for _, r := range results {
		fmt.Fprintf(md, "| %s | %d | %s | %s | %s | %s | %d KiB |\n", r.name, len(r.server), f(pct(r.server, 0.5)), f(pct(r.server, 0.99)),
			f(pct(r.client, 0.5)), f(pct(r.client, 0.99)), (r.bytes+1023)/1024)
		if p := pct(r.server, 0.99); p > worst {
			worst, worstPage = p, r.name
		}
	}
	fmt.Fprintf(md, "\nSlowest server p99: %s (%s); the bound is 100 ms.\n\n", f(worst), worstPage)
	// Read by bench/cmd/bench into its summary table.
	fmt.Fprintf(md, "<!-- summary: UI slowest page server p99 (%s store, %d pipelines, %d catalog entries): %s | %s | - | - | < 100 ms | %t -->\n\n",
		backend, nPipes, nCatalog, worstPage, f(worst), worst < 100*time.Millisecond)
	return worst, worstPage, nil
}

var (
	loginCSRFRe = regexp.MustCompile(`name="login_csrf" value="([^"]+)"`)
	csrfMetaRe  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
	textareaRe  = regexp.MustCompile(`(?s)<textarea id="config-editor"[^>]*>(.*?)</textarea>`)
)

// login signs in through the form, as a browser does, and returns the
// session's CSRF token.
func login(hc *http.Client, base, token string) (string, error) {
	resp, err := hc.Get(base + "/ui/login")
	if err != nil {
		return "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := loginCSRFRe.FindSubmatch(b)
	if m == nil {
		return "", errors.New("no login form")
	}
	resp, err = hc.PostForm(base+"/ui/login", url.Values{"login_csrf": {string(m[1])}, "token": {token}})
	if err != nil {
		return "", err
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	mm := csrfMetaRe.FindSubmatch(b)
	if mm == nil {
		return "", fmt.Errorf("login failed: %d %.300s", resp.StatusCode, b)
	}
	return string(mm[1]), nil
}

func configText(hc *http.Client, u string) (string, error) {
	resp, err := hc.Get(u)
	if err != nil {
		return "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := textareaRe.FindSubmatch(b)
	if m == nil {
		return "", errors.New("no config editor")
	}
	r := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+", "&amp;", "&")
	return r.Replace(string(m[1])), nil
}
