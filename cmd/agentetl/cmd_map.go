package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/llm"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
)

func init() { extraCommands = append(extraCommands, mapCommand()) }

// mapCommand is `agentetl map`: it proposes field mappings between two
// schema files. Stdout carries only the result (JSON, Bloblang or SQL) so
// that it can be piped into scorers and files; every diagnostic goes to
// stderr and a failure exits non-zero.
func mapCommand() *cli.Command {
	return &cli.Command{
		Name:      "map",
		Usage:     "Propose field mappings from a source schema to a target schema",
		ArgsUsage: " ",
		Description: `Reads two Schema JSON documents ({"id","sourceId","version","fields":[{"name","dataType",
"nullable","description","samples"}]}) and prints one FieldMapping per target field.

Formats: json (default) prints the FieldMapping array; bloblang prints one
Bloblang program for the whole mapping; sql prints a PostgreSQL SELECT
expression list for a Postgres source; document prints both schemas, the
mappings and the program as one JSON document, which the schema_mapping
processor applies.

--llm re-ranks ambiguous candidates through an OpenAI-compatible endpoint
(OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL); without it, or when it
fails, the embedded matcher decides alone.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", Aliases: []string{"s"}, Required: true, Usage: "source schema JSON file (- for stdin)"},
			&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Required: true, Usage: "target schema JSON file"},
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "json", Usage: "output: json, bloblang, sql or document"},
			&cli.BoolFlag{Name: "llm", Usage: "re-rank ambiguous candidates with an LLM"},
			&cli.StringFlag{Name: "model", Usage: "LLM model (default $OPENAI_MODEL or " + llm.DefaultModel + ")"},
			&cli.StringFlag{Name: "store", Usage: "metadata store DSN (sqlite://... or postgres://...): earlier accepted and rejected mappings feed the history signal"},
			&cli.Float64Flag{Name: "accept", Value: mapping.DefaultAcceptThreshold, Usage: "confidence at which a mapping is accepted"},
			&cli.Float64Flag{Name: "review", Value: mapping.DefaultReviewThreshold, Usage: "confidence at which a mapping is proposed for review"},
		},
		Action: runMap,
	}
}

func runMap(c *cli.Context) error {
	format := strings.ToLower(c.String("format"))
	switch format {
	case "json", "bloblang", "sql", "document":
	default:
		return fmt.Errorf("map: --format must be json, bloblang, sql or document, not %q", format)
	}
	acc, rev := c.Float64("accept"), c.Float64("review")
	if acc <= 0 || acc > 1 || rev <= 0 || rev > acc {
		return errors.New("map: thresholds must satisfy 0 < --review <= --accept <= 1")
	}
	if c.String("source") == "-" && c.String("target") == "-" {
		return errors.New("map: only one of --source and --target can read stdin")
	}
	src, err := readSchemaFile(c.String("source"), c.App.Reader)
	if err != nil {
		return fmt.Errorf("map: source %s: %w", c.String("source"), err)
	}
	tgt, err := readSchemaFile(c.String("target"), c.App.Reader)
	if err != nil {
		return fmt.Errorf("map: target %s: %w", c.String("target"), err)
	}
	opts := mapping.Options{AcceptThreshold: acc, ReviewThreshold: rev}
	if c.Bool("llm") {
		client, err := llm.New(llm.ConfigFromEnv(c.String("model")))
		if err != nil {
			// Without an endpoint the matcher still works; say so once.
			fmt.Fprintln(os.Stderr, "map: warning:", err, "- continuing without the LLM")
		} else {
			opts.LLM = client
		}
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if dsn := c.String("store"); dsn != "" {
		h, err := loadHistory(ctx, dsn)
		if err != nil {
			return fmt.Errorf("map: metadata store %s: %w", redact.DSN(dsn), err)
		}
		opts.History = h
	}
	res, err := mapping.New(opts).Map(ctx, src, tgt)
	if err != nil {
		return fmt.Errorf("map: %w", err)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(os.Stderr, "map: note:", redact.String(n))
	}
	out := c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	switch format {
	case "bloblang":
		prog, err := mapping.Program(res)
		if err != nil {
			return fmt.Errorf("map: %w", err)
		}
		_, err = io.WriteString(out, prog)
		return err
	case "sql":
		q, err := mapping.SQL(res)
		if err != nil {
			return fmt.Errorf("map: %w", err)
		}
		_, err = io.WriteString(out, q)
		return err
	}
	var v any = res.Mappings
	if format == "document" {
		doc, err := res.Document()
		if err != nil {
			return fmt.Errorf("map: %w", err)
		}
		v = doc
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// loadHistory reads the mapping agent's recorded verdicts.
func loadHistory(ctx context.Context, dsn string) (*mapping.MemoryHistory, error) {
	st, err := metastore.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ds, err := st.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: model.AgentMapping})
	if err != nil {
		return nil, err
	}
	return mapping.HistoryFromDecisions(ds), nil
}

// readSchemaFile reads and validates one schema; "-" reads stdin.
func readSchemaFile(path string, stdin io.Reader) (model.Schema, error) {
	var data []byte
	var err error
	if path == "-" {
		if stdin == nil {
			stdin = os.Stdin
		}
		data, err = io.ReadAll(io.LimitReader(stdin, 256<<20))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return model.Schema{}, err
	}
	return mapping.ParseSchema(data)
}
