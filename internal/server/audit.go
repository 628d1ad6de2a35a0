package server

import (
	"context"
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
	// Self names kdfir's own identity on a cluster. Events kdfir itself
	// caused (that identity, with kdfir's User-Agent) are stored but not
	// run through detection.
	Self func(ctx context.Context, cluster string) string
	Log  *slog.Logger

	once  sync.Once
	queue chan []audit.Event
	wg    sync.WaitGroup
}

func (a *AuditIngest) start() {
	a.queue = make(chan []audit.Event, 1024)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for batch := range a.queue {
			if _, err := a.Engine.OnBatch(context.Background(), batch); err != nil {
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
	stats, err := a.Store.Ingest(ctx, body, opts, func(batch []audit.Event) error {
		if a.Engine != nil {
			if batch = notOwn(batch, self); len(batch) > 0 {
				a.queue <- batch
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

// Close waits for queued detection to finish.
func (a *AuditIngest) Close() {
	if a.queue != nil {
		close(a.queue)
		a.wg.Wait()
	}
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

// notOwn leaves out the events kdfir caused itself.
func notOwn(batch []audit.Event, self string) []audit.Event {
	out := batch[:0:0]
	for _, e := range batch {
		if strings.HasPrefix(e.UserAgent, UserAgent) && (self == "" || e.User.Username == self) {
			continue
		}
		out = append(out, e)
	}
	return out
}
