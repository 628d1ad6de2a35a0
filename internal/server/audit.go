package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
}

func (a *AuditIngest) start() {
	a.queue = make(chan queued, 1024)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for q := range a.queue {
			ctx := context.Background()
			if q.principal != nil {
				ctx = context.WithValue(ctx, principalKey{}, *q.principal)
			}
			if _, err := a.Engine.OnBatch(ctx, q.events); err != nil {
				a.Log.Error("near-real-time detection failed", "err", err)
			}
		}
	}()
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
	stats, err := a.Store.Ingest(ctx, body, opts, func(batch []audit.Event) error {
		if a.Engine != nil {
			if batch = notOwn(batch, self); len(batch) > 0 {
				a.mu.RLock()
				defer a.mu.RUnlock()
				if a.closed {
					return nil // shutting down: stored, not evaluated now
				}
				a.queue <- queued{events: batch, principal: p}
			}
		}
		return nil
	})
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

// notOwn leaves out the events of kdfir's own identity. Without one
// (kdfir could not learn it), nothing is left out.
func notOwn(batch []audit.Event, self string) []audit.Event {
	if self == "" {
		return batch
	}
	out := batch[:0:0]
	for _, e := range batch {
		if e.User.Username != self {
			out = append(out, e)
		}
	}
	return out
}
