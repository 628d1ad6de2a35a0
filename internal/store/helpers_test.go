package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/audittest"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/kql/table"
	"github.com/kdfir/kdfir/internal/store"
)

var ctx = context.Background()

// testOpts keeps DuckDB small in tests that run side by side.
var testOpts = store.Options{MemoryLimit: "512MiB", Threads: 2}

func openTemp(t testing.TB) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.Open(ctx, path, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func genEvents(t testing.TB, seed uint64, n int, opts audit.Options) []audit.Event {
	t.Helper()
	var b bytes.Buffer
	if err := gen.New(seed, gen.Options{}).WriteJSONL(&b, n); err != nil {
		t.Fatal(err)
	}
	evs, st, err := audit.DecodeAll(&b, opts)
	if err != nil || st.Rejected != 0 {
		t.Fatal(err, st)
	}
	return evs
}

// edgeEvents are corner cases: no time and no auditID, odd Unicode, null
// and empty members, a bogus timestamp.
func edgeEvents(t testing.TB) []audit.Event {
	t.Helper()
	var out []audit.Event
	for _, s := range []string{
		`{"kind":"Event","verb":"get","user":{"username":"\u212Aube-admin"},"objectRef":{"resource":"secrets","subresource":null,"namespace":"İstanbul","name":"50%_off"}}`,
		`{"kind":"Event","auditID":"e2","stage":"ResponseComplete","verb":"GET","user":{"username":"ſystem:admin","groups":["system:masters","a\"b"]},"sourceIPs":[],"responseStatus":{"code":-1},"stageTimestamp":"2025-05-31T10:00:00Z"}`,
		`{"kind":"Event","auditID":"e3","stage":"","verb":"","requestURI":"","objectRef":{"resource":"","subresource":""},"responseStatus":{},"requestReceivedTimestamp":"2025-05-31T09:00:00.5Z"}`,
		`{"auditID":"e4","verb":"create","objectRef":{"resource":"pods","subresource":"exec"},"responseStatus":{"code":101},"stageTimestamp":"bogus","requestReceivedTimestamp":"2025-05-31T11:00:00Z","user":{"username":"4c3b2a19-8d7e-4f60-a1b2-c3d4e5f60718"}}`,
	} {
		e, err := audit.ParseEvent([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		e.Cluster = "edge"
		out = append(out, e)
	}
	out[1].ClusterResourceID = "arn:eks:weird"
	out[2].ClusterResourceID = "projects/p/locations/l/clusters/g"
	return out
}

// nullEvents have members whose value is JSON null, at the top level
// (known members, members kept in extra) and nested.
func nullEvents(t testing.TB) []audit.Event {
	t.Helper()
	var out []audit.Event
	for _, s := range []string{
		`{"kind":"Event","auditID":"n1","stage":"ResponseComplete","verb":"create","requestObject":null,"responseObject":null,"stageTimestamp":"2025-05-31T12:00:00Z"}`,
		`{"kind":"Event","auditID":"n2","stage":"ResponseComplete","verb":null,"userAgent":null,"annotations":null,"impersonatedUser":null,"stageTimestamp":"2025-05-31T12:00:01Z"}`,
		`{"kind":"Event","auditID":"n3","stage":"ResponseComplete","verb":"get","customNull":null,"stageTimestamp":"2025-05-31T12:00:02Z"}`,
		`{"kind":"Event","auditID":"n4","stage":"ResponseComplete","verb":"get","custom":{"a":null,"b":1},"stageTimestamp":"2025-05-31T12:00:03Z"}`,
		`{"kind":"Event","auditID":"n5","stage":"ResponseComplete","verb":"get","objectRef":{"resource":"pods","name":null},"requestObject":{"spec":{"x":null}},"stageTimestamp":"2025-05-31T12:00:04Z"}`,
	} {
		e, err := audit.ParseEvent([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		e.Cluster = "nulls"
		out = append(out, e)
	}
	return out
}

// fixtureEvents decodes every usable fixture of ../shared/data, tagging
// clusters so that all DataSource kinds occur.
func fixtureEvents(t testing.TB) []audit.Event {
	t.Helper()
	ids := []string{
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1",
		"arn:aws:eks:eu-west-1:123456789012:cluster/eks1",
		"//container.googleapis.com/projects/p/locations/l/clusters/gke1",
		"",
	}
	var all []audit.Event
	i := 0
	for _, dir := range []string{"falco-k8s-audit", "panther-k8s-audit"} {
		for _, f := range audittest.Files(t, dir) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			id := ids[i%len(ids)]
			i++
			evs, _, err := audit.DecodeAll(bytes.NewReader(b), audit.Options{Cluster: dir, ClusterResourceID: id, AssumeTime: fixtureTime.Add(time.Duration(i) * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, evs...)
		}
	}
	return all
}

// dedup keeps the first of events with the same store key.
func dedup(evs []audit.Event) []audit.Event {
	seen := map[string]bool{}
	var out []audit.Event
	for _, e := range evs {
		if k := store.IdentityKey(&e); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

func scan(t testing.TB, src table.Source, name string, filters ...table.Filter) [][]any {
	t.Helper()
	r, err := src.Scan(ctx, table.ScanRequest{Table: name, Filters: filters})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out [][]any
	for r.Next() {
		out = append(out, append([]any(nil), r.Row()...))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sortRows orders rows by their JSON, to compare them as multisets.
func sortRows(t testing.TB, rows [][]any) [][]any {
	t.Helper()
	keys := make([]string, len(rows))
	idx := make([]int, len(rows))
	for i := range rows {
		b, err := json.Marshal(rows[i])
		if err != nil {
			t.Fatal(err)
		}
		keys[i], idx[i] = string(b), i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	out := make([][]any, len(rows))
	for i, j := range idx {
		out[i] = rows[j]
	}
	return out
}

// dumpEvents returns every stored row of the events table, each rendered
// as one string, sorted: two stores with equal dumps hold the same events.
func dumpEvents(t testing.TB, s *store.Store) []string {
	t.Helper()
	rows, err := s.DB().QueryContext(ctx, "SELECT * FROM events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		v := make([]any, len(cols))
		p := make([]any, len(cols))
		for i := range v {
			p[i] = &v[i]
		}
		if err := rows.Scan(p...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(v))
		for i, x := range v {
			switch x := x.(type) {
			case nil:
				parts[i] = "NULL"
			case time.Time:
				parts[i] = x.UTC().Format(time.RFC3339Nano)
			default:
				parts[i] = fmt.Sprintf("%v", x)
			}
		}
		out = append(out, strings.Join(parts, "\x1f"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// fixtureTime is given to the fixture events that carry no time (most of
// Panther's test logs), which the decoder otherwise rejects.
var fixtureTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
