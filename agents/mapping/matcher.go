package mapping

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/agentetl/agentetl/internal/model"
)

// Default thresholds. They were set on the public schema-matching
// benchmarks so that accepted mappings are right at least nine times in
// ten; review mappings are plausible but need a human.
const (
	DefaultAcceptThreshold = 0.85
	DefaultReviewThreshold = 0.5
)

// Options configure a Matcher. The zero value is usable.
type Options struct {
	// AcceptThreshold and ReviewThreshold split confidences into
	// accepted, review and unmapped. Zero means the default.
	AcceptThreshold float64
	ReviewThreshold float64
	// History feeds earlier verdicts into the history signal; nil is none.
	History History
	// LLM, when set, re-ranks ambiguous targets (see rerank). Without it
	// the matcher is fully deterministic and offline.
	LLM ChatClient
	// LLMTimeout bounds the whole re-ranking call; zero means 30 s.
	LLMTimeout time.Duration
	// LLMMaxTargets caps how many ambiguous targets one call sends.
	LLMMaxTargets int
}

// Matcher is the Schema Mapping Agent's matcher. It is safe for concurrent
// use: Map keeps all per-call state local.
type Matcher struct {
	opts Options
}

// New returns a matcher with defaults filled in.
func New(opts Options) *Matcher {
	if opts.AcceptThreshold <= 0 {
		opts.AcceptThreshold = DefaultAcceptThreshold
	}
	if opts.ReviewThreshold <= 0 {
		opts.ReviewThreshold = DefaultReviewThreshold
	}
	if opts.ReviewThreshold > opts.AcceptThreshold {
		opts.ReviewThreshold = opts.AcceptThreshold
	}
	if opts.LLMTimeout <= 0 {
		opts.LLMTimeout = 30 * time.Second
	}
	if opts.LLMMaxTargets <= 0 {
		opts.LLMMaxTargets = 25
	}
	return &Matcher{opts: opts}
}

// Result is the mapping of one schema pair: one FieldMapping per target
// field, in target order. It keeps the schemas so that transformations,
// programs and updates can be regenerated from it.
type Result struct {
	Source   model.Schema
	Target   model.Schema
	Mappings []FieldMapping
	// Notes are operational remarks (for example an LLM fallback) meant
	// for logs, never for the mapping output.
	Notes []string

	src, tgt           *side
	srcIndex, tgtIndex map[string]int
}

func (r *Result) ensureFeatures() {
	if r.src != nil {
		return
	}
	r.src, r.tgt = buildSides(r.Source, r.Target)
	r.srcIndex, r.tgtIndex = fieldsByName(r.Source.Fields), fieldsByName(r.Target.Fields)
}

// Proposals returns the accepted and review mappings.
func (r *Result) Proposals() []FieldMapping {
	out := make([]FieldMapping, 0, len(r.Mappings))
	for _, m := range r.Mappings {
		if m.Proposed() {
			out = append(out, m)
		}
	}
	return out
}

// matchState is the working state of one Map call.
type matchState struct {
	m      *Matcher
	src    *side
	tgt    *side
	sc     *scorer
	ns, nt int
	total  []float64 // ns×nt combined scores
	// choice per target: source indexes (len>1 for concat), confidence,
	// derived kind, and where it came from.
	choice []targetChoice
}

type targetChoice struct {
	srcs    []int
	conf    float64
	derived string
	why     string // derived explanation
	oneMany bool   // source already feeds another target
	llm     *llmVerdict
}

// Map proposes mappings from src to tgt.
func (m *Matcher) Map(ctx context.Context, src, tgt model.Schema) (*Result, error) {
	if err := ValidateSchema(src); err != nil {
		return nil, fmt.Errorf("source schema: %w", err)
	}
	if err := ValidateSchema(tgt); err != nil {
		return nil, fmt.Errorf("target schema: %w", err)
	}
	res := &Result{Source: src, Target: tgt, Mappings: []FieldMapping{}}
	if len(src.Fields) == 0 || len(tgt.Fields) == 0 {
		return res, nil
	}
	st := m.score(src, tgt)
	res.src, res.tgt = st.src, st.tgt
	res.srcIndex, res.tgtIndex = fieldsByName(src.Fields), fieldsByName(tgt.Fields)
	st.assign()
	st.derive()
	if m.opts.LLM != nil {
		if note := st.rerank(ctx, m.opts.LLM); note != "" {
			res.Notes = append(res.Notes, note)
		}
	}
	res.Mappings = st.build()
	return res, nil
}

