package detect

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/testenv"
)

func writeTuning(t *testing.T, text string) *Tuning {
	t.Helper()
	p := filepath.Join(t.TempDir(), "exceptions.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	tu, err := LoadTuning(p)
	if err != nil {
		t.Fatal(err)
	}
	return tu
}

func evaluateDetail(t *testing.T, r *Rule, evs []audit.Event) ([]string, []string) {
	t.Helper()
	alerts, excepted, err := (&Engine{}).EvaluateDetail(ctx, r, audit.NewBatchSource(evs))
	if err != nil {
		t.Fatal(err)
	}
	var a, x []string
	for _, al := range alerts {
		a = append(a, al.ReportIDs[0])
	}
	for _, e := range excepted {
		x = append(x, e.Exception+":"+e.ReportID)
	}
	sort.Strings(a)
	sort.Strings(x)
	return a, x
}

// Falco's "trusted" test cases: the same pods, with an exception file
// that trusts the nginx image.
func TestExceptionTrustedImage(t *testing.T) {
	dir := filepath.Join(sharedData, "falco-k8s-audit")
	for file, id := range map[string]string{
		"create_nginx_pod_privileged.json":      "k8s-privileged-container",
		"create_nginx_pod_hostnetwork.json":     "k8s-hostnetwork",
		"create_nginx_pod_sensitive_mount.json": "k8s-sensitive-hostpath",
	} {
		rules, err := Builtin(nil)
		if err != nil {
			t.Fatal(err)
		}
		evs := fixtureEvents(t, filepath.Join(dir, file))
		r := builtinByID(t)[id]
		if a, _ := evaluateDetail(t, r, evs); len(a) != 1 {
			t.Fatalf("%s: %s raised %d alerts without the exception, want 1", file, id, len(a))
		}
		tu := writeTuning(t, "exceptions:\n- rule: \"*\"\n  name: trusted-nginx\n  images: [\"docker.io/library/nginx:*\", \"docker.io/library/nginx\"]\n")
		if err := tu.Apply(rules); err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.ID != id {
				continue
			}
			a, x := evaluateDetail(t, r, evs)
			if len(a) != 0 || len(x) != 1 || !strings.HasPrefix(x[0], "trusted-nginx:") {
				t.Errorf("%s: with the exception, alerts %v, excepted %v", file, a, x)
			}
		}
	}
}

