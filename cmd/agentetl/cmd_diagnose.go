package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/agentetl/agentetl/agents/resolution"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/redact"
)

func init() { extraCommands = append(extraCommands, diagnoseCommand()) }

// diagnoseCommand is `agentetl diagnose`: the Error Resolution Agent's
// diagnosis on the command line, one JSON line out per JSON line in.
func diagnoseCommand() *cli.Command {
	return &cli.Command{
		Name:      "diagnose",
		Usage:     "Classify pipeline errors (JSON lines on stdin) and print a diagnosis for each (JSON lines on stdout)",
		ArgsUsage: " ",
		Description: `Each input line is a PipelineError object; only "message" is required. Optional:
"errorType", "sqlstate", "component", "context" ({"record": ..., "sourceLocation": ...}),
"pipelineId", "id".

Each output line has category (connection, timeout, rate_limit, authentication, permission,
schema, data_type, constraint, conflict, poison, resource, configuration, unknown), transient,
strategy (retry, skip, adjust_config, escalate), confidence, fingerprint, template, reasoning,
evidence and similar past errors (with --store).

A line that is not a valid error object produces {"line": N, "error": "..."} on stdout and the
same message on stderr; the lines after it are still diagnosed, and the exit code is 1.

With --store the errors are recorded and their fingerprint history informs the diagnosis
(a fingerprint whose retries never succeeded is no longer proposed for retry).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "store", EnvVars: []string{"STORE_DSN"}, Usage: "metadata store for history (sqlite://path or postgres://...)"},
			&cli.StringFlag{Name: "rules", Usage: "YAML or JSON file with a list of rules ({name, when, strategy, category, reason})"},
			&cli.StringSliceFlag{Name: "adjustments", Value: cli.NewStringSlice("coerce", "shrink_batch"), Usage: "allowed adjustments"},
		},
		Action: runDiagnose,
	}
}

func runDiagnose(c *cli.Context) error {
	cfg := resolution.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if path := c.String("rules"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("diagnose: rules: %w", err)
		}
		var rules []resolution.Rule
		if err := yaml.Unmarshal(b, &rules); err != nil {
			return fmt.Errorf("diagnose: rules file %s: %w", path, err)
		}
		if cfg.Rules, err = resolution.CompileRules(rules); err != nil {
			return fmt.Errorf("diagnose: %w", err)
		}
	}
	adj, err := resolution.ParseAdjustments(c.StringSlice("adjustments"))
	if err != nil {
		return fmt.Errorf("diagnose: %w", err)
	}
	cfg.Adjustments = adj
	if dsn := c.String("store"); dsn != "" {
		st, err := metastore.Open(c.Context, dsn)
		if err != nil {
			return fmt.Errorf("diagnose: open store: %s", redact.String(err.Error()))
		}
		defer st.Close()
		cfg.Store = st
	}
	_, failed, err := resolution.DiagnoseLines(c.Context, resolution.New(cfg), os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		return fmt.Errorf("diagnose: %w", err)
	}
	if failed > 0 {
		return cli.Exit("", 1)
	}
	return nil
}
