package alertstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
)

func TestAlertsAndRuleState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	a := &alert.Alert{Source: "kdfir", SourceID: "r:1", Rule: "r", Title: "x", Severity: "high", ReportIDs: []string{"a1", "a2"},
		Entities: []alert.Entity{{Type: "pod", Namespace: "ns", Name: "p"}}}
	if err := s.Add(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.ID == "" {
		t.Fatal("no id assigned")
	}
	if err := s.SetActions(ctx, a.ID, []string{"act-1"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, a.ID)
	if err != nil || len(got.Actions) != 1 || got.Entities[0].Name != "p" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	dup, err := s.FindBySource(ctx, "kdfir", "r:1", time.Now().Add(-time.Minute))
	if err != nil || dup == nil || dup.ID != a.ID {
		t.Fatalf("FindBySource = %+v, %v", dup, err)
	}
	if old, _ := s.FindBySource(ctx, "kdfir", "r:1", time.Now().Add(time.Minute)); old != nil {
		t.Fatal("FindBySource ignored the window")
	}
	seen, err := s.Seen(ctx, "r", []string{"a1", "zz"})
	if err != nil || !seen["a1"] || seen["zz"] {
		t.Fatalf("Seen = %v, %v", seen, err)
	}
	end := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	if err := s.SetLastRun(ctx, "r", end); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// State survives a restart.
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if last, err := s.LastRun(ctx, "r"); err != nil || !last.Equal(end) {
		t.Fatalf("LastRun after reopen = %v, %v", last, err)
	}
	if list, err := s.List(ctx, alert.Filter{Limit: 10}); err != nil || len(list) != 1 {
		t.Fatalf("List = %d, %v", len(list), err)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown = %v", err)
	}
}

// Triage changes are stored with who made them, survive a reopen, and
// the queue filters by them.
func TestTriageAndFilters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	add := func(source, sev, rule, cluster string) string {
		a := &alert.Alert{Source: source, Title: "t", Severity: sev, Rule: rule, Cluster: cluster, Time: time.Now(),
			Entities: []alert.Entity{{Type: alert.EntityPod, Name: "p", Namespace: "n", Cluster: cluster}}}
		if err := s.Add(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	exec := add("kdfir", "high", "k8s-exec-into-pod", "prod")
	falco := add("falco", "medium", "", "dev")
	defender := add("defender", "high", "", "prod")

	owner := "alice"
	a, err := s.Triage(ctx, exec, alert.TriageUpdate{Owner: &owner, Comment: "looking"}, "key-alice")
	if err != nil || a.StatusOf() != alert.StatusActive || a.Triage.Owner != "alice" || len(a.Triage.Comments) != 1 {
		t.Fatalf("take = %+v, %v", a, err)
	}
	if _, err := s.CloseMany(ctx, []string{falco, "alert-nope"}, alert.FalsePositive, "noise", "key-bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bulk close with an unknown id = %v", err)
	}
	if got, _ := s.Get(ctx, falco); got.StatusOf() != alert.StatusNew {
		t.Fatal("a failed bulk close changed an alert")
	}
	if _, err := s.CloseMany(ctx, []string{falco, defender}, "", "", "key-bob"); err == nil {
		t.Fatal("closed without a classification")
	}
	closed, err := s.CloseMany(ctx, []string{falco, defender}, alert.FalsePositive, "noise", "key-bob")
	if err != nil || len(closed) != 2 || closed[1].Triage.Classification != alert.FalsePositive {
		t.Fatalf("bulk close = %+v, %v", closed, err)
	}
	s.Close()
	if s, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, defender)
	if err != nil || got.Triage == nil || len(got.Triage.History) != 3 || got.Triage.History[0].By != "key-bob" {
		t.Fatalf("after reopen: %+v, %v", got.Triage, err)
	}
	ids := func(f alert.Filter) []string {
		list, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range list {
			out = append(out, a.ID)
		}
		return out
	}
	for name, c := range map[string]struct {
		f    alert.Filter
		want []string
	}{
		"open":         {alert.Filter{Status: []string{alert.StatusNew, alert.StatusActive}}, []string{exec}},
		"closed":       {alert.Filter{Status: []string{alert.StatusClosed}}, []string{defender, falco}},
		"high":         {alert.Filter{Severity: []string{"high"}}, []string{defender, exec}},
		"source":       {alert.Filter{Source: []string{"falco", "kdfir"}}, []string{falco, exec}},
		"cluster":      {alert.Filter{Cluster: "PROD"}, []string{defender, exec}},
		"rule":         {alert.Filter{Rule: "k8s-exec-into-pod"}, []string{exec}},
		"future":       {alert.Filter{Since: time.Now().Add(time.Hour)}, nil},
		"limit":        {alert.Filter{Limit: 1}, []string{defender}},
		"closed, prod": {alert.Filter{Status: []string{alert.StatusClosed}, Cluster: "prod"}, []string{defender}},
	} {
		if got := ids(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

// A database from before triage opens, and its alerts read as new.
func TestMigrateAddsStatus(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE alerts (id TEXT PRIMARY KEY, received INTEGER NOT NULL, source TEXT NOT NULL, source_id TEXT NOT NULL,
		rule TEXT NOT NULL, severity TEXT NOT NULL, alert TEXT NOT NULL);
		INSERT INTO alerts VALUES ('alert-old', 1, 'falco', '', '', 'high', '{"id":"alert-old","source":"falco","title":"old","severity":"high","entities":[]}')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list, err := s.List(ctx, alert.Filter{Status: []string{alert.StatusNew}})
	if err != nil || len(list) != 1 || list[0].StatusOf() != alert.StatusNew {
		t.Fatalf("old alert after migration: %v, %v", list, err)
	}
}
