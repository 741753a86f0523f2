package mapping

import "math"

// Assign solves the rectangular assignment problem: it picks at most one
// column per row and one row per column so that the summed score is
// maximal. A greedy pass (take the best pair, repeat) is not enough: one
// strong but wrong pair can steal the column that two other rows need.
// This is the O(n²m) shortest-augmenting-path form of the Hungarian method
// with row and column potentials. score is row-major (rows×cols); it
// returns, per row, the column or -1. Every row is assigned when rows ≤
// cols, so callers drop the pairs they consider too weak afterwards.
func Assign(rows, cols int, score []float64) []int {
	out := make([]int, rows)
	for i := range out {
		out[i] = -1
	}
	if rows == 0 || cols == 0 {
		return out
	}
	transposed := rows > cols
	n, m := rows, cols
	at := func(i, j int) float64 { return score[i*cols+j] }
	if transposed {
		n, m = cols, rows
		at = func(i, j int) float64 { return score[j*cols+i] }
	}
	// Minimise cost = -score over an n×m matrix with n ≤ m (1-indexed).
	u := make([]float64, n+1)
	v := make([]float64, m+1)
	p := make([]int, m+1)
	way := make([]int, m+1)
	minv := make([]float64, m+1)
	used := make([]bool, m+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j] = math.Inf(1)
			used[j] = false
		}
		for {
			used[j0] = true
			i0 := p[j0]
			delta := math.Inf(1)
			j1 := 0
			for j := 1; j <= m; j++ {
				if used[j] {
					continue
				}
				cur := -at(i0-1, j-1) - u[i0] - v[j]
				if cur < minv[j] {
					minv[j] = cur
					way[j] = j0
				}
				if minv[j] < delta {
					delta = minv[j]
					j1 = j
				}
			}
			for j := 0; j <= m; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	for j := 1; j <= m; j++ {
		if p[j] == 0 {
			continue
		}
		if transposed {
			out[j-1] = p[j] - 1
		} else {
			out[p[j]-1] = j - 1
		}
	}
	return out
}
