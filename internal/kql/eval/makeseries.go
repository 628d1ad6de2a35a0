package eval

import (
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// makeSeries runs make-series: the rows of each group (by) are put in the
// bins of the axis, start + k*step for start <= bin < end, each aggregate
// computed per bin (default where a bin has no row), and the output row
// holds the group's keys, an array per aggregate and the array of the
// bins' starts (named after the axis). Without from, start is the bin
// (as bin() rounds) of the smallest axis value; without to, end is the
// bin after the largest; both over the whole input, so every series
// shares its axis. No input rows give no output row, unless kind=nonempty
// (then one row of defaults, when from and to are given).
func (r *runner) makeSeries(rel *relation, op *syntax.MakeSeries, e *env) (*relation, error) {
	sc := newScope(r, e, rel.cols)
	axis, err := sc.compile(op.Axis)
	if err != nil {
		return nil, err
	}
	switch axis.typ {
	case table.DateTime, table.TimeSpan, table.Long, table.Int, table.Real:
	default:
		return nil, r.errorf(op.Axis.Pos(), "make-series axis must be a datetime, timespan or number, not %s", axis.typ)
	}
	konst := func(x syntax.Expr, what string) (any, error) {
		c, err := newScope(r, e, nil).compile(x)
		if err != nil {
			return nil, err
		}
		if !c.isConst || c.val == nil && what != "default" {
			return nil, r.errorf(x.Pos(), "make-series %s must be a constant", what)
		}
		return c.val, nil
	}
	step, err := konst(op.Step, "step")
	if err != nil {
		return nil, err
	}
	if zero := binValue(axisZero(axis.typ), step); zero == nil {
		return nil, r.errorf(op.Step.Pos(), "make-series step must be a positive %s", stepKind(axis.typ))
	}
	var from, to any
	if op.From != nil {
		if from, err = konst(op.From, "from"); err != nil {
			return nil, err
		}
	}
	if op.To != nil {
		if to, err = konst(op.To, "to"); err != nil {
			return nil, err
		}
	}
	if op.InRange {
		// in range(start, stop, step): the bins of bin(), stop inclusive.
		if from == nil || to == nil {
			return nil, r.errorf(op.From.Pos(), "make-series in range() needs a start and a stop that are not null")
		}
		c, ok := orderValues(from, to)
		from, to = binValue(from, step), arith('+', binValue(to, step), step)
		if !ok || from == nil || to == nil {
			return nil, r.errorf(op.From.Pos(), "make-series in range(): start and stop must be of the axis' type (%s)", axis.typ)
		}
		if c > 0 {
			return nil, r.errorf(op.From.Pos(), "make-series in range(): start is after stop")
		}
	}
	// The aggregates, as a summarize by bin index (and the keys).
	sum := &syntax.Summarize{OpPos: op.OpPos}
	for _, a := range op.Aggs {
		sum.Aggs = append(sum.Aggs, a.Assign)
	}
	defaults := make([]any, len(op.Aggs))
	for i, a := range op.Aggs {
		defaults[i] = int64(0)
		if a.Default != nil {
			if defaults[i], err = konst(a.Default, "default"); err != nil {
				return nil, err
			}
		}
	}
	// The bins.
	if from == nil || to == nil {
		var lo, hi any
		for _, row := range rel.rows {
			v := axis.fn(row)
			if v == nil {
				continue
			}
			if c, ok := orderValues(v, lo); lo == nil || ok && c < 0 {
				lo = v
			}
			if c, ok := orderValues(v, hi); hi == nil || ok && c > 0 {
				hi = v
			}
		}
		if lo == nil && (from == nil || to == nil) && !op.NonEmpty {
			return r.seriesShape(rel, op, sum, e, nil)
		}
		if from == nil && lo != nil {
			from = binValue(lo, step)
		}
		if to == nil && hi != nil {
			to = arith('+', binValue(hi, step), step)
		}
	}
	var bins []any
	if from != nil && to != nil {
		for b := from; ; b = arith('+', b, step) {
			if c, ok := orderValues(b, to); !ok || c >= 0 {
				break
			}
			bins = append(bins, b)
			if len(bins) > 1<<20 {
				return nil, r.errorf(op.Step.Pos(), "make-series: more than %d bins", 1<<20)
			}
		}
	}
	binOf := func(v any) int {
		if v == nil || len(bins) == 0 {
			return -1
		}
		if c, ok := orderValues(v, from); !ok || c < 0 {
			return -1
		}
		if c, ok := orderValues(v, to); !ok || c >= 0 {
			return -1
		}
		var k int64
		switch x := arith('-', v, from).(type) {
		case time.Duration:
			k = int64(x / step.(time.Duration))
		case int64:
			s, _ := toReal(step)
			k = int64(float64(x) / s)
		case float64:
			s, _ := toReal(step)
			k = int64(x / s)
		}
		if k < 0 || k >= int64(len(bins)) {
			return -1
		}
		return int(k)
	}
	// Group the rows by the keys and the bin.
	keyScope := newScope(r, e, rel.cols)
	keyFns := make([]func([]any) any, len(op.By))
	for i, k := range op.By {
		c, err := keyScope.compile(k.Expr)
		if err != nil {
			return nil, err
		}
		keyFns[i] = c.fn
	}
	type series struct {
		keys []any
		bins map[int][][]any
	}
	var groups []*series
	index := map[string]*series{}
	var buf []byte
	for _, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		b := binOf(axis.fn(row))
		if b < 0 {
			continue
		}
		buf = buf[:0]
		keys := make([]any, len(keyFns))
		for i, f := range keyFns {
			keys[i] = f(row)
			buf = appendKey(buf, keys[i])
		}
		g := index[string(buf)]
		if g == nil {
			g = &series{keys: keys, bins: map[int][][]any{}}
			index[string(buf)] = g
			groups = append(groups, g)
		}
		g.bins[b] = append(g.bins[b], row)
	}
	if len(groups) == 0 && op.NonEmpty && len(op.By) == 0 {
		groups = append(groups, &series{bins: map[int][][]any{}})
	}
	shape, err := r.seriesShape(rel, op, sum, e, nil)
	if err != nil {
		return nil, err
	}
	nk := len(op.By)
	for _, g := range groups {
		row := make([]any, len(shape.cols))
		copy(row, g.keys)
		arrays := make([][]any, len(op.Aggs))
		for i := range arrays {
			arrays[i] = make([]any, len(bins))
		}
		for k := range bins {
			rows := g.bins[k]
			if len(rows) == 0 {
				for i := range arrays {
					arrays[i][k] = defaults[i]
				}
				continue
			}
			res, err := r.summarize(&relation{cols: rel.cols, rows: rows}, sum, e)
			if err != nil {
				return nil, err
			}
			for i := range arrays {
				arrays[i][k] = toDynamic(res.rows[0][i])
			}
		}
		for i, a := range arrays {
			row[nk+i] = a
		}
		axisVals := make([]any, len(bins))
		for k, b := range bins {
			axisVals[k] = toDynamic(b)
		}
		row[len(row)-1] = axisVals
		shape.rows = append(shape.rows, row)
	}
	return shape, nil
}

