package eval

import (
	"strings"

	"github.com/kdfir/kdfir/internal/kql/syntax"
)

// searchMatcher tests a row's values for a search term: has (the term as
// a word), or with a '*' at its end, start or both, a prefix, suffix or
// substring of a word; case-insensitive unless kind=case_sensitive.
func searchMatcher(s *syntax.Search) func(string) bool {
	term := s.Term
	op := "has"
	switch {
	case strings.HasPrefix(term, "*") && strings.HasSuffix(term, "*"):
		op, term = "contains", strings.Trim(term, "*")
	case strings.HasSuffix(term, "*"):
		op, term = "hasprefix", strings.TrimSuffix(term, "*")
	case strings.HasPrefix(term, "*"):
		op, term = "hassuffix", strings.TrimPrefix(term, "*")
	}
	if !s.CaseSensitive {
		term = strings.ToLower(term)
	}
	match := matcherFor(op, s.CaseSensitive)
	return func(v string) bool { return match(v, term) }
}

// search keeps the rows where a column (a dynamic one as its JSON text)
// matches the term.
func (r *runner) search(rel *relation, s *syntax.Search) (*relation, error) {
	match := searchMatcher(s)
	out := [][]any{}
	for _, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		for _, v := range row {
			if v != nil && match(toStr(v)) {
				out = append(out, row)
				break
			}
		}
	}
	return &relation{cols: rel.cols, rows: out, shared: rel.shared}, nil
}

// searchSource runs search in (T1, ...) "term": each table searched,
// then their union with the table's name in $table.
func (r *runner) searchSource(s *syntax.SearchSource, e *env) (*relation, error) {
	tables := make([]syntax.Tabular, len(s.Tables))
	for i, t := range s.Tables {
		tables[i] = &syntax.Pipeline{Source: t, Ops: []syntax.Operator{s.Search}}
	}
	params := syntax.UnionParams{Kind: "outer", WithSource: "$table"}
	rel, err := r.union(nil, params, tables, e)
	if err != nil {
		return nil, err
	}
	// The union names a subquery union_argN; here each is one table.
	for _, row := range rel.rows {
		if name, ok := row[0].(string); ok && strings.HasPrefix(name, "union_arg") {
			var i int
			for _, c := range strings.TrimPrefix(name, "union_arg") {
				i = i*10 + int(c-'0')
			}
			if i < len(s.Tables) {
				row[0] = s.Tables[i].(*syntax.TableRef).Name
			}
		}
	}
	return rel, nil
}
