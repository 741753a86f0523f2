package main

import (
	"bufio"
	"fmt"
	"strings"
)

// summaryRow is one figure of the report's summary table: what we
// measured, the baseline measured beside it in the same run, their ratio,
// the target the issue sets, and whether it was met.
type summaryRow struct {
	Figure, Ours, Baseline, Ratio, Target string
	Met                                   bool
}

// sum adds a row to the summary table printed at the top of the report.
func (r *report) sum(row summaryRow) { r.rows = append(r.rows, row) }

func (r *report) summaryTable() string {
	var b strings.Builder
	b.WriteString("## Summary\n\n| figure | agentetl | baseline (same run) | ratio | target | |\n|---|---|---|---|---|---|\n")
	for _, s := range r.rows {
		v := "meets"
		if !s.Met {
			v = "**misses**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s.Figure, s.Ours, s.Baseline, s.Ratio, s.Target, v)
	}
	b.WriteString("\n")
	return b.String()
}

// summaryPrefix marks a summary row in the markdown of a benchmark that
// runs as its own command (the API and UI benchmarks): an HTML comment, so
// the command's own report renders unchanged.
const summaryPrefix = "<!-- summary: "

// importSummaries adds the summary rows found in md, written by another
// benchmark command as <!-- summary: figure | ours | baseline | ratio | target | met -->.
func (r *report) importSummaries(md string) {
	sc := bufio.NewScanner(strings.NewReader(md))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(l, summaryPrefix) || !strings.HasSuffix(l, "-->") {
			continue
		}
		f := strings.Split(strings.TrimSuffix(strings.TrimPrefix(l, summaryPrefix), "-->"), "|")
		if len(f) != 6 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		r.sum(summaryRow{Figure: f[0], Ours: f[1], Baseline: f[2], Ratio: f[3], Target: f[4], Met: f[5] == "true"})
	}
}
