package sqlc

import (
	"strconv"
	"strings"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// op compiles one pipe stage over r. It never changes r.
func (c *compiler) op(r *rel, op syntax.Operator) (*rel, error) {
	switch x := op.(type) {
	case *syntax.Where:
		if r.limit >= 0 {
			r = c.materialize(r)
		}
		p, err := c.scope(r).expr(x.Pred)
		if err != nil {
			return nil, err
		}
		if p.typ != table.Bool {
			return nil, unsupported("where on %s", p.typ)
		}
		n := r.clone()
		n.where = append(n.where, p.sql)
		return n, nil
	case *syntax.Extend:
		return c.extend(r, x.Items)
	case *syntax.Serialize:
		return c.extend(r, x.Items)
	case *syntax.Project:
		return c.project(r, x)
	case *syntax.ProjectAway, *syntax.ProjectKeep, *syntax.ProjectReorder:
		return c.reshape(r, op, nil)
	case *syntax.ProjectRename:
		renamed := map[string]string{}
		for _, it := range x.Items {
			renamed[it.New] = it.Old
		}
		return c.reshape(r, op, renamed)
	case *syntax.Summarize:
		return c.summarize(r, x)
	case *syntax.Sort:
		return c.sort(r, x.Keys, -1)
	case *syntax.Top:
		n, err := c.count(x.N)
		if err != nil {
			return nil, err
		}
		return c.sort(r, x.Keys, n)
	case *syntax.Take:
		n, err := c.count(x.N)
		if err != nil {
			return nil, err
		}
		nr := r.clone()
		if nr.limit < 0 || n < nr.limit {
			nr.limit = n
		}
		return nr, nil
	case *syntax.Distinct:
		return c.distinct(r, x)
	case *syntax.Count:
		if r.limit >= 0 {
			r = c.materialize(r)
		}
		n := &rel{from: r.from, where: r.where, limit: -1}
		n.cols = []column{{name: "Count", e: &sexpr{sql: "count(*)", typ: table.Long, notNull: true}}}
		return c.group(n, nil), nil
	case *syntax.Render:
		return r, nil
	}
	return nil, unsupported("operator")
}

// count reads the constant row count of take and top.
func (c *compiler) count(e syntax.Expr) (int64, error) {
	v, err := c.scope(&rel{}).expr(e)
	if err != nil {
		return 0, err
	}
	n, ok := v.val.(int64)
	if !v.isConst || !ok {
		return 0, unsupported("row count that is not a constant")
	}
	return min(max(n, 0), 1<<31), nil
}

// extend adds or replaces columns; each item sees the ones before it.
func (c *compiler) extend(r *rel, items []syntax.Assign) (*rel, error) {
	n := r.clone()
	for _, it := range items {
		e, err := c.scope(n).expr(it.Expr)
		if err != nil {
			return nil, err
		}
		name := it.Name
		if name == "" {
			name = defaultName(it.Expr)
			if name == "" {
				return nil, unsupported("extend of an unnamed expression")
			}
		}
		if i := n.find(name); i >= 0 {
			n.cols[i] = column{name: name, e: e}
		} else {
			n.cols = append(n.cols, column{name: name, e: e})
		}
	}
	return n, nil
}

func (c *compiler) project(r *rel, x *syntax.Project) (*rel, error) {
	n := r.clone()
	n.cols = nil
	for _, it := range x.Items {
		e, err := c.scope(r).expr(it.Expr)
		if err != nil {
			return nil, err
		}
		name := it.Name
		if name == "" {
			name = defaultName(it.Expr)
			if name == "" {
				return nil, unsupported("project of an unnamed expression")
			}
		}
		if n.find(name) >= 0 {
			return nil, unsupported("duplicate column %s", name)
		}
		n.cols = append(n.cols, column{name: name, e: e})
	}
	return n, nil
}

// reshape compiles project-away, -keep, -reorder and -rename by taking the
// evaluator's resulting columns from r by name (renamed maps new names to
// old ones).
func (c *compiler) reshape(r *rel, op syntax.Operator, renamed map[string]string) (*rel, error) {
	want, err := c.schemaAfter(op)
	if err != nil {
		return nil, err
	}
	n := r.clone()
	n.cols = nil
	for _, w := range want {
		from := w.Name
		if old, ok := renamed[w.Name]; ok {
			from = old
		}
		i := r.find(from)
		if i < 0 {
			return nil, unsupported("column %s", from)
		}
		n.cols = append(n.cols, column{name: w.Name, e: r.cols[i].e})
	}
	return n, nil
}

// schemaAfter is the evaluator's schema after op, from the stage being
// compiled (set by Compile as it goes).
func (c *compiler) schemaAfter(op syntax.Operator) ([]table.Column, error) {
	if c.stageSchema == nil {
		return nil, unsupported("no schema")
	}
	return c.stageSchema, nil
}

// defaultName is the column name Kusto gives an unnamed expression.
func defaultName(e syntax.Expr) string {
	switch x := e.(type) {
	case *syntax.Ident:
		if strings.HasPrefix(x.Name, "$") {
			return ""
		}
		return x.Name
	case *syntax.Member:
		if b := defaultName(x.X); b != "" {
			return b + "_" + x.Name
		}
	case *syntax.Index:
		b := defaultName(x.X)
		if lit, ok := x.Index.(*syntax.Literal); ok && b != "" {
			switch v := lit.Value.(type) {
			case string:
				return b + "_" + v
			case int64:
				return b + "_" + itoa(v)
			}
		}
	case *syntax.Call:
		if namePreserving[x.Name] && len(x.Args) > 0 {
			return defaultName(x.Args[0])
		}
	}
	return ""
}

// namePreserving lists the functions whose unnamed result keeps the name
// of their first argument (as in the evaluator).
var namePreserving = map[string]bool{
	"bin": true, "floor": true, "tostring": true, "toint": true, "tolong": true,
	"todouble": true, "toreal": true, "todecimal": true, "tobool": true, "toboolean": true,
	"todatetime": true, "totimespan": true, "totime": true, "todynamic": true,
	"parse_json": true, "tolower": true, "toupper": true, "startofday": true,
	"startofweek": true, "startofmonth": true, "startofyear": true,
}

// sortable reports whether SQL orders values of e as the evaluator does.
func sortable(e *sexpr) bool {
	return e.typ != table.Dynamic || e.srep
}

func (c *compiler) sort(r *rel, keys []syntax.SortKey, limit int64) (*rel, error) {
	if r.limit >= 0 {
		r = c.materialize(r)
	}
	n := r.clone()
	n.order = nil
	for _, k := range keys {
		e, err := c.scope(r).expr(k.Expr)
		if err != nil {
			return nil, err
		}
		if !sortable(e) {
			return nil, unsupported("sort by a dynamic value")
		}
		dir := "DESC NULLS LAST"
		if !k.Desc {
			dir = "ASC NULLS FIRST"
		}
		switch k.Nulls {
		case "first":
			dir = strings.Replace(dir, "LAST", "FIRST", 1)
		case "last":
			dir = strings.Replace(dir, "FIRST", "LAST", 1)
		}
		n.order = append(n.order, e.sql+"\x00"+dir)
	}
	if limit >= 0 {
		n.limit = limit
	}
	return n, nil
}

func (c *compiler) distinct(r *rel, x *syntax.Distinct) (*rel, error) {
	if r.limit >= 0 {
		r = c.materialize(r)
	}
	n := &rel{from: r.from, where: r.where, limit: -1}
	if x.All {
		for _, col := range r.cols {
			n.cols = append(n.cols, col)
		}
	} else {
		for _, it := range x.Items {
			e, err := c.scope(r).expr(it.Expr)
			if err != nil {
				return nil, err
			}
			name := it.Name
			if name == "" {
				name = defaultName(it.Expr)
			}
			if name == "" || n.find(name) >= 0 {
				return nil, unsupported("distinct of an unnamed or repeated expression")
			}
			n.cols = append(n.cols, column{name: name, e: e})
		}
	}
	keys := make([]string, len(n.cols))
	for i, col := range n.cols {
		keys[i] = col.e.sql
	}
	return c.group(n, keys), nil
}

// group writes a GROUP BY stage: n's columns are the keys (given as
// expressions in keys, in the same order, first) and the aggregates.
func (c *compiler) group(n *rel, keys []string) *rel {
	c.n++
	name := "s" + itoa(int64(c.n))
	var sel []string
	out := &rel{from: name, limit: -1}
	for _, col := range n.cols {
		sel = append(sel, col.e.sql+" AS "+c.d.Ident(col.name))
		out.cols = append(out.cols, column{name: col.name, e: col.e.derived(name + "." + c.d.Ident(col.name))})
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + n.from
	if len(n.where) > 0 {
		q += " WHERE " + strings.Join(n.where, " AND ")
	}
	if len(keys) > 0 {
		q += " GROUP BY " + strings.Join(keys, ", ")
	}
	c.ctes = append(c.ctes, name+" AS ("+q+")")
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
