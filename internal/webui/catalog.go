package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/redact"
)

type catalogRow struct {
	ID, Name, Source, Kind, Description string
	Columns                             int
	RowCount                            int64
	UpdatedAt                           time.Time
}

type catalogData struct {
	Q      string
	Rows   []catalogRow
	Limit  int
	More   string
	Total  int
	Capped bool
}

// catalogLimit is the first page of results; "more" doubles it up to
// catalogMax. The store has no offset: ranked full-text results are read
// best first, and a search that matches more asks to be refined, which
// keeps the page fast with any catalog size.
const (
	catalogLimit = 50
	catalogMax   = 100
)

func (u *UI) catalog(w http.ResponseWriter, r *http.Request, s *session) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 200 {
		q = q[:200]
	}
	limit := catalogLimit
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 {
		limit = min(n, catalogMax)
	}
	es, err := u.c.Store.QueryCatalog(r.Context(), metastore.CatalogQuery{Text: q, Limit: limit + 1})
	if err != nil {
		return fmt.Errorf("search catalog: %w", err)
	}
	d := catalogData{Q: q, Limit: limit}
	if len(es) > limit {
		es = es[:limit]
		if limit < catalogMax {
			d.More = "/ui/catalog?" + url.Values{"q": {q}, "limit": {strconv.Itoa(min(limit*2, catalogMax))}}.Encode()
		} else {
			d.Capped = true
		}
	}
	for _, e := range es {
		d.Rows = append(d.Rows, catalogRow{ID: e.ID, Name: e.Name, Source: redact.DSN(e.SourceID), Kind: e.Kind,
			Description: e.Description, Columns: len(e.Schema.Fields), RowCount: e.RowCount, UpdatedAt: e.UpdatedAt})
	}
	d.Total = len(d.Rows)
	title := "Catalog"
	if q != "" {
		title = "Catalog search: " + truncate(q, 40)
	}
	return u.render(w, r, s, "catalog", title, "catalog", d)
}

// columnRow is one column of a catalog table with its profile.
type columnRow struct {
	Name, DataType, Description string
	Nullable, Key               bool
	Profiled                    bool
	NullFraction                float64
	Distinct                    int64
	DistinctEstimated           bool
	Min, Max                    string
	AvgLength                   float64
	Semantic                    string
	SemanticConfidence          float64
	Top                         []topValue
	Sample                      []string
}

type topValue struct {
	Value     string
	Count     int64
	Frequency float64
	Width     int
}

// schemaVersionView is one schema version with its changes and a
// field-level comparison with the version before.
type schemaVersionView struct {
	Version   int
	CreatedAt time.Time
	Fields    int
	Changes   []discovery.SchemaChange
	Diff      []fieldDiff
	Worst     string
}

type fieldDiff struct {
	Kind   string // added, removed, changed, same
	Name   string
	Before string
	After  string
}

type entryData struct {
	E        metastore.CatalogEntry
	Source   string
	Doc      *discovery.SourceMetadata
	Columns  []columnRow
	Versions []schemaVersionView
	Stats    discovery.Stats
}

