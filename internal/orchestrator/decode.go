package orchestrator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/textsim"
)

// FieldError is one problem with a PipelineConfig, at a JSON path such as
// source.connection.dsn or transformations[1].type.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (f FieldError) Error() string {
	if f.Path == "" {
		return f.Message
	}
	return f.Path + ": " + f.Message
}

// ValidationError is an invalid PipelineConfig. The API answers it with
// 400 and every FieldError.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		parts[i] = f.Error()
	}
	return "invalid pipeline config: " + strings.Join(parts, "; ")
}

func invalid(path, format string, args ...any) *ValidationError {
	return &ValidationError{Errors: []FieldError{{Path: path, Message: fmt.Sprintf(format, args...)}}}
}

// Limits of the decoder. They bound the work a hostile body can cause
// beyond the HTTP body size limit.
const (
	maxDepth   = 32
	maxNodes   = 100000
	maxStrings = 64 << 10
)

// DecodePipelineConfig parses a PipelineConfig from JSON or YAML (JSON is
// tried when the body starts with '{'). It is strict: unknown fields,
// wrong types, trailing data and duplicate keys are errors that name the
// field path. It does not validate values; see Validate.
//
// Both formats go through one generic tree and one walker over the model
// structs, so a YAML and a JSON body are held to exactly the same rules and
// report the same paths.
func DecodePipelineConfig(b []byte) (model.PipelineConfig, error) {
	var pc model.PipelineConfig
	tree, err := parseTree(b)
	if err != nil {
		return pc, err
	}
	var errs []FieldError
	nodes := 0
	checkTree(reflect.TypeOf(pc), tree, "", 0, &nodes, &errs)
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
		if len(errs) > 50 {
			errs = errs[:50]
		}
		return pc, &ValidationError{Errors: errs}
	}
	norm, err := json.Marshal(tree)
	if err != nil {
		return pc, invalid("", "cannot re-encode the document: %v", err)
	}
	if err := json.Unmarshal(norm, &pc); err != nil {
		return pc, jsonFieldError(err)
	}
	return pc, nil
}

func parseTree(b []byte) (any, error) {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return nil, invalid("", "empty body: send a PipelineConfig as JSON or YAML")
	}
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, jsonSyntaxError(trimmed, err)
		}
		if _, err := dec.Token(); err == nil {
			return nil, invalid("", "trailing data after the JSON document")
		}
		if err := checkDuplicateKeys(trimmed); err != nil {
			return nil, err
		}
		return v, nil
	}
	var n yaml.Node
	if err := yaml.Unmarshal(trimmed, &n); err != nil {
		return nil, invalid("", "body is neither a JSON object nor valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return yamlTree(&n, "", 0)
}

func jsonSyntaxError(b []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(b, int(se.Offset))
		return invalid("", "malformed JSON at %d:%d: %v", line, col, se)
	}
	return invalid("", "malformed JSON: %v", err)
}

func lineCol(b []byte, off int) (int, int) {
	if off > len(b) {
		off = len(b)
	}
	line, col := 1, 1
	for _, c := range b[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// checkDuplicateKeys walks the JSON token stream; encoding/json silently
// keeps the last of two equal keys, which would hide a mistake.
func checkDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		obj  bool
		keys map[string]bool
		path string
		next bool // object: next token is a key
		idx  int
		key  string
	}
	var stack []*frame
	childPath := func() string {
		if len(stack) == 0 {
			return ""
		}
		f := stack[len(stack)-1]
		if f.obj {
			return joinPath(f.path, f.key)
		}
		return fmt.Sprintf("%s[%d]", f.path, f.idx)
	}
	afterValue := func() {
		if len(stack) == 0 {
			return
		}
		f := stack[len(stack)-1]
		if f.obj {
			f.next = true
		} else {
			f.idx++
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // syntax errors were reported by the decoder
		}
		if len(stack) > 0 {
			f := stack[len(stack)-1]
			if f.obj && f.next {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:len(stack)-1]
					afterValue()
					continue
				}
				k, _ := tok.(string)
				if f.keys[k] {
					return invalid(joinPath(f.path, k), "duplicate key")
				}
				f.keys[k] = true
				f.key, f.next = k, false
				continue
			}
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{':
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, path: childPath(), next: true})
			case '[':
				stack = append(stack, &frame{path: childPath()})
			case ']':
				stack = stack[:len(stack)-1]
				afterValue()
			}
		default:
			afterValue()
		}
		if len(stack) == 0 {
			return nil
		}
	}
}

