package pgcdc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// LSN is a WAL position.
type LSN = pglogrepl.LSN

func parseLSN(s string) (LSN, error) { return pglogrepl.ParseLSN(s) }

// Op is the kind of an event.
type Op string

// Event kinds. OpRead marks rows of the initial snapshot.
const (
	OpInsert       Op = "insert"
	OpUpdate       Op = "update"
	OpDelete       Op = "delete"
	OpRead         Op = "read"
	OpSchemaChange Op = "schema_change"
	OpTruncate     Op = "truncate"
)

// Event is one captured change.
type Event struct {
	Op     Op
	Schema string
	Table  string
	// LSN is the change's WAL position (the snapshot's position for reads).
	LSN LSN
	// CommitLSN and CommitTime belong to the change's transaction; zero for
	// snapshot rows.
	CommitLSN  LSN
	CommitTime time.Time
	Xid        uint32
	// Row is the message body: the new row for insert, update and read, the
	// old row (REPLICA IDENTITY FULL) or its key for delete, a description
	// for schema_change and an empty object for truncate.
	Row map[string]any
	// Before is the old row (REPLICA IDENTITY FULL) or old key, when the
	// server sent one.
	Before map[string]any
	// Key holds the key columns' values: the primary key, else the replica
	// identity.
	Key map[string]any
	// Unchanged lists columns of an update whose large (TOASTed) value did
	// not change and was not sent, so Row lacks them.
	Unchanged []string
	// KeyChanged marks the delete emitted for the old key of an update that
	// changed the key.
	KeyChanged bool
}

// valueDecoder turns one non-NULL text-format value into a structured value.
type valueDecoder func([]byte) (any, error)

// relation is the stream's description of a table, from a Relation message.
type relation struct {
	schema, name string
	identity     byte
	cols         []relColumn
	keys         []string
	want         bool
}

type relColumn struct {
	name   string
	oid    uint32
	typmod int32
	key    bool
	dec    valueDecoder
}

// decoder turns pgoutput messages into events. It is used by one goroutine.
type decoder struct {
	tm     *pgtype.Map
	tables map[string]*tableInfo
	rels   map[uint32]*relation
	// shapes is the last known column list of each captured table, seeded
	// from the catalog at connect time, to tell a schema change from a
	// repeated Relation message.
	shapes  map[string][]ColumnDesc
	log     Logger
	inTx    bool
	txLSN   LSN
	txTime  time.Time
	txXid   uint32
	decErrs map[string]bool
}

func newDecoder(tables []*tableInfo, log Logger) *decoder {
	d := &decoder{tm: pgtype.NewMap(), tables: map[string]*tableInfo{}, rels: map[uint32]*relation{},
		shapes: map[string][]ColumnDesc{}, log: log, decErrs: map[string]bool{}}
	for _, t := range tables {
		k := tableKey(t.ident.Schema, t.ident.Name)
		d.tables[k] = t
		shape := make([]ColumnDesc, len(t.cols))
		for i, c := range t.cols {
			shape[i] = d.describe(c.name, c.typeOID, c.typmod, contains(t.keys, c.name))
		}
		d.shapes[k] = shape
	}
	return d
}

// item is what the stream goroutine hands to Next: an event, or a position
// that everything before it completes.
type item struct {
	ev  *Event
	pos LSN
}

