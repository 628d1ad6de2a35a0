package respond_test

import (
	"context"
	"fmt"
	"os"
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
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kdfir/kdfir/internal/respond"
	"github.com/kdfir/kdfir/internal/testenv"
)

func loadRole(t testing.TB) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile("../../deploy/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatalf("deploy/rbac.yaml: %v", err)
	}
	return &role
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

// deploy/rbac.yaml grants exactly what the actions declare they need.
func TestRBACFileMatchesActions(t *testing.T) {
	role := loadRole(t)
	if role.Kind != "ClusterRole" || role.Name != "kdfir-responder" {
		t.Fatalf("deploy/rbac.yaml holds %s %s, want ClusterRole kdfir-responder", role.Kind, role.Name)
	}
	var declared []rbacv1.PolicyRule
	for _, a := range respond.Builtin(respond.ExecPolicy{}).All() {
		declared = append(declared, a.Info().Rules...)
	}
	if diff := cmp.Diff(grants(declared), grants(role.Rules)); diff != "" {
		t.Fatalf("deploy/rbac.yaml vs the actions' declared RBAC (-declared +file):\n%s", diff)
	}
}

// Every action, and its revert, works as a user bound only to
// kdfir-responder, and the API server forbade none of its requests.
func TestActionsAsLeastPrivilegeUser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := testenv.Get(t)
	role := loadRole(t)
	if _, err := env.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	user, err := env.NewUser(ctx, ns, "responder", "kdfir-responder")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, withConfig(user.Config), withExec(respond.ExecPolicy{Enabled: true}))

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

	// The role grants no more than that: for example, no deleting pods.
	cs, err := kubernetes.NewForConfig(user.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "shell", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("responder deleting a pod: %v, want forbidden", err)
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
	for _, g := range grants(role.Rules) {
		if !used[g] && !otherPaths[g] {
			t.Errorf("deploy/rbac.yaml grants %s, which no action used", g)
		}
	}
}
