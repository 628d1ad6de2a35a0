package respond_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kdfir/kdfir/internal/respond"
	"github.com/kdfir/kdfir/internal/testenv"
)

// addNode adds a kwok node of the test's own to the cluster, tainted so
// that the scheduler puts no other test's pods on it. The node is not
// deleted when the test ends: kwok v0.7.0 panics on a node deletion its
// informer sees as DeletedFinalStateUnknown. Its taint keeps other tests'
// pods off it until the harness stops.
func addNode(t testing.TB, env *testenv.Env, mutate ...func(*corev1.Node)) *corev1.Node {
	t.Helper()
	name := "kdfir-test-" + rand.String(6)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": name},
		},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "kdfir-test/dedicated", Value: name, Effect: corev1.TaintEffectNoSchedule}}},
	}
	for _, m := range mutate {
		m(node)
	}
	n, err := env.Client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newNode adds a node (see addNode) and waits until it is Ready and the
// controllers are done with it, so that only the code under test changes
// it from then on.
func newNode(t testing.TB, env *testenv.Env, mutate ...func(*corev1.Node)) *corev1.Node {
	t.Helper()
	name := addNode(t, env, mutate...).Name
	if err := env.WaitNodeReady(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return getNode(t, env, name)
}

func onNode(node string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.NodeName = node
		p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "kdfir-test/dedicated", Operator: corev1.TolerationOpExists})
	}
}

func getNode(t testing.TB, env *testenv.Env, name string) *corev1.Node {
	t.Helper()
	n, err := env.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// nodeState is what cordon may touch on a node; the rest of it (status
// heartbeats) changes on its own.
func nodeState(n *corev1.Node) any {
	return struct {
		Labels, Annotations map[string]string
		Spec                corev1.NodeSpec
	}{n.Labels, n.Annotations, n.Spec}
}

// nodeRestored waits until the node is as it was before: the node
// lifecycle controller removes its node.kubernetes.io/unschedulable taint
// a moment after uncordon clears spec.unschedulable.
func nodeRestored(t testing.TB, env *testenv.Env, before *corev1.Node) {
	t.Helper()
	var diff string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		diff = cmp.Diff(nodeState(before), nodeState(getNode(t, env, before.Name)), ignoreVolatile)
		return diff == "", nil
	})
	if err != nil {
		t.Fatalf("node after uncordon (-before +after):\n%s", diff)
	}
}

func TestCordonUncordonRestoresNode(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*corev1.Node)
		params respond.CordonNodeParams
		// what uncordon should report
		wantChanges int
	}{
		{name: "taint", params: respond.CordonNodeParams{Taint: true}, wantChanges: 4},
		{name: "already unschedulable and labelled by someone", params: respond.CordonNodeParams{Taint: true},
			mutate: func(n *corev1.Node) {
				n.Spec.Unschedulable = true
				n.Labels[respond.QuarantineKey] = "true"
			}, wantChanges: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			var mut []func(*corev1.Node)
			if tt.mutate != nil {
				mut = append(mut, tt.mutate)
			}
			before := newNode(t, f.env, mut...)
			res := f.run(t, respond.Request{Action: "cordon-node", Target: before.Name, Params: tt.params})
			if res.Status != respond.StatusSucceeded {
				t.Fatalf("cordon = %+v", res)
			}
			n := getNode(t, f.env, before.Name)
			hasTaint := false
			for _, tn := range n.Spec.Taints {
				hasTaint = hasTaint || tn.Key == respond.QuarantineKey && tn.Effect == corev1.TaintEffectNoSchedule
			}
			if !n.Spec.Unschedulable || n.Labels[respond.QuarantineKey] != "true" || !hasTaint {
				t.Fatalf("cordoned node: unschedulable %v labels %v taints %v", n.Spec.Unschedulable, n.Labels, n.Spec.Taints)
			}
			if again := f.run(t, respond.Request{Action: "cordon-node", Target: before.Name, Params: tt.params}); again.Status != respond.StatusUnchanged || !strings.Contains(again.Message, "already cordoned") {
				t.Fatalf("second cordon = %+v", again)
			}
			rel, err := f.runner.Release(ctx, "cordon-node", before.Name, false)
			if err != nil || rel.Status != respond.StatusReverted {
				t.Fatalf("uncordon = %+v, %v", rel, err)
			}
			if len(rel.Changes) != tt.wantChanges {
				t.Fatalf("uncordon changes = %+v, want %d", rel.Changes, tt.wantChanges)
			}
			nodeRestored(t, f.env, before)
		})
	}
}

