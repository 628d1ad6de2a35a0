package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
)

// Dispatcher carries out actions for the service: response actions
// through respond, collections through evidence, each journaled, on the
// configured clusters.
type Dispatcher struct {
	Config     *config.Config
	Journal    *journal.Journal
	SigningKey ed25519.PrivateKey
	Log        *slog.Logger
	// Evidence says where collections may go (NewDispatcher builds it
	// from Config.Evidence).
	Evidence *evidence.Policy

	mu      sync.Mutex
	clients map[string]*clusterClient
	locks   map[string]*sync.Mutex // one per cluster/action/target
}

// NewDispatcher checks the configuration's evidence destinations and
// returns a Dispatcher.
func NewDispatcher(c *config.Config, j *journal.Journal, key ed25519.PrivateKey, log *slog.Logger) (*Dispatcher, error) {
	pol, err := evidence.NewPolicy(c.Evidence.Destinations, c.Evidence.AllowedEndpoints, c.Evidence.LocalRoots)
	if err != nil {
		return nil, err
	}
	return &Dispatcher{Config: c, Journal: j, SigningKey: key, Log: log, Evidence: pol}, nil
}

// Markers of the original AKS response function, used with aks.compat:
// original.
const (
	compatLabel  = "status=quarantine"
	compatPolicy = "deny-all-affected"
)

// lock serialises actions on one target, so two alerts about the same pod
// delivered at once plan and apply one after the other: the second finds
// the pod already isolated instead of isolating it twice.
func (d *Dispatcher) lock(key string) func() {
	d.mu.Lock()
	if d.locks == nil {
		d.locks = map[string]*sync.Mutex{}
	}
	l, ok := d.locks[key]
	if !ok {
		l = &sync.Mutex{}
		d.locks[key] = l
	}
	d.mu.Unlock()
	l.Lock()
	return l.Unlock
}

type clusterClient struct {
	name string
	cfg  *rest.Config
	cs   kubernetes.Interface
	self string // kdfir's own username on the cluster, once known
}

// UserAgent marks every request kdfir serve makes to a cluster.
const UserAgent = "kdfir-serve"

// Self returns kdfir's own username on a cluster (from a SelfSubjectReview),
// so that detection can leave kdfir's own actions out: the execs of an
// evidence collection must not raise exec alerts that collect again.
func (d *Dispatcher) Self(ctx context.Context, cluster string) string {
	cc, err := d.client(cluster)
	if err != nil {
		return ""
	}
	d.mu.Lock()
	self := cc.self
	d.mu.Unlock()
	if self != "" {
		return self
	}
	r, err := cc.cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		d.Log.Warn("cannot learn kdfir's own identity; its own actions may raise alerts", "cluster", cluster, "err", err)
		return ""
	}
	d.mu.Lock()
	cc.self = r.Status.UserInfo.Username
	d.mu.Unlock()
	return r.Status.UserInfo.Username
}

// Reachable checks every configured cluster (a version request, within
// the context's deadline) and returns each cluster's error, nil when it
// answered.
func (d *Dispatcher) Reachable(ctx context.Context) map[string]error {
	out := map[string]error{}
	for _, c := range d.Config.Clusters {
		cc, err := d.client(c.Name)
		if err == nil {
			_, err = cc.cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
		}
		out[c.Name] = err
	}
	return out
}