func (m *Matcher) score(src, tgt model.Schema) *matchState {
	ss, ts := buildSides(src, tgt)
	var hv historyView
	if m.opts.History != nil {
		hv = histAdapter{m.opts.History}
	}
	st := &matchState{m: m, src: ss, tgt: ts, sc: newScorer(ss, ts, hv), ns: len(ss.fields), nt: len(ts.fields)}
	st.total = make([]float64, st.ns*st.nt)
	for i := range ss.fields {
		for j := range ts.fields {
			st.total[i*st.nt+j] = st.sc.score(&ss.fields[i], &ts.fields[j]).total
		}
	}
	return st
}

// candidateFloor is the score below which a pair is not even a candidate
// for the assignment: such pairs would only add noise.
const candidateFloor = 0.2

// assign runs the global one-to-one assignment and then lets unassigned
// targets take a source that is already used when that source fits them
// about as well (one source feeding several targets, as an age column
// feeding both age at diagnosis and age at index).
func (st *matchState) assign() {
	pruned := make([]float64, len(st.total))
	for k, v := range st.total {
		if v >= candidateFloor {
			pruned[k] = v
		}
	}
	rowCol := Assign(st.ns, st.nt, pruned)
	st.choice = make([]targetChoice, st.nt)
	assignedTo := make([]int, st.ns)
	for i := range assignedTo {
		assignedTo[i] = -1
	}
	for i, j := range rowCol {
		if j >= 0 && pruned[i*st.nt+j] > 0 {
			st.choice[j] = targetChoice{srcs: []int{i}, conf: st.calibrate(i, j, false)}
			assignedTo[i] = j
		}
	}
	review := st.m.opts.ReviewThreshold
	for j := 0; j < st.nt; j++ {
		if len(st.choice[j].srcs) > 0 && st.choice[j].conf >= review {
			continue
		}
		bi, bv := st.bestSource(j, -1)
		if bi < 0 || bv < review {
			continue
		}
		own := assignedTo[bi]
		if own < 0 {
			continue
		}
		ownScore := st.total[bi*st.nt+own]
		if bv < ownScore-oneManySlack {
			continue
		}
		// A source that fits many targets about equally ("stage" against a
		// dozen staging systems) is evidence for none of them.
		fan := 0
		for j2 := 0; j2 < st.nt; j2++ {
			if j2 != own && st.total[bi*st.nt+j2] >= bv-0.03 {
				fan++
			}
		}
		if fan > oneManyFan {
			continue
		}
		conf := math.Min(st.calibrate(bi, j, true), bv) - 0.05
		if conf > st.choice[j].conf {
			st.choice[j] = targetChoice{srcs: []int{bi}, conf: conf, oneMany: true}
		}
	}
}

// One-to-many limits: how far below its own assignment a source may score
// for an extra target, and how many near-equal extra targets it may have.
var (
	oneManySlack = 0.12
	oneManyFan   = 3
)

func (st *matchState) bestSource(j, except int) (int, float64) {
	bi, bv := -1, 0.0
	for i := 0; i < st.ns; i++ {
		if i == except {
			continue
		}
		if v := st.total[i*st.nt+j]; v > bv {
			bi, bv = i, v
		}
	}
	return bi, bv
}

// calibrate turns a pair's score into a confidence: a pair with a close
// competitor (for its target or for its source) is less certain than its
// raw score says.
func (st *matchState) calibrate(i, j int, sourceShared bool) float64 {
	v := st.total[i*st.nt+j]
	comp := 0.0
	for i2 := 0; i2 < st.ns; i2++ {
		if i2 != i {
			comp = math.Max(comp, st.total[i2*st.nt+j])
		}
	}
	// A source that feeds several targets does not compete with itself.
	for j2 := 0; j2 < st.nt && !sourceShared; j2++ {
		if j2 != j {
			comp = math.Max(comp, st.total[i*st.nt+j2])
		}
	}
	margin := v - comp
	switch {
	case margin < 0.1:
		v -= (0.1 - margin) * 0.8
	case margin > 0.15:
		// A mutual best with a wide margin is evidence beyond the raw
		// score: nothing else in either schema competes for the pair.
		v += math.Min(0.12, (margin-0.15)*0.4)
	}
	return math.Max(0, math.Min(1, v))
}

