package sqlc

import (
	"errors"
	"slices"
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
		return c.where(r, x.Pred)
	case *syntax.Search:
		if r.limit >= 0 {
			r = c.materialize(r)
		}
		names := make([]string, len(r.cols))
		for i, col := range r.cols {
			names[i] = col.name
		}
		return c.where(r, syntax.SearchPredicate(x, names))
	case *syntax.As:
		// Only when nothing refers to the name: the rows it names live in SQL.
		if strings.Count(c.q.Src, x.Name) > 1 {
			return nil, unsupported("as %s used later", x.Name)
		}
		return r, nil
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
	case *syntax.MvExpand:
		return c.mvExpand(r, x)
	case *syntax.Union:
		return c.union(r, x.Params, x.Tables, c.stageSchema)
	case *syntax.Render:
		return r, nil
	}
	return nil, unsupported("operator")
}

// mvExpand compiles mv-expand of one dynamic expression: an array gives a
// row per element, a property bag a row per property (as a one-property
// bag, in key order), a scalar itself, and null or [] no row.
func (c *compiler) mvExpand(r *rel, x *syntax.MvExpand) (*rel, error) {
	if len(x.Items) != 1 || x.Limit != nil || x.BagExpansion == "array" {
		return nil, unsupported("mv-expand of several items, with a limit or as arrays")
	}
	it := x.Items[0]
	if it.ToType != "" && it.ToType != table.Dynamic {
		return nil, unsupported("mv-expand to typeof(%s)", it.ToType)
	}
	r = c.materialize(r)
	v, err := c.scope(r).expr(it.Expr)
	if err != nil {
		return nil, err
	}
	if v.typ != table.Dynamic {
		return nil, unsupported("mv-expand of %s", v.typ)
	}
	name := it.Name
	if name == "" {
		name = syntax.DefaultName(it.Expr)
	}
	if name == "" {
		return nil, unsupported("mv-expand of an unnamed expression")
	}
	list := c.d.Elements(v.sql)
	if v.srep {
		list = c.d.Elements(c.d.ToJSON(v.sql))
	}
	c.n++
	cte := "s" + itoa(int64(c.n))
	mv, mvi := c.d.Ident("__mv"+itoa(int64(c.n))), c.d.Ident("__mvi"+itoa(int64(c.n)))
	sel := "*, unnest(" + list + ") AS " + mv
	if x.WithItemIndex != "" {
		sel += ", unnest(generate_series(0, len(" + list + ") - 1)) AS " + mvi
	}
	c.ctes = append(c.ctes, cte+" AS (SELECT "+sel+" FROM "+r.from+")")
	n := &rel{from: cte, limit: -1, cols: slices.Clone(r.cols)}
	ev := &sexpr{sql: "nullif(" + mv + ", 'null')", typ: table.Dynamic}
	if i := n.find(name); i >= 0 {
		n.cols[i] = column{name: name, e: ev}
	} else {
		n.cols = append(n.cols, column{name: name, e: ev})
	}
	if x.WithItemIndex != "" {
		n.cols = append(n.cols, column{name: x.WithItemIndex, e: &sexpr{sql: mvi, typ: table.Long, notNull: true}})
	}
	return n, nil
}

