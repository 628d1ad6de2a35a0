package alertstore

import (
	"context"
	"errors"
	"path/filepath"
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
	if list, err := s.List(ctx, 10); err != nil || len(list) != 1 {
		t.Fatalf("List = %d, %v", len(list), err)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown = %v", err)
	}
}
