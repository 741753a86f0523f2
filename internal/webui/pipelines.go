package webui

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/redact"
)

// pageSize is the number of rows of every paginated list.
const pageSize = 50

// pager is the state of a paginated list.
type pager struct {
	Page, Pages, Total int
	Prev, Next         string
}

func newPager(r *http.Request, total, size int) pager {
	p := pager{Page: 1, Total: total, Pages: max(1, (total+size-1)/size)}
	if n, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && n > 1 {
		p.Page = min(n, p.Pages)
	}
	link := func(n int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		return r.URL.Path + "?" + q.Encode()
	}
	if p.Page > 1 {
		p.Prev = link(p.Page - 1)
	}
	if p.Page < p.Pages {
		p.Next = link(p.Page + 1)
	}
	return p
}

func (p pager) bounds(size int) (int, int) {
	lo := (p.Page - 1) * size
	return lo, min(lo+size, p.Total)
}

// pipelineRow is one pipeline in a list, with its last run.
type pipelineRow struct {
	ID, Name, Type, State string
	Version               int
	Schedule              string
	Last                  *metastore.Execution
	Running               bool
	RowsPerSec            float64
	ErrorRate             float64
	Duration              time.Duration
	// Live is set for a stream pipeline whose engine counters were read:
	// RowsPerSec and ErrorRate are then averages since the stream started.
	Live bool
}

// execStats derives rows per second, error rate and duration of a run.
func execStats(ex metastore.Execution) (rps, errRate float64, d time.Duration) {
	end := time.Now()
	if ex.FinishedAt != nil {
		end = *ex.FinishedAt
	}
	d = end.Sub(ex.StartedAt)
	if d > 0 {
		rps = float64(ex.RowsOut) / d.Seconds()
	}
	bad := float64(ex.Errors + ex.DeadLetter)
	switch {
	case ex.RowsIn > 0:
		errRate = math.Min(1, bad/float64(ex.RowsIn))
	case bad > 0:
		errRate = 1
	}
	return rps, errRate, d
}

func (u *UI) pipelineRows(ctx context.Context, ps []orchestrator.Pipeline) []pipelineRow {
	rows := make([]pipelineRow, 0, len(ps))
	for _, p := range ps {
		row := pipelineRow{ID: p.ID, Name: p.Config.Name, Type: p.Config.Type, State: p.State, Version: p.Version}
		if p.Config.Schedule != nil {
			row.Schedule = p.Config.Schedule.Cron
		}
		if p.Config.Type == orchestrator.TypeBatch {
			if ex, ok := u.c.Manager.Running(p.ID); ok {
				row.Last, row.Running = &ex, true
			} else if xs, err := u.c.Store.ListExecutions(ctx, p.ID, 1); err == nil && len(xs) > 0 {
				row.Last = &xs[0]
			}
			if row.Last != nil {
				row.RowsPerSec, row.ErrorRate, row.Duration = execStats(*row.Last)
			}
		}
		rows = append(rows, row)
	}
	u.streamRates(ctx, rows)
	return rows
}

// streamRates fills rows/s and error rate of the stream pipelines in rows
// from the engine's counters, read concurrently with a short deadline so a
// busy or restarting engine cannot slow the page down; a stream whose
// counters cannot be read shows none.
func (u *UI) streamRates(ctx context.Context, rows []pipelineRow) {
	ctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for i := range rows {
		if rows[i].Type != orchestrator.TypeStream || rows[i].State != orchestrator.StateActive {
			continue
		}
		wg.Add(1)
		go func(r *pipelineRow) {
			defer wg.Done()
			st, err := u.c.Manager.StreamStats(ctx, r.ID)
			if err != nil || st.Uptime <= 0 {
				return
			}
			r.Live = true
			r.RowsPerSec = float64(st.RowsOut) / st.Uptime.Seconds()
			if st.RowsIn > 0 {
				r.ErrorRate = float64(st.OutputErrors+st.ProcessorErrors) / float64(st.RowsIn)
			}
		}(&rows[i])
	}
	wg.Wait()
}

type pipelinesData struct {
	Q, State, Type string
	Rows           []pipelineRow
	Pager          pager
	Counts         map[string]int
}

