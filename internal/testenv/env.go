// Package testenv runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok, all on
// loopback with free ports. kwok makes nodes Ready, pods Running, and serves
// pods/exec and pods/log through the real API server, so a test can plant a
// pod's "container filesystem" and logs.
//
// A package shares one control plane across its tests:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{})) }
//
//	func TestX(t *testing.T) {
//		env := testenv.Get(t) // skips only when KDFIR_SKIP_CLUSTER=1
//		ns := env.Namespace(t)
//		...
//	}
package testenv

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure the control plane.
type Options struct {
	// AuditWebhookURL, if set, makes the API server also send its audit
	// events to this URL in batch mode (max wait 200ms).
	AuditWebhookURL string
	// AuditWebhookToken is sent as a bearer token to the webhook.
	AuditWebhookToken string
	// AuditWebhookCA is the PEM CA for an https webhook URL.
	AuditWebhookCA []byte
	// AuditWebhookCertDir, when set, receives tls.crt and tls.key: a
	// serving certificate for 127.0.0.1 and localhost from the harness's
	// CA, which the webhook then trusts. The receiver serves with it. (The
	// API server sends its token only over TLS.)
	AuditWebhookCertDir string
	// NoControllers skips kube-controller-manager and kube-scheduler, for
	// packages that do not need Deployments or scheduling.
	NoControllers bool
}

// Env is a running control plane.
type Env struct {
	// Dir holds every file the harness wrote: certificates, kubeconfigs,
	// component logs, the audit log and the pods' planted filesystems.
	Dir string
	// Kubeconfig is the path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	// Config is the admin client configuration; Client its clientset.
	Config *rest.Config
	Client kubernetes.Interface
	// Server is the API server URL.
	Server string
	// AuditLogPath is the API server's audit log (JSON lines).
	AuditLogPath string
	// Node is the name of the kwok node pods run on.
	Node string

	procs    []*process
	proxyCrt string
	proxyKey string
	podsDir  string
	caPEM    []byte
	adminTok string
}

const (
	adminToken      = "kdfir-testenv-admin-token"
	controllerToken = "kdfir-testenv-kcm-token"
	schedulerToken  = "kdfir-testenv-scheduler-token"
)

