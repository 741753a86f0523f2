package mapping

import (
	"math"
	"strings"
)

// Signal names as they appear in FieldMapping.Signals.
const (
	SignalName        = "name"
	SignalDescription = "description"
	SignalType        = "type"
	SignalInstance    = "instance"
	SignalHistory     = "history"
	SignalLLM         = "llm"
)

// pairScore is the scored evidence for one source–target pair.
type pairScore struct {
	total   float64
	name    float64
	nameWhy string // which name technique fired: exact, token, abbreviation, synonym
	desc    float64
	hasDesc bool
	typ     float64
	hasType bool
	inst    float64
	hasInst bool
	hist    float64
	hasHist bool
}

// scorer compares fields of one schema pair. Token similarities are cached
// per vocabulary pair because names reuse a few hundred words.
type scorer struct {
	src, tgt *side
	tokCache []float32
	nt       int
	valIDF   map[string]float64
	valK     float64
	hist     historyView
}

func newScorer(src, tgt *side, hist historyView) *scorer {
	sc := &scorer{src: src, tgt: tgt, hist: hist, nt: len(tgt.words)}
	sc.tokCache = make([]float32, len(src.words)*len(tgt.words))
	for i := range sc.tokCache {
		sc.tokCache[i] = -1
	}
	// Value IDF: a value shared by many columns ("yes", "0") says little
	// about which columns correspond; a rare shared value says a lot.
	df := map[string]int{}
	n := 0
	for _, s := range []*side{src, tgt} {
		for i := range s.fields {
			if p := s.fields[i].prof; p != nil {
				n++
				for _, v := range p.Values {
					df[v]++
				}
			}
		}
	}
	sc.valK = math.Log(1 + float64(n)/3)
	sc.valIDF = make(map[string]float64, len(df))
	for v, c := range df {
		sc.valIDF[v] = math.Log(1 + float64(n)/float64(c))
	}
	return sc
}

func (sc *scorer) tok(a, b int) float64 {
	k := a*sc.nt + b
	if v := sc.tokCache[k]; v >= 0 {
		return float64(v)
	}
	v := tokenSim(sc.src.words[a], sc.tgt.words[b])
	if v < 1 {
		// Compare the written forms too: an abbreviation of the written
		// word ("vndr" for "vendor") must not miss because the word was
		// canonicalised to a synonym ("supplier").
		for _, sa := range append([]string{sc.src.words[a]}, sc.src.surfaces[a]...) {
			for _, sb := range append([]string{sc.tgt.words[b]}, sc.tgt.surfaces[b]...) {
				if sa != sc.src.words[a] || sb != sc.tgt.words[b] {
					v = math.Max(v, tokenSim(sa, sb))
				}
			}
		}
	}
	sc.tokCache[k] = float32(v)
	return v
}

// tokenSim scores two normalised words: equal, related, a prefix
// abbreviation (devel/development), a consonant skeleton (nmbr/number), a
// shared stem (smoke/smoking) or a typo (enviromental/environmental).
func tokenSim(a, b string) float64 {
	if a == b {
		return 1
	}
	if isDigits(a) || isDigits(b) {
		return 0
	}
	best := 0.0
	if sharesGroup(relatedOf(a), relatedOf(b)) {
		best = 0.7
	}
	if len(a) >= 4 && len(b) >= 4 && lightStem(a) == lightStem(b) {
		best = 0.9
	}
	short, long := a, b
	if len(short) > len(long) {
		short, long = long, short
	}
	ls, ll := len(short), len(long)
	if strings.HasPrefix(long, short) {
		var v float64
		switch {
		case ls >= 3:
			v = 0.72 + 0.23*float64(ls)/float64(ll)
		case ls == 2:
			v = 0.5
		default:
			v = 0.3
		}
		best = math.Max(best, v)
	} else if cp := commonPrefix(a, b); cp >= 5 && float64(cp) >= 0.75*float64(ls) {
		best = math.Max(best, 0.7+0.2*float64(cp)/float64(ll))
	}
	if ls >= 3 && !knownWords[short] {
		sk, vs := skeletons(long)
		switch {
		case strings.HasPrefix(sk, short) || vs != "" && strings.HasPrefix(vs, short):
			best = math.Max(best, 0.6+0.25*float64(ls)/float64(len(sk)))
		case short[0] == long[0] && short[ls-1] == sk[len(sk)-1] && isSubsequence(short, sk):
			// First and last letter kept, consonants in order: pmt/payment,
			// mgr/manager, rmk/remark.
			best = math.Max(best, 0.55+0.25*float64(ls)/float64(len(sk)))
		}
	}
	if ls >= 5 {
		if jw := jaroWinkler(a, b); jw >= 0.9 {
			best = math.Max(best, 0.6+3*(jw-0.9))
		}
	}
	return best
}

