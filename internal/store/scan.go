package store

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"sync"
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
	if _, err := audit.Schema(req.Table); err != nil {
		return nil, err
	}
	q, args, _ := v.query(req)
	ctx, cancel := context.WithCancel(ctx)
	rows, err := v.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("store: scan %s: %w", req.Table, err)
	}
	r := &storeRows{cancel: cancel, out: make(chan []any, 256), done: make(chan struct{})}
	go r.run(ctx, rows, req.Table)
	return r, nil
}

// storeRows reads matching events from SQLite in one goroutine and
// decodes and maps them to the table in one worker per CPU, so a scan that
// returns many events uses every core. Row order is unspecified.
type storeRows struct {
	cancel context.CancelFunc
	out    chan []any
	done   chan struct{}
	row    []any
	err    error // set by run before out is closed
}

type rawEvent struct {
	raw            []byte
	cluster, resID string
	ns             int64
}

func (r *storeRows) run(ctx context.Context, rows *sql.Rows, tableName string) {
	defer close(r.done)
	defer close(r.out)
	jobs := make(chan rawEvent, 256)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := audit.NewMapper(tableName)
			for j := range jobs {
				e := audit.Event{Raw: j.raw, Cluster: j.cluster, ClusterResourceID: j.resID}
				if j.ns != NoTime {
					e.Time = time.Unix(0, j.ns).UTC()
				}
				row := append([]any(nil), m.Row(&e)...)
				select {
				case r.out <- row:
				case <-ctx.Done():
				}
			}
		}()
	}
	var err error
	for rows.Next() {
		var j rawEvent
		if err = rows.Scan(&j.raw, &j.cluster, &j.resID, &j.ns); err != nil {
			err = fmt.Errorf("store: read row: %w", err)
			break
		}
		select {
		case jobs <- j:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err == nil {
		err = rows.Err()
	}
	rows.Close()
	close(jobs)
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		r.err = err
	}
}

func (r *storeRows) Next() bool {
	row, ok := <-r.out
	if !ok {
		return false
	}
	r.row = row
	return true
}

func (r *storeRows) Row() []any { return r.row }

// RowsAreStable tells the evaluator each row is a fresh slice it may keep.
func (r *storeRows) RowsAreStable() bool { return true }

// Err is valid once Next has returned false; it waits for the scan to
// wind down.
func (r *storeRows) Err() error {
	<-r.done
	return r.err
}

// Close stops the scan and waits for its goroutines.
func (r *storeRows) Close() error {
	r.cancel()
	for range r.out {
	}
	<-r.done
	return nil
}
