package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/store"
)

type recordingSink struct {
	mu     sync.Mutex
	alerts []*alert.Alert
}

func (r *recordingSink) Raise(_ context.Context, a *alert.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
	return nil
}

// The State half: like kdfir serve's alert store, it knows the report
// ids that raised an alert for a rule.
func (r *recordingSink) LastRun(context.Context, string) (time.Time, error)  { return time.Time{}, nil }
func (r *recordingSink) SetLastRun(context.Context, string, time.Time) error { return nil }
func (r *recordingSink) Seen(_ context.Context, rule string, ids []string) (map[string]bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range r.alerts {
		for _, id := range ids {
			if a.Rule == rule && len(a.ReportIDs) > 0 && a.ReportIDs[0] == id {
				seen[id] = true
			}
		}
	}
	return seen, nil
}

func (r *recordingSink) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.alerts)
}

// TestNRTQueueAcrossRestart: a batch stored while detection could not run
// (the service stopping, as when it dies) is evaluated by the next
// process from the durable queue, once; without a queue it is not.
func TestNRTQueueAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "events.duckdb"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "data", "falco-k8s-audit", "exec_pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + string(b) + `]}`
	rules, err := detect.Builtin(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *detect.Queue {
		q, err := detect.OpenQueue(filepath.Join(dir, "nrt-queue.log"))
		if err != nil {
			t.Fatal(err)
		}
		return q
	}

	// First process: detection is stopping when the batch arrives.
	q1 := open()
	first := &recordingSink{}
	a1 := &AuditIngest{Store: st, Engine: &detect.Engine{Rules: rules, Sink: first, State: first}, Log: log, Queue: q1}
	a1.Resume()
	a1.Close()
	if n, err := a1.IngestWebhook(ctx, "prod", strings.NewReader(body)); err != nil || n != 1 {
		t.Fatalf("ingest: %d stored, %v", n, err)
	}
	if first.count() != 0 {
		t.Fatalf("the stopping process raised %d alerts", first.count())
	}
	q1.Close() // the process dies

	// Second process: the batch is evaluated at start, and only once.
	q2 := open()
	second := &recordingSink{}
	a2 := &AuditIngest{Store: st, Engine: &detect.Engine{Rules: rules, Sink: second, State: second}, Log: log, Queue: q2}
	a2.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for second.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The API server, which never had an answer, sends the batch again:
	// the store drops it as duplicates, and no alert is raised twice.
	if n, err := a2.IngestWebhook(ctx, "prod", strings.NewReader(body)); err != nil || n != 0 {
		t.Fatalf("resent batch: %d stored, %v", n, err)
	}
	a2.Close()
	q2.Close()
	var exec int
	for _, al := range second.alerts {
		if al.Rule == "k8s-exec-into-pod" {
			exec++
		}
	}
	if exec != 1 {
		t.Fatalf("after the restart: %d exec alerts of %d, want 1", exec, second.count())
	}

	// Third process: nothing is left to evaluate.
	q3 := open()
	defer q3.Close()
	third := &recordingSink{}
	a3 := &AuditIngest{Store: st, Engine: &detect.Engine{Rules: rules, Sink: third, State: third}, Log: log, Queue: q3}
	a3.Resume()
	a3.Close()
	if third.count() != 0 {
		t.Errorf("a third start raised %d alerts again", third.count())
	}
	if p, err := q3.Pending(); err != nil || len(p) != 0 {
		t.Errorf("pending after evaluation: %d, %v", len(p), err)
	}
}
