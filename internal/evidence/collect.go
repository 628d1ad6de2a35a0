package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kdfir/kdfir/internal/version"
)

// Target kinds.
const (
	KindPod       = "Pod"
	KindNamespace = "Namespace"
	KindNode      = "Node"
)

// Options configure a Collector.
type Options struct {
	// Cluster names the cluster in the manifest and in the evidence
	// prefix (default "default").
	Cluster string
	// SigningKey signs every manifest. Required.
	SigningKey ed25519.PrivateKey
	// Concurrency bounds how many artifacts are fetched at once
	// (default 4).
	Concurrency int
	// RegistryOptions are added to every registry request made for image
	// export (for example a keychain or a transport).
	RegistryOptions []remote.Option
	// Log receives a debug line per artifact and a warning per failed
	// one (default slog.Default()).
	Log *slog.Logger
}

// Collector collects evidence from one cluster.
type Collector struct {
	client kubernetes.Interface
	// stream and config have no client timeout: logs, exec and image
	// streams may run for longer than any fixed limit, and end with ctx.
	stream kubernetes.Interface
	config *rest.Config
	opts   Options
	log    *slog.Logger

	mu        sync.Mutex
	resources map[string][]metav1.APIResource // discovery, by group version
}

// New returns a Collector that reads objects through client and streams
// logs and exec through config.
func New(client kubernetes.Interface, config *rest.Config, opts Options) (*Collector, error) {
	if len(opts.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("evidence collector: a signing key is required")
	}
	if opts.Cluster == "" {
		opts.Cluster = "default"
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	cfg := rest.CopyConfig(config)
	cfg.Timeout = 0
	stream, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("evidence collector: %w", err)
	}
	return &Collector{client: client, stream: stream, config: cfg, opts: opts, log: log, resources: map[string][]metav1.APIResource{}}, nil
}

// Request says what to collect.
type Request struct {
	Kind      string // KindPod, KindNamespace or KindNode
	Namespace string // for a pod
	Name      string
	// ActionID is the journal id of the collection (default: a new one).
	ActionID string
	// Images also exports every container image, by digest, as an OCI
	// image layout tarball.
	Images bool
}

// Action is the journal action name for a request: collect-pod,
// collect-namespace or collect-node.
func (r Request) Action() string {
	switch r.Kind {
	case KindPod:
		return "collect-pod"
	case KindNamespace:
		return "collect-namespace"
	default:
		return "collect-node"
	}
}

// Result summarizes a collection.
type Result struct {
	ActionID string `json:"actionId"`
	Action   string `json:"action"`
	Target   Target `json:"target"`
	// Location is where the collection is, without credentials.
	Location string `json:"location"`
	Prefix   string `json:"prefix"`
	// ManifestSHA256 is the hex SHA-256 of manifest.json.
	ManifestSHA256 string     `json:"manifestSha256,omitempty"`
	Artifacts      int        `json:"artifacts"`
	Bytes          int64      `json:"bytes"`
	Failed         []Artifact `json:"failed,omitempty"`
}

