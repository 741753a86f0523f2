// Package textsim holds small string-similarity helpers shared by the agents
// and the orchestrator (rename detection, "did you mean" suggestions).
package textsim

// Levenshtein is the edit distance between a and b (insertions, deletions
// and substitutions of runes, each costing 1), in O(len(a)·len(b)) time and
// O(len(b)) memory.
func Levenshtein(a, b []rune) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
