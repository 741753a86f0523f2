package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// mappingBench measures the schema mapping agent: accuracy on the shared
// schema-matching datasets through `agentetl map` and their own scorer, the
// precision of accepted proposals, the 200x200 mapping time, and the
// schema_mapping processor against a plain mapping processor.
func mappingBench(ctx context.Context, r *report, bin, datasets string) error {
	fmt.Fprintf(&r.b, "## Schema mapping\n\n")
	if _, err := os.Stat(filepath.Join(datasets, "score.py")); err != nil {
		fmt.Fprintf(&r.b, "Skipped accuracy: no datasets at %s (pass -schema-bench).\n\n", datasets)
	} else {
		absBin, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "python3", "score.py", "--all", ".", absBin+" map --source {source} --target {target}")
		cmd.Dir = datasets
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("score.py: %w\n%s", err, out)
		}
		fmt.Fprintf(&r.b, "Accuracy without an LLM, `python3 score.py --all . 'bin/agentetl map --source {source} --target {target}'` in `%s`:\n\n```\n%s```\n\n", datasets, out)
		acc, total, err := acceptedPrecision(ctx, absBin, datasets)
		if err != nil {
			return err
		}
		fmt.Fprintf(&r.b, "Precision of `accepted` proposals over all 52 cases: %d of %d correct, **%.3f** (target >= 0.90).\n\n", acc, total, float64(acc)/float64(max(total, 1)))
	}
	for _, b := range []struct{ pkg, name, what string }{
		{"./agents/mapping/", "Map200x200", "mapping a 200-column source against a 200-column target (target < 200 ms)"},
		{"./plugins/mapping/", "ApplyVsMapping", "`schema_mapping` apply mode against a plain `mapping` processor on the same generated Bloblang (target >= 0.8x)"},
	} {
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", b.name, "-benchtime", "2s", b.pkg)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go test -bench %s: %w\n%s", b.name, err, out)
		}
		fmt.Fprintf(&r.b, "`go test -run '^$' -bench %s -benchtime 2s %s`, %s:\n\n```\n%s```\n", b.name, b.pkg, b.what, benchLines(out))
		if b.name == "ApplyVsMapping" {
			m := recordsPerSec(out, "mapping")
			s := recordsPerSec(out, "schema_mapping")
			if m > 0 {
				fmt.Fprintf(&r.b, "Ratio schema_mapping / mapping: **%.2f**.\n", s/m)
			}
		}
		fmt.Fprintln(&r.b)
	}
	return nil
}

func benchLines(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

var recPerSec = regexp.MustCompile(`BenchmarkApplyVsMapping/(\S+?)(?:-\d+)?\s.*?([\d.]+) records/s`)

func recordsPerSec(out []byte, label string) float64 {
	for _, m := range recPerSec.FindAllStringSubmatch(string(out), -1) {
		if m[1] == label {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return 0
}

// acceptedPrecision counts accepted proposals that are ground-truth pairs.
func acceptedPrecision(ctx context.Context, bin, root string) (correct, total int, err error) {
	cases, err := filepath.Glob(filepath.Join(root, "*", "*", "truth.csv"))
	if err != nil {
		return 0, 0, err
	}
	for _, truthPath := range cases {
		dir := filepath.Dir(truthPath)
		truth, err := readTruth(truthPath)
		if err != nil {
			return 0, 0, err
		}
		cmd := exec.CommandContext(ctx, bin, "map", "--source", filepath.Join(dir, "source.json"), "--target", filepath.Join(dir, "target.json"))
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Run(); err != nil {
			return 0, 0, fmt.Errorf("agentetl map %s: %w", dir, err)
		}
		var props []struct {
			Source json.RawMessage `json:"sourceField"`
			Target string          `json:"targetField"`
			Status string          `json:"status"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &props); err != nil {
			return 0, 0, fmt.Errorf("agentetl map %s: %w", dir, err)
		}
		for _, p := range props {
			if p.Status != "accepted" {
				continue
			}
			var sources []string
			var one string
			if json.Unmarshal(p.Source, &one) == nil {
				sources = []string{one}
			} else if json.Unmarshal(p.Source, &sources) != nil {
				continue
			}
			for _, s := range sources {
				total++
				if truth[s+"\x00"+p.Target] {
					correct++
				}
			}
		}
	}
	return correct, total, nil
}

func readTruth(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]bool{}
	for i, r := range recs {
		if i == 0 || len(r) < 2 {
			continue
		}
		out[r[0]+"\x00"+r[1]] = true
	}
	return out, nil
}
