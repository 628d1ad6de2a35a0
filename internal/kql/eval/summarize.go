package eval

import (
	"slices"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// aggCollector gathers the aggregates used by the expressions of a
// summarize; each compiles to a read of its result in the "post" row.
type aggCollector struct {
	input *scope
	defs  []*aggDef
}

func (ac *aggCollector) compileArgs(call *syntax.Call) (aggArgs, error) {
	args := make(aggArgs, len(call.Args))
	for i, a := range call.Args {
		if _, star := a.(*syntax.Star); star {
			if call.Name != "count" || i != 0 {
				return nil, ac.input.errorf(a.Pos(), "'*' is not a valid argument of %s", call.Name)
			}
			continue
		}
		c, err := ac.input.compile(a)
		if err != nil {
			return nil, err
		}
		args[i] = c
	}
	return args, nil
}

func (ac *aggCollector) add(sc *scope, call *syntax.Call, spec aggSpec) (*cexpr, error) {
	if spec.build == nil {
		return nil, sc.errorf(call.NamePos, "%s() must be used directly in summarize, not inside an expression", call.Name)
	}
	args, err := ac.compileArgs(call)
	if err != nil {
		return nil, err
	}
	def, err := spec.build(ac.input, call, args)
	if err != nil {
		return nil, err
	}
	i := len(ac.defs)
	ac.defs = append(ac.defs, def)
	return newExpr(def.typ, call.NamePos, func(post []any) any { return post[i] }), nil
}

// sumOutput produces one or more output columns from the aggregate results.
type sumOutput struct {
	cols []table.Column
	eval func(post, dst []any)
}

func (r *runner) summarize(rel *relation, op *syntax.Summarize, e *env) (*relation, error) {
	in := newScope(r, e, rel.cols)
	in.nested = true
	var outCols []table.Column
	var keyFns []func([]any) any
	for _, k := range op.By {
		c, err := in.compile(k.Expr)
		if err != nil {
			return nil, err
		}
		name := k.Name
		if name == "" {
			name = syntax.DefaultName(k.Expr)
		}
		if name == "" {
			name = nextColumnName(outCols, "Column")
		}
		if hasColumn(outCols, name) {
			return nil, r.errorf(k.Expr.Pos(), "duplicate column name %q in summarize", name)
		}
		outCols = append(outCols, table.Column{Name: name, Type: colType(c)})
		keyFns = append(keyFns, c.fn)
	}
	nKeys := len(outCols)
	ac := &aggCollector{input: in}
	var outputs []sumOutput
	for _, a := range op.Aggs {
		if call, ok := a.Expr.(*syntax.Call); ok && (call.Name == "arg_max" || call.Name == "arg_min") {
			o, err := r.argMaxOutput(ac, call, a.Name, outCols, rel.cols)
			if err != nil {
				return nil, err
			}
			outputs = append(outputs, o)
			outCols = append(outCols, o.cols...)
			continue
		}
		sc := &scope{r: r, env: e, idx: map[string]int{}, agg: ac}
		c, err := sc.compile(a.Expr)
		if err != nil {
			return nil, err
		}
		name := a.Name
		if name == "" {
			name = aggName(a.Expr)
		}
		if name == "" {
			name = nextColumnName(outCols, "Column")
		}
		if hasColumn(outCols, name) {
			if a.Name != "" {
				return nil, r.errorf(a.NamePos, "duplicate column name %q in summarize", name)
			}
			name = dedupName(outCols, name)
		}
		col := table.Column{Name: name, Type: colType(c)}
		outCols = append(outCols, col)
		f := c.fn
		outputs = append(outputs, sumOutput{cols: []table.Column{col}, eval: func(post, dst []any) { dst[0] = f(post) }})
	}
	if len(ac.defs) == 0 && len(op.By) == 0 {
		return nil, r.errorf(op.OpPos, "summarize needs an aggregation or a by clause")
	}

	type group struct {
		keys   []any
		states []aggState
	}
	newStates := func() []aggState {
		s := make([]aggState, len(ac.defs))
		for i, d := range ac.defs {
			s[i] = d.newState()
		}
		return s
	}
	var groups []*group
	index := map[string]int{}
	keyVals := make([]any, len(keyFns))
	var buf []byte
	for _, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		buf = buf[:0]
		for i, f := range keyFns {
			v := f(row)
			keyVals[i] = v
			buf = appendKey(buf, v)
		}
		gi, ok := index[string(buf)]
		if !ok {
			gi = len(groups)
			index[string(buf)] = gi
			groups = append(groups, &group{keys: slices.Clone(keyVals), states: newStates()})
		}
		for _, s := range groups[gi].states {
			s.add(row)
		}
	}
	if len(groups) == 0 && len(keyFns) == 0 {
		groups = append(groups, &group{states: newStates()})
	}
	alloc := rowAlloc{width: len(outCols)}
	out := make([][]any, 0, len(groups))
	post := make([]any, len(ac.defs))
	for _, g := range groups {
		for i, s := range g.states {
			post[i] = s.result()
		}
		row := alloc.row()
		copy(row, g.keys)
		at := nKeys
		for _, o := range outputs {
			o.eval(post, row[at:at+len(o.cols)])
			at += len(o.cols)
		}
		out = append(out, row)
	}
	return &relation{cols: outCols, rows: out}, nil
}