// yamlTree converts a YAML node to the same generic tree encoding/json
// produces, rejecting what JSON cannot express (non-string keys, anchors
// pointing at themselves) and duplicate keys.
func yamlTree(n *yaml.Node, path string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, invalid(path, "document nested deeper than %d levels", maxDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, invalid("", "empty YAML document")
		}
		return yamlTree(n.Content[0], path, depth)
	case yaml.AliasNode:
		return nil, invalid(path, "YAML aliases are not supported in pipeline configs")
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || (k.Tag != "!!str" && k.Tag != "") {
				return nil, invalid(path, "line %d: keys must be strings", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, invalid(joinPath(path, k.Value), "duplicate key (line %d)", k.Line)
			}
			v, err := yamlTree(n.Content[i+1], joinPath(path, k.Value), depth+1)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, err := yamlTree(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, invalid(path, "line %d: %v", n.Line, err)
			}
			return b, nil
		case "!!int", "!!float":
			// Kept as text so large integers survive; the walker checks
			// the target type.
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, invalid(path, "line %d: %v", n.Line, err)
			}
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, invalid(path, "line %d: numbers must be finite", n.Line)
			}
			return json.Number(strconv.FormatFloat(f, 'f', -1, 64)), nil
		case "!!timestamp":
			return n.Value, nil
		default:
			return n.Value, nil
		}
	}
	return nil, invalid(path, "unsupported YAML node")
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// checkTree compares a generic tree against the Go type of the model and
// reports unknown fields and type mismatches with their paths.
func checkTree(t reflect.Type, v any, path string, depth int, nodes *int, errs *[]FieldError) {
	*nodes++
	if *nodes > maxNodes {
		if *nodes == maxNodes+1 {
			*errs = append(*errs, FieldError{Path: path, Message: fmt.Sprintf("document has more than %d values", maxNodes)})
		}
		return
	}
	if depth > maxDepth {
		*errs = append(*errs, FieldError{Path: path, Message: "nested too deeply"})
		return
	}
	if v == nil {
		return // null is the zero value, as in encoding/json
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	add := func(format string, args ...any) {
		*errs = append(*errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case t == reflect.TypeOf(time.Time{}):
		s, ok := v.(string)
		if !ok {
			add("must be an RFC 3339 timestamp string, not %s", kindOf(v))
			return
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			add("must be an RFC 3339 timestamp: %q", truncate(s, 40))
		}
		return
	case t == reflect.TypeOf(json.RawMessage{}):
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			add("must be an object, not %s", kindOf(v))
			return
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := fields[k]
			if !ok {
				*errs = append(*errs, FieldError{Path: joinPath(path, k), Message: "unknown field" + suggest(k, fields)})
				continue
			}
			checkTree(f.Type, m[k], joinPath(path, k), depth+1, nodes, errs)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			add("must be an object, not %s", kindOf(v))
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			checkTree(t.Elem(), m[k], joinPath(path, k), depth+1, nodes, errs)
		}
	case reflect.Slice:
		s, ok := v.([]any)
		if !ok {
			add("must be an array, not %s", kindOf(v))
			return
		}
		for i, e := range s {
			checkTree(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i), depth+1, nodes, errs)
		}
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			add("must be a string, not %s", kindOf(v))
			return
		}
		if len(s) > maxStrings {
			add("is longer than %d bytes", maxStrings)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			add("must be true or false, not %s", kindOf(v))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := v.(json.Number)
		if !ok {
			add("must be an integer, not %s", kindOf(v))
			return
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || i > 1<<31-1 || i < -(1<<31) {
			add("must be an integer between %d and %d, not %s", -(1 << 31), 1<<31-1, truncate(n.String(), 30))
		}
	case reflect.Float64, reflect.Float32:
		n, ok := v.(json.Number)
		if !ok {
			add("must be a number, not %s", kindOf(v))
			return
		}
		if _, err := n.Float64(); err != nil {
			add("must be a finite number")
		}
	case reflect.Interface:
		// any: accepted as is.
	default:
		add("unsupported field type %s", t)
	}
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// suggest names the known field closest to an unknown one, for typos such
// as "destinaton".
func suggest(k string, fields map[string]reflect.StructField) string {
	best, bestD := "", 4
	for name := range fields {
		if d := editDistance(strings.ToLower(k), strings.ToLower(name)); d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	if best == "" {
		names := make([]string, 0, len(fields))
		for n := range fields {
			names = append(names, n)
		}
		sort.Strings(names)
		return " (known fields: " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	return textsim.Levenshtein([]rune(a), []rune(b))
}

func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return invalid(te.Field, "must be %s, not %s", te.Type, te.Value)
	}
	return invalid("", "%v", err)
}
