package detect

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/alertstore"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/table"
)

const execRule = `id: exec-test
title: Exec
severity: high
query: |
  KubeAudit
  | where objectRef.subresource == "exec"
  | project Timestamp = stageTimestamp, ReportId = auditID, Namespace = tostring(objectRef.namespace), Name = tostring(objectRef.name)
nrt: true
entities:
- {type: pod, namespace: Namespace, name: Name}
alert:
  title: "exec in {{Namespace}}/{{Name}}"
`

func TestValidationNamesRuleAndProblem(t *testing.T) {
	base := "id: bad-rule\ntitle: t\nseverity: high\n"
	ent := "entities:\n- {type: pod, name: Name}\n"
	proj := "| project Timestamp = stageTimestamp, ReportId = auditID, Name = tostring(objectRef.name)"
	cases := map[string]string{
		"cannot use join":       base + "nrt: true\n" + ent + "query: KubeAudit | join kind=inner (KubeAudit) on auditID " + proj + "\n",
		"summarize":             base + "nrt: true\n" + ent + "query: KubeAudit | summarize c = count() by auditID, stageTimestamp, Name = tostring(objectRef.name) | project Timestamp = stageTimestamp, ReportId = auditID, Name\n",
		"exactly one table":     base + "nrt: true\n" + ent + "query: union KubeAudit, AKSAudit " + proj + "\n",
		"time column":           base + "nrt: true\n" + ent + "query: KubeAudit | project ReportId = auditID, Name = tostring(objectRef.name)\n",
		"report id column":      base + "nrt: true\n" + ent + "query: KubeAudit | project Timestamp = stageTimestamp, Name = tostring(objectRef.name)\n",
		"at least one mapped":   base + "nrt: true\nquery: KubeAudit " + proj + "\n",
		"not in the query":      base + "nrt: true\nentities:\n- {type: pod, name: Missing}\nquery: KubeAudit " + proj + "\n",
		"either nrt":            base + ent + "query: KubeAudit " + proj + "\n",
		"unknown table":         base + "nrt: true\n" + ent + "query: Nope " + proj + "\n",
		"severity":              "id: bad-rule\ntitle: t\nseverity: loud\nnrt: true\n" + ent + "query: KubeAudit " + proj + "\n",
		"query:":                base + "nrt: true\n" + ent + "query: KubeAudit | where (\n",
		"{{Missing}}":           base + "nrt: true\n" + ent + "alert: {title: \"{{Missing}}\"}\nquery: KubeAudit " + proj + "\n",
		"field bogus not found": base + "bogus: 1\n",
	}
	for want, src := range cases {
		_, err := Parse("bad.yaml", []byte(src), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
			continue
		}
		if want != "field bogus not found" && !strings.Contains(err.Error(), "rule bad-rule (bad.yaml)") {
			t.Errorf("error does not name the rule: %v", err)
		}
	}
}

func event(id, stage, ns, name string, at time.Time) audit.Event {
	raw := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":%q,"stage":%q,"requestURI":"/api/v1/namespaces/%s/pods/%s/exec?command=id","verb":"get","user":{"username":"alice"},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"pods","namespace":%q,"name":%q,"subresource":"exec"},"responseStatus":{"code":101},"stageTimestamp":%q}`,
		id, stage, ns, name, ns, name, at.UTC().Format(time.RFC3339Nano))
	e, err := audit.ParseEvent([]byte(raw))
	if err != nil {
		panic(err)
	}
	e.Cluster = "c1"
	return e
}

type sink struct {
	mu     sync.Mutex
	alerts []*alert.Alert
	store  *alertstore.Store
}

func (s *sink) Raise(ctx context.Context, a *alert.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, a)
	if s.store != nil {
		return s.store.Add(ctx, a)
	}
	return nil
}

