package evidence_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/testenv"
)

// TestHistoryOfContainerUser finds a non-root user's home through getent
// and reads that user's history as well as root's; a container with no
// history at all is a failed item, and the collection goes on.
func TestHistoryOfContainerUser(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx := ctxFor(t, 2*time.Minute)
	_, err := env.RunPod(ctx, testenv.PodSpec{
		Namespace: ns, Name: "alice", User: "alice",
		Files: map[string]string{
			"/etc/passwd":               "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\n",
			"/home/alice/.bash_history": aliceHistory,
			"/home/alice/.zsh_history":  ": 1700000000:0;sudo -i\n",
			"/root/.bash_history":       plantedHistory,
		},
		Logs: []string{"hello"},
		Mutate: func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}
		},
	})
	must(t, err)
	_, err = env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "clean", Logs: []string{"hello"}})
	must(t, err)

	c := newCollector(t, env, newKey(t))
	dest := t.TempDir()
	sink, err := evidence.OpenDest(dest)
	must(t, err)

	res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindPod, Namespace: ns, Name: "alice"})
	must(t, err)
	dir := filepath.Join(dest, filepath.FromSlash(res.Prefix), "pods", "alice", "history", "app")
	for file, want := range map[string]string{
		"home/alice/.bash_history": aliceHistory,
		"home/alice/.zsh_history":  ": 1700000000:0;sudo -i\n",
		"root/.bash_history":       plantedHistory,
	} {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", file, got, err, want)
		}
	}
	var u struct {
		RunAsUser       *int64
		User, UID, Home string
		HomeSource      string
		Found, Absent   []string
	}
	b, err := os.ReadFile(filepath.Join(dir, "user.json"))
	must(t, err)
	must(t, json.Unmarshal(b, &u))
	if u.User != "alice" || u.UID != "1000" || u.Home != "/home/alice" || u.HomeSource != "getent passwd" || u.RunAsUser == nil || *u.RunAsUser != 1000 ||
		!slices.Equal(u.Found, []string{"/home/alice/.bash_history", "/home/alice/.zsh_history", "/root/.bash_history"}) {
		t.Errorf("user.json %s", b)
	}
	if len(res.Failed) != 0 {
		t.Errorf("failed: %+v", res.Failed)
	}

	res, err = c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindPod, Namespace: ns, Name: "clean"})
	must(t, err)
	if len(res.Failed) != 1 || res.Failed[0].Path != "pods/clean/history/app" || !strings.Contains(res.Failed[0].Error, "no shell history") {
		t.Fatalf("failed = %+v, want one failed history item", res.Failed)
	}
	m := readManifest(t, filepath.Join(dest, filepath.FromSlash(res.Prefix)))
	if _, ok := artifact(m, "pods/clean/logs/app.log"); !ok {
		t.Error("the collection stopped at the missing history")
	}
}

// TestExecForbidden collects as a user who may read everything but not
// exec: the histories are failed items, everything else is collected, and
// the set verifies.
func TestExecForbidden(t *testing.T) {
	env := testenv.Get(t)
	f := newFixture(t, env)
	ctx := ctxFor(t, 2*time.Minute)
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-collector-noexec"},
		// Not "*" resources: that includes pods/exec, which a WebSocket
		// exec reaches with the verb get.
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "pods/log", "services", "serviceaccounts", "events", "nodes", "namespaces"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{"create"}},
		},
	}
	_, err := env.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() {
		_ = env.Client.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
	user, err := env.NewUser(ctx, f.ns, "responder", role.Name)
	must(t, err)
	t.Cleanup(func() {
		_ = env.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), f.ns+"-responder-"+role.Name, metav1.DeleteOptions{})
	})
	cs, err := kubernetes.NewForConfig(user.Config)
	must(t, err)
	key := newKey(t)
	c, err := evidence.New(cs, user.Config, evidence.Options{Cluster: "testenv", SigningKey: key})
	must(t, err)

	dest := t.TempDir()
	sink, err := evidence.OpenDest(dest)
	must(t, err)
	res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindPod, Namespace: f.ns, Name: f.pod.Name})
	must(t, err)
	if len(res.Failed) != 1 || res.Failed[0].Path != "pods/web-7f9/history/app" || !strings.Contains(res.Failed[0].Error, "forbidden") {
		t.Fatalf("failed = %+v, want the history, forbidden", res.Failed)
	}
	dir := filepath.Join(dest, filepath.FromSlash(res.Prefix))
	m := readManifest(t, dir)
	if m.Collector.User != user.Name {
		t.Errorf("collector %q, want %q", m.Collector.User, user.Name)
	}
	for _, p := range []string{"pods/web-7f9/pod.yaml", "pods/web-7f9/logs/app.log", "objects/deployments.apps/" + f.ns + "/web.yaml"} {
		if a, ok := artifact(m, p); !ok || a.Error != "" {
			t.Errorf("%s not collected: %+v", p, a)
		}
	}
	if rep := verifyDir(t, dir, key.Public().(ed25519.PublicKey)); !rep.OK() || rep.Failed != 1 {
		t.Errorf("verify: %+v", rep)
	}
}
