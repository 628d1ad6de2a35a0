package respond_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
	"github.com/kdfir/kdfir/internal/testenv"
)

func getPolicy(t testing.TB, env *testenv.Env, ns, name string) *networkingv1.NetworkPolicy {
	t.Helper()
	p, err := env.Client.NetworkingV1().NetworkPolicies(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// selects reports whether the policy's podSelector selects pod, by the
// NetworkPolicy selector semantics (an empty selector selects every pod).
func selects(t testing.TB, p *networkingv1.NetworkPolicy, pod *corev1.Pod) bool {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	return p.Namespace == pod.Namespace && sel.Matches(labels.Set(pod.Labels))
}

// assertDenyAll checks the policy denies all ingress and egress and is
// marked as kdfir's.
func assertDenyAll(t testing.TB, p *networkingv1.NetworkPolicy, wantSelector map[string]string) {
	t.Helper()
	if p == nil {
		t.Fatal("no quarantine networkpolicy")
	}
	want := networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: wantSelector},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
	}
	if diff := cmp.Diff(want, p.Spec); diff != "" {
		t.Fatalf("policy %s spec (-want +got):\n%s", p.Name, diff)
	}
	if p.Labels[respond.ManagedByLabel] != "kdfir" || p.Annotations[respond.ActionIDKey] == "" {
		t.Fatalf("policy %s not marked as kdfir's: labels %v annotations %v", p.Name, p.Labels, p.Annotations)
	}
}

func TestIsolatePodThenRevertRestoresPod(t *testing.T) {
	tests := []struct {
		name       string
		labels     map[string]string
		label      string // --label
		wantLabel  string
		wantPolicy string
	}{
		{name: "default label", labels: map[string]string{"app": "web"}, wantLabel: "kdfir.io/quarantine=true", wantPolicy: "kdfir-quarantine"},
		{name: "sentinel label overrides a pre-existing value", labels: map[string]string{"app": "web", "status": "active"}, label: "status=quarantine", wantLabel: "status=quarantine"},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			env := f.env
			ns := env.Namespace(t)
			before := parkedPod(t, env, ns, "web", tt.labels)

			res := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "web"), Params: respond.IsolatePodParams{Label: tt.label}, Reason: "INC-1"})
			if res.Status != respond.StatusSucceeded || res.ID == "" {
				t.Fatalf("isolate = %+v", res)
			}
			key, value, _ := strings.Cut(tt.wantLabel, "=")
			pod := getPod(t, env, ns, "web")
			if pod.Labels[key] != value || pod.Annotations[respond.ActionIDKey] != res.ID {
				t.Fatalf("isolated pod labels %v annotations %v", pod.Labels, pod.Annotations)
			}
			pols, err := env.Client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
			if err != nil || len(pols.Items) != 1 {
				t.Fatalf("policies = %v, %v; want exactly one", pols, err)
			}
			pol := &pols.Items[0]
			if tt.wantPolicy != "" && pol.Name != tt.wantPolicy {
				t.Fatalf("policy name %q, want %q", pol.Name, tt.wantPolicy)
			}
			// A label of the user's own gets kdfir's beside it, and the
			// policy selects both: it never selects pods kdfir did not
			// isolate.
			wantSel := map[string]string{key: value}
			if key != respond.QuarantineKey {
				wantSel[respond.QuarantineKey] = respond.QuarantineValue
				if pod.Labels[respond.QuarantineKey] != respond.QuarantineValue {
					t.Fatalf("pod lacks kdfir's own label beside %s: %v", tt.wantLabel, pod.Labels)
				}
			}
			assertDenyAll(t, pol, wantSel)
			if !selects(t, pol, pod) {
				t.Fatal("policy does not select the quarantined pod")
			}

			// The journal holds the intent, the prior pod and the outcome.
			e, err := f.journal.Get(ctx, res.ID)
			if err != nil {
				t.Fatal(err)
			}
			if e.Status != journal.Succeeded || e.Reason != "INC-1" || e.Actor != "tester" || len(e.Prior) != 1 || len(e.Created) != 1 {
				t.Fatalf("journal entry = %+v", e)
			}

			rev, err := f.runner.Revert(ctx, res.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			if rev.Status != respond.StatusReverted || len(rev.LeftAlone) != 0 {
				t.Fatalf("revert = %+v", rev)
			}
			after := getPod(t, env, ns, "web")
			if diff := cmp.Diff(before, after, ignoreVolatile); diff != "" {
				t.Fatalf("pod after revert differs from before (-before +after):\n%s", diff)
			}
			if p := getPolicy(t, env, ns, pol.Name); p != nil {
				t.Fatalf("policy %s still there after the last pod was released", p.Name)
			}
			// Reverting twice is a no-op that says so.
			again, err := f.runner.Revert(ctx, res.ID, false)
			if err != nil || again.Status != respond.StatusAlreadyReverted || !strings.Contains(again.Message, "already reverted") {
				t.Fatalf("second revert = %+v, %v", again, err)
			}
		})
	}
}

func TestIsolatePodIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ns := f.env.Namespace(t)
	createPod(t, f.env, ns, "web", nil)
	first := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "web")})
	second := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "web")})
	if second.Status != respond.StatusUnchanged || !strings.Contains(second.Message, "already isolated") || second.ID != "" {
		t.Fatalf("second isolate = %+v, want unchanged 'already isolated'", second)
	}
	if n := len(f.entries(t)); n != 1 {
		t.Fatalf("journal has %d entries, want 1", n)
	}
	// Releasing reverts the one action.
	rel, err := f.runner.Release(context.Background(), "isolate-pod", target(ns, "web"), false)
	if err != nil || rel.ID != first.ID || rel.Status != respond.StatusReverted {
		t.Fatalf("release = %+v, %v", rel, err)
	}
	if pod := getPod(t, f.env, ns, "web"); pod.Labels[respond.QuarantineKey] != "" {
		t.Fatalf("pod still labelled after release: %v", pod.Labels)
	}
	rel, err = f.runner.Release(context.Background(), "isolate-pod", target(ns, "web"), false)
	if err != nil || rel.Status != respond.StatusUnchanged || !strings.Contains(rel.Message, "nothing to release") {
		t.Fatalf("second release = %+v, %v", rel, err)
	}
}

func TestReleaseOneOfTwoKeepsOtherIsolated(t *testing.T) {
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	createPod(t, env, ns, "a", map[string]string{"app": "a"})
	createPod(t, env, ns, "b", map[string]string{"app": "b"})
	f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "a")})
	f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "b")})

	rel, err := f.runner.Release(context.Background(), "isolate-pod", target(ns, "a"), false)
	if err != nil || rel.Status != respond.StatusReverted {
		t.Fatalf("release a = %+v, %v", rel, err)
	}
	for _, c := range rel.Changes {
		if c.Op == "delete" {
			t.Fatalf("releasing a deleted %s while b is quarantined", c.Object)
		}
	}
	pol := getPolicy(t, env, ns, "kdfir-quarantine")
	assertDenyAll(t, pol, map[string]string{respond.QuarantineKey: "true"})
	if a := getPod(t, env, ns, "a"); selects(t, pol, a) {
		t.Fatal("released pod a is still selected by the quarantine policy")
	}
	if b := getPod(t, env, ns, "b"); !selects(t, pol, b) {
		t.Fatal("pod b is no longer isolated after releasing a")
	}

	if _, err := f.runner.Release(context.Background(), "isolate-pod", target(ns, "b"), false); err != nil {
		t.Fatal(err)
	}
	if p := getPolicy(t, env, ns, "kdfir-quarantine"); p != nil {
		t.Fatal("policy left after releasing the last quarantined pod")
	}
}

// If someone changes a label kdfir set, revert restores the rest and
// reports what it left alone.
func TestRevertLeavesOthersChangesAlone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	createPod(t, env, ns, "web", map[string]string{"status": "active"})
	res := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "web"), Params: respond.IsolatePodParams{Label: "status=quarantine"}})

	patch := []byte(`{"metadata":{"labels":{"status":"investigating"}}}`)
	if _, err := env.Client.CoreV1().Pods(ns).Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	rev, err := f.runner.Revert(ctx, res.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.LeftAlone) != 1 || !strings.Contains(rev.LeftAlone[0], `label status is now "investigating"`) {
		t.Fatalf("left alone = %q, want the status label", rev.LeftAlone)
	}
	pod := getPod(t, env, ns, "web")
	if pod.Labels["status"] != "investigating" || pod.Annotations[respond.ActionIDKey] != "" {
		t.Fatalf("pod after revert: labels %v annotations %v", pod.Labels, pod.Annotations)
	}
	e, _ := f.journal.Get(ctx, res.ID)
	if e.Revert == nil || e.Revert.Status != journal.Succeeded || len(e.Revert.LeftAlone) != 1 {
		t.Fatalf("journaled revert = %+v", e.Revert)
	}
}

