package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/testenv"
)

// The deploy/ manifests are accepted by a real API server (server-side dry
// run, as kubectl apply --dry-run=server does), and the config they ship
// fails closed until real key hashes replace the placeholder.
func TestDeployManifestsDryRun(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kdfir"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dc := discovery.NewDiscoveryClientForConfigOrDie(env.Config)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn := dynamic.NewForConfigOrDie(env.Config)
	files, _ := filepath.Glob("../../deploy/*.yaml")
	if len(files) < 2 {
		t.Fatalf("deploy manifests: %v", files)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var obj unstructured.Unstructured
			if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj.Object == nil {
				continue
			}
			gvk := obj.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: %s: %v", f, gvk, err)
			}
			ri := dyn.Resource(m.Resource)
			var rc dynamic.ResourceInterface = ri
			if ns := obj.GetNamespace(); ns != "" {
				rc = ri.Namespace(ns)
			}
			if _, err := rc.Create(ctx, &obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Errorf("%s: %s %s rejected: %v", f, gvk.Kind, obj.GetName(), err)
			}
			n++
			if obj.GetKind() == "Secret" && obj.GetName() == "kdfir-config" {
				cfg, _, _ := unstructured.NestedString(obj.Object, "stringData", "config.yaml")
				if _, err := config.Parse("config.yaml", []byte(cfg)); err == nil {
					t.Error("the shipped config validates with a placeholder key hash")
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d objects in deploy/", n)
	}
}

// Images are pinned: base images by digest, the deployment to a version,
// never :latest.
func TestImagesPinned(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	froms := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "FROM ") {
			froms++
			if !regexp.MustCompile(`@sha256:[0-9a-f]{64}\b`).MatchString(line) {
				t.Errorf("Dockerfile: %q is not pinned by digest", line)
			}
		}
	}
	if froms < 2 {
		t.Fatalf("Dockerfile has %d FROM lines", froms)
	}
	files, _ := filepath.Glob("../../deploy/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^\s*image:\s*(\S+)`).FindAllStringSubmatch(string(b), -1) {
			img := m[1]
			if strings.HasSuffix(img, ":latest") || !strings.Contains(img[strings.LastIndex(img, "/")+1:], ":") {
				t.Errorf("%s: image %s has no version", f, img)
			}
		}
	}
}