// derive replaces weak or missing choices by derived mappings.
func (st *matchState) derive() {
	for j := 0; j < st.nt; j++ {
		c := st.choice[j]
		if len(c.srcs) > 0 && c.conf >= st.m.opts.AcceptThreshold {
			continue
		}
		d := findDerived(st.src, &st.tgt.fields[j])
		if d.kind == "" || d.score <= c.conf {
			continue
		}
		st.choice[j] = targetChoice{srcs: d.srcs, conf: d.score, derived: d.kind, why: d.why}
	}
}

// build turns choices into FieldMappings, one per target in target order.
func (st *matchState) build() []FieldMapping {
	out := make([]FieldMapping, 0, st.nt)
	acc, rev := st.m.opts.AcceptThreshold, st.m.opts.ReviewThreshold
	for j := 0; j < st.nt; j++ {
		t := &st.tgt.fields[j]
		c := st.choice[j]
		fm := FieldMapping{TargetField: t.name}
		if len(c.srcs) == 0 || c.conf < rev {
			fm.Status = StatusUnmapped
			fm.Confidence = 0
			bi, bv := st.bestSource(j, -1)
			if bi >= 0 && bv > 0 {
				ps := st.sc.score(&st.src.fields[bi], t)
				fm.BestCandidate = &Candidate{
					SourceField: st.src.fields[bi].name,
					Confidence:  round3(bv),
					Signals:     signalsOf(ps),
					Reasoning:   explain(st.src.fields[bi].name, t.name, ps, "", false),
				}
				fm.Reasoning = fmt.Sprintf("No source field reached the review threshold %.2f; the best candidate %q scored %.2f.", rev, st.src.fields[bi].name, bv)
			} else {
				fm.Reasoning = "No source field resembles this target by name, description, type or values."
			}
			out = append(out, fm)
			continue
		}
		srcs := make([]*fieldFeat, len(c.srcs))
		for k, i := range c.srcs {
			srcs[k] = &st.src.fields[i]
			fm.SourceField = append(fm.SourceField, st.src.fields[i].name)
		}
		p := planFor(srcs, t, c.derived)
		fm.Confidence = round3(c.conf)
		switch {
		case c.derived != "":
			fm.MappingType = TypeDerived
		case p.op == opCopy && p.truncate == 0:
			fm.MappingType = TypeDirect
		default:
			fm.MappingType = TypeTransformed
		}
		if fm.MappingType != TypeDirect {
			fm.Transformation = p.bloblang()
		}
		fm.Status = StatusReview
		if c.conf >= acc && (c.llm == nil || !c.llm.changed) {
			fm.Status = StatusAccepted
		}
		if c.derived != "" {
			fm.Signals = map[string]float64{"derived": round3(c.conf)}
			fm.Reasoning = "Derived mapping: " + c.why + "."
		} else {
			ps := st.sc.score(srcs[0], t)
			// Acceptance needs the names themselves to agree (or values to
			// corroborate a good name): descriptions and uniqueness can
			// lift a half-matching name high, but not past a human.
			if !(ps.name >= acceptName || ps.name >= 0.6 && ps.hasInst && ps.inst >= 0.75) {
				fm.Status = StatusReview
			}
			fm.Signals = signalsOf(ps)
			fm.Reasoning = explain(srcs[0].name, t.name, ps, p.describe(), c.oneMany)
		}
		if c.llm != nil {
			fm.Signals[SignalLLM] = round3(c.llm.confidence)
			fm.Reasoning = strings.TrimSuffix(fm.Reasoning, ".") + "; " + c.llm.note + "."
		}
		out = append(out, fm)
	}
	return out
}

