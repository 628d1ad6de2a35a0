package store_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/store"
)

// BenchmarkIngest decodes a generated JSON-lines file of
// $KDFIR_BENCH_EVENTS events (default 1,000,000) into a new database and
// reports events/s. Run it with -benchtime=1x.
func BenchmarkIngest(b *testing.B) {
	n := 1000000
	if v, err := strconv.Atoi(os.Getenv("KDFIR_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "audit.jsonl")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	if err := gen.New(1, gen.Options{}).WriteJSONL(f, n); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.ResetTimer()
	var total time.Duration
	var stored int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := store.Open(ctx, filepath.Join(dir, "bench"+strconv.Itoa(i)+".db"))
		if err != nil {
			b.Fatal(err)
		}
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		st, err := s.Ingest(ctx, in, audit.Options{Cluster: "bench"}, nil)
		total += time.Since(start)
		b.StopTimer()
		in.Close()
		if err != nil || st.Stored != n {
			b.Fatalf("stored %d of %d: %v", st.Stored, n, err)
		}
		stored += st.Stored
		s.Close()
		os.Remove(filepath.Join(dir, "bench"+strconv.Itoa(i)+".db"))
	}
	b.ReportMetric(float64(stored)/total.Seconds(), "events/s")
}
