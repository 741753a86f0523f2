package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/agentetl/agentetl/internal/model"
)

// ParseSchema decodes a Schema document and validates it. Syntax and type
// errors name their line and column, because a schema file with a stray
// comma is the most common bad input and an offset is useless to a human.
func ParseSchema(data []byte) (model.Schema, error) {
	var s model.Schema
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return s, positionError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		// The offset is just past the first token after the object.
		l, c := lineCol(data, max(dec.InputOffset()-1, 0))
		return s, fmt.Errorf("line %d, column %d: unexpected data after the schema object", l, c)
	}
	for i := range s.Fields {
		s.Fields[i].Samples = normalizeNumbers(s.Fields[i].Samples)
	}
	if err := ValidateSchema(s); err != nil {
		return s, err
	}
	return s, nil
}

// normalizeNumbers turns json.Number samples into float64 (integers that do
// not fit a float exactly stay strings so that no digit is lost).
func normalizeNumbers(vs []any) []any {
	for i, v := range vs {
		if n, ok := v.(json.Number); ok {
			if f, err := n.Float64(); err == nil && len(strings.TrimLeft(n.String(), "-")) <= 15 {
				vs[i] = f
			} else {
				vs[i] = n.String()
			}
		}
	}
	return vs
}

// ValidateSchema rejects field lists the mapping cannot be expressed on:
// empty names and duplicates (a target column fed twice, or a source
// column that cannot be told apart, makes every downstream artefact
// ambiguous).
func ValidateSchema(s model.Schema) error {
	seen := make(map[string]int, len(s.Fields))
	for i, f := range s.Fields {
		if f.Name == "" {
			return fmt.Errorf("field #%d has an empty name", i+1)
		}
		if strings.ContainsRune(f.Name, 0) {
			return fmt.Errorf("field #%d name contains a NUL character", i+1)
		}
		if j, ok := seen[f.Name]; ok {
			return fmt.Errorf("duplicate field name %q (fields #%d and #%d)", f.Name, j+1, i+1)
		}
		seen[f.Name] = i
	}
	return nil
}

func positionError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// Offset counts the offending byte; point at it, not past it.
		l, c := lineCol(data, max(se.Offset-1, 0))
		return fmt.Errorf("line %d, column %d: invalid JSON: %s", l, c, se.Error())
	case errors.As(err, &te):
		l, c := lineCol(data, te.Offset)
		path := te.Field
		if path == "" {
			path = "document"
		}
		return fmt.Errorf("line %d, column %d: %s must be %s, not JSON %s", l, c, path, jsonKind(te.Type), te.Value)
	case errors.Is(err, io.EOF):
		return errors.New("line 1, column 1: empty document, expected a schema object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		l, c := lineCol(data, int64(len(data)))
		return fmt.Errorf("line %d, column %d: unexpected end of JSON", l, c)
	}
	return err
}

// jsonKind names a Go type the way a schema author thinks of it.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// lineCol converts a byte offset into a 1-based line and column (in runes).
func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col := 1, 1
	for _, r := range string(data[:off]) {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
