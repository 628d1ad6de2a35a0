package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
	"github.com/kdfir/kdfir/internal/testenv"
)

// kdfirCLI runs kdfir against the test cluster with its own data
// directory.
type kdfirCLI struct {
	t       *testing.T
	env     *testenv.Env
	dataDir string
}

func (k kdfirCLI) run(args ...string) (code int, stdout, stderr string) {
	k.t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{"--kubeconfig", k.env.Kubeconfig, "--data-dir", k.dataDir}, args...)
	code = Execute(context.Background(), full, &out, &errOut)
	return code, out.String(), errOut.String()
}

// ok runs kdfir, expects exit 0 and decodes its JSON output into v.
func (k kdfirCLI) ok(v any, args ...string) string {
	k.t.Helper()
	code, out, errOut := k.run(args...)
	if code != 0 {
		k.t.Fatalf("kdfir %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			k.t.Fatalf("kdfir %s: %v in %q", strings.Join(args, " "), err, out)
		}
	}
	return out
}

func TestRespondCommands(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: env.Node, Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k := kdfirCLI{t: t, env: env, dataDir: t.TempDir()}
	web := ns + "/web"
	podLabel := func() string {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Labels[respond.QuarantineKey]
	}
	var entries []journal.Entry

	// A dry run changes nothing and journals nothing.
	var res respond.Result
	k.ok(&res, "isolate", "pod", web, "--dry-run", "-o", "json")
	if res.Status != respond.StatusDryRun || res.ID != "" || len(res.Changes) != 3 {
		t.Fatalf("dry run = %+v", res)
	}
	if podLabel() != "" {
		t.Fatal("dry run labelled the pod")
	}
	// The table shows the plan, field by field.
	table := k.ok(nil, "isolate", "pod", web, "--dry-run")
	if !strings.Contains(table, "PLAN") || !strings.Contains(table, `metadata.labels["kdfir.io/quarantine"]`) || !strings.Contains(table, "NetworkPolicy/"+ns+"/kdfir-quarantine") {
		t.Errorf("dry-run table lacks the plan:\n%s", table)
	}
	k.ok(&entries, "actions", "list", "-o", "json")
	if len(entries) != 0 {
		t.Fatalf("dry run journaled %d entries", len(entries))
	}

	// Isolate: the action id, its status and its changes.
	res = respond.Result{}
	k.ok(&res, "isolate", "pod", web, "--reason", "INC-9", "-o", "json")
	if res.Status != respond.StatusSucceeded || res.ID == "" || len(res.Changes) != 3 || podLabel() != "true" {
		t.Fatalf("isolate = %+v", res)
	}
	id := res.ID

	// Idempotent: already isolated, no second entry.
	out := k.ok(nil, "isolate", "pod", web)
	if !strings.Contains(out, "already isolated") || !strings.Contains(out, "unchanged") {
		t.Fatalf("second isolate printed %q", out)
	}
	k.ok(&entries, "actions", "list", "-o", "json")
	if len(entries) != 1 || entries[0].ID != id || entries[0].Reason != "INC-9" || entries[0].Status != journal.Succeeded {
		t.Fatalf("actions list = %+v", entries)
	}
	if out := k.ok(nil, "actions", "list"); !strings.Contains(out, "ID") || !strings.Contains(out, id) || !strings.Contains(out, "isolate-pod") {
		t.Fatalf("actions list table = %q", out)
	}

	var e journal.Entry
	k.ok(&e, "actions", "show", id, "-o", "json")
	if e.ID != id || len(e.Prior) != 1 || len(e.Created) != 1 || e.Prior[0].Object.Name != "web" {
		t.Fatalf("actions show = %+v", e)
	}
	if out := k.ok(nil, "actions", "show", id); !strings.Contains(out, "PRIOR STATE RECORDED") || !strings.Contains(out, "Pod/"+web) {
		t.Fatalf("actions show table = %q", out)
	}

	// Release, then a revert of the same action changes nothing.
	res = respond.Result{}
	k.ok(&res, "unisolate", "pod", web, "-o", "json")
	if res.Status != respond.StatusReverted || res.ID != id || len(res.Reverted) != 1 || podLabel() != "" {
		t.Fatalf("unisolate = %+v", res)
	}
	if out := k.ok(nil, "revert", id); !strings.Contains(out, "already reverted") {
		t.Fatalf("second revert printed %q", out)
	}

	// revert ID on a fresh isolation, with the human table.
	out = k.ok(nil, "isolate", "pod", web, "--label", "status=quarantine")
	if !strings.Contains(out, "OP") || !strings.Contains(out, "label status=quarantine added") {
		t.Fatalf("isolate table = %q", out)
	}
	k.ok(&entries, "actions", "list", "-o", "json", "--action", "isolate-pod", "--limit", "1")
	res = respond.Result{}
	k.ok(&res, "revert", entries[0].ID, "-o", "json")
	// status=quarantine, kdfir's own label beside it, the annotation, and
	// the policy.
	if res.Status != respond.StatusReverted || len(res.Changes) != 4 {
		t.Fatalf("revert = %+v", res)
	}
}

