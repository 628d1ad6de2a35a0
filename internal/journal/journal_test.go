package journal_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kdfir/kdfir/internal/journal"
)

func open(t *testing.T, path string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestIntentOutcomeAndRevert(t *testing.T) {
	ctx := context.Background()
	j := open(t, filepath.Join(t.TempDir(), "journal.db"))
	e := &journal.Entry{
		Actor: "alice", Reason: "INC-1", Cluster: "prod", Action: "isolate-pod", Target: "shop/web",
		Params: json.RawMessage(`{"label":"kdfir.io/quarantine=true"}`),
		Prior:  []journal.Prior{{Object: journal.Object{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: "web"}, State: json.RawMessage(`{"metadata":{"labels":{"app":"web"}}}`)}},
	}
	if err := j.Begin(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := j.Get(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != journal.Pending {
		t.Fatalf("status after Begin = %s, want pending", got.Status)
	}
	if err := j.Finish(ctx, e, map[string]string{"policy": "kdfir-quarantine"}, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = j.Get(ctx, e.ID)
	if diff := cmp.Diff(e, got, cmpopts.EquateApproxTime(0)); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	act, err := j.Unreverted(ctx, "prod", "isolate-pod", "shop/web")
	if err != nil || len(act) != 1 || act[0].ID != e.ID {
		t.Fatalf("Unreverted = %v, %v; want %s", act, err, e.ID)
	}
	e.Revert = &journal.Revert{Actor: "bob", Status: journal.Succeeded}
	if err := j.Update(ctx, e); err != nil {
		t.Fatal(err)
	}
	if act, _ := j.Unreverted(ctx, "prod", "isolate-pod", "shop/web"); len(act) != 0 {
		t.Fatalf("reverted action still unreverted: %s", act[0].ID)
	}
}

// A Pending entry left by a process that died reads as Incomplete in the
// next process, and keeps what was recorded.
func TestInterruptedActionIsIncomplete(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j1, err := journal.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e := &journal.Entry{Cluster: "c", Action: "cordon-node", Target: "n1",
		Prior: []journal.Prior{{Object: journal.Object{Kind: "Node", Name: "n1"}, State: json.RawMessage(`{}`)}}}
	if err := j1.Begin(ctx, e); err != nil {
		t.Fatal(err)
	}
	j1.Close() // the process "dies" here

	j2 := open(t, path)
	got, err := j2.Get(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != journal.Incomplete || len(got.Prior) != 1 {
		t.Fatalf("got status %s with %d priors, want incomplete with 1", got.Status, len(got.Prior))
	}
	act, _ := j2.Unreverted(ctx, "c", "cordon-node", "n1")
	if len(act) != 1 || act[0].Status != journal.Incomplete {
		t.Fatalf("incomplete action not unreverted: %+v", act)
	}
}

func TestGetUnknown(t *testing.T) {
	j := open(t, filepath.Join(t.TempDir(), "journal.db"))
	if _, err := j.Get(context.Background(), "nope"); !errors.Is(err, journal.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	j := open(t, filepath.Join(t.TempDir(), "journal.db"))
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &journal.Entry{Cluster: "c", Action: "isolate-pod", Target: "ns/p" + string(rune('a'+i%26))}
			if err := j.Begin(ctx, e); err != nil {
				errs <- err
				return
			}
			errs <- j.Finish(ctx, e, nil, nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	all, err := j.List(ctx, journal.Filter{Limit: 1000})
	if err != nil || len(all) != 50 {
		t.Fatalf("List = %d entries, %v; want 50", len(all), err)
	}
}

func TestOpenBadPath(t *testing.T) {
	if _, err := journal.Open(context.Background(), "/nonexistent-dir/x/journal.db"); err == nil {
		t.Fatal("Open on a missing directory succeeded")
	}
}
