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
		prec := float64(acc) / float64(max(total, 1))
		r.sum(summaryRow{Figure: "mapping: precision of accepted proposals", Ours: fmt.Sprintf("%.3f (%d/%d)", prec, acc, total),
			Baseline: "-", Ratio: "-", Target: ">= 0.90", Met: prec >= 0.9})
		for _, d := range datasetScores(string(out)) {
			r.sum(summaryRow{Figure: "mapping accuracy: " + d[0], Ours: d[1], Baseline: "ground truth", Ratio: "-", Target: "reported", Met: true})
		}
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
		if b.name == "Map200x200" {
			if ns := nsPerOp(out, "Map200x200"); ns > 0 {
				r.sum(summaryRow{Figure: "mapping 200 x 200 columns", Ours: fmt.Sprintf("%.1f ms", ns/1e6), Baseline: "-", Ratio: "-",
					Target: "< 200 ms", Met: ns < 200e6})
			}
		}
		if b.name == "ApplyVsMapping" {
			m := recordsPerSec(out, "mapping")
			s := recordsPerSec(out, "schema_mapping")
			if m > 0 {
				fmt.Fprintf(&r.b, "Ratio schema_mapping / mapping: **%.2f**.\n", s/m)
				r.sum(summaryRow{Figure: "schema_mapping vs mapping (records/s)", Ours: fmt.Sprintf("%.0f/s", s), Baseline: fmt.Sprintf("mapping %.0f/s", m),
					Ratio: fmt.Sprintf("%.2f", s/m), Target: ">= 0.80", Met: s/m >= 0.8})
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

// datasetScores reads score.py's table: for each dataset (and ALL) its F1
// and R@GT, as [name, "F1 x, R@GT y (n cases)"].
func datasetScores(out string) [][2]string {
	var rows [][2]string
	header := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "dataset" {
			header = true
			continue
		}
		if !header || len(f) < 13 || strings.HasPrefix(f[0], "---") {
			continue
		}
		rows = append(rows, [2]string{f[0], fmt.Sprintf("F1 %s, R@GT %s (%s cases)", f[7], f[8], f[1])})
	}
	return rows
}

// nsPerOp reads the ns/op of a benchmark from go test output.
func nsPerOp(out []byte, name string) float64 {
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark"+name) && f[3] == "ns/op" {
			var v float64
			fmt.Sscanf(f[2], "%g", &v)
			return v
		}
	}
	return 0
}
