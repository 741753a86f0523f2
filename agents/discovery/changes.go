package discovery

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/textsim"
)

// DiffOptions tune change detection.
type DiffOptions struct {
	// RenameThreshold is the minimum similarity for pairing a removed column
	// with an added one as a rename (default 0.6).
	RenameThreshold float64
}

// Diff compares the previous and the current document of one table and
// returns the changes, in a stable order. prev nil means the table is new,
// cur nil that it is gone. IDs, source and timestamps are left for the
// caller to fill.
func Diff(prev, cur *SourceMetadata, opts DiffOptions) []SchemaChange {
	if opts.RenameThreshold <= 0 {
		opts.RenameThreshold = defaultRenameThreshold
	}
	switch {
	case prev == nil && cur == nil:
		return nil
	case prev == nil:
		return []SchemaChange{{Table: cur.Table, ChangeType: ChangeTableAdded, Severity: SeverityInfo, Confidence: 1,
			Reasoning: fmt.Sprintf("table %s appeared with %d columns", cur.Table, len(cur.Schema.Fields))}}
	case cur == nil:
		return []SchemaChange{{Table: prev.Table, ChangeType: ChangeTableRemoved, Severity: SeverityBreaking, Confidence: 1,
			Reasoning: fmt.Sprintf("table %s (%d columns) is no longer in the source; pipelines reading it will fail", prev.Table, len(prev.Schema.Fields))}}
	}
	dialect := cur.Connector
	table := cur.Table
	var out []SchemaChange
	prevIdx := indexFields(prev.Schema.Fields)
	curIdx := indexFields(cur.Schema.Fields)

	var removed, added []int // positions in prev / cur
	for i, f := range prev.Schema.Fields {
		if _, ok := curIdx[f.Name]; !ok {
			removed = append(removed, i)
		}
	}
	for i, f := range cur.Schema.Fields {
		if _, ok := prevIdx[f.Name]; !ok {
			added = append(added, i)
		}
	}

	// Pair removed and added columns as renames, best score first.
	type pair struct {
		r, a   int
		score  float64
		reason string
	}
	var pairs []pair
	for _, r := range removed {
		for _, a := range added {
			s, why := renameScore(dialect, prev, r, cur, a)
			if s >= opts.RenameThreshold {
				pairs = append(pairs, pair{r, a, s, why})
			}
		}
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].score > pairs[j].score })
	usedR, usedA := map[int]bool{}, map[int]bool{}
	type renamed struct{ r, a int }
	var renames []renamed
	for _, p := range pairs {
		if usedR[p.r] || usedA[p.a] {
			continue
		}
		usedR[p.r], usedA[p.a] = true, true
		before, after := prev.Schema.Fields[p.r], cur.Schema.Fields[p.a]
		out = append(out, SchemaChange{Table: table, ChangeType: ChangeColumnRenamed, Severity: SeverityBreaking,
			Column: after.Name, PreviousColumn: before.Name, Before: fieldPtr(before), After: fieldPtr(after),
			Confidence: round(p.score, 3),
			Reasoning: fmt.Sprintf("column %q was renamed to %q (confidence %.2f: %s); readers and mappings that use the old name break",
				before.Name, after.Name, p.score, p.reason)})
		renames = append(renames, renamed{p.r, p.a})
	}
	for _, r := range removed {
		if usedR[r] {
			continue
		}
		f := prev.Schema.Fields[r]
		out = append(out, SchemaChange{Table: table, ChangeType: ChangeColumnRemoved, Severity: SeverityBreaking,
			Column: f.Name, Before: fieldPtr(f), Confidence: 1,
			Reasoning: fmt.Sprintf("column %q (%s) was dropped; readers and mappings that use it break", f.Name, f.DataType)})
	}
	for _, a := range added {
		if usedA[a] {
			continue
		}
		f := cur.Schema.Fields[a]
		sev, why := SeverityNonBreaking, "it is nullable, so existing writers and readers keep working"
		if !f.Nullable {
			sev, why = SeverityBreaking, "it is NOT NULL, so writers that do not set it fail"
		}
		out = append(out, SchemaChange{Table: table, ChangeType: ChangeColumnAdded, Severity: sev,
			Column: f.Name, After: fieldPtr(f), Confidence: 1,
			Reasoning: fmt.Sprintf("column %q (%s) was added; %s", f.Name, f.DataType, why)})
	}

	// Attribute changes of columns that kept their name, then of renamed ones.
	compare := func(before, after model.Field) {
		if before.DataType != after.DataType {
			tc := CompareTypes(dialect, before.DataType, after.DataType)
			sev := SeverityBreaking
			var why string
			switch tc {
			case TypeWidening:
				sev, why = SeverityNonBreaking, "every existing value fits the new type"
			case TypeEquivalent:
				sev, why = SeverityInfo, "only the spelling of the type changed"
			case TypeNarrowing:
				why = "some values of the old type may not fit the new one"
			default:
				why = "the new type holds a different kind of value"
			}
			out = append(out, SchemaChange{Table: table, ChangeType: ChangeTypeChanged, Severity: sev, TypeChange: tc,
				Column: after.Name, Before: fieldPtr(before), After: fieldPtr(after), Confidence: 1,
				Reasoning: fmt.Sprintf("type of %q changed from %s to %s (%s): %s", after.Name, before.DataType, after.DataType, tc, why)})
		}
		if before.Nullable != after.Nullable {
			sev, why := SeverityNonBreaking, "became nullable: a relaxed constraint, though consumers may now see NULLs"
			if !after.Nullable {
				sev, why = SeverityBreaking, "became NOT NULL: writers that leave it empty now fail"
			}
			out = append(out, SchemaChange{Table: table, ChangeType: ChangeNullability, Severity: sev,
				Column: after.Name, Before: fieldPtr(before), After: fieldPtr(after), Confidence: 1,
				Reasoning: fmt.Sprintf("column %q %s", after.Name, why)})
		}
		if before.Description != after.Description {
			out = append(out, SchemaChange{Table: table, ChangeType: ChangeDescription, Severity: SeverityInfo,
				Column: after.Name, Before: fieldPtr(before), After: fieldPtr(after), Confidence: 1,
				Reasoning: fmt.Sprintf("description of %q changed from %q to %q", after.Name, before.Description, after.Description)})
		}
	}
	for _, f := range cur.Schema.Fields {
		if i, ok := prevIdx[f.Name]; ok {
			compare(prev.Schema.Fields[i], f)
		}
	}
	for _, rn := range renames {
		b, a := prev.Schema.Fields[rn.r], cur.Schema.Fields[rn.a]
		b.Name = a.Name // compare attributes only
		compare(b, a)
	}
	if prev.Description != cur.Description {
		out = append(out, SchemaChange{Table: table, ChangeType: ChangeTableDescription, Severity: SeverityInfo, Confidence: 1,
			Reasoning: fmt.Sprintf("table description changed from %q to %q", prev.Description, cur.Description)})
	}
	if !equalStrings(prev.PrimaryKey, cur.PrimaryKey) {
		// A key whose columns were only renamed is reported by the rename.
		renamedTo := map[string]string{}
		for _, rn := range renames {
			renamedTo[prev.Schema.Fields[rn.r].Name] = cur.Schema.Fields[rn.a].Name
		}
		mapped := make([]string, len(prev.PrimaryKey))
		for i, k := range prev.PrimaryKey {
			mapped[i] = k
			if n, ok := renamedTo[k]; ok {
				mapped[i] = n
			}
		}
		if !equalStrings(mapped, cur.PrimaryKey) {
			out = append(out, SchemaChange{Table: table, ChangeType: ChangePrimaryKeyChanged, Severity: SeverityInfo, Confidence: 1,
				Reasoning: fmt.Sprintf("primary key changed from (%s) to (%s); upserts keyed on it need review",
					strings.Join(prev.PrimaryKey, ", "), strings.Join(cur.PrimaryKey, ", "))})
		}
	}
	return out
}

