package evidence_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/testenv"
)

// collectLocal collects the fixture's pod into a fresh directory and
// returns the collection's directory.
func collectLocal(t *testing.T, c *evidence.Collector, f *fixture) (string, *evidence.Result) {
	t.Helper()
	dest := t.TempDir()
	sink, err := evidence.OpenDest(dest)
	must(t, err)
	res, err := c.Collect(ctxFor(t, 2*time.Minute), sink, evidence.Request{Kind: evidence.KindPod, Namespace: f.ns, Name: f.pod.Name})
	must(t, err)
	return filepath.Join(dest, filepath.FromSlash(res.Prefix)), res
}

func verifyDir(t *testing.T, dir string, key ed25519.PublicKey) *evidence.Report {
	t.Helper()
	sink, err := evidence.NewDir(dir)
	must(t, err)
	rep, err := evidence.Verify(context.Background(), sink, key)
	must(t, err)
	return rep
}

type problem struct{ Kind, Path string }

func problems(r *evidence.Report) []problem {
	out := []problem{}
	for _, p := range r.Problems {
		out = append(out, problem{p.Kind, p.Path})
	}
	return out
}

// TestVerifyTampering changes a collection in each way an attacker or an
// accident could, and checks that verify fails and names the problem.
func TestVerifyTampering(t *testing.T) {
	env := testenv.Get(t)
	f := newFixture(t, env)
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	c := newCollector(t, env, key)
	const logPath = "pods/web-7f9/logs/app.log"
	const histPath = "pods/web-7f9/history/app/root/.bash_history"

	// Another collection of the same pod, signed by another key, gives a
	// valid signature of a different manifest.
	otherDir, _ := collectLocal(t, newCollector(t, env, newKey(t)), f)
	otherSig, err := os.ReadFile(filepath.Join(otherDir, evidence.SignatureName))
	must(t, err)

	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		key    ed25519.PublicKey
		want   []problem
	}{{
		name: "change a byte",
		tamper: func(t *testing.T, dir string) {
			p := filepath.Join(dir, filepath.FromSlash(logPath))
			b, err := os.ReadFile(p)
			must(t, err)
			b[len(b)/2] ^= 0x01
			must(t, os.WriteFile(p, b, 0o600))
		},
		want: []problem{{evidence.ProblemAltered, logPath}},
	}, {
		name:   "delete a file",
		tamper: func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, filepath.FromSlash(histPath)))) },
		want:   []problem{{evidence.ProblemMissing, histPath}},
	}, {
		name: "add a file",
		tamper: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "pods", "web-7f9", "logs", "planted.log"), []byte("innocent\n"), 0o600))
		},
		want: []problem{{evidence.ProblemExtra, "pods/web-7f9/logs/planted.log"}},
	}, {
		name: "swap the signature",
		tamper: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, evidence.SignatureName), otherSig, 0o600))
		},
		want: []problem{{evidence.ProblemSignature, evidence.SignatureName}},
	}, {
		name: "rewrite the manifest to match an altered file",
		tamper: func(t *testing.T, dir string) {
			p := filepath.Join(dir, evidence.ManifestName)
			b, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(p, []byte(strings.Replace(string(b), `"size": `, `"size":  `, 1)), 0o600))
		},
		want: []problem{{evidence.ProblemSignature, evidence.SignatureName}},
	}, {
		name: "re-sign everything with the attacker's key",
		tamper: func(t *testing.T, dir string) {
			// Replacing manifest.pub alters an artifact the manifest lists;
			// the trusted key does not verify the old signature.
			_, other, _ := ed25519.GenerateKey(nil)
			must(t, os.WriteFile(filepath.Join(dir, evidence.PublicKeyName), evidence.MarshalPublicKey(other.Public().(ed25519.PublicKey)), 0o600))
		},
		want: []problem{{evidence.ProblemAltered, evidence.PublicKeyName}},
	}, {
		name:   "a key that did not sign it",
		tamper: func(*testing.T, string) {},
		key:    newKey(t).Public().(ed25519.PublicKey),
		want:   []problem{{evidence.ProblemSignature, evidence.ManifestName}, {evidence.ProblemSignature, evidence.SignatureName}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := collectLocal(t, c, f)
			if rep := verifyDir(t, dir, pub); !rep.OK() {
				t.Fatalf("untouched collection does not verify: %+v", rep.Problems)
			}
			tc.tamper(t, dir)
			k := pub
			if tc.key != nil {
				k = tc.key
			}
			rep := verifyDir(t, dir, k)
			if rep.OK() {
				t.Fatal("verify passed a tampered collection")
			}
			got := problems(rep)
			// The manifest names the key that signed it; a different
			// trusted key is reported against manifest.json too.
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s\n%+v", diff, rep.Problems)
			}
		})
	}

	// Without a trusted key, verify uses the collection's manifest.pub:
	// intact evidence passes, and says the key is not trusted.
	dir, _ := collectLocal(t, c, f)
	rep := verifyDir(t, dir, nil)
	if !rep.OK() || rep.Trusted || rep.Key != evidence.Fingerprint(pub) {
		t.Fatalf("verify with manifest.pub: %+v", rep)
	}

	// Anyone can verify with openssl: manifest.sig is the base64 ed25519
	// signature of manifest.json, manifest.pub the PEM public key.
	if _, err := exec.LookPath("openssl"); err == nil {
		sig, err := os.ReadFile(filepath.Join(dir, evidence.SignatureName))
		must(t, err)
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
		must(t, err)
		sigBin := filepath.Join(t.TempDir(), "sig.bin")
		must(t, os.WriteFile(sigBin, raw, 0o600))
		out, err := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(dir, evidence.PublicKeyName),
			"-rawin", "-in", filepath.Join(dir, evidence.ManifestName), "-sigfile", sigBin).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
			t.Errorf("openssl verify: %v: %s", err, out)
		}
	}
}

// TestVerifyTamperedBlob alters and adds blobs under a collection's prefix
// in Azurite.
func TestVerifyTamperedBlob(t *testing.T) {
	env := testenv.Get(t)
	f := newFixture(t, env)
	key := newKey(t)
	c := newCollector(t, env, key)
	blobs := startAzurite(t)
	sasURL, _ := blobs.sasURL(t, time.Now().Add(time.Hour), allPerms())
	ctx := ctxFor(t, 2*time.Minute)
	sink, err := evidence.OpenDest(sasURL)
	must(t, err)
	res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindPod, Namespace: f.ns, Name: f.pod.Name})
	must(t, err)

	blobs.put(t, res.Prefix+"/pods/web-7f9/logs/app.log", []byte("nothing to see here\n"))
	blobs.put(t, res.Prefix+"/pods/web-7f9/extra.txt", []byte("x"))
	rep, err := evidence.Verify(ctx, sink.Sub(res.Prefix), key.Public().(ed25519.PublicKey))
	must(t, err)
	want := []problem{{evidence.ProblemExtra, "pods/web-7f9/extra.txt"}, {evidence.ProblemAltered, "pods/web-7f9/logs/app.log"}}
	if diff := cmp.Diff(want, problems(rep)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
