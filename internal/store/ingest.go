package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"

	"github.com/kdfir/kdfir/internal/audit"
)

// IngestBatch and IngestBatchBytes bound the events Ingest commits per
// transaction: whichever comes first. The byte bound keeps memory flat
// for large (RequestResponse-level) events.
const (
	IngestBatch      = 20000
	IngestBatchBytes = 16 << 20
)

// IngestStats describes one ingested input.
type IngestStats struct {
	audit.Stats     // what the decoder read and rejected
	Stored      int // new events
	Duplicates  int // events already stored
}

// Ingest decodes r (any shape audit.Decode accepts) and stores its events
// in batches of IngestBatch, decoding the next batch while the previous
// one is written. onBatch, when not nil, is called with each stored batch
// (for example to run detections on it) after it is committed, in order,
// on another goroutine: it runs while the next batch is written.
func (s *Store) Ingest(ctx context.Context, r io.Reader, opts audit.Options, onBatch func([]audit.Event) error) (IngestStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A batch's rows are built before it is queued, so that the writer,
	// which DuckDB's appender keeps to one core, only appends.
	type shredded struct {
		events []audit.Event
		rows   [][]driver.Value
	}
	batches := make(chan shredded, 1)
	var st IngestStats
	var decErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(batches)
		batch := make([]audit.Event, 0, IngestBatch)
		size := 0
		st.Stats, decErr = audit.Decode(r, opts, func(e audit.Event) error {
			batch = append(batch, e)
			size += len(e.Raw)
			if len(batch) == IngestBatch || size >= IngestBatchBytes {
				size = 0
				select {
				case batches <- shredded{batch, shredAll(batch)}:
				case <-ctx.Done():
					return ctx.Err()
				}
				batch = make([]audit.Event, 0, IngestBatch)
			}
			return nil
		})
		if len(batch) > 0 && decErr == nil {
			select {
			case batches <- shredded{batch, shredAll(batch)}:
			case <-ctx.Done():
			}
		}
	}()
	committed := make(chan []audit.Event, 1)
	var batchErr error
	batchDone := make(chan struct{})
	go func() {
		defer close(batchDone)
		for b := range committed {
			if batchErr == nil && onBatch != nil {
				if batchErr = onBatch(b); batchErr != nil {
					cancel()
				}
			}
		}
	}()
	var err error
	stored, dups := 0, 0
	for b := range batches {
		if err != nil {
			continue // drain
		}
		var n, d int
		if n, d, err = s.insertShredded(ctx, b.events, b.rows); err == nil {
			select {
			case committed <- b.events:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		stored, dups = stored+n, dups+d
		if err != nil {
			cancel()
		}
	}
	close(committed)
	<-batchDone
	<-done
	if batchErr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = batchErr
	}
	st.Stored, st.Duplicates = stored, dups
	if err == nil {
		err = decErr
	}
	return st, err
}
