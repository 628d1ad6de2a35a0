package eval

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// callCtx is what a function builder gets: the call, its compiled
// arguments and the scope.
type callCtx struct {
	sc   *scope
	call *syntax.Call
	args []*cexpr
}

func (cc *callCtx) errorf(pos syntax.Pos, format string, args ...any) error {
	return cc.sc.errorf(pos, format, args...)
}

type builder func(cc *callCtx) (*cexpr, error)

type funcSpec struct {
	min, max int // max < 0: no upper bound
	build    builder
	typeofOK bool // accepts typeof(T) arguments
	// volatile marks a function whose value is not determined by its
	// arguments alone: it reads the input row beyond its arguments
	// (pack_all) or is non-deterministic. A call to it is never folded
	// into a constant, even when all its arguments (or none) are
	// constants.
	volatile bool
}

var functions map[string]funcSpec

func init() {
	functions = map[string]funcSpec{}
	registerConversionFuncs()
	registerLogicFuncs()
	registerStringFuncs()
	registerTimeFuncs()
	registerDynamicFuncs()
	registerMathFuncs()
	registerCompatFuncs()
	registerSeriesFuncs()
	registerAnomalyFuncs()
}

func register(name string, min, max int, b builder) {
	functions[name] = funcSpec{min: min, max: max, build: b}
}

// registerVolatile registers a function that must never be constant
// folded (see funcSpec.volatile).
func registerVolatile(name string, min, max int, b builder) {
	functions[name] = funcSpec{min: min, max: max, build: b, volatile: true}
}