func TestExceptionFields(t *testing.T) {
	ev := func(id, user, ns, image string, groups ...string) audit.Event {
		g := `"system:authenticated"`
		for _, x := range groups {
			g += `,"` + x + `"`
		}
		raw := `{"kind":"Event","auditID":"` + id + `","stage":"ResponseComplete","verb":"create","stageTimestamp":"2025-01-01T00:00:00Z",` +
			`"user":{"username":"` + user + `","groups":[` + g + `]},"objectRef":{"resource":"pods","namespace":"` + ns + `","name":"p-` + id + `"},` +
			`"responseStatus":{"code":201},"requestObject":{"spec":{"containers":[{"name":"c","image":"` + image + `","securityContext":{"privileged":true}}]}}}`
		e, err := audit.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	evs := []audit.Event{
		ev("a", "alice", "shop", "nginx:1.25"),
		ev("b", "system:serviceaccount:ci:runner", "ci", "ghcr.io/acme/builder:2"),
		ev("c", "bob", "shop", "busybox", "ops"),
		ev("d", "carol", "lab", "quay.io/x/y:1"),
		ev("e", "system:serviceaccount:kube-system:daemon-set-controller", "kube-system", "registry.k8s.io/kube-proxy:v1.32.0"),
		ev("f", "mallory", "kube-system", "registry.k8s.io/kube-proxy:v1.32.0"),
	}
	cases := []struct {
		name, tuning string
		alerts       []string
		excepted     []string
	}{
		{"shipped defaults only", "", []string{"a", "b", "c", "d", "f"}, []string{"system-controllers:e"}},
		{"image wildcard", "- {rule: k8s-privileged-container, name: x, images: [\"nginx:*\"]}", []string{"b", "c", "d", "f"}, []string{"system-controllers:e", "x:a"}},
		{"image full form", "- {rule: k8s-privileged-container, name: x, images: [\"docker.io/library/busybox\"]}", []string{"a", "b", "d", "f"}, []string{"system-controllers:e", "x:c"}},
		{"namespace and user together", "- {rule: k8s-privileged-container, name: x, namespaces: [shop], users: [bob]}", []string{"a", "b", "d", "f"}, []string{"system-controllers:e", "x:c"}},
		{"group", "- {rule: k8s-privileged-container, name: x, groups: [ops]}", []string{"a", "b", "d", "f"}, []string{"system-controllers:e", "x:c"}},
		{"service account", "- {rule: k8s-privileged-container, name: x, serviceAccounts: [\"ci/*\"]}", []string{"a", "c", "d", "f"}, []string{"system-controllers:e", "x:b"}},
		{"kql condition", "- {rule: k8s-privileged-container, name: x, when: 'Namespace == \"lab\" and Image startswith \"quay.io/\"'}", []string{"a", "b", "c", "f"}, []string{"system-controllers:e", "x:d"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rules, err := Builtin(nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.tuning != "" {
				if err := writeTuning(t, "exceptions:\n"+c.tuning+"\n").Apply(rules); err != nil {
					t.Fatal(err)
				}
			}
			var r *Rule
			for _, x := range rules {
				if x.ID == "k8s-privileged-container" {
					r = x
				}
			}
			a, x := evaluateDetail(t, r, evs)
			if d := cmp.Diff(c.alerts, a); d != "" {
				t.Errorf("alerts (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.excepted, x); d != "" {
				t.Errorf("excepted (-want +got):\n%s", d)
			}
		})
	}
}

func TestExceptionErrors(t *testing.T) {
	for text, want := range map[string]string{
		"exceptions:\n- {rule: no-such-rule, name: x, users: [a]}\n":                      `no rule "no-such-rule"`,
		"exceptions:\n- {rule: k8s-node-proxy, name: x, images: [a]}\n":                   "images needs the Image column",
		"exceptions:\n- {rule: k8s-privileged-container, name: x}\n":                      "set at least one of",
		"exceptions:\n- {rule: k8s-privileged-container, name: x, when: 'Namespace ==='}": `when "Namespace ===": column 13: expected an expression`,
		"exceptions:\n- {name: x, users: [a]}\n":                                          "rule or rules is required",
		"enable: [nope]\n":                                                                `enable: no rule "nope"`,
	} {
		rules, err := Builtin(nil)
		if err != nil {
			t.Fatal(err)
		}
		err = writeTuning(t, text).Apply(rules)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line with %q", text, err, want)
		}
	}
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("exceptions:\n- {rule: a, name: x, imagez: [a]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTuning(p); err == nil || !strings.Contains(err.Error(), "imagez") {
		t.Errorf("unknown field: %v", err)
	}
}

// TestShippedExceptionRealServer: a ServiceAccount of kube-system (as a
// controller is) creating a privileged pod there is excepted by the
// shipped defaults; a person doing the same is not.
func TestShippedExceptionRealServer(t *testing.T) {
	env := testenv.Get(t)
	r := builtinByID(t)["k8s-privileged-container"]
	sfx := utilrand.String(5)
	ctrl, err := env.NewUser(ctx, "kube-system", "kdfir-test-ctrl-"+sfx, "cluster-admin")
	if err != nil {
		t.Fatal(err)
	}
	k := newKit(t, env)
	priv := func(cs kubernetes.Interface, name string) {
		spec := podSpec("registry.k8s.io/pause:3.10")
		spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		_, err := cs.CoreV1().Pods("kube-system").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		k.must(err)
		t.Cleanup(func() { _ = env.Client.CoreV1().Pods("kube-system").Delete(ctx, name, metav1.DeleteOptions{}) })
	}
	priv(k.clientFor(ctrl.Config), "ctrl-priv-"+sfx)
	priv(k.cs, "user-priv-"+sfx)
	alerts, excepted, err := (&Engine{}).EvaluateDetail(ctx, r, audit.NewBatchSource(k.events()))
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Fields["Name"] != "user-priv-"+sfx {
		t.Errorf("want one alert, for the person's pod; got %d", len(alerts))
	}
	if len(excepted) != 1 || excepted[0].Exception != "system-controllers" || excepted[0].Fields["Name"] != "ctrl-priv-"+sfx {
		t.Errorf("want the controller's pod excepted by system-controllers; got %+v", excepted)
	}
}