// Start brings up a control plane and waits until it is ready. On error,
// everything it started is stopped again.
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	base := ""
	if fi, statErr := os.Stat("/dev/shm"); statErr == nil && fi.IsDir() {
		base = "/dev/shm" // etcd fsyncs; tmpfs keeps writes fast
	}
	dir, err := os.MkdirTemp(base, "kdfir-testenv-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, podsDir: filepath.Join(dir, "pods"), adminTok: adminToken}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, e.Logs(40))
			e.Stop()
		}
	}()
	if err := os.MkdirAll(e.podsDir, 0o755); err != nil {
		return nil, err
	}
	bins := map[string]string{}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		p, err := binary(name)
		if err != nil {
			return nil, err
		}
		bins[name] = p
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdPort, etcdPeer, apiPort, kwokPort := ports[0], ports[1], ports[2], ports[3]

	pk, err := newPKI(dir)
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	e.caPEM = pk.caCertPEM
	apiCrt, apiKey, err := pk.issue("apiserver", 2)
	if err != nil {
		return nil, err
	}
	kwokCrt, kwokKey, err := pk.issue("kwok", 3)
	if err != nil {
		return nil, err
	}
	e.proxyCrt, e.proxyKey, err = pk.issue("front-proxy", 4)
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := serviceAccountKeys(dir)
	if err != nil {
		return nil, err
	}

	p, err := startProcess(dir, "etcd", nil, bins["etcd"],
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", etcdPeer),
		"--log-level", "warn")
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)

	if err := writeFile(filepath.Join(dir, "tokens.csv"), tokensCSV()); err != nil {
		return nil, err
	}
	e.AuditLogPath = filepath.Join(dir, "audit.log")
	if err := writeFile(filepath.Join(dir, "audit-policy.yaml"), auditPolicy); err != nil {
		return nil, err
	}
	args := []string{
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--secure-port", fmt.Sprint(apiPort),
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--tls-cert-file", apiCrt, "--tls-private-key-file", apiKey,
		"--client-ca-file", filepath.Join(dir, "ca.crt"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		// Front-proxy authentication lets tests act as identities with
		// extra attributes, such as an Entra object id (see EntraConfig).
		"--requestheader-client-ca-file", filepath.Join(dir, "ca.crt"),
		"--requestheader-allowed-names", "front-proxy",
		"--requestheader-username-headers", "X-Remote-User",
		"--requestheader-group-headers", "X-Remote-Group",
		"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
		"--authorization-mode", "RBAC",
		"--allow-privileged=true",
		"--service-cluster-ip-range", "10.96.0.0/12",
		"--audit-policy-file", filepath.Join(dir, "audit-policy.yaml"),
		"--audit-log-path", e.AuditLogPath,
		"--audit-log-format", "json",
		"--audit-log-maxsize", "0",
		"--kubelet-client-certificate", apiCrt, "--kubelet-client-key", apiKey,
		"--enable-priority-and-fairness=false",
		// etcd 3.4 (Debian's) cannot answer progress requests, so the API
		// server cannot serve watch-list streams. With WatchList on, such
		// a request opens and fails at once, and kwok's informers back off
		// for up to a minute before they see a new pod; off, the request
		// is refused and they fall back to list and watch straight away.
		"--feature-gates=WatchList=false",
	}
	if opts.AuditWebhookURL != "" {
		if opts.AuditWebhookCertDir != "" {
			crt, key, err := pk.issue("webhook", 5)
			if err != nil {
				return nil, err
			}
			for src, dst := range map[string]string{crt: "tls.crt", key: "tls.key"} {
				b, err := os.ReadFile(src)
				if err == nil {
					err = os.WriteFile(filepath.Join(opts.AuditWebhookCertDir, dst), b, 0o600)
				}
				if err != nil {
					return nil, fmt.Errorf("webhook certificate: %w", err)
				}
			}
			opts.AuditWebhookCA = pk.caCertPEM
		}
		wh := filepath.Join(dir, "audit-webhook.kubeconfig")
		if err := writeFile(wh, webhookKubeconfig(opts)); err != nil {
			return nil, err
		}
		args = append(args, "--audit-webhook-config-file", wh,
			"--audit-webhook-mode", "batch",
			"--audit-webhook-batch-max-wait", "200ms",
			"--audit-webhook-initial-backoff", "200ms")
	}
	if p, err = startProcess(dir, "kube-apiserver", nil, bins["kube-apiserver"], args...); err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	e.Server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	e.Config = &rest.Config{
		Host:            e.Server,
		BearerToken:     adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.caPEM},
		QPS:             1000,
		Burst:           2000,
	}
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		return nil, err
	}
	if err := e.waitReady(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	e.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := writeFile(e.Kubeconfig, kubeconfigFor(e.Server, e.caPEM, "kdfir-admin", adminToken)); err != nil {
		return nil, err
	}

	if !opts.NoControllers {
		kcmKubeconfig := filepath.Join(dir, "kcm.kubeconfig")
		schedKubeconfig := filepath.Join(dir, "scheduler.kubeconfig")
		if err := writeFile(kcmKubeconfig, kubeconfigFor(e.Server, e.caPEM, "kcm", controllerToken)); err != nil {
			return nil, err
		}
		if err := writeFile(schedKubeconfig, kubeconfigFor(e.Server, e.caPEM, "scheduler", schedulerToken)); err != nil {
			return nil, err
		}
		if p, err = startProcess(dir, "kube-controller-manager", nil, bins["kube-controller-manager"],
			"--kubeconfig", kcmKubeconfig, "--leader-elect=false", "--secure-port", "0",
			"--service-account-private-key-file", saKey, "--root-ca-file", filepath.Join(dir, "ca.crt"),
			"--use-service-account-credentials=false",
			"--controllers", "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
			"--concurrent-replicaset-syncs", "10", "--concurrent-deployment-syncs", "10",
		); err != nil {
			return nil, err
		}
		e.procs = append(e.procs, p)
		if p, err = startProcess(dir, "kube-scheduler", nil, bins["kube-scheduler"],
			"--kubeconfig", schedKubeconfig, "--leader-elect=false", "--secure-port", "0"); err != nil {
			return nil, err
		}
		e.procs = append(e.procs, p)
	}

	if err := e.startKwok(ctx, bins["kwok"], kwokPort, kwokCrt, kwokKey); err != nil {
		return nil, err
	}
	return e, nil
}

