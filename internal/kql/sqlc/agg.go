package sqlc

import (
	"fmt"
	"strconv"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// aggCollector compiles the aggregates of a summarize inline: each becomes
// a SQL aggregate over the input stage.
type aggCollector struct{ used int }

type aggBuilder func(s *scope, a []*sexpr) (*sexpr, error)

var aggregates map[string]aggBuilder

func init() {
	aggregates = map[string]aggBuilder{
		"count": func(s *scope, a []*sexpr) (*sexpr, error) {
			if len(a) == 0 || a[0].notNull {
				return &sexpr{sql: "count(*)", typ: table.Long, notNull: true}, nil
			}
			return &sexpr{sql: "count(" + a[0].sql + ")", typ: table.Long, notNull: true}, nil
		},
		"countif": func(s *scope, a []*sexpr) (*sexpr, error) {
			if a[0].typ != table.Bool {
				return nil, unsupported("countif of %s", a[0].typ)
			}
			return &sexpr{sql: "CAST(count_if(" + a[0].sql + ") AS BIGINT)", typ: table.Long, notNull: true}, nil
		},
		"dcount": func(s *scope, a []*sexpr) (*sexpr, error) {
			return &sexpr{sql: s.c.d.CountDistinct(distinctKey(a[0])), typ: table.Long, notNull: true}, nil
		},
		"dcountif": func(s *scope, a []*sexpr) (*sexpr, error) {
			if a[1].typ != table.Bool {
				return nil, unsupported("dcountif condition of %s", a[1].typ)
			}
			return &sexpr{sql: s.c.d.CountDistinct("CASE WHEN " + a[1].sql + " THEN " + distinctKey(a[0]) + " END"), typ: table.Long, notNull: true}, nil
		},
		"sum":          sumAgg(false),
		"sumif":        sumAgg(true),
		"avg":          avgAgg(false),
		"avgif":        avgAgg(true),
		"min":          minMaxAgg("min", false),
		"max":          minMaxAgg("max", false),
		"minif":        minMaxAgg("min", true),
		"maxif":        minMaxAgg("max", true),
		"stdev":        varAgg(true),
		"variance":     varAgg(false),
		"make_set":     listAgg(true, false),
		"make_set_if":  listAgg(true, true),
		"make_list":    listAgg(false, false),
		"make_list_if": listAgg(false, true),
		"percentile":   percentileAgg,
		"take_any":     anyAgg,
		"any":          anyAgg,
	}
	aggregates["count_distinct"] = aggregates["dcount"]
	aggregates["make_set_distinct"] = aggregates["make_set"]
}

// distinctKey is what two values must share to count once in dcount:
// dynamic values compare by their JSON text.
func distinctKey(e *sexpr) string {
	return e.sql
}

func filterOf(a []*sexpr, i int, ok bool) (string, error) {
	if !ok {
		return "", nil
	}
	if a[i].typ != table.Bool {
		return "", unsupported("condition of %s", a[i].typ)
	}
	return " FILTER (WHERE " + a[i].sql + ")", nil
}

func sumAgg(cond bool) aggBuilder {
	return func(s *scope, a []*sexpr) (*sexpr, error) {
		f, err := filterOf(a, 1, cond)
		if err != nil {
			return nil, err
		}
		switch a[0].typ {
		case table.Long:
			return &sexpr{sql: "coalesce(CAST(sum(" + a[0].sql + ")" + f + " AS BIGINT), 0)", typ: table.Long, notNull: true}, nil
		case table.Real:
			return &sexpr{sql: "coalesce(sum(" + a[0].sql + ")" + f + ", CAST(0 AS DOUBLE))", typ: table.Real, notNull: true}, nil
		}
		return nil, unsupported("sum of %s", a[0].typ)
	}
}

func avgAgg(cond bool) aggBuilder {
	return func(s *scope, a []*sexpr) (*sexpr, error) {
		f, err := filterOf(a, 1, cond)
		if err != nil {
			return nil, err
		}
		if !isNumeric(a[0].typ) {
			return nil, unsupported("avg of %s", a[0].typ)
		}
		return &sexpr{sql: "avg(" + a[0].sql + ")" + f, typ: table.Real}, nil
	}
}

func minMaxAgg(fn string, cond bool) aggBuilder {
	return func(s *scope, a []*sexpr) (*sexpr, error) {
		f, err := filterOf(a, 1, cond)
		if err != nil {
			return nil, err
		}
		if a[0].typ == table.Dynamic && !a[0].srep {
			return nil, unsupported("%s of dynamic", fn)
		}
		e := a[0].derived(fn + "(" + a[0].sql + ")" + f)
		e.notNull = a[0].notNull && !cond
		if e.typ == table.String {
			// min/max of a string column over no rows is "".
			e.sql, e.notNull = "coalesce("+e.sql+", '')", true
		}
		return e, nil
	}
}

func varAgg(stdev bool) aggBuilder {
	return func(s *scope, a []*sexpr) (*sexpr, error) {
		if !isNumeric(a[0].typ) {
			return nil, unsupported("variance of %s", a[0].typ)
		}
		v := s.c.d.Variance(a[0].sql)
		if stdev {
			v = s.c.d.Stddev(a[0].sql)
		}
		return &sexpr{sql: "coalesce(" + v + ", CAST(0 AS DOUBLE))", typ: table.Real, notNull: true}, nil
	}
}

func listAgg(distinct, cond bool) aggBuilder {
	return func(s *scope, a []*sexpr) (*sexpr, error) {
		switch a[0].typ {
		case table.DateTime, table.TimeSpan:
			return nil, unsupported("list of %s", a[0].typ)
		}
		filter := ""
		next := 1
		if cond {
			if a[1].typ != table.Bool {
				return nil, unsupported("condition of %s", a[1].typ)
			}
			filter, next = a[1].sql, 2
		}
		var limit int64
		if len(a) > next {
			n, ok := a[next].val.(int64)
			if !a[next].isConst || !ok {
				return nil, unsupported("list size that is not a constant")
			}
			limit = n
		}
		x := a[0].sql
		if distinct && a[0].typ == table.Dynamic && !a[0].srep {
			return nil, unsupported("make_set of dynamic")
		}
		return &sexpr{sql: s.c.d.ListAgg(x, distinct, limit, filter, a[0].typ == table.Dynamic && !a[0].srep), typ: table.Dynamic, notNull: true}, nil
	}
}

func anyAgg(s *scope, a []*sexpr) (*sexpr, error) {
	return a[0].derived(s.c.d.AnyValue(a[0].sql)), nil
}

// add compiles one aggregate call found in a summarize expression.
func (ac *aggCollector) add(s *scope, call *syntax.Call, b aggBuilder) (*sexpr, error) {
	in := &scope{c: s.c, r: s.r, depth: s.depth} // arguments see the input, and no nested aggregates
	var args []*sexpr
	for _, a := range call.Args {
		if _, star := a.(*syntax.Star); star {
			continue
		}
		e, err := in.expr(a)
		if err != nil {
			return nil, err
		}
		args = append(args, e)
	}
	ac.used++
	return b(in, args)
}

// summarize compiles summarize: the keys (by), then each aggregation.
func (c *compiler) summarize(r *rel, x *syntax.Summarize) (*rel, error) {
	if r.limit >= 0 {
		r = c.materialize(r)
	}
	n := &rel{from: r.from, where: r.where, limit: -1}
	var keys []string
	for _, k := range x.By {
		e, err := c.scope(r).expr(k.Expr)
		if err != nil {
			return nil, err
		}
		keys = append(keys, e.sql)
		n.cols = append(n.cols, column{e: e})
	}
	for _, a := range x.Aggs {
		if call, ok := a.Expr.(*syntax.Call); ok && (call.Name == "arg_max" || call.Name == "arg_min") {
			cols, err := c.argMax(r, call)
			if err != nil {
				return nil, err
			}
			n.cols = append(n.cols, cols...)
			continue
		}
		sc := &scope{c: c, r: r, aggs: &aggCollector{}}
		e, err := sc.expr(a.Expr)
		if err != nil {
			return nil, err
		}
		if sc.aggs.used == 0 {
			return nil, unsupported("summarize of an expression without an aggregate")
		}
		n.cols = append(n.cols, column{e: e})
	}
	// Names: the evaluator's (the columns are in its order, which the
	// schema check confirms).
	if len(c.stageSchema) != len(n.cols) {
		return nil, unsupported("summarize shape")
	}
	for i := range n.cols {
		n.cols[i].name = c.stageSchema[i].Name
	}
	return c.group(n, keys), nil
}

// argMax compiles arg_max(key, cols...) and arg_min: the extreme key, and
// the given columns (all of them for *) of one row where the key is
// extreme, all taken from one struct so that they come from one row.
func (c *compiler) argMax(r *rel, call *syntax.Call) ([]column, error) {
	sc := c.scope(r)
	key, err := sc.expr(call.Args[0])
	if err != nil {
		return nil, err
	}
	if !sortable(key) || key.typ == table.String {
		return nil, unsupported("%s of %s", call.Name, key.typ)
	}
	var names, vals []string
	var exprs []*sexpr
	for _, a := range call.Args[1:] {
		if _, star := a.(*syntax.Star); star {
			for _, col := range r.cols {
				names, vals, exprs = append(names, col.name), append(vals, col.e.sql), append(exprs, col.e)
			}
			continue
		}
		e, err := sc.expr(a)
		if err != nil {
			return nil, err
		}
		names, vals, exprs = append(names, "f"+itoa(int64(len(names)))), append(vals, e.sql), append(exprs, e)
	}
	for i := range names {
		names[i] = "f" + itoa(int64(i))
	}
	d := c.d
	fn := "max"
	if call.Name == "arg_min" {
		fn = "min"
	}
	out := []column{{e: &sexpr{sql: fn + "(" + key.sql + ")", typ: key.typ, intType: key.intType}}}
	pack := d.ArgMax(d.StructPack(names, vals), key.sql, call.Name == "arg_min")
	for i, e := range exprs {
		out = append(out, column{e: e.derived(d.StructField(pack, names[i]))})
	}
	return out, nil
}

// percentileAgg is percentile(x, p): the nearest-rank percentile, which
// is what quantile_disc computes (the evaluator's percentileState).
func percentileAgg(s *scope, a []*sexpr) (*sexpr, error) {
	switch a[0].typ {
	case table.Long, table.Real, table.DateTime, table.TimeSpan:
	default:
		return nil, unsupported("percentile of %s", a[0].typ)
	}
	var p float64
	switch v := a[1].val; {
	case !a[1].isConst:
		return nil, unsupported("percentile with a computed percentile")
	case v == nil:
		return nil, unsupported("percentile null")
	default:
		switch x := v.(type) {
		case int64:
			p = float64(x)
		case float64:
			p = x
		default:
			return nil, unsupported("percentile %T", v)
		}
	}
	if p < 0 || p > 100 {
		return nil, unsupported("percentile out of range")
	}
	e := a[0].derived(fmt.Sprintf("quantile_disc(%s, %s)", a[0].sql, strconv.FormatFloat(p/100, 'g', -1, 64)))
	e.notNull = false
	return e, nil
}
