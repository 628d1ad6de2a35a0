package playbook

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kdfir/kdfir/internal/alert"
)

// recorder is an Executor that records what it was asked to do; the engine
// is pure logic, so a recording executor is enough here. The real one is
// tested against a cluster in the server package.
type recorder struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]bool
}

func (r *recorder) Run(_ context.Context, req StepRequest) (StepResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	call := "run " + req.Step.Action + " " + req.Target.Namespace + "/" + req.Target.Name
	if req.DryRun {
		call += " dry-run"
	}
	r.calls = append(r.calls, call)
	if r.fail[req.Step.Action] {
		return StepResult{Status: "failed"}, errors.New("boom")
	}
	return StepResult{ActionID: "id-" + req.Step.Action, Status: "succeeded"}, nil
}

func (r *recorder) Hold(_ context.Context, req StepRequest) (StepResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "hold "+req.Step.Action+" "+req.Target.Namespace+"/"+req.Target.Name)
	return StepResult{ActionID: "held-" + req.Step.Action, Status: "pending_approval"}, nil
}

func mustParse(t *testing.T, src string) *Playbook {
	t.Helper()
	p, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var execAlert = &alert.Alert{Source: "defender", Title: "Suspicious exec in pod", AlertType: "K8S.NODE_ExecShell", Severity: "high",
	Entities: []alert.Entity{{Type: "pod", Namespace: "shop", Name: "web-1"}, {Type: "namespace", Name: "shop"}},
	Fields:   map[string]any{"k8s.ns.name": "shop"}}

func TestMatch(t *testing.T) {
	cases := []struct {
		match string
		want  bool
	}{
		{"{}", true},
		{"{source: [Defender]}", true},
		{"{source: [falco]}", false},
		{"{severity: high}", true},
		{"{severity: critical}", false},
		{`{title: "(?i)EXEC"}`, true},
		{`{alert_type: ["K8S.NODE_*"]}`, true},
		{`{alert_type: ["K8S.CLUSTER_*"]}`, false},
		{"{entities: [pod, namespace]}", true},
		{"{entities: [node]}", false},
		{"{fields: {k8s.ns.name: SHOP}}", true},
		{"{fields: {k8s.ns.name: other}}", false},
	}
	for _, c := range cases {
		p := mustParse(t, "name: x\nmatch: "+c.match+"\nsteps: [{action: isolate-pod}]\n")
		if got := p.Matches(execAlert); got != c.want {
			t.Errorf("match %s = %v, want %v", c.match, got, c.want)
		}
	}
}

func TestRunOrderFailureAndApproval(t *testing.T) {
	rec := &recorder{fail: map[string]bool{"collect-pod": true}}
	e := &Engine{Exec: rec, Playbooks: []*Playbook{
		mustParse(t, `name: chain
steps:
- action: collect-pod
  on_failure: continue
- action: isolate-pod
  requires_approval: true
- action: isolate-namespace
`),
		mustParse(t, "name: stop\nsteps:\n- action: collect-pod\n- action: isolate-pod\n"),
		mustParse(t, "name: nodes\nsteps:\n- action: cordon-node\n"),
	}}
	outs := e.Run(context.Background(), execAlert)
	if len(outs) != 3 {
		t.Fatalf("outcomes = %d, want 3", len(outs))
	}
	want := []string{"run collect-pod shop/web-1", "hold isolate-pod shop/web-1", "run collect-pod shop/web-1"}
	if strings.Join(rec.calls, "|") != strings.Join(want, "|") {
		t.Fatalf("calls = %q, want %q", rec.calls, want)
	}
	if !outs[0].Waiting || !outs[1].Stopped || outs[2].Steps[0].Status != "skipped" {
		t.Fatalf("outcomes = %+v", outs)
	}
	// After the held step is approved (and run by the executor), the rest
	// of the playbook runs.
	rec.calls = nil
	out, err := e.Continue(context.Background(), execAlert, "chain", 1)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"run isolate-namespace /shop"}
	if strings.Join(rec.calls, "|") != strings.Join(want, "|") || out.Waiting {
		t.Fatalf("after approval calls = %q (outcome %+v)", rec.calls, out)
	}
	if _, err := e.Continue(context.Background(), execAlert, "gone", 0); err == nil {
		t.Fatal("approving an unknown playbook succeeded")
	}
}

func TestDryRunSkipsApprovalGate(t *testing.T) {
	rec := &recorder{}
	e := &Engine{Exec: rec, Playbooks: []*Playbook{mustParse(t, "name: d\ndry_run: true\nsteps:\n- action: isolate-pod\n  requires_approval: true\n")}}
	e.Run(context.Background(), execAlert)
	if len(rec.calls) != 1 || rec.calls[0] != "run isolate-pod shop/web-1 dry-run" {
		t.Fatalf("calls = %q", rec.calls)
	}
}

func TestValidationErrorsNameFileAndLine(t *testing.T) {
	cases := map[string]string{
		"name: x\nsteps:\n- action: isolate-pod\n- action: nuke-cluster\n":    "test.yaml:4:",
		"name: x\nsteps:\n- action: isolate-pod\n  on_failure: maybe\n":       "on_failure",
		"name: x\nsteps:\n- action: isolate-pod\n  target: node\n":            "acts on a pod",
		"name: x\nmatch:\n  severity: huge\nsteps: [{action: isolate-pod}]\n": "match.severity",
		"name: x\nmatch:\n  title: \"(\"\nsteps: [{action: isolate-pod}]\n":   "match.title",
		"name: x\nbogus: 1\nsteps: [{action: isolate-pod}]\n":                 "line 2",
		"steps: [{action: isolate-pod}]\n":                                    "name is required",
		"name: x\n":                                                           "at least one step",
	}
	for src, want := range cases {
		_, err := Parse("test.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", src, err, want)
		}
	}
}

func TestLoadDirsRejectsDuplicates(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "b.yml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("name: same\nsteps: [{action: isolate-pod}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadDirs(dir); err == nil || !strings.Contains(err.Error(), "already defined") {
		t.Fatalf("LoadDirs = %v, want duplicate error", err)
	}
	if _, err := LoadDirs(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("LoadDirs on a missing directory succeeded")
	}
}

// The playbooks shipped in playbooks/ load and mirror the original
// function's actions.
func TestShippedPlaybooks(t *testing.T) {
	ps, err := LoadDirs(filepath.Join("..", "..", "playbooks"))
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, p := range ps {
		for _, s := range p.Steps {
			actions[s.Action] = true
		}
	}
	for _, a := range []string{"collect-pod", "isolate-pod", "unisolate-pod", "isolate-namespace", "unisolate-namespace", "cordon-node", "uncordon-node", "exec-pod"} {
		if !actions[a] {
			t.Errorf("no shipped playbook runs %s", a)
		}
	}
	e := &Engine{Playbooks: ps}
	var names []string
	for _, p := range e.Matching(execAlert) {
		names = append(names, p.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "defender-high-collect-then-isolate") {
		t.Fatalf("high Defender pod alert matched %v", names)
	}
}
