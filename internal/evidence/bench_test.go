package evidence_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/testenv"
)

// childEnv carries a collection for TestCollectInChildProcess to run.
const childEnv = "KDFIR_EVIDENCE_BENCH_CHILD"

type childJob struct {
	Kubeconfig, Namespace, Pod, Dest string
}

// BenchmarkCollectLargeLog collects a pod whose log is 200 MB, in a child
// process, and reports the child's peak RSS (getrusage ru_maxrss) and the
// throughput. Streaming keeps the peak far below the log's size; the
// target is under 64 MB.
func BenchmarkCollectLargeLog(b *testing.B) {
	env := testenv.Get(b)
	ns := env.Namespace(b)
	const size = 200 << 20
	logFile := filepath.Join(b.TempDir(), "large.log")
	writeCRILog(b, logFile, size)
	ctx := ctxFor(b, 5*time.Minute)
	_, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "chatty", LogsFile: logFile,
		Files: map[string]string{"/root/.bash_history": plantedHistory}})
	must(b, err)
	blobs := startAzurite(b)
	sasURL, _ := blobs.sasURL(b, time.Now().Add(3*time.Hour), allPerms())

	// The child's RSS when it collects nothing: the binary and the Go
	// runtime, which the collection adds to.
	_, baseline, _ := runChild(b, childJob{})

	for _, dest := range []struct{ name, dest string }{{"local", ""}, {"azurite", sasURL}} {
		b.Run(dest.name, func(b *testing.B) {
			var peak int64
			var elapsed time.Duration
			var logBytes int64
			for b.Loop() {
				d := dest.dest
				if d == "" {
					d = b.TempDir()
				}
				out, rss, took := runChild(b, childJob{Kubeconfig: env.Kubeconfig, Namespace: ns, Pod: "chatty", Dest: d})
				elapsed += took
				peak = max(peak, rss)
				var res evidence.Result
				line := out[strings.Index(out, "{"):]
				must(b, json.NewDecoder(strings.NewReader(line)).Decode(&res))
				if len(res.Failed) != 0 || res.Bytes < size*9/10 { // pods/log drops "stdout F "
					b.Fatalf("collection: %d bytes, failed %+v", res.Bytes, res.Failed)
				}
				logBytes += res.Bytes
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
			b.ReportMetric(float64(baseline)/(1<<20), "baseline-RSS-MB")
			b.ReportMetric(float64(logBytes)/(1<<20)/elapsed.Seconds(), "MB/s")
			if peak > 64<<20 {
				b.Errorf("peak RSS %d MB, want under 64 MB", peak>>20)
			}
		})
	}
}

// runChild runs TestCollectInChildProcess for job and returns its output,
// its peak RSS in bytes and how long it ran.
func runChild(b *testing.B, job childJob) (string, int64, time.Duration) {
	b.Helper()
	raw, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCollectInChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("child: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	took := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return out.String(), ru.Maxrss * 1024, took // ru_maxrss is in kilobytes on Linux
}

// TestCollectInChildProcess is BenchmarkCollectLargeLog's child: it runs
// one collection, verifies it, and prints the Result as JSON. It skips
// unless the benchmark started it.
func TestCollectInChildProcess(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("run by BenchmarkCollectLargeLog")
	}
	var job childJob
	must(t, json.Unmarshal([]byte(raw), &job))
	if job.Pod == "" {
		return // the baseline: load, start, and nothing else
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", job.Kubeconfig)
	must(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	must(t, err)
	key := newKey(t)
	c, err := evidence.New(cs, cfg, evidence.Options{Cluster: "bench", SigningKey: key})
	must(t, err)
	sink, err := evidence.OpenDest(job.Dest)
	must(t, err)
	ctx := ctxFor(t, 10*time.Minute)
	res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindPod, Namespace: job.Namespace, Name: job.Pod})
	must(t, err)
	rep, err := evidence.Verify(ctx, sink.Sub(res.Prefix), key.Public().(ed25519.PublicKey))
	must(t, err)
	if !rep.OK() {
		t.Fatalf("verify: %+v", rep.Problems)
	}
	b, err := json.Marshal(res)
	must(t, err)
	fmt.Println(string(b))
}

// writeCRILog writes about size bytes of log in the CRI format kwok
// serves, without holding it in memory.
func writeCRILog(tb testing.TB, path string, size int64) {
	tb.Helper()
	f, err := os.Create(path)
	must(tb, err)
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Now().Add(-24 * time.Hour).UTC()
	payload := strings.Repeat("x", 160)
	var n int64
	for i := 0; n < size; i++ {
		ts := start.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000000000Z")
		k, err := fmt.Fprintf(w, "%s stdout F GET /api/v1/items?page=%d %s\n", ts, i, payload)
		must(tb, err)
		n += int64(k)
	}
	must(tb, w.Flush())
	must(tb, f.Close())
}
