package eval

import (
	"strconv"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// cexpr is a compiled scalar expression: a closure over a row whose
// columns are laid out as the scope it was compiled in.
type cexpr struct {
	typ     table.Type
	fn      func(row []any) any
	isConst bool
	val     any
	pos     syntax.Pos
	col     int // index of the column when the expression is a plain column reference, else -1
}

// typeofType marks the pseudo-value typeof(T) passed to some functions.
const typeofType table.Type = "typeof"

func constExpr(typ table.Type, v any, pos syntax.Pos) *cexpr {
	return &cexpr{typ: typ, fn: func([]any) any { return v }, isConst: true, val: v, pos: pos, col: -1}
}

func newExpr(typ table.Type, pos syntax.Pos, fn func([]any) any) *cexpr {
	return &cexpr{typ: typ, fn: fn, pos: pos, col: -1}
}

// fold turns c into a constant when all its inputs are constants, by
// evaluating it once with a nil row: c must depend on nothing but args.
// Calls of functions that read the row or are not deterministic are never
// folded (see funcSpec.volatile).
func fold(c *cexpr, args ...*cexpr) *cexpr {
	for _, a := range args {
		if !a.isConst {
			return c
		}
	}
	return constExpr(c.typ, c.fn(nil), c.pos)
}

// scope is what names mean while compiling an expression: the columns of
// the input row and the let bindings.
type scope struct {
	r    *runner
	env  *env
	cols []table.Column
	idx  map[string]int
	agg  *aggCollector // set while compiling summarize aggregations
	// nested is set on the scope of aggregation arguments, where another
	// aggregation is not allowed.
	nested bool
	// win is set in a window pass (see windowPass), where row_number,
	// prev and next may be called.
	win *windowCursor
	// packWidth, when not negative, is how many leading columns of cols
	// pack_all() packs: in extend, the columns of the operator's input,
	// not those added by the items before it.
	packWidth int
}

func newScope(r *runner, e *env, cols []table.Column) *scope {
	idx := make(map[string]int, len(cols))
	for i, c := range cols {
		if _, dup := idx[c.Name]; !dup {
			idx[c.Name] = i
		}
	}
	return &scope{r: r, env: e, cols: cols, idx: idx, packWidth: -1}
}

func (sc *scope) errorf(pos syntax.Pos, format string, args ...any) error {
	return sc.r.errorf(pos, format, args...)
}

func (sc *scope) compile(e syntax.Expr) (*cexpr, error) {
	switch e := e.(type) {
	case *syntax.Literal:
		return constExpr(e.Type, e.Value, e.LitPos), nil
	case *syntax.Ident:
		return sc.ident(e)
	case *syntax.Member, *syntax.Index:
		return sc.access(e)
	case *syntax.Unary:
		return sc.unary(e)
	case *syntax.Binary:
		return sc.binary(e)
	case *syntax.InExpr:
		return sc.in(e)
	case *syntax.Between:
		return sc.between(e)
	case *syntax.Call:
		return sc.call(e)
	case *syntax.Star:
		return nil, sc.errorf(e.StarPos, "'*' is only allowed as an argument of arg_max, arg_min and count")
	case *syntax.TypeOf:
		return constExpr(typeofType, e.Type, e.TPos), nil
	case *syntax.ToScalar:
		return sc.toscalar(e)
	case nil:
		return nil, sc.errorf(syntax.Pos{Line: 1, Col: 1}, "missing expression")
	}
	return nil, sc.errorf(e.Pos(), "unsupported expression")
}

func (sc *scope) ident(e *syntax.Ident) (*cexpr, error) {
	if i, ok := sc.idx[e.Name]; ok {
		typ := sc.cols[i].Type
		return &cexpr{typ: typ, fn: func(row []any) any { return row[i] }, pos: e.NamePos, col: i}, nil
	}
	if sc.agg != nil {
		if _, ok := sc.agg.input.idx[e.Name]; ok {
			return nil, sc.errorf(e.NamePos, "column %q must be used inside an aggregation function (or listed after by)", e.Name)
		}
	}
	if b := sc.env.lookup(e.Name); b != nil {
		if b.scalar != nil {
			c := *b.scalar
			c.pos = e.NamePos
			return &c, nil
		}
		return nil, sc.errorf(e.NamePos, "%q is a tabular expression, not a scalar", e.Name)
	}
	if strings.HasPrefix(e.Name, "$") {
		return nil, sc.errorf(e.NamePos, "%s is only allowed in join conditions", e.Name)
	}
	return nil, sc.errorf(e.NamePos, "unknown column or variable %q", e.Name)
}

// access compiles chains of .name, ["key"] and [index] on dynamic values
// into a single path walk.
func (sc *scope) access(e syntax.Expr) (*cexpr, error) {
	var path []any // string or int64 keys, outermost last
	cur := e
loop:
	for {
		switch x := cur.(type) {
		case *syntax.Member:
			path = append(path, x.Name)
			cur = x.X
		case *syntax.Index:
			lit, ok := x.Index.(*syntax.Literal)
			if !ok {
				break loop
			}
			switch v := lit.Value.(type) {
			case string:
				path = append(path, v)
			case int64:
				path = append(path, v)
			default:
				break loop
			}
			cur = x.X
		default:
			break loop
		}
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	var base *cexpr
	if ix, ok := cur.(*syntax.Index); ok { // dynamic index expression
		x, err := sc.compile(ix.X)
		if err != nil {
			return nil, err
		}
		if err := sc.checkDynamic(x, ix.LPos); err != nil {
			return nil, err
		}
		k, err := sc.compile(ix.Index)
		if err != nil {
			return nil, err
		}
		base = fold(newExpr(table.Dynamic, x.pos, func(row []any) any {
			return step(x.fn(row), k.fn(row))
		}), x, k)
	} else {
		var err error
		base, err = sc.compile(cur)
		if err != nil {
			return nil, err
		}
		if err := sc.checkDynamic(base, e.Pos()); err != nil {
			return nil, err
		}
	}
	if len(path) == 0 {
		return base, nil
	}
	bf := base.fn
	c := newExpr(table.Dynamic, base.pos, func(row []any) any {
		v := bf(row)
		for _, k := range path {
			if v == nil {
				return nil
			}
			v = step(v, k)
		}
		return v
	})
	return fold(c, base), nil
}

func (sc *scope) checkDynamic(x *cexpr, pos syntax.Pos) error {
	if x.typ != table.Dynamic && x.typ != "" {
		return sc.errorf(pos, "cannot access a property of a %s value; only dynamic values have properties", x.typ)
	}
	return nil
}

// step indexes a dynamic value by a key (property name or array index;
// negative indexes count from the end).
func step(v any, k any) any {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := k.(string); ok {
			return x[s]
		}
		if n, ok := k.(int64); ok {
			return x[strconv.FormatInt(n, 10)]
		}
	case []any:
		n, ok := k.(int64)
		if !ok {
			f, isF := k.(float64)
			if !isF {
				return nil
			}
			n = int64(f)
		}
		if n < 0 {
			n += int64(len(x))
		}
		if n < 0 || n >= int64(len(x)) {
			return nil
		}
		return x[n]
	}
	return nil
}

func (sc *scope) unary(e *syntax.Unary) (*cexpr, error) {
	x, err := sc.compile(e.X)
	if err != nil {
		return nil, err
	}
	switch x.typ {
	case table.Long, table.Int, table.Real, table.TimeSpan, table.Dynamic, "":
	default:
		return nil, sc.errorf(e.OpPos, "cannot negate a %s value", x.typ)
	}
	xf := x.fn
	return fold(newExpr(x.typ, e.OpPos, func(row []any) any {
		switch v := xf(row).(type) {
		case int64:
			return -v
		case float64:
			return -v
		case time.Duration:
			return -v
		}
		return nil
	}), x), nil
}

func (sc *scope) binary(e *syntax.Binary) (*cexpr, error) {
	l, err := sc.compile(e.L)
	if err != nil {
		return nil, err
	}
	r, err := sc.compile(e.R)
	if err != nil {
		return nil, err
	}
	switch e.Op {
	case "and", "or":
		return sc.logic(e, l, r)
	case "==", "!=", "<", "<=", ">", ">=":
		return sc.compare(e, l, r)
	case "=~", "!~":
		return sc.equalFold(e, l, r)
	case "+", "-", "*", "/", "%":
		return sc.arith(e, l, r)
	case "matches regex":
		return sc.matchesRegex(e, l, r)
	}
	return sc.stringOp(e, l, r)
}

func isBoolish(t table.Type) bool { return t == table.Bool || t == table.Dynamic || t == "" }

func (sc *scope) logic(e *syntax.Binary, l, r *cexpr) (*cexpr, error) {
	for _, x := range []*cexpr{l, r} {
		if !isBoolish(x.typ) {
			return nil, sc.errorf(x.pos, "operand of %q must be bool, not %s", e.Op, x.typ)
		}
	}
	lf, rf := l.fn, r.fn
	var fn func(row []any) any
	if e.Op == "and" {
		fn = func(row []any) any {
			a := lf(row)
			if a == false {
				return false
			}
			b := rf(row)
			if b == false {
				return false
			}
			if a == true && b == true {
				return true
			}
			return nil
		}
	} else {
		fn = func(row []any) any {
			a := lf(row)
			if a == true {
				return true
			}
			b := rf(row)
			if b == true {
				return true
			}
			if a == false && b == false {
				return false
			}
			return nil
		}
	}
	return fold(newExpr(table.Bool, e.OpPos, fn), l, r), nil
}

// operands prepares both sides of a comparison: a dynamic side is
// converted to the other side's type. A null on either side makes the
// comparison false (a source's null string included, as in SQL).
func operands(l, r *cexpr) (func(row []any) any, func(row []any) any) {
	return operandFn(l, r.typ), operandFn(r, l.typ)
}

func operandFn(x *cexpr, other table.Type) func(row []any) any {
	f := x.fn
	if conv := dynamicConverter(x.typ, other); conv != nil {
		return func(row []any) any { return conv(f(row)) }
	}
	return f
}

func (sc *scope) compare(e *syntax.Binary, l, r *cexpr) (*cexpr, error) {
	if !comparableTypes(l.typ, r.typ) {
		return nil, sc.errorf(e.OpPos, "cannot compare %s with %s using %s", l.typ, r.typ, e.Op)
	}
	lf, rf := operands(l, r)
	var fn func(row []any) any
	switch e.Op {
	case "==":
		fn = func(row []any) any {
			eq, ok := equalValues(lf(row), rf(row))
			return ok && eq
		}
	case "!=":
		fn = func(row []any) any {
			eq, ok := equalValues(lf(row), rf(row))
			return ok && !eq
		}
	default:
		var test func(int) bool
		switch e.Op {
		case "<":
			test = func(c int) bool { return c < 0 }
		case "<=":
			test = func(c int) bool { return c <= 0 }
		case ">":
			test = func(c int) bool { return c > 0 }
		default:
			test = func(c int) bool { return c >= 0 }
		}
		fn = func(row []any) any {
			c, ok := orderValues(lf(row), rf(row))
			return ok && test(c)
		}
	}
	return fold(newExpr(table.Bool, e.OpPos, fn), l, r), nil
}

func (sc *scope) equalFold(e *syntax.Binary, l, r *cexpr) (*cexpr, error) {
	lf, rf := operands(l, r)
	neg := e.Op == "!~"
	return fold(newExpr(table.Bool, e.OpPos, func(row []any) any {
		a, b := lf(row), rf(row)
		if a == nil || b == nil {
			return false
		}
		return strings.EqualFold(toStr(a), toStr(b)) != neg
	}), l, r), nil
}

func (sc *scope) between(e *syntax.Between) (*cexpr, error) {
	x, err := sc.compile(e.X)
	if err != nil {
		return nil, err
	}
	lo, err := sc.compile(e.Lo)
	if err != nil {
		return nil, err
	}
	hi, err := sc.compile(e.Hi)
	if err != nil {
		return nil, err
	}
	hif := hi.fn
	if lo.typ == table.DateTime && hi.typ == table.TimeSpan {
		lof, d := lo.fn, hi.fn
		hif = func(row []any) any { return arith('+', lof(row), d(row)) }
		hi = newExpr(table.DateTime, hi.pos, hif)
	}
	for _, b := range []*cexpr{lo, hi} {
		if !comparableTypes(x.typ, b.typ) {
			return nil, sc.errorf(e.OpPos, "cannot compare %s with %s in between", x.typ, b.typ)
		}
	}
	xf := operandFn(x, lo.typ)
	lof := lo.fn
	not := e.Not
	return fold(newExpr(table.Bool, e.OpPos, func(row []any) any {
		v := xf(row)
		c1, ok1 := orderValues(v, lof(row))
		c2, ok2 := orderValues(v, hif(row))
		if !ok1 || !ok2 {
			return false
		}
		return (c1 >= 0 && c2 <= 0) != not
	}), x, lo, hi), nil
}

func (sc *scope) toscalar(e *syntax.ToScalar) (*cexpr, error) {
	rel, err := sc.r.evalTabular(e.Sub, sc.env)
	if err != nil {
		return nil, err
	}
	if len(rel.cols) == 0 {
		return constExpr(table.Dynamic, nil, e.TPos), nil
	}
	var v any
	if len(rel.rows) > 0 {
		v = rel.rows[0][0]
	}
	return constExpr(rel.cols[0].Type, v, e.TPos), nil
}

// coerce converts c's values to type t (used to unify branch types).
func coerce(c *cexpr, t table.Type) *cexpr {
	if c.typ == t || t == "" || c.typ == "" && c.isConst && c.val == nil {
		return c
	}
	if (c.typ == table.Int && t == table.Long) || (c.typ == table.Long && t == table.Int) {
		return c
	}
	f := c.fn
	return fold(&cexpr{typ: t, pos: c.pos, col: -1, fn: func(row []any) any { return convertTo(t, f(row)) }}, c)
}

// unify returns the common type of several expressions (for iff, case,
// coalesce...).
func unify(xs ...*cexpr) (table.Type, bool) {
	var t table.Type
	for _, x := range xs {
		xt := x.typ
		switch {
		case xt == "" || xt == t:
		case t == "":
			t = xt
		case isNumericType(t) && isNumericType(xt):
			if t == table.Real || xt == table.Real {
				t = table.Real
			} else {
				t = table.Long
			}
		case t == table.Dynamic || xt == table.Dynamic:
			t = table.Dynamic
		default:
			return "", false
		}
	}
	if t == "" {
		t = table.Dynamic
	}
	return t, true
}