// union compiles union (as an operator after first, or as a source when
// first is nil) to UNION ALL. want is the evaluator's output schema: each
// input gives each output column that it has (by the evaluator's naming,
// Name_type when inputs disagree on a type) and NULL for the others.
func (c *compiler) union(first *rel, params syntax.UnionParams, tables []syntax.Tabular, want []table.Column) (*rel, error) {

	var ins []*rel
	var names []string
	if first != nil {
		ins, names = append(ins, first), append(names, "union_arg0")
	}
	for _, t := range tables {
		if ref, ok := t.(*syntax.TableRef); ok && params.IsFuzzy && c.lets[ref.Name] == nil {
			if _, ok := c.cat.Table(ref.Name); !ok {
				continue // isfuzzy: a table that does not exist is left out
			}
		}
		r, err := c.whole(t, len(c.q.Lets))
		if err != nil {
			return nil, err
		}
		ins = append(ins, r)
		if name := syntax.SourceName(t); name != "" {
			names = append(names, name)
		} else {
			names = append(names, "union_arg"+itoa(int64(len(names))))
		}
	}
	types := map[string]map[table.Type]bool{}
	for _, r := range ins {
		for _, col := range r.cols {
			if types[col.name] == nil {
				types[col.name] = map[table.Type]bool{}
			}
			types[col.name][colType(col.e)] = true
		}
	}
	outName := func(col column) string {
		if len(types[col.name]) > 1 {
			return col.name + "_" + string(colType(col.e))
		}
		return col.name
	}
	// Each output column: its type and representation over all inputs.
	srep := make([]bool, len(want))
	notNull := make([]bool, len(want))
	for i := range want {
		srep[i], notNull[i] = want[i].Type == table.Dynamic, true
	}
	pick := make([][]*sexpr, len(ins))
	for k, r := range ins {
		pick[k] = make([]*sexpr, len(want))
		for i, w := range want {
			if params.WithSource != "" && i == 0 {
				continue
			}
			for _, col := range r.cols {
				if outName(col) == w.Name {
					if colType(col.e) != w.Type {
						return nil, unsupported("union column %s of type %s", w.Name, colType(col.e))
					}
					pick[k][i] = col.e
				}
			}
			e := pick[k][i]
			srep[i] = srep[i] && e != nil && e.srep
			notNull[i] = notNull[i] && e != nil && e.notNull
		}
	}
	var parts []string
	for k, r := range ins {
		var sel []string
		for i, w := range want {
			var expr string
			switch e := pick[k][i]; {
			case params.WithSource != "" && i == 0:
				expr = c.d.String(names[k])
			case e == nil:
				st, err := sqlTypeOf(w.Type)
				if err != nil {
					return nil, err
				}
				expr = c.d.Null(st)
			case e.typ == table.Dynamic && e.srep && !srep[i]:
				expr = c.d.ToJSON(e.sql)
			default:
				expr = e.sql
			}
			sel = append(sel, expr+" AS "+c.d.Ident(w.Name))
		}
		if len(sel) == 0 {
			return nil, unsupported("union of no columns")
		}
		q := "SELECT " + strings.Join(sel, ", ") + " FROM " + r.from
		if len(r.where) > 0 {
			q += " WHERE " + strings.Join(r.where, " AND ")
		}
		if r.limit >= 0 || len(r.order) > 0 {
			if r.limit < 0 {
				r.order = nil // order does not matter inside a union
			} else {
				if len(r.order) > 0 {
					q += " ORDER BY " + orderList(r.order)
				}
				q += " LIMIT " + itoa(r.limit)
			}
		}
		parts = append(parts, "("+q+")")
	}
	c.n++
	name := "s" + itoa(int64(c.n))
	c.ctes = append(c.ctes, name+" AS ("+strings.Join(parts, " UNION ALL ")+")")
	out := &rel{from: name, limit: -1}
	for i, w := range want {
		t := w.Type
		e := &sexpr{sql: c.d.Ident(w.Name), typ: t, srep: srep[i], notNull: notNull[i]}
		if t == table.Int {
			e.typ, e.intType = table.Long, true
		}
		if params.WithSource != "" && i == 0 {
			e.notNull = true
		}
		out.cols = append(out.cols, column{name: w.Name, e: e})
	}
	return out, nil
}

func colType(e *sexpr) table.Type {
	if e.intType {
		return table.Int
	}
	return e.typ
}

// where filters r by pred. When only some of its conjuncts translate, it
// fails with the stage filtered by those (errUnsupported.partial).
func (c *compiler) where(r *rel, pred syntax.Expr) (*rel, error) {
	n := r.clone()
	var failed error
	for _, part := range conjuncts(pred) {
		p, err := c.scope(r).expr(part)
		if err == nil && p.typ == table.Dynamic {
			// A dynamic true passes; anything else does not.
			if p.srep {
				p = boolExpr("FALSE")
			} else {
				p = boolExpr("coalesce(" + c.d.JSONKind(p.sql) + " = 'bool' AND " + p.sql + " = 'true', FALSE)")
			}
		}
		if err == nil && p.typ != table.Bool {
			err = unsupported("where on %s", p.typ)
		}
		if err != nil {
			if failed == nil {
				failed = err
			}
			continue
		}
		n.where = append(n.where, p.sql)
	}
	if failed != nil {
		var u *errUnsupported
		if errors.As(failed, &u) && len(n.where) > len(r.where) {
			return nil, &errUnsupported{msg: u.msg, partial: n}
		}
		return nil, failed
	}
	return n, nil
}

// conjuncts splits "a and b and c".
func conjuncts(e syntax.Expr) []syntax.Expr {
	if b, ok := e.(*syntax.Binary); ok && b.Op == "and" {
		return append(conjuncts(b.L), conjuncts(b.R)...)
	}
	return []syntax.Expr{e}
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
			name = syntax.DefaultName(it.Expr)
		}
		if name == "" && len(c.stageSchema) > len(n.cols) {
			name = c.stageSchema[len(n.cols)].Name // the evaluator's ColumnN
		}
		if name == "" {
			return nil, unsupported("extend of an unnamed expression")
		}
		if i := n.find(name); i >= 0 {
			n.cols[i] = column{name: name, e: e}
		} else {
			n.cols = append(n.cols, column{name: name, e: e})
		}
		if len(e.sql) > cheapSQL && e.fields == nil {
			n = c.materialize(n) // later items and stages refer to it by name
		}
	}
	return n, nil
}

func (c *compiler) project(r *rel, x *syntax.Project) (*rel, error) {
	n := r.clone()
	n.cols = nil
	for i, it := range x.Items {
		e, err := c.scope(r).expr(it.Expr)
		if err != nil {
			return nil, err
		}
		name := it.Name
		if name == "" && len(c.stageSchema) == len(x.Items) {
			name = c.stageSchema[i].Name // the evaluator's name for it
		}
		if name == "" {
			return nil, unsupported("project of an unnamed expression")
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
		n.cols = append(n.cols, r.cols...)
	} else {
		for _, it := range x.Items {
			e, err := c.scope(r).expr(it.Expr)
			if err != nil {
				return nil, err
			}
			name := it.Name
			if name == "" {
				name = syntax.DefaultName(it.Expr)
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
		out.cols = append(out.cols, column{name: col.name, e: col.e.derived(c.d.Ident(col.name))})
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
