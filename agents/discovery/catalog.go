package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

// EntityID is the catalog id of one table of a source: stable across runs.
// Schema versions of the table are kept under the same id.
func EntityID(sourceID, table string) string { return sourceID + "/" + table }

// SchemaHash identifies a table's structure: kind, description, fields in
// order (name, type, nullability, description), primary and foreign keys.
// Statistics do not count, so a table whose data changed keeps its version.
func SchemaHash(d *SourceMetadata) string {
	type field struct {
		N string `json:"n"`
		T string `json:"t"`
		U bool   `json:"u"`
		D string `json:"d,omitempty"`
	}
	doc := struct {
		Kind string       `json:"kind"`
		Desc string       `json:"desc,omitempty"`
		F    []field      `json:"f"`
		PK   []string     `json:"pk,omitempty"`
		FK   []ForeignKey `json:"fk,omitempty"`
	}{Kind: d.Kind, Desc: d.Description, PK: d.PrimaryKey, FK: d.ForeignKeys}
	for _, f := range d.Schema.Fields {
		doc.F = append(doc.F, field{f.Name, f.DataType, f.Nullable, f.Description})
	}
	b, _ := json.Marshal(doc)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// removedHash marks the schema version that records a table's removal.
const removedHash = "removed"

// previous reads the catalog's latest document of every table of the source
// that the agent's filter selects, keyed by qualified name.
func (a *Agent) previous(ctx context.Context) (map[string]*SourceMetadata, error) {
	entries, err := a.store.QueryCatalog(ctx, metastore.CatalogQuery{SourceID: a.cfg.SourceID})
	if err != nil {
		return nil, fmt.Errorf("discovery: read catalog of %s: %w", a.cfg.SourceID, err)
	}
	out := make(map[string]*SourceMetadata, len(entries))
	for _, e := range entries {
		d := &SourceMetadata{}
		if len(e.Profile) == 0 || json.Unmarshal(e.Profile, d) != nil || d.Table == "" {
			// An entry written by someone else: rebuild what we can.
			d = &SourceMetadata{Table: e.Name, Name: e.Name, Kind: e.Kind, SourceID: e.SourceID,
				Description: e.Description, Schema: e.Schema}
			if s, n, ok := strings.Cut(e.Name, "."); ok {
				d.SchemaName, d.Name = s, n
			}
		}
		d.Schema.Version = e.Schema.Version
		if !a.filter.Match(d.SchemaName, d.Name) {
			continue
		}
		out[d.Table] = d
	}
	return out, nil
}

// DetectSchemaChanges compares a discovery result with the latest catalog
// version of each table: tables added and removed (a skipped table is never
// taken for removed), columns added, removed and renamed, types widened or
// narrowed, nullability and descriptions changed. It needs a store.
func (a *Agent) DetectSchemaChanges(ctx context.Context, res *Result) ([]SchemaChange, error) {
	if a.store == nil {
		return nil, errors.New("discovery: schema-change detection needs a metadata store")
	}
	prev, err := a.previous(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	opts := DiffOptions{RenameThreshold: a.cfg.RenameThreshold}
	changes := []SchemaChange{}
	add := func(cs []SchemaChange, from int) {
		for _, c := range cs {
			c.ID = uuid.NewString()
			c.SourceID = a.cfg.SourceID
			c.DetectedAt = now
			c.FromVersion = from
			changes = append(changes, c)
		}
	}
	seen := map[string]bool{}
	for _, t := range res.Tables {
		seen[t.Table] = true
		p := prev[t.Table]
		from := 0
		if p != nil {
			from = p.Schema.Version
			if p.SchemaHash == t.SchemaHash && p.SchemaHash != "" {
				continue
			}
		}
		add(Diff(p, t, opts), from)
	}
	for _, s := range res.Skipped {
		seen[s.Table] = true
	}
	var gone []string
	for name := range prev {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		add(Diff(prev[name], nil, opts), prev[name].Schema.Version)
	}
	return changes, nil
}

// UpdateCatalog writes the result to the store: a new schema version for
// every table whose structure hash differs from its latest version (with
// the table's changes attached), the catalog entry with its profile for
// every table, a removal version for removed tables (whose entries are
// deleted), and agent decisions for the run and for every change.
func (a *Agent) UpdateCatalog(ctx context.Context, res *Result) error {
	if a.store == nil {
		return errors.New("discovery: updating the catalog needs a metadata store")
	}
	byTable := map[string][]int{}
	for i, c := range res.Changes {
		byTable[c.Table] = append(byTable[c.Table], i)
	}
	versioned := 0
	for _, t := range res.Tables {
		id := EntityID(a.cfg.SourceID, t.Table)
		latest, err := a.store.LatestSchemaVersion(ctx, id)
		switch {
		case errors.Is(err, metastore.ErrNotFound):
		case err != nil:
			return fmt.Errorf("discovery: latest schema version of %s: %w", t.Table, err)
		}
		t.Schema.Version = latest.Version
		if err != nil || latest.Hash != t.SchemaHash {
			t.Schema.Version = latest.Version + 1
			sv, err := a.store.SaveSchemaVersion(ctx, metastore.SchemaVersion{
				SourceID: id, Schema: t.Schema, Hash: t.SchemaHash, Changes: a.changesJSON(res, byTable[t.Table], latest.Version+1),
			})
			if err != nil {
				return fmt.Errorf("discovery: save schema version of %s: %w", t.Table, err)
			}
			t.Schema.Version = sv.Version
			versioned++
			for _, i := range byTable[t.Table] {
				res.Changes[i].ToVersion = sv.Version
			}
		}
		profile, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("discovery: encode %s: %w", t.Table, err)
		}
		err = a.store.SaveCatalogEntry(ctx, metastore.CatalogEntry{
			ID: id, SourceID: a.cfg.SourceID, Name: t.Table, Kind: t.Kind, Description: t.Description,
			Schema: t.Schema, Profile: profile, RowCount: t.Stats.RowCount, UpdatedAt: t.DiscoveredAt,
		})
		if err != nil {
			return fmt.Errorf("discovery: save catalog entry %s: %w", t.Table, err)
		}
	}
	for i, c := range res.Changes {
		if c.ChangeType != ChangeTableRemoved {
			continue
		}
		id := EntityID(a.cfg.SourceID, c.Table)
		sv, err := a.store.SaveSchemaVersion(ctx, metastore.SchemaVersion{
			SourceID: id, Hash: removedHash, Changes: a.changesJSON(res, []int{i}, c.FromVersion+1),
			Schema: model.Schema{ID: id, SourceID: a.cfg.SourceID, Version: c.FromVersion + 1, Fields: []model.Field{}, Timestamp: c.DetectedAt},
		})
		if err != nil {
			return fmt.Errorf("discovery: record removal of %s: %w", c.Table, err)
		}
		res.Changes[i].ToVersion = sv.Version
		if err := a.store.DeleteCatalogEntry(ctx, id); err != nil && !errors.Is(err, metastore.ErrNotFound) {
			return fmt.Errorf("discovery: delete catalog entry %s: %w", c.Table, err)
		}
	}
	// Decisions: one per change, one for the run.
	for _, c := range res.Changes {
		d := model.AgentDecision{
			AgentID: a.cfg.AgentID, AgentType: model.AgentDiscovery, TaskID: res.RunID,
			Action: "schema_change:" + c.ChangeType, Confidence: c.Confidence, Outcome: c.Severity,
			Reasoning: fmt.Sprintf("%s.%s: %s", a.cfg.SourceID, c.Table, c.Reasoning), Timestamp: c.DetectedAt,
		}
		if err := a.store.SaveAgentDecision(ctx, d); err != nil {
			return fmt.Errorf("discovery: record decision: %w", err)
		}
	}
	outcome := "ok"
	if len(res.Skipped) > 0 {
		outcome = "partial"
	}
	sampled := 0
	for _, t := range res.Tables {
		if t.Stats.Sampled {
			sampled++
		}
	}
	reason := fmt.Sprintf("discovered %d tables of %s (%s) in %s: %d profiled on a sample, %d skipped, %d schema changes, %d new schema versions",
		len(res.Tables), a.cfg.SourceID, a.filter, res.Duration.Round(time.Millisecond), sampled, len(res.Skipped), len(res.Changes), versioned)
	if len(res.Skipped) > 0 {
		var names []string
		for _, s := range res.Skipped {
			names = append(names, s.Table+" ("+s.Reason+")")
		}
		reason += "; skipped: " + strings.Join(names, "; ")
	}
	d := model.AgentDecision{AgentID: a.cfg.AgentID, AgentType: model.AgentDiscovery, TaskID: res.RunID,
		Action: "discovery_run", Confidence: 1, Outcome: outcome, Reasoning: reason}
	if err := a.store.SaveAgentDecision(ctx, d); err != nil {
		return fmt.Errorf("discovery: record decision: %w", err)
	}
	return nil
}

func (a *Agent) changesJSON(res *Result, idx []int, to int) json.RawMessage {
	cs := make([]SchemaChange, 0, len(idx))
	for _, i := range idx {
		c := res.Changes[i]
		c.ToVersion = to
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		return nil
	}
	b, _ := json.Marshal(cs)
	return b
}