func TestOnBatchDedupesStagesAndSuppresses(t *testing.T) {
	r, err := Parse("exec.yaml", []byte(execRule+"suppress: {by: [Namespace, Name], window: 1m}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	now := time.Now()
	e := &Engine{Rules: []*Rule{r}, Sink: s}
	got, err := e.OnBatch(context.Background(), []audit.Event{
		event("a1", "ResponseStarted", "shop", "web", now),
		event("a1", "ResponseComplete", "shop", "web", now),
		event("a2", "ResponseComplete", "shop", "web", now), // suppressed: same pod within a minute
		event("a3", "ResponseComplete", "shop", "api", now),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Title != "exec in shop/web" || got[1].Title != "exec in shop/api" {
		t.Fatalf("alerts = %d %v", len(got), titles(got))
	}
	p := got[0].OfType(alert.EntityPod)
	if len(p) != 1 || p[0].Cluster != "c1" || got[0].ReportIDs[0] != "a1" {
		t.Fatalf("alert = %+v", got[0])
	}
}

func titles(as []*alert.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Title)
	}
	return out
}

// Scheduled rules resume from their last window after a restart, so events
// that arrived while kdfir was down still alert, and overlapping windows
// never alert twice.
func TestScheduledResumeNoGapNoDoubles(t *testing.T) {
	ctx := context.Background()
	src := strings.Replace(execRule, "nrt: true", "schedule: {every: 5m, lookback: 10m}", 1)
	r, err := Parse("exec.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "alerts.db")
	store, err := alertstore.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	var events []audit.Event
	window := func(since, until time.Time) table.Source {
		var in []audit.Event
		for _, e := range events {
			if !e.Time.Before(since) && e.Time.Before(until) {
				in = append(in, e)
			}
		}
		return audit.NewBatchSource(in)
	}
	clock := t0
	s := &sink{store: store}
	e := &Engine{Rules: []*Rule{r}, Sink: s, State: store, Window: window, Now: func() time.Time { return clock }}

	events = append(events, event("e1", "ResponseComplete", "ns", "p1", t0.Add(-time.Minute)))
	if got, err := e.RunScheduled(ctx, r); err != nil || len(got) != 1 {
		t.Fatalf("first run: %d alerts, %v", len(got), err)
	}
	// Five minutes later the window overlaps the first; e1 must not alert again.
	clock = t0.Add(5 * time.Minute)
	events = append(events, event("e2", "ResponseComplete", "ns", "p2", t0.Add(2*time.Minute)))
	if got, err := e.RunScheduled(ctx, r); err != nil || len(got) != 1 || got[0].ReportIDs[0] != "e2" {
		t.Fatalf("second run: %v, %v", titles(got), err)
	}
	// "Restart": a new engine and a reopened store, an hour later. An
	// event from just after the last run, older than the lookback, must
	// still be caught.
	store.Close()
	store, err = alertstore.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clock = t0.Add(65 * time.Minute)
	events = append(events, event("e3", "ResponseComplete", "ns", "p3", t0.Add(6*time.Minute)))
	e2 := &Engine{Rules: []*Rule{r}, Sink: &sink{store: store}, State: store, Window: window, Now: func() time.Time { return clock }}
	got, err := e2.RunScheduled(ctx, r)
	if err != nil || len(got) != 1 || got[0].ReportIDs[0] != "e3" {
		t.Fatalf("after restart: %v, %v", titles(got), err)
	}
}

// A rule never runs twice at once.
func TestScheduledNoOverlap(t *testing.T) {
	src := strings.Replace(execRule, "nrt: true", "schedule: {every: 1m, lookback: 1m}", 1)
	r, err := Parse("exec.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := alertstore.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var mu sync.Mutex
	running, maxRunning := 0, 0
	window := func(since, until time.Time) table.Source {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return audit.NewBatchSource(nil)
	}
	e := &Engine{Rules: []*Rule{r}, Sink: &sink{}, State: store, Window: window}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = e.RunScheduled(context.Background(), r) }()
	}
	wg.Wait()
	if maxRunning != 1 {
		t.Fatalf("%d runs of one rule overlapped", maxRunning)
	}
}
