// Package yamlcheck reports YAML syntax errors at the line and column where
// they are. Benthos parses configs with gopkg.in/yaml.v3, whose syntax errors
// name the line where the enclosing block starts (often off by one, and
// always "(1,1)" in lint output), which sends users to the wrong place. We
// only step in when yaml.v3 rejects a file: a second parser that tracks
// token positions then locates the problem.
package yamlcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	goccy "github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
	yamlv3 "gopkg.in/yaml.v3"
)

// Error is a syntax error with its position, printed in the same
// path(line,col) form as Benthos lint errors.
type Error struct {
	Path    string
	Line    int
	Column  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s(%d,%d) yaml syntax error: %s", e.Path, e.Line, e.Column, e.Message)
}

// Bytes checks one document; path is used in the message only.
func Bytes(path string, b []byte) error {
	var n yamlv3.Node
	v3err := yamlv3.Unmarshal(b, &n)
	if v3err == nil {
		return nil
	}
	_, perr := parser.ParseBytes(b, 0)
	var se *goccy.SyntaxError
	if errors.As(perr, &se) && se.Token != nil && se.Token.Position != nil {
		return &Error{Path: path, Line: se.Token.Position.Line, Column: se.Token.Position.Column, Message: se.Message}
	}
	msg := strings.TrimPrefix(v3err.Error(), "yaml: ")
	return &Error{Path: path, Line: 1, Column: 1, Message: msg}
}

// Paths checks files and directories the way `agentetl lint` takes them:
// a path ending in "..." is walked for .yaml and .yml files. Paths that do
// not exist are skipped; Benthos reports those itself.
func Paths(paths []string) []error {
	var errs []error
	check := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			return
		}
		if err := Bytes(p, b); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range paths {
		if strings.HasSuffix(p, "...") {
			root := strings.TrimSuffix(p, "...")
			if root == "" {
				root = "."
			}
			_ = filepath.WalkDir(root, func(fp string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && (strings.HasSuffix(fp, ".yaml") || strings.HasSuffix(fp, ".yml")) {
					check(fp)
				}
				return nil
			})
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			check(p)
		}
	}
	return errs
}