func TestRespondCommandsBadInput(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	k := kdfirCLI{t: t, env: env, dataDir: t.TempDir()}
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"isolate", "pod", "Bad/x"}, ExitUsage, `invalid namespace name "Bad"`},
		{[]string{"isolate", "pod", "web"}, ExitUsage, "want NAMESPACE/NAME"},
		{[]string{"isolate", "pod", ns + "/web", "--label", "nope"}, ExitUsage, `invalid label "nope"`},
		{[]string{"isolate", "pod"}, ExitUsage, "accepts 1 arg"},
		{[]string{"cordon", "node", "node_1"}, ExitUsage, `invalid node name "node_1"`},
		{[]string{"isolate", "pod", ns + "/ghost"}, ExitFailure, "pod " + ns + "/ghost not found"},
		{[]string{"isolate", "namespace", "ghost-ns-404"}, ExitFailure, "namespace ghost-ns-404 not found"},
		{[]string{"cordon", "node", "ghost-node"}, ExitFailure, "node ghost-node not found"},
		{[]string{"unisolate", "pod", ns + "/ghost"}, ExitFailure, "pod " + ns + "/ghost not found"},
		{[]string{"revert", "20260101T000000Z-00000000"}, ExitFailure, "no such action"},
		{[]string{"actions", "show", "20260101T000000Z-00000000"}, ExitFailure, "no action 20260101T000000Z-00000000"},
		{[]string{"exec", "pod", ns + "/web", "--config", filepath.Join(k.dataDir, "none.yaml"), "--", "id"}, ExitFailure, "read config"},
		{[]string{"exec", "pod", ns + "/web", "id"}, ExitUsage, "want NAMESPACE/NAME -- COMMAND"},
		{[]string{"exec", "pod", ns + "/web", "--", "id"}, ExitFailure, "exec is disabled: pass --allow-exec, or set exec.enabled: true in the config file"},
	}
	for _, tt := range tests {
		code, _, errOut := k.run(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.inStderr) {
			t.Errorf("kdfir %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tt.args, " "), code, errOut, tt.code, tt.inStderr)
		}
		if lines := strings.Split(strings.TrimSpace(errOut), "\n"); !strings.HasPrefix(lines[0], "Error: ") {
			t.Errorf("kdfir %s: stderr %q does not start with one error line", strings.Join(tt.args, " "), errOut)
		}
	}
	var entries []journal.Entry
	k.ok(&entries, "actions", "list", "-o", "json")
	if len(entries) != 0 {
		t.Fatalf("bad input journaled %d entries", len(entries))
	}
}

func TestExecCommand(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "shell", Files: map[string]string{"/etc/hostname": "shell-1\n"}}); err != nil {
		t.Fatal(err)
	}
	k := kdfirCLI{t: t, env: env, dataDir: t.TempDir()}
	cfg := filepath.Join(k.dataDir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("exec: {enabled: true, allow: [[cat], [ls, -la]]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := ns + "/shell"

	out := k.ok(nil, "exec", "pod", target, "--config", cfg, "--reason", "triage", "--", "cat", "/etc/hostname")
	if !strings.Contains(out, "exit code 0") || !strings.Contains(out, "--- stdout ---\nshell-1\n") {
		t.Fatalf("exec table = %q", out)
	}
	code, _, errOut := k.run("exec", "pod", target, "--config", cfg, "--", "ls", "/")
	if code != ExitFailure || !strings.Contains(errOut, "not in the exec allowlist") {
		t.Fatalf("exec of a command outside the allowlist: exit %d, %q", code, errOut)
	}

	// --allow-exec without a config allows any command.
	var res respond.Result
	k.ok(&res, "exec", "pod", target, "--allow-exec", "-c", "app", "--timeout", "10s", "-o", "json", "--", "cat", "/nope")
	out2, _ := json.Marshal(res.Output)
	var x respond.ExecOutput
	if err := json.Unmarshal(out2, &x); err != nil || x.ExitCode != 1 || x.Container != "app" || res.ID == "" {
		t.Fatalf("exec -o json = %+v (%v)", res, err)
	}
	var e journal.Entry
	k.ok(&e, "actions", "show", res.ID, "-o", "json")
	var journaled respond.ExecOutput
	if err := json.Unmarshal(e.Result, &journaled); err != nil || journaled.ExitCode != 1 || journaled.StderrBytes == 0 {
		t.Fatalf("journaled exec result %s (%v)", e.Result, err)
	}
	if code, _, errOut := k.run("revert", res.ID); code != ExitFailure || !strings.Contains(errOut, "cannot be reverted") {
		t.Fatalf("revert of exec: exit %d, %q", code, errOut)
	}
}