// Drain evicts through the Eviction API: DaemonSet and quarantined pods
// stay, and a PodDisruptionBudget that allows one disruption blocks the
// other evictions, which are reported, not forced.
func TestDrainHonoursPDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	node := newNode(t, env)

	createPod(t, env, ns, "web", map[string]string{"app": "web"}, onNode(node.Name))
	for _, name := range []string{"db-0", "db-1", "db-2"} {
		createPod(t, env, ns, name, map[string]string{"app": "db"}, onNode(node.Name))
	}
	createPod(t, env, ns, "evil", map[string]string{"app": "evil"}, onNode(node.Name))
	f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "evil")})

	labels := map[string]string{"app": "agent"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.io/hostname": node.Name},
					Tolerations:  []corev1.Toleration{{Key: "kdfir-test/dedicated", Operator: corev1.TolerationOpExists}},
					Containers:   []corev1.Container{{Name: "agent", Image: "registry.k8s.io/pause:3.10"}},
				},
			},
		},
	}
	if _, err := env.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptrTo(intstr.FromInt32(2)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		},
	}
	if _, err := env.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "6 running pods and the PDB allowing 1 disruption", func() (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		p, err := env.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "db", metav1.GetOptions{})
		return running == 6 && err == nil && p.Status.CurrentHealthy == 3 && p.Status.DisruptionsAllowed == 1, err
	})
	before := getNode(t, env, node.Name)

	res := f.run(t, respond.Request{Action: "cordon-node", Target: node.Name, Params: respond.CordonNodeParams{Drain: true}, Reason: "INC-3"})
	if res.Status != respond.StatusSucceeded {
		t.Fatalf("cordon --drain = %+v", res)
	}
	out, ok := res.Output.(respond.DrainOutput)
	if !ok {
		t.Fatalf("output %T", res.Output)
	}
	got := map[string]int{}
	var skipped []string
	for _, ev := range out.Evictions {
		got[strings.SplitN(strings.TrimPrefix(ev.Pod, ns+"/"), "-", 2)[0]+" "+ev.Result]++
	}
	for _, s := range out.Skipped {
		name, why, _ := strings.Cut(strings.TrimPrefix(s, ns+"/"), ": ")
		skipped = append(skipped, strings.SplitN(name, "-", 2)[0]+": "+why)
	}
	sort.Strings(skipped)
	if diff := cmp.Diff(map[string]int{"web evicted": 1, "db evicted": 1, "db blocked": 2}, got); diff != "" {
		t.Fatalf("evictions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"agent: DaemonSet pod", "evil: quarantined pod (kept for forensics)"}, skipped); diff != "" {
		t.Fatalf("skipped (-want +got):\n%s", diff)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "PodDisruptionBudget") {
		t.Fatalf("warnings = %q, want the 2 blocked evictions", res.Warnings)
	}
	evicts := 0
	for _, c := range res.Changes {
		if c.Op == "evict" {
			evicts++
		}
	}
	if evicts != 2 {
		t.Fatalf("changes %+v: want 2 evictions", res.Changes)
	}
	eventually(t, 30*time.Second, "web evicted", func() (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err) || err == nil && p.DeletionTimestamp != nil, nil
	})
	for _, name := range []string{"evil"} {
		if p := getPod(t, env, ns, name); p.DeletionTimestamp != nil {
			t.Fatalf("quarantined pod %s was evicted", name)
		}
	}
	e, err := f.journal.Get(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	var journaled respond.DrainOutput
	if err := json.Unmarshal(e.Result, &journaled); err != nil || len(journaled.Evictions) != 4 {
		t.Fatalf("journaled result %s: %v", e.Result, err)
	}

	rel, err := f.runner.Release(ctx, "cordon-node", node.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rel.LeftAlone) != 2 || !strings.Contains(rel.LeftAlone[0], "cannot be undone") {
		t.Fatalf("uncordon left alone = %q, want the 2 evictions", rel.LeftAlone)
	}
	nodeRestored(t, env, before)
}

func ptrTo[T any](v T) *T { return &v }
