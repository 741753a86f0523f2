package discovery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// filesConnector discovers a directory of CSV/TSV and JSON Lines files: one
// entity per file, named by its path relative to the root, with a schema
// inferred from the values of the first rows.
type filesConnector struct {
	root      string
	inferRows int
	seed      int64
}

type fileHandle struct {
	path   string
	format string // csv, tsv, jsonl
	comma  rune
}

// Inferred file types.
const (
	fileTypeBoolean   = "boolean"
	fileTypeBigint    = "bigint"
	fileTypeDouble    = "double"
	fileTypeDate      = "date"
	fileTypeTimestamp = "timestamp"
	fileTypeString    = "string"
	fileTypeObject    = "object"
	fileTypeArray     = "array"
	fileTypeJSON      = "json"
)

const maxLineBytes = 16 << 20

// filesRoot extracts the directory from file:///abs/dir or file://rel/dir.
func filesRoot(dsn string) string {
	rest := dsn[strings.Index(dsn, ":")+1:]
	rest = strings.TrimPrefix(rest, "//")
	if strings.HasPrefix(rest, "localhost/") {
		rest = rest[len("localhost"):]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	if abs, err := filepath.Abs(rest); err == nil {
		return abs
	}
	return rest
}

func openFiles(_ context.Context, dsn string, opts ConnectorOptions) (Connector, error) {
	root := filesRoot(dsn)
	st, err := os.Stat(root)
	if err != nil {
		return nil, &SourceError{Op: "open", Permanent: true, Err: err}
	}
	if !st.IsDir() {
		return nil, &SourceError{Op: "open", Permanent: true, Err: fmt.Errorf("%s is not a directory", root)}
	}
	return &filesConnector{root: root, inferRows: opts.InferRows, seed: opts.Seed}, nil
}

func (c *filesConnector) Kind() string { return "file" }

func (c *filesConnector) Close() error { return nil }

func fileFormat(name string) (string, rune) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return "csv", 0
	case ".tsv", ".tab":
		return "tsv", '\t'
	case ".jsonl", ".ndjson", ".json":
		return "jsonl", 0
	}
	return "", 0
}

func (c *filesConnector) Entities(ctx context.Context, f *Filter) ([]*Entity, []SkippedTable, error) {
	var ents []*Entity
	var skipped []SkippedTable
	err := filepath.WalkDir(c.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == c.root {
				return err
			}
			rel, _ := filepath.Rel(c.root, path)
			skipped = append(skipped, SkippedTable{Table: filepath.ToSlash(rel), Reason: err.Error()})
			return nil
		}
		if d.IsDir() {
			if path != c.root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		format, comma := fileFormat(d.Name())
		if format == "" || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(c.root, path)
		rel = filepath.ToSlash(rel)
		if !f.Match("", rel) && !f.Match("", d.Name()) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := c.inspect(path, rel, format, comma)
		if err != nil {
			skipped = append(skipped, SkippedTable{Table: rel, Reason: err.Error()})
			return nil
		}
		ents = append(ents, e)
		return nil
	})
	if err != nil {
		return nil, nil, &SourceError{Op: "list files", Err: err}
	}
	return ents, skipped, nil
}

// inspect infers a file's schema from its first rows and estimates its row
// count from its size.
func (c *filesConnector) inspect(path, rel, format string, comma rune) (*Entity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	h := &fileHandle{path: path, format: format, comma: comma}
	inf := newInferrer()
	var (
		rows int64
		eof  bool
	)
	bytesRead, err := scanFile(h, func(names []string) { inf.setNames(names) }, func(vals []fileValue) error {
		inf.add(vals)
		rows++
		if rows >= int64(c.inferRows) {
			return errStopScan
		}
		return nil
	})
	switch {
	case errors.Is(err, errStopScan):
	case err != nil:
		return nil, err
	default:
		eof = true
	}
	e := &Entity{Name: rel, Kind: KindFile, Handle: h, Columns: inf.columns(), RowEstimate: rows, RowCountExact: eof}
	if !eof && bytesRead > 0 {
		e.RowEstimate = int64(float64(rows) * float64(st.Size()) / float64(bytesRead))
	}
	e.Description = fmt.Sprintf("%s file, %d bytes", strings.ToUpper(format), st.Size())
	return e, nil
}

var errStopScan = errors.New("stop scan")

// fileValue is one value read from a file: its text form and its JSON kind
// (0 for CSV text).
type fileValue struct {
	text  []byte
	null  bool
	kind  byte // 's' string, 'n' number, 'b' bool, 'o' object, 'a' array; 0 CSV text
	isInt bool
}

