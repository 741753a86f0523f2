package discovery_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/testpg"
)

// want is one expected change: type, column, previous column, severity and
// (for type changes) the classification.
type want struct {
	typ, column, prev, severity, typeChange string
}

type step struct {
	name string
	ddl  []string
	want []want
}

// changeScenario applies each step's DDL, runs discovery and requires
// exactly the expected changes, then checks versions and decisions.
func changeScenario(t *testing.T, dsn, schema string, exec func(...string), steps []step) {
	store := newStore(t)
	a := newAgent(t, discovery.Config{DSN: dsn, Include: []string{schema + ".*"}}, store)
	res := run(t, a)
	require.Len(t, res.Tables, 1)
	require.Len(t, res.Changes, 1, describeChanges(res.Changes))
	require.Equal(t, discovery.ChangeTableAdded, res.Changes[0].ChangeType)
	require.Equal(t, discovery.SeverityInfo, res.Changes[0].Severity)

	items := schema + ".items"
	itemsID := discovery.EntityID(a.SourceID(), items)
	versions := 1
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			exec(s.ddl...)
			res := run(t, a)
			got := res.Changes
			sort.Slice(got, func(i, j int) bool { return got[i].ChangeType+got[i].Column < got[j].ChangeType+got[j].Column })
			require.Len(t, got, len(s.want), "changes after %s:%s", s.name, describeChanges(got))
			for _, w := range s.want {
				var hit *discovery.SchemaChange
				for i := range got {
					if got[i].ChangeType == w.typ && got[i].Column == w.column {
						hit = &got[i]
					}
				}
				require.NotNil(t, hit, "want %s on %q, got:%s", w.typ, w.column, describeChanges(got))
				require.Equal(t, w.severity, hit.Severity, hit.Reasoning)
				require.Equal(t, w.prev, hit.PreviousColumn)
				require.Equal(t, w.typeChange, hit.TypeChange)
				require.NotEmpty(t, hit.Reasoning)
				require.NotEmpty(t, hit.ID)
				if w.typ == discovery.ChangeColumnRenamed {
					require.GreaterOrEqual(t, hit.Confidence, 0.6)
					require.LessOrEqual(t, hit.Confidence, 1.0)
					require.Equal(t, w.prev, hit.Before.Name)
					require.Equal(t, w.column, hit.After.Name)
				} else {
					require.Equal(t, 1.0, hit.Confidence)
				}
				if strings.HasPrefix(w.typ, "column_") || w.typ == discovery.ChangeTypeChanged || w.typ == discovery.ChangeNullability {
					require.Equal(t, versions, hit.FromVersion)
					require.Equal(t, versions+1, hit.ToVersion)
				}
			}
			if len(s.want) > 0 && s.want[0].typ != discovery.ChangeTableAdded && s.want[0].typ != discovery.ChangeTableRemoved {
				versions++
			}
			hist, err := store.GetSchemaHistory(context.Background(), itemsID)
			require.NoError(t, err)
			require.Len(t, hist, versions, "a schema version is written only when the structure changed")
			require.Equal(t, versions, table(t, res, items).Schema.Version)
		})
	}

	// The catalog keeps the profile and finds the renamed column by name.
	ctx := context.Background()
	entry, err := store.GetCatalogEntry(ctx, itemsID)
	require.NoError(t, err)
	require.Contains(t, string(entry.Profile), `"contact_email"`)
	require.Contains(t, string(entry.Profile), `"nullFraction"`)
	found, err := store.QueryCatalog(ctx, metastore.CatalogQuery{Text: "contact_email", SourceID: a.SourceID()})
	require.NoError(t, err)
	require.NotEmpty(t, found)
	require.Equal(t, items, found[0].Name)

	// Every change and every run is an agent decision with its reasoning.
	decisions, err := store.ListAgentDecisions(ctx, metastore.DecisionFilter{AgentType: model.AgentDiscovery})
	require.NoError(t, err)
	var runs, renames int
	for _, d := range decisions {
		switch d.Action {
		case "discovery_run":
			runs++
			require.Contains(t, d.Reasoning, "discovered")
		case "schema_change:" + discovery.ChangeColumnRenamed:
			renames++
			require.Contains(t, d.Reasoning, "renamed")
			require.Equal(t, discovery.SeverityBreaking, d.Outcome)
		}
	}
	require.Equal(t, len(steps)+1, runs)
	require.Equal(t, 2, renames)
}

