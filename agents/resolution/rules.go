package resolution

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

// Rule is a user rule: when the CEL expression When is true for an error,
// Strategy is applied (and Category, if set, overrides the classification).
//
// When sees three variables:
//
//	error   map: message, sqlstate, code, category, transient, fingerprint,
//	        template, table, column, constraint, source, component,
//	        pipeline, attempts (int)
//	record  the record (a map) that failed, {} when unknown
//	meta    the message metadata, map of strings
//
// Example: error.sqlstate.startsWith("23") && record.country == "US".
// A key that is absent makes the expression an error, which counts as no
// match; guard optional keys with has(record.country).
type Rule struct {
	Name     string `json:"name,omitempty"`
	When     string `json:"when"`
	Strategy string `json:"strategy"`
	Category string `json:"category,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// RuleError is a rule that does not compile, with the position of the
// problem inside its expression (1-based line and column).
type RuleError struct {
	Index   int
	Name    string
	Line    int
	Column  int
	Message string
}

func (e *RuleError) Error() string {
	who := fmt.Sprintf("rule %d", e.Index+1)
	if e.Name != "" {
		who += fmt.Sprintf(" (%s)", e.Name)
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s: when: line %d, column %d: %s", who, e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("%s: %s", who, e.Message)
}

// RuleSet is a compiled, ordered list of rules; the first match wins. It is
// safe for concurrent use.
type RuleSet struct {
	rules []compiledRule
}

type compiledRule struct {
	Rule
	prg cel.Program
}

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

func ruleEnv() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		celEnv, celEnvErr = cel.NewEnv(
			cel.Variable("error", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("record", cel.DynType),
			cel.Variable("meta", cel.MapType(cel.StringType, cel.StringType)),
		)
	})
	return celEnv, celEnvErr
}

// CheckRuleExpression compiles one CEL expression and returns a *RuleError
// (with Index 0) describing the first problem, or nil.
func CheckRuleExpression(expr string) error {
	_, err := compileRule(0, Rule{When: expr, Strategy: "skip"})
	return err
}

func compileRule(i int, r Rule) (compiledRule, error) {
	bad := func(line, col int, format string, args ...any) error {
		return &RuleError{Index: i, Name: r.Name, Line: line, Column: col, Message: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(r.When) == "" {
		return compiledRule{}, bad(0, 0, "when is empty")
	}
	if !ValidStrategy(r.Strategy) {
		return compiledRule{}, bad(0, 0, "strategy %q is not one of %s", r.Strategy, strings.Join(Strategies(), ", "))
	}
	if r.Category != "" {
		if _, ok := ParseCategory(r.Category); !ok {
			return compiledRule{}, bad(0, 0, "category %q is not in the taxonomy", r.Category)
		}
	}
	env, err := ruleEnv()
	if err != nil {
		return compiledRule{}, fmt.Errorf("building the CEL environment: %w", err)
	}
	ast, iss := env.Compile(r.When)
	if iss != nil && iss.Err() != nil {
		errs := iss.Errors()
		if len(errs) > 0 {
			loc := errs[0].Location
			return compiledRule{}, bad(loc.Line(), loc.Column()+1, "%s", errs[0].Message)
		}
		return compiledRule{}, bad(0, 0, "%v", iss.Err())
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return compiledRule{}, bad(1, 1, "the expression is a %s, it must be a bool", t)
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return compiledRule{}, bad(0, 0, "%v", err)
	}
	return compiledRule{Rule: r, prg: prg}, nil
}

// CompileRules compiles rules in order. Every invalid rule is reported
// (joined), each with its position.
func CompileRules(rules []Rule) (*RuleSet, error) {
	rs := &RuleSet{}
	var errs []error
	for i, r := range rules {
		c, err := compileRule(i, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rs.rules = append(rs.rules, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// Len is the number of rules.
func (rs *RuleSet) Len() int {
	if rs == nil {
		return 0
	}
	return len(rs.rules)
}

// RuleInput is what a rule is evaluated against.
type RuleInput struct {
	Error  map[string]any
	Record any
	Meta   map[string]string
}

// Match returns the first rule whose expression is true. Evaluation errors
// (a missing key, a type mismatch) count as no match and are returned
// joined so that a caller can log them.
func (rs *RuleSet) Match(in RuleInput) (Rule, bool, error) {
	if rs == nil || len(rs.rules) == 0 {
		return Rule{}, false, nil
	}
	rec := in.Record
	if rec == nil {
		rec = map[string]any{}
	}
	meta := in.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	vars := map[string]any{"error": in.Error, "record": rec, "meta": meta}
	var errs []error
	for i, r := range rs.rules {
		out, _, err := r.prg.Eval(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %d (%s): %w", i+1, r.Name, err))
			continue
		}
		if b, ok := out.(types.Bool); ok && bool(b) {
			return r.Rule, true, errors.Join(errs...)
		}
	}
	return Rule{}, false, errors.Join(errs...)
}

// celValue converts a record value into what CEL's default type adapter
// understands: JSON numbers become int64 or float64, nested maps and lists
// are converted recursively, and anything else that is not a plain scalar
// becomes its string form.
func celValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int64, float64, uint64, []byte, time.Time:
		return x
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint32:
		return uint64(x)
	case float32:
		return float64(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return string(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = celValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = celValue(e)
		}
		return out
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}
