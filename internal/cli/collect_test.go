package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/testenv"
)

type cliResult struct {
	code        int
	stdout, err string
}

func runEvidenceCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Execute(ctx, args, &out, &errOut)
	return cliResult{code, out.String(), errOut.String()}
}

func (r cliResult) want(t *testing.T, code int) cliResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.err)
	}
	return r
}

func journalEntries(t *testing.T, dataDir, action string) []*journal.Entry {
	t.Helper()
	j, err := journal.Open(context.Background(), filepath.Join(dataDir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	es, err := j.List(context.Background(), journal.Filter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestCollectAndVerifyCLI runs collect pod, namespace and node, evidence
// verify and evidence pubkey as a responder would, and checks exit codes,
// output and the journal.
func TestCollectAndVerifyCLI(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, name := range []string{"web", "worker"} {
		if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: name, Logs: []string{"hello from " + name},
			Files: map[string]string{"/root/.bash_history": "id\n"}}); err != nil {
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	dest := t.TempDir()
	g := []string{"--kubeconfig", env.Kubeconfig, "--data-dir", data}

	// collect pod: exit 0, a summary, a key made on first use, a journal
	// entry with the location and the manifest's hash.
	r := runEvidenceCLI(t, append(g, "collect", "pod", ns+"/web", "--to", dest, "--reason", "INC-42", "-o", "json")...).want(t, ExitOK)
	var res evidence.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("output: %v\n%s", err, r.stdout)
	}
	manifest, err := os.ReadFile(filepath.Join(res.Location, evidence.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(manifest)
	if res.ManifestSHA256 != hex.EncodeToString(sum[:]) || res.Artifacts == 0 || !strings.HasPrefix(res.Location, dest) {
		t.Fatalf("result %+v", res)
	}
	for _, f := range []string{evidence.KeyFile, evidence.PublicKeyFile} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Fatalf("signing key not created: %v", err)
		}
	}
	es := journalEntries(t, data, "collect-pod")
	if len(es) != 1 {
		t.Fatalf("journal: %d collect-pod entries", len(es))
	}
	e := es[0]
	var jr evidence.Result
	_ = json.Unmarshal(e.Result, &jr)
	if e.ID != res.ActionID || e.Status != journal.Succeeded || e.Target != ns+"/web" || e.Reason != "INC-42" ||
		jr.ManifestSHA256 != res.ManifestSHA256 || jr.Location != res.Location || len(e.Changes) != 1 || !strings.Contains(e.Changes[0].Detail, res.Location) {
		t.Fatalf("journal entry %+v", e)
	}
	if !strings.HasSuffix(res.Prefix, "-"+e.ID) {
		t.Fatalf("prefix %s does not end with the action id %s", res.Prefix, e.ID)
	}

	// The table summary.
	r = runEvidenceCLI(t, append(g, "collect", "pod", ns+"/worker", "--to", dest)...).want(t, ExitOK)
	for _, want := range []string{"location", "manifest sha256", "artifacts", "0 not collected"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}

	// verify: the data dir's key by default; OK, exit 0.
	r = runEvidenceCLI(t, append(g, "evidence", "verify", res.Location)...).want(t, ExitOK)
	if !strings.Contains(r.stdout, "signature  valid") || !strings.Contains(r.stdout, "OK") {
		t.Errorf("verify output:\n%s", r.stdout)
	}

	// pubkey prints the data dir's public key.
	r = runEvidenceCLI(t, append(g, "evidence", "pubkey")...).want(t, ExitOK)
	pub, _ := os.ReadFile(filepath.Join(data, evidence.PublicKeyFile))
	if r.stdout != string(pub) || !strings.HasPrefix(r.stdout, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("pubkey = %q, want %q", r.stdout, pub)
	}
	r = runEvidenceCLI(t, append(g, "evidence", "pubkey", "-o", "json")...).want(t, ExitOK)
	if !strings.Contains(r.stdout, `"fingerprint": "SHA256:`) {
		t.Errorf("pubkey json: %s", r.stdout)
	}

	// Without a trusted key: a warning, and the manifest.pub check.
	r = runEvidenceCLI(t, "--data-dir", t.TempDir(), "evidence", "verify", res.Location).want(t, ExitOK)
	if !strings.Contains(r.err, "no trusted public key") || !strings.Contains(r.stdout, "not trusted") {
		t.Errorf("verify without a trusted key:\nstdout: %s\nstderr: %s", r.stdout, r.err)
	}
	// Against another key: exit 1.
	otherData := t.TempDir()
	runEvidenceCLI(t, "--data-dir", otherData, "evidence", "pubkey").want(t, ExitOK)
	r = runEvidenceCLI(t, append(g, "evidence", "verify", res.Location, "--pubkey", filepath.Join(otherData, evidence.PublicKeyFile))...).want(t, ExitFailure)
	if !strings.Contains(r.stdout, "INVALID") || !strings.Contains(r.err, "problem(s) found") {
		t.Errorf("verify with another key:\nstdout: %s\nstderr: %s", r.stdout, r.err)
	}

	// Tampering: exit 1, naming the file.
	log := filepath.Join(res.Location, "pods", "web", "logs", "app.log")
	if err := os.WriteFile(log, []byte("edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runEvidenceCLI(t, append(g, "evidence", "verify", res.Location)...).want(t, ExitFailure)
	if !strings.Contains(r.stdout, "altered") || !strings.Contains(r.stdout, "pods/web/logs/app.log") {
		t.Errorf("verify after tampering:\n%s", r.stdout)
	}

	// collect namespace and node: every pod, exit 0.
	r = runEvidenceCLI(t, append(g, "collect", "namespace", ns, "--to", dest, "-o", "json")...).want(t, ExitOK)
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Action != "collect-namespace" {
		t.Fatalf("namespace: %v %+v", err, res)
	}
	runEvidenceCLI(t, append(g, "evidence", "verify", res.Location)...).want(t, ExitOK)
	r = runEvidenceCLI(t, append(g, "collect", "node", env.Node, "--to", dest, "-o", "json")...).want(t, ExitOK)
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Action != "collect-node" {
		t.Fatalf("node: %v %+v", err, res)
	}
	for _, p := range []string{"pods/" + ns + "/web/pod.yaml", "pods/" + ns + "/worker/pod.yaml", "objects/nodes/" + env.Node + ".yaml"} {
		if _, err := os.Stat(filepath.Join(res.Location, filepath.FromSlash(p))); err != nil {
			t.Errorf("node collection: %v", err)
		}
	}
	if n := len(journalEntries(t, data, "collect-namespace")) + len(journalEntries(t, data, "collect-node")); n != 2 {
		t.Errorf("journal: %d namespace and node entries, want 2", n)
	}
}

// TestCollectFailuresCLI: a failed item gives exit 1 with the evidence
// still written; a missing pod gives exit 1 and a failed journal entry;
// bad arguments give exit 2.
func TestCollectFailuresCLI(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "nohist", Logs: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	data, dest := t.TempDir(), t.TempDir()
	g := []string{"--kubeconfig", env.Kubeconfig, "--data-dir", data}

	r := runEvidenceCLI(t, append(g, "collect", "pod", ns+"/nohist", "--to", dest)...).want(t, ExitFailure)
	if !strings.Contains(r.stdout, "not collected\tpods/nohist/history/app") && !strings.Contains(r.stdout, "pods/nohist/history/app: no shell history") {
		t.Errorf("stdout does not name the failed item:\n%s", r.stdout)
	}
	if !strings.Contains(r.err, "1 of") || !strings.Contains(r.err, "not collected") || strings.Count(strings.TrimSpace(lastStderrLine(r.err)), "\n") != 0 {
		t.Errorf("stderr: %s", r.err)
	}
	es := journalEntries(t, data, "collect-pod")
	if len(es) != 1 || es[0].Status != journal.Failed || !strings.Contains(es[0].Error, "not collected") {
		t.Fatalf("journal %+v", es)
	}

	r = runEvidenceCLI(t, append(g, "collect", "pod", ns+"/ghost", "--to", dest)...).want(t, ExitFailure)
	if !strings.Contains(r.err, "Error: collect pod "+ns+"/ghost: not found") {
		t.Errorf("stderr: %s", r.err)
	}
	if es := journalEntries(t, data, "collect-pod"); len(es) != 2 || es[0].Status != journal.Failed {
		t.Errorf("journal after a missing pod: %+v", es)
	}

	runEvidenceCLI(t, append(g, "collect", "pod", "nonamespace", "--to", dest)...).want(t, ExitUsage)
	runEvidenceCLI(t, append(g, "collect", "pod", ns+"/nohist")...).want(t, ExitUsage)
	runEvidenceCLI(t, append(g, "collect", "node")...).want(t, ExitUsage)
	runEvidenceCLI(t, append(g, "evidence", "verify")...).want(t, ExitUsage)
	r = runEvidenceCLI(t, append(g, "evidence", "verify", t.TempDir())...).want(t, ExitFailure)
	if !strings.Contains(r.err, "no manifest.json") {
		t.Errorf("verify of an empty directory: %s", r.err)
	}
}

func lastStderrLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// TestCollectToBlobCLI collects to Azurite with a SAS URL and verifies the
// blob prefix; the SAS signature appears nowhere: not in the output, the
// logs, or the journal.
func TestCollectToBlobCLI(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "web", Logs: []string{"x"},
		Files: map[string]string{"/root/.bash_history": "id\n"}}); err != nil {
		t.Fatal(err)
	}
	az, err := testenv.StartAzurite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer az.Stop()
	cred, err := service.NewSharedKeyCredential(testenv.AzuriteAccount, testenv.AzuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.URL+"/evidence", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, List: true}).String(),
		ContainerName: "evidence"}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	g := []string{"--kubeconfig", env.Kubeconfig, "--data-dir", data, "--log-level", "debug"}
	dest := az.URL + "/evidence?" + qp.Encode()

	r := runEvidenceCLI(t, append(g, "collect", "pod", ns+"/web", "--to", dest, "-o", "json")...).want(t, ExitOK)
	var res evidence.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	r2 := runEvidenceCLI(t, append(g, "evidence", "verify", az.URL+"/evidence/"+res.Prefix+"?"+qp.Encode())...).want(t, ExitOK)
	es := journalEntries(t, data, "collect-pod")
	if len(es) != 1 {
		t.Fatalf("journal: %d entries", len(es))
	}
	entry, _ := json.Marshal(es[0])
	sig := qp.Signature()
	for what, s := range map[string]string{"collect stdout": r.stdout, "collect stderr": r.err, "verify stdout": r2.stdout, "verify stderr": r2.err, "journal": string(entry)} {
		for _, form := range []string{sig, strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(sig)} {
			if strings.Contains(s, form) {
				t.Errorf("%s shows the SAS signature:\n%s", what, s)
			}
		}
	}
	if !strings.Contains(string(entry), "sig=REDACTED") {
		t.Errorf("journal params do not keep the redacted destination: %s", entry)
	}

	// An expired token: exit 1, a clear error, no token.
	old, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(-time.Hour).UTC(),
		Permissions:   (&sas.ContainerPermissions{Read: true, Create: true, Write: true, List: true}).String(),
		ContainerName: "evidence"}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	r = runEvidenceCLI(t, append(g, "collect", "pod", ns+"/web", "--to", az.URL+"/evidence?"+old.Encode())...).want(t, ExitFailure)
	if !strings.Contains(r.err, "SAS token") || !strings.Contains(r.err, "expired") || strings.Contains(r.err, old.Signature()) {
		t.Errorf("expired token: %s", r.err)
	}
}
