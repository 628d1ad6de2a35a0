package respond_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
)

// crashChildEnv makes the test binary a child that isolates a pod and
// exits with status 3 at the stage the variable names.
const crashChildEnv = "KDFIR_RESPOND_CRASH_AT"

func crashChild() int {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KDFIR_TEST_KUBECONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	j, err := journal.Open(ctx, os.Getenv("KDFIR_TEST_JOURNAL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := &respond.Runner{Client: cs, Config: cfg, Journal: j, Actions: respond.Builtin(respond.ExecPolicy{}), Cluster: "testenv", Actor: "child"}
	stage := os.Getenv(crashChildEnv)
	respond.SetTestHook(func(s string) {
		if s == stage {
			os.Exit(3) // no deferred call, no outcome: as if killed
		}
	})
	_, err = r.Run(ctx, respond.Request{Action: "isolate-pod", Target: os.Getenv("KDFIR_TEST_TARGET")})
	if strings.HasPrefix(stage, "revert-") && err == nil {
		// The isolation went through: die while releasing it.
		_, err = r.Release(ctx, "isolate-pod", os.Getenv("KDFIR_TEST_TARGET"), false)
	}
	fmt.Fprintf(os.Stderr, "child: run returned without crashing at %q: %v\n", stage, err)
	return 1
}

// A process that dies at any step of an isolation or of its release leaves
// an entry that a release, run again, reverts from what it recorded:
// nothing is left behind.
func TestCrashBetweenIntentAndOutcome(t *testing.T) {
	for _, stage := range []string{"intent", "applied", "revert-intent", "revert-applied"} {
		t.Run(stage, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			env := f.env
			ns := env.Namespace(t)
			before := parkedPod(t, env, ns, "web", map[string]string{"app": "web"})
			path := filepath.Join(t.TempDir(), "journal.db")

			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), crashChildEnv+"="+stage,
				"KDFIR_TEST_KUBECONFIG="+env.Kubeconfig, "KDFIR_TEST_JOURNAL="+path, "KDFIR_TEST_TARGET="+target(ns, "web"))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 {
				t.Fatalf("child: %v (want exit status 3)\n%s", err, out)
			}

			j, err := journal.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			all, err := j.List(ctx, journal.Filter{})
			if err != nil || len(all) != 1 {
				t.Fatalf("journal: %d entries, %v; want 1", len(all), err)
			}
			e := all[0]
			releasing := strings.HasPrefix(stage, "revert-")
			want := journal.Incomplete
			if releasing {
				want = journal.Succeeded
				if e.Revert == nil || e.Revert.Status != journal.Pending {
					t.Fatalf("entry after a crash while releasing: revert %+v, want pending", e.Revert)
				}
			}
			if e.Status != want || len(e.Prior) != 1 || len(e.Created) != 1 {
				t.Fatalf("entry after crash: status %s, %d priors, %d created; want %s, 1, 1", e.Status, len(e.Prior), len(e.Created), want)
			}
			labelled := getPod(t, env, ns, "web").Labels[respond.QuarantineKey] == "true"
			if labelled != (stage == "applied" || stage == "revert-intent") {
				t.Fatalf("after a crash at %s the pod is labelled: %v", stage, labelled)
			}

			f.runner.Journal = j
			rel, err := f.runner.Release(ctx, "isolate-pod", target(ns, "web"), false)
			if err != nil || rel.Status != respond.StatusReverted || rel.ID != e.ID {
				t.Fatalf("release of the incomplete action = %+v, %v", rel, err)
			}
			if diff := cmp.Diff(before, getPod(t, env, ns, "web"), ignoreVolatile); diff != "" {
				t.Fatalf("pod after revert (-before +after):\n%s", diff)
			}
			if p := getPolicy(t, env, ns, "kdfir-quarantine"); p != nil {
				t.Fatal("policy left after revert")
			}
			if e, _ := j.Get(ctx, e.ID); e.Revert == nil || e.Revert.Status != journal.Succeeded {
				t.Fatalf("revert not journaled: %+v", e.Revert)
			}
		})
	}
}
