package resolution

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CheckExpr is a PostgreSQL CHECK constraint, as pg_get_constraintdef
// prints it, compiled into a predicate over records. Only a small, exactly
// understood subset is accepted: comparisons of columns with literals and
// columns, IS [NOT] NULL, length()/char_length(), = ANY (ARRAY[...]), AND,
// OR, NOT and casts. Evaluation follows SQL's three-valued logic and a CHECK
// passes when its expression is NULL, so Violated is true only when the
// expression is certainly false; anything it cannot evaluate exactly
// (unknown types, overflow) counts as passing and is left to the server.
type CheckExpr struct {
	def  string
	root node
}

// ParseCheck compiles a constraint definition such as
// "CHECK ((qty >= 0))" or "CHECK (((status)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[])))".
func ParseCheck(def string) (*CheckExpr, error) {
	s := strings.TrimSpace(def)
	if !strings.HasPrefix(strings.ToUpper(s), "CHECK") {
		return nil, fmt.Errorf("not a CHECK constraint: %q", def)
	}
	s = strings.TrimSpace(s[len("CHECK"):])
	s = strings.TrimSuffix(s, " NOT VALID")
	toks, err := lexSQL(s)
	if err != nil {
		return nil, err
	}
	p := &exprParser{toks: toks}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("unsupported CHECK expression near %q", p.toks[p.pos].text)
	}
	return &CheckExpr{def: def, root: n}, nil
}

// Violated reports whether rec certainly fails the constraint.
func (c *CheckExpr) Violated(rec map[string]any) bool {
	v := c.root.eval(rec)
	b, ok := v.(bool)
	return ok && !b
}

// String is the definition the expression was parsed from.
func (c *CheckExpr) String() string { return c.def }

// ---- lexer ----

type tokKind int

const (
	tIdent tokKind = iota
	tNumber
	tString
	tOp
	tPunct
)

type token struct {
	kind tokKind
	text string
}

func lexSQL(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string literal")
			}
			out = append(out, token{tString, b.String()})
			i = j + 1
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated identifier")
			}
			out = append(out, token{tIdent, s[i+1 : i+1+j]})
			i += j + 2
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				(s[j] == '-' || s[j] == '+') && j > i && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			out = append(out, token{tNumber, s[i:j]})
			i = j
		case c == '(' || c == ')' || c == ',' || c == '[' || c == ']':
			out = append(out, token{tPunct, string(c)})
			i++
		case c == ':' && i+1 < len(s) && s[i+1] == ':':
			out = append(out, token{tOp, "::"})
			i += 2
		case strings.ContainsRune("<>=!~-+", rune(c)):
			j := i + 1
			for j < len(s) && strings.ContainsRune("<>=!~", rune(s[j])) {
				j++
			}
			out = append(out, token{tOp, s[i:j]})
			i = j
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if !unicode.IsLetter(r) && r != '_' {
				return nil, fmt.Errorf("unsupported character %q", r)
			}
			j := i + size
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '$' {
					break
				}
				j += size
			}
			out = append(out, token{tIdent, s[i:j]})
			i = j
		}
	}
	return out, nil
}

// ---- parser ----

type exprParser struct {
	toks []token
	pos  int
}

