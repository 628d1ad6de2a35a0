package eval

import (
	"strings"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// listElems compiles the list of an in/has_any expression: literal
// elements, dynamic arrays (flattened), or a tabular subquery (its first
// column).
func (sc *scope) listElems(e *syntax.InExpr) ([]*cexpr, error) {
	if e.Sub != nil {
		return sc.subqueryElems(e.Sub, e.OpPos)
	}
	if len(e.List) == 1 {
		if id, ok := e.List[0].(*syntax.Ident); ok {
			if _, isCol := sc.idx[id.Name]; !isCol {
				if b := sc.env.lookup(id.Name); b != nil && b.scalar == nil {
					return sc.subqueryElems(&syntax.TableRef{NamePos: id.NamePos, Name: id.Name}, id.NamePos)
				}
			}
		}
	}
	var out []*cexpr
	for _, x := range e.List {
		c, err := sc.compile(x)
		if err != nil {
			return nil, err
		}
		if c.isConst && c.typ == table.Dynamic {
			if arr, ok := c.val.([]any); ok {
				for _, v := range arr {
					out = append(out, constExpr(table.Dynamic, v, c.pos))
				}
				continue
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func (sc *scope) subqueryElems(t syntax.Tabular, pos syntax.Pos) ([]*cexpr, error) {
	rel, err := sc.r.evalTabular(t, sc.env)
	if err != nil {
		return nil, err
	}
	if len(rel.cols) == 0 {
		return nil, sc.errorf(pos, "subquery returns no columns")
	}
	typ := rel.cols[0].Type
	out := make([]*cexpr, 0, len(rel.rows))
	for _, row := range rel.rows {
		out = append(out, constExpr(typ, row[0], pos))
	}
	return out, nil
}

func (sc *scope) in(e *syntax.InExpr) (*cexpr, error) {
	x, err := sc.compile(e.X)
	if err != nil {
		return nil, err
	}
	elems, err := sc.listElems(e)
	if err != nil {
		return nil, err
	}
	switch e.Op {
	case "has_any", "has_all":
		return sc.hasAny(e, x, elems)
	}
	neg := strings.HasPrefix(e.Op, "!")
	fold := strings.HasSuffix(e.Op, "~")
	allConst := true
	for _, el := range elems {
		if !el.isConst {
			allConst = false
		}
	}
	xf := x.fn
	var fn func(row []any) any
	if allConst {
		set := newValueSet(elems, fold)
		fn = func(row []any) any {
			v := xf(row)
			if v == nil {
				return false
			}
			return set.has(v) != neg
		}
	} else {
		fns := make([]func(row []any) any, len(elems))
		for i, el := range elems {
			fns[i] = operandFn(el, x.typ)
		}
		xo := xf
		if len(elems) > 0 {
			xo = operandFn(x, elems[0].typ)
		}
		fn = func(row []any) any {
			v := xo(row)
			if v == nil {
				return false
			}
			for _, f := range fns {
				w := f(row)
				if fold {
					if w != nil && strings.EqualFold(toStr(v), toStr(w)) {
						return !neg
					}
					continue
				}
				if eq, ok := equalValues(v, w); ok && eq {
					return !neg
				}
			}
			return neg
		}
	}
	c := newExpr(table.Bool, e.OpPos, fn)
	if x.isConst && allConst {
		return constExpr(table.Bool, fn(nil), e.OpPos), nil
	}
	return c, nil
}

// valueSet is a constant in-list, hashed by kind.
type valueSet struct {
	fold    bool
	strs    map[string]struct{}
	nums    map[string]struct{}
	others  map[string]struct{}
	hasNums bool
}

func newValueSet(elems []*cexpr, fold bool) *valueSet {
	s := &valueSet{fold: fold, strs: map[string]struct{}{}, nums: map[string]struct{}{}, others: map[string]struct{}{}}
	for _, el := range elems {
		switch v := el.val.(type) {
		case nil:
		case string:
			if fold {
				v = strings.ToLower(v)
			}
			s.strs[v] = struct{}{}
		case int64, float64:
			s.nums[keyOf(v)] = struct{}{}
			s.hasNums = true
			s.strs[toStr(v)] = struct{}{}
		case bool:
			s.others[keyOf(v)] = struct{}{}
			s.strs[toStr(v)] = struct{}{}
		default:
			s.others[keyOf(v)] = struct{}{}
		}
	}
	return s
}

func (s *valueSet) has(v any) bool {
	switch x := v.(type) {
	case string:
		if s.fold {
			x = strings.ToLower(x)
		}
		if _, ok := s.strs[x]; ok {
			return true
		}
		if s.hasNums {
			if n, ok := toNumber(x); ok {
				_, ok := s.nums[keyOf(n)]
				return ok
			}
		}
		return false
	case int64, float64:
		if _, ok := s.nums[keyOf(x)]; ok {
			return true
		}
		_, ok := s.strs[toStr(x)]
		return ok
	case bool:
		if _, ok := s.others[keyOf(x)]; ok {
			return true
		}
		_, ok := s.strs[toStr(x)]
		return ok
	}
	_, ok := s.others[keyOf(v)]
	return ok
}

func (sc *scope) hasAny(e *syntax.InExpr, x *cexpr, elems []*cexpr) (*cexpr, error) {
	all := e.Op == "has_all"
	xf := x.fn
	fns := make([]func(row []any) any, len(elems))
	consts := make([]string, len(elems))
	allConst := true
	for i, el := range elems {
		fns[i] = el.fn
		if el.isConst {
			consts[i] = strings.ToLower(toStr(el.val))
		} else {
			allConst = false
		}
	}
	fn := func(row []any) any {
		s := toStr(xf(row))
		for i := range elems {
			needle := consts[i]
			if !allConst && !elems[i].isConst {
				needle = strings.ToLower(toStr(fns[i](row)))
			}
			found := hasTerm(s, needle, true, true, true)
			if found && !all {
				return true
			}
			if !found && all {
				return false
			}
		}
		return all && len(elems) > 0
	}
	if x.isConst && allConst {
		return constExpr(table.Bool, fn(nil), e.OpPos), nil
	}
	return newExpr(table.Bool, e.OpPos, fn), nil
}
