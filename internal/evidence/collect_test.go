package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/testenv"
	"github.com/kdfir/kdfir/internal/version"
)

// TestCollectPod collects a planted pod to a local directory and to
// Azurite, checks every artifact against what the cluster holds, and
// verifies both sets.
func TestCollectPod(t *testing.T) {
	env := testenv.Get(t)
	f := newFixture(t, env)
	key := newKey(t)
	c := newCollector(t, env, key)
	blobs := startAzurite(t)
	sasURL, sig := blobs.sasURL(t, time.Now().Add(time.Hour), allPerms())

	t.Run("local", func(t *testing.T) {
		ctx := ctxFor(t, 2*time.Minute)
		dest := t.TempDir()
		sink, err := evidence.OpenDest(dest)
		must(t, err)
		res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindPod, Namespace: f.ns, Name: f.pod.Name, ActionID: "20261123T070000Z-0000abcd"})
		must(t, err)
		dir := filepath.Join(dest, filepath.FromSlash(res.Prefix))
		if res.Location != dir {
			t.Errorf("location %q, want %q", res.Location, dir)
		}
		wantPrefix := "testenv/" + f.ns + "/web-7f9/"
		if !strings.HasPrefix(res.Prefix, wantPrefix) || !strings.HasSuffix(res.Prefix, "Z-20261123T070000Z-0000abcd") {
			t.Errorf("prefix %q, want %s<UTC timestamp>-<action id>", res.Prefix, wantPrefix)
		}
		m := readManifest(t, dir)
		if len(res.Failed) != 0 {
			t.Fatalf("failed artifacts: %+v\n%s", res.Failed, paths(m))
		}
		read := func(p string) []byte {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if err != nil {
				t.Fatalf("%v\nmanifest:\n%s", err, paths(m))
			}
			return b
		}
		checkPodEvidence(t, env, f, key, m, res, read)
		rep, err := evidence.Verify(ctx, sink.Sub(res.Prefix), key.Public().(ed25519.PublicKey))
		must(t, err)
		if !rep.OK() || !rep.Signed || !rep.Trusted || rep.Checked != len(m.Artifacts) {
			t.Fatalf("verify: %+v", rep)
		}
	})

	t.Run("azurite", func(t *testing.T) {
		ctx := ctxFor(t, 2*time.Minute)
		sink, err := evidence.OpenDest(sasURL)
		must(t, err)
		if strings.Contains(sink.String(), sig) || strings.Contains(sink.String(), "sig=") {
			t.Fatalf("sink %q shows the SAS token", sink)
		}
		res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindPod, Namespace: f.ns, Name: f.pod.Name})
		must(t, err)
		if len(res.Failed) != 0 {
			t.Fatalf("failed artifacts: %+v", res.Failed)
		}
		if want := blobs.az.URL + "/" + blobs.container + "/" + res.Prefix + "/"; res.Location != want {
			t.Errorf("location %q, want %q", res.Location, want)
		}
		read := func(p string) []byte { return blobs.read(t, res.Prefix+"/"+p) }
		var m evidence.Manifest
		must(t, json.Unmarshal(read(evidence.ManifestName), &m))
		checkPodEvidence(t, env, f, key, &m, res, read)

		// Every blob is in the manifest, and nothing else was uploaded.
		var want []string
		for _, a := range m.Artifacts {
			want = append(want, res.Prefix+"/"+a.Path)
		}
		want = append(want, res.Prefix+"/"+evidence.ManifestName, res.Prefix+"/"+evidence.SignatureName)
		slices.Sort(want)
		if diff := cmp.Diff(want, blobs.blobNames(t)); diff != "" {
			t.Errorf("blobs (-want +got):\n%s", diff)
		}

		// verify on the blob prefix, through a URL holding the prefix.
		u := strings.Replace(sasURL, "/"+blobs.container+"?", "/"+blobs.container+"/"+res.Prefix+"?", 1)
		vsink, err := evidence.OpenDest(u)
		must(t, err)
		rep, err := evidence.Verify(ctx, vsink, key.Public().(ed25519.PublicKey))
		must(t, err)
		if !rep.OK() || !rep.Signed || rep.Checked != len(m.Artifacts) {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

// checkPodEvidence compares a collection of the fixture's pod with the
// cluster.
func checkPodEvidence(t *testing.T, env *testenv.Env, f *fixture, key ed25519.PrivateKey, m *evidence.Manifest, res *evidence.Result, read func(string) []byte) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	cs := env.Client
	pd := "pods/web-7f9/"

	// The manifest: who, what, where, and a hash per artifact.
	if m.Schema != evidence.Schema || m.ActionID != res.ActionID || m.Action != "collect-pod" || m.Prefix != res.Prefix {
		t.Errorf("manifest header: %+v", m)
	}
	if diff := cmp.Diff(evidence.Target{Kind: "Pod", Namespace: f.ns, Name: f.pod.Name, UID: string(f.pod.UID)}, m.Target); diff != "" {
		t.Errorf("target (-want +got):\n%s", diff)
	}
	if m.Cluster.Name != "testenv" || m.Cluster.Server != env.Server || !strings.HasPrefix(m.Cluster.Version, "v1.") {
		t.Errorf("cluster %+v", m.Cluster)
	}
	host, _ := os.Hostname()
	if m.Collector.User != "kdfir-admin" || m.Collector.Host != host || m.Collector.OSUser == "" {
		t.Errorf("collector %+v", m.Collector)
	}
	if m.Kdfir != version.Get() || m.SigningKey != evidence.Fingerprint(key.Public().(ed25519.PublicKey)) {
		t.Errorf("kdfir %+v, key %s", m.Kdfir, m.SigningKey)
	}
	if m.Started.IsZero() || m.Finished.Before(m.Started) {
		t.Errorf("times %s .. %s", m.Started, m.Finished)
	}
	sig, err := evidenceSig(read(evidence.SignatureName))
	must(t, err)
	manifest := read(evidence.ManifestName)
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), manifest, sig) {
		t.Error("manifest.sig does not verify")
	}
	if sum := sha256.Sum256(manifest); hex.EncodeToString(sum[:]) != res.ManifestSHA256 {
		t.Error("result's manifest SHA-256 differs from manifest.json's")
	}
	for _, a := range m.Artifacts {
		b := read(a.Path)
		sum := sha256.Sum256(b)
		if int64(len(b)) != a.Size || hex.EncodeToString(sum[:]) != a.SHA256 || a.Source == "" || a.Collected.IsZero() {
			t.Errorf("artifact %s: %d bytes %x, manifest %+v", a.Path, len(b), sum, a)
		}
	}

	// The pod manifest is the object the API server holds.
	var pod corev1.Pod
	must(t, yaml.Unmarshal(read(pd+"pod.yaml"), &pod))
	live, err := cs.CoreV1().Pods(f.ns).Get(ctx, f.pod.Name, metav1.GetOptions{})
	must(t, err)
	live.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	if diff := cmp.Diff(live, &pod); diff != "" {
		t.Errorf("pod.yaml (-cluster +evidence):\n%s", diff)
	}
	if a, _ := artifact(m, pd+"pod.yaml"); a.Source != "GET /api/v1/namespaces/"+f.ns+"/pods/web-7f9" {
		t.Errorf("pod.yaml source %q", a.Source)
	}

	// Logs: every container, with timestamps, as pods/log returns them;
	// the previous log only for the container that restarted.
	for _, l := range []struct {
		path, container string
		previous        bool
		lines           []string
	}{
		{pd + "logs/app.log", "app", false, plantedLogs},
		{pd + "logs/setup.log", "setup", false, plantedLogs},
		{pd + "logs/app.previous.log", "app", true, previousLogs},
	} {
		want, err := cs.CoreV1().Pods(f.ns).GetLogs(f.pod.Name, &corev1.PodLogOptions{Container: l.container, Timestamps: true, Previous: l.previous}).DoRaw(ctx)
		must(t, err)
		got := read(l.path)
		if !bytes.Equal(got, want) {
			t.Errorf("%s = %q, want %q", l.path, got, want)
		}
		for _, line := range l.lines {
			if !bytes.Contains(got, []byte("Z "+line+"\n")) {
				t.Errorf("%s lacks the timestamped line %q: %q", l.path, line, got)
			}
		}
		a, _ := artifact(m, l.path)
		if !strings.Contains(a.Source, "/pods/web-7f9/log?") || !strings.Contains(a.Source, "timestamps=true") || a.Container != l.container {
			t.Errorf("%s source %q container %q", l.path, a.Source, a.Container)
		}
	}
	if _, ok := artifact(m, pd+"logs/setup.previous.log"); ok {
		t.Error("previous log collected for a container that never restarted")
	}

	// Shell history: root's, read by exec of cat.
	if got := string(read(pd + "history/app/root/.bash_history")); got != plantedHistory {
		t.Errorf("history = %q, want %q", got, plantedHistory)
	}
	a, _ := artifact(m, pd+"history/app/root/.bash_history")
	if diff := cmp.Diff([]string{"cat", "/root/.bash_history"}, a.Exec); diff != "" || a.Container != "app" {
		t.Errorf("history exec (-want +got):\n%s", diff)
	}
	var u struct {
		User, Home, HomeSource string
		Found, Absent          []string
	}
	must(t, json.Unmarshal(read(pd+"history/app/user.json"), &u))
	if u.User != "root" || u.Home != "/root" || u.HomeSource != "getent passwd" || !slices.Equal(u.Found, []string{"/root/.bash_history"}) || len(u.Absent) != 3 {
		t.Errorf("user.json %+v", u)
	}

	// Owners, Services, NetworkPolicies, ServiceAccount, bindings, node.
	var rs appsv1.ReplicaSet
	must(t, yaml.Unmarshal(read("objects/replicasets.apps/"+f.ns+"/"+f.rs.Name+".yaml"), &rs))
	var dep appsv1.Deployment
	must(t, yaml.Unmarshal(read("objects/deployments.apps/"+f.ns+"/web.yaml"), &dep))
	if rs.UID != f.rs.UID || dep.UID != f.dep.UID || rs.Kind != "ReplicaSet" {
		t.Errorf("owner chain: rs %s %s, deployment %s", rs.Kind, rs.UID, dep.UID)
	}
	var svc corev1.Service
	must(t, yaml.Unmarshal(read("objects/services/"+f.ns+"/web.yaml"), &svc))
	liveSvc, err := cs.CoreV1().Services(f.ns).Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	liveSvc.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
	if diff := cmp.Diff(liveSvc, &svc); diff != "" {
		t.Errorf("service (-cluster +evidence):\n%s", diff)
	}
	var np networkingv1.NetworkPolicy
	must(t, yaml.Unmarshal(read("objects/networkpolicies.networking.k8s.io/"+f.ns+"/web-ingress.yaml"), &np))
	if np.Kind != "NetworkPolicy" || np.Spec.PodSelector.MatchLabels["app"] != "web" {
		t.Errorf("networkpolicy %+v", np)
	}
	var sa corev1.ServiceAccount
	must(t, yaml.Unmarshal(read("objects/serviceaccounts/"+f.ns+"/web-sa.yaml"), &sa))
	var rb rbacv1.RoleBinding
	must(t, yaml.Unmarshal(read("objects/rolebindings.rbac.authorization.k8s.io/"+f.ns+"/web-secrets.yaml"), &rb))
	var crb rbacv1.ClusterRoleBinding
	must(t, yaml.Unmarshal(read("objects/clusterrolebindings.rbac.authorization.k8s.io/"+f.ns+"-web-view.yaml"), &crb))
	var role rbacv1.Role
	must(t, yaml.Unmarshal(read("objects/roles.rbac.authorization.k8s.io/"+f.ns+"/web-role.yaml"), &role))
	if sa.Name != "web-sa" || rb.Name != "web-secrets" || crb.RoleRef.Name != "view" || len(role.Rules) != 1 {
		t.Errorf("service account %q, rolebinding %q, clusterrolebinding %+v, role %+v", sa.Name, rb.Name, crb.RoleRef, role.Rules)
	}
	var node corev1.Node
	must(t, yaml.Unmarshal(read("objects/nodes/"+env.Node+".yaml"), &node))
	if node.Name != env.Node || node.Kind != "Node" {
		t.Errorf("node %s %s", node.Kind, node.Name)
	}
	for _, p := range []string{
		"objects/services/" + f.ns + "/other.yaml",
		"objects/rolebindings.rbac.authorization.k8s.io/" + f.ns + "/someone-else.yaml",
		"objects/serviceaccounts/" + f.ns + "/default.yaml",
	} {
		if _, ok := artifact(m, p); ok {
			t.Errorf("%s collected, but it does not concern the pod", p)
		}
	}

	// describe.txt and events.
	desc := string(read(pd + "describe.txt"))
	for _, want := range []string{"Name:", "web-7f9", "Node:", env.Node, "Status:", "Running", "IP:", live.Status.PodIP,
		"Init Containers:", "setup:", "Restart Count:", "Last State:", "Terminated", "Exit Code:", "139",
		"Conditions:", "Ready", "Volumes:", "Controlled By:", "ReplicaSet/" + f.rs.Name, "SuspiciousExec", "shell spawned in container app"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe.txt lacks %q:\n%s", want, desc)
		}
	}
	var events corev1.EventList
	must(t, yaml.Unmarshal(read(pd+"events.yaml"), &events))
	if len(events.Items) != 1 || events.Items[0].Reason != "SuspiciousExec" {
		t.Errorf("events.yaml: %+v", events.Items)
	}

	// Image references with their digests.
	var images []struct{ Container, Image, ImageID, Digest, Reference string }
	must(t, json.Unmarshal(read(pd+"images.json"), &images))
	if len(images) != 2 || images[0].Container != "app" || images[0].ImageID != appImageIDRef ||
		images[0].Digest != "sha256:"+strings.SplitN(appImageIDRef, "sha256:", 2)[1] || images[0].Reference != appImageIDRef {
		t.Errorf("images.json %+v", images)
	}
}

func evidenceSig(b []byte) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
}