func (u *UI) catalogEntry(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.URL.Query().Get("id")
	if id == "" {
		return httpErr(http.StatusBadRequest, "Name a catalog entry: /ui/catalog/entry?id=…")
	}
	e, err := u.c.Store.GetCatalogEntry(r.Context(), id)
	if err != nil {
		if errors.Is(err, metastore.ErrNotFound) {
			return httpErr(http.StatusNotFound, "The catalog has no entry %q.", truncate(id, 200))
		}
		return fmt.Errorf("catalog entry: %w", err)
	}
	d := entryData{E: e, Source: redact.DSN(e.SourceID)}
	var doc discovery.SourceMetadata
	if len(e.Profile) > 0 && json.Unmarshal(e.Profile, &doc) == nil {
		d.Doc = &doc
		d.Stats = doc.Stats
	}
	keys := map[string]bool{}
	if d.Doc != nil {
		for _, k := range d.Doc.PrimaryKey {
			keys[k] = true
		}
	}
	for _, f := range e.Schema.Fields {
		c := columnRow{Name: f.Name, DataType: f.DataType, Description: f.Description, Nullable: f.Nullable, Key: keys[f.Name]}
		if d.Doc != nil {
			if fp := d.Doc.Stats.Fields[f.Name]; fp != nil {
				c.Profiled = true
				c.NullFraction, c.Distinct, c.DistinctEstimated = fp.NullFraction, fp.DistinctCount, fp.DistinctEstimated
				if fp.Min != nil {
					c.Min = fmtValue(fp.Min)
				}
				if fp.Max != nil {
					c.Max = fmtValue(fp.Max)
				}
				c.AvgLength, c.Semantic, c.SemanticConfidence = fp.AvgLength, fp.SemanticType, fp.SemanticConfidence
				for _, tv := range fp.TopValues {
					c.Top = append(c.Top, topValue{Value: fmtValue(tv.Value), Count: tv.Count, Frequency: tv.Frequency,
						Width: int(clamp01(tv.Frequency)*100 + 0.5)})
				}
				for _, sv := range fp.Sample {
					c.Sample = append(c.Sample, truncate(sv, 80))
				}
			}
		}
		d.Columns = append(d.Columns, c)
	}
	hist, err := u.c.Store.GetSchemaHistory(r.Context(), e.ID)
	if err == nil && len(hist) == 0 && e.Schema.SourceID != "" {
		hist, err = u.c.Store.GetSchemaHistory(r.Context(), e.Schema.SourceID)
	}
	if err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return fmt.Errorf("schema history: %w", err)
	}
	d.Versions = schemaVersions(hist)
	return u.render(w, r, s, "entry", "Table "+e.Name, "catalog", d)
}

// schemaVersions lists versions newest first, each compared with the one
// before it (at most 50).
func schemaVersions(hist []metastore.SchemaVersion) []schemaVersionView {
	var out []schemaVersionView
	for i := len(hist) - 1; i >= 0 && len(out) < 50; i-- {
		h := hist[i]
		v := schemaVersionView{Version: h.Version, CreatedAt: h.CreatedAt, Fields: len(h.Schema.Fields), Worst: "info"}
		if len(h.Changes) > 0 {
			var chs []discovery.SchemaChange
			if json.Unmarshal(h.Changes, &chs) == nil {
				for i := range chs {
					chs[i].Reasoning = clean(chs[i].Reasoning)
					switch {
					case chs[i].Severity == discovery.SeverityBreaking:
						v.Worst = discovery.SeverityBreaking
					case chs[i].Severity == discovery.SeverityNonBreaking && v.Worst != discovery.SeverityBreaking:
						v.Worst = discovery.SeverityNonBreaking
					}
				}
				v.Changes = chs
			}
		}
		var prev []model.Field
		if i > 0 {
			prev = hist[i-1].Schema.Fields
		}
		v.Diff = diffFields(prev, h.Schema.Fields)
		out = append(out, v)
	}
	return out
}

func fieldText(f model.Field) string {
	s := f.DataType
	if !f.Nullable {
		s += " NOT NULL"
	}
	return s
}

// diffFields compares two field lists by name: added, removed, changed
// (type, nullability or description) and unchanged, in the new order with
// removed fields last.
func diffFields(before, after []model.Field) []fieldDiff {
	old := map[string]model.Field{}
	for _, f := range before {
		old[f.Name] = f
	}
	seen := map[string]bool{}
	var out []fieldDiff
	for _, f := range after {
		seen[f.Name] = true
		o, ok := old[f.Name]
		switch {
		case !ok:
			out = append(out, fieldDiff{Kind: "added", Name: f.Name, After: fieldText(f)})
		case fieldText(o) != fieldText(f) || o.Description != f.Description:
			out = append(out, fieldDiff{Kind: "changed", Name: f.Name, Before: fieldText(o), After: fieldText(f)})
		default:
			out = append(out, fieldDiff{Kind: "same", Name: f.Name, Before: fieldText(o), After: fieldText(f)})
		}
	}
	var removed []string
	for _, f := range before {
		if !seen[f.Name] {
			removed = append(removed, f.Name)
		}
	}
	sort.Strings(removed)
	for _, n := range removed {
		out = append(out, fieldDiff{Kind: "removed", Name: n, Before: fieldText(old[n])})
	}
	return out
}