func argCountMsg(name string, min, max, got int) string {
	switch {
	case min == max:
		return fmt.Sprintf("function %s expects %d argument%s, got %d", name, min, plural(min), got)
	case max < 0:
		return fmt.Sprintf("function %s expects at least %d argument%s, got %d", name, min, plural(min), got)
	}
	return fmt.Sprintf("function %s expects %d to %d arguments, got %d", name, min, max, got)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (sc *scope) call(e *syntax.Call) (*cexpr, error) {
	if spec, ok := aggregates[e.Name]; ok {
		if sc.nested {
			return nil, sc.errorf(e.NamePos, "aggregation functions cannot be nested (%s)", e.Name)
		}
		if sc.agg == nil {
			return nil, sc.errorf(e.NamePos, "aggregation function %s() can only be used in summarize", e.Name)
		}
		if err := checkArgCount(sc, e, spec.min, spec.max); err != nil {
			return nil, err
		}
		return sc.agg.add(sc, e, spec)
	}
	if c, ok, err := sc.specialCall(e); ok {
		return c, err
	}
	spec, ok := functions[e.Name]
	if !ok {
		lower := strings.ToLower(e.Name)
		if _, ok := functions[lower]; ok {
			return nil, sc.errorf(e.NamePos, "unknown function %q (function names are case-sensitive: did you mean %s?)", e.Name, lower)
		}
		if _, ok := aggregates[lower]; ok {
			return nil, sc.errorf(e.NamePos, "unknown function %q (function names are case-sensitive: did you mean %s?)", e.Name, lower)
		}
		return nil, sc.errorf(e.NamePos, "unknown function %q", e.Name)
	}
	if err := checkArgCount(sc, e, spec.min, spec.max); err != nil {
		return nil, err
	}
	args := make([]*cexpr, len(e.Args))
	for i, a := range e.Args {
		c, err := sc.compile(a)
		if err != nil {
			return nil, err
		}
		if c.typ == typeofType && !spec.typeofOK {
			return nil, sc.errorf(c.pos, "typeof() is not a valid argument of %s", e.Name)
		}
		args[i] = c
	}
	c, err := spec.build(&callCtx{sc: sc, call: e, args: args})
	if err != nil {
		return nil, err
	}
	c.pos = e.NamePos
	if spec.volatile {
		c.isConst, c.val = false, nil
		return c, nil
	}
	return fold(c, args...), nil
}

func checkArgCount(sc *scope, e *syntax.Call, min, max int) error {
	n := len(e.Args)
	if n < min || max >= 0 && n > max {
		return sc.errorf(e.NamePos, "%s", argCountMsg(e.Name, min, max, n))
	}
	return nil
}

// Builders for the common shapes.

func f1(typ table.Type, f func(a any) any) builder {
	return func(cc *callCtx) (*cexpr, error) {
		a := cc.args[0].fn
		return newExpr(typ, cc.call.NamePos, func(row []any) any { return f(a(row)) }), nil
	}
}

func f2(typ table.Type, f func(a, b any) any) builder {
	return func(cc *callCtx) (*cexpr, error) {
		a, b := cc.args[0].fn, cc.args[1].fn
		return newExpr(typ, cc.call.NamePos, func(row []any) any { return f(a(row), b(row)) }), nil
	}
}

func f3(typ table.Type, f func(a, b, c any) any) builder {
	return func(cc *callCtx) (*cexpr, error) {
		a, b, c := cc.args[0].fn, cc.args[1].fn, cc.args[2].fn
		return newExpr(typ, cc.call.NamePos, func(row []any) any { return f(a(row), b(row), c(row)) }), nil
	}
}

// fN passes all argument values; f must not keep the slice.
func fN(typ table.Type, f func(args []any) any) builder {
	return func(cc *callCtx) (*cexpr, error) {
		fns := make([]func([]any) any, len(cc.args))
		for i, a := range cc.args {
			fns[i] = a.fn
		}
		buf := make([]any, len(fns))
		return newExpr(typ, cc.call.NamePos, func(row []any) any {
			for i, fn := range fns {
				buf[i] = fn(row)
			}
			return f(buf)
		}), nil
	}
}

func registerConversionFuncs() {
	conv := func(t table.Type) builder {
		return f1(t, func(a any) any { return convertTo(t, a) })
	}
	register("tostring", 1, 1, f1(table.String, func(a any) any {
		if _, ok := a.(string); ok {
			return a // no new allocation
		}
		return toStr(a)
	}))
	register("toint", 1, 1, conv(table.Int))
	register("tolong", 1, 1, conv(table.Long))
	for _, n := range []string{"todouble", "toreal", "todecimal"} {
		register(n, 1, 1, conv(table.Real))
	}
	register("tobool", 1, 1, conv(table.Bool))
	register("toboolean", 1, 1, conv(table.Bool))
	register("todatetime", 1, 1, conv(table.DateTime))
	register("totimespan", 1, 1, conv(table.TimeSpan))
	register("totime", 1, 1, conv(table.TimeSpan))
	register("toguid", 1, 1, conv(table.String))
	for _, n := range []string{"parse_json", "todynamic", "toobject"} {
		register(n, 1, 1, f1(table.Dynamic, parseJSONValue))
	}
}

// parseJSONValue is parse_json(): strings are decoded (and kept as plain
// strings when they are not JSON); other values are already dynamic.
func parseJSONValue(a any) any {
	if s, ok := a.(string); ok {
		if v, ok := parseJSON(s); ok {
			return v
		}
		return s
	}
	return toDynamic(normalize(a))
}

func registerLogicFuncs() {
	register("isnull", 1, 1, f1(table.Bool, func(a any) any { return a == nil }))
	register("isnotnull", 1, 1, f1(table.Bool, func(a any) any { return a != nil }))
	isEmpty := func(a any) bool { return a == nil || a == "" }
	register("isempty", 1, 1, f1(table.Bool, func(a any) any { return isEmpty(a) }))
	register("isnotempty", 1, 1, f1(table.Bool, func(a any) any { return !isEmpty(a) }))
	register("notempty", 1, 1, f1(table.Bool, func(a any) any { return !isEmpty(a) }))
	register("notnull", 1, 1, f1(table.Bool, func(a any) any { return a != nil }))
	register("isnan", 1, 1, f1(table.Bool, func(a any) any {
		f, ok := a.(float64)
		return ok && math.IsNaN(f)
	}))
	register("isinf", 1, 1, f1(table.Bool, func(a any) any {
		f, ok := a.(float64)
		return ok && math.IsInf(f, 0)
	}))
	register("isfinite", 1, 1, f1(table.Bool, func(a any) any {
		switch f := a.(type) {
		case float64:
			return !math.IsInf(f, 0) && !math.IsNaN(f)
		case int64:
			return true
		}
		return false
	}))
	register("not", 1, 1, func(cc *callCtx) (*cexpr, error) {
		if !isBoolish(cc.args[0].typ) {
			return nil, cc.errorf(cc.args[0].pos, "not() expects a bool, not %s", cc.args[0].typ)
		}
		return f1(table.Bool, func(a any) any {
			switch a {
			case true:
				return false
			case false:
				return true
			}
			return nil
		})(cc)
	})
	iff := func(cc *callCtx) (*cexpr, error) {
		c := cc.args[0]
		if !isBoolish(c.typ) {
			return nil, cc.errorf(c.pos, "%s() condition must be bool, not %s", cc.call.Name, c.typ)
		}
		t, ok := unify(cc.args[1], cc.args[2])
		if !ok {
			return nil, cc.errorf(cc.call.NamePos, "%s() branches have different types: %s and %s", cc.call.Name, cc.args[1].typ, cc.args[2].typ)
		}
		cf, a, b := c.fn, coerce(cc.args[1], t).fn, coerce(cc.args[2], t).fn
		return newExpr(t, cc.call.NamePos, func(row []any) any {
			if cf(row) == true {
				return a(row)
			}
			return b(row)
		}), nil
	}
	register("iff", 3, 3, iff)
	register("iif", 3, 3, iff)
	register("case", 3, -1, func(cc *callCtx) (*cexpr, error) {
		if len(cc.args)%2 == 0 {
			return nil, cc.errorf(cc.call.NamePos, "case() expects pairs of predicate and value followed by an else value")
		}
		var vals []*cexpr
		var conds []func([]any) any
		for i := 0; i+1 < len(cc.args); i += 2 {
			if !isBoolish(cc.args[i].typ) {
				return nil, cc.errorf(cc.args[i].pos, "case() predicate must be bool, not %s", cc.args[i].typ)
			}
			conds = append(conds, cc.args[i].fn)
			vals = append(vals, cc.args[i+1])
		}
		vals = append(vals, cc.args[len(cc.args)-1])
		t, ok := unify(vals...)
		if !ok {
			return nil, cc.errorf(cc.call.NamePos, "case() values have different types")
		}
		vfns := make([]func([]any) any, len(vals))
		for i, v := range vals {
			vfns[i] = coerce(v, t).fn
		}
		return newExpr(t, cc.call.NamePos, func(row []any) any {
			for i, c := range conds {
				if c(row) == true {
					return vfns[i](row)
				}
			}
			return vfns[len(vfns)-1](row)
		}), nil
	})
	register("coalesce", 1, -1, func(cc *callCtx) (*cexpr, error) {
		t, ok := unify(cc.args...)
		if !ok {
			return nil, cc.errorf(cc.call.NamePos, "coalesce() arguments have different types")
		}
		fns := make([]func([]any) any, len(cc.args))
		for i, a := range cc.args {
			fns[i] = coerce(a, t).fn
		}
		return newExpr(t, cc.call.NamePos, func(row []any) any {
			var last any
			for _, f := range fns {
				v := f(row)
				if v != nil && v != "" {
					return v
				}
				last = v
			}
			return last
		}), nil
	})
	minmax := func(want int) builder {
		return func(cc *callCtx) (*cexpr, error) {
			t, ok := unify(cc.args...)
			if !ok {
				return nil, cc.errorf(cc.call.NamePos, "%s() arguments have different types", cc.call.Name)
			}
			fns := make([]func([]any) any, len(cc.args))
			for i, a := range cc.args {
				fns[i] = coerce(a, t).fn
			}
			return newExpr(t, cc.call.NamePos, func(row []any) any {
				var best any
				for _, f := range fns {
					v := f(row)
					if v == nil {
						continue
					}
					if best == nil || sortCompare(v, best)*want > 0 {
						best = v
					}
				}
				return best
			}), nil
		}
	}
	register("max_of", 1, -1, minmax(1))
	register("min_of", 1, -1, minmax(-1))
	register("gettype", 1, 1, func(cc *callCtx) (*cexpr, error) {
		st := cc.args[0].typ
		return f1(table.String, func(a any) any {
			if st != table.Dynamic {
				if a == nil && st == "" {
					return "null"
				}
				return string(st)
			}
			switch a.(type) {
			case nil:
				return "null"
			case bool:
				return "bool"
			case int64:
				return "long"
			case float64:
				return "real"
			case string:
				return "string"
			case []any:
				return "array"
			case map[string]any:
				return "dictionary"
			}
			return "object"
		})(cc)
	})
}

func registerMathFuncs() {
	realFn := func(name string, f func(float64) float64) {
		register(name, 1, 1, f1(table.Real, func(a any) any {
			x, ok := toReal(a)
			if !ok || a == nil {
				return nil
			}
			return f(x)
		}))
	}
	realFn("sqrt", math.Sqrt)
	realFn("exp", math.Exp)
	realFn("exp2", math.Exp2)
	realFn("exp10", func(x float64) float64 { return math.Pow(10, x) })
	realFn("log", math.Log)
	realFn("log2", math.Log2)
	realFn("log10", math.Log10)
	realFn("ceiling", math.Ceil)
	register("pow", 2, 2, f2(table.Real, func(a, b any) any {
		x, ok1 := toReal(a)
		y, ok2 := toReal(b)
		if !ok1 || !ok2 || a == nil || b == nil {
			return nil
		}
		return math.Pow(x, y)
	}))
	register("abs", 1, 1, func(cc *callCtx) (*cexpr, error) {
		return f1(cc.args[0].typ, func(a any) any {
			switch x := a.(type) {
			case int64:
				if x < 0 {
					return -x
				}
				return x
			case float64:
				return math.Abs(x)
			case time.Duration:
				return x.Abs()
			}
			if f, ok := toReal(a); ok && a != nil {
				return math.Abs(f)
			}
			return nil
		})(cc)
	})
	register("sign", 1, 1, f1(table.Real, func(a any) any {
		f, ok := toReal(a)
		if !ok || a == nil {
			return nil
		}
		switch {
		case f > 0:
			return 1.0
		case f < 0:
			return -1.0
		}
		return 0.0
	}))
	register("round", 1, 2, func(cc *callCtx) (*cexpr, error) {
		prec := func([]any) any { return int64(0) }
		if len(cc.args) == 2 {
			prec = cc.args[1].fn
		}
		a := cc.args[0].fn
		return newExpr(table.Real, cc.call.NamePos, func(row []any) any {
			x, ok := toReal(a(row))
			p, ok2 := toLong(prec(row))
			if !ok || !ok2 || p > 15 || p < -15 {
				return nil
			}
			m := math.Pow(10, float64(p))
			return math.Round(x*m) / m
		}), nil
	})
	binB := func(cc *callCtx) (*cexpr, error) {
		x, size := cc.args[0], cc.args[1]
		t := x.typ
		if isNumericType(t) && size.typ == table.Real {
			t = table.Real
		}
		if t == table.Int {
			t = table.Long
		}
		return f2(t, binValue)(cc)
	}
	register("bin", 2, 2, binB)
	register("floor", 2, 2, binB)
}

// binValue rounds v down to a multiple of size (bin/floor).
func binValue(v, size any) any {
	switch x := v.(type) {
	case int64:
		switch s := size.(type) {
		case int64:
			if s <= 0 {
				return nil
			}
			m := x % s
			if m < 0 {
				m += s
			}
			return x - m
		case float64:
			return binValue(float64(x), s)
		}
	case float64:
		s, ok := toReal(size)
		if !ok || s <= 0 || size == nil {
			return nil
		}
		return math.Floor(x/s) * s
	case time.Time:
		s, ok := size.(time.Duration)
		if !ok || s < 100 {
			return nil
		}
		t := ticksOf(x)
		st := int64(s / 100)
		m := t % st
		if m < 0 {
			m += st
		}
		return fromTicks(t - m)
	case time.Duration:
		s, ok := size.(time.Duration)
		if !ok || s <= 0 {
			return nil
		}
		m := x % s
		if m < 0 {
			m += s
		}
		return x - m
	case string:
		if n, ok := toNumber(x); ok {
			return binValue(n, size)
		}
	}
	return nil
}
