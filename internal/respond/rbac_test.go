package respond_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kdfir/kdfir/internal/respond"
	"github.com/kdfir/kdfir/internal/testenv"
)

func loadShipped(t testing.TB) *testenv.Shipped {
	t.Helper()
	sh, err := testenv.LoadShipped("../../deploy/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Policies) != 1 || len(sh.Bindings) != 1 {
		t.Fatalf("deploy/rbac.yaml: %d admission policies and %d bindings, want 1 and 1", len(sh.Policies), len(sh.Bindings))
	}
	return sh
}

// grants flattens rules to "group resource verb" lines.
func grants(rules []rbacv1.PolicyRule) []string {
	set := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					set[fmt.Sprintf("%q %s %s", g, res, v)] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Each role of deploy/rbac.yaml grants exactly what its actions declare
// they need, and every action names a shipped role.
func TestRBACFileMatchesActions(t *testing.T) {
	sh := loadShipped(t)
	declared := map[string][]rbacv1.PolicyRule{}
	for _, a := range respond.Builtin(respond.ExecPolicy{}).All() {
		info := a.Info()
		if info.Role == "" {
			t.Errorf("action %s names no role", info.Name)
		}
		declared[info.Role] = append(declared[info.Role], info.Rules...)
	}
	if len(declared) != len(sh.Roles) {
		t.Errorf("actions name %d roles, deploy/rbac.yaml holds %d", len(declared), len(sh.Roles))
	}
	for name, rules := range declared {
		role, ok := sh.Roles[name]
		if !ok {
			t.Errorf("deploy/rbac.yaml has no ClusterRole %s", name)
			continue
		}
		if diff := cmp.Diff(grants(rules), grants(role.Rules)); diff != "" {
			t.Errorf("%s vs its actions' declared RBAC (-declared +file):\n%s", name, diff)
		}
	}
}

// Every action, and its revert, works as a user bound only to the
// shipped roles, under the shipped admission policy, and the API server
// forbade none of its requests.
func TestActionsAsLeastPrivilegeUser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := testenv.Get(t)
	sh := loadShipped(t)
	var names []string
	for name := range sh.Roles {
		names = append(names, name)
	}
	ns := env.Namespace(t)
	user, err := env.ShippedUser(ctx, sh, ns, "responder", names...)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, withConfig(user.Config), withExec(respond.ExecPolicy{Enabled: true, AllowAny: true}))

	// A ReplicaSet's pod behind a Service, for --detach.
	labels := map[string]string{"app": "web"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
			},
		},
	}
	if _, err := env.Client.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var rsPod string
	eventually(t, time.Minute, "the ReplicaSet's pod exists", func() (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) == 0 {
			return false, err
		}
		rsPod = pods.Items[0].Name
		return true, nil
	})
	if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "shell", Files: map[string]string{"/etc/hostname": "shell\n"}}); err != nil {
		t.Fatal(err)
	}
	node := addNode(t, env) // cordon and drain need no Ready node
	createPod(t, env, ns, "victim", nil, onNode(node.Name))

	steps := []struct {
		name string
		do   func() (*respond.Result, error)
	}{
		{"isolate pod --detach", func() (*respond.Result, error) {
			return f.runner.Run(ctx, respond.Request{Action: "isolate-pod", Target: target(ns, rsPod), Params: respond.IsolatePodParams{Detach: true}})
		}},
		{"isolate a second pod (the policy exists)", func() (*respond.Result, error) {
			return f.runner.Run(ctx, respond.Request{Action: "isolate-pod", Target: target(ns, "shell")})
		}},
		{"unisolate pod", func() (*respond.Result, error) { return f.runner.Release(ctx, "isolate-pod", target(ns, rsPod), false) }},
		{"unisolate the second pod", func() (*respond.Result, error) {
			return f.runner.Release(ctx, "isolate-pod", target(ns, "shell"), false)
		}},
		{"isolate namespace", func() (*respond.Result, error) {
			return f.runner.Run(ctx, respond.Request{Action: "isolate-namespace", Target: ns})
		}},
		{"unisolate namespace", func() (*respond.Result, error) { return f.runner.Release(ctx, "isolate-namespace", ns, false) }},
		{"cordon node --taint --drain", func() (*respond.Result, error) {
			return f.runner.Run(ctx, respond.Request{Action: "cordon-node", Target: node.Name, Params: respond.CordonNodeParams{Taint: true, Drain: true}})
		}},
		{"uncordon node", func() (*respond.Result, error) { return f.runner.Release(ctx, "cordon-node", node.Name, false) }},
		{"exec", func() (*respond.Result, error) {
			return f.runner.Run(ctx, respond.Request{Action: "exec-pod", Target: target(ns, "shell"), Params: respond.ExecPodParams{Command: []string{"cat", "/etc/hostname"}}})
		}},
	}
	for _, s := range steps {
		res, err := s.do()
		if err != nil {
			t.Fatalf("%s as %s: %v", s.name, user.Name, err)
		}
		if res.Status != respond.StatusSucceeded && res.Status != respond.StatusReverted || len(res.Warnings) > 0 {
			t.Fatalf("%s: %+v", s.name, res)
		}
	}
	if out := f.entries(t)[0]; !strings.Contains(string(out.Result), `"stdout":"shell\n"`) {
		t.Fatalf("exec result %s", out.Result)
	}

	// The roles grant no more than that: for example, no deleting pods.
	cs, err := kubernetes.NewForConfig(user.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "shell", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("responder deleting a pod: %v, want forbidden", err)
	}
	// And patch cannot change what a pod runs: the admission policy
	// refuses it, while labels still go through.
	img := []byte(`{"spec":{"containers":[{"name":"app","image":"evil.example/miner:1"}]}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, "shell", types.StrategicMergePatchType, img, metav1.PatchOptions{}); err == nil ||
		!strings.Contains(err.Error(), "only the labels and annotations") {
		t.Fatalf("responder changing a pod's image: %v, want refused by the admission policy", err)
	}
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, "shell", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("responder labelling a pod under the policy: %v", err)
	}
	evs, err := env.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, ev := range evs {
		if ev.User.Username != user.Name || ev.ObjectRef == nil || ev.ResponseStatus == nil {
			continue
		}
		if ev.ResponseStatus.Code == 403 && ev.Verb != "delete" {
			t.Errorf("forbidden for the responder: %s %s", ev.Verb, ev.RequestURI)
		}
		res := ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			res += "/" + ev.ObjectRef.Subresource
		}
		used[fmt.Sprintf("%q %s %s", ev.ObjectRef.APIGroup, res, ev.Verb)] = true
	}
	// Every grant was needed, except those only other paths use: exec
	// over SPDY, and --detach of pods whose controller is not a
	// ReplicaSet.
	otherPaths := map[string]bool{
		`"" pods/exec create`: true, `"apps" statefulsets get`: true, `"apps" daemonsets get`: true, `"batch" jobs get`: true,
	}
	for name, role := range sh.Roles {
		for _, g := range grants(role.Rules) {
			if !used[g] && !otherPaths[g] {
				t.Errorf("%s grants %s, which no action used", name, g)
			}
		}
	}
}

// A user bound only to kdfir-isolate isolates, and cannot exec or cordon.
func TestRolesAreSeparate(t *testing.T) {
	ctx := context.Background()
	env := testenv.Get(t)
	ns := env.Namespace(t)
	user, err := env.ShippedUser(ctx, loadShipped(t), ns, "isolator", respond.RoleIsolate)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "shell"}); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, withConfig(user.Config), withExec(respond.ExecPolicy{Enabled: true, AllowAny: true}))
	if _, err := f.runner.Run(ctx, respond.Request{Action: "isolate-pod", Target: target(ns, "shell")}); err != nil {
		t.Fatalf("isolate as kdfir-isolate: %v", err)
	}
	if _, err := f.runner.Run(ctx, respond.Request{Action: "exec-pod", Target: target(ns, "shell"), Params: respond.ExecPodParams{Command: []string{"id"}}}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("exec as kdfir-isolate: %v, want forbidden", err)
	}
	if _, err := f.runner.Run(ctx, respond.Request{Action: "cordon-node", Target: env.Node}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("cordon as kdfir-isolate: %v, want forbidden", err)
	}
}
