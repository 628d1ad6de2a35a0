package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/auth"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// On shutdown (SIGTERM cancels the command's context), kdfir serve stops
// taking requests, finishes the one in flight, and exits 0.
func TestServeFinishesRequestsInFlight(t *testing.T) {
	dir := t.TempDir()
	key, hash, err := auth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "kdfir.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("listen: %s\napiKeys:\n- {name: apiserver, hash: %q, scopes: [audit]}\nbuiltinRules: false\n", addr, hash)), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errOut syncWriter
	go func() {
		done <- Execute(ctx, []string{"--data-dir", filepath.Join(dir, "data"), "serve", "--config", cfg, "--insecure-http"}, &out, &errOut)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An audit batch whose body is still arriving when shutdown begins.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/audit", pr)
	req.Header.Set("Authorization", "Bearer "+key)
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{code: resp.StatusCode, body: string(b)}
	}()
	io.WriteString(pw, `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[`)
	time.Sleep(200 * time.Millisecond)
	cancel() // what SIGTERM does
	time.Sleep(300 * time.Millisecond)
	io.WriteString(pw, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","verb":"get","requestURI":"/api","stageTimestamp":"2026-11-23T06:00:00Z"}]}`)
	pw.Close()
	r := <-res
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, `"stored": 1`) {
		t.Fatalf("request in flight: %d %q %v", r.code, r.body, r.err)
	}
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("serve exited %d: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after shutdown")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestServeRefusesInsecureHTTPOffLoopback(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kdfir.yaml")
	os.WriteFile(cfg, []byte("listen: 0.0.0.0:8443\n"), 0o600)
	code, _, stderr := runCLI(t, "--data-dir", dir, "serve", "--config", cfg, "--insecure-http")
	if code != ExitUsage || !strings.Contains(stderr, "loopback") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:8443\napiKeys:\n- {name: k, hash: plain-key, scopes: [read]}\n"), 0o600)
	code, _, stderr = runCLI(t, "config", "check", cfg)
	if code != ExitFailure || !strings.Contains(stderr, "kdfir.yaml:3") {
		t.Fatalf("config check: exit %d: %s", code, stderr)
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
func (w *syncWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }
