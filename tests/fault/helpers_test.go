package fault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

var (
	// agentBin and orchBin are the binaries under test.
	agentBin, orchBin string
	// moduleRoot is the directory holding go.mod.
	moduleRoot string
	// summaryPath collects every scenario's line.
	summaryPath string
	summaryMu   sync.Mutex
)

// pipelineEnv lists variables the example configs read; they are removed
// from the inherited environment so a developer's shell cannot leak into a
// scenario.
var pipelineEnv = []string{
	"SOURCE_DSN", "SOURCE_TABLE", "TARGET_DSN", "TARGET_TABLE", "KEY_COLUMN",
	"PAGE_SIZE", "STORE_DSN", "MAX_IN_FLIGHT", "LOG_LEVEL", "AGENTETL_CPUPROFILE",
	"DLQ_TABLE", "WRITE_MODE", "BUS_URL", "AGENTETL_TOKEN",
}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	root, err := testutil.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		return 1
	}
	moduleRoot = root
	var cleanup func()
	agentBin, orchBin, cleanup, err = testutil.Binaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		return 1
	}
	defer cleanup()
	summaryPath = os.Getenv("FAULT_SUMMARY")
	if summaryPath == "" {
		summaryPath = filepath.Join(os.TempDir(), "agentetl-fault-summary.txt")
	}
	if err := os.WriteFile(summaryPath, nil, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fault: summary file:", err)
		return 1
	}
	start := time.Now()
	code := m.Run()
	fmt.Printf("fault suite: exit %d after %.1fs; scenario lines in %s\n", code, time.Since(start).Seconds(), summaryPath)
	return code
}

func exampleConfig(name string) string {
	return filepath.Join(moduleRoot, "configs", "examples", name)
}

// ---- accounting ----

// tally compares the keys of a source with the keys that reached the
// target and the dead letter.
type tally struct {
	rows, target, dead int
	// lost: source keys found neither in the target nor in the dead letter.
	lost int
	// duplicated: extra occurrences of a source key across target and dead
	// letter (a row written twice, dead-lettered twice, or both written and
	// dead-lettered).
	duplicated int
	// foreign: keys in the target or the dead letter that the source does
	// not have.
	foreign int
}

func account(src, target, dead []string) tally {
	tl := tally{rows: len(src), target: len(target), dead: len(dead)}
	seen := make(map[string]int, len(src))
	for _, k := range src {
		seen[k] = 0
	}
	for _, list := range [][]string{target, dead} {
		for _, k := range list {
			n, ok := seen[k]
			if !ok {
				tl.foreign++
				continue
			}
			if n > 0 {
				tl.duplicated++
			}
			seen[k] = n + 1
		}
	}
	for _, n := range seen {
		if n == 0 {
			tl.lost++
		}
	}
	return tl
}

// report prints the scenario's line, appends it to the summary file and
// asserts the no-loss, no-duplicate invariant.
func report(t *testing.T, name string, start time.Time, tl tally) {
	t.Helper()
	line := fmt.Sprintf("scenario=%s rows=%d lost=%d duplicated=%d seconds=%.1f",
		name, tl.rows, tl.lost, tl.duplicated, time.Since(start).Seconds())
	fmt.Println(line)
	t.Log(line)
	summaryMu.Lock()
	if f, err := os.OpenFile(summaryPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
		_, _ = fmt.Fprintln(f, line)
		_ = f.Close()
	}
	summaryMu.Unlock()
	require.Zerof(t, tl.lost, "%s: %d source rows are neither in the target nor in the dead letter", name, tl.lost)
	require.Zerof(t, tl.duplicated, "%s: %d rows had their effect more than once", name, tl.duplicated)
	require.Zerof(t, tl.foreign, "%s: %d target or dead-letter rows have keys the source does not have", name, tl.foreign)
	require.Equalf(t, tl.rows, tl.target+tl.dead, "%s: count(source) = count(target) + count(dead letter)", name)
}

// ---- PostgreSQL ----

// queryStrings returns the first column of every row, as text.
func queryStrings(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, sql, args...)
	require.NoError(t, err, sql)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s), sql)
		out = append(out, s)
	}
	require.NoError(t, rows.Err(), sql)
	return out
}

func queryInt(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int64
	require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(&n), sql)
	return n
}

func execSQL(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := pool.Exec(ctx, sql, args...)
	require.NoError(t, err, sql)
}

