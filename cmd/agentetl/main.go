// Command agentetl is the agentetl engine: the Benthos CLI (run, streams,
// lint, test, list, echo, blobl) with our plugins linked in.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"

	"github.com/agentetl/agentetl/internal/redact"
	"github.com/agentetl/agentetl/internal/runctl"
	"github.com/agentetl/agentetl/internal/yamlcheck"
	_ "github.com/agentetl/agentetl/plugins/discovery"
	_ "github.com/agentetl/agentetl/plugins/kafka"
	_ "github.com/agentetl/agentetl/plugins/mapping"
	_ "github.com/agentetl/agentetl/plugins/nats"
	_ "github.com/agentetl/agentetl/plugins/postgres"
	_ "github.com/agentetl/agentetl/plugins/prometheus"
	_ "github.com/agentetl/agentetl/plugins/resolution"
	_ "github.com/agentetl/agentetl/plugins/sqlite"
)

// extraCommands are our own subcommands (discover, map, diagnose, ...). Each
// lives in its own cmd_*.go file and appends itself here from init, so adding
// a command never touches this file.
var extraCommands []*cli.Command

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

// DateBuilt is set at build time.
var DateBuilt = "unknown"

func benthosVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/redpanda-data/benthos/v4" {
				return d.Version
			}
		}
	}
	return "unknown"
}

// isRun reports whether the command line runs a single bounded pipeline: the
// default command or `run`, as opposed to streams, lint, test and the rest.
func isRun(args []string) bool {
	for _, a := range args[1:] {
		switch a {
		case "run":
			return true
		case "streams", "lint", "test", "list", "echo", "blobl", "create", "template", "help", "--help", "-h", "--version", "-v":
			return false
		}
		for _, c := range extraCommands {
			if a == c.Name {
				return false
			}
		}
	}
	return true // no subcommand: Benthos runs the default config
}

// checkYAMLSyntax runs before Benthos for commands that read config files,
// so that a YAML syntax error is reported at its real line and column (see
// internal/yamlcheck for why Benthos alone cannot).
func checkYAMLSyntax(args []string) bool {
	if len(args) < 2 {
		return true
	}
	switch args[1] {
	case "lint", "run", "streams", "test", "echo":
	default:
		if !isRun(args) {
			return true
		}
	}
	var paths []string
	for _, a := range args[1:] {
		if strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".yml") || strings.HasSuffix(a, "...") {
			paths = append(paths, a)
		}
	}
	errs := yamlcheck.Paths(paths)
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, e.Error())
	}
	return len(errs) == 0
}

func main() {
	if !checkYAMLSyntax(os.Args) {
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// AGENTETL_CPUPROFILE writes a CPU profile of the whole process, for
	// looking at benchmark runs without changing their configs.
	if path := os.Getenv("AGENTETL_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	if isRun(os.Args) {
		runctl.Enable(cancel)
	}
	done := make(chan struct{})
	go func() {
		// A stream told to stop because of a permanent error gets a short
		// grace period to release what it holds; then we exit regardless.
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			fmt.Fprintln(os.Stderr, "agentetl: error:", redact.String(runctl.Err().Error()))
			os.Exit(3)
		}
	}()
	opts := []service.CLIOptFunc{
		service.CLIOptSetBinaryName("agentetl"),
		service.CLIOptSetProductName("agentetl"),
		service.CLIOptSetVersion(Version+" (benthos "+benthosVersion()+")", DateBuilt),
		service.CLIOptSetDocumentationURL("https://github.com/agentetl/agentetl"),
	}
	for _, c := range extraCommands {
		opts = append(opts, service.CLIOptAddCommand(c))
	}
	code, err := service.RunCLIToCode(ctx, opts...)
	close(done)
	if err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
	}
	if ferr := runctl.Err(); ferr != nil {
		fmt.Fprintln(os.Stderr, "agentetl: error:", redact.String(ferr.Error()))
		if code == 0 {
			code = 3
		}
	}
	pprof.StopCPUProfile()
	if len(os.Args) > 1 && os.Args[1] == "blobl" {
		// Benthos' blobl command returns while its printing goroutine may
		// still hold the last result (internal/cli/blobl: the results
		// channel is closed without waiting for the printer), so an
		// immediate exit sometimes loses the final line. Give it a moment.
		time.Sleep(100 * time.Millisecond)
	}
	os.Exit(code)
}
