package respond_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kdfir/kdfir/internal/respond"
)

// Namespace isolation covers every pod, including one created after it,
// and its release restores the namespace exactly.
func TestIsolateNamespaceCoversLaterPods(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	createPod(t, env, ns, "early", map[string]string{"app": "early"})
	before, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	res := f.run(t, respond.Request{Action: "isolate-namespace", Target: ns, Reason: "INC-2"})
	if res.Status != respond.StatusSucceeded {
		t.Fatalf("isolate namespace = %+v", res)
	}
	got, _ := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if got.Labels[respond.QuarantineKey] != "true" || got.Annotations[respond.ActionIDKey] != res.ID {
		t.Fatalf("namespace labels %v annotations %v", got.Labels, got.Annotations)
	}
	pol := getPolicy(t, env, ns, "kdfir-isolate-namespace")
	assertDenyAll(t, pol, nil)

	late := createPod(t, env, ns, "late", map[string]string{"app": "late", "status": "quarantine"})
	for _, name := range []string{"early", "late"} {
		if !selects(t, pol, getPod(t, env, ns, name)) {
			t.Fatalf("the namespace policy does not select pod %s", name)
		}
	}
	_ = late

	again := f.run(t, respond.Request{Action: "isolate-namespace", Target: ns})
	if again.Status != respond.StatusUnchanged {
		t.Fatalf("second isolate = %+v, want unchanged", again)
	}

	rel, err := f.runner.Release(ctx, "isolate-namespace", ns, false)
	if err != nil || rel.Status != respond.StatusReverted || rel.ID != res.ID {
		t.Fatalf("release = %+v, %v", rel, err)
	}
	after, _ := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if diff := cmp.Diff(before, after, ignoreVolatile); diff != "" {
		t.Fatalf("namespace after release (-before +after):\n%s", diff)
	}
	if p := getPolicy(t, env, ns, "kdfir-isolate-namespace"); p != nil {
		t.Fatal("namespace policy left after release")
	}
}
