package eval

import (
	"strings"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// readColumns returns the columns of a table that the query can read, for
// table.ScanRequest.Columns, or nil when it may read them all. It is
// conservative: only the table at the head of the query's pipeline is
// narrowed, a column counts as read when its name appears as a word
// anywhere in the query, and nothing is left out unless the pipeline ends
// by choosing its columns (project, summarize, count, distinct of
// columns) through operators that name the columns they use, in a query
// without join or union.
func (r *runner) readColumns(ref *syntax.TableRef, cols []table.Column) []string {
	if r.query == nil {
		return nil
	}
	if p, ok := r.query.Body.(*syntax.Pipeline); !ok || p.Source != syntax.Tabular(ref) || !r.closedQuery() {
		return nil
	}
	var out []string
	for _, c := range cols {
		if syntax.NameIn(r.text, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

// closedQuery reports whether the query's result has only the columns it
// chooses by name (see readColumns).
func (r *runner) closedQuery() bool {
	if r.text == "" || strings.Contains(r.text, "*") || strings.Contains(r.text, "pack_all") {
		return false
	}
	info := syntax.Inspect(r.query)
	if info.HasJoin || info.HasUnion {
		return false
	}
	p, ok := r.query.Body.(*syntax.Pipeline)
	if !ok {
		return false
	}
	return syntax.ChoosesColumns(p.Ops)
}