func (p *exprParser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

func (p *exprParser) keyword(k string) bool {
	t, ok := p.peek()
	if ok && t.kind == tIdent && strings.EqualFold(t.text, k) {
		p.pos++
		return true
	}
	return false
}

func (p *exprParser) punct(c string) bool {
	t, ok := p.peek()
	if ok && t.kind == tPunct && t.text == c {
		p.pos++
		return true
	}
	return false
}

func (p *exprParser) parseOr() (node, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *exprParser) parseAnd() (node, error) {
	l, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		r, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *exprParser) parseNot() (node, error) {
	if p.keyword("NOT") {
		n, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	}
	return p.parseCmp()
}

func (p *exprParser) parseCmp() (node, error) {
	l, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	if p.keyword("IS") {
		neg := p.keyword("NOT")
		if !p.keyword("NULL") {
			return nil, fmt.Errorf("unsupported IS expression")
		}
		return isNullNode{l, neg}, nil
	}
	t, ok := p.peek()
	if !ok || t.kind != tOp {
		return l, nil
	}
	switch t.text {
	case "=", "<>", "!=", "<", "<=", ">", ">=":
	default:
		return nil, fmt.Errorf("unsupported operator %q", t.text)
	}
	p.pos++
	if t.text == "=" && p.keyword("ANY") {
		if !p.punct("(") {
			return nil, fmt.Errorf("expected ( after ANY")
		}
		list, err := p.parseArray()
		if err != nil {
			return nil, err
		}
		if !p.punct(")") {
			return nil, fmt.Errorf("expected ) after ANY list")
		}
		return anyNode{l, list}, nil
	}
	r, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	return cmpNode{t.text, l, r}, nil
}

// parseArray reads (ARRAY[...])::type[] or ARRAY[...].
func (p *exprParser) parseArray() ([]node, error) {
	paren := p.punct("(")
	if !p.keyword("ARRAY") || !p.punct("[") {
		return nil, fmt.Errorf("expected ARRAY[")
	}
	var out []node
	for {
		n, err := p.parseOperand()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		if p.punct("]") {
			break
		}
		if !p.punct(",") {
			return nil, fmt.Errorf("expected , in ARRAY")
		}
	}
	if paren && !p.punct(")") {
		return nil, fmt.Errorf("expected ) after ARRAY")
	}
	if err := p.skipCasts(); err != nil {
		return nil, err
	}
	return out, nil
}

// skipCasts consumes ::type casts; they do not change a comparison of
// values of compatible kinds.
func (p *exprParser) skipCasts() error {
	for {
		t, ok := p.peek()
		if !ok || t.kind != tOp || t.text != "::" {
			return nil
		}
		p.pos++
		if t, ok := p.peek(); !ok || t.kind != tIdent {
			return fmt.Errorf("expected a type after ::")
		}
		p.pos++
		for p.keyword("varying") || p.keyword("precision") || p.keyword("without") || p.keyword("with") ||
			p.keyword("time") || p.keyword("zone") {
		}
		if p.punct("(") {
			for !p.punct(")") {
				if _, ok := p.peek(); !ok {
					return fmt.Errorf("unterminated type modifier")
				}
				p.pos++
			}
		}
		if p.punct("[") && !p.punct("]") {
			return fmt.Errorf("expected ] in array type")
		}
	}
}

func (p *exprParser) parseOperand() (node, error) {
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("unexpected end of expression")
	}
	var n node
	switch {
	case t.kind == tPunct && t.text == "(":
		p.pos++
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if !p.punct(")") {
			return nil, fmt.Errorf("expected )")
		}
		n = inner
	case t.kind == tOp && t.text == "-":
		p.pos++
		num, ok := p.peek()
		if !ok || num.kind != tNumber {
			return nil, fmt.Errorf("unsupported unary minus")
		}
		p.pos++
		r, ok := new(big.Rat).SetString("-" + num.text)
		if !ok {
			return nil, fmt.Errorf("bad number %q", num.text)
		}
		n = litNode{ratOrInt(r)}
	case t.kind == tNumber:
		p.pos++
		r, ok := new(big.Rat).SetString(t.text)
		if !ok {
			return nil, fmt.Errorf("bad number %q", t.text)
		}
		n = litNode{ratOrInt(r)}
	case t.kind == tString:
		p.pos++
		n = litNode{t.text}
	case t.kind == tIdent:
		p.pos++
		switch strings.ToLower(t.text) {
		case "true":
			n = litNode{true}
		case "false":
			n = litNode{false}
		case "null":
			n = litNode{nil}
		case "length", "char_length", "character_length":
			if !p.punct("(") {
				return nil, fmt.Errorf("expected ( after %s", t.text)
			}
			arg, err := p.parseOperand()
			if err != nil {
				return nil, err
			}
			if !p.punct(")") {
				return nil, fmt.Errorf("expected ) after %s argument", t.text)
			}
			n = lengthNode{arg}
		default:
			if next, ok := p.peek(); ok && next.kind == tPunct && next.text == "(" {
				return nil, fmt.Errorf("unsupported function %s", t.text)
			}
			n = colNode{t.text}
		}
	default:
		return nil, fmt.Errorf("unexpected %q", t.text)
	}
	if err := p.skipCasts(); err != nil {
		return nil, err
	}
	return n, nil
}

