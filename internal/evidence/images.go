package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
)

// resolveDigest finds an image's pullable repository@digest reference and
// its digest, from the status imageID ("docker-pullable://repo@sha256:…",
// "repo@sha256:…") or, failing that, from a spec image pinned by digest.
// An imageID that is only an image id ("sha256:…") gives the digest but no
// reference.
func resolveDigest(image, imageID string) (ref, digest string) {
	id := imageID
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	if strings.Contains(id, "@") {
		if d, err := name.NewDigest(id); err == nil {
			return d.Name(), d.DigestStr()
		}
	}
	if strings.Contains(image, "@") {
		if d, err := name.NewDigest(image); err == nil {
			return d.Name(), d.DigestStr()
		}
	}
	if strings.HasPrefix(id, "sha256:") {
		return "", id
	}
	return "", ""
}

// imagePath is where an exported image goes: one tarball per digest.
func imagePath(digest string) string {
	return "images/" + pathSegment(strings.ReplaceAll(digest, ":", "-")) + ".tar"
}

// exportImages exports each of a pod's images by digest, once per
// collection.
func (r *run) exportImages(pod *corev1.Pod, dir string, images []imageRef) {
	for _, im := range images {
		if im.Reference == "" {
			r.failed(dir+"images/"+pathSegment(im.Container)+".tar", "registry",
				fmt.Errorf("image %q of container %s has no repository digest (imageID %q): cannot export it by digest", im.Image, im.Container, im.ImageID))
			continue
		}
		r.spawn(func(ctx context.Context) {
			platform := r.platform(ctx, pod.Spec.NodeName)
			r.collect(ctx, item{path: im.Export, source: "registry: " + im.Reference + " (" + platform.String() + ")", container: im.Container,
				open: func(ctx context.Context) (io.ReadCloser, error) {
					return goPipe(ctx, func(ctx context.Context, w io.Writer) error {
						return writeOCILayout(ctx, w, im.Reference, platform, r.c.registryOptions(ctx))
					}), nil
				}})
		})
	}
}

// platform is the OS and architecture of a node, for choosing an image
// from a multi-platform index.
func (r *run) platform(ctx context.Context, nodeName string) v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	if nodeName == "" {
		return p
	}
	if n := r.nodeObject(ctx, nodeName); n != nil && n.Status.NodeInfo.Architecture != "" {
		p.OS, p.Architecture = n.Status.NodeInfo.OperatingSystem, n.Status.NodeInfo.Architecture
	}
	return p
}

func (c *Collector) registryOptions(ctx context.Context) []remote.Option {
	return append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent("kdfir"),
	}, c.opts.RegistryOptions...)
}

// imageUser reads the user an image runs as (its config's User) from the
// registry.
func (c *Collector) imageUser(ctx context.Context, ref string, platform v1.Platform) (string, error) {
	d, err := name.NewDigest(ref)
	if err != nil {
		return "", err
	}
	img, err := remote.Image(d, append(c.registryOptions(ctx), remote.WithPlatform(platform))...)
	if err != nil {
		return "", fmt.Errorf("read image %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("read image config of %s: %w", ref, err)
	}
	return cfg.Config.User, nil
}

// writeOCILayout streams an image as a tar of an OCI image layout
// (oci-layout, index.json, blobs/sha256/…). For a multi-platform index it
// holds the index itself and the image for platform. Layers are copied
// from the registry as they arrive, never held in memory; the registry
// client checks each blob against its digest.
func writeOCILayout(ctx context.Context, w io.Writer, ref string, platform v1.Platform, opts []remote.Option) error {
	d, err := name.NewDigest(ref)
	if err != nil {
		return err
	}
	desc, err := remote.Get(d, opts...)
	if err != nil {
		return fmt.Errorf("get %s: %w", ref, err)
	}
	tw := tar.NewWriter(w)
	written := map[v1.Hash]bool{}
	blob := func(h v1.Hash, size int64, r io.Reader) error {
		if written[h] {
			return nil
		}
		written[h] = true
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/" + h.Algorithm + "/" + h.Hex, Mode: 0o444, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		n, err := io.Copy(tw, ctxReader{ctx: ctx, r: r})
		if err != nil {
			return fmt.Errorf("blob %s: %w", h, err)
		}
		if n != size {
			return fmt.Errorf("blob %s: %d bytes, want %d", h, n, size)
		}
		return nil
	}
	file := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o444, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}

	var img v1.Image
	var indexBlob []byte
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		var child *v1.Descriptor
		for i, m := range im.Manifests {
			if m.Platform != nil && m.Platform.Satisfies(platform) {
				child = &im.Manifests[i]
				break
			}
		}
		if child == nil {
			return fmt.Errorf("%s has no image for %s", ref, platform.String())
		}
		if img, err = idx.Image(child.Digest); err != nil {
			return err
		}
		indexBlob = desc.Manifest
	case desc.MediaType.IsImage():
		if img, err = desc.Image(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: unsupported media type %s", ref, desc.MediaType)
	}

	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	mdigest, err := img.Digest()
	if err != nil {
		return err
	}
	mtype, err := img.MediaType()
	if err != nil {
		return err
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mtype, Digest: mdigest, Size: int64(len(manifest)), Platform: &platform,
			Annotations: map[string]string{"org.opencontainers.image.ref.name": d.Name()},
		}},
	})
	if err != nil {
		return err
	}
	if err := file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := file("index.json", index); err != nil {
		return err
	}
	if indexBlob != nil {
		if err := blob(desc.Digest, int64(len(indexBlob)), bytes.NewReader(indexBlob)); err != nil {
			return err
		}
	}
	if err := blob(mdigest, int64(len(manifest)), bytes.NewReader(manifest)); err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cdigest, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := blob(cdigest, int64(len(config)), bytes.NewReader(config)); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if err := copyLayer(l, blob); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyLayer(l v1.Layer, blob func(v1.Hash, int64, io.Reader) error) error {
	if mt, err := l.MediaType(); err == nil && !mt.IsDistributable() {
		return nil // foreign layers are not the registry's to give
	}
	h, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", h, err)
	}
	err = blob(h, size, rc)
	if cerr := rc.Close(); err == nil && cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
		err = cerr
	}
	return err
}
