package webui

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator/autoloop"
)

type reviewRow struct {
	autoloop.Review
	Targets   int
	Proposals int
	MinConf   float64
}

type reviewsData struct {
	Status string
	LoopOn bool
	Counts map[string]int
	Rows   []reviewRow
	More   int
}

var reviewStatuses = []string{autoloop.ReviewPending, autoloop.ReviewApproved, autoloop.ReviewRejected}

func (u *UI) reviews(w http.ResponseWriter, r *http.Request, s *session) error {
	d := reviewsData{Status: r.URL.Query().Get("status"), LoopOn: u.c.Reviews != nil, Counts: map[string]int{}}
	if d.Status == "" {
		d.Status = autoloop.ReviewPending
	}
	valid := false
	for _, st := range reviewStatuses {
		valid = valid || st == d.Status
	}
	if !valid {
		return httpErr(http.StatusBadRequest, "Unknown review status %q.", truncate(d.Status, 40))
	}
	if u.c.Reviews != nil {
		all, err := u.c.Reviews.Reviews(r.Context(), "")
		if err != nil {
			return err
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].CreatedAt.After(all[j].CreatedAt) })
		for _, rv := range all {
			d.Counts[rv.Status]++
			if rv.Status != d.Status {
				continue
			}
			if len(d.Rows) >= 200 {
				d.More++
				continue
			}
			row := reviewRow{Review: rv, MinConf: 1}
			for i := range row.Reasons {
				row.Reasons[i] = clean(row.Reasons[i])
			}
			if rv.Document != nil {
				row.Targets = len(rv.Document.Mappings)
				for _, m := range rv.Document.Mappings {
					if m.Proposed() {
						row.Proposals++
						row.MinConf = math.Min(row.MinConf, m.Confidence)
					}
				}
			}
			if row.Proposals == 0 {
				row.MinConf = 0
			}
			d.Rows = append(d.Rows, row)
		}
	}
	return u.render(w, r, s, "reviews", "Mapping reviews", "reviews", d)
}

type signalView struct {
	Name  string
	Score float64
	Width int
}

type mapRow struct {
	Index          int
	Target         model.Field
	Sources        []string
	Status         string
	Proposed       bool
	Confidence     float64
	Signals        []signalView
	Transformation string
	MappingType    string
	Reasoning      string
	Best           *mapping.Candidate
}

// linkGraph is the side-by-side picture: source fields on the left,
// target fields on the right, one line per proposed link.
type linkGraph struct {
	W, H        int
	Left, Right []graphNode
	Links       []graphLink
}

type graphNode struct {
	Y     int
	Label string
	Title string
}

type graphLink struct {
	Y1, Y2 int
	Class  string
	Width  string
	Title  string
}

type reviewData struct {
	R         autoloop.Review
	Pending   bool
	Rows      []mapRow
	Sources   []model.Field
	Graph     linkGraph
	Program   string
	Reviewer  string
	Threshold string
}

// signalOrder is the order signals are shown in.
var signalOrder = []string{mapping.SignalName, mapping.SignalDescription, mapping.SignalType, mapping.SignalInstance,
	mapping.SignalHistory, mapping.SignalLLM, "derived"}

func signalsOf(m map[string]float64) []signalView {
	var out []signalView
	seen := map[string]bool{}
	for _, n := range signalOrder {
		if v, ok := m[n]; ok {
			out = append(out, signalView{Name: n, Score: v, Width: int(clamp01(v)*60 + 0.5)})
			seen[n] = true
		}
	}
	var rest []string
	for n := range m {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		out = append(out, signalView{Name: n, Score: m[n], Width: int(clamp01(m[n])*60 + 0.5)})
	}
	return out
}

