package alert

import (
	"errors"
	"testing"
	"time"
)

func ptr(s string) *string { return &s }

func TestApplyTriage(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	a := &Alert{ID: "a"}
	if a.StatusOf() != StatusNew {
		t.Fatal("an untouched alert is not new")
	}
	// Taking it makes it active.
	if err := ApplyTriage(a, TriageUpdate{Owner: ptr("alice")}, "k1", at); err != nil || a.StatusOf() != StatusActive {
		t.Fatalf("take: %v %+v", err, a.Triage)
	}
	var te *TriageError
	for name, u := range map[string]TriageUpdate{
		"close without classification": {Status: ptr(StatusClosed)},
		"classify while open":          {Classification: ptr(FalsePositive)},
		"unknown status":               {Status: ptr("done")},
		"unknown classification":       {Status: ptr(StatusClosed), Classification: ptr("maybe")},
		"nothing":                      {Comment: "  "},
		"long comment":                 {Comment: string(make([]byte, MaxComment+1))},
	} {
		before := *a.Triage
		if err := ApplyTriage(a, u, "k2", at); !errors.As(err, &te) {
			t.Errorf("%s: err = %v, want a TriageError", name, err)
		}
		if a.Triage.Status != before.Status || len(a.Triage.History) != len(before.History) {
			t.Errorf("%s: a refused update changed the alert", name)
		}
	}
	if err := ApplyTriage(a, TriageUpdate{Status: ptr(StatusClosed), Classification: ptr(TruePositive), Comment: "isolated"}, "k2", at); err != nil {
		t.Fatal(err)
	}
	// Reopening clears the classification, and the history keeps it.
	if err := ApplyTriage(a, TriageUpdate{Status: ptr(StatusActive)}, "k3", at); err != nil || a.Triage.Classification != "" {
		t.Fatalf("reopen: %v %+v", err, a.Triage)
	}
	want := []TriageChange{
		{By: "k1", At: at, Field: "status", From: "new", To: "active"},
		{By: "k1", At: at, Field: "owner", From: "", To: "alice"},
		{By: "k2", At: at, Field: "status", From: "active", To: "closed"},
		{By: "k2", At: at, Field: "classification", From: "", To: "true-positive"},
		{By: "k2", At: at, Field: "comment", To: "isolated"},
		{By: "k3", At: at, Field: "status", From: "closed", To: "active"},
		{By: "k3", At: at, Field: "classification", From: "true-positive", To: ""},
	}
	if len(a.Triage.History) != len(want) {
		t.Fatalf("history = %+v", a.Triage.History)
	}
	for i := range want {
		if a.Triage.History[i] != want[i] {
			t.Errorf("history[%d] = %+v, want %+v", i, a.Triage.History[i], want[i])
		}
	}
}

// A sender cannot set an alert's triage.
func TestParseDropsTriage(t *testing.T) {
	a, err := Parse([]byte(`{"schema":"kdfir.io/alert/v1","title":"x","entities":[],"triage":{"status":"closed","classification":"false-positive"}}`))
	if err != nil || a.Triage != nil {
		t.Fatalf("parsed triage = %+v, %v", a.Triage, err)
	}
}
