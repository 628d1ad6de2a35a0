package evidence_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/testenv"
)

func TestBadInput(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	key := newKey(t)
	c := newCollector(t, env, key)
	blobs := startAzurite(t)
	goodURL, goodSig := blobs.sasURL(t, time.Now().Add(time.Hour), allPerms())
	pod, err := env.RunPod(ctxFor(t, time.Minute), testenv.PodSpec{Namespace: ns, Name: "real", Logs: []string{"x"}})
	must(t, err)

	t.Run("nonexistent pod, local", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "evidence")
		sink, err := evidence.OpenDest(dest)
		must(t, err)
		_, err = c.Collect(ctxFor(t, time.Minute), sink, evidence.Request{Kind: evidence.KindPod, Namespace: ns, Name: "ghost"})
		if err == nil || !strings.Contains(err.Error(), "pod "+ns+"/ghost: not found") {
			t.Fatalf("err = %v, want pod not found", err)
		}
		if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("destination created for a pod that does not exist: %v", err)
		}
	})

	t.Run("nonexistent pod, blob", func(t *testing.T) {
		sink, err := evidence.OpenDest(goodURL)
		must(t, err)
		for _, req := range []evidence.Request{
			{Kind: evidence.KindPod, Namespace: ns, Name: "ghost"},
			{Kind: evidence.KindNamespace, Name: "no-such-namespace"},
			{Kind: evidence.KindNode, Name: "no-such-node"},
		} {
			if _, err := c.Collect(ctxFor(t, time.Minute), sink, req); err == nil || !strings.Contains(err.Error(), "not found") {
				t.Errorf("%s %s: err = %v, want not found", req.Kind, req.Name, err)
			}
		}
		if names := blobs.blobNames(t); len(names) != 0 {
			t.Fatalf("uploaded for targets that do not exist: %v", names)
		}
	})

	t.Run("expired SAS", func(t *testing.T) {
		expired, sig := blobs.sasURL(t, time.Now().Add(-time.Hour), allPerms())
		sink, err := evidence.OpenDest(expired)
		must(t, err)
		_, err = c.Collect(ctxFor(t, time.Minute), sink, evidence.Request{Kind: evidence.KindPod, Namespace: ns, Name: pod.Name})
		if err == nil || !strings.Contains(err.Error(), "SAS token") || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("err = %v, want an expired SAS token", err)
		}
		noSecret(t, err, sig)
		if names := blobs.blobNames(t); len(names) != 0 {
			t.Fatalf("uploaded with an expired token: %v", names)
		}
	})

	t.Run("invalid SAS", func(t *testing.T) {
		// Signed with a key that is not the account's.
		wrong, err := service.NewSharedKeyCredential(testenv.AzuriteAccount, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==")
		must(t, err)
		qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
			Permissions: allPerms().String(), ContainerName: blobs.container}.SignWithSharedKey(wrong)
		must(t, err)
		sink, err := evidence.OpenDest(blobs.az.URL + "/" + blobs.container + "?" + qp.Encode())
		must(t, err)
		_, err = c.Collect(ctxFor(t, time.Minute), sink, evidence.Request{Kind: evidence.KindPod, Namespace: ns, Name: pod.Name})
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "SAS token") {
			t.Fatalf("err = %v, want a 403 naming the SAS token", err)
		}
		if strings.Count(err.Error(), "\n") != 0 {
			t.Errorf("error is not one line: %q", err)
		}
		noSecret(t, err, qp.Signature())
		noSecret(t, err, goodSig)
		if names := blobs.blobNames(t); len(names) != 0 {
			t.Fatalf("uploaded with an invalid token: %v", names)
		}
	})

	t.Run("unwritable local path", func(t *testing.T) {
		// A path below a regular file cannot be created, even by root.
		file := filepath.Join(t.TempDir(), "file")
		must(t, os.WriteFile(file, nil, 0o600))
		sink, err := evidence.OpenDest(filepath.Join(file, "evidence"))
		must(t, err)
		_, err = c.Collect(ctxFor(t, time.Minute), sink, evidence.Request{Kind: evidence.KindPod, Namespace: ns, Name: pod.Name})
		if err == nil || !strings.Contains(err.Error(), "evidence directory "+filepath.Join(file, "evidence")+" cannot be created: not a directory") {
			t.Fatalf("err = %v, want a clear error naming the directory", err)
		}
	})
}

func noSecret(t *testing.T, err error, sig string) {
	t.Helper()
	for _, s := range []string{sig, strings.ReplaceAll(sig, "+", "%2B"), strings.ReplaceAll(strings.ReplaceAll(sig, "+", "%2B"), "/", "%2F")} {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error shows the SAS signature: %v", err)
		}
	}
}