// An isolation over a pod that already carries the quarantine key keeps
// the old value for the release, and never overwrites a foreign policy.
func TestIsolatePodRefusesForeignPolicy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	createPod(t, env, ns, "web", nil)
	foreign := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "kdfir-quarantine", Namespace: ns},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	if _, err := env.Client.NetworkingV1().NetworkPolicies(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := f.runner.Run(ctx, respond.Request{Action: "isolate-pod", Target: target(ns, "web")})
	if err == nil || !strings.Contains(err.Error(), "refusing to change it") {
		t.Fatalf("isolate over a foreign policy: err = %v", err)
	}
	if pod := getPod(t, env, ns, "web"); len(pod.Labels) != 0 {
		t.Fatalf("pod changed: %v", pod.Labels)
	}
	if n := len(f.entries(t)); n != 0 {
		t.Fatalf("journal has %d entries, want 0", n)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	before := parkedPod(t, env, ns, "web", map[string]string{"app": "web"})
	nsBefore, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []respond.Request{
		{Action: "isolate-pod", Target: target(ns, "web"), Params: respond.IsolatePodParams{Detach: true}},
		{Action: "isolate-namespace", Target: ns},
	} {
		req.DryRun = true
		res := f.run(t, req)
		if res.Status != respond.StatusDryRun || res.ID != "" || len(res.Changes) < 2 {
			t.Fatalf("dry run %s = %+v", req.Action, res)
		}
	}
	if diff := cmp.Diff(before, getPod(t, env, ns, "web")); diff != "" {
		t.Fatalf("dry run changed the pod:\n%s", diff)
	}
	nsAfter, _ := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if diff := cmp.Diff(nsBefore, nsAfter); diff != "" {
		t.Fatalf("dry run changed the namespace:\n%s", diff)
	}
	if pols, _ := env.Client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{}); len(pols.Items) != 0 {
		t.Fatalf("dry run left %d policies", len(pols.Items))
	}
	if n := len(f.entries(t)); n != 0 {
		t.Fatalf("dry run journaled %d entries", n)
	}

	// A dry-run revert (and release) leaves the isolation in place.
	res := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "web")})
	rev, err := f.runner.Release(ctx, "isolate-pod", target(ns, "web"), true)
	if err != nil || rev.Status != respond.StatusDryRun {
		t.Fatalf("dry-run release = %+v, %v", rev, err)
	}
	var ops []string
	for _, c := range rev.Changes {
		ops = append(ops, c.Op+" "+c.Object.Kind)
	}
	if diff := cmp.Diff([]string{"patch Pod", "patch Pod", "delete NetworkPolicy"}, ops); diff != "" {
		t.Fatalf("dry-run release would (-want +got):\n%s", diff)
	}
	if pod := getPod(t, env, ns, "web"); pod.Labels[respond.QuarantineKey] != "true" || getPolicy(t, env, ns, "kdfir-quarantine") == nil {
		t.Fatal("dry-run release changed the cluster")
	}
	if e, _ := f.journal.Get(ctx, res.ID); e.Revert != nil {
		t.Fatalf("dry-run release journaled a revert: %+v", e.Revert)
	}
}

