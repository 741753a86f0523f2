package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	discBenchMetaSchema = "agentetl_bench_disc"
	discBenchProfSchema = "agentetl_bench_prof"
	discBenchTables     = 2000
	discBenchRows       = 1_000_000
	discBenchReps       = 3
)

// discoveryBench measures the Data Discovery Agent side by side with psql:
// metadata-only discovery of 2,000 tables of 10 columns against psql dumping
// information_schema.columns for them (target: within 5x), and profiling a
// 1,000,000-row, 8-column table against one full read of it with
// `psql -c 'SELECT * FROM t' > /dev/null` (target: faster), stating the
// sampling the profile used.
func discoveryBench(ctx context.Context, r *report, bin, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	cleanup := func() error {
		// Thousands of tables exceed max_locks_per_transaction in a single
		// DROP SCHEMA ... CASCADE: drop them in chunks first.
		for lo := 1; lo <= discBenchTables; lo += 200 {
			var names []string
			for i := lo; i < lo+200 && i <= discBenchTables; i++ {
				names = append(names, fmt.Sprintf("%s.t_%d", discBenchMetaSchema, i))
			}
			if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(names, ", ")); err != nil &&
				!strings.Contains(err.Error(), "does not exist") {
				return err
			}
		}
		for _, s := range []string{discBenchMetaSchema, discBenchProfSchema} {
			if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+s+" CASCADE"); err != nil {
				return err
			}
		}
		return nil
	}
	if err := cleanup(); err != nil {
		return fmt.Errorf("clean up earlier run: %w", err)
	}
	defer cleanup() //nolint:errcheck

	slog.Info("preparing discovery tables", "tables", discBenchTables)
	setup := []string{`CREATE SCHEMA ` + discBenchMetaSchema}
	for lo := 1; lo <= discBenchTables; lo += 250 {
		setup = append(setup, fmt.Sprintf(`DO $$
BEGIN
  FOR i IN %d..%d LOOP
    EXECUTE format('CREATE TABLE %s.%%I (id bigint PRIMARY KEY, name text, email text, amount numeric(12,2),
      qty int, active boolean, created_at timestamptz, note varchar(200), code char(3), payload jsonb)', 't_' || i);
    IF i %% 10 = 0 THEN
      EXECUTE format('COMMENT ON COLUMN %s.%%I.email IS %%L', 't_' || i, 'contact address');
    END IF;
  END LOOP;
END $$`, lo, min(lo+249, discBenchTables), discBenchMetaSchema, discBenchMetaSchema))
	}
	setup = append(setup,
		`CREATE SCHEMA `+discBenchProfSchema,
		`CREATE TABLE `+discBenchProfSchema+`.t (id bigint PRIMARY KEY, name text, email text, created_at timestamptz,
		   amount numeric(12,2), qty int, active boolean, note text)`,
		fmt.Sprintf(`INSERT INTO %s.t
		   SELECT g, 'customer ' || g, 'user' || g || '@example.com', timestamptz '2024-01-01' + g * interval '1 second',
		          (g %% 1000000) / 100.0, g %% 1000, g %% 2 = 0, md5(g::text)
		   FROM generate_series(1, %d) g`, discBenchProfSchema, discBenchRows),
		`VACUUM ANALYZE `+discBenchProfSchema+`.t`,
	)
	for _, s := range setup {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%.60s...: %w", s, err)
		}
	}

	// 1. Metadata-only discovery of 2,000 tables.
	psqlCols := func() *exec.Cmd {
		return exec.Command("psql", dsn, "-qAtc",
			`SELECT * FROM information_schema.columns WHERE table_schema = '`+discBenchMetaSchema+`'`)
	}
	ourMeta := func() *exec.Cmd {
		return exec.Command(bin, "discover", "--dsn", dsn, "--include", discBenchMetaSchema+".*", "--profile=false")
	}
	var out []struct {
		Table  string `json:"table"`
		Schema struct {
			Fields []json.RawMessage `json:"fields"`
		} `json:"schema"`
	}
	if err := runJSON(ourMeta(), &out); err != nil {
		return err
	}
	cols := 0
	for _, t := range out {
		cols += len(t.Schema.Fields)
	}
	if len(out) != discBenchTables || cols != discBenchTables*10 {
		return fmt.Errorf("discover found %d tables and %d columns, want %d and %d", len(out), cols, discBenchTables, discBenchTables*10)
	}
	var base, ours []time.Duration
	for i := 0; i < discBenchReps; i++ {
		d, _, err := run(psqlCols())
		if err != nil {
			return err
		}
		base = append(base, d)
		d, _, err = run(ourMeta())
		if err != nil {
			return err
		}
		ours = append(ours, d)
		slog.Info("metadata discovery repetition", "i", i, "psql", base[i], "agentetl", ours[i])
	}
	b, o := median(base), median(ours)
	ratio := o.Seconds() / b.Seconds()
	verdict := "meets"
	if ratio > 5 {
		verdict = "MISSES"
	}
	fmt.Fprintf(&r.b, "## Discovery: metadata of %d tables x 10 columns\n\n", discBenchTables)
	fmt.Fprintf(&r.b, "`bin/agentetl discover --profile=false --include '%s.*'` (whole process: start, 3 catalog queries, JSON out) against\n", discBenchMetaSchema)
	fmt.Fprintf(&r.b, "`psql -Atc \"SELECT * FROM information_schema.columns WHERE table_schema = '%s'\"`, median of %d alternating runs; the discover output was checked for %d tables and %d columns.\n\n", discBenchMetaSchema, discBenchReps, discBenchTables, discBenchTables*10)
	fmt.Fprintf(&r.b, "| side | median time |\n|---|---|\n")
	fmt.Fprintf(&r.b, "| psql information_schema.columns (baseline) | %.3f s |\n", b.Seconds())
	fmt.Fprintf(&r.b, "| agentetl discover --profile=false | %.3f s |\n\n", o.Seconds())
	fmt.Fprintf(&r.b, "Ratio (agentetl / psql): **%.2f** (target <= 5): %s.\n\n", ratio, verdict)
	r.sum(summaryRow{Figure: fmt.Sprintf("discovery: metadata of %d tables", discBenchTables), Ours: fmt.Sprintf("%.2f s", o.Seconds()),
		Baseline: fmt.Sprintf("psql information_schema %.2f s", b.Seconds()), Ratio: fmt.Sprintf("%.2f", ratio), Target: "<= 5", Met: ratio <= 5})

	// 2. Profiling a 1,000,000-row table against one full read.
	table := discBenchProfSchema + ".t"
	psqlRead := func() *exec.Cmd { return exec.Command("psql", dsn, "-c", "SELECT * FROM "+table) }
	ourProf := func() *exec.Cmd {
		return exec.Command(bin, "discover", "--dsn", dsn, "--include", table)
	}
	var prof []struct {
		Stats struct {
			RowCount     int64                      `json:"rowCount"`
			Sampled      bool                       `json:"sampled"`
			SampleMethod string                     `json:"sampleMethod"`
			SampleSize   int64                      `json:"sampleSize"`
			Fields       map[string]json.RawMessage `json:"fields"`
		} `json:"stats"`
	}
	if err := runJSON(ourProf(), &prof); err != nil {
		return err
	}
	if len(prof) != 1 || len(prof[0].Stats.Fields) != 8 {
		return fmt.Errorf("discover profiled %d tables, want 1 with 8 field profiles", len(prof))
	}
	base, ours = nil, nil
	var peak int64
	for i := 0; i < discBenchReps; i++ {
		d, _, err := run(psqlRead())
		if err != nil {
			return err
		}
		base = append(base, d)
		d, rss, err := run(ourProf())
		if err != nil {
			return err
		}
		ours = append(ours, d)
		peak = max(peak, rss)
		slog.Info("profile repetition", "i", i, "psql_full_read", base[i], "agentetl", ours[i])
	}
	b, o = median(base), median(ours)
	verdict = "meets"
	if o >= b {
		verdict = "MISSES"
	}
	s := prof[0].Stats
	sampling := "the whole table (no sampling)"
	if s.Sampled {
		sampling = fmt.Sprintf("a sample of %d rows (%s) of an estimated %d", s.SampleSize, s.SampleMethod, s.RowCount)
	}
	fmt.Fprintf(&r.b, "## Discovery: profiling %d rows x 8 columns\n\n", discBenchRows)
	fmt.Fprintf(&r.b, "`bin/agentetl discover --include %s` (null fraction, distinct count, min, max, top-5, average length, semantic type and sample for every column) against one full read, `psql -c 'SELECT * FROM %s' > /dev/null`, median of %d alternating runs.\n\n", table, table, discBenchReps)
	fmt.Fprintf(&r.b, "| side | median time | peak RSS |\n|---|---|---|\n")
	fmt.Fprintf(&r.b, "| psql full read (baseline) | %.2f s | - |\n", b.Seconds())
	fmt.Fprintf(&r.b, "| agentetl discover (profile) | %.2f s | %d MB |\n\n", o.Seconds(), peak>>20)
	fmt.Fprintf(&r.b, "The profile was computed on %s. Ratio (agentetl / full read): **%.2f** (target < 1): %s.\n\n", sampling, o.Seconds()/b.Seconds(), verdict)
	r.sum(summaryRow{Figure: fmt.Sprintf("discovery: profile of %d rows", discBenchRows), Ours: fmt.Sprintf("%.2f s", o.Seconds()),
		Baseline: fmt.Sprintf("full read %.2f s", b.Seconds()), Ratio: fmt.Sprintf("%.2f", o.Seconds()/b.Seconds()), Target: "< 1", Met: o < b})
	return nil
}

// runJSON runs a command and decodes its stdout.
func runJSON(cmd *exec.Cmd, v any) error {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", cmd.Args[0], err, tail(stderr.String(), 2000))
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		return fmt.Errorf("%s: output is not the expected JSON: %w", cmd.Args[0], err)
	}
	return nil
}
