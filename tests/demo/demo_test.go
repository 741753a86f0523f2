// Package demo_test starts the one-command demo exactly as `make run` does
// (the orchestrator binary with the Makefile's RUN_FLAGS, run from a
// directory holding resources/demo), waits for its batch load and checks
// through the REST API that every source row was loaded or dead-lettered,
// that the dead letters are exactly the bundled bad records, that a review
// waits for a human and that the event stream runs; then it stops the
// orchestrator with SIGTERM and starts it again to check that nothing is
// created or loaded twice. It runs once with the embedded SQLite
// destination (no PG_DSN, as on a fresh machine) and once with PostgreSQL.
package demo_test

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

var (
	orchBin, agentBin, root string
	runFlags                []string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	var err error
	if root, err = testutil.ModuleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "demo tests:", err)
		return 1
	}
	if runFlags, err = makefileRunFlags(filepath.Join(root, "Makefile")); err != nil {
		fmt.Fprintln(os.Stderr, "demo tests:", err)
		return 1
	}
	var cleanup func()
	agentBin, orchBin, cleanup, err = testutil.Binaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo tests:", err)
		return 1
	}
	defer cleanup()
	return m.Run()
}

// makefileRunFlags reads `RUN_FLAGS ?= ...` and checks that `make run`
// starts ./bin/orchestrator with them.
func makefileRunFlags(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`(?m)^RUN_FLAGS\s*\?=\s*(.+)$`).FindSubmatch(b)
	if m == nil {
		return nil, errors.New("the Makefile has no RUN_FLAGS ?= line")
	}
	if !regexp.MustCompile(`(?m)^run: build\n\t\./bin/orchestrator \$\(RUN_FLAGS\)$`).Match(b) {
		return nil, errors.New("`make run` no longer runs ./bin/orchestrator $(RUN_FLAGS); update this test")
	}
	return strings.Fields(string(m[1])), nil
}

// install is one checkout where `make run` is started: resources/demo and
// ./data relative to its directory, as in the repository.
type install struct {
	dir      string
	api, bus int
	env      []string
	base     string
	hc       *http.Client
}

type proc struct {
	cmd       *exec.Cmd
	out, logs testutil.Buffer
	done      chan struct{}
}

func newInstall(t *testing.T, env ...string) *install {
	dir := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(root, "resources"), filepath.Join(dir, "resources")))
	in := &install{dir: dir, api: testutil.FreePort(t), bus: testutil.FreePort(t), hc: &http.Client{Timeout: 20 * time.Second}}
	in.base = fmt.Sprintf("http://127.0.0.1:%d", in.api)
	// Only what the orchestrator needs from this environment: PG_DSN is
	// set (or not) per scenario, and no token (the flags say insecure).
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PG_DSN" || strings.HasPrefix(k, "AGENTETL_") {
			continue
		}
		in.env = append(in.env, kv)
	}
	in.env = append(in.env, "AGENTETL_BINARY="+agentBin)
	in.env = append(in.env, env...)
	return in
}

// start runs the orchestrator with the Makefile's flags, plus free ports,
// and waits for readiness.
func (in *install) start(t *testing.T) *proc {
	t.Helper()
	args := append(append([]string(nil), runFlags...), "--listen", fmt.Sprintf("127.0.0.1:%d", in.api),
		"--bus-port", strconv.Itoa(in.bus), "--poll-interval", "100ms")
	p := &proc{cmd: exec.Command(orchBin, args...), done: make(chan struct{})}
	p.cmd.Dir, p.cmd.Env = in.dir, in.env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.logs
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("orchestrator stdout:\n%s\norchestrator log (tail):\n%s", p.out.String(), tail(p.logs.String(), 80))
		}
	})
	testutil.WaitReady(t, in.hc, in.base+"/readyz", p.done, 45*time.Second, p.logs.String)
	return p
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "orchestrator did not stop within 30s of SIGTERM")
	}
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode(), "exit code after SIGTERM")
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (in *install) get(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := in.hc.Get(in.base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	require.NoError(t, json.Unmarshal(b, out), "GET %s: %s", path, b)
}

type pipeline struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
	State   string `json:"state"`
	YAML    string `json:"yaml"`
	Config  struct {
		Type        string `json:"type"`
		Destination struct {
			Type string `json:"type"`
		} `json:"destination"`
	} `json:"config"`
}