// acceptName is the name similarity an accepted mapping needs at least.
var acceptName = 0.8

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func signalsOf(p pairScore) map[string]float64 {
	s := map[string]float64{SignalName: round3(p.name)}
	if p.hasDesc {
		s[SignalDescription] = round3(p.desc)
	}
	if p.hasType {
		s[SignalType] = round3(p.typ)
	}
	if p.hasInst {
		s[SignalInstance] = round3(p.inst)
	}
	if p.hasHist {
		s[SignalHistory] = round3(p.hist)
	}
	return s
}

// explain writes the one-sentence reason for a pair from its signals.
func explain(src, tgt string, p pairScore, conv string, oneMany bool) string {
	var parts []string
	switch {
	case p.name >= 0.95:
		parts = append(parts, fmt.Sprintf("the names match (%s, %.2f)", p.nameWhy, p.name))
	case p.name >= 0.6:
		parts = append(parts, fmt.Sprintf("the names are similar (%s, %.2f)", p.nameWhy, p.name))
	case p.name > 0:
		parts = append(parts, fmt.Sprintf("the names are only weakly similar (%.2f)", p.name))
	default:
		parts = append(parts, "the names share nothing")
	}
	if p.hasDesc {
		switch {
		case p.desc >= 0.4:
			parts = append(parts, fmt.Sprintf("the descriptions agree (%.2f)", p.desc))
		case p.desc >= 0.15:
			parts = append(parts, fmt.Sprintf("the descriptions overlap a little (%.2f)", p.desc))
		default:
			parts = append(parts, "the descriptions do not help")
		}
	}
	if p.hasInst {
		switch {
		case p.inst >= 0.7:
			parts = append(parts, fmt.Sprintf("the sample values look alike (%.2f)", p.inst))
		case p.inst >= 0.4:
			parts = append(parts, fmt.Sprintf("the sample values are compatible (%.2f)", p.inst))
		default:
			parts = append(parts, fmt.Sprintf("the sample values differ (%.2f)", p.inst))
		}
	}
	if p.hasType {
		switch {
		case p.typ >= 0.95:
			parts = append(parts, "the types are the same")
		case p.typ >= 0.6:
			parts = append(parts, "the types convert")
		default:
			parts = append(parts, fmt.Sprintf("the types fit poorly (%.2f)", p.typ))
		}
	}
	if p.hasHist {
		if p.hist >= 0.5 {
			parts = append(parts, "the pair was accepted before")
		} else {
			parts = append(parts, "the pair was rejected before")
		}
	}
	s := fmt.Sprintf("%q feeds %q because %s", src, tgt, joinAnd(parts))
	if conv != "" {
		s += ", " + conv
	}
	if oneMany {
		s += ", and this source also feeds another target"
	}
	return s + "."
}

func joinAnd(p []string) string {
	switch len(p) {
	case 0:
		return ""
	case 1:
		return p[0]
	}
	return strings.Join(p[:len(p)-1], ", ") + " and " + p[len(p)-1]
}

// describe names the conversion a plan performs, for the reasoning.
func (p plan) describe() string {
	var s string
	switch p.op {
	case opEpoch:
		s = "converting unix " + p.unit + " to a timestamp"
	case opParseDate:
		s = "parsing the date format " + p.layout
	case opFormatDate:
		s = "truncating the timestamp to a date"
	case opFlag:
		s = "mapping " + strings.Join(p.trueVals, "/") + " to true and " + strings.Join(p.falseVals, "/") + " to false"
	case opNumber:
		s = "parsing the decimal text as a number"
	case opInteger:
		s = "converting to an integer"
	case opString:
		s = "converting to text"
	}
	if p.truncate > 0 {
		if s != "" {
			s += " and "
		}
		s += fmt.Sprintf("truncating to %d characters", p.truncate)
	}
	return s
}

// sortedCandidates lists sources for target j by score, best first.
func (st *matchState) sortedCandidates(j int, floor float64, k int) []int {
	var idx []int
	for i := 0; i < st.ns; i++ {
		if st.total[i*st.nt+j] >= floor {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return st.total[idx[a]*st.nt+j] > st.total[idx[b]*st.nt+j] })
	if len(idx) > k {
		idx = idx[:k]
	}
	return idx
}
