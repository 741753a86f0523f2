package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/redact"
)

func init() { extraCommands = append(extraCommands, discoverCommand()) }

// discoverCommand is `agentetl discover`: the Data Discovery Agent on the
// command line. Stdout carries only the JSON result; diagnostics and skipped
// tables go to stderr; a failure of the source exits non-zero with the DSN
// redacted.
func discoverCommand() *cli.Command {
	return &cli.Command{
		Name:      "discover",
		Usage:     "Discover the tables of a source: schemas, keys, descriptions and column profiles",
		ArgsUsage: " ",
		Description: `Connects to the source named by --dsn (postgres://, mysql://, sqlite://, file:// for a
directory of CSV and JSON Lines files, or kafka://b1:9092,b2:9092/?topics=a,b&sample=500), reads every table's metadata in a few bulk catalog
queries and profiles each column (large tables are sampled). Prints a JSON array with one
object per table: table, schema (fields: name, dataType, nullable, description),
stats.rowCount and stats.fields.<column> (nullFraction, distinctCount, min, max, topValues,
semanticType, ...). See the agents/discovery package documentation for every key.

--include and --exclude take glob patterns ('*' and '?', case-insensitive) matched against
schema.table and the bare table name; both may be repeated or comma-separated.

With --store the run is recorded in the metadata store: a new schema version for each table
whose structure changed, catalog entries with their profiles, and agent decisions. With
--changes (needs --store) the SchemaChange array against the previous version is printed
instead of the tables.

Tables that cannot be read (no SELECT privilege, timeout) are reported on stderr and
skipped; the others complete and the exit code stays 0.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dsn", Required: true, EnvVars: []string{"DISCOVER_DSN"}, Usage: "source to discover"},
			&cli.StringSliceFlag{Name: "include", Aliases: []string{"i"}, Usage: "table pattern to include (schema.table or table; * and ?)"},
			&cli.StringSliceFlag{Name: "exclude", Aliases: []string{"x"}, Usage: "table pattern to exclude"},
			&cli.StringFlag{Name: "store", EnvVars: []string{"STORE_DSN"}, Usage: "metadata store to record the run in (sqlite://path or postgres://...)"},
			&cli.BoolFlag{Name: "profile", Value: true, Usage: "profile columns (--profile=false: metadata only)"},
			&cli.BoolFlag{Name: "changes", Usage: "print the schema changes against the previous version instead of the tables (needs --store)"},
			&cli.StringFlag{Name: "source-id", Usage: "catalog id of the source (default: scheme://host:port/database of the DSN)"},
			&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "tables profiled at once"},
			&cli.DurationFlag{Name: "table-timeout", Value: time.Minute, Usage: "time limit for profiling one table"},
			&cli.Int64Flag{Name: "sample-rows", Value: 100_000, Usage: "tables with more rows are profiled on a sample of about this many"},
			&cli.IntFlag{Name: "top-k", Value: 5, Usage: "top values kept per column"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log progress to stderr"},
		},
		Action: runDiscover,
	}
}

func runDiscover(c *cli.Context) error {
	dsn := c.String("dsn")
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if c.Bool("changes") && c.String("store") == "" {
		return errors.New("discover: --changes needs --store: changes are computed against the catalog's previous version")
	}
	cfg := discovery.Config{
		DSN:          dsn,
		SourceID:     c.String("source-id"),
		Include:      c.StringSlice("include"),
		Exclude:      c.StringSlice("exclude"),
		MetadataOnly: !c.Bool("profile"),
		Concurrency:  c.Int("concurrency"),
		TableTimeout: c.Duration("table-timeout"),
		SampleRows:   c.Int64("sample-rows"),
		TopK:         c.Int("top-k"),
		Logger:       log,
	}
	var store metastore.Store
	if s := c.String("store"); s != "" {
		st, err := metastore.Open(c.Context, s)
		if err != nil {
			return fmt.Errorf("discover: open store: %s", redact.String(err.Error()))
		}
		defer st.Close()
		store = st
	}
	agent, err := discovery.New(cfg, store)
	if err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	defer agent.Close()
	res, err := agent.Run(c.Context)
	if err != nil {
		// SourceError messages already carry the redacted DSN; redact again
		// in case a driver echoed something secret-looking.
		return errors.New(redact.String(err.Error()))
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(os.Stderr, "discover: skipped %s: %s\n", s.Table, redact.String(s.Reason))
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	if c.Bool("changes") {
		err = writeJSONArray(out, len(res.Changes), func(i int) any { return res.Changes[i] })
	} else {
		err = writeJSONArray(out, len(res.Tables), func(i int) any { return res.Tables[i] })
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		return fmt.Errorf("discover: write output: %w", err)
	}
	return nil
}

// writeJSONArray prints a JSON array with one element per line, so that the
// output is both one JSON document and easy to grep.
func writeJSONArray(w io.Writer, n int, elem func(int) any) error {
	if n == 0 {
		_, err := io.WriteString(w, "[]\n")
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if _, err := io.WriteString(w, "[\n"); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		buf.Reset()
		if err := enc.Encode(elem(i)); err != nil {
			return err
		}
		b := bytes.TrimRight(buf.Bytes(), "\n")
		if i < n-1 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "]\n")
	return err
}
