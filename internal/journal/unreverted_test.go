package journal_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/journal"
)

func TestUnreverted(t *testing.T) {
	ctx := context.Background()
	j := open(t, filepath.Join(t.TempDir(), "journal.db"))
	base := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	add := func(i int, target string, finish error, reverted bool) string {
		e := &journal.Entry{Time: base.Add(time.Duration(i) * time.Second), Cluster: "c", Action: "isolate-pod", Target: target}
		if err := j.Begin(ctx, e); err != nil {
			t.Fatal(err)
		}
		if err := j.Finish(ctx, e, nil, finish); err != nil {
			t.Fatal(err)
		}
		if reverted {
			e.Revert = &journal.Revert{Status: journal.Succeeded}
			if err := j.Update(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		return e.ID
	}
	first := add(0, "ns/a", nil, false)
	add(1, "ns/a", nil, true)                           // reverted: left out
	failed := add(2, "ns/a", errors.New("boom"), false) // failed: may have changed something
	add(3, "ns/b", nil, false)                          // another target
	pending := &journal.Entry{Time: base.Add(4 * time.Second), Cluster: "c", Action: "isolate-pod", Target: "ns/a"}
	if err := j.Begin(ctx, pending); err != nil {
		t.Fatal(err)
	}

	got, err := j.Unreverted(ctx, "c", "isolate-pod", "ns/a")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if diff := cmp.Diff([]string{pending.ID, failed, first}, ids); diff != "" {
		t.Fatalf("Unreverted ids (-want +got):\n%s", diff)
	}
}

// An action that a crash left incomplete stays releasable after a revert
// of it failed: the failed revert records the status as incomplete, and
// the entry must not drop out.
func TestIncompleteStaysUnrevertedAfterFailedRevert(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	crashed := open(t, path)
	e := &journal.Entry{Cluster: "c", Action: "isolate-pod", Target: "ns/a"}
	if err := crashed.Begin(ctx, e); err != nil {
		t.Fatal(err)
	}
	crashed.Close() // the process died between intent and outcome

	j := open(t, path)
	got, err := j.Get(ctx, e.ID)
	if err != nil || got.Status != journal.Incomplete {
		t.Fatalf("after the crash: %v %v", got, err)
	}
	got.Revert = &journal.Revert{Status: journal.Failed, Error: "apiserver down"}
	if err := j.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	list, err := j.Unreverted(ctx, "c", "isolate-pod", "ns/a")
	if err != nil || len(list) != 1 || list[0].ID != e.ID {
		t.Fatalf("Unreverted after a failed revert = %v, %v", list, err)
	}
	// Waiting for approval changed nothing: not releasable.
	held := &journal.Entry{Cluster: "c", Action: "isolate-pod", Target: "ns/a", Status: journal.PendingApproval}
	if err := j.Begin(ctx, held); err != nil {
		t.Fatal(err)
	}
	if list, _ := j.Unreverted(ctx, "c", "isolate-pod", "ns/a"); len(list) != 1 {
		t.Fatalf("a held action is releasable: %d entries", len(list))
	}
}
