package sqlc

import (
	"context"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// Scan compiles a table read with the evaluator's pushdown filters (see
// table.ScanRequest): the SQL returns the table's columns, restricted by
// the filters it could translate (the evaluator checks every row again, so
// a filter left out only costs time).
func Scan(ctx context.Context, cat Catalog, d Dialect, req table.ScanRequest, now time.Time) (*Plan, error) {
	c := &compiler{ctx: ctx, q: &syntax.Query{}, cat: cat, d: d, now: now.UTC(), lets: map[string]*syntax.Let{}}
	r, err := c.source(&syntax.TableRef{Name: req.Table})
	if err != nil {
		return nil, err
	}
	for _, f := range req.Filters {
		x, ok := filterExpr(f)
		if !ok {
			continue
		}
		p, err := c.scope(r).expr(x)
		if err != nil || p.typ != table.Bool {
			continue
		}
		r.where = append(r.where, p.sql)
	}
	if req.Columns != nil {
		// The evaluator reads only these: the others come back null.
		keep := map[string]bool{}
		for _, c := range req.Columns {
			keep[c] = true
		}
		for i, col := range r.cols {
			if !keep[col.name] {
				st, err := sqlTypeOf(col.e.typ)
				if err != nil {
					return nil, err
				}
				r.cols[i].e = &sexpr{sql: d.Null(st), typ: col.e.typ, intType: col.e.intType, srep: col.e.srep}
			}
		}
	}
	return c.finish(r), nil
}

// filterExpr writes a pushdown filter as a KQL expression.
func filterExpr(f table.Filter) (syntax.Expr, bool) {
	var x syntax.Expr = &syntax.Ident{Name: f.Column}
	for _, p := range f.Path {
		x = &syntax.Member{X: x, Name: p}
	}
	switch f.Op {
	case table.IsNull:
		return &syntax.Call{Name: "isnull", Args: []syntax.Expr{x}}, true
	case table.IsNotNull:
		return &syntax.Call{Name: "isnotnull", Args: []syntax.Expr{x}}, true
	case table.In:
		vals, ok := f.Value.([]any)
		if !ok {
			return nil, false
		}
		in := &syntax.InExpr{Op: "in", X: x}
		for _, v := range vals {
			lit, ok := literalOf(v)
			if !ok {
				return nil, false
			}
			in.List = append(in.List, lit)
		}
		return in, true
	}
	lit, ok := literalOf(f.Value)
	if !ok {
		return nil, false
	}
	return &syntax.Binary{Op: string(f.Op), L: x, R: lit}, true
}

func literalOf(v any) (*syntax.Literal, bool) {
	switch v.(type) {
	case string:
		return &syntax.Literal{Type: table.String, Value: v}, true
	case int64:
		return &syntax.Literal{Type: table.Long, Value: v}, true
	case float64:
		return &syntax.Literal{Type: table.Real, Value: v}, true
	case bool:
		return &syntax.Literal{Type: table.Bool, Value: v}, true
	case time.Time:
		return &syntax.Literal{Type: table.DateTime, Value: v}, true
	case time.Duration:
		return &syntax.Literal{Type: table.TimeSpan, Value: v}, true
	}
	return nil, false
}
