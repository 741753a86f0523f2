// Command bench runs agentetl's benchmarks side by side with their baselines
// and writes one markdown report (stdout and -out). Each figure is a ratio
// measured in the same run on the same machine, never an absolute timing
// assertion.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	bin := flag.String("bin", "./bin/agentetl", "agentetl binary")
	orch := flag.String("orchestrator", "./bin/orchestrator", "orchestrator binary (API and UI benchmarks)")
	out := flag.String("out", "bench/results.md", "markdown report path")
	rows := flag.Int("rows", 1_000_000, "rows in the copy benchmark table")
	reps := flag.Int("reps", 3, "repetitions of each side; the median is reported")
	schemaBench := flag.String("schema-bench", "../shared/benchmarks/schema-matching", "schema-matching datasets with score.py")
	only := flag.String("only", "", "comma-separated sections to run: copy,resolution,discovery,mapping,kafka,api,ui (default all)")
	flag.Parse()
	dsn := os.Getenv("PG_DSN")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx := context.Background()
	r := &report{}
	r.header()
	want := func(section string) bool {
		return *only == "" || slices.Contains(strings.Split(*only, ","), section)
	}
	sections := []struct {
		name string
		run  func() error
	}{
		{"copy", func() error { return copyBench(ctx, r, *bin, dsn, *rows, *reps) }},
		{"resolution", func() error { return resolutionBench(ctx, r, *bin, dsn) }},
		{"discovery", func() error { return discoveryBench(ctx, r, *bin, dsn) }},
		{"mapping", func() error { return mappingBench(ctx, r, *bin, *schemaBench) }},
		{"kafka", func() error { return kafkaBench(ctx, r, *bin, dsn) }},
		{"api", func() error {
			return commandBench(ctx, r, "./bench/cmd/apibench", "-orchestrator", *orch, "-bin", *bin)
		}},
		{"ui", func() error {
			return commandBench(ctx, r, "./bench/cmd/uibench", "-orchestrator", *orch, "-bin", *bin)
		}},
	}
	for _, s := range sections {
		if !want(s.name) {
			continue
		}
		if err := s.run(); err != nil {
			slog.Error("benchmark failed", "section", s.name, "err", err)
			os.Exit(1)
		}
	}
	md := r.String()
	fmt.Print(md)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			slog.Error("write report", "err", err)
			os.Exit(1)
		}
	}
}

type report struct {
	head, b strings.Builder
	rows    []summaryRow
}

// String is the report: the machine, the summary table, then each
// section's details.
func (r *report) String() string { return r.head.String() + r.summaryTable() + r.b.String() }

func (r *report) header() {
	host, _ := os.Hostname()
	cpu := "unknown cpu"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	fmt.Fprintf(&r.head, "# agentetl benchmark report\n\n")
	fmt.Fprintf(&r.head, "Run %s on %s: %d CPUs (%s), %s, Go %s.\n\n",
		time.Now().UTC().Format(time.RFC3339), host, runtime.NumCPU(), cpu, memTotal(), runtime.Version())
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown memory"
	}
	var kb int64
	fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
	return fmt.Sprintf("%.0f GiB RAM", float64(kb)/1024/1024)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// run executes a command and returns its wall time and peak RSS in bytes.
