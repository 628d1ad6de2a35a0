package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An unreachable cluster gives one line that names the server, and exit 1.
func TestUnreachableCluster(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	const cfg = `apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: gone
  context: {cluster: gone, user: u}
current-context: gone
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), []string{"--kubeconfig", kc, "cluster", "info"}, &out, &errOut)
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1", code)
	}
	msg := strings.TrimSpace(errOut.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "https://127.0.0.1:1") || !strings.Contains(msg, "connection refused") {
		t.Fatalf("error = %q, want one line naming the server", msg)
	}
	if strings.Contains(msg, "goroutine") || out.Len() != 0 {
		t.Fatalf("stdout %q / stderr %q", out.String(), msg)
	}
}

func TestClustersFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "clusters.yaml")
	if err := os.WriteFile(f, []byte("clusters:\n- name: prod\n  kubeconfig: /x\n  resourceId: /subscriptions/S/resourceGroups/R/providers/Microsoft.ContainerService/managedClusters/prod\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"--clusters-file", f, "cluster", "list", "-o", "json"}, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), `"name": "prod"`) {
		t.Fatalf("list = %s", out.String())
	}
	// Unknown cluster names are failures that list the known ones.
	errOut.Reset()
	if code := Execute(context.Background(), []string{"--clusters-file", f, "--cluster", "nope", "cluster", "info"}, &out, &errOut); code != ExitFailure || !strings.Contains(errOut.String(), "known: prod") {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	// Unknown keys in the file are rejected.
	if err := os.WriteFile(f, []byte("clusters:\n- name: a\n  kubeconfg: /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := Execute(context.Background(), []string{"--clusters-file", f, "cluster", "list"}, &out, &errOut); code != ExitFailure || !strings.Contains(errOut.String(), "kubeconfg") {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}
