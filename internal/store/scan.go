package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// SourceOptions restrict what a Source sees.
type SourceOptions struct {
	Since   time.Time // when set, only events at or after Since
	Until   time.Time // when set, only events before Until
	Cluster string    // when set, only this cluster's events
}

// Source returns a table.Source over the store's events restricted by
// opts. With a time bound set, events without a time are left out. The
// restrictions are exact: the evaluator does not check them again.
func (s *Store) Source(opts SourceOptions) table.Source {
	return &source{s: s, opts: opts}
}

// Schema implements table.Source over all events.
func (s *Store) Schema(ctx context.Context, name string) ([]table.Column, error) {
	return audit.Schema(name)
}

// Scan implements table.Source over all events.
func (s *Store) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	return s.Source(SourceOptions{}).Scan(ctx, req)
}

type source struct {
	s    *Store
	opts SourceOptions
}

func (v *source) Schema(_ context.Context, name string) ([]table.Column, error) {
	return audit.Schema(name)
}

// query builds the SQL for req and reports which filters it applied.
func (v *source) query(req table.ScanRequest) (string, []any, []bool) {
	var where []string
	var args []any
	if v.opts.Cluster != "" {
		where, args = append(where, "cluster = ?"), append(args, v.opts.Cluster)
	}
	bounded := false
	if ns, ok := unixNanos(v.opts.Since); ok && !v.opts.Since.IsZero() {
		where, args, bounded = append(where, "time >= ?"), append(args, ns), true
	}
	if !v.opts.Until.IsZero() {
		ns, ok := unixNanos(v.opts.Until)
		if !ok {
			ns = 1<<63 - 1
			if v.opts.Until.Before(time.Unix(0, 0)) {
				ns = NoTime
			}
		}
		where, args, bounded = append(where, "time < ?"), append(args, ns), true
	}
	if bounded {
		where, args = append(where, "time <> ?"), append(args, NoTime)
	}
	used := make([]bool, len(req.Filters))
	for i, f := range req.Filters {
		if c, ok := translate(req.Table, f); ok {
			where, args = append(where, c.sql), append(args, c.args...)
			used[i] = true
		}
	}
	q := "SELECT raw, cluster, cluster_resource_id, time FROM events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q, args, used
}

func (v *source) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	m, err := audit.NewMapper(req.Table)
	if err != nil {
		return nil, err
	}
	q, args, _ := v.query(req)
	rows, err := v.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: scan %s: %w", req.Table, err)
	}
	return &storeRows{rows: rows, m: m}, nil
}

// storeRows decodes each matching event and maps it to the table.
type storeRows struct {
	rows *sql.Rows
	m    *audit.Mapper
	row  []any
	err  error
}

func (r *storeRows) Next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	var raw sql.RawBytes
	var cluster, resID string
	var ns int64
	if err := r.rows.Scan(&raw, &cluster, &resID, &ns); err != nil {
		r.err = fmt.Errorf("store: read row: %w", err)
		return false
	}
	if !json.Valid(raw) {
		r.err = fmt.Errorf("store: stored event is not valid JSON")
		return false
	}
	e := audit.Event{Raw: raw, Cluster: cluster, ClusterResourceID: resID}
	if ns != NoTime {
		e.Time = time.Unix(0, ns).UTC()
	}
	r.row = r.m.Row(&e)
	return true
}

func (r *storeRows) Row() []any { return r.row }

func (r *storeRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

func (r *storeRows) Close() error { return r.rows.Close() }
