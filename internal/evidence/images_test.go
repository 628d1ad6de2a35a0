package evidence_test

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/testenv"
)

// TestExportImages exports a pod's images by digest from a registry (go-
// containerregistry's in-process registry, a real registry
// implementation) as OCI layout tarballs: a plain image, and from a
// multi-platform index the image for the node's platform. With no user
// from `id -un`, the image config's User finds the home directory.
func TestExportImages(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx := ctxFor(t, 2*time.Minute)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	img, err := random.Image(2048, 3)
	must(t, err)
	cfg, err := img.ConfigFile()
	must(t, err)
	cfg.Config.User = "alice"
	img, err = mutate.ConfigFile(img, cfg)
	must(t, err)
	amd64, err := random.Image(1024, 2)
	must(t, err)
	arm64, err := random.Image(1024, 2)
	must(t, err)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})

	appTag, err := name.NewTag(host + "/shop/app:v1")
	must(t, err)
	must(t, remote.Write(appTag, img, remote.WithContext(ctx)))
	sideTag, err := name.NewTag(host + "/shop/side:v1")
	must(t, err)
	must(t, remote.WriteIndex(sideTag, idx, remote.WithContext(ctx)))
	appDigest, err := img.Digest()
	must(t, err)
	idxDigest, err := idx.Digest()
	must(t, err)
	amd64Digest, err := amd64.Digest()
	must(t, err)
	appRef := host + "/shop/app@" + appDigest.String()
	sideRef := host + "/shop/side@" + idxDigest.String()

	_, err = env.RunPod(ctx, testenv.PodSpec{
		Namespace: ns, Name: "img", Containers: []string{"app", "side"},
		Files: map[string]string{
			"/.user":                    "", // `id -un` prints nothing
			"/etc/passwd":               "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
			"/home/alice/.bash_history": aliceHistory,
			"/root/.bash_history":       plantedHistory,
		},
		Logs: []string{"x"},
		Mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = host + "/shop/app:v1"
			p.Spec.Containers[1].Image = host + "/shop/side:v1"
		},
	})
	must(t, err)
	updateStatus(t, env, ns, "img", func(p *corev1.Pod) {
		for i := range p.Status.ContainerStatuses {
			s := &p.Status.ContainerStatuses[i]
			s.ImageID = map[string]string{"app": "docker-pullable://" + appRef, "side": sideRef}[s.Name]
		}
	})

	c := newCollector(t, env, newKey(t))
	dest := t.TempDir()
	sink, err := evidence.OpenDest(dest)
	must(t, err)
	res, err := c.Collect(ctx, sink, evidence.Request{Kind: evidence.KindPod, Namespace: ns, Name: "img", Images: true})
	must(t, err)
	if len(res.Failed) != 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	dir := filepath.Join(dest, filepath.FromSlash(res.Prefix))
	m := readManifest(t, dir)

	var images []struct{ Container, Digest, Reference, Export string }
	b, err := os.ReadFile(filepath.Join(dir, "pods", "img", "images.json"))
	must(t, err)
	must(t, json.Unmarshal(b, &images))
	wantExport := map[string]string{
		"app":  "images/sha256-" + appDigest.Hex + ".tar",
		"side": "images/sha256-" + idxDigest.Hex + ".tar",
	}
	for _, im := range images {
		if im.Export != wantExport[im.Container] {
			t.Errorf("images.json %+v, want export %s", im, wantExport[im.Container])
		}
		a, ok := artifact(m, im.Export)
		if !ok || !strings.HasPrefix(a.Source, "registry: "+host) {
			t.Errorf("manifest entry for %s: %+v", im.Export, a)
		}
	}

	// The plain image: index.json names it, and every blob is there, under
	// its own digest.
	blobs, index := readOCITar(t, filepath.Join(dir, filepath.FromSlash(wantExport["app"])))
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != appDigest {
		t.Fatalf("index.json %+v, want %s", index, appDigest)
	}
	checkImageBlobs(t, img, blobs)

	// The index: the amd64 image (the kwok node's platform), not arm64.
	blobs, index = readOCITar(t, filepath.Join(dir, filepath.FromSlash(wantExport["side"])))
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != amd64Digest {
		t.Fatalf("index.json %+v, want the amd64 image %s", index, amd64Digest)
	}
	checkImageBlobs(t, amd64, blobs)
	if !blobs[idxDigest] {
		t.Error("the index itself is not in the tarball")
	}
	armLayers, err := arm64.Layers()
	must(t, err)
	for _, l := range armLayers {
		d, _ := l.Digest()
		if blobs[d] {
			t.Errorf("arm64 layer %s exported", d)
		}
	}

	// The image's user found the home directory.
	got, err := os.ReadFile(filepath.Join(dir, "pods", "img", "history", "app", "home", "alice", ".bash_history"))
	if err != nil || string(got) != aliceHistory {
		t.Errorf("alice's history = %q, %v", got, err)
	}
}

// readOCITar reads an OCI layout tarball: the digests of its blobs, each
// checked against its content, and its index.json.
func readOCITar(t *testing.T, path string) (map[v1.Hash]bool, v1.IndexManifest) {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	blobs := map[v1.Hash]bool{}
	var index v1.IndexManifest
	layout := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		switch {
		case hdr.Name == "oci-layout":
			layout = true
		case hdr.Name == "index.json":
			must(t, json.NewDecoder(tr).Decode(&index))
		case strings.HasPrefix(hdr.Name, "blobs/sha256/"):
			h := sha256.New()
			_, err := io.Copy(h, tr)
			must(t, err)
			hexSum := strings.TrimPrefix(hdr.Name, "blobs/sha256/")
			if hex.EncodeToString(h.Sum(nil)) != hexSum {
				t.Errorf("blob %s does not match its digest", hdr.Name)
			}
			blobs[v1.Hash{Algorithm: "sha256", Hex: hexSum}] = true
		default:
			t.Errorf("unexpected entry %s", hdr.Name)
		}
	}
	if !layout {
		t.Error("no oci-layout file")
	}
	return blobs, index
}

func checkImageBlobs(t *testing.T, img v1.Image, blobs map[v1.Hash]bool) {
	t.Helper()
	d, _ := img.Digest()
	c, _ := img.ConfigName()
	want := []v1.Hash{d, c}
	layers, err := img.Layers()
	must(t, err)
	for _, l := range layers {
		ld, _ := l.Digest()
		want = append(want, ld)
	}
	for _, h := range want {
		if !blobs[h] {
			t.Errorf("blob %s missing from the tarball", h)
		}
	}
}
