package mapping

import (
	"math"
	"strings"

	"github.com/agentetl/agentetl/internal/model"
)

// fieldFeat is everything the scorer precomputes about one field, so that
// the pairwise loop (up to 10⁵ pairs) only compares ready-made features.
type fieldFeat struct {
	idx         int
	name        string
	dataType    string
	description string
	// words are the normalised words of the leaf name (the part after the
	// last dot for TABLE.COLUMN names), ids index the side's vocabulary.
	words   []normWord
	ids     []int
	weights []float64
	wsum    float64
	// ctx are the normalised words of the qualifier (table) part.
	ctxIDs []int
	ctxW   []float64
	// squash is the normalised non-stop words concatenated, raw the leaf
	// letters, so that "PRODUCTNAME" equals "product_name".
	squash, raw, leafRaw string
	// abbrIsWords: the abbreviation form is made of real words, so it is
	// not read as an abbreviation of something else.
	abbrIsWords bool
	// abbr is the leaf as one string of letters without tokens common to
	// most fields of the schema: the form an abbreviation is matched in.
	abbr string
	// long are the raw (unexpanded) leaf words and their weights: the form
	// an abbreviation is matched against.
	long    []string
	longW   []float64
	longStr string
	typ     TypeInfo
	prof    *Profile
	// desc is the description's TF-IDF vector; nameVec the name words in
	// the same space, for name-to-description similarity.
	desc, nameVec sparseVec
	hasDesc       bool
	// descTerms is the set of description words; nameTerms the name's
	// words with their description IDF, for name-in-description coverage.
	descTerms map[string]bool
	nameTerms []string
	nameTermW []float64
}

type sparseVec map[int]float64

func (a sparseVec) dot(b sparseVec) float64 {
	if len(a) > len(b) {
		a, b = b, a
	}
	s := 0.0
	for k, v := range a {
		s += v * b[k]
	}
	return s
}

// side holds one schema's features and its vocabulary statistics.
type side struct {
	fields []fieldFeat
	vocab  map[string]int
	words  []string
	df     []int
	covK   float64
	// surfaces are the written forms behind each canonical word.
	surfaces [][]string
	// entity are the words of the schema's own name (its table).
	entity []int
}

func (s *side) intern(w string) int {
	if id, ok := s.vocab[w]; ok {
		return id
	}
	id := len(s.words)
	s.vocab[w] = id
	s.words = append(s.words, w)
	s.df = append(s.df, 0)
	s.surfaces = append(s.surfaces, nil)
	return id
}

func (s *side) addSurface(id int, surf string) {
	if surf == "" || surf == s.words[id] {
		return
	}
	for _, x := range s.surfaces[id] {
		if x == surf {
			return
		}
	}
	s.surfaces[id] = append(s.surfaces[id], surf)
}

// splitQualified separates "TABLE.COLUMN" into qualifier and leaf. Only the
// last dot splits, and only when both parts contain letters, so "plant.id"
// still compares "id" first while "Height.cm" style names stay whole when
// the leaf is a unit.
func splitQualified(name string) (ctx, leaf string) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", name
	}
	ctx, leaf = name[:i], name[i+1:]
	if !hasLetter(ctx) || !hasLetter(leaf) || strings.ContainsAny(name, " ") {
		return "", name
	}
	return ctx, leaf
}

func hasLetter(s string) bool {
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127 {
			return true
		}
	}
	return false
}

