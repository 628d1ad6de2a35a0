package respond_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
	"github.com/kdfir/kdfir/internal/testenv"
)

func TestExec(t *testing.T) {
	const capBytes = 64
	f := newFixture(t, withExec(respond.ExecPolicy{Enabled: true, AllowAny: true, MaxOutputBytes: capBytes}))
	env := f.env
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	big := strings.Repeat("0123456789", 20) // 200 bytes
	if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "web", Containers: []string{"sidecar", "app"},
		Files: map[string]string{"/etc/hostname": "web-7f9\n", "/var/log/big.log": big}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		params  respond.ExecPodParams
		want    respond.ExecOutput // Stdout prefix, exit code, truncation
		wantErr string
	}{
		{name: "stdout", params: respond.ExecPodParams{Container: "app", Command: []string{"cat", "/etc/hostname"}},
			want: respond.ExecOutput{Container: "app", Stdout: "web-7f9\n", StdoutBytes: 8}},
		{name: "default container is the first", params: respond.ExecPodParams{Command: []string{"cat", "/etc/hostname"}},
			want: respond.ExecOutput{Container: "sidecar", Stdout: "web-7f9\n", StdoutBytes: 8}},
		{name: "truncated", params: respond.ExecPodParams{Container: "app", Command: []string{"cat", "/var/log/big.log"}},
			want: respond.ExecOutput{Container: "app", Stdout: big[:capBytes], StdoutBytes: 200, StdoutTruncated: true}},
		{name: "failing command", params: respond.ExecPodParams{Container: "app", Command: []string{"cat", "/nonexistent"}},
			want: respond.ExecOutput{Container: "app", ExitCode: 1}},
		{name: "timeout", params: respond.ExecPodParams{Container: "app", Command: []string{"sleep", "10"}, Timeout: "1s"},
			want: respond.ExecOutput{Container: "app", ExitCode: -1, TimedOut: true}, wantErr: "timed out after 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.runner.Run(ctx, respond.Request{Action: "exec-pod", Target: target(ns, "web"), Params: tt.params, Reason: "triage"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			// What the journal holds, not only what Run returned.
			e, jerr := f.journal.Get(ctx, res.ID)
			if jerr != nil {
				t.Fatal(jerr)
			}
			var got respond.ExecOutput
			if err := json.Unmarshal(e.Result, &got); err != nil {
				t.Fatalf("journaled result %s: %v", e.Result, err)
			}
			if (e.Status == journal.Failed) != (tt.wantErr != "") {
				t.Fatalf("journal status %s (error %q)", e.Status, e.Error)
			}
			tt.want.Command = tt.params.Command
			tt.want.MaxOutputBytes = capBytes
			if tt.want.ExitCode != 0 {
				// Only check stderr was captured.
				if tt.want.ExitCode > 0 && (got.Stderr == "" || got.StderrBytes == 0) {
					t.Fatalf("no stderr captured for a failing command: %+v", got)
				}
				tt.want.Stderr, tt.want.StderrBytes, tt.want.StderrTruncated = got.Stderr, got.StderrBytes, got.StderrBytes > capBytes
			}
			got.DurationMS = 0
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("journaled exec output (-want +got):\n%s", diff)
			}
			if tt.want.StdoutTruncated && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "stdout truncated: kept 64 of 200 bytes")) {
				t.Fatalf("warnings = %q", res.Warnings)
			}
		})
	}

	// Exec cannot be reverted, and says so.
	all := f.entries(t)
	if _, err := f.runner.Revert(ctx, all[0].ID, false); !errors.Is(err, respond.ErrNotRevertible) {
		t.Fatalf("revert exec: %v, want ErrNotRevertible", err)
	}
}

func TestExecAllowlist(t *testing.T) {
	f := newFixture(t, withExec(respond.ExecPolicy{Enabled: true, Allow: [][]string{{"cat"}, {"ls", "-la"}}}))
	env := f.env
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := env.RunPod(ctx, testenv.PodSpec{Namespace: ns, Name: "web", Files: map[string]string{"/etc/hostname": "web\n"}}); err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{{"ls", "/"}, {"id"}, {"sh", "-c", "cat /etc/hostname"}, {"catx"}} {
		f.calls.Store(0)
		_, err := f.runner.Run(ctx, respond.Request{Action: "exec-pod", Target: target(ns, "web"), Params: respond.ExecPodParams{Command: argv}})
		if !errors.Is(err, respond.ErrNotAllowed) || f.calls.Load() != 0 {
			t.Fatalf("%q: err = %v after %d API calls; want ErrNotAllowed before any", argv, err, f.calls.Load())
		}
	}
	for _, argv := range [][]string{{"cat", "/etc/hostname"}, {"ls", "-la", "/etc"}} {
		res, err := f.runner.Run(ctx, respond.Request{Action: "exec-pod", Target: target(ns, "web"), Params: respond.ExecPodParams{Command: argv}})
		if err != nil {
			t.Fatalf("%q: %v", argv, err)
		}
		if out := res.Output.(respond.ExecOutput); out.ExitCode != 0 || !strings.Contains(out.Stdout, "hostname") && argv[0] == "ls" {
			t.Fatalf("%q: %+v", argv, out)
		}
	}
	if n := len(f.entries(t)); n != 2 {
		t.Fatalf("journal has %d entries, want the 2 allowed commands", n)
	}
}