type execution struct {
	ID         string `json:"id"`
	PipelineID string `json:"pipelineId"`
	Status     string `json:"status"`
	RowsIn     int64  `json:"rowsIn"`
	RowsOut    int64  `json:"rowsOut"`
	DeadLetter int64  `json:"deadLetter"`
	Message    string `json:"message"`
}

type review struct {
	ID         string   `json:"id"`
	PipelineID string   `json:"pipelineId"`
	Status     string   `json:"status"`
	Reasons    []string `json:"reasons"`
	Document   struct {
		Mappings []struct {
			TargetField string `json:"targetField"`
			Status      string `json:"status"`
		} `json:"mappings"`
	} `json:"document"`
}

func (in *install) pipelines(t *testing.T) map[string]pipeline {
	var list struct {
		Pipelines []pipeline `json:"pipelines"`
		Count     int        `json:"count"`
	}
	in.get(t, "/api/v1/pipelines", &list)
	out := map[string]pipeline{}
	for _, p := range list.Pipelines {
		var full pipeline
		in.get(t, "/api/v1/pipelines/"+p.ID, &full)
		out[p.ID] = full
	}
	require.Len(t, out, list.Count)
	return out
}

func (in *install) executions(t *testing.T, id string) []execution {
	var list struct {
		Executions []execution `json:"executions"`
	}
	in.get(t, "/api/v1/pipelines/"+id+"/executions", &list)
	return list.Executions
}

func (in *install) pendingReviews(t *testing.T) []review {
	var list struct {
		Reviews []review `json:"reviews"`
	}
	in.get(t, "/api/v1/reviews?status=pending_review", &list)
	return list.Reviews
}

type badRecord struct {
	OrderID int64  `json:"ordId"`
	Column  string `json:"column"`
}

func bundled(t *testing.T) (rows int64, bad map[int64]string) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(root, "resources/demo/legacy.db")+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM CUST_ORD`).Scan(&rows))
	b, err := os.ReadFile(filepath.Join(root, "resources/demo/bad-records.json"))
	require.NoError(t, err)
	var list []badRecord
	require.NoError(t, json.Unmarshal(b, &list))
	bad = map[int64]string{}
	for _, r := range list {
		bad[r.OrderID] = r.Column
	}
	return rows, bad
}

// target reads the destination: loaded orders, generated events, and the
// order ids of the dead letters with their error categories.
type target interface {
	orders(t *testing.T) int64
	events(t *testing.T) int64
	deadLetters(t *testing.T) map[int64]string
}

type sqliteTarget struct{ dataDir string }

func (s sqliteTarget) count(t *testing.T, table string) int64 {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dataDir, "demo-target.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	defer db.Close()
	var n int64
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM `+table).Scan(&n))
	return n
}

func (s sqliteTarget) orders(t *testing.T) int64 { return s.count(t, "orders") }
func (s sqliteTarget) events(t *testing.T) int64 { return s.count(t, "order_events") }