// aggName is the default column name of an aggregation: count_, dcount_X,
// sum_X, set_X, list_X...
func aggName(e syntax.Expr) string {
	call, ok := e.(*syntax.Call)
	if !ok {
		return ""
	}
	spec, ok := aggregates[call.Name]
	if !ok {
		return ""
	}
	if call.Name == "percentile" && len(call.Args) == 2 {
		return syntax.PercentileName(call.Args[0], call.Args[1])
	}
	if !spec.argName || len(call.Args) == 0 {
		return spec.prefix
	}
	return spec.prefix + syntax.DefaultName(call.Args[0])
}

// argMaxOutput compiles arg_max(key, cols...) / arg_min: the key column
// and the columns of the row where the key is extreme.
func (r *runner) argMaxOutput(ac *aggCollector, call *syntax.Call, name string, taken, input []table.Column) (sumOutput, error) {
	spec := aggregates[call.Name]
	if err := checkArgCount(ac.input, call, spec.min, spec.max); err != nil {
		return sumOutput{}, err
	}
	key, err := ac.input.compile(call.Args[0])
	if err != nil {
		return sumOutput{}, err
	}
	if name == "" {
		name = syntax.DefaultName(call.Args[0])
	}
	if name == "" {
		if call.Name == "arg_max" {
			name = "max_"
		} else {
			name = "min_"
		}
	}
	cols := []table.Column{{Name: dedupName(taken, name), Type: colType(key)}}
	all := append(slices.Clone(taken), cols[0])
	var fns []func([]any) any
	for _, a := range call.Args[1:] {
		if _, star := a.(*syntax.Star); star {
			for i, c := range input {
				if hasColumn(all, c.Name) {
					continue
				}
				i := i
				cols = append(cols, c)
				all = append(all, c)
				fns = append(fns, func(row []any) any { return row[i] })
			}
			continue
		}
		c, err := ac.input.compile(a)
		if err != nil {
			return sumOutput{}, err
		}
		n := syntax.DefaultName(a)
		if n == "" {
			n = nextColumnName(all, "Column")
		}
		col := table.Column{Name: dedupName(all, n), Type: colType(c)}
		cols = append(cols, col)
		all = append(all, col)
		fns = append(fns, c.fn)
	}
	want := 1
	if call.Name == "arg_min" {
		want = -1
	}
	kf := key.fn
	i := len(ac.defs)
	ac.defs = append(ac.defs, &aggDef{typ: table.Dynamic, newState: func() aggState { return &argState{want: want, key: kf} }})
	return sumOutput{cols: cols, eval: func(post, dst []any) {
		s := post[i].(*argState)
		dst[0] = s.best
		for j, f := range fns {
			if s.row == nil {
				dst[j+1] = nil
			} else {
				dst[j+1] = f(s.row)
			}
		}
	}}, nil
}
