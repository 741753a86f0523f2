package mapping

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// splitName breaks a column name into lower-case tokens at separators,
// camelCase humps, acronym ends (HTMLParser -> html, parser) and
// letter/digit boundaries, because every naming convention (snake_case,
// camelCase, "Title Case", dotted paths) must reduce to the same words.
func splitName(s string) []string {
	var out []string
	rs := []rune(s)
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			out = append(out, strings.ToLower(string(rs[start:end])))
		}
		start = -1
	}
	for i, r := range rs {
		isL, isD := unicode.IsLetter(r), unicode.IsDigit(r)
		if !isL && !isD {
			flush(i)
			continue
		}
		if start < 0 {
			start = i
			continue
		}
		prev := rs[i-1]
		switch {
		case isD != unicode.IsDigit(prev):
			flush(i)
			start = i
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			flush(i)
			start = i
		case unicode.IsUpper(prev) && unicode.IsUpper(r) && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && i-start >= 1:
			// "HTMLParser": the last capital starts the next word.
			flush(i)
			start = i
		}
	}
	flush(len(rs))
	return out
}

// stem strips English plural endings only. Heavier stemming merges words
// that columns keep apart (order/ordered/orders are close enough, but
// "status"/"state" are not), and prefix similarity covers the rest.
func stem(w string) string {
	n := len(w)
	switch {
	case n > 4 && strings.HasSuffix(w, "ies"):
		return w[:n-3] + "y"
	case n > 4 && strings.HasSuffix(w, "sses"):
		return w[:n-2]
	case n > 4 && (strings.HasSuffix(w, "xes") || strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes")):
		return w[:n-2]
	case n > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") &&
		!strings.HasSuffix(w, "is") && !strings.HasSuffix(w, "os"):
		return w[:n-1]
	}
	return w
}

// lightStem is a small Porter-style stemmer used where morphology should
// not matter (descriptions, and as one token-similarity test): "staging"
// and "stage", "examined" and "examination" share a stem.
func lightStem(w string) string {
	w = stem(w)
	for _, r := range [...]struct{ suf, rep string }{
		{"ational", "ate"}, {"ization", "ize"}, {"ation", ""}, {"ition", ""}, {"ement", ""},
		{"ment", ""}, {"ness", ""}, {"ical", "ic"}, {"ing", ""}, {"ed", ""}, {"ly", ""},
	} {
		if strings.HasSuffix(w, r.suf) && len(w)-len(r.suf) >= 4 {
			w = w[:len(w)-len(r.suf)] + r.rep
			break
		}
	}
	if n := len(w); n >= 4 && w[n-1] == w[n-2] && !isVowel(w[n-1]) && !strings.ContainsRune("lsz", rune(w[n-1])) {
		w = w[:n-1]
	}
	if n := len(w); n >= 5 && w[n-1] == 'e' {
		w = w[:n-1]
	}
	return w
}

// segment splits a run-together token such as "customernumber" into known
// words. It only fires when every piece is a known word, so unknown words
// (foreign terms, codes) are left whole rather than cut into nonsense.
func segment(tok string, dict map[string]bool) []string {
	n := len(tok)
	if n < 6 || knownWords[tok] || knownWords[stem(tok)] || !isASCIIAlpha(tok) {
		return nil
	}
	// best[i] is the best score for tok[:i]; score favours few long pieces.
	best := make([]int, n+1)
	prev := make([]int, n+1)
	for i := 1; i <= n; i++ {
		best[i] = -1
	}
	for i := 0; i < n; i++ {
		if best[i] < 0 {
			continue
		}
		for j := i + 2; j <= n; j++ {
			w := tok[i:j]
			if j-i == n || !dict[w] || (len(w) == 2 && !twoLetterWords[w]) || (len(w) == 3 && !knownWords[w]) {
				continue
			}
			sc := best[i] + len(w)*len(w)
			if sc > best[j] {
				best[j] = sc
				prev[j] = i
			}
		}
	}
	if best[n] < 0 {
		return nil
	}
	var parts []string
	for j := n; j > 0; j = prev[j] {
		parts = append(parts, tok[prev[j]:j])
	}
	if len(parts) < 2 || len(parts) > 5 {
		return nil
	}
	for i, k := 0, len(parts)-1; i < k; i, k = i+1, k-1 {
		parts[i], parts[k] = parts[k], parts[i]
	}
	return parts
}

var twoLetterWords = setOf("in", "of", "on", "at", "by", "to", "id", "no", "is", "or", "up")

func isASCIIAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// normWord is one normalised token of a name with its stop-word flag.
type normWord struct {
	w    string
	stop bool
	// surf is the word before synonym mapping ("vendor" for "supplier"):
	// abbreviations are matched against it, since "vndr" abbreviates the
	// word that was written, not its synonym.
	surf string
}

// normalizeWords expands abbreviations, strips plurals and maps synonyms to
// their canonical word so that equal concepts compare equal.
func normalizeWords(raw []string) []normWord {
	out := make([]normWord, 0, len(raw)+2)
	for _, t := range raw {
		exp, ok := abbreviations[t]
		if !ok {
			s := stem(t)
			if e, ok2 := abbreviations[s]; ok2 {
				exp = e
			} else {
				exp = []string{s}
			}
		}
		for _, w := range exp {
			surf := w
			if c, ok := canonical[w]; ok {
				w = c
			}
			out = append(out, normWord{w: w, stop: nameStopWords[w], surf: surf})
		}
	}
	return out
}

// descWords tokenises free text (descriptions) into stemmed, canonical,
// non-stop words.
func descWords(s string) []string {
	raw := splitName(s)
	out := make([]string, 0, len(raw))
	for _, t := range raw {
		if stopWords[t] || len(t) < 2 || isDigits(t) {
			continue
		}
		w := stem(t)
		if e, ok := abbreviations[w]; ok && len(e) == 1 {
			w = e[0]
		}
		if c, ok := canonical[w]; ok {
			w = c
		}
		out = append(out, lightStem(w))
	}
	return out
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isVowel(c byte) bool {
	switch c {
	case 'a', 'e', 'i', 'o', 'u':
		return true
	}
	return false
}

// jaroWinkler is the classic typo-tolerant similarity for short strings.
func jaroWinkler(a, b string) float64 {
	if a == b {
		return 1
	}
	la, lb := len(a), len(b)
	if la == 0 || lb == 0 {
		return 0
	}
	win := max(la, lb)/2 - 1
	if win < 0 {
		win = 0
	}
	var am, bm [64]bool
	if la > 64 || lb > 64 {
		return 0
	}
	m := 0
	for i := 0; i < la; i++ {
		lo, hi := max(0, i-win), min(lb-1, i+win)
		for j := lo; j <= hi; j++ {
			if !bm[j] && a[i] == b[j] {
				am[i], bm[j] = true, true
				m++
				break
			}
		}
	}
	if m == 0 {
		return 0
	}
	t, k := 0, 0
	for i := 0; i < la; i++ {
		if !am[i] {
			continue
		}
		for !bm[k] {
			k++
		}
		if a[i] != b[k] {
			t++
		}
		k++
	}
	mf := float64(m)
	j := (mf/float64(la) + mf/float64(lb) + (mf-float64(t)/2)/mf) / 3
	p := 0
	for p < 4 && p < la && p < lb && a[p] == b[p] {
		p++
	}
	return j + float64(p)*0.1*(1-j)
}

// commonPrefix returns the length of the shared prefix in bytes.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// isSubsequence reports whether every byte of short occurs in long in order.
func isSubsequence(short, long string) bool {
	j := 0
	for i := 0; i < len(long) && j < len(short); i++ {
		if long[i] == short[j] {
			j++
		}
	}
	return j == len(short)
}

// lettersOnly keeps ASCII-lower letters and digits; names are compared as
// such when a matcher looks for abbreviations.
func lettersOnly(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
