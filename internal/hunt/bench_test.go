package hunt

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/store"
)

// benchEvents is the event count for BenchmarkHuntAtScale
// (KDFIR_BENCH_EVENTS, default 1,000,000).
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("KDFIR_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

type countSink struct{ n int }

func (c *countSink) Raise(context.Context, *alert.Alert) error { c.n++; return nil }

// BenchmarkHuntAtScale generates realistic audit events, measures the
// ingest rate (with no rules and with the whole built-in pack running as
// NRT rules), then times Microsoft's four hunting queries and the built-in
// exec hunt against jq doing the same filtering on the same JSONL file.
// Run it with make bench.
func BenchmarkHuntAtScale(b *testing.B) {
	if _, err := exec.LookPath("jq"); err != nil {
		b.Skip("jq is not installed (make tools installs it)")
	}
	ctx := context.Background()
	n := benchEvents()
	dir := b.TempDir()
	jsonl := filepath.Join(dir, "audit.jsonl")
	end := time.Now().UTC().Truncate(time.Second)
	f, err := os.Create(jsonl)
	if err != nil {
		b.Fatal(err)
	}
	if err := gen.New(42, gen.Options{End: end, Span: 20 * time.Hour}).WriteJSONL(f, n); err != nil {
		b.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(jsonl)

	opts := audit.Options{Cluster: "aks-prod", ClusterResourceID: aksID}
	ingest := func(name string, engine *detect.Engine) (*store.Store, float64) {
		st, err := store.Open(ctx, filepath.Join(dir, name+".db"))
		if err != nil {
			b.Fatal(err)
		}
		in, err := os.Open(jsonl)
		if err != nil {
			b.Fatal(err)
		}
		defer in.Close()
		t0 := time.Now()
		stats, err := st.Ingest(ctx, bufio.NewReaderSize(in, 1<<20), opts, func(batch []audit.Event) error {
			if engine == nil {
				return nil
			}
			_, err := engine.OnBatch(ctx, batch)
			return err
		})
		if err != nil || stats.Stored != n {
			b.Fatalf("ingest %s: %+v %v", name, stats, err)
		}
		return st, float64(n) / time.Since(t0).Seconds()
	}
	b.ResetTimer()
	st, rate0 := ingest("norules", nil)
	defer st.Close()
	rules, err := detect.Builtin(nil)
	if err != nil {
		b.Fatal(err)
	}
	sink := &countSink{}
	st2, ratePack := ingest("pack", &detect.Engine{Rules: rules, Sink: sink})
	st2.Close()
	b.StopTimer()

	start, stop := end.Add(-12*time.Hour).Format(time.RFC3339), end.Format(time.RFC3339)
	execHunt, _ := Find("exec-into-pods")
	execQuery, _ := execHunt.Expand(nil)
	cases := []struct{ name, kql, jq string }{
		{"exec into ubuntu pods", microsoftQuery(b, "1-exec-into-ubuntu-pods", nil),
			`select(.verb=="create" and .objectRef.resource=="pods" and .objectRef.subresource=="exec" and .responseStatus.code==101 and (.objectRef.name|startswith("ubuntu"))) | [.stageTimestamp, .objectRef.name, ([.requestURI|scan("command=([^&]*)")[0]]|join(" "))]`},
		{"activity of a managed identity", microsoftQuery(b, "2-managed-identity", map[string]string{"OID": "0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6"}),
			`select(.user.extra.oid[0]? == "0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6")`},
		{"kubectl creations in a window", microsoftQuery(b, "3-kubectl-creations", map[string]string{"CLUSTER_ID": aksID, "START": start, "END": stop}),
			`select(.verb=="create" and ((.userAgent // "")|test("kubectl";"i")) and .stageTimestamp > "` + start + `" and .stageTimestamp < "` + stop + `")`},
		{"privileged pod creation", microsoftQuery(b, "4-privileged-pods", nil),
			`select(.verb=="create" and .objectRef.resource=="pods" and .objectRef.subresource==null and ((.responseStatus.code|tostring)|startswith("20"))) | .requestObject.spec.containers[]? | select(.securityContext.privileged==true) | .name`},
		{"built-in exec hunt (both verbs)", execQuery,
			`select(.objectRef.resource=="pods" and .objectRef.subresource=="exec" and (.verb=="get" or .verb=="create")) | [.auditID, .objectRef.name, ([.requestURI|scan("command=([^&]*)")[0]]|join(" "))]`},
	}

	fmt.Printf("\nkdfir hunting at scale: %d events, %.0f MB of JSONL\n\n", n, float64(fi.Size())/1e6)
	fmt.Printf("ingest, no rules:          %8.0f events/s (target >= 50,000)\n", rate0)
	fmt.Printf("ingest, built-in pack (%d): %7.0f events/s (%.2fx the cost, target <= 2x; %d alerts)\n\n", len(rules), ratePack, rate0/ratePack, sink.n)
	fmt.Printf("%-34s %10s %8s %10s %8s %9s\n", "query", "kdfir p50", "rows", "jq", "lines", "jq/kdfir")
	b.ReportMetric(rate0, "ingest-events/s")
	b.ReportMetric(ratePack, "ingest-pack-events/s")
	for i, c := range cases {
		var times []time.Duration
		rows := 0
		for range 5 {
			t0 := time.Now()
			res, _, err := Run(ctx, st, c.kql, time.Now())
			if err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			times = append(times, time.Since(t0))
			rows = len(res.Rows)
		}
		slices.Sort(times)
		p50 := times[len(times)/2]
		t0 := time.Now()
		out, err := exec.Command("jq", "-c", c.jq, jsonl).Output()
		if err != nil {
			b.Fatalf("jq %s: %v", c.name, err)
		}
		jqTime := time.Since(t0)
		lines := 0
		for _, ch := range out {
			if ch == '\n' {
				lines++
			}
		}
		fmt.Printf("%-34s %9.0fms %8d %9.1fs %8d %8.0fx\n", c.name, float64(p50.Microseconds())/1000, rows, jqTime.Seconds(), lines, jqTime.Seconds()/p50.Seconds())
		b.ReportMetric(float64(p50.Milliseconds()), fmt.Sprintf("q%d-ms", i+1))
		b.ReportMetric(jqTime.Seconds()/p50.Seconds(), fmt.Sprintf("q%d-x-jq", i+1))
	}
}
