package detect

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
)

// Queue is the durable backlog of near-real-time detection. A batch of
// stored events is appended to it (and synced) before it is handed to the
// evaluator; once evaluated, the position after it is saved. After a
// restart, Pending returns the batches that were stored but not yet
// evaluated, so that a crash loses no detection.
//
// The queue is two files: PATH, JSON lines of batches, and PATH.pos, the
// byte offset up to which batches were evaluated. When every batch is
// evaluated, both are emptied. A torn last line (a crash while appending)
// is dropped when the queue is opened.
type Queue struct {
	mu        sync.Mutex
	path      string
	f         *os.File
	done, end int64
}

// QueuedBatch is a batch read back from the queue.
type QueuedBatch struct {
	Pos    int64 // the position after the batch, for Done
	Events []audit.Event
	Meta   json.RawMessage // what the caller stored with the batch (may be nil)
}

type queueRecord struct {
	Meta   json.RawMessage `json:"meta,omitempty"`
	Events []queueEvent    `json:"events"`
}

type queueEvent struct {
	Raw        json.RawMessage `json:"raw"`
	Time       time.Time       `json:"time"`
	Cluster    string          `json:"cluster,omitempty"`
	ResourceID string          `json:"resourceId,omitempty"`
}

// OpenQueue opens (creating if needed) the queue at path.
func OpenQueue(path string) (*Queue, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nrt queue: %w", err)
	}
	q := &Queue{path: path, f: f}
	if err := q.recover(); err != nil {
		f.Close()
		return nil, fmt.Errorf("nrt queue %s: %w", path, err)
	}
	return q, nil
}

// recover finds the end of the last whole line and reads the saved position.
func (q *Queue) recover() error {
	b, err := io.ReadAll(q.f)
	if err != nil {
		return err
	}
	q.end = int64(bytes.LastIndexByte(b, '\n') + 1)
	if q.end != int64(len(b)) {
		if err := q.f.Truncate(q.end); err != nil {
			return err
		}
	}
	if _, err := q.f.Seek(q.end, io.SeekStart); err != nil {
		return err
	}
	pb, err := os.ReadFile(q.path + ".pos")
	switch {
	case errors.Is(err, os.ErrNotExist):
		q.done = 0
	case err != nil:
		return err
	default:
		n, err := strconv.ParseInt(strings.TrimSpace(string(pb)), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("position file: %q is not an offset", pb)
		}
		q.done = min(n, q.end)
	}
	return nil
}

// Append adds a batch and syncs it; it returns the batch's position for
// Done.
func (q *Queue) Append(events []audit.Event, meta json.RawMessage) (int64, error) {
	rec := queueRecord{Meta: meta, Events: make([]queueEvent, len(events))}
	for i, e := range events {
		rec.Events[i] = queueEvent{Raw: e.Raw, Time: e.Time, Cluster: e.Cluster, ResourceID: e.ClusterResourceID}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("nrt queue: %w", err)
	}
	b = append(b, '\n')
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, err := q.f.Write(b); err != nil {
		return 0, fmt.Errorf("nrt queue: %w", err)
	}
	if err := q.f.Sync(); err != nil {
		return 0, fmt.Errorf("nrt queue: %w", err)
	}
	q.end += int64(len(b))
	return q.end, nil
}

// Done records that the batches up to pos were evaluated. Calls must come
// in the order of the batches.
func (q *Queue) Done(pos int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if pos <= q.done {
		return nil
	}
	q.done = min(pos, q.end)
	if q.done == q.end {
		// Everything is evaluated: start both files again.
		if err := q.f.Truncate(0); err != nil {
			return fmt.Errorf("nrt queue: %w", err)
		}
		if _, err := q.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("nrt queue: %w", err)
		}
		q.done, q.end = 0, 0
	}
	return q.savePos()
}

// savePos writes the position file atomically.
func (q *Queue) savePos() error {
	tmp := q.path + ".pos.tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("nrt queue: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", q.done)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, q.path+".pos")
	}
	if err != nil {
		return fmt.Errorf("nrt queue: save position: %w", err)
	}
	return nil
}

// Pending returns the batches appended but not yet Done, in order.
func (q *Queue) Pending() ([]QueuedBatch, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	sec := io.NewSectionReader(q.f, q.done, q.end-q.done)
	r := bufio.NewReaderSize(sec, 1<<20)
	var out []QueuedBatch
	pos := q.done
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("nrt queue: %w", err)
		}
		pos += int64(len(line))
		var rec queueRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("nrt queue %s: batch ending at %d: %v", q.path, pos, err)
		}
		b := QueuedBatch{Pos: pos, Meta: rec.Meta}
		for _, qe := range rec.Events {
			e, err := audit.ParseEvent(qe.Raw)
			if err != nil {
				return nil, fmt.Errorf("nrt queue %s: batch ending at %d: %v", q.path, pos, err)
			}
			e.Time, e.Cluster, e.ClusterResourceID = qe.Time, qe.Cluster, qe.ResourceID
			b.Events = append(b.Events, e)
		}
		out = append(out, b)
	}
}

// Close closes the queue's file.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.f.Close()
}
