package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/audittest"
	"github.com/kdfir/kdfir/internal/store"
)

// TestSourceMatchesBatchSource holds the SQL views (catalog.go) to the
// in-memory reference (audit.Mapper through audit.NewBatchSource): every
// table of the stored events reads back exactly what the batch shows.
func TestSourceMatchesBatchSource(t *testing.T) {
	s, _ := openTemp(t)
	evs := append(fixtureEvents(t), genEvents(t, 3, 2000, audit.Options{Cluster: "gen"})...)
	evs = append(append(evs, edgeEvents(t)...), nullEvents(t)...)
	want := dedup(evs)
	stored, dups, err := s.InsertBatch(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if stored != len(want) || dups != len(evs)-len(want) {
		t.Fatalf("stored %d dups %d; want %d, %d", stored, dups, len(want), len(evs)-len(want))
	}
	for _, name := range audit.Tables() {
		t.Run(name, func(t *testing.T) {
			got := sortRows(t, scan(t, s.Source(store.SourceOptions{}), name))
			exp := sortRows(t, scan(t, audit.NewBatchSource(want), name))
			if len(got) != len(exp) {
				t.Fatalf("%d rows from the store, %d from the batch", len(got), len(exp))
			}
			// Column by column first: a view's mistake shows as the
			// values of one column, not as a diff of whole rows.
			cols, _ := audit.Schema(name)
			bad := false
			for i, c := range cols {
				if d := columnDiff(t, exp, got, i); d != "" {
					bad = true
					t.Errorf("column %s differs:\n%s", c.Name, d)
				}
			}
			if diff := cmp.Diff(exp, got); diff != "" && !bad {
				if len(diff) > 4000 {
					diff = diff[:4000] + "\n..."
				}
				t.Errorf("store rows differ from batch rows (-batch +store):\n%s", diff)
			}
		})
	}
}

// columnDiff compares the values of column i of two row sets as
// multisets (each value with its Go type, nested types included) and
// describes the difference: a few values only the batch has, a few only
// the store has.
func columnDiff(t *testing.T, exp, got [][]any, i int) string {
	t.Helper()
	key := func(v any) string { return fmt.Sprintf("%#v", v) }
	count := map[string]int{}
	for _, r := range exp {
		count[key(r[i])]++
	}
	for _, r := range got {
		count[key(r[i])]--
	}
	var only [2][]string
	n := [2]int{}
	for k, c := range count {
		side := 0
		if c < 0 {
			side, c = 1, -c
		}
		if c == 0 {
			continue
		}
		n[side] += c
		if len(only[side]) < 3 {
			if len(k) > 400 {
				k = k[:400] + "..."
			}
			only[side] = append(only[side], k)
		}
	}
	if n[0] == 0 && n[1] == 0 {
		return ""
	}
	slices.Sort(only[0])
	slices.Sort(only[1])
	return fmt.Sprintf("  %d values only in the batch, e.g.\n    %s\n  %d only in the store, e.g.\n    %s",
		n[0], strings.Join(only[0], "\n    "), n[1], strings.Join(only[1], "\n    "))
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
	// The same events tagged for another cluster are new; repeats within
	// one batch are stored once.
	other := genEvents(t, 5, 10, audit.Options{Cluster: "c2"})
	n, d, err = s.InsertBatch(ctx, append(other, other...))
	if err != nil || n != 10 || d != 10 {
		t.Fatalf("other cluster: %d %d %v", n, d, err)
	}
	// Events without an auditID (or without a time) are told apart by
	// their JSON.
	edge := edgeEvents(t)
	n, d, err = s.InsertBatch(ctx, append(edge, edge[0], edge[0]))
	if err != nil || n != 4 || d != 2 {
		t.Fatalf("edge: %d %d %v", n, d, err)
	}
	if n, d, err := s.InsertBatch(ctx, edge); err != nil || n != 0 || d != 4 {
		t.Fatalf("edge again: %d %d %v", n, d, err)
	}
	if c, _ := s.Count(ctx); c != 3014 {
		t.Errorf("count %d, want 3014", c)
	}
}

// A batch that mixes events later than every stored one with events of
// the stored time range (copies and new ones) stores exactly the new ones,
// once each.
func TestMixedBatch(t *testing.T) {
	s, _ := openTemp(t)
	evs := genEvents(t, 7, 2000, audit.Options{Cluster: "c1"})
	slices.SortStableFunc(evs, func(a, b audit.Event) int { return a.Time.Compare(b.Time) })
	first, rest := evs[:1000], evs[1000:]
	// Keep back 50 events from the middle of the first half's range: they
	// arrive later, in a batch with newer events.
	var held []audit.Event
	kept := first[:0:0]
	for i, e := range first {
		if i >= 400 && i < 450 {
			held = append(held, e)
		} else {
			kept = append(kept, e)
		}
	}
	if n, d, err := s.InsertBatch(ctx, kept); err != nil || n != 950 || d != 0 {
		t.Fatalf("first: %d %d %v", n, d, err)
	}
	// held (late, new), kept[:100] (late, stored), rest (fresh) with
	// rest[:20] twice.
	batch := slices.Concat(rest[:20], held, kept[:100], rest)
	n, d, err := s.InsertBatch(ctx, batch)
	if err != nil || n != 1050 || d != 120 {
		t.Fatalf("mixed: stored %d, duplicates %d, %v; want 1050, 120", n, d, err)
	}
	if c, _ := s.Count(ctx); c != 2000 {
		t.Errorf("count %d, want 2000", c)
	}
	if n, d, err := s.InsertBatch(ctx, evs); err != nil || n != 0 || d != 2000 {
		t.Fatalf("all again: %d %d %v", n, d, err)
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
		t.Errorf("count %d, want %d", c, int64(len(evs))-want)
	}
	if n, err := s.DeleteBefore(ctx, time.Time{}); n != 0 || err != nil {
		t.Errorf("zero time deleted %d (%v)", n, err)
	}
	if got := scan(t, s.Source(store.SourceOptions{Cluster: "edge"}), audit.KubeAudit); len(got) != 1 {
		t.Errorf("the event without a time: %d rows, want 1", len(got))
	}
	s.Close()
	if _, err := s.DeleteBefore(ctx, cut); !errors.Is(err, store.ErrClosed) {
		t.Errorf("DeleteBefore after Close: %v", err)
	}
	if _, _, err := s.InsertBatch(ctx, evs); !errors.Is(err, store.ErrClosed) {
		t.Errorf("InsertBatch after Close: %v", err)
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
	admin := 0 // the events AKSAuditAdmin shows, and AzureDiagnostics twice
	for _, e := range all {
		if e.Cluster == "a" && !e.Time.IsZero() && !e.Time.Before(since) && e.Time.Before(until) && audit.IsAdmin(&e) {
			admin++
		}
	}
	for _, name := range audit.Tables() {
		n := want
		switch name {
		case audit.AKSAuditAdmin:
			n = admin
		case audit.AzureDiagnostics:
			n = want + admin
		}
		if got := scan(t, s.Source(store.SourceOptions{Since: since, Until: until, Cluster: "a"}), name); len(got) != n {
			t.Errorf("%s since/until/cluster: %d rows, want %d", name, len(got), n)
		}
	}
	if got := scan(t, s.Source(store.SourceOptions{Cluster: "edge"}), audit.KubeAudit); len(got) != 4 {
		t.Errorf("edge cluster: %d rows, want 4", len(got))
	}
	if got := scan(t, s.Source(store.SourceOptions{Until: time.Now()}), audit.KubeAudit); len(got) != len(all)-1 {
		t.Errorf("until only: %d rows, want %d (events without time left out)", len(got), len(all)-1)
	}
	if got := scan(t, s.Source(store.SourceOptions{Since: time.Now()}), audit.AKSAudit); len(got) != 0 {
		t.Errorf("since now: %d rows, want 0", len(got))
	}
	if _, err := s.Source(store.SourceOptions{}).Schema(ctx, "Nope"); err == nil {
		t.Error("unknown table accepted")
	}
	if _, ok := s.Catalog(store.SourceOptions{}).Table("Nope"); ok {
		t.Error("catalog: unknown table found")
	}
	// The catalog's restriction is the source's.
	cat, ok := s.Catalog(store.SourceOptions{Cluster: "b"}).Table(audit.KubeAudit)
	if !ok || !strings.Contains(cat.Where, "'b'") {
		t.Errorf("catalog table for cluster b: %+v, %v", cat, ok)
	}
}

func TestBadPath(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.duckdb")
	content := bytes.Repeat([]byte("not duckdb "), 1000)
	if err := os.WriteFile(junk, content, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", dir, filepath.Join(dir, "missing", "x.duckdb"), junk} {
		s, err := store.Open(ctx, p, testOpts)
		if err == nil {
			s.Close()
			t.Errorf("%q: no error", p)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error of several lines: %q", p, err)
		}
	}
	if b, _ := os.ReadFile(junk); !bytes.Equal(b, content) {
		t.Error("opening a junk file changed it")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("Open created the missing directory")
	}
	// A read-only open of a missing file fails and creates nothing.
	ro := filepath.Join(dir, "ro.duckdb")
	if s, err := store.Open(ctx, ro, store.Options{ReadOnly: true}); err == nil {
		s.Close()
		t.Error("read-only open of a missing file: no error")
	}
	if _, err := os.Stat(ro); err == nil {
		t.Error("read-only open created the file")
	}
}

// TestOddFileName keeps characters that a DSN or URI could take for
// syntax in the file name.
func TestOddFileName(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a b#c%20.duckdb", "50%zz.duckdb", "a?b=c.duckdb"} {
		p := filepath.Join(dir, name)
		s, err := store.Open(ctx, p, testOpts)
		if err != nil {
			t.Errorf("%q: %v", name, err)
			continue
		}
		_, _, err = s.InsertBatch(ctx, edgeEvents(t))
		s.Close()
		if err != nil {
			t.Errorf("%q: insert: %v", name, err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	s, path := openTemp(t)
	if _, _, err := s.InsertBatch(ctx, edgeEvents(t)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ro, err := store.Open(ctx, path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if n, err := ro.Count(ctx); n != 4 || err != nil {
		t.Errorf("read-only count %d (%v), want 4", n, err)
	}
	if _, _, err := ro.InsertBatch(ctx, genEvents(t, 1, 10, audit.Options{})); err == nil {
		t.Error("read-only store took an insert")
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
			st, err := s.Ingest(ctx, fh, audit.Options{Cluster: dir, AssumeTime: fixtureTime}, nil)
			fh.Close()
			if err != nil {
				t.Fatal(err)
			}
			events, rejected, skipped = events+st.Events, rejected+st.Rejected, skipped+st.Skipped
			stored, dups = stored+st.Stored, dups+st.Duplicates
		}
	}
	if events != 51+273 || rejected != 1+2 || skipped != 12 || stored+dups != events {
		t.Errorf("events %d rejected %d skipped %d stored %d dups %d", events, rejected, skipped, stored, dups)
	}
	if c, _ := s.Count(ctx); c != int64(stored) {
		t.Errorf("count %d, stored %d", c, stored)
	}
	// Ingesting again adds nothing, and onBatch sees each batch.
	for _, f := range audittest.Files(t, "falco-k8s-audit") {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		st, err := s.Ingest(ctx, fh, audit.Options{Cluster: "falco-k8s-audit", AssumeTime: fixtureTime}, func(b []audit.Event) error {
			seen += len(b)
			return nil
		})
		fh.Close()
		if err != nil || st.Stored != 0 || seen != st.Events {
			t.Fatalf("%s re-ingest: stored %d, onBatch saw %d of %d (%v)", f, st.Stored, seen, st.Events, err)
		}
	}
	t.Logf("fixtures: %d events, %d stored, %d duplicates", events, stored, dups)
}

func TestStats(t *testing.T) {
	s, path := openTemp(t)
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 0 || len(st.Clusters) != 0 || !st.Oldest.IsZero() || st.Ratio != 0 || st.Path != path {
		t.Errorf("empty store: %+v", st)
	}
	a := genEvents(t, 1, 3000, audit.Options{Cluster: "a"})
	b := genEvents(t, 2, 1000, audit.Options{Cluster: "b"})
	edge := edgeEvents(t) // one without a time
	for _, batch := range [][]audit.Event{a, b, edge} {
		if _, _, err := s.InsertBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DB().ExecContext(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	st, err = s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldest, newest := a[0].Time, a[0].Time
	for _, e := range append(append(a, b...), edge...) {
		if e.Time.IsZero() {
			continue
		}
		if e.Time.Before(oldest) {
			oldest = e.Time
		}
		if e.Time.After(newest) {
			newest = e.Time
		}
	}
	wantClusters := []store.ClusterStats{{Name: "a", Events: 3000}, {Name: "b", Events: 1000}, {Name: "edge", Events: 4}}
	if diff := cmp.Diff(wantClusters, st.Clusters); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	if st.Events != 4004 || st.Untimed != 1 || !st.Oldest.Equal(oldest.Truncate(time.Microsecond)) || !st.Newest.Equal(newest.Truncate(time.Microsecond)) {
		t.Errorf("events %d untimed %d oldest %v (want %v) newest %v (want %v)", st.Events, st.Untimed, st.Oldest, oldest, st.Newest, newest)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.FileBytes != fi.Size() || st.DiskBytes != st.FileBytes+st.WALBytes {
		t.Errorf("file %d (want %d), wal %d, disk %d", st.FileBytes, fi.Size(), st.WALBytes, st.DiskBytes)
	}
	// The uncompressed data is at least the verbs and request URIs, and
	// compressed it takes less room on disk.
	var verbs, uris, codes int64
	for _, e := range append(append(a, b...), edge...) {
		verbs += int64(len(e.Verb))
		uris += int64(len(e.RequestURI))
		if e.Has(audit.FieldCode) {
			codes++
		}
	}
	cols := map[string]store.ColumnStats{}
	var sum int64
	for _, c := range st.Columns {
		cols[c.Name] = c
		sum += c.DataBytes
	}
	if cols["verb"].DataBytes != verbs || cols["request_uri"].DataBytes != uris || cols["code"].DataBytes != 8*codes {
		t.Errorf("verb %d bytes (want %d), request_uri %d (want %d), code %d (want %d)",
			cols["verb"].DataBytes, verbs, cols["request_uri"].DataBytes, uris, cols["code"].DataBytes, 8*codes)
	}
	if sum != st.DataBytes || len(cols["verb"].Compression) == 0 {
		t.Errorf("data bytes %d, sum of columns %d; verb compression %v", st.DataBytes, sum, cols["verb"].Compression)
	}
	if st.Ratio <= 1 || st.Ratio != float64(st.DataBytes)/float64(st.DiskBytes) {
		t.Errorf("ratio %.2f (data %d, disk %d)", st.Ratio, st.DataBytes, st.DiskBytes)
	}
	t.Logf("%d events: %d bytes of data, %d on disk (%.1fx)", st.Events, st.DataBytes, st.DiskBytes, st.Ratio)
}

// TestIngestBatchCopies ingests several batches, a later one holding
// copies of events of the two before it (to be dropped) and events held
// back from the first (to be stored).
func TestIngestBatchCopies(t *testing.T) {
	s, _ := openTemp(t)
	evs := genEvents(t, 11, 3*store.IngestBatch, audit.Options{Cluster: "c"})
	slices.SortStableFunc(evs, func(a, b audit.Event) int { return a.Time.Compare(b.Time) })
	n := store.IngestBatch
	// Batch 1: evs[:n] without 100 held back. Batch 2: evs[n:2n].
	// Batch 3: the 100 held back, 500 copies of batch 1 and 500 of batch
	// 2, then the rest.
	held := evs[1000:1100]
	first := slices.Concat(evs[:1000], evs[1100:n])
	var in []audit.Event
	in = append(in, first...)
	in = append(in, evs[n:2*n]...)
	in = append(in, held...)
	in = append(in, evs[:500]...)
	in = append(in, evs[n:n+500]...)
	in = append(in, evs[2*n:]...)
	var b strings.Builder
	for _, e := range in {
		b.Write(e.Raw)
		b.WriteByte('\n')
	}
	var seen int
	st, err := s.Ingest(ctx, strings.NewReader(b.String()), audit.Options{Cluster: "c"}, func(batch []audit.Event) error {
		seen += len(batch)
		return nil
	})
	want := len(dedup(evs))
	if err != nil || st.Stored != want || st.Duplicates != len(in)-want || seen != len(in) {
		t.Fatalf("stored %d, duplicates %d, onBatch saw %d, %v; want %d, %d, %d", st.Stored, st.Duplicates, seen, err, want, len(in)-want, len(in))
	}
	if c, _ := s.Count(ctx); c != int64(want) {
		t.Errorf("count %d, want %d", c, want)
	}
	// The store's latest time is the batches': a copy of the last event
	// is a duplicate.
	if n, d, err := s.InsertBatch(ctx, evs[len(evs)-1:]); err != nil || n != 0 || d != 1 {
		t.Fatalf("last again: %d %d %v", n, d, err)
	}
}

// TestSpillDirectories: every open store spills to a directory of its own
// under path + ".tmp" (DuckDB numbers its spill files from 0 in every
// instance and deletes those it finds when it starts, so stores sharing a
// directory overwrite or delete each other's). Two readers spill at once
// and both answer right; a dead process's directory is swept by the next
// open, a live one's is not; Close removes the store's own.
func TestSpillDirectories(t *testing.T) {
	s, path := openTemp(t)
	if _, _, err := s.InsertBatch(ctx, edgeEvents(t)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	root := path + ".tmp"
	dead := filepath.Join(root, "999999999-0badf00d") // beyond any pid_max
	live := filepath.Join(root, "1-0000beef")         // init is always running
	for _, d := range []string{dead, live} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "duckdb_temp_storage_S128K-0.tmp"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := store.Options{ReadOnly: true, MemoryLimit: "32MB", Threads: 1}
	var readers []*store.Store
	dirs := map[string]bool{}
	for range 2 {
		r, err := store.Open(ctx, path, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readers = append(readers, r)
		var dir string
		if err := r.DB().QueryRowContext(ctx, "SELECT current_setting('temp_directory')").Scan(&dir); err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(dir) != root || dirs[dir] {
			t.Errorf("spill directory %q: want a new one under %s (have %v)", dir, root, dirs)
		}
		dirs[dir] = true
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("spill directory not made: %v", err)
		}
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("a dead process's spill directory is still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live process's spill directory was removed: %v", err)
	}

	// Far more groups than 32MB holds: the aggregation must spill.
	const q = `SELECT count(*), sum(n) FROM (SELECT i, 'group ' || i AS g, count(*) AS n FROM range(1000000) t(i) GROUP BY ALL)`
	errs := make(chan error, len(readers))
	for _, r := range readers {
		go func() {
			var groups, rows int64
			err := r.DB().QueryRowContext(ctx, q).Scan(&groups, &rows)
			if err == nil && (groups != 1000000 || rows != 1000000) {
				err = fmt.Errorf("%d groups of %d rows, want 1000000 of 1000000", groups, rows)
			}
			errs <- err
		}()
	}
	for range readers {
		if err := <-errs; err != nil {
			t.Errorf("spilling query: %v", err)
		}
	}
	for _, r := range readers {
		r.Close()
	}
	for d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("Close left %s: %v", d, err)
		}
	}
	if err := os.RemoveAll(live); err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(ctx, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the last Close left %s: %v", root, err)
	}
}