// handle decodes one pgoutput message at walStart.
func (d *decoder) handle(walStart LSN, data []byte) ([]item, error) {
	if len(data) == 0 {
		return nil, nil
	}
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return nil, errorf("decode change", "pgoutput message %q at %s: %w", data[0], walStart, err)
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		d.inTx, d.txLSN, d.txTime, d.txXid = true, m.FinalLSN, m.CommitTime, m.Xid
	case *pglogrepl.CommitMessage:
		d.inTx = false
		return []item{{pos: m.TransactionEndLSN}}, nil
	case *pglogrepl.RelationMessage:
		return d.relation(walStart, m), nil
	case *pglogrepl.InsertMessage:
		r := d.rels[m.RelationID]
		if r == nil {
			return nil, errorf("decode change", "insert for unknown relation %d at %s", m.RelationID, walStart)
		}
		if !r.want {
			return nil, nil
		}
		row, _ := d.tuple(r, m.Tuple, false)
		return []item{{ev: d.event(OpInsert, r, walStart, row, nil, nil)}}, nil
	case *pglogrepl.UpdateMessage:
		r := d.rels[m.RelationID]
		if r == nil {
			return nil, errorf("decode change", "update for unknown relation %d at %s", m.RelationID, walStart)
		}
		if !r.want {
			return nil, nil
		}
		row, unchanged := d.tuple(r, m.NewTuple, false)
		var before map[string]any
		switch m.OldTupleType {
		case pglogrepl.UpdateMessageTupleTypeKey:
			before, _ = d.tuple(r, m.OldTuple, true)
		case pglogrepl.UpdateMessageTupleTypeOld:
			before, _ = d.tuple(r, m.OldTuple, false)
		}
		// With REPLICA IDENTITY FULL the old row carries the values of
		// unchanged TOASTed columns: the new row gets them back.
		if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld && len(unchanged) > 0 {
			var still []string
			for _, c := range unchanged {
				if v, ok := before[c]; ok {
					row[c] = v
				} else {
					still = append(still, c)
				}
			}
			unchanged = still
		}
		var out []item
		if before != nil {
			if oldKey := keyOf(r.keys, before); !reflect.DeepEqual(oldKey, keyOf(r.keys, row)) {
				// The key changed: downstream the old key must go, so a
				// delete of it comes first.
				del := d.event(OpDelete, r, walStart, maps.Clone(before), before, nil)
				del.KeyChanged = true
				out = append(out, item{ev: del})
			}
		}
		return append(out, item{ev: d.event(OpUpdate, r, walStart, row, before, unchanged)}), nil
	case *pglogrepl.DeleteMessage:
		r := d.rels[m.RelationID]
		if r == nil {
			return nil, errorf("decode change", "delete for unknown relation %d at %s", m.RelationID, walStart)
		}
		if !r.want {
			return nil, nil
		}
		old, _ := d.tuple(r, m.OldTuple, m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey)
		return []item{{ev: d.event(OpDelete, r, walStart, old, maps.Clone(old), nil)}}, nil
	case *pglogrepl.TruncateMessage:
		var out []item
		for _, id := range m.RelationIDs {
			if r := d.rels[id]; r != nil && r.want {
				d.log.Warnf("TRUNCATE of %s.%s captured: it is emitted as operation truncate and is not applied by the postgres output", r.schema, r.name)
				out = append(out, item{ev: d.event(OpTruncate, r, walStart, map[string]any{}, nil, nil)})
			}
		}
		return out, nil
	}
	return nil, nil
}

func (d *decoder) event(op Op, r *relation, lsn LSN, row, before map[string]any, unchanged []string) *Event {
	return &Event{Op: op, Schema: r.schema, Table: r.name, LSN: lsn, CommitLSN: d.txLSN, CommitTime: d.txTime, Xid: d.txXid,
		Row: row, Before: before, Key: keyOf(r.keys, row), Unchanged: unchanged}
}

// relation records a Relation message and, when a captured table's columns
// differ from what was known, returns a schema_change event.
func (d *decoder) relation(walStart LSN, m *pglogrepl.RelationMessage) []item {
	k := tableKey(m.Namespace, m.RelationName)
	t := d.tables[k]
	r := &relation{schema: m.Namespace, name: m.RelationName, identity: m.ReplicaIdentity, want: t != nil}
	var flagged []string
	for _, c := range m.Columns {
		isKey := c.Flags&1 != 0
		r.cols = append(r.cols, relColumn{name: c.Name, oid: c.DataType, typmod: c.TypeModifier, key: isKey, dec: textDecoder(d.tm, c.DataType)})
		if isKey {
			flagged = append(flagged, c.Name)
		}
	}
	r.keys = flagged
	if t != nil {
		// The catalog's key (primary key first) when all of it is still
		// there; REPLICA IDENTITY FULL flags every column.
		ok := len(t.keys) > 0
		for _, kc := range t.keys {
			if !r.hasColumn(kc) {
				ok = false
			}
		}
		if ok && (r.identity == 'f' || len(flagged) == 0) {
			r.keys = t.keys
		}
	}
	shape := make([]ColumnDesc, len(r.cols))
	for i, c := range r.cols {
		shape[i] = d.describe(c.name, c.oid, c.typmod, contains(r.keys, c.name))
	}
	d.rels[m.RelationID] = r
	if t == nil {
		return nil
	}
	if r.identity == 'n' {
		d.log.Warnf("Table %s.%s now has REPLICA IDENTITY NOTHING: its updates and deletes can no longer be captured; run ALTER TABLE %s REPLICA IDENTITY FULL",
			r.schema, r.name, t.ident.Quoted())
	}
	prev := d.shapes[k]
	d.shapes[k] = shape
	change, changed := diffColumns(prev, shape)
	if !changed {
		return nil
	}
	change.Schema, change.Table = r.schema, r.name
	d.log.Warnf("Schema change on %s.%s at %s: %s", r.schema, r.name, walStart, change.Summary())
	return []item{{ev: &Event{Op: OpSchemaChange, Schema: r.schema, Table: r.name, LSN: walStart, CommitLSN: d.txLSN,
		CommitTime: d.txTime, Xid: d.txXid, Row: change.asMap()}}}
}