// buildSides computes features for both schemas. The segmentation
// dictionary and description IDF are shared so that both sides speak the
// same vocabulary.
func buildSides(srcSchema, tgtSchema model.Schema) (*side, *side) {
	src, tgt := srcSchema.Fields, tgtSchema.Fields
	dict := make(map[string]bool, len(baseWords)+256)
	for _, w := range baseWords {
		dict[w] = true
	}
	for w := range abbreviations {
		if len(w) >= 4 {
			dict[w] = true
		}
	}
	for _, fs := range [][]model.Field{src, tgt} {
		for _, f := range fs {
			for _, t := range splitName(f.Name) {
				if len(t) >= 3 && isASCIIAlpha(t) {
					dict[t] = true
					dict[stem(t)] = true
				}
			}
		}
	}
	// A qualified naming (TABLE.COLUMN) is only trusted when most fields of
	// a schema use it; otherwise a dot is part of a plain column name.
	// A qualified naming (TABLE.COLUMN) is only trusted when most fields
	// use it and qualifiers repeat (several columns per table); R-style
	// names such as "Smoking.History" use dots as word separators instead.
	qualified := func(fs []model.Field) bool {
		n, oneDot := 0, 0
		groups := map[string]int{}
		for _, f := range fs {
			if c, _ := splitQualified(f.Name); c != "" {
				n++
				groups[strings.ToLower(c)]++
				if strings.Count(f.Name, ".") == 1 {
					oneDot++
				}
			}
		}
		if len(fs) == 0 || n*2 <= len(fs) || oneDot*5 < n*4 {
			return false
		}
		return float64(n)/float64(len(groups)) >= 3
	}
	// Description IDF over both schemas' descriptions, ignoring boilerplate
	// texts shared by several fields, which say nothing about any of them.
	descCount := map[string]int{}
	for _, fs := range [][]model.Field{src, tgt} {
		for _, f := range fs {
			if d := strings.TrimSpace(f.Description); d != "" {
				descCount[strings.ToLower(d)]++
			}
		}
	}
	informative := func(d string, n int) bool {
		d = strings.TrimSpace(d)
		if d == "" {
			return false
		}
		c := descCount[strings.ToLower(d)]
		return c <= 1 || (c <= 2 && n > 20)
	}
	ddf := map[string]int{}
	ndocs := 0
	for _, fs := range [][]model.Field{src, tgt} {
		for _, f := range fs {
			if !informative(f.Description, len(fs)) {
				continue
			}
			ndocs++
			seen := map[string]bool{}
			for _, w := range descWords(f.Description) {
				if !seen[w] {
					seen[w] = true
					ddf[w]++
				}
			}
		}
	}
	dvocab := map[string]int{}
	idf := func(w string) float64 {
		return math.Log(1 + float64(ndocs+1)/float64(ddf[w]+1))
	}
	vec := func(words []string) sparseVec {
		if len(words) == 0 {
			return nil
		}
		tf := map[string]float64{}
		for _, w := range words {
			tf[w]++
		}
		v := make(sparseVec, len(tf))
		norm := 0.0
		for w, c := range tf {
			id, ok := dvocab[w]
			if !ok {
				id = len(dvocab)
				dvocab[w] = id
			}
			x := (1 + math.Log(c)) * idf(w)
			v[id] = x
			norm += x * x
		}
		norm = math.Sqrt(norm)
		for k := range v {
			v[k] /= norm
		}
		return v
	}
	mk := func(fs []model.Field) *side {
		s := &side{vocab: map[string]int{}}
		q := qualified(fs)
		s.fields = make([]fieldFeat, len(fs))
		for i, f := range fs {
			ff := &s.fields[i]
			ff.idx, ff.name, ff.dataType, ff.description = i, f.Name, f.DataType, f.Description
			ctx, leaf := "", f.Name
			if q {
				ctx, leaf = splitQualified(f.Name)
			}
			raw := segmentAll(splitName(leaf), dict)
			ff.long = raw
			ff.words = normalizeWords(suffixConvention(raw))
			seen := map[int]bool{}
			var sq strings.Builder
			for _, w := range ff.words {
				id := s.intern(w.w)
				s.addSurface(id, w.surf)
				ff.ids = append(ff.ids, id)
				if !seen[id] {
					seen[id] = true
					s.df[id]++
				}
				if !w.stop {
					sq.WriteString(w.w)
				}
			}
			ff.squash = sq.String()
			ff.raw = lettersOnly(f.Name)
			ff.leafRaw = lettersOnly(leaf)
			if ctx != "" {
				for _, w := range normalizeWords(segmentAll(splitName(ctx), dict)) {
					id := s.intern(w.w)
					s.addSurface(id, w.surf)
					ff.ctxIDs = append(ff.ctxIDs, id)
				}
			}
			ff.typ = NormalizeType(f.DataType)
			ff.prof = NewProfile(f.Samples)
			if informative(f.Description, len(fs)) {
				dw := descWords(f.Description)
				ff.desc = vec(dw)
				ff.hasDesc = len(ff.desc) > 0
				ff.descTerms = make(map[string]bool, len(dw))
				for _, w := range dw {
					ff.descTerms[w] = true
				}
			}
			var nw []string
			for _, w := range normalizeWords(segmentAll(splitName(f.Name), dict)) {
				if !w.stop {
					nw = append(nw, lightStem(w.w))
				}
			}
			ff.nameVec = vec(nw)
			seenT := map[string]bool{}
			for _, w := range nw {
				if !seenT[w] {
					seenT[w] = true
					ff.nameTerms = append(ff.nameTerms, w)
					ff.nameTermW = append(ff.nameTermW, idf(w))
				}
			}
		}
		// Word weights: inverse document frequency within the schema, so
		// a token shared by every column (a table prefix) counts little.
		n := float64(len(fs))
		rawdf := map[string]int{}
		for i := range s.fields {
			seen := map[string]bool{}
			for _, w := range s.fields[i].long {
				if !seen[w] {
					seen[w] = true
					rawdf[w]++
				}
			}
		}
		for i := range s.fields {
			ff := &s.fields[i]
			ff.weights = make([]float64, len(ff.ids))
			ff.wsum = 0
			for k, id := range ff.ids {
				w := math.Log(1 + n/float64(s.df[id]))
				if ff.words[k].stop && !(len(ff.ids) <= 2 && directional[ff.words[k].w]) {
					// In a two-word name a direction ("DateIn", "DateOut")
					// is the whole difference, so it keeps its weight.
					w *= 0.2
				} else if classWords[ff.words[k].w] && len(ff.ids) > 1 {
					w *= 0.5
				}
				ff.weights[k] = w
				ff.wsum += w
			}
			for _, id := range ff.ctxIDs {
				ff.ctxW = append(ff.ctxW, math.Log(1+n/float64(max(1, s.df[id]))))
			}
			// Abbreviation forms.
			var ab strings.Builder
			ff.longW = make([]float64, len(ff.long))
			common := map[string]bool{}
			for _, w := range ff.long {
				if n >= 4 && float64(rawdf[w])/n >= 0.5 {
					common[w] = true
				}
			}
			ff.abbrIsWords = true
			for k, w := range ff.long {
				if !common[w] || len(common) == len(ff.long) {
					ab.WriteString(w)
					if !isDigits(w) && !knownWords[w] && !knownWords[stem(w)] {
						ff.abbrIsWords = false
					}
				}
				ww := 1.0
				if nameStopWords[w] {
					ww = 0.25
				}
				if common[w] {
					ww = 0.2
				}
				ff.longW[k] = ww
			}
			ff.abbr = ab.String()
			ff.longStr = strings.Join(ff.long, "")
		}
		return s
	}
	ss, ts := mk(src), mk(tgt)
	// The entity a schema describes (its table name) is often left out of
	// its own column names and spelled out in the other schema's:
	// EMP_FNAME in table "employee" is the employee's first name.
	idWords := func(id string) map[string]bool {
		m := map[string]bool{}
		for _, w := range normalizeWords(segmentAll(splitName(id), dict)) {
			m[w.w] = true
		}
		return m
	}
	srcID, tgtID := idWords(srcSchema.ID), idWords(tgtSchema.ID)
	entity := func(s *side, id string, other map[string]bool) {
		for _, w := range normalizeWords(segmentAll(splitName(id), dict)) {
			// Words both ids share (a pair named after both tables)
			// distinguish neither side.
			if w.stop || isDigits(w.w) || w.w == "source" || w.w == "target" || len(w.w) < 3 || other[w.w] {
				continue
			}
			eid := s.intern(w.w)
			s.addSurface(eid, w.surf)
			s.entity = append(s.entity, eid)
		}
	}
	entity(ss, srcSchema.ID, tgtID)
	entity(ts, tgtSchema.ID, srcID)
	// Coverage needs a matched weight of about one moderately rare word
	// before it counts fully.
	k := 0.75 * math.Log(1+float64(ndocs+1))
	ss.covK, ts.covK = k, k
	return ss, ts
}

// directional particles carry meaning even though they are stop words.
var directional = setOf("in", "out", "from", "to", "off", "on")

// suffixConvention reads the common column suffixes "_at" (a timestamp),
// "_on" (a date) and "_by" (a user): created_at is a creation timestamp.
func suffixConvention(raw []string) []string {
	n := len(raw)
	if n < 2 {
		return raw
	}
	rep := map[string]string{"at": "timestamp", "on": "date", "by": "user"}[raw[n-1]]
	if rep == "" {
		return raw
	}
	out := append([]string(nil), raw[:n-1]...)
	return append(out, rep)
}

func segmentAll(raw []string, dict map[string]bool) []string {
	out := make([]string, 0, len(raw))
	for _, t := range raw {
		if _, ok := abbreviations[t]; ok {
			out = append(out, t)
			continue
		}
		if parts := segment(t, dict); parts != nil {
			out = append(out, parts...)
		} else {
			out = append(out, t)
		}
	}
	return out
}
