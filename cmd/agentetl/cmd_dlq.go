package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/plugins/resolution"
)

func init() { extraCommands = append(extraCommands, dlqCommand()) }

// dlqCommand is `agentetl dlq`: work with dead letters.
func dlqCommand() *cli.Command {
	return &cli.Command{
		Name:  "dlq",
		Usage: "Work with the dead letters of the error_resolution components",
		Subcommands: []*cli.Command{{
			Name:      "replay",
			Usage:     "Re-send pending dead letters through their pipeline and mark them replayed",
			ArgsUsage: " ",
			Description: `Reads the dead letters that are not yet replayed (optionally only one fingerprint) and sends
them, with their original metadata, through the pipeline given by --config (or stored under
--pipeline in --store): its input is replaced by the dead letters, its processors and output
are used as they are. Each chunk is marked replayed only after the pipeline acknowledged it,
so replaying twice does not duplicate rows. A record that fails again is resolved by the
pipeline again (for example dead-lettered anew, with a new id) and its old entry is marked
replayed. Prints {"replayed": N}.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "store", EnvVars: []string{"STORE_DSN"}, Usage: "metadata store (records the replay; holds the pipeline config with --pipeline)"},
				&cli.StringFlag{Name: "dlq", Required: true, Usage: "dead letters: postgres:// DSN (with --dlq-table) or a JSON Lines file"},
				&cli.StringFlag{Name: "dlq-table", EnvVars: []string{"DLQ_TABLE"}, Usage: "dead-letter table for a postgres --dlq"},
				&cli.StringFlag{Name: "fingerprint", Usage: "replay only this error fingerprint"},
				&cli.StringFlag{Name: "pipeline", Usage: "replay only this pipeline's dead letters; without --config its config is read from --store"},
				&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "pipeline config YAML to re-send through (environment variables are interpolated)"},
				&cli.IntFlag{Name: "limit", Usage: "replay at most this many records (0: all)"},
				&cli.IntFlag{Name: "chunk", Value: 500, Usage: "records per acknowledged chunk"},
			},
			Action: runDLQReplay,
		}},
	}
}

func runDLQReplay(c *cli.Context) error {
	opts := resolution.ReplayOptions{
		Store: c.String("store"), DLQ: c.String("dlq"), DLQTable: c.String("dlq-table"),
		Fingerprint: c.String("fingerprint"), PipelineID: c.String("pipeline"),
		Limit: c.Int("limit"), Chunk: c.Int("chunk"),
	}
	if path := c.String("config"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("dlq replay: %w", err)
		}
		opts.ConfigYAML = string(b)
	}
	res, err := resolution.ReplayDeadLetters(c.Context, opts)
	out, _ := json.Marshal(res)
	fmt.Fprintln(os.Stdout, string(out))
	if err != nil {
		return fmt.Errorf("dlq replay: %s", redact.String(err.Error()))
	}
	return nil
}