func (r *relation) hasColumn(name string) bool {
	for _, c := range r.cols {
		if c.name == name {
			return true
		}
	}
	return false
}

// tuple decodes a tuple. keysOnly keeps only key columns (the server sends
// the others as NULL in a key tuple). Columns whose TOASTed value was not
// sent are left out and listed.
func (d *decoder) tuple(r *relation, t *pglogrepl.TupleData, keysOnly bool) (map[string]any, []string) {
	row := make(map[string]any, len(r.cols))
	if t == nil {
		return row, nil
	}
	var unchanged []string
	for i, c := range t.Columns {
		if i >= len(r.cols) {
			break
		}
		col := &r.cols[i]
		if keysOnly && !col.key {
			continue
		}
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			row[col.name] = nil
		case pglogrepl.TupleDataTypeToast:
			unchanged = append(unchanged, col.name)
		case pglogrepl.TupleDataTypeText:
			row[col.name] = d.value(r, col, c.Data)
		case pglogrepl.TupleDataTypeBinary:
			v, err := pgutil.NewDecoder(d.tm, col.oid, pgtype.BinaryFormatCode)(c.Data)
			if err != nil {
				v = c.Data
			}
			row[col.name] = v
		}
	}
	return row, unchanged
}

// value decodes one text value; a value its type's decoder cannot read is
// kept as its text (and logged once per column) rather than dropped.
func (d *decoder) value(r *relation, col *relColumn, data []byte) any {
	v, err := col.dec(data)
	if err == nil {
		return v
	}
	k := r.schema + "." + r.name + "." + col.name
	if !d.decErrs[k] {
		d.decErrs[k] = true
		d.log.Warnf("Column %s (type oid %d): %v; its values are passed on as text", k, col.oid, err)
	}
	return string(data)
}

func keyOf(keys []string, row map[string]any) map[string]any {
	if len(keys) == 0 || row == nil {
		return nil
	}
	k := make(map[string]any, len(keys))
	for _, c := range keys {
		if v, ok := row[c]; ok {
			k[c] = v
		}
	}
	return k
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// textDecoder returns the decoder for a type's text output. The common types
// are parsed directly; every other type goes through pgx's codecs and the
// same normalisation as the postgres input (exact numerics, canonical
// strings for UUIDs and addresses).
func textDecoder(tm *pgtype.Map, oid uint32) valueDecoder {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID:
		return func(b []byte) (any, error) { return strconv.ParseInt(string(b), 10, 64) }
	case pgtype.BoolOID:
		return func(b []byte) (any, error) {
			switch string(b) {
			case "t":
				return true, nil
			case "f":
				return false, nil
			}
			return nil, fmt.Errorf("boolean %q", b)
		}
	case pgtype.Float4OID, pgtype.Float8OID:
		return func(b []byte) (any, error) {
			f, err := strconv.ParseFloat(string(b), 64)
			if err != nil {
				return nil, err
			}
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return string(b), nil
			}
			return f, nil
		}
	case pgtype.NumericOID:
		return func(b []byte) (any, error) {
			s := string(b)
			switch s {
			case "NaN", "Infinity", "-Infinity":
				return s, nil
			}
			return json.Number(s), nil
		}
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UUIDOID:
		return func(b []byte) (any, error) { return string(b), nil }
	case pgtype.JSONOID, pgtype.JSONBOID:
		return func(b []byte) (any, error) {
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, err
			}
			return v, nil
		}
	}
	generic := pgutil.NewDecoder(tm, oid, pgtype.TextFormatCode)
	utc := func(b []byte) (any, error) {
		v, err := generic(b)
		if t, ok := v.(time.Time); ok {
			v = t.UTC()
		}
		return v, err
	}
	var layout string
	switch oid {
	case pgtype.TimestamptzOID:
		layout = "2006-01-02 15:04:05.999999999-07"
	case pgtype.TimestampOID:
		layout = "2006-01-02 15:04:05.999999999"
	case pgtype.DateOID:
		layout = "2006-01-02"
	default:
		return utc
	}
	return func(b []byte) (any, error) {
		s := string(b)
		switch s {
		case "infinity", "-infinity":
			return s, nil
		}
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
		return utc(b) // BC dates, years past 9999, unusual offsets
	}
}

// ColumnDesc describes a column in a schema_change event.
type ColumnDesc struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	TypeOID      uint32 `json:"type_oid"`
	TypeModifier int32  `json:"type_modifier"`
	Key          bool   `json:"key"`
}

