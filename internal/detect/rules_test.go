package detect

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{})) }

// kit is what a positive or negative case acts with: a namespace of its
// own and clients whose User-Agent marks every request it makes, so the
// case's audit events can be picked out exactly.
type kit struct {
	t   *testing.T
	env *testenv.Env
	ns  string
	ua  string
	cfg *rest.Config
	cs  kubernetes.Interface
}

func newKit(t *testing.T, env *testenv.Env) *kit {
	ns := env.Namespace(t)
	k := &kit{t: t, env: env, ns: ns, ua: "kdfir-detect-test/" + ns}
	k.cfg = k.as(env.Config)
	k.cs = kubernetes.NewForConfigOrDie(k.cfg)
	return k
}

// as copies cfg with the kit's User-Agent.
func (k *kit) as(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.UserAgent = k.ua
	return c
}

func (k *kit) clientFor(cfg *rest.Config) kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(k.as(cfg))
}

// events are the audit events this kit's requests produced.
func (k *kit) events() []audit.Event {
	k.t.Helper()
	raw, err := k.env.AuditEvents()
	if err != nil {
		k.t.Fatal(err)
	}
	var out []audit.Event
	for _, ev := range raw {
		if !strings.Contains(string(ev.Raw), `"userAgent":"`+k.ua+`"`) && !strings.Contains(string(ev.Raw), `"userAgent":"`+k.ua+` `) &&
			!strings.Contains(string(ev.Raw), ` `+k.ua+`"`) {
			continue
		}
		e, err := audit.ParseEvent(ev.Raw)
		if err != nil {
			k.t.Fatalf("audit event: %v", err)
		}
		e.Cluster = "testenv"
		out = append(out, e)
	}
	return out
}

func (k *kit) must(err error) {
	k.t.Helper()
	if err != nil {
		k.t.Fatal(err)
	}
}

func podSpec(image string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}
}

// deployment creates a one-replica Deployment of the pause image.
func (k *kit) deployment(name string, mutate func(*corev1.PodSpec)) *appsv1.Deployment {
	k.t.Helper()
	labels := map[string]string{"app": name}
	spec := podSpec("registry.k8s.io/pause:3.10")
	if mutate != nil {
		mutate(&spec)
	}
	d, err := k.cs.AppsV1().Deployments(k.ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}},
	}, metav1.CreateOptions{})
	k.must(err)
	return d
}

func (k *kit) createPod(ns, name string, mutate func(*corev1.PodSpec)) {
	k.t.Helper()
	spec := podSpec("registry.k8s.io/pause:3.10")
	if mutate != nil {
		mutate(&spec)
	}
	_, err := k.cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
	k.must(err)
}

// runningPod starts a kwok pod (as the harness's admin, not as the kit).
func (k *kit) runningPod(name string) {
	k.t.Helper()
	_, err := k.env.RunPod(context.Background(), testenv.PodSpec{Namespace: k.ns, Name: name,
		Files: map[string]string{"/etc/hostname": name + "\n"}, Logs: []string{"hello"}})
	k.must(err)
}

func (k *kit) logs() {
	k.t.Helper()
	_, err := k.cs.CoreV1().Pods(k.ns).GetLogs("target", &corev1.PodLogOptions{}).DoRaw(context.Background())
	k.must(err)
}

type ruleCase struct {
	rule     string
	pos, neg func(k *kit)
	// fixtures, instead of pos and neg, are events the real API server
	// recorded elsewhere (Falco's trace files), for what the test server's
	// audit policy does not log in full.
	fixtures *[2]string
	// check inspects the positive alerts further.
	check func(t *testing.T, alerts []*alert.Alert)
}

var ctx = context.Background()

