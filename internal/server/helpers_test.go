package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeServingCert makes kdfir serve's certificate for 127.0.0.1; being
// self-signed, it is also the CA the webhook and the tests trust.
func writeServingCert(dir string) (certPath, keyPath string, ca []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kdfir-serve-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certPath, keyPath = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, ca, 0o600); err != nil {
		panic(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		panic(err)
	}
	return certPath, keyPath, ca
}

func newPool(ca []byte) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func writePlaybooks(t testing.TB, dir, sasURL string) {
	t.Helper()
	books := map[string]string{
		"held-collect.yaml": `name: held-collect
match: {source: [kdfir], title: "^held collect", entities: [pod]}
steps:
- {action: collect-pod, params: {to: "` + sasURL + `"}, requires_approval: true}
`,
		"defender.yaml": `name: defender-collect-then-isolate
match: {source: [defender], severity: high, entities: [pod]}
steps:
- {name: evidence, action: collect-pod, params: {destination: default}, on_failure: continue}
- {name: quarantine, action: isolate-pod}
`,
		"falco.yaml": `name: falco-shell-isolate
match: {source: [falco], title: "(?i)shell", entities: [pod]}
steps:
- action: isolate-pod
`,
		"approval.yaml": `name: approve-then-isolate
match: {source: [kdfir], title: "^needs approval", entities: [pod]}
steps:
- {action: isolate-pod, requires_approval: true}
- {action: cordon-node}
`,
		"load.yaml": `name: load-isolate
match: {source: [kdfir], title: "^load", entities: [pod]}
steps:
- action: isolate-pod
`,
		"exec.yaml": `name: exec-collect-then-isolate
match: {source: [kdfir], rule: [k8s-exec-into-pod], entities: [pod]}
steps:
- {name: evidence, action: collect-pod, params: {destination: default}, on_failure: continue}
- {name: quarantine, action: isolate-pod}
`,
	}
	for name, body := range books {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
