package mapping

// Derived mapping kinds. A derived mapping computes one target from
// several sources (concatenation) or one part of a source (split, date
// part); its plan is rebuilt from these kinds.
const (
	derivedConcat     = "concat"
	derivedSplitFirst = "split_first"
	derivedSplitLast  = "split_last"
	derivedYear       = "year"
	derivedMonth      = "month"
	derivedDay        = "day"
	derivedDateTime   = "datetime"
)

// derivedCand is one derived proposal for a target.
type derivedCand struct {
	kind  string
	srcs  []int
	score float64
	why   string
}

// wordSet returns the field's non-stop normalised words.
func wordSet(f *fieldFeat) map[string]bool {
	m := make(map[string]bool, len(f.words))
	for _, w := range f.words {
		if !w.stop {
			m[w.w] = true
		}
	}
	return m
}

func minus(a map[string]bool, drop ...string) map[string]bool {
	out := make(map[string]bool, len(a))
	for k := range a {
		out[k] = true
	}
	for _, d := range drop {
		delete(out, d)
	}
	return out
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func jaccard(a, b map[string]bool) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	in := 0
	for k := range a {
		if b[k] {
			in++
		}
	}
	return float64(in) / float64(len(a)+len(b)-in)
}

// nameFiller are words a full-name target adds without changing meaning.
var nameFiller = []string{"name", "full", "complete", "display", "contact", "person", "legal"}

