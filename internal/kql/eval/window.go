package eval

import (
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// Window functions: row_number(), prev() and next() read the rows around
// the current one, so they need a serialized row set, as in Kusto: the
// output of range, sort, top or serialize, kept through the operators
// that keep row order (see syntax.KeepsOrder). An extend, serialize or project
// that calls one runs as a pass of its own over its input, in order.

// windowCursor is the position of a window pass: the input rows, the
// output rows made so far, and the current index.
type windowCursor struct {
	in, out [][]any
	i       int
}

// windowItems returns the items of an extend, serialize or project that
// calls a window function, or nil.
func windowItems(op syntax.Operator) []syntax.Assign {
	var items []syntax.Assign
	switch x := op.(type) {
	case *syntax.Extend:
		items = x.Items
	case *syntax.Serialize:
		items = x.Items
	case *syntax.Project:
		items = x.Items
	default:
		return nil
	}
	for _, it := range items {
		if _, ok := syntax.WindowCall(it.Expr); ok {
			return items
		}
	}
	return nil
}

// checkSerialized fails when op calls a window function on a row set
// that is not serialized.
func (r *runner) checkSerialized(op syntax.Operator, serialized bool) error {
	if serialized {
		return nil
	}
	for _, it := range windowItems(op) {
		if pos, ok := syntax.WindowCall(it.Expr); ok {
			return r.errorf(pos, "window functions (row_number, prev, next) need a serialized row set: put serialize, order by or top before them")
		}
	}
	return nil
}

// windowPass runs extend (or serialize) items that call window functions:
// one row at a time, in order.
func (r *runner) windowPass(rel *relation, items []syntax.Assign, e *env) (*relation, error) {
	rel, _, err := r.windowColumns(rel, items, e)
	return rel, err
}

// windowColumns is windowPass that also returns the column of each item.
func (r *runner) windowColumns(rel *relation, items []syntax.Assign, e *env) (*relation, []int, error) {
	cur := &windowCursor{in: rel.rows}
	slots, cols, err := r.compileExtendIn(rel.cols, items, e, cur)
	if err != nil {
		return nil, nil, err
	}
	alloc := rowAlloc{width: len(cols)}
	cur.out = make([][]any, 0, len(rel.rows))
	for i, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, nil, err
		}
		cur.i = i
		buf := alloc.row()
		copy(buf, row)
		for _, s := range slots {
			buf[s.idx] = s.fn(buf)
		}
		cur.out = append(cur.out, buf)
	}
	var idx []int
	for _, sl := range slots {
		idx = append(idx, sl.idx)
	}
	return &relation{cols: cols, rows: cur.out}, idx, nil
}

// windowProject runs a project whose items call window functions: the
// items as an extend, then only their columns.
func (r *runner) windowProject(rel *relation, op *syntax.Project, e *env) (*relation, error) {
	ext, idx, err := r.windowColumns(rel, op.Items, e)
	if err != nil {
		return nil, err
	}
	return selectColumns(ext, idx), nil
}

// windowCallExpr compiles row_number([start [, restart]]), prev(x [,
// offset [, default]]) and next(x [, offset [, default]]).
func (sc *scope) windowCallExpr(e *syntax.Call) (*cexpr, error) {
	cur := sc.win
	if cur == nil {
		return nil, sc.errorf(e.NamePos, "%s() can only be used in extend, serialize or project on a serialized row set", e.Name)
	}
	if e.Name == "row_number" {
		if err := checkArgCount(sc, e, 0, 2); err != nil {
			return nil, err
		}
		start := int64(1)
		if len(e.Args) > 0 {
			c, err := sc.compile(e.Args[0])
			if err != nil {
				return nil, err
			}
			n, ok := toLong(c.val)
			if !c.isConst || !ok || !isNumericType(c.typ) {
				return nil, sc.errorf(c.pos, "row_number expects a constant number to start from")
			}
			start = n
		}
		var restart func([]any) any
		if len(e.Args) > 1 {
			c, err := sc.compile(e.Args[1])
			if err != nil {
				return nil, err
			}
			if !isBoolish(c.typ) {
				return nil, sc.errorf(c.pos, "row_number expects a bool restart condition, not %s", c.typ)
			}
			restart = c.fn
		}
		var n int64
		return newExpr(table.Long, e.NamePos, func(row []any) any {
			if cur.i == 0 || restart != nil && restart(row) == true {
				n = start
			} else {
				n++
			}
			return n
		}), nil
	}
	if err := checkArgCount(sc, e, 1, 3); err != nil {
		return nil, err
	}
	x, err := sc.compile(e.Args[0])
	if err != nil {
		return nil, err
	}
	off := int64(1)
	if len(e.Args) > 1 {
		c, err := sc.compile(e.Args[1])
		if err != nil {
			return nil, err
		}
		n, ok := toLong(c.val)
		if !c.isConst || !ok || !isNumericType(c.typ) || n < 0 {
			return nil, sc.errorf(c.pos, "%s expects a constant non-negative offset", e.Name)
		}
		off = n
	}
	def := constExpr(x.typ, nil, e.NamePos)
	if x.typ == table.String {
		def = constExpr(table.String, "", e.NamePos) // a string is never null
	}
	if len(e.Args) > 2 {
		if def, err = sc.compile(e.Args[2]); err != nil {
			return nil, err
		}
		t, ok := unify(x, def)
		if !ok {
			return nil, sc.errorf(def.pos, "the default of %s is %s, not %s like its value", e.Name, def.typ, x.typ)
		}
		x, def = coerce(x, t), coerce(def, t)
	}
	xf, df := x.fn, def.fn
	width := len(sc.cols)
	if e.Name == "prev" {
		return newExpr(x.typ, e.NamePos, func(row []any) any {
			j := cur.i - int(off)
			if j < 0 {
				return df(row)
			}
			if j == cur.i {
				return xf(row)
			}
			return xf(cur.out[j])
		}), nil
	}
	return newExpr(x.typ, e.NamePos, func(row []any) any {
		j := cur.i + int(off)
		if j >= len(cur.in) {
			return df(row)
		}
		if j == cur.i {
			return xf(row)
		}
		// A later row's columns computed by this pass are not known yet:
		// they read as null.
		next := cur.in[j]
		if len(next) < width {
			next = append(append(make([]any, 0, width), next...), make([]any, width-len(next))...)
		}
		return xf(next)
	}), nil
}
