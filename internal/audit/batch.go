package audit

import (
	"context"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// NewBatchSource returns an in-memory table.Source over events, for
// near-real-time detection on an ingested batch and for rule tests. It
// ignores pushdown filters (the evaluator applies them). The events must
// come from ParseEvent or Decode and must not change while scanned.
func NewBatchSource(events []Event) table.Source {
	return batchSource(events)
}

type batchSource []Event

func (b batchSource) Schema(_ context.Context, name string) ([]table.Column, error) {
	return Schema(name)
}

func (b batchSource) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	m, err := NewMapper(req.Table)
	if err != nil {
		return nil, err
	}
	return &batchRows{ctx: ctx, events: b, m: m, i: -1}, nil
}

type batchRows struct {
	ctx    context.Context
	events []Event
	m      *Mapper
	i      int
	row    []any
	err    error
}

func (r *batchRows) Next() bool {
	if r.err != nil || r.i+1 >= len(r.events) {
		return false
	}
	if (r.i+1)%1024 == 0 {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			return false
		}
	}
	r.i++
	r.row = r.m.Row(&r.events[r.i])
	return true
}

func (r *batchRows) Row() []any   { return r.row }
func (r *batchRows) Err() error   { return r.err }
func (r *batchRows) Close() error { r.i = len(r.events); return nil }
