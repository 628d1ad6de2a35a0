package respond_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/respond"
)

// planSummary is a plan as "op Kind/ns/name" with the fields it names
// (and their new values), so a test can compare it whole.
func planSummary(plan []respond.PlanItem, fields ...string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, it := range plan {
		got := map[string]any{}
		for _, f := range it.Fields {
			for _, want := range fields {
				if f.Field == want {
					got[f.Field] = []any{f.From, f.To}
				}
			}
		}
		out[it.Op+" "+it.Object.String()] = got
	}
	return out
}

// The dry runs of isolate, release, cordon with drain, and exec list each
// object that would change, with the fields the API server's dry-run
// answer changes, and change nothing.
func TestPreviewPlanFromDryRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withExec(respond.ExecPolicy{Enabled: true, Allow: [][]string{{"id"}}}))
	env := f.env
	ns := env.Namespace(t)
	parkedPod(t, env, ns, "web", map[string]string{"app": "web"})

	label := `metadata.labels["kdfir.io/quarantine"]`
	res := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "web"), DryRun: true})
	want := map[string]map[string]any{
		"patch Pod/" + ns + "/web": {label: []any{nil, "true"}},
		"create NetworkPolicy/" + ns + "/kdfir-quarantine": {
			`spec.podSelector.matchLabels["kdfir.io/quarantine"]`: []any{nil, "true"},
			"spec.policyTypes": []any{nil, []any{"Ingress", "Egress"}},
		},
	}
	got := planSummary(res.Plan, label, `spec.podSelector.matchLabels["kdfir.io/quarantine"]`, "spec.policyTypes")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("isolate plan (-want +got):\n%s\nplan %+v", diff, res.Plan)
	}
	for _, it := range res.Plan {
		if it.Detail == "" {
			t.Errorf("plan item %s %s has no detail", it.Op, it.Object)
		}
	}
	if getPod(t, env, ns, "web").Labels[respond.QuarantineKey] != "" {
		t.Fatal("the dry run labelled the pod")
	}

	// Isolated for real, the release's dry run restores the label and
	// deletes the policy.
	done := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, "web")})
	rev, err := f.runner.Revert(ctx, done.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]map[string]any{
		"patch Pod/" + ns + "/web":                         {label: []any{"true", nil}},
		"delete NetworkPolicy/" + ns + "/kdfir-quarantine": {},
	}
	if diff := cmp.Diff(want, planSummary(rev.Plan, label)); diff != "" {
		t.Fatalf("revert plan (-want +got):\n%s", diff)
	}
	if !quarantinedPod(t, f, ns, "web") {
		t.Fatal("the revert's dry run released the pod")
	}

	// Cordon with taint and drain: the node's fields and the pod a drain
	// evicts.
	node := newNode(t, env)
	createPod(t, env, ns, "on-node", map[string]string{"app": "x"}, onNode(node.Name))
	res = f.run(t, respond.Request{Action: "cordon-node", Target: node.Name, Params: respond.CordonNodeParams{Taint: true, Drain: true}, DryRun: true})
	got = planSummary(res.Plan, "spec.unschedulable", label)
	nodeItem := got["patch Node/"+node.Name]
	if diff := cmp.Diff(map[string]any{"spec.unschedulable": []any{nil, true}, label: []any{nil, "true"}}, nodeItem); diff != "" {
		t.Errorf("cordon plan for the node (-want +got):\n%s", diff)
	}
	if _, ok := got["evict Pod/"+ns+"/on-node"]; !ok {
		t.Errorf("cordon plan lacks the eviction of %s/on-node: %v", ns, got)
	}
	var taints bool
	for _, it := range res.Plan {
		for _, fc := range it.Fields {
			taints = taints || fc.Field == "spec.taints"
		}
	}
	if !taints {
		t.Errorf("cordon plan does not show the taints: %+v", res.Plan)
	}
	if getNode(t, env, node.Name).Spec.Unschedulable {
		t.Fatal("the dry run cordoned the node")
	}

	// Exec makes no dry-run request: the plan says what would run.
	res = f.run(t, respond.Request{Action: "exec-pod", Target: target(ns, "web"), Params: respond.ExecPodParams{Command: []string{"id"}}, DryRun: true})
	if len(res.Plan) != 1 || res.Plan[0].Op != "exec" || res.Plan[0].Detail == "" {
		t.Fatalf("exec plan %+v", res.Plan)
	}
}

func quarantinedPod(t *testing.T, f *fixture, ns, name string) bool {
	return getPod(t, f.env, ns, name).Labels[respond.QuarantineKey] == "true"
}
