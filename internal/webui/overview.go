package webui

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/orchestrator/autoloop"
)

// overviewRows is how many pipelines the overview lists per page.
const overviewRows = 20

type overviewData struct {
	Now         time.Time
	Total       int
	ByState     map[string]int
	ByType      map[string]int
	RunningRuns int
	Rows        []pipelineRow
	Pager       pager
	Agents      []orch.AgentInfo
	Workload    []orch.Workload
	LoopOn      bool
	Reviews     []autoloop.Review
	ReviewCount int
	Escalations []model.AgentDecision
}

func (u *UI) overviewData(ctx context.Context, r *http.Request) (overviewData, error) {
	d := overviewData{Now: time.Now().UTC(), ByState: map[string]int{}, ByType: map[string]int{}, LoopOn: u.c.Reviews != nil}
	all := u.c.Manager.List()
	d.Total = len(all)
	// Pipelines that run, then paused ones, then the rest: what needs an
	// eye comes first. Paginated, so the page stays small with any count.
	running := map[string]bool{}
	for _, p := range all {
		d.ByState[p.State]++
		d.ByType[p.Config.Type]++
		if _, ok := u.c.Manager.Running(p.ID); ok {
			running[p.ID] = true
			d.RunningRuns++
		}
	}
	rank := func(p orchestrator.Pipeline) int {
		switch {
		case running[p.ID]:
			return 0
		case p.State != orchestrator.StateActive:
			return 1
		}
		return 2
	}
	sort.SliceStable(all, func(i, j int) bool { return rank(all[i]) < rank(all[j]) })
	d.Pager = newPager(r, len(all), overviewRows)
	lo, hi := d.Pager.bounds(overviewRows)
	d.Rows = u.pipelineRows(ctx, all[lo:hi])
	if u.c.Coordinator != nil {
		d.Agents = u.c.Coordinator.Agents()
		d.Workload = u.c.Coordinator.Workload()
	}
	if u.c.Reviews != nil {
		rs, err := u.c.Reviews.Reviews(ctx, autoloop.ReviewPending)
		if err != nil {
			return d, err
		}
		d.ReviewCount = len(rs)
		if len(rs) > 10 {
			rs = rs[:10]
		}
		d.Reviews = rs
	}
	esc, err := u.escalations(ctx, d.Now.Add(-24*time.Hour), 20)
	if err != nil {
		return d, err
	}
	d.Escalations = esc
	return d, nil
}

// escalations are the decisions that handed a problem to a human: the
// error-resolution agent's escalate strategy and the mapping reviews.
func (u *UI) escalations(ctx context.Context, since time.Time, limit int) ([]model.AgentDecision, error) {
	var out []model.AgentDecision
	for _, at := range []model.AgentType{model.AgentResolution, model.AgentMapping} {
		ds, err := u.c.Store.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: at, Since: since, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Action == model.StrategyEscalate || strings.Contains(d.Outcome, "escalat") || d.Action == "mapping_review_requested" {
				d.Reasoning = clean(d.Reasoning)
				out = append(out, d)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timestamp.After(out[j].Timestamp) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (u *UI) overview(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := u.overviewData(r.Context(), r)
	if err != nil {
		return err
	}
	return u.render(w, r, s, "overview", "Overview", "overview", d)
}

func (u *UI) overviewLive(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := u.overviewData(r.Context(), r)
	if err != nil {
		return err
	}
	return u.renderFragment(w, s, "overview", "overview-live", d)
}
