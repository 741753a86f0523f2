package webui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
)

type stratRow struct {
	Name                string
	Attempts, Successes int64
	Rate                float64
	Width               int
}

type fpRow struct {
	Fingerprint, Template, Category string
	Count                           int64
	FirstSeen, LastSeen             time.Time
	Strategies                      []stratRow
	Pipelines                       []string
}

type catCount struct {
	Category string
	Count    int64
}

type dlPipeline struct {
	ID, Kind, Target string
	LastDead         int64
	LastRun          time.Time
}

type errorsData struct {
	Category, Pipeline string
	Rows               []fpRow
	Categories         []catCount
	DeadLetters        []dlPipeline
	ReplayOn           bool
}

func strategies(st map[string]metastore.StrategyStats) []stratRow {
	var out []stratRow
	for name, s := range st {
		row := stratRow{Name: name, Attempts: s.Attempts, Successes: s.Successes}
		if s.Attempts > 0 {
			row.Rate = float64(s.Successes) / float64(s.Attempts)
		}
		row.Width = int(clamp01(row.Rate)*60 + 0.5)
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Attempts != out[j].Attempts {
			return out[i].Attempts > out[j].Attempts
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func statsRow(fs metastore.FingerprintStats) fpRow {
	return fpRow{Fingerprint: fs.Fingerprint, Template: clean(fs.Template), Category: fs.Category, Count: fs.Count,
		FirstSeen: fs.FirstSeen, LastSeen: fs.LastSeen, Strategies: strategies(fs.Strategies)}
}

func (u *UI) errorsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := errorsData{Category: strings.TrimSpace(q.Get("category")), Pipeline: strings.TrimSpace(q.Get("pipeline")), ReplayOn: u.c.Replayer != nil}
	if d.Pipeline == "" {
		stats, err := u.c.Store.ListFingerprintStats(ctx, metastore.FingerprintFilter{Category: d.Category, Limit: 200})
		if err != nil {
			return fmt.Errorf("fingerprints: %w", err)
		}
		for _, fs := range stats {
			d.Rows = append(d.Rows, statsRow(fs))
		}
	} else {
		// Per pipeline: group its recent errors, then add each group's
		// history (strategies and their success).
		es, err := u.c.Store.ListPipelineErrors(ctx, metastore.ErrorFilter{PipelineID: d.Pipeline, Category: d.Category, Limit: 2000})
		if err != nil {
			return fmt.Errorf("errors: %w", err)
		}
		groups := map[string]*fpRow{}
		var order []string
		for _, e := range es {
			k := e.Fingerprint + "\x00" + e.Category
			g := groups[k]
			if g == nil {
				g = &fpRow{Fingerprint: e.Fingerprint, Category: e.Category, Template: clean(e.Message), FirstSeen: e.Timestamp, LastSeen: e.Timestamp}
				groups[k] = g
				order = append(order, k)
			}
			g.Count++
			if e.Timestamp.Before(g.FirstSeen) {
				g.FirstSeen = e.Timestamp
			}
			if e.Timestamp.After(g.LastSeen) {
				g.LastSeen = e.Timestamp
			}
		}
		for i, k := range order {
			g := groups[k]
			if g.Fingerprint != "" && i < 100 {
				if fs, err := u.c.Store.GetFingerprintStats(ctx, g.Fingerprint); err == nil {
					g.Template = clean(fs.Template)
					g.Strategies = strategies(fs.Strategies)
				}
			}
			d.Rows = append(d.Rows, *g)
		}
		sort.SliceStable(d.Rows, func(i, j int) bool { return d.Rows[i].Count > d.Rows[j].Count })
	}
	cats := map[string]int64{}
	for _, row := range d.Rows {
		cats[row.Category] += row.Count
	}
	for c, n := range cats {
		d.Categories = append(d.Categories, catCount{Category: c, Count: n})
	}
	sort.Slice(d.Categories, func(i, j int) bool { return d.Categories[i].Count > d.Categories[j].Count })
	for _, p := range u.c.Manager.List() {
		kind, target := orchestrator.DeadLetterKind(p.Config.ErrorHandling.DeadLetter)
		if p.Config.ErrorHandling.DeadLetter == "" || len(d.DeadLetters) >= 20 {
			continue
		}
		if d.Pipeline != "" && p.ID != d.Pipeline {
			continue
		}
		dl := dlPipeline{ID: p.ID, Kind: kind, Target: target}
		if xs, err := u.c.Store.ListExecutions(ctx, p.ID, 1); err == nil && len(xs) > 0 {
			dl.LastDead, dl.LastRun = xs[0].DeadLetter, xs[0].StartedAt
		}
		d.DeadLetters = append(d.DeadLetters, dl)
	}
	return u.render(w, r, s, "errors", "Errors and dead letters", "errors", d)
}

type sampleRow struct {
	model.PipelineError
	Payload     string
	Resolutions []model.Resolution
}

type replayTarget struct {
	ID, Kind, Target string
	Replayable       bool
}

type fpData struct {
	Row        fpRow
	Last       string
	Samples    []sampleRow
	Targets    []replayTarget
	ReplayOn   bool
	Replayable bool
}

func (u *UI) fingerprint(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	fp := r.URL.Query().Get("fp")
	if fp == "" || len(fp) > 200 {
		return httpErr(http.StatusBadRequest, "Name a fingerprint: /ui/errors/fingerprint?fp=…")
	}
	d := fpData{ReplayOn: u.c.Replayer != nil}
	fs, err := u.c.Store.GetFingerprintStats(ctx, fp)
	switch {
	case err == nil:
		d.Row = statsRow(fs)
		d.Last = clean(fs.LastMessage)
	case errors.Is(err, metastore.ErrNotFound):
		d.Row = fpRow{Fingerprint: fp}
	default:
		return fmt.Errorf("fingerprint: %w", err)
	}
	es, err := u.c.Store.ListPipelineErrors(ctx, metastore.ErrorFilter{Fingerprint: fp, Limit: 200})
	if err != nil {
		return fmt.Errorf("errors: %w", err)
	}
	if len(es) == 0 && d.Row.Count == 0 {
		return httpErr(http.StatusNotFound, "No error has fingerprint %q.", truncate(fp, 80))
	}
	seen := map[string]bool{}
	var ids []string
	for i, e := range es {
		if !seen[e.PipelineID] && e.PipelineID != "" {
			seen[e.PipelineID] = true
			ids = append(ids, e.PipelineID)
		}
		if i >= 10 {
			continue
		}
		if d.Row.Category == "" {
			d.Row.Category = e.Category
		}
		e.Message, e.StackTrace = clean(e.Message), clean(e.StackTrace)
		e.Context.Transformation, e.Context.SourceLocation = clean(e.Context.Transformation), clean(e.Context.SourceLocation)
		row := sampleRow{PipelineError: e, Payload: prettyPayload(e.Context.Record)}
		row.Context.Record = nil
		if i < 5 && e.ID != "" {
			if rs, err := u.c.Store.ListResolutions(ctx, e.ID); err == nil {
				for j := range rs {
					for k := range rs[j].Actions {
						rs[j].Actions[k].Detail = clean(rs[j].Actions[k].Detail)
						rs[j].Actions[k].Params = nil
					}
				}
				row.Resolutions = rs
			}
		}
		d.Samples = append(d.Samples, row)
	}
	sort.Strings(ids)
	byID := map[string]orchestrator.Pipeline{}
	for _, p := range u.c.Manager.List() {
		if seen[p.ID] {
			byID[p.ID] = p
		}
	}
	for _, id := range ids {
		t := replayTarget{ID: id}
		if p, ok := byID[id]; ok && p.Config.ErrorHandling.DeadLetter != "" {
			t.Kind, t.Target = orchestrator.DeadLetterKind(p.Config.ErrorHandling.DeadLetter)
			t.Replayable = t.Kind != "subject"
		}
		d.Replayable = d.Replayable || t.Replayable
		d.Targets = append(d.Targets, t)
	}
	return u.render(w, r, s, "fingerprint", "Error "+truncate(fp, 16), "errors", d)
}

// replay re-sends the dead letters of one fingerprint of one pipeline
// through its destination.
func (u *UI) replay(w http.ResponseWriter, r *http.Request, s *session) error {
	pid, fp := r.PostFormValue("pipeline"), r.PostFormValue("fingerprint")
	back := "/ui/errors/fingerprint?" + url.Values{"fp": {fp}}.Encode()
	if fp == "" || len(fp) > 200 || pid == "" || len(pid) > 100 {
		return u.redirect(w, r, s, "/ui/errors", "error", "Choose a pipeline and a fingerprint to replay.")
	}
	if u.c.Replayer == nil {
		return u.redirect(w, r, s, back, "error", "Dead-letter replay is not available in this orchestrator.")
	}
	n, err := u.c.Replayer.ReplayDeadLetters(r.Context(), pid, fp, u.c.ReplayLimit)
	if err != nil {
		status, msg := userMessage(err)
		if status >= 500 {
			msg = clean(err.Error())
		}
		return u.redirect(w, r, s, back, "error", "Replay failed: "+msg)
	}
	if n == 0 {
		return u.redirect(w, r, s, back, "info", fmt.Sprintf("Nothing to replay: pipeline %s has no pending dead letters with this fingerprint.", pid))
	}
	return u.redirect(w, r, s, back, "ok", fmt.Sprintf("Replayed %d dead-letter record(s) of pipeline %s.", n, pid))
}
