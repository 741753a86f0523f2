package discovery

import (
	"fmt"
	"regexp"
	"strings"
)

// Filter selects tables by include and exclude patterns. A pattern is a glob
// in which '*' matches any run of characters (dots included) and '?' one
// character; everything else is literal and matching ignores case. A
// pattern matches a table when it matches its qualified name
// (schema.table, or the relative path of a file) or its bare name, so
// "sales.*" selects a schema, "orders" a table in any schema and "*.csv"
// every CSV file. With no include pattern every table is included; an
// exclude match always wins.
type Filter struct {
	include, exclude []*regexp.Regexp
	raw              []string
}

// NewFilter compiles the patterns. Empty patterns are ignored.
func NewFilter(include, exclude []string) (*Filter, error) {
	f := &Filter{}
	var err error
	if f.include, err = compileGlobs(include); err != nil {
		return nil, err
	}
	if f.exclude, err = compileGlobs(exclude); err != nil {
		return nil, err
	}
	for _, p := range include {
		f.raw = append(f.raw, "+"+p)
	}
	for _, p := range exclude {
		f.raw = append(f.raw, "-"+p)
	}
	return f, nil
}

func compileGlobs(patterns []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		var b strings.Builder
		b.WriteString(`(?is)^`)
		for _, r := range p {
			switch r {
			case '*':
				b.WriteString(`.*`)
			case '?':
				b.WriteString(`.`)
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString(`$`)
		re, err := regexp.Compile(b.String())
		if err != nil {
			return nil, fmt.Errorf("discovery: pattern %q: %w", p, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// Match reports whether the table schema.name is selected.
func (f *Filter) Match(schema, name string) bool {
	if f == nil {
		return true
	}
	q := qualify(schema, name)
	hit := func(res []*regexp.Regexp) bool {
		for _, re := range res {
			if re.MatchString(q) || re.MatchString(name) {
				return true
			}
		}
		return false
	}
	if hit(f.exclude) {
		return false
	}
	return len(f.include) == 0 || hit(f.include)
}

// String lists the patterns, "+" for include and "-" for exclude.
func (f *Filter) String() string {
	if f == nil || len(f.raw) == 0 {
		return "all tables"
	}
	return strings.Join(f.raw, " ")
}
