package eval

import (
	"strings"

	"github.com/kdfir/kdfir/internal/kql/syntax"
)

// search keeps the rows that syntax.SearchPredicate accepts.
func (r *runner) search(rel *relation, s *syntax.Search, e *env) (*relation, error) {
	names := make([]string, len(rel.cols))
	for i, c := range rel.cols {
		names[i] = c.Name
	}
	return r.where(rel, &syntax.Where{OpPos: s.OpPos, Pred: syntax.SearchPredicate(s, names)}, e)
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
