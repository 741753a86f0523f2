package webui

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

const decisionsPage = 100

type decisionsData struct {
	Agent, AgentID, Pipeline, Action string
	Since, Until                     string
	AgentTypes                       []model.AgentType
	Rows                             []model.AgentDecision
	Older                            string
	Message                          string
}

// timeLayouts are the forms the time filters accept: a datetime-local
// input's value (UTC) and RFC 3339.
var timeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339Nano, "2006-01-02"}

func parseFilterTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (use YYYY-MM-DDTHH:MM, UTC)", truncate(s, 40))
}

func (u *UI) decisions(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	d := decisionsData{Agent: q.Get("agent"), AgentID: strings.TrimSpace(q.Get("agentId")), Pipeline: strings.TrimSpace(q.Get("pipeline")),
		Action: strings.TrimSpace(q.Get("action")), Since: q.Get("since"), Until: q.Get("until"),
		AgentTypes: []model.AgentType{model.AgentDiscovery, model.AgentMapping, model.AgentResolution, model.AgentOrchestrator}}
	known := d.Agent == ""
	for _, t := range d.AgentTypes {
		known = known || string(t) == d.Agent
	}
	if !known {
		return httpErr(http.StatusBadRequest, "Unknown agent type %q.", truncate(d.Agent, 40))
	}
	since, err := parseFilterTime(d.Since)
	if err != nil {
		return httpErr(http.StatusBadRequest, "Since: %v", err)
	}
	until, err := parseFilterTime(d.Until)
	if err != nil {
		return httpErr(http.StatusBadRequest, "Until: %v", err)
	}
	// The "older" link pages by time: before is the timestamp of the last
	// row shown (exclusive).
	if b := q.Get("before"); b != "" {
		t, err := time.Parse(time.RFC3339Nano, b)
		if err != nil {
			return httpErr(http.StatusBadRequest, "before must be an RFC 3339 time.")
		}
		t = t.Add(-time.Microsecond)
		if until.IsZero() || t.Before(until) {
			until = t
		}
	}
	limit := decisionsPage + 1
	memFilter := d.AgentID != "" || d.Action != ""
	if memFilter {
		limit = 2000
	}
	ds, err := u.c.Store.ListAgentDecisions(r.Context(), metastore.DecisionFilter{AgentType: model.AgentType(d.Agent),
		PipelineID: d.Pipeline, Since: since, Until: until, Limit: limit})
	if err != nil {
		return fmt.Errorf("decisions: %w", err)
	}
	action := strings.ToLower(d.Action)
	for _, x := range ds {
		if d.AgentID != "" && x.AgentID != d.AgentID {
			continue
		}
		if action != "" && !strings.Contains(strings.ToLower(x.Action), action) {
			continue
		}
		if len(d.Rows) == decisionsPage {
			nq := url.Values{}
			for k, v := range q {
				if k != "before" {
					nq[k] = v
				}
			}
			nq.Set("before", d.Rows[len(d.Rows)-1].Timestamp.UTC().Format(time.RFC3339Nano))
			d.Older = "/ui/decisions?" + nq.Encode()
			break
		}
		x.Reasoning, x.Outcome = clean(x.Reasoning), clean(x.Outcome)
		d.Rows = append(d.Rows, x)
	}
	if memFilter && len(ds) == limit && d.Older == "" && len(d.Rows) > 0 {
		d.Message = fmt.Sprintf("Only the newest %d decisions were searched for the agent id or action; narrow the time range to see older ones.", limit)
	}
	return u.render(w, r, s, "decisions", "Decisions", "decisions", d)
}
