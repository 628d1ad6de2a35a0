package respond_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kdfir/kdfir/internal/respond"
)

// --detach takes the pod out of its Service and its ReplicaSet: the
// ReplicaSet starts a replacement, the quarantined pod keeps running for
// forensics, and the release puts its labels back.
func TestDetachLetsControllerReplacePod(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := newFixture(t)
	env := f.env
	ns := env.Namespace(t)
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "front"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
			},
		},
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := func(sel string) []corev1.Pod {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		var out []corev1.Pod
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				out = append(out, p)
			}
		}
		return out
	}
	eventually(t, time.Minute, "the deployment's pod runs", func() (bool, error) { return len(running("app=web")) == 1, nil })
	before := running("app=web")[0]

	res := f.run(t, respond.Request{Action: "isolate-pod", Target: target(ns, before.Name), Params: respond.IsolatePodParams{Detach: true}})
	if res.Status != respond.StatusSucceeded {
		t.Fatalf("isolate --detach = %+v", res)
	}
	var details []string
	for _, c := range res.Changes {
		details = append(details, c.Detail)
	}
	want := []string{
		"label app=web removed",
		"label kdfir.io/quarantine=true added",
		"label pod-template-hash=" + before.Labels["pod-template-hash"] + " removed",
		"annotation kdfir.io/action-id=" + res.ID + " added",
		"deny all ingress and egress of pods labelled kdfir.io/quarantine=true",
	}
	if diff := cmp.Diff(want, details); diff != "" {
		t.Fatalf("changes (-want +got):\n%s", diff)
	}

	eventually(t, time.Minute, "a replacement pod runs", func() (bool, error) {
		pods := running("app=web")
		return len(pods) == 1 && pods[0].Name != before.Name, nil
	})
	quarantined := getPod(t, env, ns, before.Name)
	if quarantined.Status.Phase != corev1.PodRunning || quarantined.DeletionTimestamp != nil {
		t.Fatalf("quarantined pod: phase %s, deleting %v", quarantined.Status.Phase, quarantined.DeletionTimestamp != nil)
	}
	if quarantined.Labels["tier"] != "front" {
		t.Fatalf("detach removed a label no selector uses: %v", quarantined.Labels)
	}
	if ref := metav1.GetControllerOf(quarantined); ref != nil {
		t.Logf("the ReplicaSet has not released the pod yet (owner %s)", ref.Name)
	}

	// Once its labels are back the ReplicaSet owns two pods for one
	// replica and may delete either, so the pod is watched across the
	// release and its first state without the quarantine label checked,
	// rather than read afterwards.
	w, err := env.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{
		FieldSelector:   "metadata.name=" + before.Name,
		ResourceVersion: quarantined.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	rel, err := f.runner.Release(ctx, "isolate-pod", target(ns, before.Name), false)
	if err != nil || rel.Status != respond.StatusReverted {
		t.Fatalf("release = %+v, %v", rel, err)
	}
	var after *corev1.Pod
	for after == nil {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch on the released pod ended before its labels came back")
			}
			if p, isPod := ev.Object.(*corev1.Pod); isPod && p.Labels["kdfir.io/quarantine"] == "" {
				after = p
			}
		case <-ctx.Done():
			t.Fatal("the released pod never lost its quarantine label")
		}
	}
	if !maps.Equal(before.Labels, after.Labels) || !maps.Equal(before.Annotations, after.Annotations) {
		t.Fatalf("after release: labels %v annotations %v; want %v %v", after.Labels, after.Annotations, before.Labels, before.Annotations)
	}
}