func TestPostgresSchemaChanges(t *testing.T) {
	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE items (id int PRIMARY KEY, amount int NOT NULL, label text, email text NOT NULL,
		code text NOT NULL, legacy text, status text NOT NULL)`)
	db.Exec(t, `INSERT INTO items SELECT g, g * 3, 'label ' || g, 'u' || g || '@example.com', 'C' || (g % 50),
		'old' || (g % 7), (ARRAY['new','paid','shipped'])[1 + g % 3] FROM generate_series(1, 200) g`)
	exec := func(stmts ...string) {
		for _, s := range stmts {
			db.Exec(t, s)
		}
	}
	changeScenario(t, db.DSN, db.Schema, exec, []step{
		{"add column", []string{`ALTER TABLE items ADD COLUMN extra text`},
			[]want{{discovery.ChangeColumnAdded, "extra", "", discovery.SeverityNonBreaking, ""}}},
		{"drop column", []string{`ALTER TABLE items DROP COLUMN legacy`},
			[]want{{discovery.ChangeColumnRemoved, "legacy", "", discovery.SeverityBreaking, ""}}},
		{"rename column", []string{`ALTER TABLE items RENAME COLUMN email TO contact_email`},
			[]want{{discovery.ChangeColumnRenamed, "contact_email", "email", discovery.SeverityBreaking, ""}}},
		{"rename by copying the data", []string{`ALTER TABLE items ADD COLUMN label_text text`,
			`UPDATE items SET label_text = label`, `ALTER TABLE items DROP COLUMN label`},
			[]want{{discovery.ChangeColumnRenamed, "label_text", "label", discovery.SeverityBreaking, ""}}},
		{"widen int to bigint", []string{`ALTER TABLE items ALTER COLUMN amount TYPE bigint`},
			[]want{{discovery.ChangeTypeChanged, "amount", "", discovery.SeverityNonBreaking, discovery.TypeWidening}}},
		{"narrow text to varchar(10)", []string{`ALTER TABLE items ALTER COLUMN code TYPE varchar(10)`},
			[]want{{discovery.ChangeTypeChanged, "code", "", discovery.SeverityBreaking, discovery.TypeNarrowing}}},
		{"make nullable", []string{`ALTER TABLE items ALTER COLUMN status DROP NOT NULL`},
			[]want{{discovery.ChangeNullability, "status", "", discovery.SeverityNonBreaking, ""}}},
		{"describe column", []string{`COMMENT ON COLUMN items.code IS 'product code'`},
			[]want{{discovery.ChangeDescription, "code", "", discovery.SeverityInfo, ""}}},
		{"nothing changed", nil, nil},
		{"add table", []string{`CREATE TABLE other (id int PRIMARY KEY)`},
			[]want{{discovery.ChangeTableAdded, "", "", discovery.SeverityInfo, ""}}},
		{"drop table", []string{`DROP TABLE other`},
			[]want{{discovery.ChangeTableRemoved, "", "", discovery.SeverityBreaking, ""}}},
	})
}

func TestMariaDBSchemaChanges(t *testing.T) {
	db := newMySQL(t)
	db.exec(t, "CREATE TABLE items (id INT PRIMARY KEY, amount INT NOT NULL, label TEXT NULL, email TEXT NOT NULL, "+
		"code TEXT NOT NULL, legacy TEXT NULL, status TEXT NOT NULL)",
		"INSERT INTO items WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 200) "+
			"SELECT n, n * 3, CONCAT('label ', n), CONCAT('u', n, '@example.com'), CONCAT('C', n % 50), CONCAT('old', n % 7), "+
			"ELT(1 + n % 3, 'new', 'paid', 'shipped') FROM g")
	exec := func(stmts ...string) { db.exec(t, stmts...) }
	changeScenario(t, db.DSN, db.Name, exec, []step{
		{"add column", []string{"ALTER TABLE items ADD COLUMN extra TEXT NULL"},
			[]want{{discovery.ChangeColumnAdded, "extra", "", discovery.SeverityNonBreaking, ""}}},
		{"drop column", []string{"ALTER TABLE items DROP COLUMN legacy"},
			[]want{{discovery.ChangeColumnRemoved, "legacy", "", discovery.SeverityBreaking, ""}}},
		{"rename column", []string{"ALTER TABLE items RENAME COLUMN email TO contact_email"},
			[]want{{discovery.ChangeColumnRenamed, "contact_email", "email", discovery.SeverityBreaking, ""}}},
		{"rename by copying the data", []string{"ALTER TABLE items ADD COLUMN label_text TEXT NULL",
			"UPDATE items SET label_text = label", "ALTER TABLE items DROP COLUMN label"},
			[]want{{discovery.ChangeColumnRenamed, "label_text", "label", discovery.SeverityBreaking, ""}}},
		{"widen int to bigint", []string{"ALTER TABLE items MODIFY amount BIGINT NOT NULL"},
			[]want{{discovery.ChangeTypeChanged, "amount", "", discovery.SeverityNonBreaking, discovery.TypeWidening}}},
		{"narrow text to varchar(10)", []string{"ALTER TABLE items MODIFY code VARCHAR(10) NOT NULL"},
			[]want{{discovery.ChangeTypeChanged, "code", "", discovery.SeverityBreaking, discovery.TypeNarrowing}}},
		{"make nullable", []string{"ALTER TABLE items MODIFY status TEXT NULL"},
			[]want{{discovery.ChangeNullability, "status", "", discovery.SeverityNonBreaking, ""}}},
		{"describe column", []string{"ALTER TABLE items MODIFY code VARCHAR(10) NOT NULL COMMENT 'product code'"},
			[]want{{discovery.ChangeDescription, "code", "", discovery.SeverityInfo, ""}}},
		{"nothing changed", nil, nil},
		{"add table", []string{"CREATE TABLE other (id INT PRIMARY KEY)"},
			[]want{{discovery.ChangeTableAdded, "", "", discovery.SeverityInfo, ""}}},
		{"drop table", []string{"DROP TABLE other"},
			[]want{{discovery.ChangeTableRemoved, "", "", discovery.SeverityBreaking, ""}}},
	})
}