func relatedOf(w string) []int {
	if g, ok := related[w]; ok {
		return g
	}
	return related[lightStem(w)]
}

func sharesGroup(a, b []int) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// nameScore combines the name techniques and reports the strongest.
func (sc *scorer) nameScore(s, t *fieldFeat) (float64, string) {
	if s.raw != "" && s.raw == t.raw {
		return 1, "identical names"
	}
	best, why := 0.0, ""
	if s.leafRaw != "" && s.leafRaw == t.leafRaw {
		best, why = 1, "identical names"
	} else if s.squash != "" && s.squash == t.squash {
		best, why = 0.97, "names equal after normalisation"
	} else {
		best, why = sc.leafScore(s, t)
	}
	// Qualified names (TABLE.COLUMN): the table part adjusts the score;
	// a qualifier on one side only is unexplained extra name.
	sq, tq := len(s.ctxIDs) > 0, len(t.ctxIDs) > 0
	switch {
	case sq && tq:
		best = 0.8*best + 0.2*sc.ctxScore(s, t)
	case sq != tq:
		best *= 0.85
	}
	return best, why
}

func (sc *scorer) leafScore(s, t *fieldFeat) (float64, string) {
	best, why := 0.0, ""
	if len(s.ids) > 0 && len(t.ids) > 0 {
		ab := 0.0
		for i, a := range s.ids {
			m := 0.0
			for _, b := range t.ids {
				if v := sc.tok(a, b); v > m {
					m = v
				}
			}
			if m < 0.85 {
				// A word naming the other schema's entity is implied there.
				for _, e := range sc.tgt.entity {
					if sc.tok(a, e) >= 0.8 {
						m = 0.9
					}
				}
			}
			ab += s.weights[i] * m
		}
		ba := 0.0
		for j, b := range t.ids {
			m := 0.0
			for _, a := range s.ids {
				if v := sc.tok(a, b); v > m {
					m = v
				}
			}
			if m < 0.85 {
				for _, e := range sc.src.entity {
					if sc.tok(e, b) >= 0.8 {
						m = 0.9
					}
				}
			}
			ba += t.weights[j] * m
		}
		if s.wsum > 0 && t.wsum > 0 {
			ab /= s.wsum
			ba /= t.wsum
			// The harmonic-leaning mean keeps "age" vs "age_at_diagnosis"
			// below a full match while still ranking it first.
			v := 0.5*(ab+ba) - 0.15*math.Abs(ab-ba)
			best, why = v, "name tokens"
		}
	}
	if v := abbrScore(s, t); v > best {
		best, why = v, "abbreviation"
	}
	if sc.classConflict(s, t) {
		// "project_name" is not "project_id": both say what they are
		// about, but they represent it differently.
		best *= classPenalty
	}
	return best, why
}

// classConflict reports names that both carry representation terms (id,
// name, date, amount...) of which none corresponds.
var classPenalty = 0.8

func (sc *scorer) classConflict(s, t *fieldFeat) bool {
	hasS, hasT := false, false
	for k, a := range s.ids {
		if !classWords[s.words[k].w] {
			continue
		}
		hasS = true
		for j, b := range t.ids {
			if classWords[t.words[j].w] {
				hasT = true
				if sc.tok(a, b) >= 0.7 {
					return false
				}
			}
		}
	}
	if !hasT {
		for j := range t.ids {
			if classWords[t.words[j].w] {
				hasT = true
			}
		}
	}
	return hasS && hasT
}