// orderedMD5 is the count and the md5 of the md5s of the text form of every
// row of query, in key order: two queries over the same columns are equal exactly
// when they return the same rows. query's first column must be "id".
func orderedMD5(t *testing.T, pool *pgxpool.Pool, query string) (int64, string) {
	t.Helper()
	q := "SELECT count(*), coalesce(md5(string_agg(md5(x::text), '' ORDER BY x.id)), '') FROM (" + query + ") AS x"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var n int64
	var sum string
	require.NoError(t, pool.QueryRow(ctx, q).Scan(&n, &sum), q)
	return n, sum
}

// withApp gives a DSN an application_name, so the scenario can find (and
// terminate) exactly its own connections in pg_stat_activity.
func withApp(dsn, app string) string { return testpg.WithParam(dsn, "application_name", app) }

// terminate ends every backend of application app and returns how many.
func terminate(t *testing.T, pool *pgxpool.Pool, app string) int64 {
	t.Helper()
	return queryInt(t, pool, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, app)
}

// backends counts the connections of application app.
func backends(t *testing.T, pool *pgxpool.Pool, app string) int64 {
	t.Helper()
	return queryInt(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app)
}

// installGate makes every insert of one of ids into table wait, inside the
// writer's open transaction, until that id's gate is released: the scenario
// can then break something while a batch is certainly half done. Each gate
// is a loop over a flag, so a released gate lets later inserts pass at once.
func installGate(t *testing.T, pool *pgxpool.Pool, schema, table string, ids ...int64) {
	t.Helper()
	s := pgutil.QuoteIdent(schema)
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.FormatInt(id, 10)
	}
	execSQL(t, pool, `CREATE TABLE `+s+`.fault_gate (id bigint PRIMARY KEY, armed boolean NOT NULL)`)
	execSQL(t, pool, `INSERT INTO `+s+`.fault_gate SELECT unnest($1::bigint[]), true`, ids)
	execSQL(t, pool, `CREATE FUNCTION `+s+`.fault_gate_hold() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			WHILE (SELECT armed FROM `+s+`.fault_gate WHERE id = NEW.id) LOOP
				PERFORM pg_sleep(0.02);
			END LOOP;
			RETURN NULL;
		END $$`)
	execSQL(t, pool, `CREATE TRIGGER fault_gate AFTER INSERT ON `+s+`.`+pgutil.QuoteIdent(table)+
		` FOR EACH ROW WHEN (NEW.id IN (`+strings.Join(list, ",")+`)) EXECUTE FUNCTION `+s+`.fault_gate_hold()`)
}

// setGate arms or releases every gate.
func setGate(t *testing.T, pool *pgxpool.Pool, schema string, armed bool) {
	t.Helper()
	execSQL(t, pool, `UPDATE `+pgutil.QuoteIdent(schema)+`.fault_gate SET armed = $1`, armed)
}

// releaseGate releases the gate of one id.
func releaseGate(t *testing.T, pool *pgxpool.Pool, schema string, id int64) {
	t.Helper()
	execSQL(t, pool, `UPDATE `+pgutil.QuoteIdent(schema)+`.fault_gate SET armed = false WHERE id = $1`, id)
}