// scanFile reads a file row by row. onHeader receives the column names
// (CSV header, or JSON keys as they first appear: called again whenever a new
// key shows up); onRow receives the values in column order. It returns the
// bytes consumed.
func scanFile(h *fileHandle, onHeader func([]string), onRow func([]fileValue) error) (int64, error) {
	f, err := os.Open(h.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cr := &countingReader{r: f}
	br := bufio.NewReaderSize(cr, 1<<16)
	if h.format == "jsonl" {
		return scanJSONL(br, cr, onHeader, onRow)
	}
	return scanCSV(br, cr, h.comma, onHeader, onRow)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func scanCSV(br *bufio.Reader, cr *countingReader, comma rune, onHeader func([]string), onRow func([]fileValue) error) (int64, error) {
	if comma == 0 {
		// Sniff the delimiter from the header line.
		line, _ := br.Peek(64 << 10)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		comma = ','
		best := bytes.Count(line, []byte{','})
		for _, d := range []rune{';', '\t', '|'} {
			if n := bytes.Count(line, []byte(string(d))); n > best {
				comma, best = d, n
			}
		}
	}
	r := csv.NewReader(br)
	r.Comma = comma
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		onHeader(nil)
		return cr.n, nil
	}
	if err != nil {
		return cr.n, err
	}
	names := make([]string, len(header))
	seen := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if h == "" {
			h = "column_" + strconv.Itoa(i+1)
		}
		if n := seen[h]; n > 0 {
			seen[h]++
			h = h + "_" + strconv.Itoa(n+1)
		} else {
			seen[h] = 1
		}
		names[i] = h
	}
	onHeader(names)
	vals := make([]fileValue, len(names))
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return cr.n, nil
		}
		if err != nil {
			return cr.n, err
		}
		for i := range vals {
			vals[i] = fileValue{null: true}
			if i < len(rec) && rec[i] != "" {
				vals[i] = fileValue{text: []byte(rec[i])}
			}
		}
		if err := onRow(vals); err != nil {
			return cr.n, err
		}
	}
}

func scanJSONL(br *bufio.Reader, cr *countingReader, onHeader func([]string), onRow func([]fileValue) error) (int64, error) {
	var names []string
	index := map[string]int{}
	var vals []fileValue
	line := 0
	for {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: collect it whole.
			buf := append([]byte(nil), raw...)
			for errors.Is(err, bufio.ErrBufferFull) {
				raw, err = br.ReadSlice('\n')
				buf = append(buf, raw...)
				if len(buf) > maxLineBytes {
					return cr.n, fmt.Errorf("line %d is longer than %d bytes", line+1, maxLineBytes)
				}
			}
			raw = buf
		}
		if len(bytes.TrimSpace(raw)) > 0 {
			line++
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			tok, terr := dec.Token()
			if terr != nil || tok != json.Delim('{') {
				return cr.n, fmt.Errorf("line %d is not a JSON object", line)
			}
			for i := range vals {
				vals[i] = fileValue{null: true}
			}
			for dec.More() {
				kt, kerr := dec.Token()
				if kerr != nil {
					return cr.n, fmt.Errorf("line %d: %w", line, kerr)
				}
				key, _ := kt.(string)
				var v json.RawMessage
				if err := dec.Decode(&v); err != nil {
					return cr.n, fmt.Errorf("line %d: %w", line, err)
				}
				i, ok := index[key]
				if !ok {
					i = len(names)
					index[key] = i
					names = append(names, key)
					vals = append(vals, fileValue{null: true})
					onHeader(names)
				}
				vals[i] = jsonValue(v)
			}
			if err := onRow(vals); err != nil {
				return cr.n, err
			}
		}
		if err == io.EOF {
			if names == nil {
				onHeader(nil)
			}
			return cr.n, nil
		}
		if err != nil {
			return cr.n, err
		}
	}
}

func jsonValue(v json.RawMessage) fileValue {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return fileValue{null: true}
	}
	switch v[0] {
	case 'n':
		return fileValue{null: true}
	case 't', 'f':
		return fileValue{text: v, kind: 'b'}
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return fileValue{text: v, kind: 's'}
		}
		return fileValue{text: []byte(s), kind: 's'}
	case '{':
		return fileValue{text: v, kind: 'o'}
	case '[':
		return fileValue{text: v, kind: 'a'}
	}
	return fileValue{text: v, kind: 'n', isInt: !bytes.ContainsAny(v, ".eE")}
}

// inferrer narrows each column's type over the values it sees.
type inferrer struct {
	names []string
	cols  []*inferCol
}

type inferCol struct {
	seen, nulls int
	// candidate types still possible, for text values
	boolean, integer, double, date, timestamp bool
	kinds                                     map[byte]bool
	jsonFraction                              bool
}

func newInferrer() *inferrer { return &inferrer{} }