func ratOrInt(r *big.Rat) any {
	if r.IsInt() && r.Num().IsInt64() {
		return r.Num().Int64()
	}
	return r
}

// ---- evaluation (nil means SQL NULL or "cannot tell") ----

type node interface{ eval(rec map[string]any) any }

type litNode struct{ v any }

func (n litNode) eval(map[string]any) any { return n.v }

type colNode struct{ name string }

func (n colNode) eval(rec map[string]any) any { return normalise(rec[n.name]) }

// normalise turns a record value into int64, *big.Rat, string, bool or nil.
func normalise(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string, bool:
		return x
	case int64:
		return x
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case float64:
		r := new(big.Rat)
		if r.SetFloat64(x) == nil {
			return nil
		}
		return r
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			return nil
		}
		return r
	case time.Time:
		return nil // date arithmetic and time zones: leave to the server
	}
	return nil
}

type lengthNode struct{ arg node }

func (n lengthNode) eval(rec map[string]any) any {
	s, ok := n.arg.eval(rec).(string)
	if !ok {
		return nil
	}
	return int64(utf8.RuneCountInString(s))
}

type cmpNode struct {
	op   string
	l, r node
}

func (n cmpNode) eval(rec map[string]any) any {
	a, b := n.l.eval(rec), n.r.eval(rec)
	if _, isStr := a.(string); isStr && n.op != "=" && n.op != "<>" && n.op != "!=" {
		return nil // string order depends on the collation
	}
	c, ok := compare(a, b)
	if !ok {
		return nil
	}
	switch n.op {
	case "=":
		return c == 0
	case "<>", "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return nil
}

// compare orders two non-NULL values of the same kind. Strings compare by
// bytes only for equality: ordering depends on the column's collation.
func compare(a, b any) (int, bool) {
	if x, ok := a.(int64); ok {
		if y, ok := b.(int64); ok {
			switch {
			case x < y:
				return -1, true
			case x > y:
				return 1, true
			}
			return 0, true
		}
	}
	if ra, ok := toRat(a); ok {
		if rb, ok := toRat(b); ok {
			return ra.Cmp(rb), true
		}
		return 0, false
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok && x == y {
			return 0, true
		} else if ok {
			return 1, true // only = and <> are meaningful; see eval
		}
	case bool:
		if y, ok := b.(bool); ok {
			if x == y {
				return 0, true
			}
			return 1, true
		}
	}
	return 0, false
}

func toRat(v any) (*big.Rat, bool) {
	switch x := v.(type) {
	case int64:
		return new(big.Rat).SetInt64(x), true
	case *big.Rat:
		return x, true
	}
	return nil, false
}

type anyNode struct {
	l    node
	list []node
}

func (n anyNode) eval(rec map[string]any) any {
	v := n.l.eval(rec)
	if v == nil {
		return nil
	}
	sawNull := false
	for _, e := range n.list {
		ev := e.eval(rec)
		if ev == nil {
			sawNull = true
			continue
		}
		c, ok := compare(v, ev)
		if !ok {
			return nil
		}
		if c == 0 {
			return true
		}
	}
	if sawNull {
		return nil
	}
	return false
}

type isNullNode struct {
	arg node
	neg bool
}

func (n isNullNode) eval(rec map[string]any) any {
	c, ok := n.arg.(colNode)
	if !ok {
		return nil
	}
	v, present := rec[c.name]
	if !present {
		return nil // the column is not written: its default decides
	}
	return (v == nil) != n.neg
}

type andNode struct{ l, r node }

func (n andNode) eval(rec map[string]any) any {
	a, b := n.l.eval(rec), n.r.eval(rec)
	if a == false || b == false {
		return false
	}
	if a == true && b == true {
		return true
	}
	return nil
}

type orNode struct{ l, r node }

func (n orNode) eval(rec map[string]any) any {
	a, b := n.l.eval(rec), n.r.eval(rec)
	if a == true || b == true {
		return true
	}
	if a == false && b == false {
		return false
	}
	return nil
}

type notNode struct{ n node }

func (n notNode) eval(rec map[string]any) any {
	if b, ok := n.n.eval(rec).(bool); ok {
		return !b
	}
	return nil
}
