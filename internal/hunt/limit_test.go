package hunt

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/store"
)

// A join in the evaluator's part of a hunt cannot grow without bound: past
// the plan's row limit it fails with a clear error. Hunts run with
// eval.DefaultMaxRows.
func TestEvaluatorRowLimit(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	events := auditCorpus(t, now)
	st := storeOf(t, events)
	// Every event joined with every event of the same verb.
	q, _, err := syntax.Parse(`KubeAudit | project verb, a = auditID | join kind=inner (KubeAudit | project verb, b = auditID) on verb | count`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(ctx, st, store.SourceOptions{}, q, now)
	if err != nil {
		t.Fatal(err)
	}
	if plan.MaxRows != eval.DefaultMaxRows {
		t.Fatalf("hunts run with MaxRows %d, want %d", plan.MaxRows, eval.DefaultMaxRows)
	}
	plan.MaxRows = 50
	cur, err := execute(ctx, st, store.SourceOptions{}, q, plan)
	if err == nil {
		for cur.Next() {
		}
		err = cur.Err()
		cur.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "exceeds the limit of 50 rows") {
		t.Fatalf("join past the limit: %v", err)
	}
}

// storeOf opens a store in a temporary directory, closed when the test
// ends, holding events (inserted in batches of 1,000).
func storeOf(t *testing.T, events []audit.Event) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i := 0; i < len(events); i += 1000 {
		if _, _, err := st.InsertBatch(ctx, events[i:min(i+1000, len(events))]); err != nil {
			t.Fatal(err)
		}
	}
	return st
}