// waitHeld waits until a backend of application app waits at the gate (or
// in a slow-down trigger). p, when set, must stay alive meanwhile.
func waitHeld(t *testing.T, pool *pgxpool.Pool, app string, p *proc, timeout time.Duration) {
	t.Helper()
	waitUntil(t, timeout, p, "a writer of "+app+" held inside its transaction", func() bool {
		return queryInt(t, pool, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event = 'PgSleep' AND xact_start IS NOT NULL`, app) > 0
	})
}

// slowDown makes every insert statement into table sleep for d inside its
// transaction: a slow destination.
func slowDown(t *testing.T, pool *pgxpool.Pool, schema, table string, d time.Duration) {
	t.Helper()
	s := pgutil.QuoteIdent(schema)
	execSQL(t, pool, fmt.Sprintf(`CREATE FUNCTION %s.fault_slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(%.3f); RETURN NULL; END $$`, s, d.Seconds()))
	execSQL(t, pool, `CREATE TRIGGER fault_slow AFTER INSERT ON `+s+`.`+pgutil.QuoteIdent(table)+
		` FOR EACH STATEMENT EXECUTE FUNCTION `+s+`.fault_slow()`)
}

// checkpointKey reads the key of a postgres input checkpoint; found is
// false when none is stored.
func checkpointKey(t *testing.T, storeDSN, id string) (int64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := metastore.Open(ctx, storeDSN)
	require.NoError(t, err, "open checkpoint store")
	defer st.Close()
	raw, err := st.GetCheckpoint(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return 0, false
	}
	require.NoError(t, err, "get checkpoint %q", id)
	var pos struct {
		Key string `json:"key"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &pos), "checkpoint %q", raw)
	key, err := strconv.ParseInt(pos.Key, 10, 64)
	require.NoError(t, err, "checkpoint key in %q", raw)
	return key, true
}

// ---- processes ----

// proc is one running process of a binary under test.
type proc struct {
	name    string
	cmd     *exec.Cmd
	out     testutil.Buffer
	done    chan struct{}
	started time.Time
	elapsed time.Duration

	peakMu sync.Mutex
	peakKB int64
}

// startProc runs bin with args in dir and env (the inherited environment
// minus pipelineEnv, plus env). At the end of the test a process still
// running gets SIGTERM, then SIGKILL.
func startProc(t *testing.T, name, bin, dir string, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = childEnv(env)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.started = time.Now()
	require.NoError(t, p.cmd.Start(), "start %s", bin)
	go func() {
		_ = p.cmd.Wait()
		p.elapsed = time.Since(p.started)
		close(p.done)
	}()
	go p.sampleRSS()
	t.Cleanup(func() {
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// startEngine runs `agentetl args...` in a fresh directory.
func startEngine(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	return startProc(t, "agentetl", agentBin, t.TempDir(), env, args...)
}

func childEnv(env map[string]string) []string {
	drop := map[string]bool{}
	for _, k := range pipelineEnv {
		drop[k] = true
	}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// sampleRSS keeps the highest VmHWM (peak resident set) seen in
// /proc/<pid>/status until the process ends.
func (p *proc) sampleRSS() {
	path := filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "status")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if kb := vmHWM(path); kb > 0 {
			p.peakMu.Lock()
			p.peakKB = max(p.peakKB, kb)
			p.peakMu.Unlock()
		}
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
}

func vmHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// peakRSSMB is the highest peak resident set seen, in MiB.
func (p *proc) peakRSSMB() float64 {
	p.peakMu.Lock()
	defer p.peakMu.Unlock()
	return float64(p.peakKB) / 1024
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) output() string { return p.out.String() }

// tail is the end of the output, for failure messages.
func (p *proc) tail() string {
	lines := strings.Split(p.out.String(), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return "--- " + p.name + " output (tail) ---\n" + strings.Join(lines, "\n")
}

// waitExit waits for the process to end on its own and returns its exit
// code; a hang past timeout or a death by signal fails the test.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		require.FailNowf(t, "process hung", "%s %v did not exit within %s\n%s", p.name, p.cmd.Args[1:], timeout, p.tail())
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.Falsef(t, ws.Signaled(), "%s died from signal %v\n%s", p.name, ws.Signal(), p.tail())
	return p.cmd.ProcessState.ExitCode()
}

// kill9 sends SIGKILL and waits for the process to die; it must not have
// exited on its own before.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	require.Falsef(t, p.exited(), "%s exited before it could be killed\n%s", p.name, p.tail())
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		require.FailNowf(t, "no death", "%s did not die within 10s of SIGKILL", p.name)
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.Truef(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "%s finished (exit %d) before SIGKILL landed\n%s",
		p.name, p.cmd.ProcessState.ExitCode(), p.tail())
}

// stop sends SIGTERM and waits up to timeout for the process to end.
func (p *proc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitUntil polls cond until it is true; p, when set, must not exit
// meanwhile (its output is shown if it does).
func waitUntil(t *testing.T, timeout time.Duration, p *proc, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if p != nil && p.exited() {
			require.FailNowf(t, "process ended early", "%s exited (code %d) while waiting for %s\n%s",
				p.name, p.cmd.ProcessState.ExitCode(), what, p.tail())
		}
		if time.Now().After(deadline) {
			msg := ""
			if p != nil {
				msg = p.tail()
			}
			require.FailNowf(t, "timeout", "no %s within %s\n%s", what, timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- a private PostgreSQL cluster ----

// cluster is a PostgreSQL server of the test's own (testpg.Cluster) that the
// test may restart without touching the shared server.
type cluster struct{ *testpg.Cluster }

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c, err := testpg.StartCluster("shared_buffers=32MB", "max_connections=40")
	require.NoError(t, err, "a private PostgreSQL cluster")
	t.Cleanup(c.Stop)
	return &cluster{c}
}

func (c *cluster) restart(t *testing.T, mode string) {
	t.Helper()
	require.NoError(t, c.Restart(mode))
}

func (c *cluster) pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, testpg.WithParam(c.DSN(), "TimeZone", "UTC"))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// ---- the orchestrator ----

const apiToken = "fault-token-0123456789"

// orchSite is one orchestrator installation whose data directory and ports
// stay the same across restarts of the process.
type orchSite struct {
	dir              string
	apiPort, busPort int
	env              map[string]string
	base             string
	httpc            *http.Client
}

func newOrchSite(t *testing.T, env map[string]string) *orchSite {
	t.Helper()
	s := &orchSite{dir: t.TempDir(), apiPort: testutil.FreePort(t), busPort: testutil.FreePort(t), env: env,
		httpc: &http.Client{Timeout: 30 * time.Second}}
	s.base = fmt.Sprintf("http://127.0.0.1:%d", s.apiPort)
	return s
}

// start runs the orchestrator and waits until it is ready.
func (s *orchSite) start(t *testing.T) *proc {
	t.Helper()
	env := map[string]string{"AGENTETL_TOKEN": apiToken}
	for k, v := range s.env {
		env[k] = v
	}
	p := startProc(t, "orchestrator", orchBin, s.dir, env,
		"--listen", fmt.Sprintf("127.0.0.1:%d", s.apiPort),
		"--bus-port", strconv.Itoa(s.busPort),
		"--data-dir", filepath.Join(s.dir, "data"),
		"--store", "sqlite://"+filepath.Join(s.dir, "data", "meta.db"),
		"--configs-dir", filepath.Join(s.dir, "configs"),
		"--engine-bin", agentBin,
		"--reconcile-interval", "1s",
		"--poll-interval", "100ms",
		"--heartbeat-ttl", "3s",
		"--auto-loop=false",
	)
	waitUntil(t, 60*time.Second, p, "orchestrator ready", func() bool {
		resp, err := s.httpc.Get(s.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// call sends a JSON request with the bearer token, decodes the answer into
// out and returns the status code.
func (s *orchSite) call(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.httpc.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(b) > 0 {
		require.NoErrorf(t, json.Unmarshal(b, out), "%s %s -> %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// ---- fixtures ----

// poisonWhere selects the poison rows of seedSource: one in every 1,000.
const poisonWhere = "id % 1000 = 777"

// seedSource creates table with n rows of varied types: NULLs, non-ASCII
// text, negative fractional numerics, sub-second timestamps. With poison,
// the rows matching poisonWhere have qty = -1, which the CHECK of a target
// made by createTarget(check=true) rejects.
func seedSource(t *testing.T, pool *pgxpool.Pool, table string, n int, poison bool) {
	t.Helper()
	tb := pgutil.QuoteIdent(table)
	execSQL(t, pool, `CREATE TABLE `+tb+` (id bigint PRIMARY KEY, name text, qty int, amount numeric(12,2),
		created_at timestamptz, note text)`)
	qty := "g % 500"
	if poison {
		qty = "CASE WHEN g % 1000 = 777 THEN -1 ELSE g % 500 END"
	}
	execSQL(t, pool, `INSERT INTO `+tb+` SELECT g,
		CASE WHEN g % 7 = 0 THEN NULL ELSE 'cüstømer ✓ ' || g END,
		`+qty+`,
		CASE WHEN g % 13 = 0 THEN NULL ELSE ((g % 200000) - 100000) / 100.0 END,
		timestamptz '2024-01-01 00:00:00.123456+00' + g * interval '1.000001 second',
		CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) || ' 日本語 "q" ' || chr(9) END
		FROM generate_series(1, $1::int) g`, n)
}

// createTarget creates an empty copy target; with check, qty must be >= 0.
func createTarget(t *testing.T, pool *pgxpool.Pool, table string, check bool) {
	t.Helper()
	c := ""
	if check {
		c = " CHECK (qty >= 0)"
	}
	execSQL(t, pool, `CREATE TABLE `+pgutil.QuoteIdent(table)+` (id bigint PRIMARY KEY, name text, qty int`+c+`,
		amount numeric(12,2), created_at timestamptz, note text)`)
}

// resumedFrom reports whether an engine's log says its input resumed from
// the checkpoint id.
func resumedFrom(out, checkpointID string) bool {
	out = strings.ReplaceAll(out, `\"`, `"`)
	return strings.Contains(out, `from checkpoint "`+checkpointID+`" at {"key":`)
}
