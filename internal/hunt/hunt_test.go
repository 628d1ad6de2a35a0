package hunt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/utils/ptr"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/store"
	"github.com/kdfir/kdfir/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{NoControllers: true})) }

const (
	aksID    = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod"
	entraOID = "6f1c2b7e-93a4-4c1e-8f0a-2d4b5c6e7f80"
)

// spdyExec execs like kubectl before 1.30 (or with
// KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false): audited with verb create.
func spdyExec(t *testing.T, env *testenv.Env, ns, pod string, argv ...string) string {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "app", Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(env.Config, "POST", req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if err := ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}); err != nil {
		t.Fatalf("spdy exec: %v (%s)", err, errOut.String())
	}
	return out.String()
}

// TestMicrosoftQueriesOnRealAuditLog makes audit events by really doing the
// things the four queries of Microsoft's "Using Defender XDR Portal to hunt
// for Kubernetes security issues" look for, stores them tagged as an AKS
// cluster, and runs the queries verbatim (placeholders filled in).
func TestMicrosoftQueriesOnRealAuditLog(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	start := time.Now().UTC().Add(-time.Minute)

	files := map[string]string{"/etc/shadow": "root:*:19000:0:99999:7:::\n", "/etc/hostname": "ubuntu-1\n"}
	for _, name := range []string{"ubuntu-1", "web-1"} {
		if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: name, Files: files}); err != nil {
			t.Fatal(err)
		}
	}
	// kubectl 1.30+: WebSocket, verb get. Older kubectl: SPDY, verb create.
	if out, _, err := testenv.Exec(ctx, env.Config, ns, "ubuntu-1", "app", "sh", "-c", "cat /etc/shadow"); err != nil || !strings.Contains(out, "root:*") {
		t.Fatalf("websocket exec: %q %v", out, err)
	}
	if out := spdyExec(t, env, ns, "ubuntu-1", "cat", "/etc/hostname"); out != "ubuntu-1\n" {
		t.Fatalf("spdy exec: %q", out)
	}
	spdyExec(t, env, ns, "web-1", "id")

	// An Entra identity, through kubectl, creates a privileged pod.
	_, err := env.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "analyst"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "mallory@contoso.com"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entra := env.EntraConfig("mallory@contoso.com", entraOID)
	entra.UserAgent = "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9"
	ecs := kubernetes.NewForConfigOrDie(entra)
	priv := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ubuntu-priv"}, Spec: corev1.PodSpec{NodeName: env.Node, Containers: []corev1.Container{
		{Name: "shell", Image: "ubuntu:24.04", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}},
		{Name: "sidecar", Image: "busybox:1.36"},
	}}}
	deadline := time.Now().Add(10 * time.Second) // RBAC reaches the authorizer through an informer
	for {
		if _, err = ecs.CoreV1().Pods(ns).Create(ctx, priv, metav1.CreateOptions{}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().UTC().Add(time.Minute)

	// Store the API server's audit log as kdfir ingest would.
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := os.Open(env.AuditLogPath)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Ingest(ctx, f, audit.Options{Cluster: "aks-prod", ClusterResourceID: aksID}, nil)
	f.Close()
	if err != nil || stats.Stored == 0 || stats.Rejected != 0 {
		t.Fatalf("ingest: %+v, %v", stats, err)
	}

	run := func(t *testing.T, q string) *eval.Result {
		t.Helper()
		res, warns, err := Collect(ctx, st, store.SourceOptions{}, q, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range warns {
			t.Logf("warning: %s", w)
		}
		return res
	}
	col := func(res *eval.Result, name string) int {
		for i, c := range res.Columns {
			if c.Name == name {
				return i
			}
		}
		t.Fatalf("no column %s in %v", name, res.Columns)
		return -1
	}

	t.Run("exec into ubuntu pods", func(t *testing.T) {
		res := run(t, microsoftQuery(t, "1-exec-into-ubuntu-pods", nil))
		// Only the SPDY exec (verb create) matches: the WebSocket exec is
		// audited with verb get, which this query misses. Two rows: the
		// ResponseStarted and ResponseComplete stages.
		if len(res.Rows) != 2 {
			t.Fatalf("rows = %d, want the two stages of the SPDY exec: %v", len(res.Rows), res.Rows)
		}
		for _, r := range res.Rows {
			if r[col(res, "ParsedCommand")] != "cat /etc/hostname" || r[col(res, "PodName")] != "ubuntu-1" || r[col(res, "AzureResourceId")] != aksID {
				t.Fatalf("row = %v", r)
			}
		}
	})

	t.Run("built-in exec hunt catches both verbs", func(t *testing.T) {
		b, _ := Find("exec-into-pods")
		q, err := b.Expand(nil)
		if err != nil {
			t.Fatal(err)
		}
		res := run(t, q+"\n| where PodNamespace == \""+ns+"\"")
		got := map[string]string{}
		for _, r := range res.Rows {
			got[r[col(res, "PodName")].(string)+" "+r[col(res, "Verb")].(string)+" "+r[col(res, "Command")].(string)] = ""
		}
		for _, want := range []string{"ubuntu-1 get sh -c cat /etc/shadow", "ubuntu-1 create cat /etc/hostname", "web-1 create id"} {
			if _, ok := got[want]; !ok {
				t.Errorf("exec hunt lacks %q; got %v", want, got)
			}
		}
		if len(res.Rows) != 3 {
			t.Errorf("rows = %d, want one per exec (3)", len(res.Rows))
		}
	})

	t.Run("activity of a managed identity", func(t *testing.T) {
		res := run(t, microsoftQuery(t, "2-managed-identity", map[string]string{"OID": entraOID}))
		if len(res.Rows) == 0 {
			t.Fatal("no events for the Entra object id")
		}
		for _, r := range res.Rows {
			raw := r[col(res, "RawEventData")].(map[string]any)
			if raw["principaloid"] != entraOID {
				t.Fatalf("row principaloid = %v", raw["principaloid"])
			}
		}
	})

	t.Run("creations by kubectl in a time window", func(t *testing.T) {
		res := run(t, microsoftQuery(t, "3-kubectl-creations", map[string]string{"CLUSTER_ID": aksID, "START": start.Format(time.RFC3339), "END": end.Format(time.RFC3339)}))
		if len(res.Rows) == 0 {
			t.Fatal("no kubectl creations")
		}
		for _, r := range res.Rows {
			if !strings.Contains(r[col(res, "UserAgent")].(string), "kubectl") || r[col(res, "OperationName")] != "create" {
				t.Fatalf("row = %v", r)
			}
		}
	})

	t.Run("privileged pod creation", func(t *testing.T) {
		res := run(t, microsoftQuery(t, "4-privileged-pods", nil))
		if len(res.Rows) != 1 {
			t.Fatalf("rows = %d, want the one privileged container: %v", len(res.Rows), res.Rows)
		}
		r := res.Rows[0]
		if r[col(res, "PodName")] != "ubuntu-priv" || r[col(res, "ContainerName")] != "shell" || r[col(res, "Username")] != "mallory@contoso.com" || r[col(res, "DeviceId")] != aksID {
			t.Fatalf("row = %v", r)
		}
	})
}

// microsoftQuery reads one of the four queries of Microsoft's "Using
// Defender XDR Portal to hunt for Kubernetes security issues", verbatim
// but for its placeholders, which vars fill.
func microsoftQuery(tb testing.TB, name string, vars map[string]string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "microsoft", name+".kql"))
	if err != nil {
		tb.Fatal(err)
	}
	q := string(b)
	for k, v := range vars {
		q = strings.ReplaceAll(q, "{{"+k+"}}", v)
	}
	return q
}
