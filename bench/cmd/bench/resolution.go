package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// resolutionBench loads 100,000 rows through configs/examples/resilient-load.yaml
// twice per repetition, once clean and once with 1% bad rows (values too long
// for varchar(40), check-constraint violations, unparseable dates, duplicate
// keys in insert mode), and reports the ratio of the median times. Every run
// is verified: count(source) = count(target) + count(dead letter).
func resolutionBench(ctx context.Context, r *report, bin, dsn string) error {
	const rows, reps = 100_000, 7
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	slog.Info("preparing resolution benchmark tables", "rows", rows)
	src := func(name string, bad bool) string {
		cond := "false"
		if bad {
			cond = "g % 100 = 0"
		}
		return fmt.Sprintf(`CREATE TABLE agentetl_bench_res.%[1]s AS SELECT g AS id,
		   CASE WHEN %[2]s AND (g / 100) %% 4 = 3 THEN g - 50 ELSE g END AS code,
		   CASE WHEN %[2]s AND (g / 100) %% 4 = 0 THEN repeat('x', 60) ELSE 'customer ' || g END AS name,
		   CASE WHEN %[2]s AND (g / 100) %% 4 = 1 THEN -1 ELSE g %% 1000 END AS qty,
		   CASE WHEN %[2]s AND (g / 100) %% 4 = 2 THEN 'not a date' ELSE to_char(date '2000-01-01' + (g %% 9000), 'YYYY-MM-DD') END AS born,
		   md5(g::text) AS note
		 FROM generate_series(1, %[3]d) g;
		 ALTER TABLE agentetl_bench_res.%[1]s ADD PRIMARY KEY (id)`, name, cond, rows)
	}
	setup := []string{
		`DROP SCHEMA IF EXISTS agentetl_bench_res CASCADE`,
		`CREATE SCHEMA agentetl_bench_res`,
		src("src_clean", false),
		src("src_bad", true),
		`VACUUM ANALYZE agentetl_bench_res.src_clean`,
		`VACUUM ANALYZE agentetl_bench_res.src_bad`,
		`CREATE TABLE agentetl_bench_res.dst (code bigint PRIMARY KEY, id bigint NOT NULL, name varchar(40),
		   qty int CHECK (qty >= 0), born date, note text)`,
	}
	for _, s := range setup {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	defer conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS agentetl_bench_res CASCADE`) //nolint:errcheck
	tmp, err := os.MkdirTemp("", "agentetl-bench-res-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	load := func(i int, table string) (time.Duration, error) {
		if _, err := conn.Exec(ctx, `TRUNCATE agentetl_bench_res.dst; DROP TABLE IF EXISTS agentetl_bench_res.dlq; CHECKPOINT`); err != nil {
			return 0, err
		}
		cmd := exec.Command(bin, "run", "configs/examples/resilient-load.yaml")
		cmd.Env = append(os.Environ(),
			"SOURCE_DSN="+dsn, "SOURCE_TABLE=agentetl_bench_res."+table,
			"TARGET_DSN="+dsn, "TARGET_TABLE=agentetl_bench_res.dst", "DLQ_TABLE=agentetl_bench_res.dlq",
			// Insert: the duplicate-key bad rows must fail.
			"WRITE_MODE=insert",
			"STORE_DSN=sqlite://"+filepath.Join(tmp, fmt.Sprintf("store-%s-%d.db", table, i)),
			"LOG_LEVEL=WARN")
		d, _, err := run(cmd)
		return d, err
	}
	check := func(table string, wantDead int64) error {
		var s, t, dl int64
		var dlq *string
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM agentetl_bench_res.`+table+`),
			(SELECT count(*) FROM agentetl_bench_res.dst), to_regclass('agentetl_bench_res.dlq')::text`).Scan(&s, &t, &dlq); err != nil {
			return err
		}
		if dlq != nil {
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM agentetl_bench_res.dlq`).Scan(&dl); err != nil {
				return err
			}
		}
		if s != t+dl || dl != wantDead {
			return fmt.Errorf("%s: source %d, target %d, dead letters %d (want %d): rows lost or misfiled", table, s, t, dl, wantDead)
		}
		return nil
	}
	var clean, bad []time.Duration
	for i := 0; i < reps; i++ {
		d, err := load(i, "src_clean")
		if err != nil {
			return err
		}
		if err := check("src_clean", 0); err != nil {
			return err
		}
		clean = append(clean, d)
		d, err = load(i, "src_bad")
		if err != nil {
			return err
		}
		if err := check("src_bad", rows/100); err != nil {
			return err
		}
		bad = append(bad, d)
		slog.Info("resolution repetition", "i", i, "clean", clean[i], "one_percent_bad", bad[i])
	}
	c, b := median(clean), median(bad)
	ratio := b.Seconds() / c.Seconds()
	verdict := "meets"
	if ratio > 1.5 {
		verdict = "MISSES"
	}
	fmt.Fprintf(&r.b, "## Error resolution: %d-row load with 1%% bad rows vs the same load clean\n\n", rows)
	fmt.Fprintf(&r.b, "`bin/agentetl run configs/examples/resilient-load.yaml` (WRITE_MODE=insert, error_resolution wrapping the postgres output, dead letters to a table).\n")
	fmt.Fprintf(&r.b, "Bad rows: 250 each of a value too long for varchar(40), a check violation, an unparseable date and a duplicate key; median of %d alternating runs, each verified by count(source) = count(target) + count(dead letter).\n\n", reps)
	fmt.Fprintf(&r.b, "| load | median time | rows/s |\n|---|---|---|\n")
	fmt.Fprintf(&r.b, "| clean | %.2f s | %.0f |\n", c.Seconds(), float64(rows)/c.Seconds())
	fmt.Fprintf(&r.b, "| 1%% bad | %.2f s | %.0f |\n\n", b.Seconds(), float64(rows)/b.Seconds())
	fmt.Fprintf(&r.b, "Ratio (bad / clean): **%.2f** (target <= 1.50): %s.\n\n", ratio, verdict)
	r.sum(summaryRow{Figure: fmt.Sprintf("dead-letter overhead: %d-row load, 1%% bad rows", rows), Ours: fmt.Sprintf("%.2f s", b.Seconds()),
		Baseline: fmt.Sprintf("clean load %.2f s", c.Seconds()), Ratio: fmt.Sprintf("%.2f", ratio), Target: "<= 1.50", Met: ratio <= 1.5})
	return nil
}
