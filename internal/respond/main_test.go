package respond_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
	"github.com/kdfir/kdfir/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		// A re-executed child of TestCrashBetweenIntentAndOutcome: it
		// talks to the parent's control plane and starts none.
		os.Exit(crashChild())
	}
	os.Exit(testenv.Main(m, testenv.Options{}))
}

// ignoreVolatile compares Kubernetes objects ignoring only
// resourceVersion, managedFields, generation and timestamps.
var ignoreVolatile = cmp.Options{
	cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ResourceVersion", "ManagedFields", "Generation"),
	cmpopts.IgnoreTypes(metav1.Time{}, (*metav1.Time)(nil)),
	cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 }),
}

// fixture is one test's runner, journal and counted API client.
type fixture struct {
	env     *testenv.Env
	runner  *respond.Runner
	journal *journal.Journal
	calls   *atomic.Int64 // API requests made through runner
}

type fixtureOpt func(*fixture, *rest.Config)

func withConfig(cfg *rest.Config) fixtureOpt {
	return func(_ *fixture, c *rest.Config) { *c = *rest.CopyConfig(cfg) }
}

func withExec(p respond.ExecPolicy) fixtureOpt {
	return func(f *fixture, _ *rest.Config) { f.runner.Actions = respond.Builtin(p) }
}

func newFixture(t testing.TB, opts ...fixtureOpt) *fixture {
	t.Helper()
	env := testenv.Get(t)
	j, err := journal.Open(context.Background(), filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	f := &fixture{env: env, journal: j, calls: &atomic.Int64{}}
	f.runner = &respond.Runner{Journal: j, Actions: respond.Builtin(respond.ExecPolicy{}), Cluster: "testenv", Actor: "tester", Log: slog.New(slog.DiscardHandler)}
	cfg := rest.CopyConfig(env.Config)
	for _, o := range opts {
		o(f, cfg)
	}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			f.calls.Add(1)
			return rt.RoundTrip(r)
		})
	})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.runner.Client, f.runner.Config = cs, cfg
	return f
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (f *fixture) run(t testing.TB, req respond.Request) *respond.Result {
	t.Helper()
	res, err := f.runner.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("run %s %s: %v", req.Action, req.Target, err)
	}
	return res
}

func (f *fixture) entries(t testing.TB) []*journal.Entry {
	t.Helper()
	all, err := f.journal.List(context.Background(), journal.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// createPod creates a pod on the harness's kwok node without waiting for
// it to run.
func createPod(t testing.TB, env *testenv.Env, ns, name string, labels map[string]string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   env.Node,
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
			Tolerations: []corev1.Toleration{{
				Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
			}},
		},
	}
	for _, m := range mutate {
		m(pod)
	}
	p, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// parkedPod creates a pod that a scheduling gate keeps from being
// scheduled, so nothing but the code under test ever changes it: the
// tests that compare a pod before and after need no kwok and no waiting.
func parkedPod(t testing.TB, env *testenv.Env, ns, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	return createPod(t, env, ns, name, labels, func(p *corev1.Pod) {
		p.Spec.NodeName = ""
		p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "kdfir.io/test"}}
	})
}

func getPod(t testing.TB, env *testenv.Env, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := env.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// eventually polls cond for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, d, true, func(context.Context) (bool, error) {
		return cond()
	})
	if err != nil {
		t.Fatalf("%s: not within %s: %v", what, d, err)
	}
}

func target(ns, name string) string { return fmt.Sprintf("%s/%s", ns, name) }