func (sc *scorer) ctxScore(s, t *fieldFeat) float64 {
	ab, wa := 0.0, 0.0
	for i, a := range s.ctxIDs {
		m := 0.0
		for _, b := range t.ctxIDs {
			m = math.Max(m, sc.tok(a, b))
		}
		ab += s.ctxW[i] * m
		wa += s.ctxW[i]
	}
	ba, wb := 0.0, 0.0
	for j, b := range t.ctxIDs {
		m := 0.0
		for _, a := range s.ctxIDs {
			m = math.Max(m, sc.tok(a, b))
		}
		ba += t.ctxW[j] * m
		wb += t.ctxW[j]
	}
	if wa == 0 || wb == 0 {
		return 0
	}
	return 0.5 * (ab/wa + ba/wb)
}

// abbrScore matches the shorter name, read as one string of letters,
// against the words of the longer one: every piece of the abbreviation must
// start a word (or its first consonant) and be a subsequence of it, words
// may be skipped, and the score is the weighted share of words it covers.
// This is how "FiYe" finds "Fiscal year", "ASSTETY" finds "assay test type"
// and "nmbrcrs" finds "NumberCars".
func abbrScore(s, t *fieldFeat) float64 {
	a, l := s, t
	if len(t.abbr) < len(s.abbr) {
		a, l = t, s
	}
	ab := a.abbr
	if len(ab) < 2 || len(l.long) == 0 || a.abbrIsWords {
		return 0
	}
	if float64(len(ab)) > 0.9*float64(len(l.longStr)) {
		return 0
	}
	if !isSubsequence(ab, l.longStr) {
		return 0
	}
	v := abbrDP(ab, l.long, l.longW)
	switch {
	case len(ab) == 2:
		v *= 0.7
	case len(ab) == 3:
		v *= 0.85
	}
	return v
}

// abbrDP finds the best segmentation of ab into pieces drawn from words in
// order. A piece is a prefix of a word (cust/customer), a prefix of its
// consonant skeleton (nmbr/number, crdt/credit) or, for a word starting
// with vowels, of the skeleton without them (gncy/agency). Loose
// subsequences are not allowed: "pgr" inside "program" is chance, not an
// abbreviation. best[i] is the best weighted coverage having consumed
// ab[:i]; the result is the share of the words' weight covered.
func abbrDP(ab string, words []string, w []float64) float64 {
	n := len(ab)
	total := 0.0
	for _, x := range w {
		total += x
	}
	if total == 0 {
		return 0
	}
	const neg = -1.0
	cur := make([]float64, n+1)
	nxt := make([]float64, n+1)
	for i := range cur {
		cur[i] = neg
	}
	cur[0] = 0
	for k, word := range words {
		copy(nxt, cur) // skipping the word
		sk, vs := skeletons(word)
		for i := 0; i < n; i++ {
			if cur[i] < 0 {
				continue
			}
			for j := i + 1; j <= n; j++ {
				piece := ab[i:j]
				plen := j - i
				var qual float64
				switch {
				case strings.HasPrefix(word, piece):
					switch {
					case plen == len(word):
						qual = 1
					case plen >= 3:
						qual = 0.9
					case plen == 2:
						qual = 0.75
					default:
						qual = 0.55
					}
				case len(sk) > 1 && strings.HasPrefix(sk, piece):
					qual = 0.85
					if plen == 2 {
						qual = 0.6
					}
				case vs != "" && strings.HasPrefix(vs, piece):
					qual = 0.75
					if plen <= 2 {
						qual = 0.45
					}
				default:
					qual = -1
				}
				if qual < 0 {
					break
				}
				if sc := cur[i] + w[k]*qual; sc > nxt[j] {
					nxt[j] = sc
				}
			}
		}
		cur, nxt = nxt, cur
	}
	if cur[n] < 0 {
		return 0
	}
	return cur[n] / total
}