// releases maps each undo action to the action it releases.
var releases = map[string]string{
	"unisolate-pod":       "isolate-pod",
	"unisolate-namespace": "isolate-namespace",
	"uncordon-node":       "cordon-node",
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// client returns the client of a configured cluster, by name or Azure
// ResourceId (an empty ref is the default cluster).
func (d *Dispatcher) client(ref string) (*clusterClient, error) {
	c, ok := d.Config.FindCluster(ref)
	if !ok {
		if ref == "" {
			return nil, badRequest("no cluster named, and no default cluster is configured")
		}
		return nil, badRequest("cluster %q is not configured", ref)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.clients == nil {
		d.clients = map[string]*clusterClient{}
	}
	if cc, ok := d.clients[c.Name]; ok {
		return cc, nil
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = 200, 400, UserAgent
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cc := &clusterClient{name: c.Name, cfg: cfg, cs: cs}
	d.clients[c.Name] = cc
	return cc, nil
}

func (d *Dispatcher) runner(cc *clusterClient, actor string) *respond.Runner {
	return &respond.Runner{Client: cc.cs, Config: cc.cfg, Journal: d.Journal, Cluster: cc.name, Actor: actor, Log: d.Log,
		Actions: respond.Builtin(respond.ExecPolicy{Enabled: d.Config.Exec.Enabled, Allow: d.Config.Exec.Allow, AllowAny: d.Config.Exec.AllowAny,
			MaxOutputBytes: d.Config.Exec.MaxOutputBytes})}
}

// targetString is the target as the journal names it.
func targetString(t alert.Entity) string {
	if t.Type == alert.EntityPod {
		return t.Namespace + "/" + t.Name
	}
	return t.Name
}

// checkTarget makes sure the target exists before anything is journaled
// or changed, so an unknown pod, namespace or node is the caller's error.
func checkTarget(ctx context.Context, cc *clusterClient, t alert.Entity) error {
	var err error
	switch t.Type {
	case alert.EntityPod:
		if t.Namespace == "" || t.Name == "" {
			return badRequest("pod entity needs a namespace and a name")
		}
		_, err = cc.cs.CoreV1().Pods(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	case alert.EntityNamespace:
		_, err = cc.cs.CoreV1().Namespaces().Get(ctx, t.Name, metav1.GetOptions{})
	case alert.EntityNode:
		_, err = cc.cs.CoreV1().Nodes().Get(ctx, t.Name, metav1.GetOptions{})
	default:
		return badRequest("cannot act on a %q entity", t.Type)
	}
	switch {
	case apierrors.IsNotFound(err):
		return badRequest("%s %s not found in cluster %s", t.Type, targetString(t), cc.name)
	case apierrors.IsBadRequest(err), apierrors.IsInvalid(err):
		return badRequest("invalid %s %q", t.Type, targetString(t))
	case err != nil:
		return clusterError(fmt.Errorf("look up %s %s in cluster %s: %w", t.Type, targetString(t), cc.name, err))
	}
	return nil
}

// ErrUnavailable marks errors reaching a cluster: a retry later may
// succeed. The API answers 503 with Retry-After.
var ErrUnavailable = errors.New("cluster unavailable")

// clusterError marks err as ErrUnavailable when the cluster could not be
// reached or did not answer in time.
func clusterError(err error) error {
	if err == nil || errors.Is(err, ErrBadRequest) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsTooManyRequests(err) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// validate checks what a request asks for without any API call: the
// target's name, the parameters, and for a collection the destination,
// which it returns.
func (d *Dispatcher) validate(cc *clusterClient, req ActionRequest) (dest string, err error) {
	if req.Target.Name == "" {
		return "", badRequest("%s needs a target %s", req.Action, req.Target.Type)
	}
	if strings.HasPrefix(req.Action, "collect-") {
		dest, err = d.destination(req.Params)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		// The target's name is checked as the matching isolation checks it.
		byType := map[string]string{alert.EntityPod: "isolate-pod", alert.EntityNamespace: "isolate-namespace", alert.EntityNode: "cordon-node"}
		if a, ok := byType[req.Target.Type]; ok {
			if err := d.runner(cc, req.Actor).Actions.Validate(respond.Request{Action: a, Target: targetString(req.Target)}); err != nil {
				return "", fmt.Errorf("%w: %v", ErrBadRequest, err)
			}
		}
		return dest, nil
	}
	if label, ok := req.Params["label"].(string); ok && (req.Action == "isolate-pod" || req.Action == "isolate-namespace") {
		key, _, _ := strings.Cut(label, "=")
		if !d.Config.LabelKeyAllowed(key) {
			return "", badRequest("label key %q is not allowed: kdfir serve quarantines with kdfir.io/... keys and those in labels.allowedKeys", key)
		}
	}
	action, params := req.Action, any(req.Params)
	if base, ok := releases[req.Action]; ok {
		action, params = base, nil
	}
	if req.Params == nil {
		params = nil
	}
	if err := d.runner(cc, req.Actor).Actions.Validate(respond.Request{Action: action, Target: targetString(req.Target), Params: params}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return "", nil
}

// destination resolves a collection's destination: params.destination
// names a configured one ("default" when neither is given), and params.to
// must lie under an allowed endpoint or root.
func (d *Dispatcher) destination(params map[string]any) (string, error) {
	pol := d.Evidence
	if pol == nil {
		var err error
		if pol, err = evidence.NewPolicy(d.Config.Evidence.Destinations, d.Config.Evidence.AllowedEndpoints, d.Config.Evidence.LocalRoots); err != nil {
			return "", err
		}
	}
	to, _ := params["to"].(string)
	name, _ := params["destination"].(string)
	switch {
	case to != "" && name != "":
		return "", errors.New("give params.to or params.destination, not both")
	case to != "":
		return to, pol.Check(to)
	case name == "":
		name = "default"
	}
	return pol.Named(name)
}

// Run carries out one action now.
func (d *Dispatcher) Run(ctx context.Context, req ActionRequest) (*ActionResult, error) {
	cc, err := d.client(req.Cluster)
	if err != nil {
		return nil, err
	}
	req = d.compat(req)
	dest, err := d.validate(cc, req)
	if err != nil {
		return nil, err
	}
	if err := checkTarget(ctx, cc, req.Target); err != nil {
		return nil, err
	}
	if strings.HasPrefix(req.Action, "collect-") {
		return d.collect(ctx, cc, req, dest)
	}
	base := req.Action
	if b, ok := releases[req.Action]; ok {
		base = b
	}
	defer d.lock(cc.name + "/" + base + "/" + targetString(req.Target))()
	r := d.runner(cc, req.Actor)
	var res *respond.Result
	if base, ok := releases[req.Action]; ok {
		res, err = r.Release(ctx, base, targetString(req.Target), req.DryRun)
		if err == nil && req.Action == "unisolate-pod" && d.Config.AKS.Compat == config.CompatOriginal {
			res, err = d.removeMarkers(ctx, r, req, res)
		}
	} else {
		params, perr := json.Marshal(req.Params)
		if perr != nil {
			return nil, badRequest("params: %v", perr)
		}
		if req.Params == nil {
			params = nil
		}
		res, err = r.Run(ctx, respond.Request{Action: req.Action, Target: targetString(req.Target), Params: json.RawMessage(params), Reason: req.Reason, DryRun: req.DryRun,
			Parent: req.Parent})
	}
	var ie *respond.InputError
	if errors.As(err, &ie) || errors.Is(err, respond.ErrExecDisabled) || errors.Is(err, respond.ErrNotAllowed) {
		err = fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	err = clusterError(err)
	if res == nil {
		return nil, err
	}
	return &ActionResult{ID: res.ID, Action: req.Action, Target: targetString(req.Target), Status: string(res.Status), Message: res.Message,
		Changes: res.Changes, Output: res.Output, Warnings: res.Warnings, Plan: res.Plan, LeftAlone: res.LeftAlone}, err
}

// compat fills in the original function's markers, with aks.compat:
// original, when the request names no label of its own.
func (d *Dispatcher) compat(req ActionRequest) ActionRequest {
	if d.Config.AKS.Compat != config.CompatOriginal {
		return req
	}
	switch req.Action {
	case "isolate-pod", "isolate-namespace":
		if _, ok := req.Params["label"]; ok {
			return req
		}
		params := map[string]any{"label": compatLabel}
		if req.Action == "isolate-pod" {
			params["policy"] = compatPolicy
		}
		for k, v := range req.Params {
			params[k] = v
		}
		req.Params = params
	}
	return req
}

// removeMarkers releases, after kdfir's own isolations, a pod that the
// original function quarantined: its label and policy, when they are
// still there and no journal entry explains them.
func (d *Dispatcher) removeMarkers(ctx context.Context, r *respond.Runner, req ActionRequest, released *respond.Result) (*respond.Result, error) {
	res, err := r.Run(ctx, respond.Request{Action: "remove-pod-markers", Target: targetString(req.Target), DryRun: req.DryRun, Reason: req.Reason,
		Params: respond.RemovePodMarkersParams{Label: compatLabel, Policy: compatPolicy}})
	if err != nil || res.Status == respond.StatusUnchanged {
		if released.Status == respond.StatusUnchanged && res != nil {
			released.Message += "; " + res.Message
		}
		return released, err
	}
	if released.Status == respond.StatusUnchanged {
		res.Message = "removed the original function's quarantine markers (" + compatLabel + ", networkpolicy " + compatPolicy + "); journaled as action " + res.ID
		return res, nil
	}
	released.Changes = append(released.Changes, res.Changes...)
	released.Reverted = append(released.Reverted, res.ID)
	released.Message += "; also removed the original function's markers (action " + res.ID + ")"
	return released, nil
}

// collect runs a journaled evidence collection to dest, which validate
// resolved and checked.
func (d *Dispatcher) collect(ctx context.Context, cc *clusterClient, req ActionRequest, dest string) (*ActionResult, error) {
	sink, err := evidence.OpenDest(dest)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	images, _ := req.Params["images"].(bool)
	ereq := evidence.Request{Namespace: req.Target.Namespace, Name: req.Target.Name, Images: images}
	switch req.Action {
	case "collect-pod":
		ereq.Kind = evidence.KindPod
	case "collect-namespace":
		ereq.Kind = evidence.KindNamespace
	default:
		ereq.Kind = evidence.KindNode
	}
	if req.DryRun {
		obj := journal.Object{APIVersion: "v1", Kind: strings.ToUpper(req.Target.Type[:1]) + req.Target.Type[1:], Namespace: req.Target.Namespace, Name: req.Target.Name}
		return &ActionResult{Action: req.Action, Target: targetString(req.Target), Status: string(respond.StatusDryRun),
			Message: "would collect evidence to " + sink.String(),
			Plan:    []respond.PlanItem{{Object: obj, Op: "collect", Detail: "read (nothing changes) and upload to " + sink.String()}}}, nil
	}
	collector, err := evidence.New(cc.cs, cc.cfg, evidence.Options{Cluster: cc.name, SigningKey: d.SigningKey, Log: d.Log})
	if err != nil {
		return nil, err
	}
	params, _ := json.Marshal(map[string]any{"to": evidence.Redact(dest), "images": images})
	e := &journal.Entry{ID: journal.NewID(), Actor: req.Actor, Reason: req.Reason, Cluster: cc.name, Target: targetString(req.Target), Params: params, Parent: req.Parent}
	res, err := evidence.Journaled(ctx, d.Journal, collector, sink, ereq, e)
	if err != nil {
		return &ActionResult{ID: e.ID, Action: req.Action, Target: e.Target, Status: string(respond.StatusFailed), Message: evidence.Redact(err.Error())}, errors.New(evidence.Redact(err.Error()))
	}
	out := &ActionResult{ID: e.ID, Action: req.Action, Target: e.Target, Status: string(respond.StatusSucceeded), Changes: e.Changes,
		Message: fmt.Sprintf("%d artifacts to %s, manifest sha256 %s", res.Artifacts, res.Location, res.ManifestSHA256)}
	if len(res.Failed) > 0 {
		out.Message += fmt.Sprintf("; %d not collected", len(res.Failed))
	}
	return out, nil
}

// held is what a held action keeps in its journal params.
type held struct {
	Request ActionRequest   `json:"request"`
	Resume  json.RawMessage `json:"resume,omitempty"`
}

// Hold journals an action as waiting for approval, without running it.
func (d *Dispatcher) Hold(ctx context.Context, req ActionRequest, resume json.RawMessage) (*ActionResult, error) {
	cc, err := d.client(req.Cluster)
	if err != nil {
		return nil, err
	}
	req.Cluster = cc.name
	params, err := json.Marshal(held{Request: req, Resume: resume})
	if err != nil {
		return nil, err
	}
	e := &journal.Entry{Actor: req.Actor, Reason: req.Reason, Cluster: cc.name, Action: req.Action, Target: targetString(req.Target),
		Params: params, Status: journal.PendingApproval, Parent: req.Parent}
	if err := d.Journal.Begin(ctx, e); err != nil {
		return nil, err
	}
	return &ActionResult{ID: e.ID, Action: req.Action, Target: e.Target, Status: string(journal.PendingApproval),
		Message: "waiting for approval: POST /v1/actions/" + e.ID + "/approve"}, nil
}

// Approve runs a held action, records who approved it on the held entry,
// and returns the resume data Hold stored. Of two concurrent approvals,
// one runs the action; the other gets journal.ErrConflict.
func (d *Dispatcher) Approve(ctx context.Context, id, actor string) (*ActionResult, json.RawMessage, error) {
	e, err := d.Journal.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if e.Status != journal.PendingApproval {
		return nil, nil, fmt.Errorf("action %s is %s, not pending approval: %w", id, e.Status, journal.ErrConflict)
	}
	var h held
	if err := json.Unmarshal(e.Params, &h); err != nil {
		return nil, nil, fmt.Errorf("held action %s: %w", id, err)
	}
	e.Status = journal.Approved
	e.Result, _ = json.Marshal(map[string]any{"approvedBy": actor})
	if err := d.Journal.Transition(ctx, e, journal.PendingApproval); err != nil {
		return nil, nil, err
	}
	// Actor and Parent are not kept in the held params: the held entry
	// has them.
	h.Request.Actor, h.Request.Parent = e.Actor, e.Parent
	h.Request.Reason = strings.TrimSpace(h.Request.Reason + " (approved by " + actor + ")")
	res, runErr := d.Run(ctx, h.Request)
	e.Finished = time.Now().UTC()
	e.Error = ""
	if runErr != nil {
		e.Error = runErr.Error()
	}
	e.Result, _ = json.Marshal(map[string]any{"approvedBy": actor, "action": res})
	if err := d.Journal.Update(context.WithoutCancel(ctx), e); err != nil {
		return res, nil, err
	}
	return res, h.Resume, runErr
}

// Reject refuses a held action, recording who refused it and why. Of a
// rejection and an approval at once, one wins; the other gets
// journal.ErrConflict.
func (d *Dispatcher) Reject(ctx context.Context, id, actor, reason string) (*journal.Entry, error) {
	e, err := d.Journal.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.Status != journal.PendingApproval {
		return nil, fmt.Errorf("action %s is %s, not pending approval: %w", id, e.Status, journal.ErrConflict)
	}
	e.Status, e.Finished = journal.Rejected, time.Now().UTC()
	e.Result, _ = json.Marshal(map[string]any{"rejectedBy": actor, "reason": reason})
	if err := d.Journal.Transition(ctx, e, journal.PendingApproval); err != nil {
		return nil, err
	}
	return e, nil
}

// Revert undoes an action, or with dryRun checks the revert and plans it.
func (d *Dispatcher) Revert(ctx context.Context, id, actor string, dryRun bool) (*ActionResult, error) {
	e, err := d.Journal.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	cc, err := d.client(e.Cluster)
	if err != nil {
		return nil, err
	}
	// The same lock as the action and its release: a revert never runs
	// beside another change of the same target.
	defer d.lock(cc.name + "/" + e.Action + "/" + e.Target)()
	res, err := d.runner(cc, actor).Revert(ctx, id, dryRun)
	if errors.Is(err, respond.ErrNotRevertible) {
		err = fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if res == nil {
		return nil, err
	}
	return &ActionResult{ID: res.ID, Action: res.Action, Target: res.Target, Status: string(res.Status), Message: res.Message, Changes: res.Changes,
		Plan: res.Plan, LeftAlone: res.LeftAlone}, err
}

// Get reads one journal entry.
func (d *Dispatcher) Get(ctx context.Context, id string) (*journal.Entry, error) {
	return d.Journal.Get(ctx, id)
}

// List reads journal entries.
func (d *Dispatcher) List(ctx context.Context, f journal.Filter) ([]*journal.Entry, error) {
	return d.Journal.List(ctx, f)
}
