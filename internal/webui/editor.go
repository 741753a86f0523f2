package webui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/redact"
)

// The config editor works on a PipelineConfig written as YAML (JSON is
// accepted too: it is YAML). Problems are reported at the line and column
// of the text being edited: decoding and validation errors carry a field
// path, which is looked up in the text's YAML tree; lint errors of the
// generated Benthos config carry its own line and column, shown against the
// generated YAML.

// maxConfigText bounds an edited config.
const maxConfigText = 256 << 10

// lintIssue is one problem found in an edited config.
type lintIssue struct {
	// Where is "config" (the text being edited) or "generated" (the
	// Benthos YAML compiled from it).
	Where   string `json:"where"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (i lintIssue) String() string {
	loc := ""
	if i.Line > 0 {
		loc = fmt.Sprintf("line %d, column %d", i.Line, i.Column)
		if i.Where == "generated" {
			loc = "generated YAML " + loc
		}
		loc += ": "
	}
	if i.Path != "" {
		return loc + i.Path + ": " + i.Message
	}
	return loc + i.Message
}

// lintResult is the outcome of checking an edited config.
type lintResult struct {
	Checked        bool                  `json:"-"`
	Valid          bool                  `json:"valid"`
	Issues         []lintIssue           `json:"issues"`
	YAML           string                `json:"yaml,omitempty"`
	MissingEnv     []orchestrator.EnvRef `json:"missingEnv,omitempty"`
	Diff           string                `json:"diff,omitempty"`
	ConfigDiff     string                `json:"configDiff,omitempty"`
	Changed        bool                  `json:"changed"`
	CurrentVersion int                   `json:"currentVersion,omitempty"`

	config *model.PipelineConfig
}

// ConfigLines are the issue lines of the edited text, for marking.
func (r lintResult) ConfigLines() map[int]bool { return r.lines("config") }

// GeneratedLines are the issue lines of the generated YAML.
func (r lintResult) GeneratedLines() map[int]bool { return r.lines("generated") }

func (r lintResult) lines(where string) map[int]bool {
	m := map[int]bool{}
	for _, i := range r.Issues {
		if i.Where == where && i.Line > 0 {
			m[i.Line] = true
		}
	}
	return m
}

// Texts lists the issues as sentences.
func (r lintResult) Texts() []string {
	out := make([]string, len(r.Issues))
	for i, is := range r.Issues {
		out[i] = is.String()
	}
	return out
}

var (
	yamlLineRe     = regexp.MustCompile(`line (\d+)`)
	jsonPosRe      = regexp.MustCompile(`at (\d+):(\d+)`)
	bloblangPosRe  = regexp.MustCompile(`line (\d+) char (\d+)`)
	pathSegmentsRe = regexp.MustCompile(`([^.\[\]]+)|\[(\d+)\]`)
)

// check decodes, validates, compiles and lints text through the manager's
// dry run, and places every problem in the text. id is the pipeline being
// edited ("" for a new one).
func (u *UI) check(id, text string) lintResult {
	res := lintResult{Checked: true, Issues: []lintIssue{}}
	if len(text) > maxConfigText {
		res.Issues = append(res.Issues, lintIssue{Where: "config", Message: fmt.Sprintf("the config is larger than %d KiB", maxConfigText>>10)})
		return res
	}
	if strings.TrimSpace(text) == "" {
		res.Issues = append(res.Issues, lintIssue{Where: "config", Line: 1, Column: 1, Message: "the config is empty"})
		return res
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		line := 1
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = strings.TrimPrefix(strings.TrimPrefix(msg, m[0]), ": ")
		}
		// The YAML parser reports some errors at the line before.
		res.Issues = append(res.Issues, lintIssue{Where: "config", Line: line, Column: 1, Message: "YAML syntax error (at or just after this line): " + msg})
		return res
	}
	pc, err := orchestrator.DecodePipelineConfig([]byte(text))
	if err != nil {
		res.Issues = append(res.Issues, placeErrors(&root, err)...)
		return res
	}
	if id != "" && pc.ID != "" && pc.ID != id {
		l, c := locate(&root, "id", false)
		res.Issues = append(res.Issues, lintIssue{Where: "config", Line: l, Column: c, Path: "id",
			Message: fmt.Sprintf("is %q but this page edits pipeline %q; a pipeline's id cannot change", truncate(pc.ID, 63), id)})
		return res
	}
	dr := u.c.Manager.DryRun(pc, id)
	res.Valid, res.YAML, res.MissingEnv = dr.Valid, dr.YAML, dr.MissingEnv
	res.Diff, res.ConfigDiff, res.Changed, res.CurrentVersion = dr.Diff, dr.ConfigDiff, dr.Changed, dr.CurrentVersion
	for _, fe := range dr.Errors {
		res.Issues = append(res.Issues, placeField(&root, fe))
	}
	genLines := strings.Split(dr.YAML, "\n")
	cfgLines := strings.Split(text, "\n")
	for _, l := range dr.Lint {
		is := lintIssue{Where: "generated", Line: l.Line, Column: l.Column, Message: redact.String(l.Message)}
		if cl, cc, ok := backToConfig(genLines, cfgLines, l.Line, l.Column); ok {
			is.Message += fmt.Sprintf(" (generated YAML line %d)", l.Line)
			is.Where, is.Line, is.Column = "config", cl, cc
		}
		res.Issues = append(res.Issues, is)
	}
	if dr.Valid {
		res.config = &pc
	}
	return res
}

// placeErrors turns a decode error into located issues.
func placeErrors(root *yaml.Node, err error) []lintIssue {
	var ve *orchestrator.ValidationError
	if !errors.As(err, &ve) {
		return []lintIssue{{Where: "config", Line: 1, Column: 1, Message: redact.String(err.Error())}}
	}
	out := make([]lintIssue, 0, len(ve.Errors))
	for _, fe := range ve.Errors {
		out = append(out, placeField(root, fe))
	}
	return out
}

func placeField(root *yaml.Node, fe orchestrator.FieldError) lintIssue {
	is := lintIssue{Where: "config", Path: fe.Path, Message: redact.String(fe.Message)}
	if fe.Path == "" {
		is.Line, is.Column = 1, 1
		if m := jsonPosRe.FindStringSubmatch(fe.Message); m != nil {
			is.Line, _ = strconv.Atoi(m[1])
			is.Column, _ = strconv.Atoi(m[2])
		}
		return is
	}
	atKey := strings.HasPrefix(fe.Message, "unknown field")
	is.Line, is.Column = locate(root, fe.Path, !atKey)
	// A Bloblang error inside a transformation names its own line and
	// character; move to that spot in the text.
	if m := bloblangPosRe.FindStringSubmatch(fe.Message); m != nil {
		if v := lookup(root, fe.Path); v != nil && v.Kind == yaml.ScalarNode {
			bl, _ := strconv.Atoi(m[1])
			bc, _ := strconv.Atoi(m[2])
			if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				is.Line = v.Line + bl
				is.Column = v.Column + bc
			} else if bl == 1 {
				is.Line = v.Line
				is.Column = v.Column + bc
			}
		}
	}
	return is
}

type pathSeg struct {
	key   string
	index int
	isIdx bool
}

func splitPath(p string) []pathSeg {
	var out []pathSeg
	for _, m := range pathSegmentsRe.FindAllStringSubmatch(p, -1) {
		if m[2] != "" {
			n, _ := strconv.Atoi(m[2])
			out = append(out, pathSeg{index: n, isIdx: true})
		} else {
			out = append(out, pathSeg{key: m[1]})
		}
	}
	return out
}

// locate returns the line and column of path in the YAML tree: the value's
// position when atValue and the value is a scalar, else the key's. When the
// path leads outside the tree (a missing field), the position of the
// deepest existing ancestor is returned.
func locate(root *yaml.Node, path string, atValue bool) (int, int) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line, col := n.Line, n.Column
	if line == 0 {
		line, col = 1, 1
	}
	for _, s := range splitPath(path) {
		switch {
		case s.isIdx && n.Kind == yaml.SequenceNode && s.index < len(n.Content):
			n = n.Content[s.index]
			line, col = n.Line, n.Column
		case !s.isIdx && n.Kind == yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s.key {
					k, v := n.Content[i], n.Content[i+1]
					line, col = k.Line, k.Column
					n = v
					found = true
					break
				}
			}
			if !found {
				return line, col
			}
		default:
			return line, col
		}
	}
	if atValue && n.Kind == yaml.ScalarNode && n.Line > 0 {
		return n.Line, n.Column
	}
	return line, col
}

// lookup returns the node at path, or nil.
func lookup(root *yaml.Node, path string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, s := range splitPath(path) {
		switch {
		case s.isIdx && n.Kind == yaml.SequenceNode && s.index < len(n.Content):
			n = n.Content[s.index]
		case !s.isIdx && n.Kind == yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s.key {
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return nil
			}
			n = next
		default:
			return nil
		}
	}
	return n
}

// configYAML writes a PipelineConfig as YAML in the model's field order,
// without the timestamps the orchestrator maintains itself.
func configYAML(pc model.PipelineConfig) (string, error) {
	if pc.Transformations == nil {
		pc.Transformations = []model.Transformation{}
	}
	b, err := json.Marshal(pc)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := jsonToNode(dec, 0)
	if err != nil {
		return "", err
	}
	dropKeys(n, "metadata", "createdAt", "updatedAt")
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return out.String(), nil
}

func dropKeys(root *yaml.Node, parent string, keys ...string) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != parent {
			continue
		}
		m := root.Content[i+1]
		var kept []*yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			drop := false
			for _, k := range keys {
				if m.Content[j].Value == k {
					drop = true
				}
			}
			if !drop {
				kept = append(kept, m.Content[j], m.Content[j+1])
			}
		}
		m.Content = kept
		if len(kept) == 0 {
			m.Style = yaml.FlowStyle
		}
	}
}

// jsonToNode converts a JSON token stream to a YAML node, keeping key
// order (a map would sort it).
func jsonToNode(dec *json.Decoder, depth int) (*yaml.Node, error) {
	if depth > 64 {
		return nil, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				val, err := jsonToNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			if len(n.Content) == 0 {
				n.Style = yaml.FlowStyle
			}
			return n, nil
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for dec.More() {
				val, err := jsonToNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			if len(n.Content) == 0 {
				n.Style = yaml.FlowStyle
			}
			return n, nil
		}
		return nil, fmt.Errorf("unexpected %v", v)
	case string:
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
		if strings.Contains(v, "\n") {
			n.Style = yaml.LiteralStyle
		}
		return n, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(v.String(), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %T", tok)
}

// backToConfig finds the edited line a generated line was copied from: a
// transformation's Bloblang is carried into the generated YAML line by
// line, so a lint error inside it is shown where the user typed it. Only
// a line that occurs exactly once in the config is mapped.
func backToConfig(gen, cfg []string, line, col int) (int, int, bool) {
	if line < 1 || line > len(gen) {
		return 0, 0, false
	}
	g := strings.TrimSpace(gen[line-1])
	if len(g) < 4 {
		return 0, 0, false
	}
	found := 0
	for i, c := range cfg {
		if strings.TrimSpace(c) == g {
			if found > 0 {
				return 0, 0, false
			}
			found = i + 1
		}
	}
	if found == 0 {
		return 0, 0, false
	}
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " \t")) }
	c := col - indent(gen[line-1]) + indent(cfg[found-1])
	c = max(1, min(c, len(cfg[found-1])+1))
	return found, c, true
}
