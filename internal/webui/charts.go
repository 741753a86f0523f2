package webui

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Chart is a small time-series chart drawn as inline SVG by the
// templates: no script, no external image, and every label escaped like
// the rest of the page.
type Chart struct {
	ID      string
	Title   string
	Unit    string
	W, H    int
	X0, Y0  int // plot area origin (top left)
	PW, PH  int // plot area size
	Series  []Series
	YTicks  []Tick
	XTicks  []Tick
	Empty   bool
	Summary string
}

// Series is one line of a chart.
type Series struct {
	Name   string
	Class  string
	Points string
	Dots   []Dot
}

// Dot is one data point with its tooltip.
type Dot struct {
	X, Y  string
	Label string
}

// Tick is an axis label at a position in pixels.
type Tick struct {
	Pos   string
	Label string
}

type point struct {
	T     time.Time
	V     float64
	Label string
}

type seriesIn struct {
	Name, Class string
	Points      []point
}

const (
	chartW = 480
	chartH = 170
)

// lineChart lays the series out on a shared time axis and a y axis from 0
// to a rounded maximum.
func lineChart(id, title, unit string, in []seriesIn) Chart {
	c := Chart{ID: id, Title: title, Unit: unit, W: chartW, H: chartH, X0: 56, Y0: 10}
	c.PW, c.PH = c.W-c.X0-12, c.H-c.Y0-34
	var tmin, tmax time.Time
	maxV := 0.0
	n := 0
	for _, s := range in {
		for _, p := range s.Points {
			if tmin.IsZero() || p.T.Before(tmin) {
				tmin = p.T
			}
			if p.T.After(tmax) {
				tmax = p.T
			}
			if !math.IsNaN(p.V) && !math.IsInf(p.V, 0) {
				maxV = math.Max(maxV, p.V)
			}
			n++
		}
	}
	if n == 0 {
		c.Empty = true
		c.Summary = "No data yet."
		return c
	}
	top := niceCeil(maxV)
	span := tmax.Sub(tmin)
	xOf := func(t time.Time) float64 {
		if span <= 0 {
			return float64(c.X0) + float64(c.PW)/2
		}
		return float64(c.X0) + float64(t.Sub(tmin))/float64(span)*float64(c.PW)
	}
	yOf := func(v float64) float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			v = 0
		}
		return float64(c.Y0) + float64(c.PH) - v/top*float64(c.PH)
	}
	var summary []string
	for _, s := range in {
		out := Series{Name: s.Name, Class: s.Class}
		var pts []string
		last := 0.0
		for _, p := range s.Points {
			x, y := xOf(p.T), yOf(p.V)
			pts = append(pts, f1(x)+","+f1(y))
			out.Dots = append(out.Dots, Dot{X: f1(x), Y: f1(y), Label: p.Label})
			last = p.V
		}
		out.Points = strings.Join(pts, " ")
		c.Series = append(c.Series, out)
		if len(s.Points) > 0 {
			summary = append(summary, fmt.Sprintf("%s: %d points, latest %s %s", s.Name, len(s.Points), compact(last), unit))
		}
	}
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		c.YTicks = append(c.YTicks, Tick{Pos: f1(yOf(v)), Label: compact(v)})
	}
	layout := "01-02 15:04"
	if span < 24*time.Hour {
		layout = "15:04:05"
	}
	c.XTicks = append(c.XTicks, Tick{Pos: f1(xOf(tmin)), Label: tmin.UTC().Format(layout)})
	if span > 0 {
		c.XTicks = append(c.XTicks, Tick{Pos: f1(xOf(tmax)), Label: tmax.UTC().Format(layout)})
	}
	c.Summary = strings.Join(summary, "; ") + "."
	return c
}

func f1(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// compact writes 1234 as 1.2k and 0.25 as 0.25.
func compact(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', 1, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