func (u *UI) pipelines(w http.ResponseWriter, r *http.Request, s *session) error {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	state, typ := r.URL.Query().Get("state"), r.URL.Query().Get("type")
	all := u.c.Manager.List()
	counts := map[string]int{"all": len(all)}
	var sel []orchestrator.Pipeline
	for _, p := range all {
		counts[p.State]++
		if state != "" && p.State != state || typ != "" && p.Config.Type != typ {
			continue
		}
		if q != "" && !strings.Contains(p.ID, q) && !strings.Contains(strings.ToLower(p.Config.Name), q) {
			continue
		}
		sel = append(sel, p)
	}
	pg := newPager(r, len(sel), pageSize)
	lo, hi := pg.bounds(pageSize)
	d := pipelinesData{Q: r.URL.Query().Get("q"), State: state, Type: typ, Pager: pg, Counts: counts,
		Rows: u.pipelineRows(r.Context(), sel[lo:hi])}
	return u.render(w, r, s, "pipelines", "Pipelines", "pipelines", d)
}

type versionRow struct {
	Version   int
	State     string
	Comment   string
	CreatedAt time.Time
	Selected  bool
}

type execRow struct {
	metastore.Execution
	RowsPerSec float64
	ErrorRate  float64
	Duration   time.Duration
}

type pipelineData struct {
	P          orchestrator.Pipeline
	ConfigYAML string
	Running    *metastore.Execution
	// RunningData is the live panel of the running execution.
	RunningData *execData
	NextRun     time.Time
	Versions    []versionRow
	MoreVers    int
	DiffFrom    int
	DiffTo      int
	Diff        string
	ConfigDiff  string
	Execs       []execRow
	Charts      []Chart
	DeadLetter  string
	Replayable  bool
}

func (u *UI) pipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	p, err := u.c.Manager.Get(ctx, id)
	if err != nil {
		return err
	}
	d := pipelineData{P: p, NextRun: u.c.Manager.NextRun(id)}
	if d.ConfigYAML, err = configYAML(p.Config); err != nil {
		return fmt.Errorf("render config: %w", err)
	}
	if p.Engine != nil {
		p.Engine.Error = clean(p.Engine.Error)
	}
	if ex, ok := u.c.Manager.Running(id); ok {
		d.Running = &ex
		ex.Message = clean(ex.Message)
		ed := execData{X: ex, Running: true, Pipeline: id}
		ed.RowsPerSec, ed.ErrorRate, ed.Duration = execStats(ex)
		d.RunningData = &ed
	}
	kind, v := orchestrator.DeadLetterKind(p.Config.ErrorHandling.DeadLetter)
	if p.Config.ErrorHandling.DeadLetter != "" {
		d.DeadLetter = kind + " " + v
		d.Replayable = kind != "subject"
	}
	// Versions: newest first; the diff compares the selected version with
	// the one before it.
	hist, err := u.c.Store.PipelineConfigHistory(ctx, id)
	if err != nil {
		return fmt.Errorf("version history: %w", err)
	}
	sel := p.Version
	if n, err := strconv.Atoi(r.URL.Query().Get("v")); err == nil && n >= 1 && n <= p.Version {
		sel = n
	}
	var cur, prev *metastore.PipelineConfigVersion
	for i := range hist {
		h := &hist[i]
		if h.Version == sel {
			cur = h
		}
		if h.Version == sel-1 {
			prev = h
		}
		if len(d.Versions) < 100 {
			d.Versions = append(d.Versions, versionRow{Version: h.Version, State: h.State, Comment: clean(h.Comment),
				CreatedAt: h.CreatedAt, Selected: h.Version == sel})
		} else {
			d.MoreVers++
		}
	}
	if cur != nil && prev != nil {
		d.DiffFrom, d.DiffTo = prev.Version, cur.Version
		d.Diff = orchestrator.UnifiedDiff(redact.String(prev.YAML), redact.String(cur.YAML),
			fmt.Sprintf("%s v%d", id, prev.Version), fmt.Sprintf("%s v%d", id, cur.Version))
		a, _ := configYAML(orchestrator.RedactConfig(prev.Config))
		b, _ := configYAML(orchestrator.RedactConfig(cur.Config))
		d.ConfigDiff = orchestrator.UnifiedDiff(a, b, fmt.Sprintf("config v%d", prev.Version), fmt.Sprintf("config v%d", cur.Version))
	}
	if p.Config.Type == orchestrator.TypeBatch {
		xs, err := u.c.Manager.Executions(ctx, id, 50)
		if err != nil {
			return err
		}
		for _, x := range xs {
			x.Message = clean(x.Message)
			rps, er, dur := execStats(x)
			d.Execs = append(d.Execs, execRow{Execution: x, RowsPerSec: rps, ErrorRate: er, Duration: dur})
		}
		d.Charts = execCharts(d.Execs)
	}
	return u.render(w, r, s, "pipeline", "Pipeline "+id, "pipelines", d)
}

