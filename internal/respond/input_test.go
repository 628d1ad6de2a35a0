package respond_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
)

// Bad input is refused before any API call, and nothing is journaled.
func TestInvalidInputMakesNoAPICall(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		req     respond.Request
		wantErr string
		is      error // when not an *InputError
	}{
		{req: respond.Request{Action: "isolate-pod", Target: "web"}, wantErr: `invalid pod "web": want NAMESPACE/NAME`},
		{req: respond.Request{Action: "isolate-pod", Target: "shop/Web_1"}, wantErr: `invalid pod name "Web_1"`},
		{req: respond.Request{Action: "isolate-pod", Target: "Shop/web"}, wantErr: `invalid namespace name "Shop"`},
		{req: respond.Request{Action: "isolate-pod", Target: "shop/web/x"}, wantErr: "want NAMESPACE/NAME"},
		{req: respond.Request{Action: "isolate-pod", Target: "shop/web", Params: respond.IsolatePodParams{Label: "bad key=x"}}, wantErr: `invalid label key "bad key"`},
		{req: respond.Request{Action: "isolate-pod", Target: "shop/web", Params: respond.IsolatePodParams{Label: "status"}}, wantErr: `invalid label "status": want KEY=VALUE`},
		{req: respond.Request{Action: "isolate-pod", Target: "shop/web", Params: []byte(`{"lable":"x=y"}`)}, wantErr: `unknown field "lable"`},
		{req: respond.Request{Action: "isolate-namespace", Target: "-shop"}, wantErr: `invalid namespace name "-shop"`},
		{req: respond.Request{Action: "isolate-namespace", Target: "shop", Params: respond.IsolateNamespaceParams{Label: "pod-security.kubernetes.io/enforce=privileged"}},
			wantErr: `label key "pod-security.kubernetes.io/enforce" is reserved for Kubernetes`},
		{req: respond.Request{Action: "isolate-pod", Target: "shop/web", Params: respond.IsolatePodParams{Label: "node-role.kubernetes.io/x=y"}}, wantErr: "reserved for Kubernetes"},
		{req: respond.Request{Action: "isolate-pod", Target: "shop/web", Params: respond.IsolatePodParams{Label: "k8s.io/x=y"}}, wantErr: "reserved for Kubernetes"},
		{req: respond.Request{Action: "isolate-pod", Target: "shop/web", Params: respond.IsolatePodParams{Policy: "Bad_Name"}}, wantErr: `invalid policy name "Bad_Name"`},
		{req: respond.Request{Action: "cordon-node", Target: "node 1"}, wantErr: `invalid node name "node 1"`},
		{req: respond.Request{Action: "reboot-node", Target: "n1"}, wantErr: `unknown action "reboot-node"`},
		{req: respond.Request{Action: "exec-pod", Target: "shop/web", Params: respond.ExecPodParams{Command: []string{"id"}}}, is: respond.ErrExecDisabled},
		{req: respond.Request{Action: "exec-pod", Target: "shop/web", Params: respond.ExecPodParams{Command: []string{"id"}, Timeout: "8760h"}}, wantErr: "longer than the maximum, 10m0s"},
	}
	for _, tt := range tests {
		f.calls.Store(0)
		_, err := f.runner.Run(context.Background(), tt.req)
		var ie *respond.InputError
		switch {
		case err == nil:
			t.Errorf("%s %s: no error", tt.req.Action, tt.req.Target)
		case tt.is != nil && !errors.Is(err, tt.is):
			t.Errorf("%s %s: err = %v, want %v", tt.req.Action, tt.req.Target, err, tt.is)
		case tt.is == nil && (!errors.As(err, &ie) || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s %s: err = %v, want an InputError with %q", tt.req.Action, tt.req.Target, err, tt.wantErr)
		}
		if n := f.calls.Load(); n != 0 {
			t.Errorf("%s %s: %d API calls before refusing", tt.req.Action, tt.req.Target, n)
		}
	}
	if _, err := f.runner.Release(context.Background(), "isolate-pod", "shop/Bad", false); err == nil || f.calls.Load() != 0 {
		t.Errorf("release of an invalid pod: %v after %d calls", err, f.calls.Load())
	}
	if n := len(f.entries(t)); n != 0 {
		t.Fatalf("journal has %d entries, want 0", n)
	}
}

// A target that does not exist is named in the error, and nothing is
// changed or journaled.
func TestMissingTargets(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ns := f.env.Namespace(t)
	tests := []struct {
		run     func() error
		wantErr string
	}{
		{func() error {
			_, err := f.runner.Run(ctx, respond.Request{Action: "isolate-pod", Target: ns + "/ghost"})
			return err
		}, "pod " + ns + "/ghost not found"},
		{func() error {
			_, err := f.runner.Run(ctx, respond.Request{Action: "isolate-namespace", Target: "ghost-ns-404"})
			return err
		}, "namespace ghost-ns-404 not found"},
		{func() error {
			_, err := f.runner.Run(ctx, respond.Request{Action: "cordon-node", Target: "ghost-node"})
			return err
		}, "node ghost-node not found"},
		{func() error {
			_, err := f.runner.Release(ctx, "isolate-pod", ns+"/ghost", false)
			return err
		}, "pod " + ns + "/ghost not found"},
		{func() error {
			_, err := f.runner.Release(ctx, "cordon-node", "ghost-node", false)
			return err
		}, "node ghost-node not found"},
		{func() error {
			_, err := f.runner.Revert(ctx, "20260101T000000Z-00000000", false)
			if !errors.Is(err, journal.ErrNotFound) {
				return errors.New("not ErrNotFound")
			}
			return err
		}, "no such action: 20260101T000000Z-00000000"},
	}
	for _, tt := range tests {
		if err := tt.run(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("err = %v, want %q", err, tt.wantErr)
		}
	}
	if n := len(f.entries(t)); n != 0 {
		t.Fatalf("journal has %d entries, want 0", n)
	}
	if pols, _ := f.env.Client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{}); len(pols.Items) != 0 {
		t.Fatalf("%d policies created", len(pols.Items))
	}
}
