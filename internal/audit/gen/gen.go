// Package gen generates realistic Kubernetes audit events (audit.k8s.io/v1
// Event JSON lines), deterministically from a seed, for load tests,
// benchmarks and detection tests.
//
// The mix follows real API-server audit logs: most events are get, list
// and watch calls and lease, endpoint and configmap updates by kubelets,
// controllers and system service accounts; a small fraction are creates
// (events, token reviews, pods by the replicaset controller); a few pods
// are created by people with kubectl, some privileged, some named
// "ubuntu-…"; rarely someone execs or attaches into a pod, which gives two
// events (ResponseStarted and ResponseComplete, code 101) sharing one
// auditID, with verb create or get, subresource exec or attach, and the
// command in the requestURI as repeated command= parameters. Some users
// are Entra identities with user.extra["oid"]; some 403s are mixed in.
//
// At Level "RequestResponse" the events carry bodies as a real AKS
// RequestResponse audit log does (median 2.7 KB, average 3.2 KB):
// creates, updates and patches a requestObject and a responseObject (Pods
// with full specs, managedFields and status, Deployments, ReplicaSets,
// Nodes, ConfigMaps, Leases, Endpoints, EndpointSlices, Events,
// TokenReviews, SubjectAccessReviews, TokenRequests), gets the object in
// responseObject, lists a *List of a few items; watches, execs and
// everything about Secrets have no body. Some pods mount a hostPath. The
// mix is the same, plus Deployment and ReplicaSet status updates and
// kubectl patches of Deployments.
package gen

import (
	"bufio"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// Options shape the generated events. Zero values take defaults.
type Options struct {
	End   time.Time     // the latest timestamp; default 2025-06-01T00:00:00Z
	Span  time.Duration // timestamps spread over [End-Span, End]; default 24h
	Nodes int           // node count; default 6
	// Level is "Metadata" (the default: no bodies but the requestObject of
	// pod creates) or "RequestResponse" (request and response bodies).
	Level string
}

// The levels Options.Level takes.
const (
	LevelMetadata        = "Metadata"
	LevelRequestResponse = "RequestResponse"
)

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	rng      *rand.Rand
	opts     Options
	nodes    []string
	kubelets []*user
	buf      []byte

	rr         bool // RequestResponse level
	rv         uint64
	req, resp  []byte // the bodies of the event being written
	nodeStates []nodeState
	// Special holds the count of each notable event kind generated so far
	// (keys: "exec", "attach", "pod-create-user", "privileged", "ubuntu",
	// "forbidden"), for tests.
	Special map[string]int
}

// New returns a generator seeded with seed.
func New(seed uint64, opts Options) *Generator {
	if opts.End.IsZero() {
		opts.End = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	}
	if opts.Span <= 0 {
		opts.Span = 24 * time.Hour
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 6
	}
	g := &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), opts: opts, Special: map[string]int{}}
	for i := 0; i < opts.Nodes; i++ {
		n := "aks-nodepool1-12345678-vmss" + pad6(i)
		g.nodes = append(g.nodes, n)
		g.kubelets = append(g.kubelets, &user{
			name: "system:node:" + n, groups: []string{"system:nodes", "system:authenticated"},
			ua: "kubelet" + k8sUA, ip: "10.224.0." + strconv.Itoa(4+i),
		})
	}
	if opts.Level == LevelRequestResponse {
		g.rr = true
		g.rv = 40_000_000 + uint64(g.pick(1_000_000))
		g.initNodes()
	}
	return g
}

func pad6(i int) string {
	s := strconv.Itoa(i)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// WriteJSONL writes n events, one JSON object per line, with timestamps
// rising from End-Span to End. An exec or attach counts as two events.
func (g *Generator) WriteJSONL(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	start := g.opts.End.Add(-g.opts.Span)
	step := time.Duration(0)
	if n > 1 {
		step = g.opts.Span / time.Duration(n-1)
	}
	for i := 0; i < n; {
		t := start.Add(step * time.Duration(i))
		g.buf = g.buf[:0]
		k := g.event(t, n-i)
		if _, err := bw.Write(g.buf); err != nil {
			return err
		}
		i += k
	}
	return bw.Flush()
}

// Event returns the JSON lines of the next event (or two, for an exec),
// timestamped t, and how many events they are. The slice is reused.
func (g *Generator) Event(t time.Time) ([]byte, int) {
	g.buf = g.buf[:0]
	k := g.event(t, 2)
	return g.buf, k
}

// event appends one or (when room >= 2) two lines and returns the count.
func (g *Generator) event(t time.Time, room int) int {
	r := g.rng.IntN(10000)
	switch {
	case r < 3000:
		g.nodeRead(t)
	case r < 4800:
		g.leaseUpdate(t)
	case r < 6000:
		g.controllerWatch(t)
	case r < 7000:
		g.endpointsUpdate(t)
	case r < 7800:
		g.configmap(t)
	case r < 8600:
		g.systemSA(t)
	case r < 9300:
		g.eventCreate(t)
	case r < 9600:
		g.reviews(t)
	case r < 9800:
		g.replicaSetPod(t)
	case r < 9900:
		g.userRead(t)
	case r < 9950:
		g.forbidden(t)
	case r < 9985:
		g.userPod(t)
	case r < 9992:
		g.userDelete(t)
	default:
		if room >= 2 {
			g.exec(t)
			return 2
		}
		g.userRead(t)
	}
	return 1
}