// Stop ends every component the harness started and removes its files.
// It is safe to call more than once.
func (e *Env) Stop() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop()
	}
	e.procs = nil
	if e.Dir != "" && os.Getenv("KDFIR_KEEP_TESTENV") == "" {
		_ = os.RemoveAll(e.Dir)
	}
}

// Logs returns the last n lines of every component's log.
func (e *Env) Logs(n int) string {
	var b strings.Builder
	for _, p := range e.procs {
		fmt.Fprintf(&b, "----- %s (last %d lines of %s) -----\n%s\n", p.name, n, p.logPath, p.tail(n))
	}
	return b.String()
}

func (e *Env) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		for _, p := range e.procs {
			if p.exited() {
				return fmt.Errorf("%s exited during start-up", p.name)
			}
		}
		body, err := e.Client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Raw()
		if err == nil && string(body) == "ok" {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %s: %v", timeout, errors.Join(last, ctx.Err()))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func tokensCSV() string {
	// token,user,uid,"groups"
	return adminToken + `,kdfir-admin,uid-admin,"system:masters"` + "\n" +
		controllerToken + `,system:kube-controller-manager,uid-kcm,"system:masters"` + "\n" +
		schedulerToken + `,system:kube-scheduler,uid-sched,"system:masters"` + "\n" +
		NobodyToken + `,nobody,uid-nobody,""` + "\n"
}

// NobodyToken authenticates as user "nobody", who has no permissions.
const NobodyToken = "kdfir-testenv-nobody-token"

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
# Noise that would drown everything else.
- level: None
  resources:
  - group: coordination.k8s.io
    resources: ["leases"]
- level: None
  users: ["system:kube-scheduler", "system:kube-controller-manager", "system:apiserver"]
  verbs: ["get", "list", "watch"]
# Secret and token contents never go into the log.
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "configmaps", "serviceaccounts/token"]
  - group: authentication.k8s.io
    resources: ["tokenreviews"]
- level: RequestResponse
`

func webhookKubeconfig(opts Options) string {
	ca := ""
	if len(opts.AuditWebhookCA) > 0 {
		ca = "    certificate-authority-data: " + b64(opts.AuditWebhookCA) + "\n"
	}
	return "apiVersion: v1\nkind: Config\nclusters:\n- name: kdfir\n  cluster:\n    server: " + opts.AuditWebhookURL + "\n" + ca +
		"users:\n- name: apiserver\n  user:\n    token: \"" + opts.AuditWebhookToken + "\"\n" +
		"contexts:\n- name: webhook\n  context: {cluster: kdfir, user: apiserver}\ncurrent-context: webhook\n"
}

func kubeconfigFor(server string, ca []byte, user, token string) string {
	return "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: " + server +
		"\n    certificate-authority-data: " + b64(ca) + "\n" +
		"users:\n- name: " + user + "\n  user:\n    token: " + token + "\n" +
		"contexts:\n- name: testenv\n  context: {cluster: testenv, user: " + user + "}\ncurrent-context: testenv\n"
}
