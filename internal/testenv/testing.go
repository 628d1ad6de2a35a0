package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

var (
	shared     *Env
	sharedErr  error
	sharedOnce sync.Once
	sharedOpts Options
)

// Main runs a package's tests with one shared control plane, started lazily
// by the first test that calls Get, and stopped when the tests end. When a
// test failed, it prints the tail of every component's log.
func Main(m *testing.M, opts Options) int {
	sharedOpts = opts
	code := m.Run()
	if shared != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "\n===== testenv component logs =====\n%s\n", shared.Logs(60))
		}
		shared.Stop()
	}
	return code
}

// Get returns the package's control plane, starting it on first use. It
// skips the test only when KDFIR_SKIP_CLUSTER=1; any other failure to start
// fails the test.
func Get(tb testing.TB) *Env {
	tb.Helper()
	if os.Getenv("KDFIR_SKIP_CLUSTER") == "1" {
		tb.Skip("KDFIR_SKIP_CLUSTER=1: skipping a test that needs a Kubernetes control plane")
	}
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared, sharedErr = Start(ctx, sharedOpts)
	})
	if sharedErr != nil {
		tb.Fatalf("start control plane: %v", sharedErr)
	}
	return shared
}

// Namespace creates a fresh namespace for one test, with its default
// ServiceAccount, and deletes it when the test ends.
func (e *Env) Namespace(tb testing.TB) string {
	tb.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(tb.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + "-" + rand.String(5)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := e.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("create namespace: %v", err)
	}
	// The controller manager creates it too; creating it here makes pods
	// admissible at once.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	_, _ = e.Client.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{})
	tb.Cleanup(func() {
		_ = e.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}
