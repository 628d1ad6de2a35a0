package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"time"

	"github.com/kdfir/kdfir/internal/config"
)

// certReloader serves a certificate from files and reloads it when either
// file changes (checked at most once a second, on handshakes).
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) latestMod() time.Time {
	var latest time.Time
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	return latest
}

func (r *certReloader) load() error {
	mod := r.latestMod()
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	r.cert, r.modTime = &c, mod
	return nil
}

// GetCertificate is tls.Config.GetCertificate. A reload that fails keeps
// serving the previous certificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) > time.Second {
		r.checked = time.Now()
		if mod := r.latestMod(); mod.After(r.modTime) {
			_ = r.load()
		}
	}
	return r.cert, nil
}

// selfSigned makes a throwaway certificate for the listen host.
func selfSigned(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kdfir self-signed"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if host != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// TLSConfig returns the server's TLS configuration: TLS 1.2 or later, from
// files that are reloaded on change, or a self-signed certificate when no
// files are given (selfSignedUsed reports that, so the caller can warn).
func TLSConfig(certFile, keyFile, host string) (cfg *tls.Config, selfSignedUsed bool, err error) {
	cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case certFile != "" && keyFile != "":
		r, err := newCertReloader(certFile, keyFile)
		if err != nil {
			return nil, false, err
		}
		cfg.GetCertificate = r.GetCertificate
		return cfg, false, nil
	case certFile != "" || keyFile != "":
		return nil, false, fmt.Errorf("tls: both cert and key are needed")
	default:
		c, err := selfSigned(host)
		if err != nil {
			return nil, false, err
		}
		cfg.Certificates = []tls.Certificate{*c}
		return cfg, true, nil
	}
}

// IsLoopback reports whether a listen address binds only loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && config.IsLoopbackHost(host)
}