func run(cmd *exec.Cmd) (time.Duration, int64, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, 0, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tail(stderr.String(), 2000))
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024
	}
	return d, rss, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func copyBench(ctx context.Context, r *report, bin, dsn string, rows, reps int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	slog.Info("preparing source table", "rows", rows)
	setup := []string{
		`DROP SCHEMA IF EXISTS agentetl_bench CASCADE`,
		`CREATE SCHEMA agentetl_bench`,
		`CREATE TABLE agentetl_bench.src (id bigint PRIMARY KEY, name text, email text, created_at timestamptz,
		   amount numeric(12,2), qty int, active boolean, note text)`,
		fmt.Sprintf(`INSERT INTO agentetl_bench.src
		   SELECT g, 'customer ' || g, 'user' || g || '@example.com', timestamptz '2024-01-01' + g * interval '1 second',
		          (g %% 1000000) / 100.0, g %% 1000, g %% 2 = 0, md5(g::text)
		   FROM generate_series(1, %d) g`, rows),
		`VACUUM ANALYZE agentetl_bench.src`,
		`CREATE TABLE agentetl_bench.dst (LIKE agentetl_bench.src INCLUDING ALL)`,
	}
	for _, s := range setup {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	defer conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS agentetl_bench CASCADE`) //nolint:errcheck
	truncate := func() error {
		_, err := conn.Exec(ctx, `TRUNCATE agentetl_bench.dst; CHECKPOINT`)
		return err
	}
	psqlArgs := psqlConnArgs(dsn)
	tmp, err := os.MkdirTemp("", "agentetl-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// pgloader, when installed, is the second baseline: a dedicated
	// loader doing the same copy (data only, into the existing table).
	pgloader, _ := exec.LookPath("pgloader")
	var pglFile string
	if pgloader != "" {
		pglFile = filepath.Join(tmp, "copy.load")
		u := pgloaderURL(dsn)
		load := "LOAD DATABASE FROM " + u + " INTO " + u + "\n" +
			// Batches bounded in rows: with its defaults pgloader's 1 GB
			// heap is exhausted on this table.
			"  WITH data only, truncate, workers = 2, concurrency = 1, batch rows = 20000, prefetch rows = 20000\n" +
			"  INCLUDING ONLY TABLE NAMES MATCHING 'src' IN SCHEMA 'agentetl_bench'\n" +
			"  ALTER TABLE NAMES MATCHING 'src' IN SCHEMA 'agentetl_bench' RENAME TO 'dst';\n"
		if err := os.WriteFile(pglFile, []byte(load), 0o600); err != nil {
			return err
		}
	}

	var base, ours, pgl []time.Duration
	var pgloaderErr string
	var peak int64
	for i := 0; i < reps; i++ {
		if err := truncate(); err != nil {
			return err
		}
		pipe := fmt.Sprintf(`set -o pipefail; psql %s -qc "COPY agentetl_bench.src TO STDOUT (FORMAT binary)" | psql %s -qc "COPY agentetl_bench.dst FROM STDIN (FORMAT binary)"`, psqlArgs, psqlArgs)
		d, _, err := run(exec.Command("bash", "-c", pipe))
		if err != nil {
			return err
		}
		base = append(base, d)
		if err := checkCopy(ctx, conn, int64(rows)); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}

		if err := truncate(); err != nil {
			return err
		}
		cmd := exec.Command(bin, "run", "configs/examples/postgres-to-postgres.yaml")
		cmd.Env = append(os.Environ(),
			"SOURCE_DSN="+dsn, "SOURCE_TABLE=agentetl_bench.src",
			"TARGET_DSN="+dsn, "TARGET_TABLE=agentetl_bench.dst",
			"STORE_DSN=sqlite://"+filepath.Join(tmp, fmt.Sprintf("store-%d.db", i)),
			"LOG_LEVEL=WARN")
		d, rss, err := run(cmd)
		if err != nil {
			return err
		}
		ours = append(ours, d)
		peak = max(peak, rss)
		if err := checkCopy(ctx, conn, int64(rows)); err != nil {
			return fmt.Errorf("agentetl: %w", err)
		}
		if pgloader != "" {
			if err := truncate(); err != nil {
				return err
			}
			d, _, err := run(exec.Command(pgloader, "--no-ssl-cert-verification", "--quiet", pglFile))
			if err == nil {
				err = checkCopy(ctx, conn, int64(rows))
			}
			if err != nil {
				// A baseline that fails is reported, not fatal: the other
				// figures of the run stand.
				slog.Warn("pgloader baseline failed; it is left out", "err", tail(err.Error(), 300))
				pgloaderErr, pgloader = tail(err.Error(), 300), ""
			} else {
				pgl = append(pgl, d)
			}
		}
		slog.Info("copy repetition", "i", i, "copy_pipe", base[i], "agentetl", d, "rss_mb", rss>>20)
	}
	b, o := median(base), median(ours)
	ratio := b.Seconds() / o.Seconds()
	verdict := "meets"
	if ratio < 0.4 || peak > 300<<20 {
		verdict = "MISSES"
	}
	fmt.Fprintf(&r.b, "## Batch copy: Postgres to Postgres, %d rows x 8 columns\n\n", rows)
	fmt.Fprintf(&r.b, "`bin/agentetl run configs/examples/postgres-to-postgres.yaml` (upsert into an empty table) against\n")
	fmt.Fprintf(&r.b, "`psql -c \"COPY src TO STDOUT (FORMAT binary)\" | psql -c \"COPY dst FROM STDIN (FORMAT binary)\"`, median of %d alternating runs, target verified by count and checksum after each.\n\n", reps)
	fmt.Fprintf(&r.b, "| side | median time | rows/s | peak RSS |\n|---|---|---|---|\n")
	fmt.Fprintf(&r.b, "| binary COPY pipe (baseline) | %.2f s | %.0f | - |\n", b.Seconds(), float64(rows)/b.Seconds())
	if len(pgl) > 0 {
		p := median(pgl)
		fmt.Fprintf(&r.b, "| pgloader (data only, 2 workers) | %.2f s | %.0f | - |\n", p.Seconds(), float64(rows)/p.Seconds())
	}
	fmt.Fprintf(&r.b, "| agentetl | %.2f s | %.0f | %d MB |\n\n", o.Seconds(), float64(rows)/o.Seconds(), peak>>20)
	fmt.Fprintf(&r.b, "Ratio (COPY pipe time / agentetl time): **%.2f** (target >= 0.40; peak RSS target < 300 MB): %s.\n\n", ratio, verdict)
	r.sum(summaryRow{Figure: fmt.Sprintf("Postgres → Postgres copy, %d rows (rows/s)", rows), Ours: fmt.Sprintf("%.0f/s (%.2f s)", float64(rows)/o.Seconds(), o.Seconds()),
		Baseline: fmt.Sprintf("binary COPY pipe %.2f s", b.Seconds()), Ratio: fmt.Sprintf("%.2f", ratio), Target: ">= 0.40", Met: ratio >= 0.4})
	r.sum(summaryRow{Figure: "copy peak RSS", Ours: fmt.Sprintf("%d MB", peak>>20), Baseline: "-", Ratio: "-", Target: "< 300 MB", Met: peak < 300<<20})
	if len(pgl) > 0 {
		p := median(pgl)
		fmt.Fprintf(&r.b, "Against pgloader %s: pgloader time / agentetl time **%.2f**.\n\n", pgloaderVersion(pgloader), p.Seconds()/o.Seconds())
		r.sum(summaryRow{Figure: "Postgres → Postgres copy vs pgloader", Ours: fmt.Sprintf("%.2f s", o.Seconds()),
			Baseline: fmt.Sprintf("pgloader %.2f s", p.Seconds()), Ratio: fmt.Sprintf("%.2f", p.Seconds()/o.Seconds()), Target: "reported", Met: true})
	} else if pgloaderErr != "" {
		fmt.Fprintf(&r.b, "pgloader failed, so its comparison is left out: `%s`\n\n", strings.ReplaceAll(strings.SplitN(pgloaderErr, "\n", 2)[0], "`", "'"))
	} else {
		fmt.Fprintf(&r.b, "pgloader is not installed (`apt-get install pgloader`): its comparison was skipped.\n\n")
	}
	return nil
}

