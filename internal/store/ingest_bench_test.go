package store_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/store"
)

// BenchmarkIngest stores generated RequestResponse audit events (2.7 KB
// median; KDFIR_BENCH_EVENTS of them, 50,000 by default) from a JSON-lines
// file into a new store, the work of `kdfir ingest --no-detect` without
// the process around it, closing the store included. Its peer, in the
// same run on the same file, is DuckDB loading the file into a table with
// read_json (as make bench-hunt does). It reports both rates and their
// ratio, medians over b.N runs.
func BenchmarkIngest(b *testing.B) {
	n := 50000
	if v, err := strconv.Atoi(os.Getenv("KDFIR_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	g := gen.New(7, gen.Options{End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Span: 7 * 24 * time.Hour, Level: gen.LevelRequestResponse})
	if err := g.WriteJSONL(f, n); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	var kd, dk []float64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		in, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		s, err := store.Open(ctx, filepath.Join(dir, fmt.Sprintf("kdfir%d.duckdb", i)), store.Options{MemoryLimit: "1GiB"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		st, err := s.Ingest(ctx, in, audit.Options{Cluster: "c"}, nil)
		if err != nil || st.Stored != n {
			b.Fatal(err, st)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		kd = append(kd, float64(n)/time.Since(t0).Seconds())
		b.StopTimer()
		in.Close()
		dk = append(dk, duckLoad(b, filepath.Join(dir, fmt.Sprintf("peer%d.duckdb", i)), file, n))
		b.StartTimer()
	}
	k, d := median(kd), median(dk)
	b.ReportMetric(k, "events/s")
	b.ReportMetric(d, "duckdb-events/s")
	b.ReportMetric(k/d, "x-duckdb")
}

// duckLoad loads file into a new DuckDB table with read_json and returns
// events/s.
func duckLoad(b *testing.B, path, file string, n int) float64 {
	db, err := sql.Open("duckdb", path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	t0 := time.Now()
	q := `CREATE TABLE ev AS SELECT * FROM read_json('` + strings.ReplaceAll(file, "'", "''") + `', format='newline_delimited', sample_size=-1)`
	if _, err := db.Exec(q); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(t0).Seconds()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
