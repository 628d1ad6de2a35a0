package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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

func openTemp(t testing.TB) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := store.Open(ctx, path)
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

// edgeEvents exercise pushdown corner cases.
func edgeEvents(t testing.TB) []audit.Event {
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

// fixtureEvents decodes every usable fixture, tagging clusters so that
// all DataSource kinds occur.
func fixtureEvents(t testing.TB) []audit.Event {
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
			evs, _, err := audit.DecodeAll(bytes.NewReader(b), audit.Options{ClusterResourceID: id})
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
		k := fmt.Sprint(e.Time.UnixNano(), e.Time.IsZero(), "\x00", e.Cluster, "\x00", store.DedupKey(&e), "\x00", e.Stage)
		if !seen[k] {
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

// canon renders rows as sorted strings, to compare them as multisets.
func canon(t testing.TB, rows [][]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	sort.Strings(out)
	return out
}

func TestRoundTripLossless(t *testing.T) {
	s, _ := openTemp(t)
	evs := append(fixtureEvents(t), genEvents(t, 3, 2000, audit.Options{Cluster: "gen"})...)
	evs = append(evs, edgeEvents(t)...)
	want := dedup(evs)
	stored, dups, err := s.InsertBatch(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if stored != len(want) || dups != len(evs)-len(want) {
		t.Fatalf("stored %d dups %d; want %d, %d", stored, dups, len(want), len(evs)-len(want))
	}
	// Every table reads back exactly what the in-memory batch shows.
	for _, name := range audit.Tables() {
		got := canon(t, scan(t, s, name))
		exp := canon(t, scan(t, audit.NewBatchSource(want), name))
		if strings.Join(got, "\n") != strings.Join(exp, "\n") {
			t.Errorf("%s: store rows differ from batch rows", name)
		}
	}
}

func TestRawBytesIdentical(t *testing.T) {
	s, path := openTemp(t)
	evs := dedup(append(fixtureEvents(t), edgeEvents(t)...))
	if _, _, err := s.InsertBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	raws, err := store.RawEvents(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(raws) != len(evs) {
		t.Fatalf("%d raws for %d events", len(raws), len(evs))
	}
	for i := range evs {
		if !bytes.Equal(raws[i], evs[i].Raw) {
			t.Fatalf("event %d: raw differs (%s)", i, path)
		}
	}
}

func TestDuplicates(t *testing.T) {
	s, _ := openTemp(t)
	evs := genEvents(t, 5, 3000, audit.Options{Cluster: "c1"})
	n, d, err := s.InsertBatch(ctx, evs)
	if err != nil || n != 3000 || d != 0 {
		t.Fatalf("first: %d %d %v", n, d, err)
	}
	n, d, err = s.InsertBatch(ctx, evs)
	if err != nil || n != 0 || d != 3000 {
		t.Fatalf("again: %d %d %v", n, d, err)
	}
	// The same events tagged for another cluster are new.
	other := genEvents(t, 5, 10, audit.Options{Cluster: "c2"})
	n, d, err = s.InsertBatch(ctx, append(other, other...))
	if err != nil || n != 10 || d != 10 {
		t.Fatalf("other cluster: %d %d %v", n, d, err)
	}
	if c, _ := s.Count(ctx); c != 3010 {
		t.Errorf("count %d", c)
	}
}

func TestRetention(t *testing.T) {
	s, _ := openTemp(t)
	evs := genEvents(t, 9, 2000, audit.Options{Cluster: "c"})
	evs = append(evs, edgeEvents(t)[0]) // no time: kept
	if _, _, err := s.InsertBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	cut := evs[1000].Time
	want := int64(0)
	for _, e := range evs {
		if !e.Time.IsZero() && e.Time.Before(cut) {
			want++
		}
	}
	n, err := s.DeleteBefore(ctx, cut)
	if err != nil || n != want {
		t.Fatalf("deleted %d, want %d (%v)", n, want, err)
	}
	if c, _ := s.Count(ctx); c != int64(len(evs))-want {
		t.Errorf("count %d", c)
	}
	if n, _ := s.DeleteBefore(ctx, time.Time{}); n != 0 {
		t.Errorf("zero time deleted %d", n)
	}
	s.Close()
	if _, err := s.DeleteBefore(ctx, cut); err != store.ErrClosed {
		t.Errorf("after Close: %v", err)
	}
	if _, _, err := s.InsertBatch(ctx, evs); err != store.ErrClosed {
		t.Errorf("after Close: %v", err)
	}
}

func TestSourceOptions(t *testing.T) {
	s, _ := openTemp(t)
	a := genEvents(t, 1, 1000, audit.Options{Cluster: "a"})
	b := genEvents(t, 2, 1000, audit.Options{Cluster: "b"})
	all := append(append(a, b...), edgeEvents(t)...)
	if _, _, err := s.InsertBatch(ctx, all); err != nil {
		t.Fatal(err)
	}
	since, until := a[200].Time, a[700].Time
	want := 0
	for _, e := range all {
		if e.Cluster == "a" && !e.Time.IsZero() && !e.Time.Before(since) && e.Time.Before(until) {
			want++
		}
	}
	got := scan(t, s.Source(store.SourceOptions{Since: since, Until: until, Cluster: "a"}), audit.CloudAuditEvents)
	if len(got) != want {
		t.Errorf("%d rows, want %d", len(got), want)
	}
	if got := scan(t, s.Source(store.SourceOptions{Cluster: "edge"}), audit.KubeAudit); len(got) != 4 {
		t.Errorf("edge cluster: %d rows", len(got))
	}
	if got := scan(t, s.Source(store.SourceOptions{Until: time.Now()}), audit.KubeAudit); len(got) != len(all)-1 {
		t.Errorf("until only: %d rows, want %d (events without time left out)", len(got), len(all)-1)
	}
	if _, err := s.Source(store.SourceOptions{}).Schema(ctx, "Nope"); err == nil {
		t.Error("unknown table accepted")
	}
}

func TestBadPath(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"", dir, filepath.Join(dir, "missing", "x.db")} {
		if s, err := store.Open(ctx, p); err == nil {
			s.Close()
			t.Errorf("%q: no error", p)
		}
	}
	// Characters that SQLite URIs reserve are kept in the file name.
	odd := filepath.Join(dir, "a?b#c%20.db")
	s, err := store.Open(ctx, odd)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(odd); err != nil {
		t.Error(err)
	}
	// A file that is not a database.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not sqlite "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := store.Open(ctx, junk); err == nil {
		s.Close()
		t.Error("junk file: no error")
	}
}

func TestIngestFixtures(t *testing.T) {
	s, _ := openTemp(t)
	var events, rejected, skipped, stored, dups int
	for _, dir := range []string{"falco-k8s-audit", "panther-k8s-audit"} {
		for _, f := range audittest.Files(t, dir) {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Ingest(ctx, fh, audit.Options{Cluster: dir}, nil)
			fh.Close()
			if err != nil {
				t.Fatal(err)
			}
			events, rejected, skipped = events+st.Events, rejected+st.Rejected, skipped+st.Skipped
			stored, dups = stored+st.Stored, dups+st.Duplicates
		}
	}
	if events != 51+222 || rejected != 1+2 || skipped != 63 || stored+dups != events {
		t.Errorf("events %d rejected %d skipped %d stored %d dups %d", events, rejected, skipped, stored, dups)
	}
	if c, _ := s.Count(ctx); c != int64(stored) {
		t.Errorf("count %d, stored %d", c, stored)
	}
	// Ingesting everything again adds nothing.
	for _, f := range audittest.Files(t, "falco-k8s-audit") {
		fh, _ := os.Open(f)
		st, err := s.Ingest(ctx, fh, audit.Options{Cluster: "falco-k8s-audit"}, nil)
		fh.Close()
		if err != nil || st.Stored != 0 {
			t.Fatalf("%s re-ingest stored %d (%v)", f, st.Stored, err)
		}
	}
	t.Logf("fixtures: %d events, %d stored, %d duplicates", events, stored, dups)
}
