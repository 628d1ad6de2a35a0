package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScorecard runs the scorecard on the fixtures with the repository's
// mapping: every claimed behaviour meets its target, and the coverage
// the README reports holds.
func TestScorecard(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, filepath.Join("..", "..", "..", "shared", "data"), "mapping.yaml", true, false); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"Behaviours covered: 19 of 33 Falco rules. Negatives with any alarm of a claimed behaviour: 0% (0/21).",
		"| **all** | | **100% (29/29)** | | 0 |",
		"Behaviours covered: 36 of 43 Panther rules. Negatives with any alarm of a claimed behaviour: 0% (0/106).",
		"| **all** | | **100% (106/106)** | | 22 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("scorecard lacks %q:\n%s", want, out.String())
		}
	}
}

// TestScorecardFailsOnMiss: a behaviour whose rules never fire fails -check.
func TestScorecardFailsOnMiss(t *testing.T) {
	broken := "behaviours:\n- name: host PID\n  rules: [k8s-hostipc]\n  panther: [Kubernetes.Pod.Host.PID]\n" +
		"falcoRulesFiles:\n  test/rules/k8s_audit/trust_nginx_container.yaml: falco-trust-nginx.yaml\n"
	dir := t.TempDir()
	p := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(p, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	trust, err := os.ReadFile("falco-trust-nginx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "falco-trust-nginx.yaml"), trust, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(&out, filepath.Join("..", "..", "..", "shared", "data"), p, true, false)
	if err == nil || !strings.Contains(err.Error(), "misses its target") || !strings.Contains(out.String(), "| host PID | k8s-hostipc |") {
		t.Errorf("a broken mapping passed -check: %v\n%s", err, out.String())
	}
}
