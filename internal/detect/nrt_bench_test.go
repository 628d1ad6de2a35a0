package detect_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/detect"
)

type countSink struct{ n int }

func (s *countSink) Raise(context.Context, *alert.Alert) error { s.n++; return nil }

// BenchmarkNRTPack runs the built-in rule pack's near-real-time rules on a
// batch of 6,000 generated RequestResponse events (about what one 16 MiB
// ingest batch holds), as kdfir ingest does, and reports events/s: the
// rules' share of ingest's work (make bench-hunt sets ingest with the pack
// beside ingest without it).
func BenchmarkNRTPack(b *testing.B) {
	var buf bytes.Buffer
	g := gen.New(3, gen.Options{End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Span: 24 * time.Hour, Level: gen.LevelRequestResponse})
	if err := g.WriteJSONL(&buf, 6000); err != nil {
		b.Fatal(err)
	}
	evs, _, err := audit.DecodeAll(&buf, audit.Options{Cluster: "c"})
	if err != nil {
		b.Fatal(err)
	}
	rules, err := detect.Builtin(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		e := &detect.Engine{Rules: rules, Sink: &countSink{}, Log: slog.New(slog.DiscardHandler)}
		if _, err := e.OnBatch(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(evs)*b.N)/b.Elapsed().Seconds(), "events/s")
}
