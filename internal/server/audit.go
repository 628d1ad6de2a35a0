package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/store"
)

// AuditIngest stores webhook batches durably, acknowledges them, and runs
// the near-real-time rules on each stored batch in the background, in
// order, so a slow playbook never holds up the API server's audit backend.
type AuditIngest struct {
	Store  *store.Store
	Engine *detect.Engine // nil: no detection
	// ResourceID maps a cluster name to its Azure ResourceId.
	ResourceID func(cluster string) string
	// Self names kdfir's own identity on a cluster, as the cluster
	// authenticated it. Events of that identity are stored but not run
	// through detection. The User-Agent, which anyone can send, plays no
	// part.
	Self func(ctx context.Context, cluster string) string
	Log  *slog.Logger
	// Queue, when set, keeps the stored batches that wait for detection
	// on disk, so that those not evaluated when the process stops or dies
	// are evaluated after a restart (see Resume).
	Queue *detect.Queue

	once   sync.Once
	mu     sync.RWMutex // held to send; Close takes it to close the queue
	closed bool
	queue  chan queued
	wg     sync.WaitGroup
}

// queued is a stored batch waiting for detection, with the key that
// delivered it (which bounds the playbooks its alerts may run).
type queued struct {
	events    []audit.Event
	principal *principal
	pos       int64 // in Queue, once the batches of a request are evaluated; 0 otherwise
}

func (a *AuditIngest) start() {
	a.queue = make(chan queued, 1024)
	var backlog []detect.QueuedBatch
	if a.Queue != nil {
		var err error
		if backlog, err = a.Queue.Pending(); err != nil {
			a.Log.Error("near-real-time queue unreadable; its batches are not evaluated", "err", err)
		}
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for _, b := range backlog {
			q := queued{events: b.Events, pos: b.Pos}
			if len(b.Meta) > 0 {
				var p principal
				if json.Unmarshal(b.Meta, &p) == nil {
					q.principal = &p
				}
			}
			a.evaluate(q)
		}
		if len(backlog) > 0 {
			a.Log.Info("evaluated the batches stored before the restart", "batches", len(backlog))
		}
		for q := range a.queue {
			a.evaluate(q)
		}
	}()
}

func (a *AuditIngest) evaluate(q queued) {
	ctx := context.Background()
	if q.principal != nil {
		ctx = context.WithValue(ctx, principalKey{}, *q.principal)
	}
	if len(q.events) > 0 {
		if _, err := a.Engine.OnBatch(ctx, q.events); err != nil {
			a.Log.Error("near-real-time detection failed", "err", err)
		}
	}
	if a.Queue != nil && q.pos > 0 {
		if err := a.Queue.Done(q.pos); err != nil {
			a.Log.Error("near-real-time queue position not saved", "err", err)
		}
	}
}

// Resume starts detection at once, beginning with the batches the Queue
// holds from before a restart. Without it, detection starts with the first
// webhook request.
func (a *AuditIngest) Resume() {
	if a.Engine != nil {
		a.once.Do(a.start)
	}
}

// send queues a batch for detection, unless Close has begun (the batch is
// then stored, and on disk if there is a Queue, and evaluated after a
// restart).
func (a *AuditIngest) send(q queued) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.closed {
		a.queue <- q
	}
}

// IngestWebhook implements AuditSink.
func (a *AuditIngest) IngestWebhook(ctx context.Context, cluster string, body io.Reader) (int, error) {
	if a.Engine != nil {
		a.once.Do(a.start)
	}
	opts := audit.Options{Cluster: cluster}
	if a.ResourceID != nil {
		opts.ClusterResourceID = a.ResourceID(cluster)
	}
	self := ""
	if a.Self != nil && a.Engine != nil {
		self = a.Self(ctx, cluster)
	}
	var p *principal
	if pr, ok := principalOf(ctx); ok {
		p = &pr
	}
	// With a Queue, the request's events go to disk before they are
	// stored: if the process dies between storing them and evaluating
	// them, even before it answers (the API server then resends the batch,
	// which the store drops as duplicates), they are evaluated after the
	// restart. Replaying a batch that was evaluated already raises nothing
	// twice: the engine's State skips report ids that alerted.
	var pos int64
	if a.Engine != nil && a.Queue != nil {
		b, err := io.ReadAll(body)
		if err != nil {
			return 0, fmt.Errorf("%w: read body: %v", ErrBadRequest, err)
		}
		body = bytes.NewReader(b)
		if evs, _, _ := audit.DecodeAll(bytes.NewReader(b), opts); len(notOwn(evs, self)) > 0 {
			var meta []byte
			if p != nil {
				meta, _ = json.Marshal(p)
			}
			if pos, err = a.Queue.Append(notOwn(evs, self), meta); err != nil {
				a.Log.Error("near-real-time queue append failed; the batch is evaluated but not kept across a restart", "err", err)
			}
		}
	}
	stats, err := a.Store.Ingest(ctx, body, opts, func(batch []audit.Event) error {
		if a.Engine != nil {
			if batch = notOwn(batch, self); len(batch) > 0 {
				a.send(queued{events: batch, principal: p})
			}
		}
		return nil
	})
	if pos > 0 {
		a.send(queued{pos: pos}) // the request's batches are all evaluated
	}
	if err != nil {
		return stats.Stored, err
	}
	if stats.Events == 0 && stats.Rejected > 0 {
		reason := "not an audit EventList"
		if len(stats.Problems) > 0 {
			reason = stats.Problems[0].Reason
		}
		return 0, fmt.Errorf("%w: %s", ErrBadRequest, reason)
	}
	return stats.Stored, nil
}

// Close waits for queued detection to finish. A webhook request still
// running after it stores its events without queueing them.
func (a *AuditIngest) Close() {
	a.once.Do(func() {}) // no queue starts after this
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	if a.queue != nil {
		close(a.queue)
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// RuleSink raises rule alerts through the server's intake, so they are
// stored and run playbooks like any other alert.
type RuleSink struct{ Server *Server }

// Raise implements detect.Sink.
func (s RuleSink) Raise(ctx context.Context, a *alert.Alert) error {
	s.Server.Metrics.AlertsReceived.WithLabelValues(a.Source).Inc()
	_, err := s.Server.Intake(ctx, a)
	return err
}

// notOwn leaves out kdfir's own events: those of its authenticated
// identity that also carry its User-Agent. The identity is what counts;
// the User-Agent only keeps a person who shares kdfir's credentials (as in
// a demo) in view. Without a known identity, nothing is left out: a
// User-Agent alone, which anyone can send, never hides an event.
func notOwn(batch []audit.Event, self string) []audit.Event {
	if self == "" {
		return batch
	}
	out := batch[:0:0]
	for _, e := range batch {
		if e.User.Username != self || !strings.HasPrefix(e.UserAgent, UserAgent) {
			out = append(out, e)
		}
	}
	return out
}