func ruleCases() []ruleCase {
	plain := func(k *kit) { k.createPod(k.ns, "plain", nil) }
	workload := func(mutate func(*corev1.PodSpec)) func(k *kit) {
		return func(k *kit) { k.createPod(k.ns, "suspect", mutate) }
	}
	return append([]ruleCase{
		{rule: "k8s-exec-into-pod",
			pos: func(k *kit) {
				k.runningPod("target")
				out, _, err := testenv.Exec(ctx, k.cfg, k.ns, "target", "app", "sh", "-c", "cat /etc/hostname")
				k.must(err)
				if strings.TrimSpace(out) != "target" {
					k.t.Fatalf("exec output %q", out)
				}
			},
			neg: func(k *kit) { k.runningPod("target"); k.logs() },
			check: func(t *testing.T, alerts []*alert.Alert) {
				if !strings.Contains(alerts[0].Title, "sh -c cat /etc/hostname") || alerts[0].Fields["Command"] != "sh -c cat /etc/hostname" {
					t.Errorf("exec alert title %q, command %v: want the decoded command", alerts[0].Title, alerts[0].Fields["Command"])
				}
				if !alerts[0].HasType(alert.EntityPod) || alerts[0].OfType(alert.EntityPod)[0].Name != "target" {
					t.Errorf("exec alert entities %+v", alerts[0].Entities)
				}
			}},
		{rule: "k8s-attach-to-pod",
			pos: func(k *kit) {
				k.runningPod("target")
				k.must(k.attach())
			},
			neg: func(k *kit) { k.runningPod("target"); k.logs() }},
		{rule: "k8s-privileged-container",
			pos: func(k *kit) {
				priv := &corev1.SecurityContext{Privileged: ptr.To(true)}
				k.deployment("priv", func(s *corev1.PodSpec) { s.Containers[0].SecurityContext = priv })
				k.createPod(k.ns, "ubuntu-priv", func(s *corev1.PodSpec) { s.Containers[0].SecurityContext = priv })
				// A privileged init container.
				k.createPod(k.ns, "init-priv", func(s *corev1.PodSpec) {
					s.InitContainers = []corev1.Container{{Name: "init", Image: "registry.k8s.io/pause:3.10", SecurityContext: priv}}
				})
				// A Deployment patched, and another updated, to privileged.
				k.deployment("patched", nil)
				_, err := k.cs.AppsV1().Deployments(k.ns).Patch(ctx, "patched", types.StrategicMergePatchType,
					[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","securityContext":{"privileged":true}}]}}}}`), metav1.PatchOptions{})
				k.must(err)
				k.deployment("updated", nil)
				// The deployment controller writes the object too: update the
				// latest version.
				k.must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
					d, err := k.cs.AppsV1().Deployments(k.ns).Get(ctx, "updated", metav1.GetOptions{})
					if err != nil {
						return err
					}
					d.Spec.Template.Spec.Containers[0].SecurityContext = priv
					_, err = k.cs.AppsV1().Deployments(k.ns).Update(ctx, d, metav1.UpdateOptions{})
					return err
				}))
				// A CronJob's pod template.
				_, err = k.cs.BatchV1().CronJobs(k.ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "cron"},
					Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
						Template: corev1.PodTemplateSpec{Spec: func() corev1.PodSpec {
							s := podSpec("registry.k8s.io/pause:3.10")
							s.RestartPolicy = corev1.RestartPolicyNever
							s.Containers[0].SecurityContext = priv
							return s
						}()}}}}}, metav1.CreateOptions{})
				k.must(err)
			},
			neg: func(k *kit) {
				k.createPod(k.ns, "suspect", func(s *corev1.PodSpec) {
					s.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(false)}
				})
				// A plain Deployment, patched and updated without touching privilege.
				k.deployment("plain", nil)
				_, err := k.cs.AppsV1().Deployments(k.ns).Patch(ctx, "plain", types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"web"}}}`), metav1.PatchOptions{})
				k.must(err)
				_, err = k.cs.AppsV1().Deployments(k.ns).Patch(ctx, "plain", types.StrategicMergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
				k.must(err)
			},
			check: func(t *testing.T, alerts []*alert.Alert) {
				got := map[string]bool{}
				for _, a := range alerts {
					got[fmt.Sprint(a.Fields["Workload"], "/", a.Fields["ContainerName"], "/", a.Fields["Verb"])] = true
				}
				want := map[string]bool{"deployments/priv/app/create": true, "pods/ubuntu-priv/app/create": true, "pods/init-priv/init/create": true,
					"deployments/patched/app/patch": true, "deployments/updated/app/update": true, "cronjobs/cron/app/create": true}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("privileged alerts (-want +got):\n%s", d)
				}
			}},
		{rule: "k8s-hostpid", pos: workload(func(s *corev1.PodSpec) { s.HostPID = true }), neg: plain},
		{rule: "k8s-hostnetwork", pos: workload(func(s *corev1.PodSpec) { s.HostNetwork = true }), neg: plain},
		{rule: "k8s-hostipc", pos: workload(func(s *corev1.PodSpec) { s.HostIPC = true }), neg: plain},
		{rule: "k8s-sensitive-hostpath",
			pos: workload(func(s *corev1.PodSpec) { s.Volumes = []corev1.Volume{hostPath("sock", "/var/run/docker.sock")} }),
			neg: workload(func(s *corev1.PodSpec) { s.Volumes = []corev1.Volume{hostPath("cache", "/data/app-cache")} })},
		{rule: "k8s-dangerous-capabilities",
			pos: workload(func(s *corev1.PodSpec) { s.Containers[0].SecurityContext = caps("SYS_ADMIN") }),
			neg: workload(func(s *corev1.PodSpec) { s.Containers[0].SecurityContext = caps("NET_BIND_SERVICE") })},
		{rule: "k8s-cluster-admin-binding",
			pos: func(k *kit) { k.clusterRoleBinding("cluster-admin") },
			neg: func(k *kit) { k.clusterRoleBinding("view") }},
		{rule: "k8s-wildcard-clusterrole",
			pos: func(k *kit) { k.clusterRole([]string{"*"}) },
			neg: func(k *kit) { k.clusterRole([]string{"get", "list"}) }},
		{rule: "k8s-system-namespace-workload",
			pos: func(k *kit) {
				name := "sneaky-" + utilrand.String(5)
				k.createPod("kube-system", name, nil)
				k.t.Cleanup(func() { _ = k.env.Client.CoreV1().Pods("kube-system").Delete(ctx, name, metav1.DeleteOptions{}) })
			},
			neg: plain},
		{rule: "k8s-serviceaccount-token-request",
			pos: func(k *kit) {
				k.serviceAccount("robot")
				_, err := k.cs.CoreV1().ServiceAccounts(k.ns).CreateToken(ctx, "robot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
				k.must(err)
			},
			neg: func(k *kit) { k.serviceAccount("robot") }},
		{rule: "k8s-secrets-listed-cluster-wide",
			pos: func(k *kit) { _, err := k.cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); k.must(err) },
			neg: func(k *kit) { _, err := k.cs.CoreV1().Secrets(k.ns).List(ctx, metav1.ListOptions{}); k.must(err) }},
		{rule: "k8s-secret-read-outside-namespace",
			pos: func(k *kit) {
				other := k.env.Namespace(k.t)
				k.secret(other)
				_, err := k.secretReader().CoreV1().Secrets(other).Get(ctx, "creds", metav1.GetOptions{})
				k.must(err)
			},
			neg: func(k *kit) {
				k.secret(k.ns)
				_, err := k.secretReader().CoreV1().Secrets(k.ns).Get(ctx, "creds", metav1.GetOptions{})
				k.must(err)
			}},
		{rule: "k8s-anonymous-request-allowed",
			pos: func(k *kit) {
				k.grantAnonymous()
				_, err := k.anonymous().CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
				k.must(err)
			},
			neg: func(k *kit) {
				_, err := k.anonymous().Discovery().ServerVersion()
				k.must(err)
			}},
		{rule: "k8s-anonymous-request-denied",
			pos: func(k *kit) {
				_, err := k.anonymous().CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
				if !apierrors.IsForbidden(err) {
					k.t.Fatalf("anonymous list: %v, want forbidden", err)
				}
			},
			neg: func(k *kit) {
				_, err := k.clientFor(k.env.ConfigFor(testenv.NobodyToken)).CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
				if !apierrors.IsForbidden(err) {
					k.t.Fatalf("nobody list: %v, want forbidden", err)
				}
			}},
		{rule: "k8s-ephemeral-container",
			pos: func(k *kit) {
				k.runningPod("target")
				pod, err := k.cs.CoreV1().Pods(k.ns).Get(ctx, "target", metav1.GetOptions{})
				k.must(err)
				pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
					EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox:1.36", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}})
				_, err = k.cs.CoreV1().Pods(k.ns).UpdateEphemeralContainers(ctx, "target", pod, metav1.UpdateOptions{})
				k.must(err)
			},
			neg: func(k *kit) {
				k.runningPod("target")
				_, err := k.cs.CoreV1().Pods(k.ns).Patch(ctx, "target", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
				k.must(err)
			}},
		{rule: "k8s-port-forward",
			pos: func(k *kit) { k.runningPod("target"); k.must(k.portForward()) },
			neg: func(k *kit) { k.runningPod("target"); k.logs() }},
		{rule: "k8s-node-proxy",
			pos: func(k *kit) {
				_ = k.cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + k.env.Node + "/proxy/healthz").Do(ctx).Error()
			},
			neg: func(k *kit) { _, err := k.cs.CoreV1().Nodes().Get(ctx, k.env.Node, metav1.GetOptions{}); k.must(err) }},
		{rule: "k8s-untrusted-registry",
			pos: workload(func(s *corev1.PodSpec) { s.Containers[0].Image = "evil.example.com/miner:1.0" }),
			// Near miss: an official Docker Hub image, allowed by default.
			neg: workload(func(s *corev1.PodSpec) { s.Containers[0].Image = "nginx:1.25" })},
		{rule: "k8s-image-latest-or-untagged",
			pos: workload(func(s *corev1.PodSpec) {
				s.Containers[0].Image = "nginx:latest"
				s.Containers = append(s.Containers, corev1.Container{Name: "side", Image: "busybox"})
			}),
			neg: workload(func(s *corev1.PodSpec) { s.Containers[0].Image = "nginx:1.27" }),
			check: func(t *testing.T, alerts []*alert.Alert) {
				// One alert per audit event, as Defender's detections raise.
				if len(alerts) != 1 || alerts[0].Fields["Image"] != "nginx:latest" {
					t.Errorf("want one alert naming nginx:latest, got %d", len(alerts))
				}
			}},
		{rule: "k8s-exposed-service",
			pos: func(k *kit) { k.service(corev1.ServiceTypeNodePort) },
			neg: func(k *kit) { k.service(corev1.ServiceTypeClusterIP) }},
		{rule: "k8s-admission-webhook-changed",
			pos: func(k *kit) {
				name := k.ns + "-wh"
				_, err := k.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				k.must(err)
				k.must(k.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{}))
			},
			neg: func(k *kit) { k.configMap() }},
		{rule: "k8s-csr-approved",
			pos: func(k *kit) {
				csr := k.csr()
				csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test", Message: "approved by test"})
				_, err := k.cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
				k.must(err)
			},
			neg: func(k *kit) { k.csr() }},
		{rule: "k8s-impersonation",
			pos: func(k *kit) {
				c := rest.CopyConfig(k.env.Config)
				c.Impersonate = rest.ImpersonationConfig{UserName: "alice"}
				_, _ = k.clientFor(c).CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
			},
			neg: func(k *kit) { _, err := k.cs.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{}); k.must(err) }},
		{rule: "k8s-rbac-or-policy-deleted",
			pos: func(k *kit) {
				_, err := k.cs.RbacV1().Roles(k.ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r"}}, metav1.CreateOptions{})
				k.must(err)
				k.must(k.cs.RbacV1().Roles(k.ns).Delete(ctx, "r", metav1.DeleteOptions{}))
			},
			neg: func(k *kit) {
				k.configMap()
				k.must(k.cs.CoreV1().ConfigMaps(k.ns).Delete(ctx, "cm", metav1.DeleteOptions{}))
			}},
		{rule: "k8s-events-deleted",
			pos: func(k *kit) { k.event(); k.must(k.cs.CoreV1().Events(k.ns).Delete(ctx, "ev", metav1.DeleteOptions{})) },
			neg: func(k *kit) { k.event() }},
		{rule: "k8s-failed-authorization-burst",
			pos: func(k *kit) { k.forbidden(12) },
			neg: func(k *kit) { k.forbidden(3) }},
	}, moreRuleCases()...)
}

func hostPath(name, path string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path}}}
}

func caps(add ...corev1.Capability) *corev1.SecurityContext {
	return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: add}}
}

func (k *kit) attach() error {
	req := k.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(k.ns).Name("target").SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{Container: "app", Stdout: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(k.cfg, "POST", req.URL())
	if err != nil {
		return err
	}
	c, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var out strings.Builder
	err = ex.StreamWithContext(c, remotecommand.StreamOptions{Stdout: &out})
	if err != nil && c.Err() == nil {
		return err
	}
	return nil
}

func (k *kit) portForward() error {
	rt, upgrader, err := spdy.RoundTripperFor(k.cfg)
	if err != nil {
		return err
	}
	u := k.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(k.ns).Name("target").SubResource("portforward").URL()
	d := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", u)
	conn, _, err := d.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (k *kit) clusterRoleBinding(role string) {
	name := k.ns + "-binding"
	_, err := k.cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "mallory"}},
	}, metav1.CreateOptions{})
	k.must(err)
	k.t.Cleanup(func() { _ = k.env.Client.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{}) })
}

func (k *kit) clusterRole(verbs []string) {
	name := k.ns + "-role"
	_, err := k.cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: verbs}},
	}, metav1.CreateOptions{})
	k.must(err)
	k.t.Cleanup(func() { _ = k.env.Client.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{}) })
}

func (k *kit) serviceAccount(name string) {
	_, err := k.cs.CoreV1().ServiceAccounts(k.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	k.must(err)
}

func (k *kit) secret(ns string) {
	_, err := k.env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{})
	k.must(err)
}

// secretReader is a ServiceAccount in the kit's namespace that may read
// secrets everywhere.
func (k *kit) secretReader() kubernetes.Interface {
	_, err := k.env.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "kdfir-test-secret-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		k.t.Fatal(err)
	}
	u, err := k.env.NewUser(ctx, k.ns, "thief", "kdfir-test-secret-reader")
	k.must(err)
	return k.clientFor(u.Config)
}

func (k *kit) anonymous() kubernetes.Interface {
	return k.clientFor(&rest.Config{Host: k.env.Server, TLSClientConfig: rest.TLSClientConfig{CAData: k.env.CAPEM()}})
}

func (k *kit) grantAnonymous() {
	_, err := k.env.Client.RbacV1().Roles(k.ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "anon"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}}, metav1.CreateOptions{})
	k.must(err)
	_, err = k.env.Client.RbacV1().RoleBindings(k.ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "anon"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "anon"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "system:anonymous"}}}, metav1.CreateOptions{})
	k.must(err)
	// RBAC changes take effect through an informer; wait until they do.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := kubernetes.NewForConfigOrDie(&rest.Config{Host: k.env.Server, TLSClientConfig: rest.TLSClientConfig{CAData: k.env.CAPEM()}}).CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{}); err == nil || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (k *kit) service(typ corev1.ServiceType) {
	_, err := k.cs.CoreV1().Services(k.ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Type: typ, Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	k.must(err)
}

func (k *kit) configMap() {
	_, err := k.cs.CoreV1().ConfigMaps(k.ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{})
	k.must(err)
}

func (k *kit) event() {
	_, err := k.cs.CoreV1().Events(k.ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "ev"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: k.ns, Name: "x"}, Reason: "Test", Message: "m", Type: "Normal"}, metav1.CreateOptions{})
	k.must(err)
}

func (k *kit) csr() *certificatesv1.CertificateSigningRequest {
	return k.csrWith(k.ns+"-csr", "kubernetes.io/kube-apiserver-client")
}

// csrWith creates a client certificate request for the signer.
func (k *kit) csrWith(name, signer string) *certificatesv1.CertificateSigningRequest {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k.must(err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "mallory", Organization: []string{"developers"}}}, key)
	k.must(err)
	csr, err := k.cs.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: signer, Usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth}},
	}, metav1.CreateOptions{})
	k.must(err)
	k.t.Cleanup(func() {
		_ = k.env.Client.CertificatesV1().CertificateSigningRequests().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return csr
}

func (k *kit) forbidden(n int) {
	cs := k.clientFor(k.env.ConfigFor(testenv.NobodyToken))
	for range n {
		if _, err := cs.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			k.t.Fatalf("nobody list pods: %v, want forbidden", err)
		}
	}
}

// TestBuiltinRules does, for every rule of the built-in pack, the thing
// it detects and a harmless near miss, against the real API server, and
// checks the rule fires on the first and not on the second.
func TestBuiltinRules(t *testing.T) {
	env := testenv.Get(t)
	rules, err := Builtin(nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Rule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	covered := map[string]bool{}
	for _, c := range ruleCases() {
		covered[c.rule] = true
		t.Run(c.rule, func(t *testing.T) {
			t.Parallel()
			r := byID[c.rule]
			if r == nil {
				t.Fatalf("no rule %s in the pack", c.rule)
			}
			var posEvents, negEvents []audit.Event
			if c.fixtures != nil {
				posEvents = fixtureEvents(t, filepath.Join(sharedData, c.fixtures[0]))
				negEvents = fixtureEvents(t, filepath.Join(sharedData, c.fixtures[1]))
			} else {
				pos := newKit(t, env)
				c.pos(pos)
				neg := newKit(t, env)
				c.neg(neg)
				posEvents, negEvents = pos.events(), neg.events()
			}
			posAlerts := evaluate(t, r, posEvents)
			if len(posAlerts) == 0 {
				t.Fatalf("rule did not fire on the positive case (%d events)", len(posEvents))
			}
			for _, a := range posAlerts {
				if a.Rule != r.ID || severityRank[a.Severity] < severityRank[r.Severity] || len(a.ReportIDs) != 1 || a.Time.IsZero() || len(a.Entities) == 0 {
					t.Errorf("alert lacks rule, severity, report id, time or entities: %+v", a)
				}
			}
			if c.check != nil {
				c.check(t, posAlerts)
			}
			if len(negEvents) == 0 {
				t.Fatal("negative case made no audit events")
			}
			if negAlerts := evaluate(t, r, negEvents); len(negAlerts) != 0 {
				t.Fatalf("rule fired on the negative case: %s", negAlerts[0].Title)
			}
		})
	}
	for _, r := range rules {
		if !covered[r.ID] {
			t.Errorf("rule %s has no positive/negative test", r.ID)
		}
	}
}

// TestQuietOnOrdinaryWork: a session of ordinary admin work (a Deployment
// of nginx:1.25 in namespace shop, its Service, a ConfigMap, scaling,
// reading pods and logs) raises no alert from the enabled built-in rules,
// counting the events of the controllers that roll the Deployment out.
func TestQuietOnOrdinaryWork(t *testing.T) {
	env := testenv.Get(t)
	k := newKit(t, env)
	k.deployment("web", func(s *corev1.PodSpec) { s.Containers[0].Image = "nginx:1.25" })
	_, err := k.cs.CoreV1().Services(k.ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	k.must(err)
	k.configMap()
	_, err = k.cs.AppsV1().Deployments(k.ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
	k.must(err)
	_, err = k.cs.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
	k.must(err)
	// Wait for the controllers to create the pods, so their events count.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pods, err := env.Client.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
		k.must(err)
		if len(pods.Items) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	raw, err := env.AuditEvents()
	k.must(err)
	var evs []audit.Event
	for _, ev := range raw {
		e, err := audit.ParseEvent(ev.Raw)
		k.must(err)
		// The session's requests and the controllers'; not the harness's
		// own setup of the namespace (its default ServiceAccount, which
		// a controller creates in a real cluster).
		if e.ObjectRef.Namespace == k.ns && (e.UserAgent == k.ua || strings.HasPrefix(e.User.Username, "system:")) {
			evs = append(evs, e)
		}
	}
	if len(evs) < 8 {
		t.Fatalf("only %d audit events in the namespace", len(evs))
	}
	rules, err := Builtin(nil)
	k.must(err)
	for _, r := range rules {
		if r.Disabled {
			continue
		}
		for _, a := range evaluate(t, r, evs) {
			t.Errorf("%s alerted on ordinary work: %s", r.ID, a.Title)
		}
	}
}

func evaluate(t *testing.T, r *Rule, events []audit.Event) []*alert.Alert {
	t.Helper()
	e := &Engine{}
	alerts, err := e.Evaluate(ctx, r, audit.NewBatchSource(events))
	if err != nil {
		t.Fatal(err)
	}
	return alerts
}