func indexFields(fs []model.Field) map[string]int {
	m := make(map[string]int, len(fs))
	for i, f := range fs {
		m[f.Name] = i
	}
	return m
}

func fieldPtr(f model.Field) *model.Field {
	f.Samples = nil
	return &f
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// renameScore says how likely it is that column r of prev became column a
// of cur: the profiles (same data), the names, the types, the position and
// the nullability, weighted. Profiles weigh most when both sides have an
// informative one; without profiles the structure decides.
func renameScore(dialect string, prev *SourceMetadata, r int, cur *SourceMetadata, a int) (float64, string) {
	bf, af := prev.Schema.Fields[r], cur.Schema.Fields[a]
	name := NameSimilarity(bf.Name, af.Name)
	var typ float64
	switch {
	case bf.DataType == af.DataType:
		typ = 1
	case sameTypeFamily(dialect, bf.DataType, af.DataType):
		typ = 0.7
	default:
		typ = 0.1
	}
	// Position relative to the columns both versions share: a renamed
	// column keeps its place, a dropped and re-added one moves to the end.
	pos := positionSimilarity(prev, r, cur, a)
	null := 0.0
	if bf.Nullable == af.Nullable {
		null = 1
	}
	var pp, ap *FieldProfile
	if prev.Stats.Fields != nil {
		pp = prev.Stats.Fields[bf.Name]
	}
	if cur.Stats.Fields != nil {
		ap = cur.Stats.Fields[af.Name]
	}
	if informative(pp) && informative(ap) {
		prof := ProfileSimilarity(pp, ap)
		score := 0.40*prof + 0.25*name + 0.15*typ + 0.15*pos + 0.05*null
		return score, fmt.Sprintf("profile similarity %.2f, name similarity %.2f, type %s, position %.2f", prof, name, typeWord(typ), pos)
	}
	score := 0.45*name + 0.25*typ + 0.25*pos + 0.05*null
	return score, fmt.Sprintf("no comparable profiles; name similarity %.2f, type %s, position %.2f", name, typeWord(typ), pos)
}

func typeWord(t float64) string {
	switch {
	case t == 1:
		return "identical"
	case t >= 0.5:
		return "compatible"
	}
	return "different"
}

// informative is false for profiles that cannot tell columns apart: no rows,
// only NULLs or a single value.
func informative(p *FieldProfile) bool {
	return p != nil && p.DistinctCount > 1
}

func positionSimilarity(prev *SourceMetadata, r int, cur *SourceMetadata, a int) float64 {
	if r == a {
		return 1
	}
	// Compare the position among columns that exist in both versions (plus
	// this one): a rename keeps the column between the same neighbours.
	prevCur := indexFields(cur.Schema.Fields)
	curPrev := indexFields(prev.Schema.Fields)
	rankIn := func(fs []model.Field, idx int, other map[string]int) int {
		n := 0
		for i := 0; i < idx; i++ {
			if _, ok := other[fs[i].Name]; ok {
				n++
			}
		}
		return n
	}
	rp := rankIn(prev.Schema.Fields, r, prevCur)
	ra := rankIn(cur.Schema.Fields, a, curPrev)
	if rp == ra {
		return 0.9
	}
	d := math.Abs(float64(rp - ra))
	return math.Max(0, 1-d/math.Max(3, float64(len(cur.Schema.Fields))/2))
}

// NameSimilarity scores two column names in [0,1]: the best of normalised
// edit distance, word overlap and containment (email vs contact_email).
func NameSimilarity(a, b string) float64 {
	la, lb := strings.ToLower(a), strings.ToLower(b)
	if la == lb {
		return 1
	}
	ca, cb := strings.Join(nameTokens(a), ""), strings.Join(nameTokens(b), "")
	best := 0.0
	if ca != "" && cb != "" {
		d := textsim.Levenshtein([]rune(ca), []rune(cb))
		best = 1 - float64(d)/math.Max(float64(len([]rune(ca))), float64(len([]rune(cb))))
		if len(ca) >= 3 && len(cb) >= 3 && (strings.Contains(ca, cb) || strings.Contains(cb, ca)) {
			best = math.Max(best, 0.8)
		}
	}
	ta, tb := nameTokens(a), nameTokens(b)
	if len(ta) > 0 && len(tb) > 0 {
		set := map[string]int{}
		for _, t := range ta {
			set[t] |= 1
		}
		for _, t := range tb {
			set[t] |= 2
		}
		both := 0
		for _, v := range set {
			if v == 3 {
				both++
			}
		}
		best = math.Max(best, float64(both)/float64(len(set)))
	}
	return math.Max(0, math.Min(1, best))
}

// ProfileSimilarity scores two column profiles in [0,1]: null fraction,
// distinct count, average length, min, max, semantic type and overlap of the
// top values. Identical data scores 1.
func ProfileSimilarity(a, b *FieldProfile) float64 {
	if a == nil || b == nil {
		return 0
	}
	ratio := func(x, y float64) float64 {
		if x == y {
			return 1
		}
		if x <= 0 || y <= 0 {
			return 0
		}
		return math.Min(x, y) / math.Max(x, y)
	}
	eq := func(x, y any) float64 {
		if fmt.Sprint(x) == fmt.Sprint(y) {
			return 1
		}
		return 0
	}
	parts := []float64{
		1 - math.Abs(a.NullFraction-b.NullFraction),
		ratio(float64(a.DistinctCount), float64(b.DistinctCount)),
		ratio(a.AvgLength, b.AvgLength),
		eq(a.Min, b.Min),
		eq(a.Max, b.Max),
		eq(a.SemanticType, b.SemanticType),
		topOverlap(a.TopValues, b.TopValues),
	}
	sum := 0.0
	for _, p := range parts {
		sum += p
	}
	return sum / float64(len(parts))
}

func topOverlap(a, b []ValueFrequency) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	set := map[string]int{}
	for _, v := range a {
		set[fmt.Sprint(v.Value)] |= 1
	}
	for _, v := range b {
		set[fmt.Sprint(v.Value)] |= 2
	}
	both := 0
	for _, v := range set {
		if v == 3 {
			both++
		}
	}
	return float64(both) / float64(len(set))
}
