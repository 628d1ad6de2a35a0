package evidence

import (
	"time"

	"github.com/kdfir/kdfir/internal/version"
)

// The files that every collection holds besides its artifacts.
const (
	// ManifestName lists every artifact with its hash.
	ManifestName = "manifest.json"
	// SignatureName holds the base64 ed25519 signature of manifest.json's
	// exact bytes.
	SignatureName = "manifest.sig"
	// PublicKeyName is the PEM public key that signed the manifest. It is
	// itself an artifact listed in the manifest.
	PublicKeyName = "manifest.pub"
)

// Schema identifies the manifest format.
const Schema = "kdfir.io/evidence/v1"

// Manifest describes one collection.
type Manifest struct {
	Schema string `json:"schema"`
	// ActionID is the journal id of the collection; it ends the prefix.
	ActionID string `json:"actionId"`
	// Action is collect-pod, collect-namespace or collect-node.
	Action string `json:"action"`
	// Prefix is where the collection was written, relative to the
	// destination: <cluster>/<namespace>/<pod>/<UTC timestamp>-<action id>.
	Prefix    string       `json:"prefix"`
	Cluster   Cluster      `json:"cluster"`
	Target    Target       `json:"target"`
	Collector Identity     `json:"collector"`
	Kdfir     version.Info `json:"kdfir"`
	Started   time.Time    `json:"started"`
	Finished  time.Time    `json:"finished"`
	// SigningKey is the fingerprint of the key that signed the manifest
	// (see Fingerprint).
	SigningKey string `json:"signingKey"`
	// Artifacts are sorted by path.
	Artifacts []Artifact `json:"artifacts"`
}

// Cluster is the cluster the evidence came from.
type Cluster struct {
	Name    string `json:"name"`
	Server  string `json:"server"`
	Version string `json:"version,omitempty"`
}

// Target is what was collected.
type Target struct {
	Kind      string `json:"kind"` // Pod, Namespace or Node
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// Identity is who collected the evidence, and from where.
type Identity struct {
	// User and Groups are the Kubernetes identity, as the API server sees
	// it (SelfSubjectReview).
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
	// OSUser and Host are the account and machine kdfir ran on.
	OSUser string `json:"osUser"`
	Host   string `json:"host"`
}

// Artifact is one file of the collection, or one that could not be
// collected.
type Artifact struct {
	// Path is relative to the collection's prefix.
	Path string `json:"path"`
	// Size and SHA256 (hex) describe the file's bytes; both are empty when
	// Error is set, and no file exists at Path then.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Source is where the bytes came from: the API request
	// ("GET /api/v1/namespaces/shop/pods/web"), the exec
	// ("exec shop/web -c app: cat /root/.bash_history"), the registry, or
	// "kdfir" for what kdfir derived itself.
	Source string `json:"source"`
	// Exec is the argv run in the container, for artifacts read by exec.
	Exec      []string  `json:"exec,omitempty"`
	Container string    `json:"container,omitempty"`
	Collected time.Time `json:"collected"`
	// Error says why the artifact could not be collected.
	Error string `json:"error,omitempty"`
}

// Failed returns the artifacts that could not be collected.
func (m *Manifest) Failed() []Artifact {
	var out []Artifact
	for _, a := range m.Artifacts {
		if a.Error != "" {
			out = append(out, a)
		}
	}
	return out
}
