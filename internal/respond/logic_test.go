package respond

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/kdfir/kdfir/internal/journal"
)

func TestRevertMeta(t *testing.T) {
	obj := journal.Object{APIVersion: "v1", Kind: "Pod", Namespace: "ns", Name: "web"}
	edits := []metaEdit{
		{Field: "labels", Key: "status", From: ptr("active"), To: ptr("quarantine")}, // value replaced
		{Field: "labels", Key: "app", From: ptr("web"), To: nil},                     // detached
		{Field: "annotations", Key: ActionIDKey, From: nil, To: ptr("id1")},          // added
	}
	tests := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		wantUndo    []string
		wantLeft    int
	}{
		{name: "all as kdfir set them", labels: map[string]string{"status": "quarantine"}, annotations: map[string]string{ActionIDKey: "id1"},
			wantUndo: []string{"label status set to active (was quarantine)", "label app=web added", "annotation kdfir.io/action-id=id1 removed"}},
		{name: "already restored", labels: map[string]string{"status": "active", "app": "web"}},
		{name: "changed by someone", labels: map[string]string{"status": "investigating", "app": "api"}, annotations: map[string]string{ActionIDKey: "other"}, wantLeft: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			undo, changes, left := revertMeta(obj, edits, tt.labels, tt.annotations)
			var got []string
			for _, u := range undo {
				got = append(got, u.describe())
			}
			if diff := cmp.Diff(tt.wantUndo, got); diff != "" {
				t.Fatalf("undo (-want +got):\n%s", diff)
			}
			if len(changes) != len(undo) || len(left) != tt.wantLeft {
				t.Fatalf("%d changes, left alone %q; want %d changes, %d left alone", len(changes), left, len(undo), tt.wantLeft)
			}
		})
	}
}

func TestTestedPatch(t *testing.T) {
	b, ok := testedPatch([]metaEdit{
		{Field: "labels", Key: "kdfir.io/quarantine", To: ptr("true")},
		{Field: "labels", Key: "a~b", From: ptr("old"), To: ptr("new")},
	})
	if !ok {
		t.Fatal("no patch")
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"op": "test", "path": "/metadata/labels/kdfir.io~1quarantine", "value": "true"},
		{"op": "remove", "path": "/metadata/labels/kdfir.io~1quarantine"},
		{"op": "test", "path": "/metadata/labels/a~0b", "value": "new"},
		{"op": "replace", "path": "/metadata/labels/a~0b", "value": "old"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("patch (-want +got):\n%s", diff)
	}
	// A removed key cannot be tested for absence: no fast path.
	if _, ok := testedPatch([]metaEdit{{Field: "labels", Key: "app", From: ptr("web")}}); ok {
		t.Fatal("tested patch for a removed key")
	}
}

func TestExecPolicy(t *testing.T) {
	p := ExecPolicy{Enabled: true, Allow: [][]string{{"cat"}, {"ls", "-la"}}}
	for _, tt := range []struct {
		argv []string
		want error
	}{
		{[]string{"cat", "/etc/passwd"}, nil},
		{[]string{"cat"}, nil},
		{[]string{"ls", "-la", "/"}, nil},
		{[]string{"ls", "/"}, ErrNotAllowed},
		{[]string{"ls"}, ErrNotAllowed},
		{[]string{"sh", "-c", "cat /etc/passwd"}, ErrNotAllowed},
	} {
		if err := p.check(tt.argv); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("check(%q) = %v, want %v", tt.argv, err, tt.want)
		}
	}
	if err := (ExecPolicy{Allow: [][]string{{"cat"}}}).check([]string{"cat"}); !errors.Is(err, ErrExecDisabled) {
		t.Errorf("disabled policy: %v", err)
	}
	if err := (ExecPolicy{Enabled: true}).check([]string{"anything"}); !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "allowlist is empty") {
		t.Errorf("empty allowlist without allowAny: %v", err)
	}
	if err := (ExecPolicy{Enabled: true, AllowAny: true}).check([]string{"anything"}); err != nil {
		t.Errorf("enabled policy without allowlist: %v", err)
	}
}

func TestCapped(t *testing.T) {
	c := &capped{max: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	text, enc, total, trunc := c.result()
	if text != "abcde" || enc != "" || total != 10 || !trunc {
		t.Fatalf("result = %q %q %d %v", text, enc, total, trunc)
	}
	bin := &capped{max: 10}
	bin.Write([]byte{0xff, 0xfe})
	if text, enc, _, trunc := bin.result(); text != "//4=" || enc != "base64" || trunc {
		t.Fatalf("binary result = %q %q %v", text, enc, trunc)
	}
}

func TestExitStatus(t *testing.T) {
	var exitErr utilexec.ExitError = utilexec.CodeExitError{Err: errors.New("command terminated with exit code 2"), Code: 2}
	if !errors.As(fmt.Errorf("wrapped: %w", exitErr), &exitErr) || exitErr.ExitStatus() != 2 {
		t.Fatal("CodeExitError not found through wrapping")
	}
	for msg, want := range map[string]int{
		"Internal error occurred: error executing command in container: cmd wait: cat /x: exit status 1": 1,
		"... : exit status 127":  127,
		"connection refused":     -1,
		"exit status 1 and more": -1,
	} {
		if got := runtimeExitStatus(errors.New(msg)); got != want {
			t.Errorf("runtimeExitStatus(%q) = %d, want %d", msg, got, want)
		}
	}
}

func TestCheckDenyAll(t *testing.T) {
	sel := map[string]string{QuarantineKey: QuarantineValue}
	ok := denyAllPolicy("ns", "kdfir-quarantine", sel, "id")
	if err := checkDenyAll(ok, sel, false); err != nil {
		t.Fatal(err)
	}
	allowsIngress := ok.DeepCopy()
	allowsIngress.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
	foreign := ok.DeepCopy()
	foreign.Labels = nil
	wider := ok.DeepCopy()
	wider.Spec.PodSelector = metav1.LabelSelector{}
	for name, p := range map[string]*networkingv1.NetworkPolicy{"allows ingress": allowsIngress, "not kdfir's": foreign, "selects more": wider} {
		if err := checkDenyAll(p, sel, false); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A named policy may be someone else's, but must still deny all
	// traffic of exactly those pods.
	if err := checkDenyAll(foreign, sel, true); err != nil {
		t.Errorf("named foreign deny-all: %v", err)
	}
	if err := checkDenyAll(wider, sel, true); err == nil {
		t.Error("named policy that selects more: accepted")
	}
	if quarantinePolicyName(QuarantineKey, QuarantineValue) != "kdfir-quarantine" || quarantinePolicyName("status", "quarantine") == "kdfir-quarantine" {
		t.Error("policy names")
	}
}
