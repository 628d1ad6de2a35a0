package eval

import (
	"slices"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// topNested runs top-nested: at each level, the rows (of the value kept
// at the level before) are grouped by the level's expression, each group
// aggregated, and the top N groups kept; a row of the output is one path
// of kept values, with each level's value and aggregate. Ties are broken
// by the value, ascending, so that the result does not depend on the
// input's order (Kusto leaves it open).
//
// "with others = V" at a level adds, under each value kept at the level
// before, a row for the rows left out of the top N: V, and the aggregate
// over them. As in Kusto's own example, the left-out rows stay one
// bucket at the levels below: a level with others gives the bucket its V
// and the aggregate over the whole bucket, a level without gives null
// and null; and a level without others still makes a bucket of its
// left-out rows when a level below has others, so that every row is
// counted once at the deepest level with others.
func (r *runner) topNested(rel *relation, op *syntax.TopNested, e *env) (*relation, error) {
	type level struct {
		n      int
		of     func([]any) any
		agg    *syntax.Summarize // summarize Agg by Of, over a group
		desc   bool
		ofType table.Type
		others any  // the value of the left-out rows' row
		hasOth bool // with others is given
	}
	var levels []level
	var cols []table.Column
	sc := newScope(r, e, rel.cols)
	for _, l := range op.Levels {
		n := 1 << 31
		if l.N != nil {
			c, err := r.constCount(l.N, e, "top-nested")
			if err != nil {
				return nil, err
			}
			n = c
		}
		of, err := sc.compile(l.Of.Expr)
		if err != nil {
			return nil, err
		}
		ofName := l.Of.Name
		if ofName == "" {
			ofName = syntax.DefaultName(l.Of.Expr)
		}
		if ofName == "" {
			ofName = nextColumnName(cols, "Column")
		}
		aggName := l.Agg.Name
		if aggName == "" {
			aggName = "aggregated_" + ofName
		}
		for _, name := range []string{ofName, aggName} {
			if hasColumn(cols, name) {
				return nil, r.errorf(l.Pos, "duplicate column name %q in top-nested", name)
			}
			cols = append(cols, table.Column{Name: name})
		}
		sum := &syntax.Summarize{OpPos: l.Pos, Aggs: []syntax.Assign{{Name: aggName, NamePos: l.Agg.NamePos, Expr: l.Agg.Expr}}}
		// The aggregate's type, from a run over no rows.
		shape, err := r.summarize(&relation{cols: rel.cols}, sum, e)
		if err != nil {
			return nil, err
		}
		cols[len(cols)-2].Type = colType(of)
		cols[len(cols)-1].Type = shape.cols[0].Type
		lv := level{n: n, of: of.fn, agg: sum, desc: l.Desc, ofType: colType(of)}
		if l.Others != nil {
			c, err := newScope(r, e, nil).compile(l.Others)
			if err != nil {
				return nil, err
			}
			if !c.isConst {
				return nil, r.errorf(l.Others.Pos(), "top-nested with others expects a constant")
			}
			lv.hasOth, lv.others = true, c.val
			if c.val != nil {
				if lv.others = convertTo(lv.ofType, c.val); lv.others == nil {
					return nil, r.errorf(l.Others.Pos(), "top-nested with others: the value must be a %s, like %s", lv.ofType, ofName)
				}
			}
		}
		levels = append(levels, lv)
	}
	// othersBelow[d]: a level at or below d has with others.
	othersBelow := make([]bool, len(levels)+1)
	for d := len(levels) - 1; d >= 0; d-- {
		othersBelow[d] = othersBelow[d+1] || levels[d].hasOth
	}
	aggregate := func(rows [][]any, l level) (any, error) {
		res, err := r.summarize(&relation{cols: rel.cols, rows: rows}, l.agg, e)
		if err != nil || len(res.rows) == 0 {
			return nil, err
		}
		return res.rows[0][0], nil
	}
	var out [][]any
	emit := func(path []any) error {
		out = append(out, slices.Clone(path))
		return r.checkRows(len(out), op.OpPos)
	}
	// bucket carries the rows left out at a level down the levels below.
	var bucket func(rows [][]any, depth int, prefix []any) error
	bucket = func(rows [][]any, depth int, prefix []any) error {
		if depth == len(levels) {
			return emit(prefix)
		}
		l := levels[depth]
		var val, agg any
		if l.hasOth {
			a, err := aggregate(rows, l)
			if err != nil {
				return err
			}
			val, agg = l.others, a
		}
		return bucket(rows, depth+1, append(prefix, val, agg))
	}
	var walk func(rows [][]any, depth int, prefix []any) error
	walk = func(rows [][]any, depth int, prefix []any) error {
		if depth == len(levels) {
			return emit(prefix)
		}
		l := levels[depth]
		type group struct {
			key  any
			rows [][]any
			agg  any
		}
		var groups []*group
		index := map[string]*group{}
		var buf []byte
		for _, row := range rows {
			if err := r.tick(); err != nil {
				return err
			}
			k := l.of(row)
			buf = appendKey(buf[:0], k)
			g := index[string(buf)]
			if g == nil {
				g = &group{key: k}
				index[string(buf)] = g
				groups = append(groups, g)
			}
			g.rows = append(g.rows, row)
		}
		for _, g := range groups {
			a, err := aggregate(g.rows, l)
			if err != nil {
				return err
			}
			g.agg = a
		}
		slices.SortStableFunc(groups, func(a, b *group) int {
			c, _ := orderValues(a.agg, b.agg)
			if a.agg == nil || b.agg == nil {
				c = map[bool]int{true: 1, false: -1}[a.agg == nil] // nulls last
				if a.agg == nil && b.agg == nil {
					c = 0
				}
			} else if l.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
			k, _ := orderValues(a.key, b.key)
			return k
		})
		var left [][]any
		if len(groups) > l.n {
			if othersBelow[depth] {
				for _, g := range groups[l.n:] {
					left = append(left, g.rows...)
				}
			}
			groups = groups[:l.n]
		}
		for _, g := range groups {
			if err := walk(g.rows, depth+1, append(prefix, g.key, g.agg)); err != nil {
				return err
			}
		}
		if len(left) > 0 {
			return bucket(left, depth, prefix)
		}
		return nil
	}
	if err := walk(rel.rows, 0, nil); err != nil {
		return nil, err
	}
	return &relation{cols: cols, rows: out}, nil
}