// skeletons returns a word's consonant skeleton (first letter kept:
// "number" -> "nmbr") and, when the word starts with a vowel, the skeleton
// without it ("agency" -> "gncy"); vowel-dropping abbreviations drop both.
func skeletons(word string) (string, string) {
	if len(word) < 2 {
		return "", ""
	}
	var b strings.Builder
	b.WriteByte(word[0])
	for i := 1; i < len(word); i++ {
		if !isVowel(word[i]) {
			b.WriteByte(word[i])
		}
	}
	sk := b.String()
	if isVowel(word[0]) {
		return sk, sk[1:]
	}
	return sk, ""
}

// descScore compares descriptions (TF-IDF cosine) and how much of one
// side's name the other side's description covers, which is what matters
// when only one schema is documented (a short column name against a
// sentence).
func descScore(s, t *fieldFeat, k float64) (float64, bool) {
	cross := math.Max(coverage(s, t, k), coverage(t, s, k))
	switch {
	case s.hasDesc && t.hasDesc:
		return math.Max(s.desc.dot(t.desc), 0.8*cross), true
	case s.hasDesc || t.hasDesc:
		return cross, true
	}
	return 0, false
}

// coverage is the IDF-weighted share of a's name words found in b's
// description, damped when the matched words are all common ones.
func coverage(a, b *fieldFeat, k float64) float64 {
	if !b.hasDesc || len(a.nameTerms) == 0 {
		return 0
	}
	num, den := 0.0, 0.0
	for i, w := range a.nameTerms {
		den += a.nameTermW[i]
		if b.descTerms[w] {
			num += a.nameTermW[i]
		}
	}
	if den == 0 || num == 0 {
		return 0
	}
	return num / den * math.Min(1, num/k)
}

// instScore compares sample profiles: shared values (weighted by rarity),
// pattern kinds, numeric ranges and value shapes.
func (sc *scorer) instScore(s, t *fieldFeat) (float64, bool) {
	a, b := s.prof, t.prof
	if a == nil || b == nil {
		return 0, false
	}
	overlap := 0.0
	{
		small, big := a.Values, b.Values
		if len(small) > len(big) {
			small, big = big, small
		}
		in := make(map[string]bool, len(big))
		for _, v := range big {
			in[v] = true
		}
		num, den := 0.0, 0.0
		for _, v := range small {
			w := sc.valIDF[v]
			den += w
			if in[v] {
				num += w
			}
		}
		if den > 0 {
			// Shared values only count as much as they are informative:
			// sharing "yes" with a hundred yes/no columns proves little.
			overlap = num / den * math.Min(1, num/sc.valK)
		}
	}
	ks := kindSim(a.Kind, b.Kind)
	feat := 0.5
	if a.Numeric && b.Numeric && !math.IsInf(a.Min, 0) && !math.IsInf(b.Min, 0) {
		feat = rangeSim(a.Min, a.Max, b.Min, b.Max)
	} else {
		inter := 0
		for k := range a.Shapes {
			if b.Shapes[k] {
				inter++
			}
		}
		union := len(a.Shapes) + len(b.Shapes) - inter
		sh := 0.0
		if union > 0 {
			sh = float64(inter) / float64(union)
		}
		lr := 0.0
		if a.MeanLen > 0 && b.MeanLen > 0 {
			lr = math.Min(a.MeanLen, b.MeanLen) / math.Max(a.MeanLen, b.MeanLen)
		}
		feat = 0.6*sh + 0.4*lr
	}
	v := ks * (0.4 + 0.6*feat)
	if overlap > 0 {
		v = math.Max(v, 0.45+0.55*overlap)
		v = 0.5*v + 0.5*math.Max(v, overlap)
	}
	return math.Min(1, v), true
}

