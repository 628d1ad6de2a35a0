package hunt

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/audittest"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/kqltest"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden results of the compatibility suite")

// compatNow is the query time of the compatibility suite: the end of the
// generated events.
var compatNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	compatAKSProd = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-Prod/providers/Microsoft.ContainerService/managedClusters/aks-prod"
	compatAKSDev  = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-dev/providers/Microsoft.ContainerService/managedClusters/aks-dev"
	compatEKS     = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-shop"
	compatGKE     = "//container.googleapis.com/projects/p/locations/europe-west1/clusters/gke-lab"
)

// compatEvents is the fixture of the compatibility suite: generated
// events of two AKS clusters (one at RequestResponse level, one at
// Metadata) and an EKS cluster, ending at compatNow, and the third-party
// fixtures as a GKE cluster; without the repeats the store drops.
func compatEvents(t *testing.T) []audit.Event {
	t.Helper()
	var all []audit.Event
	decode := func(b []byte, id, cluster string) {
		evs, _, err := audit.DecodeAll(bytes.NewReader(b), audit.Options{ClusterResourceID: id, Cluster: cluster})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
	}
	for _, c := range []struct {
		seed        uint64
		level       string
		n           int
		id, cluster string
	}{
		{21, gen.LevelRequestResponse, 1500, compatAKSProd, "aks-prod"},
		{22, gen.LevelMetadata, 700, compatAKSDev, "aks-dev"},
		{23, gen.LevelRequestResponse, 300, compatEKS, "eks-shop"},
	} {
		var b bytes.Buffer
		if err := gen.New(c.seed, gen.Options{Level: c.level, End: compatNow, Span: 24 * time.Hour}).WriteJSONL(&b, c.n); err != nil {
			t.Fatal(err)
		}
		decode(b.Bytes(), c.id, c.cluster)
	}
	for _, f := range audittest.Files(t, "falco-k8s-audit") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		decode(b, compatGKE, "gke-lab")
	}
	return storable(all)
}

// storable drops the events the store would drop as repeats, and keeps
// the times at the microseconds DuckDB keeps.
func storable(all []audit.Event) []audit.Event {
	seen := map[string]bool{}
	var out []audit.Event
	for _, e := range all {
		e.Time = e.Time.Truncate(time.Microsecond)
		k := store.IdentityKey(&e)
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// compatResult is a golden result: the columns and the rows, each
// canonical (kqltest.CanonRows), in sorted order.
type compatResult struct {
	Columns []string `json:"columns"`
	Rows    []string `json:"rows"`
}

// TestCompatibilitySuite runs the hunting queries of testdata/compat,
// written in the style of the ones people publish for Sentinel and
// Defender XDR, over the five tables: through the store (SQL, and the
// evaluator for what SQL leaves) and through the evaluator alone over the
// same events. Both must give the golden rows (-update rewrites them).
func TestCompatibilitySuite(t *testing.T) {
	ctx := context.Background()
	events := compatEvents(t)
	st := storeOf(t, events)
	mem := audit.NewBatchSource(events)

	files, err := filepath.Glob("testdata/compat/*.kql")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 60 {
		t.Fatalf("%d queries in the suite, want at least 60", len(files))
	}
	perTable := map[string]int{}
	compiled, empty := 0, 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".kql")
		if b, err := os.ReadFile(f); err == nil {
			for _, tab := range audit.Tables() {
				if syntax.NameIn(string(b), tab) {
					perTable[tab]++
				}
			}
		}
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			query := string(b)
			want, _, err := eval.Query(ctx, mem, query, eval.Options{Now: compatNow})
			if err != nil {
				t.Fatalf("evaluator: %v", err)
			}
			got, _, err := Collect(ctx, st, store.SourceOptions{}, query, compatNow)
			if err != nil {
				t.Fatalf("store: %v", err)
			}
			res := compatResult{Rows: kqltest.CanonRows(want.Rows)}
			for _, c := range want.Columns {
				res.Columns = append(res.Columns, c.Name+":"+string(c.Type))
			}
			if d := cmp.Diff(want.Columns, got.Columns); d != "" {
				t.Errorf("columns differ (-evaluator +store):\n%s", d)
			}
			if d := cmp.Diff(res.Rows, kqltest.CanonRows(got.Rows)); d != "" {
				t.Errorf("rows differ (-evaluator +store):\n%s", d)
			}
			if len(want.Rows) == 0 {
				empty++
				t.Errorf("no rows: the fixture does not exercise the query")
			}
			if plan, err := compileText(ctx, st, store.SourceOptions{}, query, compatNow); err == nil && plan.SQL != "" && plan.Rest == nil {
				compiled++
			}
			golden := strings.TrimSuffix(f, ".kql") + ".json"
			if *update {
				out, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(out, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			gb, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			var gold compatResult
			if err := json.Unmarshal(gb, &gold); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(gold, res); d != "" {
				t.Errorf("result differs from %s (-golden +got):\n%s", golden, d)
			}
		})
	}
	t.Logf("%d queries: %d ran entirely in SQL, %d gave no rows; per table %v", len(files), compiled, empty, perTable)
	for _, tab := range audit.Tables() {
		if perTable[tab] < 10 {
			t.Errorf("only %d queries read %s, want at least 10", perTable[tab], tab)
		}
	}
}
