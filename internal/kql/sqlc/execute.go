package sqlc

import (
	"context"
	"errors"

	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// QueryFunc runs a plan's SQL and streams its rows as KQL values.
type QueryFunc func(ctx context.Context, p *Plan) (table.Rows, error)

// Result is a running query: its columns and a stream of rows.
type Result struct {
	Columns []table.Column
	table.Rows
}

// Execute runs a compiled query: the plan's SQL through query, and then,
// when the plan has a rest, the evaluator over the SQL's rows (every other
// table the rest reads comes from src). Without SQL, the evaluator runs
// the whole query over src.
func Execute(ctx context.Context, q *syntax.Query, p *Plan, src table.Source, query QueryFunc) (*Result, error) {
	now := p.Now
	if p.SQL == "" {
		res, err := eval.Run(ctx, src, q, eval.Options{Now: now, MaxRows: p.MaxRows})
		if err != nil {
			return nil, err
		}
		return &Result{Columns: res.Columns, Rows: &sliceRows{rows: res.Rows}}, nil
	}
	rows, err := query(ctx, p)
	if err != nil {
		return nil, err
	}
	if p.Rest == nil {
		return &Result{Columns: p.Columns, Rows: rows}, nil
	}
	defer rows.Close()
	res, err := eval.Run(ctx, &prefixSource{Source: src, cols: p.Columns, rows: rows}, p.Rest, eval.Options{Now: now, MaxRows: p.MaxRows})
	if err != nil {
		return nil, err
	}
	return &Result{Columns: res.Columns, Rows: &sliceRows{rows: res.Rows}}, nil
}

// prefixSource serves the rows of the SQL as table PrefixTable, and every
// other table from the source.
type prefixSource struct {
	table.Source
	cols []table.Column
	rows table.Rows
	used bool
}

func (p *prefixSource) Schema(ctx context.Context, name string) ([]table.Column, error) {
	if name == PrefixTable {
		return p.cols, nil
	}
	return p.Source.Schema(ctx, name)
}

func (p *prefixSource) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	if req.Table != PrefixTable {
		return p.Source.Scan(ctx, req)
	}
	if p.used {
		return nil, errors.New("sqlc: the compiled prefix was read twice")
	}
	p.used = true
	return noClose{p.rows}, nil
}

// noClose leaves closing the SQL's rows to Execute.
type noClose struct{ table.Rows }

func (noClose) Close() error        { return nil }
func (noClose) RowsAreStable() bool { return true }

type sliceRows struct {
	rows [][]any
	i    int
}

func (s *sliceRows) Next() bool {
	if s.i >= len(s.rows) {
		return false
	}
	s.i++
	return true
}
func (s *sliceRows) Row() []any   { return s.rows[s.i-1] }
func (s *sliceRows) Err() error   { return nil }
func (s *sliceRows) Close() error { return nil }