// seriesShape is make-series' output with no rows: the keys' columns,
// a dynamic column per aggregate, and the axis column (dynamic).
func (r *runner) seriesShape(rel *relation, op *syntax.MakeSeries, sum *syntax.Summarize, e *env, rows [][]any) (*relation, error) {
	withKeys := &syntax.Summarize{OpPos: sum.OpPos, Aggs: sum.Aggs, By: op.By}
	res, err := r.summarize(&relation{cols: rel.cols}, withKeys, e)
	if err != nil {
		return nil, err
	}
	cols := res.cols[:len(op.By)]
	for _, c := range res.cols[len(op.By):] {
		cols = append(cols, table.Column{Name: c.Name, Type: table.Dynamic})
	}
	name := syntax.DefaultName(op.Axis)
	if name == "" {
		name = nextColumnName(cols, "Column")
	}
	cols = append(cols, table.Column{Name: dedupName(cols, name), Type: table.Dynamic})
	return &relation{cols: cols, rows: rows}, nil
}

func axisZero(t table.Type) any {
	switch t {
	case table.DateTime:
		return time.Unix(0, 0).UTC()
	case table.TimeSpan:
		return time.Duration(0)
	case table.Real:
		return float64(0)
	}
	return int64(0)
}

func stepKind(t table.Type) string {
	if t == table.DateTime || t == table.TimeSpan {
		return "timespan"
	}
	return "number"
}