// Collect collects the evidence req names into a new prefix of sink and
// signs its manifest. Artifacts that cannot be collected (exec forbidden,
// no shell history, a container without logs) are recorded in the
// manifest and in Result.Failed, and the collection goes on; Collect
// returns an error only when there is no collection: the target does not
// exist, or the sink fails. When the target does not exist, nothing is
// written.
func (c *Collector) Collect(ctx context.Context, sink Sink, req Request) (*Result, error) {
	started := time.Now().UTC()
	if req.ActionID == "" {
		req.ActionID = newActionID(started)
	}
	target := Target{Kind: req.Kind, Name: req.Name}
	var raw []byte
	var source, dir string
	var err error
	if req.Name == "" || (req.Kind == KindPod && req.Namespace == "") {
		return nil, fmt.Errorf("collect %s: a name is required (and a namespace for a pod)", strings.ToLower(req.Kind))
	}
	switch req.Kind {
	case KindPod:
		target.Namespace = req.Namespace
		raw, source, err = c.apiGet(ctx, resPods.path(req.Namespace, req.Name), nil)
		dir = pathSegment(req.Namespace) + "/" + pathSegment(req.Name)
	case KindNamespace:
		raw, source, err = c.apiGet(ctx, resNamespaces.path("", req.Name), nil)
		dir = pathSegment(req.Name) + "/_namespace"
	case KindNode:
		raw, source, err = c.apiGet(ctx, resNodes.path("", req.Name), nil)
		dir = "_nodes/" + pathSegment(req.Name)
	default:
		return nil, fmt.Errorf("collect: unknown kind %q", req.Kind)
	}
	what := describeTarget(target)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("collect %s: not found", what)
		}
		return nil, fmt.Errorf("collect %s: %w", what, err)
	}
	var meta metav1.PartialObjectMetadata
	var pod corev1.Pod
	err = json.Unmarshal(raw, &meta)
	if err == nil && req.Kind == KindPod {
		err = json.Unmarshal(raw, &pod)
	}
	if err != nil {
		return nil, fmt.Errorf("collect %s: decode: %w", what, err)
	}
	target.UID = string(meta.UID)
	if err := sink.Check(ctx); err != nil {
		return nil, fmt.Errorf("collect %s: %w", what, err)
	}

	prefix := pathSegment(c.opts.Cluster) + "/" + dir + "/" + started.Format("20060102T150405Z") + "-" + pathSegment(req.ActionID)
	out := sink.Sub(prefix)
	res := &Result{ActionID: req.ActionID, Action: req.Action(), Target: target, Location: out.String(), Prefix: prefix}
	m := &Manifest{
		Schema: Schema, ActionID: req.ActionID, Action: req.Action(), Prefix: prefix,
		Cluster: Cluster{Name: c.opts.Cluster, Server: c.config.Host, Version: c.serverVersion(ctx)},
		Target:  target, Collector: c.identity(ctx), Kdfir: version.Get(), Started: started,
		SigningKey: Fingerprint(c.opts.SigningKey.Public().(ed25519.PublicKey)),
	}

	r := c.newRun(ctx, out, req.Images)
	switch req.Kind {
	case KindPod:
		r.pod(r.ctx, podDir(pod.Namespace, &pod), &pod, raw, source)
	case KindNamespace:
		r.namespace(r.ctx, req.Name, raw, source)
	case KindNode:
		r.node(r.ctx, req.Name, raw, source)
	}
	if err := r.wait(); err != nil {
		return res, fmt.Errorf("collect %s: %w", what, err)
	}

	// manifest.pub is an artifact like any other, so that its hash is
	// signed too.
	r.bytes(ctx, PublicKeyName, "kdfir: the public key of the signing key", MarshalPublicKey(c.opts.SigningKey.Public().(ed25519.PublicKey)))
	if r.fatal != nil {
		return res, fmt.Errorf("collect %s: %w", what, r.fatal)
	}
	m.Artifacts = r.artifacts
	sort.Slice(m.Artifacts, func(i, j int) bool { return m.Artifacts[i].Path < m.Artifacts[j].Path })
	m.Finished = time.Now().UTC()
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return res, fmt.Errorf("collect %s: encode manifest: %w", what, err)
	}
	body = append(body, '\n')
	if _, err := out.Put(ctx, ManifestName, bytes.NewReader(body)); err != nil {
		return res, fmt.Errorf("collect %s: write %s: %w", what, ManifestName, err)
	}
	sig := encodeSignature(ed25519.Sign(c.opts.SigningKey, body))
	if _, err := out.Put(ctx, SignatureName, bytes.NewReader(sig)); err != nil {
		return res, fmt.Errorf("collect %s: write %s: %w", what, SignatureName, err)
	}
	sum := sha256.Sum256(body)
	res.ManifestSHA256 = hex.EncodeToString(sum[:])
	res.Artifacts = len(m.Artifacts)
	res.Failed = m.Failed()
	for _, a := range m.Artifacts {
		res.Bytes += a.Size
	}
	return res, nil
}

func describeTarget(t Target) string {
	switch t.Kind {
	case KindPod:
		return "pod " + t.Namespace + "/" + t.Name
	case KindNamespace:
		return "namespace " + t.Name
	default:
		return "node " + t.Name
	}
}

// newActionID makes an id in the journal's format:
// 20261123T070000Z-1a2b3c4d.
func newActionID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

var unsafeSegment = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// pathSegment makes s safe as one segment of an evidence path: cluster and
// context names may hold ':' or '/' (EKS ARNs, for example).
func pathSegment(s string) string {
	s = unsafeSegment.ReplaceAllString(s, "_")
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}

func (c *Collector) serverVersion(ctx context.Context) string {
	body, _, err := c.apiGet(ctx, "/version", nil)
	if err != nil {
		return ""
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	_ = json.Unmarshal(body, &v)
	return v.GitVersion
}

// identity is who collects: the Kubernetes user (SelfSubjectReview) and
// the OS account and host.
func (c *Collector) identity(ctx context.Context) Identity {
	var id Identity
	if ssr, err := c.client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		id.User, id.Groups = ssr.Status.UserInfo.Username, ssr.Status.UserInfo.Groups
	} else {
		id.User = "unknown (" + err.Error() + ")"
	}
	if u, err := user.Current(); err == nil {
		id.OSUser = u.Username
	}
	id.Host, _ = os.Hostname()
	return id
}