// 50 parallel isolations of 50 pods in one namespace leave 50 quarantined
// pods, one consistent policy and every other label in place; 50
// parallel releases then leave nothing.
func TestConcurrentIsolations(t *testing.T) {
	const n = 50
	ctx := context.Background()
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			createPod(t, env, ns, fmt.Sprintf("p%02d", i), map[string]string{"idx": fmt.Sprint(i), "app": "shop"})
		}()
	}
	wg.Wait()

	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.runner.Run(ctx, respond.Request{Action: "isolate-pod", Target: target(ns, fmt.Sprintf("p%02d", i))})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	quarantined := 0
	for _, p := range pods.Items {
		if p.Labels[respond.QuarantineKey] == "true" {
			quarantined++
		}
		var i int
		if _, err := fmt.Sscanf(p.Name, "p%d", &i); err != nil || p.Labels["idx"] != fmt.Sprint(i) || p.Labels["app"] != "shop" {
			t.Fatalf("pod %s lost a label: %v", p.Name, p.Labels)
		}
	}
	if quarantined != n {
		t.Fatalf("%d quarantined pods, want %d", quarantined, n)
	}
	pols, err := env.Client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pols.Items) != 1 {
		t.Fatalf("policies: %d, %v; want 1", len(pols.Items), err)
	}
	assertDenyAll(t, &pols.Items[0], map[string]string{respond.QuarantineKey: "true"})
	creators := 0
	for _, e := range f.entries(t) {
		if e.Status != journal.Succeeded {
			t.Fatalf("entry %s: %s %s", e.ID, e.Status, e.Error)
		}
		creators += len(e.Created)
	}
	if creators != 1 || pols.Items[0].Annotations[respond.ActionIDKey] == "" {
		t.Fatalf("%d entries record creating the policy, want 1", creators)
	}

	errs = make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.runner.Release(ctx, "isolate-pod", target(ns, fmt.Sprintf("p%02d", i)), false)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pods, _ = env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		if _, has := p.Labels[respond.QuarantineKey]; has || len(p.Labels) != 2 || p.Annotations[respond.ActionIDKey] != "" {
			t.Fatalf("pod %s after release: labels %v annotations %v", p.Name, p.Labels, p.Annotations)
		}
	}
	if p := getPolicy(t, env, ns, "kdfir-quarantine"); p != nil {
		t.Fatal("policy left after releasing every pod")
	}
}

// A release racing an isolation in one namespace: the shared policy must
// never be deleted while an isolation that just labelled its pod relies on
// it (see lastActionKey in policy.go). The dangerous moment is a release
// that finds no other quarantined pod while another pod is being
// quarantined, so two pods swap quarantine, many times.
func TestReleaseRacingIsolation(t *testing.T) {
	const rounds = 60
	ctx := context.Background()
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	createPod(t, env, ns, "a", nil)
	createPod(t, env, ns, "b", nil)
	f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "a")})
	quarantined, free := "a", "b"
	for round := range rounds {
		var wg sync.WaitGroup
		var relErr, isoErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, relErr = f.runner.Release(ctx, "isolate-pod", target(ns, quarantined), false)
		}()
		go func() {
			defer wg.Done()
			_, isoErr = f.runner.Run(ctx, respond.Request{Action: "isolate-pod", Target: target(ns, free)})
		}()
		wg.Wait()
		if err := errors.Join(relErr, isoErr); err != nil {
			t.Fatal(err)
		}
		pol := getPolicy(t, env, ns, "kdfir-quarantine")
		if pol == nil || !selects(t, pol, getPod(t, env, ns, free)) {
			t.Fatalf("round %d: pod %s is quarantined but no policy covers it", round, free)
		}
		quarantined, free = free, quarantined
	}
}

// Isolating one pod with a label its siblings share (app=web) quarantines
// that pod only: the policy also selects kdfir's own label.
func TestIsolatePodWithSharedLabelSelectsOnlyThatPod(t *testing.T) {
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	createPod(t, env, ns, "web-1", map[string]string{"app": "web"})
	createPod(t, env, ns, "web-2", map[string]string{"app": "web"})
	res := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "web-1"), Params: respond.IsolatePodParams{Label: "app=web"}})
	if res.Status != respond.StatusSucceeded {
		t.Fatalf("isolate = %+v", res)
	}
	pols, err := env.Client.NetworkingV1().NetworkPolicies(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pols.Items) != 1 {
		t.Fatalf("policies = %v, %v", pols, err)
	}
	if !selects(t, &pols.Items[0], getPod(t, env, ns, "web-1")) {
		t.Fatal("the policy does not select the isolated pod")
	}
	if selects(t, &pols.Items[0], getPod(t, env, ns, "web-2")) {
		t.Fatal("the policy selects a sibling that was not isolated")
	}
}
