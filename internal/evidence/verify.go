package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
)

// maxManifestSize bounds how much of manifest.json, manifest.sig and
// manifest.pub Verify reads into memory.
const maxManifestSize = 64 << 20

// Problem kinds.
const (
	ProblemMissing   = "missing"   // listed in the manifest, not in the sink
	ProblemAltered   = "altered"   // present, but its size or SHA-256 differs
	ProblemExtra     = "extra"     // in the sink, not in the manifest
	ProblemSignature = "signature" // manifest.sig does not verify
	ProblemManifest  = "manifest"  // manifest.json is unreadable or inconsistent
)

// Problem is one thing wrong with a collection.
type Problem struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

// Report is the outcome of Verify.
type Report struct {
	Location string `json:"location"`
	ActionID string `json:"actionId,omitempty"`
	Action   string `json:"action,omitempty"`
	Target   Target `json:"target"`
	Cluster  string `json:"cluster,omitempty"`
	// Key is the fingerprint of the key the signature was checked
	// against; Trusted tells whether that key came from the caller, or
	// only from the collection's own manifest.pub.
	Key      string    `json:"key"`
	Trusted  bool      `json:"trusted"`
	Signed   bool      `json:"signatureValid"`
	Checked  int       `json:"checked"`
	Failed   int       `json:"failedArtifacts"`
	Problems []Problem `json:"problems"`
}

// OK tells whether the collection is intact: signature valid, every
// artifact present and unaltered, and nothing added.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) problem(kind, path, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Kind: kind, Path: path, Detail: fmt.Sprintf(format, args...)})
}

// Verify checks a collection in sink (the directory or blob prefix that
// holds manifest.json): the signature of manifest.json against trusted, or
// against the collection's own manifest.pub when trusted is nil; then the
// size and SHA-256 of every artifact; and that the sink holds nothing the
// manifest does not list. It returns an error only when it cannot check at
// all; everything wrong with the evidence is a Problem in the Report.
func Verify(ctx context.Context, sink Sink, trusted ed25519.PublicKey) (*Report, error) {
	r, m, err := CheckSignature(ctx, sink, trusted)
	if err != nil || m == nil {
		return r, err
	}
	names, err := sink.List(ctx)
	if err != nil {
		return nil, err
	}
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	listed := map[string]bool{ManifestName: true, SignatureName: true}
	for _, a := range m.Artifacts {
		if listed[a.Path] && a.Error == "" {
			r.problem(ProblemManifest, a.Path, "listed twice")
		}
		listed[a.Path] = true
		if a.Error != "" {
			r.Failed++
			if present[a.Path] {
				r.problem(ProblemExtra, a.Path, "present, but the manifest records it as not collected (%s)", a.Error)
			}
			continue
		}
		r.Checked++
		if !present[a.Path] {
			r.problem(ProblemMissing, a.Path, "listed in the manifest (%d bytes), not found", a.Size)
			continue
		}
		size, sum, err := hashObject(ctx, sink, a.Path)
		switch {
		case err != nil:
			r.problem(ProblemMissing, a.Path, "unreadable: %v", err)
		case size != a.Size || sum != a.SHA256:
			r.problem(ProblemAltered, a.Path, "%d bytes, sha256 %s; manifest says %d bytes, sha256 %s", size, sum, a.Size, a.SHA256)
		}
	}
	for _, n := range names {
		if !listed[n] {
			r.problem(ProblemExtra, n, "not listed in the manifest")
		}
	}
	sort.SliceStable(r.Problems, func(i, j int) bool { return r.Problems[i].Path < r.Problems[j].Path })
	return r, nil
}

// CheckSignature reads a collection's manifest and checks its signature
// (as Verify does) without reading the artifacts. The manifest is nil when
// manifest.json is not one; the Report says why.
func CheckSignature(ctx context.Context, sink Sink, trusted ed25519.PublicKey) (*Report, *Manifest, error) {
	r := &Report{Location: sink.String(), Problems: []Problem{}}
	raw, err := readSmall(ctx, sink, ManifestName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("no %s at %s: give the directory or prefix of one collection", ManifestName, sink)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", ManifestName, err)
	}
	key := trusted
	r.Trusted = trusted != nil
	if key == nil {
		pubPEM, err := readSmall(ctx, sink, PublicKeyName)
		if err != nil {
			r.problem(ProblemSignature, PublicKeyName, "no trusted key given and %s unreadable: %v", PublicKeyName, err)
		} else if key, err = ParsePublicKey(pubPEM); err != nil {
			r.problem(ProblemSignature, PublicKeyName, "no trusted key given and %s invalid: %v", PublicKeyName, err)
		}
	}
	if key != nil {
		r.Key = Fingerprint(key)
		sigText, err := readSmall(ctx, sink, SignatureName)
		var sig []byte
		if err == nil {
			sig, err = decodeSignature(sigText)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.problem(ProblemMissing, SignatureName, "the manifest is not signed")
		case err != nil:
			r.problem(ProblemSignature, SignatureName, "unreadable signature: %v", err)
		case !ed25519.Verify(key, raw, sig):
			r.problem(ProblemSignature, SignatureName, "signature does not match %s under key %s", ManifestName, r.Key)
		default:
			r.Signed = true
		}
	}

	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		r.problem(ProblemManifest, ManifestName, "not a manifest: %v", err)
		return r, nil, nil
	}
	if m.Schema != Schema {
		r.problem(ProblemManifest, ManifestName, "schema %q, want %q", m.Schema, Schema)
	}
	r.ActionID, r.Action, r.Target, r.Cluster = m.ActionID, m.Action, m.Target, m.Cluster.Name
	if r.Key != "" && m.SigningKey != r.Key {
		r.problem(ProblemSignature, ManifestName, "manifest names signing key %s, checked against %s", m.SigningKey, r.Key)
	}
	return r, &m, nil
}

func readSmall(ctx context.Context, sink Sink, name string) ([]byte, error) {
	rc, err := sink.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	n, err := io.Copy(&b, io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if n > maxManifestSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxManifestSize)
	}
	return b.Bytes(), nil
}

func hashObject(ctx context.Context, sink Sink, name string) (int64, string, error) {
	rc, err := sink.Open(ctx, name)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx: ctx, r: rc})
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