// run is one collection in progress.
type run struct {
	c      *Collector
	sink   Sink
	images bool
	ctx    context.Context // canceled when the sink fails
	cancel context.CancelFunc
	g      *errgroup.Group

	mu        sync.Mutex
	artifacts []Artifact
	claimed   map[string]bool
	lists     map[string]*memo
	nodes     map[string]*nodeMemo
	fatal     error
}

func (c *Collector) newRun(ctx context.Context, sink Sink, images bool) *run {
	ctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	return &run{c: c, sink: sink, images: images, ctx: gctx, cancel: cancel, g: g,
		claimed: map[string]bool{}, lists: map[string]*memo{}, nodes: map[string]*nodeMemo{}}
}

// spawn runs fn as one of the collection's bounded tasks. fn must not
// spawn.
func (r *run) spawn(fn func(ctx context.Context)) {
	r.g.Go(func() error {
		fn(r.ctx)
		return nil
	})
}

func (r *run) wait() error {
	_ = r.g.Wait()
	r.cancel()
	return r.fatal
}

// fail stops the collection: the sink is broken.
func (r *run) fail(err error) {
	r.mu.Lock()
	if r.fatal == nil {
		r.fatal = err
	}
	r.mu.Unlock()
	r.cancel()
}

// claim reserves a path; it returns false when the path is already part of
// the collection.
func (r *run) claim(path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.claimed[path] {
		return false
	}
	r.claimed[path] = true
	return true
}

func (r *run) record(a Artifact, err error) {
	if a.Collected.IsZero() {
		a.Collected = time.Now().UTC()
	}
	if err != nil {
		a.Error = Redact(err.Error())
		a.Size, a.SHA256 = 0, ""
		r.c.log.Warn("artifact not collected", "path", a.Path, "error", a.Error)
	} else {
		r.c.log.Debug("artifact collected", "path", a.Path, "size", a.Size)
	}
	r.mu.Lock()
	r.artifacts = append(r.artifacts, a)
	r.mu.Unlock()
}

// item is one artifact to stream.
type item struct {
	path      string
	source    string
	container string
	exec      []string
	// open starts the source; it is called again for each retry.
	open func(ctx context.Context) (io.ReadCloser, error)
}

// errSinkFailed marks an artifact lost because the sink failed; the
// collection stops with the sink's error.
var errSinkFailed = errors.New("the evidence destination failed")

// stream copies an item into the sink while hashing it, retrying
// transient source errors. An error from the sink stops the collection.
func (r *run) stream(ctx context.Context, it item) (Artifact, error) {
	a := Artifact{Path: it.path, Source: it.source, Container: it.container, Exec: it.exec}
	err := defaultBackoff.retry(ctx, func(ctx context.Context) error {
		rc, err := it.open(ctx)
		if err != nil {
			return err
		}
		defer rc.Close()
		src := &trackingReader{r: rc}
		h := sha256.New()
		n, err := r.sink.Put(ctx, it.path, io.TeeReader(src, h))
		if err != nil {
			if src.err != nil {
				return src.err
			}
			r.fail(err)
			return errSinkFailed
		}
		a.Size, a.SHA256 = n, hex.EncodeToString(h.Sum(nil))
		return nil
	})
	a.Collected = time.Now().UTC()
	return a, err
}

// collect streams an item into the collection and records it, once per
// path.
func (r *run) collect(ctx context.Context, it item) {
	if !r.claim(it.path) {
		return
	}
	a, err := r.stream(ctx, it)
	if errors.Is(err, errSinkFailed) {
		return
	}
	r.record(a, err)
}

// bytes writes a small artifact held in memory.
func (r *run) bytes(ctx context.Context, path, source string, b []byte) {
	r.collect(ctx, item{path: path, source: source, open: bytesOpener(b)})
}

func bytesOpener(b []byte) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

// failed records an artifact that could not be collected.
func (r *run) failed(path, source string, err error) {
	if !r.claim(path) {
		return
	}
	r.record(Artifact{Path: path, Source: source}, err)
}

// trackingReader remembers the error its source returned, to tell a
// failing source from a failing sink.
type trackingReader struct {
	r   io.Reader
	err error
}

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}
