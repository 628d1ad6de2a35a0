package eval

import (
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// User-defined functions (let f = (x:string, n:long = 1) { ... }): a
// scalar function is compiled into the calling expression, with its
// parameters as the columns of its own row; a tabular one runs where a
// table is expected (f(args) as a source, or T | invoke f(args), which
// passes T as the first, tabular, parameter). A body sees its parameters
// and the lets defined before the function, not the caller's columns.

const maxCallDepth = 32

// udfCall compiles a call of a user-defined scalar function.
func (sc *scope) udfCall(e *syntax.Call, b *env) (*cexpr, error) {
	fn := b.fn
	if fn.Scalar == nil {
		return nil, sc.errorf(e.NamePos, "%s() is a tabular function: call it where a table is expected, or with invoke", e.Name)
	}
	if err := checkParamCount(sc.r, e.NamePos, e.Name, fn, len(e.Args)); err != nil {
		return nil, err
	}
	if sc.r.calls >= maxCallDepth {
		return nil, sc.errorf(e.NamePos, "%s(): user-defined functions nest deeper than %d calls (recursion?)", e.Name, maxCallDepth)
	}
	sc.r.calls++
	defer func() { sc.r.calls-- }()
	cols := make([]table.Column, len(fn.Params))
	args := make([]*cexpr, len(fn.Params))
	for i, p := range fn.Params {
		if p.Tabular {
			return nil, sc.errorf(p.NamePos, "%s(): tabular parameter %s in a scalar call", e.Name, p.Name)
		}
		var a *cexpr
		var err error
		if i < len(e.Args) {
			a, err = sc.compile(e.Args[i])
		} else {
			a, err = newScope(sc.r, b.tabEnv, nil).compile(p.Default)
		}
		if err != nil {
			return nil, err
		}
		if a, err = bindArg(sc.r, e.Name, p, a); err != nil {
			return nil, err
		}
		cols[i] = table.Column{Name: p.Name, Type: p.Type}
		args[i] = a
	}
	bodyEnv, err := sc.r.evalLetsIn(b.tabEnv, fn.Lets)
	if err != nil {
		return nil, err
	}
	body, err := newScope(sc.r, bodyEnv, cols).compile(fn.Scalar)
	if err != nil {
		return nil, err
	}
	bf := body.fn
	argFns := make([]func([]any) any, len(args))
	for i, a := range args {
		argFns[i] = a.fn
	}
	c := newExpr(body.typ, e.NamePos, func(row []any) any {
		prow := make([]any, len(argFns))
		for i, f := range argFns {
			prow[i] = f(row)
		}
		return bf(prow)
	})
	if body.isConst {
		return constExpr(body.typ, body.val, e.NamePos), nil
	}
	return fold(c, args...), nil
}

func checkParamCount(r *runner, pos syntax.Pos, name string, fn *syntax.FuncDef, n int) error {
	min := 0
	for _, p := range fn.Params {
		if p.Default == nil {
			min++
		}
	}
	if n < min || n > len(fn.Params) {
		return r.errorf(pos, "%s", argCountMsg(name, min, len(fn.Params), n))
	}
	return nil
}

// bindArg checks an argument against its parameter's type, converting
// between numbers.
func bindArg(r *runner, fname string, p syntax.Param, a *cexpr) (*cexpr, error) {
	switch {
	case a.typ == p.Type || a.typ == "" || p.Type == table.Dynamic:
		return a, nil
	case isNumericType(a.typ) && isNumericType(p.Type), a.typ == table.Dynamic:
		return coerce(a, p.Type), nil
	}
	return nil, r.errorf(a.pos, "%s(): argument %s must be %s, not %s", fname, p.Name, p.Type, a.typ)
}

// udfTable runs a user-defined tabular function: input, when not nil,
// is the first (tabular) argument (invoke).
func (r *runner) udfTable(pos syntax.Pos, name string, args []syntax.Expr, input *relation, e *env) (*relation, error) {
	b := e.lookup(name)
	if b == nil || b.fn == nil {
		if b == nil {
			return nil, r.errorf(pos, "unknown function %q", name)
		}
		return nil, r.errorf(pos, "%q is not a function", name)
	}
	fn := b.fn
	if fn.Tabular == nil {
		return nil, r.errorf(pos, "%s() is a scalar function, not a table", name)
	}
	n := len(args)
	if input != nil {
		n++
		if len(fn.Params) == 0 || !fn.Params[0].Tabular {
			return nil, r.errorf(pos, "invoke %s(): its first parameter must be tabular, as T:(*)", name)
		}
	}
	if err := checkParamCount(r, pos, name, fn, n); err != nil {
		return nil, err
	}
	if r.calls >= maxCallDepth {
		return nil, r.errorf(pos, "%s(): user-defined functions nest deeper than %d calls (recursion?)", name, maxCallDepth)
	}
	r.calls++
	defer func() { r.calls-- }()
	fe := b.tabEnv
	for i, p := range fn.Params {
		nb := &env{parent: fe, name: p.Name}
		ai := i
		if input != nil {
			ai--
		}
		switch {
		case p.Tabular && i == 0 && input != nil:
			nb.mat = input
		case p.Tabular:
			if ai >= len(args) {
				return nil, r.errorf(pos, "%s(): missing tabular argument %s", name, p.Name)
			}
			id, ok := args[ai].(*syntax.Ident)
			if !ok {
				return nil, r.errorf(args[ai].Pos(), "%s(): argument %s must name a table", name, p.Name)
			}
			if tb := e.lookup(id.Name); tb != nil && (tb.tab != nil || tb.mat != nil) {
				nb.tab, nb.tabEnv, nb.mat = tb.tab, tb.tabEnv, tb.mat
			} else {
				nb.tab, nb.tabEnv = &syntax.TableRef{NamePos: id.NamePos, Name: id.Name}, e
			}
		default:
			var a *cexpr
			var err error
			if ai < len(args) {
				a, err = newScope(r, e, nil).compile(args[ai])
			} else {
				a, err = newScope(r, b.tabEnv, nil).compile(p.Default)
			}
			if err != nil {
				return nil, err
			}
			if !a.isConst {
				return nil, r.errorf(a.pos, "%s(): argument %s must be a constant", name, p.Name)
			}
			if a, err = bindArg(r, name, p, a); err != nil {
				return nil, err
			}
			c := constExpr(a.typ, a.fn(nil), a.pos)
			nb.scalar = c
		}
		fe = nb
	}
	fe, err := r.evalLetsIn(fe, fn.Lets)
	if err != nil {
		return nil, err
	}
	return r.evalTabular(fn.Tabular, fe)
}