func (u *UI) findReview(r *http.Request, id string) (autoloop.Review, error) {
	if u.c.Reviews == nil {
		return autoloop.Review{}, httpErr(http.StatusServiceUnavailable, "The automatic loop is off (--auto-loop=false): there is no review queue.")
	}
	all, err := u.c.Reviews.Reviews(r.Context(), "")
	if err != nil {
		return autoloop.Review{}, err
	}
	for _, rv := range all {
		if rv.ID == id {
			return rv, nil
		}
	}
	return autoloop.Review{}, httpErr(http.StatusNotFound, "There is no review %q.", truncate(id, 80))
}

func (u *UI) review(w http.ResponseWriter, r *http.Request, s *session) error {
	rv, err := u.findReview(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	for i := range rv.Reasons {
		rv.Reasons[i] = clean(rv.Reasons[i])
	}
	d := reviewData{R: rv, Pending: rv.Status == autoloop.ReviewPending, Reviewer: u.sessions.reviewer(s), Threshold: "0.80"}
	if d.Reviewer == "" {
		d.Reviewer = "web-ui"
	}
	if doc := rv.Document; doc != nil {
		d.Sources = doc.Source.Fields
		d.Program = doc.Program
		tgt := map[string]model.Field{}
		for _, f := range doc.Target.Fields {
			tgt[f.Name] = f
		}
		for i, m := range doc.Mappings {
			f, ok := tgt[m.TargetField]
			if !ok {
				f = model.Field{Name: m.TargetField}
			}
			d.Rows = append(d.Rows, mapRow{Index: i, Target: f, Sources: m.SourceField, Status: m.Status, Proposed: m.Proposed(),
				Confidence: m.Confidence, Signals: signalsOf(m.Signals), Transformation: m.Transformation,
				MappingType: m.MappingType, Reasoning: clean(m.Reasoning), Best: m.BestCandidate})
		}
		d.Graph = buildGraph(*doc)
	}
	return u.render(w, r, s, "review", "Review of "+rv.PipelineID, "reviews", d)
}

func buildGraph(doc mapping.Document) linkGraph {
	const rowH, top = 26, 18
	g := linkGraph{W: 640}
	n := max(len(doc.Source.Fields), len(doc.Target.Fields))
	g.H = top + n*rowH + 4
	srcY := map[string]int{}
	for i, f := range doc.Source.Fields {
		y := top + i*rowH + rowH/2
		srcY[f.Name] = y
		g.Left = append(g.Left, graphNode{Y: y, Label: truncate(f.Name, 26), Title: f.Name + " (" + f.DataType + ")"})
	}
	tgtY := map[string]int{}
	for i, f := range doc.Target.Fields {
		y := top + i*rowH + rowH/2
		tgtY[f.Name] = y
		g.Right = append(g.Right, graphNode{Y: y, Label: truncate(f.Name, 26), Title: f.Name + " (" + f.DataType + ")"})
	}
	for _, m := range doc.Mappings {
		if !m.Proposed() {
			continue
		}
		y2, ok := tgtY[m.TargetField]
		if !ok {
			continue
		}
		for _, sname := range m.SourceField {
			y1, ok := srcY[sname]
			if !ok {
				continue
			}
			g.Links = append(g.Links, graphLink{Y1: y1, Y2: y2, Class: "link-" + m.Status,
				Width: strconv.FormatFloat(1+3*clamp01(m.Confidence), 'f', 1, 64),
				Title: fmt.Sprintf("%s → %s: confidence %.2f (%s)", sname, m.TargetField, m.Confidence, m.Status)})
		}
	}
	return g
}

// decideReview applies the reviewer's answer: approve or reject the whole
// review, approve only the proposals above a confidence, or apply per-field
// choices (keep, leave unmapped, map from another source). Fields the
// reviewer turned down are recorded as rejected pairs, so they feed the
// mapping history like the accepted ones.
func (u *UI) decideReview(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	back := "/ui/reviews/" + url.PathEscape(id)
	rv, err := u.findReview(r, id)
	if err != nil {
		return err
	}
	reviewer := strings.TrimSpace(r.PostFormValue("reviewer"))
	comment := strings.TrimSpace(r.PostFormValue("comment"))
	if len(reviewer) > 200 || len(comment) > 4000 {
		return u.redirect(w, r, s, back, "error", "The reviewer name is limited to 200 bytes and the comment to 4000.")
	}
	if reviewer == "" {
		reviewer = "web-ui"
	}
	u.sessions.setReviewer(s, reviewer)
	op := r.PostFormValue("op")
	if op == "reject" {
		if _, err := u.c.Reviews.Reject(r.Context(), id, reviewer, comment); err != nil {
			return u.failBack(w, r, s, back, err)
		}
		return u.redirect(w, r, s, "/ui/reviews", "ok", fmt.Sprintf("Review rejected; pipeline %s stays paused.", rv.PipelineID))
	}
	var (
		edits    []autoloop.FieldEdit
		rejected []mapping.FieldMapping
	)
	if rv.Document != nil {
		sources := map[string]bool{}
		for _, f := range rv.Document.Source.Fields {
			sources[f.Name] = true
		}
		switch op {
		case "approve":
		case "threshold":
			t, err := strconv.ParseFloat(r.PostFormValue("threshold"), 64)
			if err != nil || t < 0 || t > 1 || math.IsNaN(t) {
				return u.redirect(w, r, s, back, "error", "The confidence threshold must be a number between 0 and 1.")
			}
			for _, m := range rv.Document.Mappings {
				if m.Proposed() && m.Confidence < t {
					edits = append(edits, autoloop.FieldEdit{TargetField: m.TargetField})
					rejected = append(rejected, m)
				}
			}
		case "apply":
			for i, m := range rv.Document.Mappings {
				v := r.PostFormValue("field-" + strconv.Itoa(i))
				switch {
				case v == "" || v == "keep":
				case v == "none":
					if m.Proposed() || len(m.SourceField) > 0 {
						edits = append(edits, autoloop.FieldEdit{TargetField: m.TargetField})
						if m.Proposed() {
							rejected = append(rejected, m)
						}
					}
				case strings.HasPrefix(v, "src:"):
					name := strings.TrimPrefix(v, "src:")
					if !sources[name] {
						return u.redirect(w, r, s, back, "error", fmt.Sprintf("%q is not a field of the source.", truncate(name, 80)))
					}
					if len(m.SourceField) == 1 && m.SourceField[0] == name && m.Proposed() {
						continue
					}
					edits = append(edits, autoloop.FieldEdit{TargetField: m.TargetField, SourceField: &name})
					if m.Proposed() {
						rejected = append(rejected, m)
					}
				default:
					return u.redirect(w, r, s, back, "error", "Unknown choice for field "+m.TargetField+".")
				}
			}
		default:
			return u.redirect(w, r, s, back, "error", "Unknown review action.")
		}
	} else if op != "approve" {
		return u.redirect(w, r, s, back, "error", "This review has no field mapping; approve or reject it as a whole.")
	}
	var res autoloop.Review
	if len(edits) == 0 {
		res, err = u.c.Reviews.Approve(r.Context(), id, reviewer, comment)
	} else {
		res, err = u.c.Reviews.Edit(r.Context(), id, reviewer, comment, edits)
	}
	if err != nil {
		return u.failBack(w, r, s, back, err)
	}
	if u.c.Coordinator != nil {
		for _, m := range rejected {
			d := mapping.Decision(m, mapping.ActionRejected, reviewer, rv.PipelineID)
			d.TaskID = id
			u.c.Coordinator.RecordDecision(r.Context(), d)
		}
	}
	msg := fmt.Sprintf("Review approved by %s.", reviewer)
	if res.AppliedVersion > 0 {
		msg = fmt.Sprintf("Review approved by %s: pipeline %s is now at version %d and active; the engine runs the new version.",
			reviewer, rv.PipelineID, res.AppliedVersion)
	}
	if len(edits) > 0 {
		msg += fmt.Sprintf(" %d field(s) changed by the reviewer.", len(edits))
	}
	return u.redirect(w, r, s, "/ui/pipelines/"+url.PathEscape(rv.PipelineID), "ok", msg)
}
