package eval

import (
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// pushdown turns the simple conjuncts of a where predicate into filters a
// source may apply: "Col op constant", "Col.a.b op constant" (a path into a
// dynamic column), "tostring(Col.a) op constant", isnull/isnotnull(path),
// "Col in (constants)", "Col between (a .. b)". Nothing under or/not is
// pushed. Constants are evaluated now (ago(), now(), datetime(), lets).
func (r *runner) pushdown(pred syntax.Expr, sc *scope) []table.Filter {
	var out []table.Filter
	for _, c := range conjuncts(pred) {
		out = append(out, r.filtersFor(c, sc)...)
	}
	return out
}

func conjuncts(e syntax.Expr) []syntax.Expr {
	if b, ok := e.(*syntax.Binary); ok && b.Op == "and" {
		return append(conjuncts(b.L), conjuncts(b.R)...)
	}
	return []syntax.Expr{e}
}

var pushOps = map[string]table.Op{
	"==": table.Eq, "=~": table.EqFold, "!=": table.Ne,
	"<": table.Lt, "<=": table.Le, ">": table.Gt, ">=": table.Ge,
	// The case-sensitive forms are pushed as their (looser) insensitive
	// forms: the evaluator applies the exact predicate afterwards.
	"startswith": table.StartsWith, "startswith_cs": table.StartsWith,
	"has": table.Has, "has_cs": table.Has,
	"contains": table.Contains, "contains_cs": table.Contains,
}

var flippedOps = map[table.Op]table.Op{
	table.Eq: table.Eq, table.EqFold: table.EqFold, table.Ne: table.Ne,
	table.Lt: table.Gt, table.Le: table.Ge, table.Gt: table.Lt, table.Ge: table.Le,
}

func (r *runner) filtersFor(e syntax.Expr, sc *scope) []table.Filter {
	switch x := e.(type) {
	case *syntax.Binary:
		op, ok := pushOps[x.Op]
		if !ok {
			return nil
		}
		if col, path, typ, ok := columnPath(x.L, sc); ok {
			if v, ok := r.constScalar(x.R, sc); ok && valueFits(typ, path, op, v) {
				return []table.Filter{{Column: col, Path: path, Op: op, Value: v}}
			}
			return nil
		}
		if fop, ok := flippedOps[op]; ok {
			if col, path, typ, ok := columnPath(x.R, sc); ok {
				if v, ok := r.constScalar(x.L, sc); ok && valueFits(typ, path, fop, v) {
					return []table.Filter{{Column: col, Path: path, Op: fop, Value: v}}
				}
			}
		}
	case *syntax.InExpr:
		if x.Op != "in" || x.Sub != nil {
			return nil
		}
		col, path, typ, ok := columnPath(x.X, sc)
		if !ok {
			return nil
		}
		var vals []any
		for _, el := range x.List {
			v, ok := r.constValue(el, sc)
			if !ok {
				return nil
			}
			items := []any{v}
			if arr, isArr := v.([]any); isArr {
				items = arr
			}
			for _, it := range items {
				if !isScalar(it) || !valueFits(typ, path, table.Eq, it) {
					return nil
				}
				vals = append(vals, it)
			}
		}
		if len(vals) == 0 {
			return nil
		}
		return []table.Filter{{Column: col, Path: path, Op: table.In, Value: vals}}
	case *syntax.Between:
		if x.Not {
			return nil
		}
		col, path, typ, ok := columnPath(x.X, sc)
		if !ok {
			return nil
		}
		lo, ok1 := r.constScalar(x.Lo, sc)
		hi, ok2 := r.constScalar(x.Hi, sc)
		if !ok1 || !ok2 {
			return nil
		}
		if t, isT := lo.(time.Time); isT {
			if d, isD := hi.(time.Duration); isD {
				hi = t.Add(d)
			}
		}
		if !valueFits(typ, path, table.Ge, lo) || !valueFits(typ, path, table.Le, hi) {
			return nil
		}
		return []table.Filter{
			{Column: col, Path: path, Op: table.Ge, Value: lo},
			{Column: col, Path: path, Op: table.Le, Value: hi},
		}
	case *syntax.Call:
		if (x.Name == "isnull" || x.Name == "isnotnull") && len(x.Args) == 1 {
			col, path, _, ok := columnPath(x.Args[0], sc)
			if !ok {
				return nil
			}
			op := table.IsNull
			if x.Name == "isnotnull" {
				op = table.IsNotNull
			}
			return []table.Filter{{Column: col, Path: path, Op: op}}
		}
	}
	return nil
}

// columnPath recognises Col, Col.a.b, Col["a"] and tostring(...) of those.
// typ is the column's type, or dynamic for a path inside it.
func columnPath(e syntax.Expr, sc *scope) (col string, path []string, typ table.Type, ok bool) {
	switch x := e.(type) {
	case *syntax.Ident:
		i, ok := sc.idx[x.Name]
		if !ok {
			return "", nil, "", false
		}
		return x.Name, nil, sc.cols[i].Type, true
	case *syntax.Member:
		return extendPath(x.X, x.Name, sc)
	case *syntax.Index:
		lit, isLit := x.Index.(*syntax.Literal)
		if !isLit {
			return "", nil, "", false
		}
		key, isStr := lit.Value.(string)
		if !isStr {
			return "", nil, "", false
		}
		return extendPath(x.X, key, sc)
	case *syntax.Call:
		if x.Name == "tostring" && len(x.Args) == 1 {
			col, path, typ, ok := columnPath(x.Args[0], sc)
			if ok && (typ == table.Dynamic || typ == table.String) {
				return col, path, typ, true
			}
		}
	}
	return "", nil, "", false
}

func extendPath(base syntax.Expr, key string, sc *scope) (string, []string, table.Type, bool) {
	if _, isCall := base.(*syntax.Call); isCall {
		return "", nil, "", false
	}
	col, path, typ, ok := columnPath(base, sc)
	if !ok || typ != table.Dynamic {
		return "", nil, "", false
	}
	p := make([]string, len(path), len(path)+1)
	copy(p, path)
	return col, append(p, key), table.Dynamic, true
}

// constValue evaluates an expression that uses no columns.
func (r *runner) constValue(e syntax.Expr, sc *scope) (any, bool) {
	if hasSubquery(e) {
		return nil, false
	}
	c, err := newScope(r, sc.env, nil).compile(e)
	if err != nil || !c.isConst || c.val == nil {
		return nil, false
	}
	return c.val, true
}

func (r *runner) constScalar(e syntax.Expr, sc *scope) (any, bool) {
	v, ok := r.constValue(e, sc)
	if !ok || !isScalar(v) {
		return nil, false
	}
	return v, true
}

func isScalar(v any) bool {
	switch v.(type) {
	case string, int64, float64, bool, time.Time, time.Duration:
		return true
	}
	return false
}

func hasSubquery(e syntax.Expr) bool {
	switch x := e.(type) {
	case *syntax.ToScalar:
		return true
	case *syntax.InExpr:
		if x.Sub != nil || hasSubquery(x.X) {
			return true
		}
		for _, el := range x.List {
			if hasSubquery(el) {
				return true
			}
		}
	case *syntax.Binary:
		return hasSubquery(x.L) || hasSubquery(x.R)
	case *syntax.Unary:
		return hasSubquery(x.X)
	case *syntax.Between:
		return hasSubquery(x.X) || hasSubquery(x.Lo) || hasSubquery(x.Hi)
	case *syntax.Call:
		for _, a := range x.Args {
			if hasSubquery(a) {
				return true
			}
		}
	case *syntax.Member:
		return hasSubquery(x.X)
	case *syntax.Index:
		return hasSubquery(x.X) || hasSubquery(x.Index)
	}
	return false
}

// valueFits reports whether comparing a column of type typ (or a path in a
// dynamic column) with v is meaningful enough to offer to a source.
func valueFits(typ table.Type, path []string, op table.Op, v any) bool {
	if !isScalar(v) {
		return false
	}
	switch op {
	case table.StartsWith, table.Has, table.Contains:
		_, isStr := v.(string)
		return isStr
	case table.EqFold:
		_, isStr := v.(string)
		return isStr
	}
	if len(path) > 0 || typ == table.Dynamic {
		return true
	}
	switch v.(type) {
	case string:
		return typ == table.String
	case int64, float64:
		return isNumericType(typ)
	case bool:
		return typ == table.Bool
	case time.Time:
		return typ == table.DateTime
	case time.Duration:
		return typ == table.TimeSpan
	}
	return false
}
