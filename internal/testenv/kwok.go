package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
)

// kwok's per-pod Exec and Logs objects. The harness creates them through
// the API server, and kwok (started with --enable-crds) picks them up.
var (
	execsGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "execs"}
	logsGVR  = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "logs"}

	attachesGVR     = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "attaches"}
	portForwardsGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}
	crdGVR          = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// shims stand in for a container's userland: kwok runs exec'd commands on
// the host, in the pod's directory, with this directory first on PATH. Each
// shim resolves absolute paths inside the pod's directory, so
// `cat /root/.bash_history` reads PODDIR/root/.bash_history and never a
// host file.
var shims = map[string]string{
	"cat": `#!/bin/sh
for a do
  shift
  case "$a" in /*) a="$PWD$a" ;; esac
  set -- "$@" "$a"
done
exec /bin/cat "$@"
`,
	"ls": `#!/bin/sh
for a do
  shift
  case "$a" in /*) a="$PWD$a" ;; esac
  set -- "$@" "$a"
done
exec /bin/ls "$@"
`,
	// id prints the container user from PODDIR/.user (default root).
	"id": `#!/bin/sh
u=root; uid=0
[ -f "$PWD/.user" ] && u=$(/bin/cat "$PWD/.user")
[ -f "$PWD/.uid" ] && uid=$(/bin/cat "$PWD/.uid")
case "$1" in
  -un|-nu) echo "$u" ;;
  -u) echo "$uid" ;;
  *) echo "uid=$uid($u) gid=$uid($u) groups=$uid($u)" ;;
esac
`,
	// getent passwd [KEY] reads PODDIR/etc/passwd.
	"getent": `#!/bin/sh
[ "$1" = passwd ] || exit 2
f="$PWD/etc/passwd"
[ -f "$f" ] || exit 2
if [ -z "$2" ]; then exec /bin/cat "$f"; fi
/usr/bin/awk -F: -v k="$2" '$1==k || $3==k {print; found=1} END {exit !found}' "$f"
`,
}

// startKwok runs kwok. The API server reaches "the kubelet" of a kwok node
// at the node's InternalIP and port, so kwok serves on that same port.
func (e *Env) startKwok(ctx context.Context, bin string, port int, crt, key string) error {
	if err := e.installKwokCRDs(ctx); err != nil {
		return err
	}
	shimDir := filepath.Join(e.Dir, "shims")
	if err := os.MkdirAll(shimDir, 0o755); err != nil {
		return err
	}
	for name, body := range shims {
		if err := os.WriteFile(filepath.Join(shimDir, name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	cfg := filepath.Join(e.Dir, "kwok.yaml")
	if err := writeFile(cfg, "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"); err != nil {
		return err
	}
	env := append(os.Environ(), "PATH="+shimDir+":/usr/local/bin:/usr/bin:/bin")
	p, err := startProcess(e.Dir, "kwok", env, bin,
		"--kubeconfig", e.Kubeconfig, "-c", cfg,
		"--manage-all-nodes",
		"--enable-crds", "Exec,Logs,Attach,PortForward",
		"--server-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--node-ip", "127.0.0.1", "--node-port", fmt.Sprint(port),
		"--tls-cert-file", crt, "--tls-private-key-file", key)
	if err != nil {
		return err
	}
	e.procs = append(e.procs, p)

	e.Node = "kwok-node-0"
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        e.Node,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": e.Node, "kubernetes.io/os": "linux"},
		},
	}
	if _, err := e.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node: %w", err)
	}
	return e.WaitNodeReady(ctx, e.Node)
}

// WaitNodeReady waits until kwok reports the node Ready and, when the
// controller manager runs, the not-ready taint is gone.
func (e *Env) WaitNodeReady(ctx context.Context, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, p := range e.procs {
			if p.exited() {
				return false, fmt.Errorf("%s exited", p.name)
			}
		}
		n, err := e.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		for _, t := range n.Spec.Taints {
			if t.Key == "node.kubernetes.io/not-ready" && e.hasControllers() {
				return false, nil
			}
		}
		return ready, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not ready: %w", name, err)
	}
	return nil
}

func (e *Env) hasControllers() bool {
	for _, p := range e.procs {
		if p.name == "kube-controller-manager" {
			return true
		}
	}
	return false
}

func (e *Env) installKwokCRDs(ctx context.Context) error {
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	for _, kind := range []struct{ kind, plural string }{{"Exec", "execs"}, {"Logs", "logs"}, {"Attach", "attaches"}, {"PortForward", "portforwards"}} {
		crd := kwokCRD(kind.kind, kind.plural)
		if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("install kwok CRD %s: %w", kind.plural, err)
		}
	}
	// Wait until the API server serves them.
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, gvr := range []schema.GroupVersionResource{execsGVR, logsGVR, attachesGVR, portForwardsGVR} {
			if _, err := dyn.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{}); err != nil {
				return false, nil
			}
		}
		return true, nil
	})
}
