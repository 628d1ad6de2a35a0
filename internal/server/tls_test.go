package server

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writePair(t *testing.T, dir string) *tls.Certificate {
	t.Helper()
	c, err := selfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := encodePair(t, c)
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// The certificate files are reloaded when they change, and a broken
// replacement keeps the last good certificate.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	first := writePair(t, dir)
	cfg, self, err := TLSConfig(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), "127.0.0.1")
	if err != nil || self || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLSConfig = %v, self-signed %v, min %x", err, self, cfg.MinVersion)
	}
	got, _ := cfg.GetCertificate(nil)
	if string(got.Certificate[0]) != string(first.Certificate[0]) {
		t.Fatal("not serving the first certificate")
	}
	time.Sleep(1100 * time.Millisecond) // reloads are checked at most once a second
	second := writePair(t, dir)
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(filepath.Join(dir, "tls.crt"), future, future)
	got, _ = cfg.GetCertificate(nil)
	if string(got.Certificate[0]) != string(second.Certificate[0]) {
		t.Fatal("the changed certificate was not reloaded")
	}
	time.Sleep(1100 * time.Millisecond)
	os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("garbage"), 0o600)
	later := time.Now().Add(4 * time.Second)
	os.Chtimes(filepath.Join(dir, "tls.crt"), later, later)
	got, _ = cfg.GetCertificate(nil)
	if string(got.Certificate[0]) != string(second.Certificate[0]) {
		t.Fatal("a broken certificate replaced the good one")
	}
	if _, self, err := TLSConfig("", "", "127.0.0.1"); err != nil || !self {
		t.Fatal("no self-signed fallback")
	}
	if _, _, err := TLSConfig(filepath.Join(dir, "tls.crt"), "", ""); err == nil {
		t.Fatal("a cert without a key was accepted")
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:80": true, "[::1]:80": true, "localhost:1": true, "0.0.0.0:80": false, "10.0.0.1:80": false, ":8443": false} {
		if IsLoopback(addr) != want {
			t.Errorf("IsLoopback(%q) != %v", addr, want)
		}
	}
}
