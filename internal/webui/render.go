package webui

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentetl/agentetl/internal/redact"
)

// pageData is what the layout sees; D is the page's own data.
type pageData struct {
	Title    string
	Nav      string
	CSRF     string
	Flash    []flash
	LoggedIn bool
	Insecure bool
	D        any
}

// parseTemplates parses the layout with each page once, at start-up.
func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("webui: layout: %w", err)
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("webui: templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, fmt.Errorf("webui: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a full page: the layout around the page's "content".
func (u *UI) render(w http.ResponseWriter, r *http.Request, s *session, name, title, nav string, data any) error {
	t, ok := u.pages[name]
	if !ok {
		return fmt.Errorf("webui: no template %q", name)
	}
	pd := pageData{Title: title, Nav: nav, D: data, Insecure: u.c.Insecure}
	if s != nil {
		pd.CSRF, pd.LoggedIn = s.csrf, true
		pd.Flash = u.sessions.takeFlash(s)
	}
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return t.ExecuteTemplate(w, "layout", pd)
}

// renderFragment writes one named block of a page template, for the
// live-update endpoints.
func (u *UI) renderFragment(w http.ResponseWriter, s *session, name, block string, data any) error {
	t, ok := u.pages[name]
	if !ok {
		return fmt.Errorf("webui: no template %q", name)
	}
	pd := pageData{D: data, Insecure: u.c.Insecure}
	if s != nil {
		pd.CSRF, pd.LoggedIn = s.csrf, true
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return t.ExecuteTemplate(w, block, pd)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	return enc.Encode(v)
}

// clean redacts secrets from free text before it reaches a page.
func clean(s string) string { return redact.String(s) }

var funcs = template.FuncMap{
	"ts":      fmtTime,
	"tsp":     func(t *time.Time) string { return fmtTimePtr(t) },
	"ago":     ago,
	"dur":     fmtDuration,
	"pct":     fmtPct,
	"num":     fmtNum,
	"f2":      func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	"trunc":   truncate,
	"clean":   clean,
	"add":     func(a, b int) int { return a + b },
	"sub":     func(a, b int) int { return a - b },
	"mul":     func(a, b int) int { return a * b },
	"barw":    func(f float64, w int) int { return int(math.Round(clamp01(f) * float64(w))) },
	"lower":   strings.ToLower,
	"join":    strings.Join,
	"sev":     severityClass,
	"status":  statusClass,
	"isoTime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"lines":   splitNumbered,
	"diffl":   diffLines,
	"value":   fmtValue,
	"rate":    fmtRate,
	"list":    func(s ...string) []string { return s },
	"page":    func(csrf string, d any) pageData { return pageData{CSRF: csrf, D: d} },
	"seq": func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	},
}

func clamp01(f float64) float64 {
	if math.IsNaN(f) || f < 0 {
		return 0
	}
	if f > 1 {
		return 1
	}
	return f
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return fmtTime(*t)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "in " + fmtDuration(-d)
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func fmtPct(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "—"
	}
	f *= 100
	switch {
	case f == 0:
		return "0%"
	case f < 0.1:
		return "<0.1%"
	case f < 10:
		return strconv.FormatFloat(f, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(f, 'f', 0, 64) + "%"
}

// fmtNum writes an integer with thousands separators.
func fmtNum(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1e15 {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		n = int64(x)
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// fmtValue shows a profile value (min, max, top value) as text.
func fmtValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return truncate(x, 80)
	case float64:
		return strconv.FormatFloat(x, 'g', 10, 64)
	case json.Number:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return truncate(string(b), 80)
}

func severityClass(s string) string {
	switch s {
	case "breaking":
		return "sev-breaking"
	case "non_breaking":
		return "sev-nonbreaking"
	}
	return "sev-info"
}

func statusClass(s string) string {
	switch s {
	case "succeeded", "active", "approved", "accepted", "resolved", "ok", "online":
		return "st-ok"
	case "failed", "rejected", "unresolved", "escalate", "breaking", "offline":
		return "st-bad"
	case "running", "pending_review", "review", "paused", "queued":
		return "st-warn"
	}
	return "st-neutral"
}

type numberedLine struct {
	N    int
	Text string
	Mark bool
}

// splitNumbered splits text into numbered lines, marking the given ones.
func splitNumbered(text string, marks map[int]bool) []numberedLine {
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return nil
	}
	parts := strings.Split(text, "\n")
	out := make([]numberedLine, len(parts))
	for i, p := range parts {
		out[i] = numberedLine{N: i + 1, Text: p, Mark: marks[i+1]}
	}
	return out
}

type diffLine struct {
	Kind string // add, del, hunk, head, ctx
	Text string
}

// diffLines classifies the lines of a unified diff for colouring.
func diffLines(diff string) []diffLine {
	diff = strings.TrimSuffix(diff, "\n")
	if diff == "" {
		return nil
	}
	var out []diffLine
	for _, l := range strings.Split(diff, "\n") {
		k := "ctx"
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
			k = "head"
		case strings.HasPrefix(l, "@@"):
			k = "hunk"
		case strings.HasPrefix(l, "+"):
			k = "add"
		case strings.HasPrefix(l, "-"):
			k = "del"
		}
		out = append(out, diffLine{Kind: k, Text: l})
	}
	return out
}

var secretKeyRe = regexp.MustCompile(`(?i)pass|secret|token|api[_-]?key|credential|authorization|private[_-]?key`)

// redactValue returns a copy of a decoded JSON value with secrets masked:
// values of secret-looking keys entirely, passwords inside strings (DSNs,
// key=value text) by internal/redact.
func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if secretKeyRe.MatchString(k) {
				out[k] = redact.Mask
				continue
			}
			out[k] = redactValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e)
		}
		return out
	case string:
		return redact.String(redact.DSN(x))
	}
	return v
}

// prettyPayload renders a payload (any JSON-able value) redacted and
// indented, bounded in size.
func prettyPayload(v any) string {
	if v == nil {
		return ""
	}
	if raw, ok := v.(json.RawMessage); ok {
		var dec any
		if json.Unmarshal(raw, &dec) != nil {
			return truncate(redact.String(string(raw)), 4000)
		}
		v = dec
	} else {
		// Round-trip through JSON so that structs and maps are walked alike.
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		var dec any
		if json.Unmarshal(b, &dec) != nil {
			return ""
		}
		v = dec
	}
	b, err := json.MarshalIndent(redactValue(v), "", "  ")
	if err != nil {
		return ""
	}
	return truncate(string(b), 4000)
}

// fmtRate writes a rate: whole numbers from 10 up, one decimal below.
func fmtRate(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	if v >= 10 {
		return fmtNum(int64(math.Round(v)))
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