// findDerived looks for derived mappings for target t: name parts joined
// into a full name, numbered lines joined, date and time joined, a full
// name split into first and last, and a date split into year, month, day.
func findDerived(src *side, t *fieldFeat) (best derivedCand) {
	tw := wordSet(t)
	tk := effectiveKind(t)
	consider := func(c derivedCand) {
		if c.score > best.score {
			best = c
		}
	}
	// Many-to-one: first (+ middle) + last name -> full name.
	if tw["name"] && !tw["first"] && !tw["last"] && !tw["middle"] && (tk == KindString || tk == KindUnknown) {
		tctx := minus(tw, nameFiller...)
		var first, middle, last = -1, -1, -1
		bestCtx := -1.0
		for i := range src.fields {
			sw := wordSet(&src.fields[i])
			if !sw["name"] {
				continue
			}
			ctx := minus(minus(sw, "name", "first", "last", "middle"), nameFiller...)
			// The parts may carry the entity (employee first name) that
			// the full-name target leaves implicit, not the other way.
			if !subset(tctx, ctx) {
				continue
			}
			sim := jaccard(ctx, tctx)
			switch {
			case sw["first"]:
				if sim >= bestCtx || first < 0 {
					first = i
				}
			case sw["last"]:
				last = i
			case sw["middle"]:
				middle = i
			}
			bestCtx = max(bestCtx, sim)
		}
		if first >= 0 && last >= 0 {
			srcs := []int{first}
			if middle >= 0 {
				srcs = append(srcs, middle)
			}
			srcs = append(srcs, last)
			consider(derivedCand{kind: derivedConcat, srcs: srcs, score: 0.7 + 0.2*bestCtx,
				why: "the name parts concatenate into the full name"})
		}
	}
	// Many-to-one: numbered parts (address_line1, address_line2) -> base.
	if tk == KindString || tk == KindUnknown {
		base := minus(tw, "line", "street", "full", "complete", "mailing", "home", "postal")
		var parts []int
		var partWords map[string]bool
		for i := range src.fields {
			f := &src.fields[i]
			hasDigit := false
			for _, w := range f.words {
				if isDigits(w.w) {
					hasDigit = true
				}
			}
			if !hasDigit {
				continue
			}
			sw := map[string]bool{}
			for _, w := range f.words {
				if !w.stop && !isDigits(w.w) && w.w != "line" {
					sw[w.w] = true
				}
			}
			if k := effectiveKind(f); k != KindString && k != KindUnknown {
				continue
			}
			if len(sw) > 0 && sameSet(minus(sw, "street", "mailing", "home", "postal"), base) {
				if len(parts) > 0 && !sameSet(sw, partWords) {
					continue
				}
				partWords = sw
				parts = append(parts, i)
			}
		}
		if len(parts) >= 2 && len(parts) <= 4 {
			consider(derivedCand{kind: derivedConcat, srcs: parts, score: 0.78,
				why: "the numbered parts concatenate into one value"})
		}
	}
	// Many-to-one: X date + X time -> X timestamp.
	if tk == KindTimestamp {
		base := minus(tw, "timestamp", "time", "date")
		d, tm := -1, -1
		for i := range src.fields {
			sw := wordSet(&src.fields[i])
			switch {
			case sw["date"] && !sw["time"] && sameSet(minus(sw, "date"), base):
				d = i
			case sw["time"] && !sw["date"] && sameSet(minus(sw, "time"), base):
				tm = i
			}
		}
		if d >= 0 && tm >= 0 {
			consider(derivedCand{kind: derivedDateTime, srcs: []int{d, tm}, score: 0.8,
				why: "the date and time fields combine into one timestamp"})
		}
	}
	// One-to-many: full name -> first / last name.
	if tw["name"] && (tw["first"] || tw["last"]) && !(tw["first"] && tw["last"]) {
		tctx := minus(tw, "name", "first", "last")
		kind := derivedSplitFirst
		if tw["last"] {
			kind = derivedSplitLast
		}
		for i := range src.fields {
			f := &src.fields[i]
			sw := wordSet(f)
			if !sw["name"] || sw["first"] || sw["last"] || sw["middle"] {
				continue
			}
			if f.prof != nil && f.prof.SplitSep == "" {
				continue
			}
			if effectiveKind(f) != KindString && effectiveKind(f) != KindUnknown {
				continue
			}
			sim := jaccard(minus(sw, nameFiller...), minus(tctx, nameFiller...))
			if sim < 0.5 {
				continue
			}
			sc := 0.62 + 0.1*sim
			if f.prof != nil && f.prof.SplitSep != "" {
				sc += 0.1
			}
			consider(derivedCand{kind: kind, srcs: []int{i}, score: sc,
				why: "the " + map[string]string{derivedSplitFirst: "first", derivedSplitLast: "last"}[kind] +
					" word of the full name is extracted"})
		}
	}
	// One-to-many: date -> year / month / day.
	part := ""
	for _, p := range []string{derivedYear, derivedMonth, derivedDay} {
		if tw[p] {
			if part != "" {
				part = ""
				break
			}
			part = p
		}
	}
	if part != "" && tk != KindDate && tk != KindTimestamp && tk != KindBoolean {
		rest := minus(tw, part, "date", "number")
		for i := range src.fields {
			f := &src.fields[i]
			sk := effectiveKind(f)
			isDate := sk == KindDate || sk == KindTimestamp ||
				f.prof != nil && (f.prof.Kind == ValDate || f.prof.Kind == ValTimestamp)
			if !isDate {
				continue
			}
			sw := minus(wordSet(f), "date", "timestamp", "time")
			if !sameSet(sw, rest) {
				continue
			}
			sc := 0.7
			if len(rest) > 0 {
				sc = 0.8
			}
			consider(derivedCand{kind: part, srcs: []int{i}, score: sc,
				why: "the " + part + " is extracted from the date"})
		}
	}
	return best
}

// derivedKindOf infers the derived kind of an existing mapping from the
// fields alone, so a stored or edited mapping regenerates its plan.
func derivedKindOf(srcs []*fieldFeat, t *fieldFeat) string {
	tw := wordSet(t)
	if len(srcs) >= 2 {
		if len(srcs) == 2 && effectiveKind(t) == KindTimestamp {
			a, b := wordSet(srcs[0]), wordSet(srcs[1])
			if a["date"] && b["time"] {
				return derivedDateTime
			}
		}
		return derivedConcat
	}
	switch {
	case tw["year"]:
		return derivedYear
	case tw["month"]:
		return derivedMonth
	case tw["day"]:
		return derivedDay
	case tw["first"]:
		return derivedSplitFirst
	case tw["last"]:
		return derivedSplitLast
	}
	return ""
}
