package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
)

// PodSpec describes a pod whose container filesystem and logs the test
// controls.
type PodSpec struct {
	Namespace string
	Name      string
	Labels    map[string]string
	// Containers are the container names (default: one named "app").
	Containers []string
	// Image for every container (default: "registry.k8s.io/pause:3.10").
	Image string
	// Files are planted in the pod's filesystem, keyed by absolute path
	// inside the container, e.g. "/root/.bash_history". Commands exec'd in
	// the pod see them at that path (see shims in kwok.go).
	Files map[string]string
	// User is what `id -un` prints in the pod (default "root").
	User string
	// Logs are the pod's log lines, served for every container.
	Logs []string
	// LogsFile, if set, is a file in the CRI log format (see CRILog) served
	// as the pod's logs instead of Logs, for logs too large to hold in
	// memory.
	LogsFile string
	// PreviousLogs are served as the logs of the previous instance of
	// every container (pods/log?previous=true).
	PreviousLogs []string
	// Mutate may change the pod before it is created (security context,
	// owner references, volumes, ...).
	Mutate func(*corev1.Pod)
}

// PodDir is the directory that plays the pod's container root.
func (e *Env) PodDir(namespace, name string) string {
	return filepath.Join(e.podsDir, namespace, name)
}

// RunPod plants the pod's filesystem and logs, registers them with kwok,
// creates the pod on the kwok node and waits until it is Running.
func (e *Env) RunPod(ctx context.Context, spec PodSpec) (*corev1.Pod, error) {
	if len(spec.Containers) == 0 {
		spec.Containers = []string{"app"}
	}
	if spec.Image == "" {
		spec.Image = "registry.k8s.io/pause:3.10"
	}
	root := e.PodDir(spec.Namespace, spec.Name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	for p, content := range spec.Files {
		full := filepath.Join(root, filepath.Clean("/"+p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if spec.User != "" {
		if err := os.WriteFile(filepath.Join(root, ".user"), []byte(spec.User), 0o644); err != nil {
			return nil, err
		}
	}
	logPath := spec.LogsFile
	if logPath == "" {
		logPath = filepath.Join(root, ".kwok-container.log")
		if err := os.WriteFile(logPath, []byte(CRILog(time.Now().Add(-time.Minute), spec.Logs...)), 0o644); err != nil {
			return nil, err
		}
	}
	prevPath := ""
	if len(spec.PreviousLogs) > 0 {
		prevPath = filepath.Join(root, ".kwok-container.previous.log")
		if err := os.WriteFile(prevPath, []byte(CRILog(time.Now().Add(-time.Hour), spec.PreviousLogs...)), 0o644); err != nil {
			return nil, err
		}
	}
	if err := e.registerKwokPod(ctx, spec, root, logPath, prevPath); err != nil {
		return nil, err
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: spec.Namespace, Labels: spec.Labels},
		Spec: corev1.PodSpec{
			NodeName: e.Node,
			Tolerations: []corev1.Toleration{{
				Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
			}},
		},
	}
	for _, c := range spec.Containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: spec.Image})
	}
	if spec.Mutate != nil {
		spec.Mutate(pod)
	}
	created, err := e.Client.CoreV1().Pods(spec.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	return e.WaitPodRunning(ctx, created.Namespace, created.Name)
}

// WaitPodRunning waits until the pod's phase is Running.
func (e *Env) WaitPodRunning(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		phase := "unknown"
		if pod != nil {
			phase = string(pod.Status.Phase)
		}
		return nil, fmt.Errorf("pod %s/%s not Running (phase %s): %w", namespace, name, phase, err)
	}
	return pod, nil
}

func (e *Env) registerKwokPod(ctx context.Context, spec PodSpec, root, logPath, prevPath string) error {
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	containers := make([]any, len(spec.Containers))
	for i, c := range spec.Containers {
		containers[i] = c
	}
	meta := map[string]any{"name": spec.Name, "namespace": spec.Namespace}
	ex := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec", "metadata": meta,
		"spec": map[string]any{"execs": []any{map[string]any{
			"containers": containers,
			"local":      map[string]any{"workDir": root},
		}}},
	}}
	if _, err := dyn.Resource(execsGVR).Namespace(spec.Namespace).Create(ctx, ex, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register kwok exec: %w", err)
	}
	logs := map[string]any{
		"containers": containers,
		"logsFile":   logPath,
		"follow":     false,
	}
	if prevPath != "" {
		logs["previousLogsFile"] = prevPath
	}
	lg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs", "metadata": meta,
		"spec": map[string]any{"logs": []any{logs}},
	}}
	if _, err := dyn.Resource(logsGVR).Namespace(spec.Namespace).Create(ctx, lg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register kwok logs: %w", err)
	}
	// Attach streams the same logs; port-forward echoes what it is sent.
	at := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Attach", "metadata": meta,
		"spec": map[string]any{"attaches": []any{map[string]any{"containers": containers, "logsFile": logPath}}},
	}}
	if _, err := dyn.Resource(attachesGVR).Namespace(spec.Namespace).Create(ctx, at, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register kwok attach: %w", err)
	}
	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward", "metadata": meta,
		"spec": map[string]any{"forwards": []any{map[string]any{"command": []any{"cat"}}}},
	}}
	if _, err := dyn.Resource(portForwardsGVR).Namespace(spec.Namespace).Create(ctx, pf, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register kwok port-forward: %w", err)
	}
	return nil
}

// CRILog formats lines in the CRI log format kwok serves
// ("<RFC3339Nano> stdout F <line>"), one second apart from start.
func CRILog(start time.Time, lines ...string) string {
	var b strings.Builder
	for i, l := range lines {
		ts := start.Add(time.Duration(i) * time.Second).UTC().Format("2006-01-02T15:04:05.000000000Z")
		fmt.Fprintf(&b, "%s stdout F %s\n", ts, l)
	}
	return b.String()
}