func (in *inferrer) setNames(names []string) {
	in.names = append(in.names[:0], names...)
	for len(in.cols) < len(names) {
		c := &inferCol{boolean: true, integer: true, double: true, date: true, timestamp: true, kinds: map[byte]bool{}}
		// A key that appears late was missing (null) in earlier rows.
		if len(in.cols) > 0 {
			c.nulls = in.cols[0].seen + in.cols[0].nulls
		}
		in.cols = append(in.cols, c)
	}
}

var (
	reFileInt  = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,18})$`)
	reFileNum  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
	reFileDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	reFileTS   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$`)
)

func (in *inferrer) add(vals []fileValue) {
	for i, v := range vals {
		if i >= len(in.cols) {
			break
		}
		c := in.cols[i]
		if v.null {
			c.nulls++
			continue
		}
		c.seen++
		c.kinds[v.kind] = true
		if v.kind == 'n' && !v.isInt {
			c.jsonFraction = true
		}
		if v.kind != 0 && v.kind != 's' {
			continue
		}
		s := string(v.text)
		if c.boolean && v.kind == 0 {
			l := strings.ToLower(s)
			c.boolean = l == "true" || l == "false"
		}
		if c.integer && v.kind == 0 {
			if !reFileInt.MatchString(s) {
				c.integer = false
			} else if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				c.integer = false
			}
		}
		if c.double && v.kind == 0 {
			c.double = reFileNum.MatchString(s)
		}
		if c.date {
			c.date = reFileDate.MatchString(s) && validDate(s)
		}
		if c.timestamp {
			c.timestamp = (reFileTS.MatchString(s) && validDate(s[:10])) || (reFileDate.MatchString(s) && validDate(s))
		}
	}
}

func validDate(s string) bool {
	_, err := time.Parse("2006-01-02", s)
	return err == nil
}

func (in *inferrer) columns() []Column {
	out := make([]Column, len(in.names))
	for i, n := range in.names {
		c := in.cols[i]
		t := c.typ()
		out[i] = Column{Name: n, DataType: t, Nullable: c.nulls > 0 || c.seen == 0, Class: ClassOf(t)}
		if t == fileTypeString {
			out[i].Class = ClassText
		}
	}
	return out
}

func (c *inferCol) typ() string {
	if c.seen == 0 {
		return fileTypeString
	}
	if len(c.kinds) == 1 {
		for k := range c.kinds {
			switch k {
			case 'b':
				return fileTypeBoolean
			case 'n':
				if c.jsonFraction {
					return fileTypeDouble
				}
				return fileTypeBigint
			case 'o':
				return fileTypeObject
			case 'a':
				return fileTypeArray
			}
		}
	}
	jsonOnly := !c.kinds[0]
	if jsonOnly {
		switch {
		case len(c.kinds) == 1 && c.kinds['s']:
			if c.date {
				return fileTypeDate
			}
			if c.timestamp {
				return fileTypeTimestamp
			}
			return fileTypeString
		default:
			return fileTypeJSON
		}
	}
	switch {
	case c.boolean:
		return fileTypeBoolean
	case c.integer:
		return fileTypeBigint
	case c.double:
		return fileTypeDouble
	case c.date:
		return fileTypeDate
	case c.timestamp:
		return fileTypeTimestamp
	}
	return fileTypeString
}

func (c *filesConnector) Rows(ctx context.Context, e *Entity, target int64, emit func([][]byte) error) (ReadInfo, error) {
	h := e.Handle.(*fileHandle)
	pos := map[string]int{}
	for i, col := range e.Columns {
		pos[col.Name] = i
	}
	var mapping []int // file column -> entity column
	rng := rand.New(rand.NewPCG(uint64(c.seed), 0x9e3779b97f4a7c15))
	var reservoir [][][]byte
	var n int64
	_, err := scanFile(h, func(names []string) {
		mapping = mapping[:0]
		for _, name := range names {
			if i, ok := pos[name]; ok {
				mapping = append(mapping, i)
			} else {
				mapping = append(mapping, -1)
			}
		}
	}, func(vals []fileValue) error {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		n++
		var slot int64 = -1
		if int64(len(reservoir)) < target {
			slot = int64(len(reservoir))
			reservoir = append(reservoir, nil)
		} else if j := rng.Int64N(n); j < target {
			slot = j
		}
		if slot < 0 {
			return nil
		}
		row := make([][]byte, len(e.Columns))
		for i, v := range vals {
			if i < len(mapping) && mapping[i] >= 0 && !v.null {
				row[mapping[i]] = append([]byte{}, v.text...)
			}
		}
		reservoir[slot] = row
		return nil
	})
	if err != nil {
		return ReadInfo{}, err
	}
	for _, row := range reservoir {
		if err := emit(row); err != nil {
			return ReadInfo{}, err
		}
	}
	info := ReadInfo{RowCount: n, RowCountExact: true}
	if n > target {
		info.Sampled = true
		info.Method = "reservoir sample of " + strconv.FormatInt(target, 10) + " rows"
	}
	return info, nil
}
