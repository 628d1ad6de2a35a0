package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/sqlc"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// Query runs a compiled plan's SQL and streams its rows as KQL values
// (see package table): DuckDB hands them over a chunk at a time, so memory
// does not grow with the result.
func (s *Store) Query(ctx context.Context, p *sqlc.Plan) (*Rows, error) {
	rows, err := s.db.QueryContext(ctx, p.SQL)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("store: query: %w", cleanErr(err))
	}
	r := &Rows{rows: rows, cols: p.Columns, srep: p.StringRep, ctx: ctx}
	r.vals = make([]any, len(p.Columns))
	r.ptrs = make([]any, len(p.Columns))
	for i := range r.vals {
		r.ptrs[i] = &r.vals[i]
	}
	return r, nil
}

// Rows streams the result of Query. It implements table.Rows; each Row is
// a new slice the caller may keep.
type Rows struct {
	ctx        context.Context
	rows       *sql.Rows
	cols       []table.Column
	srep       []bool
	vals, ptrs []any
	row        []any
	err        error
	n          int64
}

// Columns returns the result's columns.
func (r *Rows) Columns() []table.Column { return r.cols }

// Count returns the number of rows read so far.
func (r *Rows) Count() int64 { return r.n }

// Next advances to the next row.
func (r *Rows) Next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = fmt.Errorf("store: read row: %w", err)
		return false
	}
	row := make([]any, len(r.cols))
	for i, v := range r.vals {
		row[i] = kqlValue(r.cols[i].Type, r.srep[i], v)
	}
	r.row = row
	r.n++
	return true
}

// Row returns the current row.
func (r *Rows) Row() []any { return r.row }

// RowsAreStable tells the evaluator each row is a fresh slice it may keep.
func (r *Rows) RowsAreStable() bool { return true }

// Err returns the error that ended the iteration, if any.
func (r *Rows) Err() error {
	if r.err != nil {
		return r.err
	}
	if err := r.rows.Err(); err != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		return fmt.Errorf("store: query: %w", cleanErr(err))
	}
	return nil
}

// Close ends the query.
func (r *Rows) Close() error { return r.rows.Close() }

// kqlValue converts a DuckDB value to the KQL value of type t.
func kqlValue(t table.Type, srep bool, v any) any {
	switch t {
	case table.String:
		switch x := v.(type) {
		case string:
			return x
		case []byte:
			return string(x)
		case nil:
			return nil // a column union added; SQL strings are never NULL otherwise
		}
		return fmt.Sprint(v)
	case table.Dynamic:
		if v == nil {
			return nil
		}
		var text string
		switch x := v.(type) {
		case string:
			text = x
		case []byte:
			text = string(x)
		default:
			return v
		}
		if srep {
			return text
		}
		d, err := audit.Dynamic([]byte(text))
		if err != nil {
			return text
		}
		return d
	case table.TimeSpan:
		if n, ok := v.(int64); ok {
			return time.Duration(n)
		}
	case table.DateTime:
		if x, ok := v.(time.Time); ok {
			return x.UTC()
		}
	case table.Long, table.Int:
		switch x := v.(type) {
		case int32:
			return int64(x)
		case int:
			return int64(x)
		case *big.Int:
			if x.IsInt64() {
				return x.Int64()
			}
			return nil
		}
	case table.Real:
		switch x := v.(type) {
		case float32:
			return float64(x)
		case int64:
			return float64(x)
		}
	}
	return v
}

// Source returns a table.Source over the store's events restricted by
// opts, for the evaluator: each scan is SQL with the filters it offers.
// With a time bound set, events without a time are left out.
func (s *Store) Source(opts SourceOptions) table.Source {
	return &source{s: s, cat: s.Catalog(opts)}
}

type source struct {
	s   *Store
	cat sqlc.Catalog
}

func (v *source) Schema(_ context.Context, name string) ([]table.Column, error) {
	return audit.Schema(name)
}

func (v *source) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	if _, err := audit.Schema(req.Table); err != nil {
		return nil, err
	}
	p, err := sqlc.Scan(ctx, v.cat, sqlc.DuckDB, req, time.Now())
	if err != nil {
		return nil, err
	}
	return v.s.Query(ctx, p)
}