// rangeSim compares two numeric ranges by overlap and magnitude.
func rangeSim(a0, a1, b0, b1 float64) float64 {
	lo, hi := math.Max(a0, b0), math.Min(a1, b1)
	ulo, uhi := math.Min(a0, b0), math.Max(a1, b1)
	iou := 0.0
	if uhi > ulo {
		iou = math.Max(0, hi-lo) / (uhi - ulo)
	} else if a0 == b0 {
		iou = 1
	}
	mag := func(x float64) float64 { return math.Log10(1 + math.Abs(x)) }
	ma, mb := mag((a0+a1)/2), mag((b0+b1)/2)
	ms := 1 - math.Min(1, math.Abs(ma-mb)/2)
	return 0.5*iou + 0.5*ms
}

// effectiveKind is the declared type, refined by samples when the
// declaration is the uninformative "string".
func effectiveKind(f *fieldFeat) Kind {
	k := f.typ.Kind
	if (k == KindString || k == KindUnknown) && f.prof != nil {
		switch f.prof.Kind {
		case ValBool:
			return KindBoolean
		case ValInteger:
			if !f.prof.Strings {
				return KindInteger
			}
		case ValDecimal:
			if !f.prof.Strings {
				return KindNumber
			}
		}
	}
	return k
}

// typeScore compares declared types; a string declared on both sides with
// nothing else known is no evidence, so it reports no signal.
func typeScore(s, t *fieldFeat) (float64, bool) {
	ks, kt := effectiveKind(s), effectiveKind(t)
	if ks == KindUnknown || kt == KindUnknown {
		return 0, false
	}
	if ks == KindString && kt == KindString && s.prof == nil && t.prof == nil && s.typ.Hint == "" && t.typ.Hint == "" {
		return 0, false
	}
	v := typeCompat(ks, kt)
	// String-encoded values convert well when samples show the format.
	if ks == KindString && s.prof != nil {
		switch {
		case (kt == KindInteger || kt == KindNumber) && s.prof.Numeric:
			v = 0.9
		case (kt == KindDate || kt == KindTimestamp) && (s.prof.Kind == ValDate || s.prof.Kind == ValTimestamp):
			v = 0.9
		case kt == KindBoolean && s.prof.Kind == ValFlag:
			v = 0.9
		}
	}
	if (ks == KindInteger || ks == KindNumber) && (kt == KindTimestamp || kt == KindDate) && s.prof != nil && s.prof.Kind == ValEpoch {
		v = 0.85
	}
	if t.typ.Hint != "" && s.typ.Hint != "" && t.typ.Hint != s.typ.Hint {
		v *= 0.8
	}
	return v, true
}

// Combination gains for the supporting signals.
var (
	descGain = 0.35
	instGain = 0.6
)

// score computes all signals for one pair and their combination.
func (sc *scorer) score(s, t *fieldFeat) pairScore {
	var p pairScore
	p.name, p.nameWhy = sc.nameScore(s, t)
	p.desc, p.hasDesc = descScore(s, t, sc.src.covK)
	p.inst, p.hasInst = sc.instScore(s, t)
	p.typ, p.hasType = typeScore(s, t)
	// The name is the primary evidence. A description can only support it
	// (documentation is phrased differently on each side, so dissimilar
	// text proves little), filling part of the gap to 1. Sample values can
	// support or contradict: emails against phone numbers is real
	// evidence of a mismatch.
	v := p.name
	if p.hasDesc {
		v += (1 - v) * descGain * p.desc
	}
	if p.hasInst {
		if d := p.inst - 0.5; d >= 0 {
			v += (1 - v) * instGain * d
		} else {
			v *= 1 + instGain*d
		}
	}
	if p.hasType {
		v *= 0.6 + 0.4*p.typ
	}
	if sc.hist != nil {
		if h, ok := sc.hist.adjust(s.name, t.name); ok {
			p.hist, p.hasHist = h, true
			if h >= 0.5 {
				v = v + (1-v)*(h-0.5)*1.2
			} else {
				v *= 0.3 + 1.4*h
			}
		}
	}
	p.total = math.Max(0, math.Min(1, v))
	return p
}
