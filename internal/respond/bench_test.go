package respond_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
)

// timedJournal measures the time the Runner spends in the journal.
type timedJournal struct {
	respond.Journal
	mu sync.Mutex
	d  time.Duration
}

func (j *timedJournal) timed(start time.Time) {
	j.mu.Lock()
	j.d += time.Since(start)
	j.mu.Unlock()
}

func (j *timedJournal) Begin(ctx context.Context, e *journal.Entry) error {
	defer j.timed(time.Now())
	return j.Journal.Begin(ctx, e)
}

func (j *timedJournal) Update(ctx context.Context, e *journal.Entry) error {
	defer j.timed(time.Now())
	return j.Journal.Update(ctx, e)
}

func (j *timedJournal) Finish(ctx context.Context, e *journal.Entry, r any, err error) error {
	defer j.timed(time.Now())
	return j.Journal.Finish(ctx, e, r, err)
}

func (j *timedJournal) Get(ctx context.Context, id string) (*journal.Entry, error) {
	defer j.timed(time.Now())
	return j.Journal.Get(ctx, id)
}

func (j *timedJournal) Unreverted(ctx context.Context, c, a, t string) ([]*journal.Entry, error) {
	defer j.timed(time.Now())
	return j.Journal.Unreverted(ctx, c, a, t)
}

func (j *timedJournal) take() time.Duration {
	j.mu.Lock()
	defer j.mu.Unlock()
	d := j.d
	j.d = 0
	return d
}

// BenchmarkIsolatePod measures isolate + unisolate of one pod against the
// local API server, with the journal on disk (synchronous=FULL, as in
// production) and on tmpfs (fsync costs nothing), and reports latency
// percentiles, API requests per operation and the journal's share.
// Run it with enough iterations for a p99, e.g. -benchtime 300x.
func BenchmarkIsolatePod(b *testing.B) {
	dirs := map[string]string{"disk": ""}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dirs["tmpfs"] = "/dev/shm"
	}
	for _, where := range []string{"disk", "tmpfs"} {
		base, ok := dirs[where]
		if !ok {
			continue
		}
		b.Run("journal-"+where, func(b *testing.B) {
			f := newFixture(b)
			if base != "" {
				dir, err := os.MkdirTemp(base, "kdfir-bench-")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(dir) })
				j, err := journal.Open(context.Background(), filepath.Join(dir, "journal.db"))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { j.Close() })
				f.runner.Journal, f.journal = j, j
			}
			tj := &timedJournal{Journal: f.runner.Journal}
			f.runner.Journal = tj
			ns := f.env.Namespace(b)
			parkedPod(b, f.env, ns, "web", map[string]string{"app": "web"})
			ctx := context.Background()
			req := respond.Request{Action: "isolate-pod", Target: target(ns, "web"), Reason: "bench"}
			cycle := func() (iso, uniso, isoJ, unisoJ time.Duration, isoCalls, unisoCalls int64) {
				f.calls.Store(0)
				start := time.Now()
				res, err := f.runner.Run(ctx, req)
				if err != nil || res.Status != respond.StatusSucceeded {
					b.Fatalf("isolate: %+v, %v", res, err)
				}
				iso, isoJ, isoCalls = time.Since(start), tj.take(), f.calls.Swap(0)
				start = time.Now()
				rel, err := f.runner.Release(ctx, "isolate-pod", req.Target, false)
				if err != nil || rel.Status != respond.StatusReverted {
					b.Fatalf("unisolate: %+v, %v", rel, err)
				}
				return iso, time.Since(start), isoJ, tj.take(), isoCalls, f.calls.Swap(0)
			}
			for range 3 { // warm up connections and caches
				cycle()
			}
			var iso, uniso, isoJ, unisoJ []time.Duration
			var isoCalls, unisoCalls int64
			b.ResetTimer()
			for range b.N {
				a, u, aj, uj, ac, uc := cycle()
				iso, uniso = append(iso, a), append(uniso, u)
				isoJ, unisoJ = append(isoJ, aj), append(unisoJ, uj)
				isoCalls, unisoCalls = isoCalls+ac, unisoCalls+uc
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			for _, m := range []struct {
				name string
				ds   []time.Duration
			}{{"isolate", iso}, {"unisolate", uniso}, {"isolate-journal", isoJ}, {"unisolate-journal", unisoJ}} {
				b.ReportMetric(ms(pct(m.ds, 50)), m.name+"-p50-ms")
				b.ReportMetric(ms(pct(m.ds, 99)), m.name+"-p99-ms")
			}
			b.ReportMetric(float64(isoCalls)/float64(b.N), "isolate-api-calls")
			b.ReportMetric(float64(unisoCalls)/float64(b.N), "unisolate-api-calls")
		})
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := len(s) * p / 100
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}