func (s sqliteTarget) deadLetters(t *testing.T) map[int64]string {
	f, err := os.Open(filepath.Join(s.dataDir, "demo-dead-letters.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	out := map[int64]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var dl struct {
			Category string          `json:"category"`
			Payload  json.RawMessage `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &dl), sc.Text())
		id := orderID(t, dl.Payload)
		_, dup := out[id]
		require.False(t, dup, "order %d dead-lettered twice", id)
		out[id] = dl.Category
	}
	require.NoError(t, sc.Err())
	return out
}

// orderID finds the order id in a dead letter's payload: the source record
// (ord_id) when a transformation failed, the mapped record (order_id) when
// the destination refused it. The payload may be a JSON document or a
// string holding one.
func orderID(t *testing.T, payload json.RawMessage) int64 {
	var s string
	if json.Unmarshal(payload, &s) == nil {
		payload = json.RawMessage(s)
	}
	var rec map[string]any
	require.NoError(t, json.Unmarshal(payload, &rec), "%s", payload)
	for _, k := range []string{"order_id", "ord_id"} {
		if v, ok := rec[k]; ok {
			n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	require.FailNow(t, "dead letter without an order id", "%s", payload)
	return 0
}

type pgTarget struct{ db *testpg.DB }

func (p pgTarget) orders(t *testing.T) int64 { return p.db.Int(t, `SELECT count(*) FROM orders`) }
func (p pgTarget) events(t *testing.T) int64 { return p.db.Int(t, `SELECT count(*) FROM order_events`) }
func (p pgTarget) deadLetters(t *testing.T) map[int64]string {
	out := map[int64]string{}
	for _, line := range strings.Split(p.db.String(t, `SELECT coalesce(string_agg(category || ' ' || payload::text, E'\n'), '') FROM orders_dead_letters`), "\n") {
		if line == "" {
			continue
		}
		cat, payload, _ := strings.Cut(line, " ")
		id := orderID(t, json.RawMessage(payload))
		_, dup := out[id]
		require.False(t, dup, "order %d dead-lettered twice", id)
		out[id] = cat
	}
	return out
}

// TestMakeRunDemoSQLite is `make run` on a machine with only Go.
func TestMakeRunDemoSQLite(t *testing.T) {
	t.Parallel()
	// As on a fresh machine: make exports its default PG_DSN, and nothing
	// answers there.
	in := newInstall(t, fmt.Sprintf("PG_DSN=postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", testutil.FreePort(t)))
	runDemo(t, in, sqliteTarget{dataDir: filepath.Join(in.dir, "data")}, "sqlite")
}

// TestMakeRunDemoPostgres is `make run` where PG_DSN answers: the demo
// writes there (into the test's own schema).
func TestMakeRunDemoPostgres(t *testing.T) {
	t.Parallel()
	db := testpg.NewSchema(t)
	in := newInstall(t, "PG_DSN="+db.DSN, "AGENTETL_DEMO_PG_SCHEMA="+db.Schema)
	runDemo(t, in, pgTarget{db: db}, "postgres")
}

func runDemo(t *testing.T, in *install, tg target, kind string) {
	start := time.Now()
	sourceRows, bad := bundled(t)
	require.EqualValues(t, 3000, sourceRows)
	require.Len(t, bad, 4)

	p := in.start(t)
	var ex execution
	require.Eventually(t, func() bool {
		xs := in.executions(t, "demo-orders")
		if len(xs) == 0 || xs[0].Status == "running" {
			return false
		}
		ex = xs[0]
		return true
	}, 60*time.Second, 200*time.Millisecond, "the demo's batch load did not finish")
	t.Logf("%s: batch load finished %s after start", kind, time.Since(start).Round(time.Millisecond))
	require.Equal(t, "succeeded", ex.Status, ex.Message)

	// Pipelines: the three of the demo, the batch one mapped by the agent.
	ps := in.pipelines(t)
	require.ElementsMatch(t, []string{"demo-orders", "demo-orders-csv", "demo-order-events"}, keys(ps))
	orders := ps["demo-orders"]
	require.Equal(t, "active", orders.State)
	require.GreaterOrEqual(t, orders.Version, 2, "the mapping agent wrote its mapping as a new version")
	require.Equal(t, kind, orders.Config.Destination.Type)
	for _, pair := range [][2]string{{"customer_name", "cst_nm"}, {"email_address", "eml_addr"}, {"order_date", "ord_dt"},
		{"amount_usd", "amt_usd"}, {"ship_country", "shp_cntry"}, {"customer_id", "cust_id"}} {
		require.Contains(t, orders.YAML, fmt.Sprintf(`root.%q = this.%q`, pair[0], pair[1]))
	}
	require.Contains(t, orders.YAML, "error_resolution", "bad rows are resolved into the dead letter")

	// Every source row was loaded or dead-lettered, and the API says so.
	require.EqualValues(t, sourceRows, ex.RowsIn)
	require.EqualValues(t, len(bad), ex.DeadLetter, "the dead letters are the bundled bad records")
	require.EqualValues(t, sourceRows, ex.RowsOut+ex.DeadLetter, "loaded + dead letters = source rows")
	require.EqualValues(t, ex.RowsOut, tg.orders(t), "the API's rows out are the rows in the target table")
	dls := tg.deadLetters(t)
	require.Len(t, dls, len(bad))
	for id := range bad {
		require.Contains(t, dls, id, "bad record %d is in the dead letter", id)
	}
	var errs struct {
		Errors []struct {
			PipelineID string `json:"pipelineId"`
			Category   string `json:"category"`
		} `json:"errors"`
	}
	in.get(t, "/api/v1/errors?pipelineId=demo-orders&limit=1000", &errs)
	cats := map[string]bool{}
	for _, e := range errs.Errors {
		require.Equal(t, "demo-orders", e.PipelineID)
		cats[e.Category] = true
	}
	require.True(t, cats["constraint"], "the CHECK violations are listed by /api/v1/errors: %v", cats)
	require.True(t, cats["data_type"], "the impossible date is listed by /api/v1/errors: %v", cats)

	// The CSV export waits for a reviewer: order_date is below the accept
	// threshold, the other fields were accepted.
	var rs []review
	require.Eventually(t, func() bool {
		rs = in.pendingReviews(t)
		return len(rs) > 0
	}, 30*time.Second, 100*time.Millisecond, "no review of the CSV pipeline's mapping was opened")
	require.Len(t, rs, 1)
	require.Equal(t, "demo-orders-csv", rs[0].PipelineID)
	statuses := map[string]string{}
	for _, m := range rs[0].Document.Mappings {
		statuses[m.TargetField] = m.Status
	}
	require.Equal(t, "review", statuses["order_date"], "%v", rs[0].Reasons)
	require.Equal(t, "accepted", statuses["customer_name"])
	require.Equal(t, "paused", ps["demo-orders-csv"].State)

	// The stream pipeline writes generated events.
	require.Equal(t, "stream", ps["demo-order-events"].Config.Type)
	require.Eventually(t, func() bool { return tg.events(t) > 0 }, 20*time.Second, 200*time.Millisecond, "no generated event arrived")

	summary := fmt.Sprintf("batch load demo-orders finished: %d rows read, %d loaded", sourceRows, ex.RowsOut)
	require.Eventually(t, func() bool { return strings.Contains(p.out.String(), summary) }, 30*time.Second, 100*time.Millisecond,
		"the demo did not print its summary")
	out := p.out.String()
	require.Contains(t, out, fmt.Sprintf("UI:  http://127.0.0.1:%d/", in.api))
	require.Contains(t, out, "1 mapping review(s) waiting for you")
	p.stop(t)
	eventsBefore := tg.events(t)
	t.Logf("%s: first start and stop took %s", kind, time.Since(start).Round(time.Millisecond))

	// A second start reuses everything: same pipelines and versions, no new
	// load, no new review, the same rows; the stream goes on.
	p = in.start(t)
	require.Eventually(t, func() bool {
		return strings.Contains(p.out.String(), "had finished on an earlier start")
	}, 30*time.Second, 100*time.Millisecond, "the second start did not report the earlier load")
	again := in.pipelines(t)
	require.ElementsMatch(t, keys(ps), keys(again))
	for id, before := range ps {
		require.Equal(t, before.Version, again[id].Version, "pipeline %s was not changed by the second start", id)
	}
	xs := in.executions(t, "demo-orders")
	require.Len(t, xs, 1, "the batch load did not run twice")
	require.Equal(t, ex.ID, xs[0].ID)
	require.EqualValues(t, ex.RowsOut, tg.orders(t), "no row loaded twice")
	require.Len(t, tg.deadLetters(t), len(bad), "no row dead-lettered twice")
	require.Len(t, in.pendingReviews(t), 1, "no second review of the same mapping")
	require.Eventually(t, func() bool { return tg.events(t) > eventsBefore }, 20*time.Second, 200*time.Millisecond,
		"the stream pipeline did not resume")
	p.stop(t)
	t.Logf("%s: demo test took %s", kind, time.Since(start).Round(time.Millisecond))
}

func keys(m map[string]pipeline) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