func (d *decoder) describe(name string, oid uint32, typmod int32, key bool) ColumnDesc {
	return ColumnDesc{Name: name, Type: typeName(d.tm, oid, typmod), TypeOID: oid, TypeModifier: typmod, Key: key}
}

// typeName names a type for people: pgx's name for built-in types with the
// common modifiers, numeric(p,s) and varchar(n).
func typeName(tm *pgtype.Map, oid uint32, typmod int32) string {
	t, ok := tm.TypeForOID(oid)
	if !ok {
		return "oid " + strconv.FormatUint(uint64(oid), 10)
	}
	name := t.Name
	if typmod < 0 {
		return name
	}
	switch oid {
	case pgtype.NumericOID:
		m := typmod - 4
		return fmt.Sprintf("%s(%d,%d)", name, (m>>16)&0xffff, m&0xffff)
	case pgtype.VarcharOID, pgtype.BPCharOID:
		return fmt.Sprintf("%s(%d)", name, typmod-4)
	case pgtype.TimestampOID, pgtype.TimestamptzOID, pgtype.TimeOID:
		return fmt.Sprintf("%s(%d)", name, typmod)
	}
	return name
}

// SchemaChange describes how a captured table's columns changed.
type SchemaChange struct {
	Schema      string         `json:"schema"`
	Table       string         `json:"table"`
	Columns     []ColumnDesc   `json:"columns"`
	Previous    []ColumnDesc   `json:"previous_columns"`
	Added       []string       `json:"added"`
	Dropped     []string       `json:"dropped"`
	Renamed     []ColumnRename `json:"renamed"`
	TypeChanged []TypeChange   `json:"type_changed"`
	KeyChanged  bool           `json:"key_changed"`
}

// ColumnRename is a column that kept its position and type but not its name.
type ColumnRename struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// TypeChange is a column whose type or type modifier changed.
type TypeChange struct {
	Column string `json:"column"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// diffColumns compares two column lists. A dropped and an added column at
// the same position with the same type are reported as a rename.
func diffColumns(prev, cur []ColumnDesc) (SchemaChange, bool) {
	c := SchemaChange{Columns: cur, Previous: prev, Added: []string{}, Dropped: []string{}, Renamed: []ColumnRename{}, TypeChanged: []TypeChange{}}
	if prev == nil {
		return c, false
	}
	old := map[string]int{}
	for i, p := range prev {
		old[p.Name] = i
	}
	now := map[string]int{}
	for i, n := range cur {
		now[n.Name] = i
	}
	var added, dropped []int
	for i, n := range cur {
		j, ok := old[n.Name]
		if !ok {
			added = append(added, i)
			continue
		}
		p := prev[j]
		if p.TypeOID != n.TypeOID || p.TypeModifier != n.TypeModifier {
			c.TypeChanged = append(c.TypeChanged, TypeChange{Column: n.Name, From: p.Type, To: n.Type})
		}
		if p.Key != n.Key {
			c.KeyChanged = true
		}
	}
	for j, p := range prev {
		if _, ok := now[p.Name]; !ok {
			dropped = append(dropped, j)
		}
	}
	// Pair renames: the same ordinal position among the surviving columns
	// and the same type.
	used := map[int]bool{}
	for _, i := range added {
		renamed := false
		for _, j := range dropped {
			if !used[j] && i == j && prev[j].TypeOID == cur[i].TypeOID {
				used[j] = true
				c.Renamed = append(c.Renamed, ColumnRename{From: prev[j].Name, To: cur[i].Name})
				renamed = true
				break
			}
		}
		if !renamed {
			c.Added = append(c.Added, cur[i].Name)
		}
	}
	for _, j := range dropped {
		if !used[j] {
			c.Dropped = append(c.Dropped, prev[j].Name)
		}
	}
	changed := len(c.Added)+len(c.Dropped)+len(c.Renamed)+len(c.TypeChanged) > 0 || c.KeyChanged
	return c, changed
}

// Summary is a one-line description for logs.
func (c SchemaChange) Summary() string {
	var parts []string
	if len(c.Added) > 0 {
		parts = append(parts, "added "+strings.Join(c.Added, ", "))
	}
	if len(c.Dropped) > 0 {
		parts = append(parts, "dropped "+strings.Join(c.Dropped, ", "))
	}
	for _, r := range c.Renamed {
		parts = append(parts, "renamed "+r.From+" to "+r.To)
	}
	for _, t := range c.TypeChanged {
		parts = append(parts, "changed "+t.Column+" from "+t.From+" to "+t.To)
	}
	if c.KeyChanged {
		parts = append(parts, "changed the key columns")
	}
	return strings.Join(parts, "; ")
}

func (c SchemaChange) asMap() map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&m)
	return m
}