// execCharts draws throughput, errors and dead letters, and latency of
// the runs, oldest to newest.
func execCharts(xs []execRow) []Chart {
	var thr, errs, dls, lat []point
	for i := len(xs) - 1; i >= 0; i-- {
		x := xs[i]
		short := x.ID
		if len(short) > 8 {
			short = short[:8]
		}
		t := x.StartedAt
		label := func(v string) string { return fmt.Sprintf("%s run %s (%s): %s", fmtTime(t), short, x.Status, v) }
		thr = append(thr, point{T: t, V: x.RowsPerSec, Label: label(compact(x.RowsPerSec) + " rows/s")})
		errs = append(errs, point{T: t, V: float64(x.Errors), Label: label(fmtNum(x.Errors) + " errors")})
		dls = append(dls, point{T: t, V: float64(x.DeadLetter), Label: label(fmtNum(x.DeadLetter) + " dead letters")})
		lat = append(lat, point{T: t, V: x.Duration.Seconds(), Label: label(fmtDuration(x.Duration))})
	}
	return []Chart{
		lineChart("chart-throughput", "Throughput per run", "rows/s", []seriesIn{{Name: "rows/s", Class: "s1", Points: thr}}),
		lineChart("chart-errors", "Errors and dead letters per run", "records", []seriesIn{
			{Name: "errors", Class: "s2", Points: errs}, {Name: "dead letters", Class: "s3", Points: dls}}),
		lineChart("chart-latency", "Run duration (latency)", "s", []seriesIn{{Name: "duration", Class: "s4", Points: lat}}),
	}
}

// ---- editing ----

type editData struct {
	ID      string
	New     bool
	Version int
	Text    string
	Comment string
	Result  lintResult
	DryRun  bool
	Error   string
}

const newPipelineTemplate = `id: my-pipeline
name: My pipeline
type: batch
source:
  type: postgres
  table: public.orders
  connection:
    dsn: ${SRC_DSN}
destination:
  type: postgres
  table: public.orders_copy
  connection:
    dsn: ${DST_DSN}
transformations: []
errorHandling:
  maxRetries: 3
`

func (u *UI) editPipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	p, err := u.c.Manager.Get(r.Context(), id)
	if err != nil {
		return err
	}
	text, err := configYAML(p.Config)
	if err != nil {
		return fmt.Errorf("render config: %w", err)
	}
	return u.render(w, r, s, "edit", "Edit "+id, "pipelines", editData{ID: id, Version: p.Version, Text: text})
}

func (u *UI) newPipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.render(w, r, s, "edit", "New pipeline", "pipelines", editData{New: true, Text: newPipelineTemplate})
}

func (u *UI) savePipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.saveConfig(w, r, s, r.PathValue("id"))
}

func (u *UI) saveNewPipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.saveConfig(w, r, s, "")
}

func (u *UI) saveConfig(w http.ResponseWriter, r *http.Request, s *session, id string) error {
	text := r.PostFormValue("config")
	d := editData{ID: id, New: id == "", Text: text, Comment: r.PostFormValue("comment")}
	d.Version, _ = strconv.Atoi(r.PostFormValue("version"))
	title := "Edit " + id
	if d.New {
		title = "New pipeline"
	}
	if len(d.Comment) > 500 {
		d.Comment = d.Comment[:500]
	}
	d.Result = u.check(id, text)
	op := r.PostFormValue("op")
	if op != "save" || d.Result.config == nil {
		d.DryRun = op == "dryrun"
		if op == "save" {
			w.WriteHeader(http.StatusBadRequest)
			d.Error = "Nothing was saved: fix the problems below first."
		}
		return u.render(w, r, s, "edit", title, "pipelines", d)
	}
	var (
		p   orchestrator.Pipeline
		err error
	)
	comment := "edited in the web UI"
	if d.Comment != "" {
		comment += ": " + d.Comment
	}
	if d.New {
		p, err = u.c.Manager.Create(r.Context(), *d.Result.config, comment)
	} else {
		p, err = u.c.Manager.Update(r.Context(), id, *d.Result.config, d.Version, comment)
	}
	if err != nil {
		status, msg := userMessage(err)
		if status >= 500 {
			return err
		}
		w.WriteHeader(status)
		d.Error = "Nothing was saved: " + clean(msg)
		return u.render(w, r, s, "edit", title, "pipelines", d)
	}
	msg := fmt.Sprintf("Saved pipeline %s as version %d.", p.ID, p.Version)
	switch {
	case p.Unchanged:
		msg = fmt.Sprintf("No change: pipeline %s stays at version %d.", p.ID, p.Version)
	case p.ApplyError != "":
		msg += " The engine could not take it yet (" + p.ApplyError + "); the reconciler retries."
	case p.Config.Type == orchestrator.TypeStream && p.State == orchestrator.StateActive:
		msg += " The engine hot-reloaded its stream."
	}
	return u.redirect(w, r, s, "/ui/pipelines/"+url.PathEscape(p.ID), "ok", msg)
}

