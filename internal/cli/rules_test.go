package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRulesCommands(t *testing.T) {
	code, out, _ := runCLI(t, "rules", "list", "-o", "json")
	var rules []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rules) != nil || len(rules) < 25 {
		t.Fatalf("rules list: exit %d, %d rules", code, len(rules))
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("id: nrt-join\ntitle: t\nseverity: high\nnrt: true\nentities: [{type: pod, name: n}]\nquery: KubeAudit | join (KubeAudit) on auditID | project Timestamp = stageTimestamp, ReportId = auditID, n = verb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "rules", "validate", dir)
	if code != ExitFailure || !strings.Contains(stderr, "rule nrt-join") || !strings.Contains(stderr, "cannot use join") {
		t.Fatalf("validate bad rule: exit %d, stderr %q", code, stderr)
	}
	code, out, _ = runCLI(t, "rules", "validate", "../detect/rules")
	if code != 0 || !strings.Contains(out, "54 rules valid") {
		t.Fatalf("validate pack: exit %d, %q", code, out)
	}

	data := filepath.Join("..", "..", "..", "shared", "data", "falco-k8s-audit", "exec_pod.json")
	code, out, stderr = runCLI(t, "rules", "test", "k8s-exec-into-pod", "--data", data, "-o", "json")
	var alerts []struct {
		Title    string
		Entities []struct{ Type, Name, Namespace string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &alerts) != nil || len(alerts) != 1 || !strings.Contains(alerts[0].Title, "bash") {
		t.Fatalf("rules test: exit %d, out %q, stderr %q", code, out, stderr)
	}
	if code, _, _ := runCLI(t, "rules", "test", "no-such-rule", "--data", data); code != ExitFailure {
		t.Fatalf("unknown rule: exit %d", code)
	}
	if code, _, _ := runCLI(t, "rules", "test", "k8s-exec-into-pod"); code != ExitUsage {
		t.Fatalf("missing --data: exit %d", code)
	}

	// An exceptions file: what it suppressed is shown.
	exc := filepath.Join(dir, "exceptions.yaml")
	if err := os.WriteFile(exc, []byte("exceptions:\n- {rule: k8s-privileged-container, name: trusted-nginx, images: [\"nginx\", \"nginx:*\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join("..", "..", "..", "shared", "data", "falco-k8s-audit", "create_nginx_pod_privileged.json")
	code, out, stderr = runCLI(t, "rules", "test", "k8s-privileged-container", "--data", priv)
	if code != 0 || !strings.HasPrefix(out, "1 alerts from 1 events") || strings.Contains(out, "suppressed") {
		t.Fatalf("rules test without exceptions: exit %d, out %q, stderr %q", code, out, stderr)
	}
	code, out, stderr = runCLI(t, "rules", "test", "k8s-privileged-container", "--data", priv, "--exceptions", exc)
	if code != 0 || !strings.HasPrefix(out, "0 alerts from 1 events") || !strings.Contains(out, "1 suppressed by exceptions") || !strings.Contains(out, "trusted-nginx") {
		t.Fatalf("rules test with exceptions: exit %d, out %q, stderr %q", code, out, stderr)
	}
	if err := os.WriteFile(exc, []byte("exceptions:\n- {rule: k8s-node-proxy, name: x, images: [a]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "rules", "list", "--exceptions", exc)
	if code != ExitFailure || !strings.Contains(stderr, "images needs the Image column") {
		t.Fatalf("bad exception: exit %d, stderr %q", code, stderr)
	}
}

func TestAlertsEmpty(t *testing.T) {
	dir := t.TempDir()
	code, out, _ := runCLI(t, "--data-dir", dir, "alerts", "list", "-o", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("alerts list: exit %d, %q", code, out)
	}
	if code, _, stderr := runCLI(t, "--data-dir", dir, "alerts", "show", "nope"); code != ExitFailure || !strings.Contains(stderr, "no such alert") {
		t.Fatalf("alerts show unknown: exit %d, %q", code, stderr)
	}
}

func TestRulesImportSigma(t *testing.T) {
	out := t.TempDir()
	code, _, stderr := runCLI(t, "rules", "import", "sigma", "../sigma/testdata", "--out", out)
	if code != ExitFailure || !strings.Contains(stderr, "5 rules written") || !strings.Contains(stderr, `modifier "base64offset" is not supported`) {
		t.Fatalf("import: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "rules", "validate", out)
	if code != 0 || !strings.Contains(stdout, "5 rules valid") {
		t.Fatalf("validate imported: exit %d, %q %q", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "rules", "import", "sigma", "../sigma/testdata/ok/exec_shell.yml")
	if code != 0 || !strings.Contains(stdout, "id: sigma-shell-started-in-a-pod-through-exec") {
		t.Fatalf("import to stdout: exit %d, %q", code, stdout)
	}
}