func checkCopy(ctx context.Context, conn *pgx.Conn, want int64) error {
	var n int64
	var same bool
	err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM agentetl_bench.dst),
	  (SELECT md5(string_agg(md5(x::text), '' ORDER BY x.id)) FROM agentetl_bench.src x) =
	  (SELECT md5(string_agg(md5(x::text), '' ORDER BY x.id)) FROM agentetl_bench.dst x)`).Scan(&n, &same)
	if err != nil {
		return err
	}
	if n != want || !same {
		return fmt.Errorf("target has %d rows (want %d), checksum equal: %v", n, want, same)
	}
	return nil
}

// psqlConnArgs passes the DSN to psql as a single quoted connection string.
func psqlConnArgs(dsn string) string {
	return "'" + strings.ReplaceAll(dsn, "'", `'\''`) + "'"
}

// pgloaderURL turns a postgres:// DSN into pgloader's pgsql:// form; the
// query string (sslmode) is dropped, pgloader takes no libpq options.
func pgloaderURL(dsn string) string {
	u := strings.TrimPrefix(strings.TrimPrefix(dsn, "postgresql://"), "postgres://")
	u, _, _ = strings.Cut(u, "?")
	return "pgsql://" + u
}

func pgloaderVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	for i, w := range f {
		if w == "version" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// commandBench runs a benchmark that is its own command (go run pkg args)
// and adds its markdown and summary rows to the report.
func commandBench(ctx context.Context, r *report, pkg string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", pkg}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", pkg, err, tail(stderr.String(), 2000))
	}
	r.b.Write(out)
	r.b.WriteString("\n")
	r.importSummaries(string(out))
	return nil
}