// lint is the live-lint endpoint: the editor's script posts the text as
// it is typed and shows the answer.
func (u *UI) lint(w http.ResponseWriter, r *http.Request, s *session) error {
	res := u.check(r.PostFormValue("id"), r.PostFormValue("config"))
	return writeJSON(w, http.StatusOK, res)
}

// ---- actions ----

func (u *UI) runPipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	ex, err := u.c.Manager.Run(r.Context(), id, "manual")
	if err != nil {
		return u.failBack(w, r, s, "/ui/pipelines/"+url.PathEscape(id), err)
	}
	if ex.Status == orchestrator.ExecFailed {
		return u.redirect(w, r, s, "/ui/executions/"+url.PathEscape(ex.ID), "error", "The run failed to start: "+ex.Message)
	}
	return u.redirect(w, r, s, "/ui/executions/"+url.PathEscape(ex.ID), "ok", "Run started.")
}

func (u *UI) setState(w http.ResponseWriter, r *http.Request, s *session, state string) error {
	id := r.PathValue("id")
	verb := map[string]string{orchestrator.StatePaused: "paused", orchestrator.StateActive: "resumed"}[state]
	p, err := u.c.Manager.SetState(r.Context(), id, state, verb+" in the web UI")
	back := "/ui/pipelines/" + url.PathEscape(id)
	if err != nil {
		return u.failBack(w, r, s, back, err)
	}
	msg := fmt.Sprintf("Pipeline %s %s.", id, verb)
	if p.ApplyError != "" {
		msg += " The engine could not take the change yet; the reconciler retries."
	}
	return u.redirect(w, r, s, back, "ok", msg)
}

func (u *UI) pausePipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.setState(w, r, s, orchestrator.StatePaused)
}

func (u *UI) resumePipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.setState(w, r, s, orchestrator.StateActive)
}

// schedulePipeline sets or clears the cron schedule as a new version.
func (u *UI) schedulePipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	back := "/ui/pipelines/" + url.PathEscape(id)
	pv, err := u.c.Store.GetPipelineConfig(r.Context(), id, 0)
	if err != nil {
		return u.failBack(w, r, s, back, err)
	}
	pc := pv.Config
	cronSpec, tz := strings.TrimSpace(r.PostFormValue("cron")), strings.TrimSpace(r.PostFormValue("timezone"))
	what := "schedule removed"
	if cronSpec == "" {
		pc.Schedule = nil
	} else {
		pc.Schedule = &model.Schedule{Cron: cronSpec, Timezone: tz}
		what = "schedule set to " + cronSpec
	}
	want, _ := strconv.Atoi(r.PostFormValue("version"))
	if want == 0 {
		want = pv.Version
	}
	p, err := u.c.Manager.Update(r.Context(), id, pc, want, what+" in the web UI")
	if err != nil {
		return u.failBack(w, r, s, back, err)
	}
	if p.Unchanged {
		return u.redirect(w, r, s, back, "info", "The schedule is unchanged.")
	}
	return u.redirect(w, r, s, back, "ok", fmt.Sprintf("Pipeline %s: %s (version %d).", id, what, p.Version))
}

// ---- executions ----

type execData struct {
	X          metastore.Execution
	RowsPerSec float64
	ErrorRate  float64
	Duration   time.Duration
	Running    bool
	Pipeline   string
}

func (u *UI) execData(ctx context.Context, id string) (execData, error) {
	x, err := u.c.Manager.Execution(ctx, id)
	if err != nil {
		return execData{}, err
	}
	x.Message = clean(x.Message)
	d := execData{X: x, Running: x.Status == orchestrator.ExecRunning, Pipeline: x.PipelineID}
	d.RowsPerSec, d.ErrorRate, d.Duration = execStats(x)
	return d, nil
}

func (u *UI) execution(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := u.execData(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return u.render(w, r, s, "execution", "Run of "+d.Pipeline, "pipelines", d)
}

func (u *UI) executionLive(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := u.execData(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return u.renderFragment(w, s, "execution", "exec-live", d)
}

func (u *UI) cancelExecution(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	back := "/ui/executions/" + url.PathEscape(id)
	if _, err := u.c.Manager.Cancel(r.Context(), id); err != nil {
		return u.failBack(w, r, s, back, err)
	}
	return u.redirect(w, r, s, back, "ok", "Run cancelled.")
}
