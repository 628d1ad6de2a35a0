// Package respond holds kdfir's response actions on a live cluster: isolate
// and release a pod or a namespace, cordon (and drain) and uncordon a node,
// and exec a command in a pod. The CLI and the HTTP service call the same
// Runner.
//
// # Organization
//
//   - respond.go: the Action interface, the Registry, and the Runner that
//     journals every action (intent before the change, outcome after it)
//     and reverts it.
//   - target.go: parsing and validating targets and labels, before any API
//     call.
//   - edit.go: labels and annotations an action sets, and how a revert
//     restores only those that nobody changed since.
//   - pod.go, policy.go: isolate-pod (label, shared deny-all NetworkPolicy,
//     --detach) and its release.
//   - namespace.go: isolate-namespace (label, deny-all NetworkPolicy with an
//     empty podSelector).
//   - node.go: cordon-node (label, unschedulable, taint, drain through the
//     Eviction API).
//   - exec.go: exec-pod (pods/exec with a timeout, an allowlist and capped
//     output).
//
// Every object kdfir creates carries the label app.kubernetes.io/managed-by
// =kdfir and the annotation kdfir.io/action-id. Every write is either a
// create, a patch with a resourceVersion precondition (retried on conflict
// after planning again), or a delete with a precondition.
package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kdfir/kdfir/internal/journal"
)

// Labels and annotations kdfir puts on what it creates or marks.
const (
	ManagedByLabel    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "kdfir"
	ActionIDKey       = "kdfir.io/action-id"
	QuarantineKey     = "kdfir.io/quarantine"
	QuarantineValue   = "true"
	DefaultQuarantine = QuarantineKey + "=" + QuarantineValue
	// FieldManager names kdfir in managedFields.
	FieldManager = "kdfir"
)

// The ClusterRoles of deploy/rbac.yaml, one per family of actions.
const (
	RoleIsolate = "kdfir-isolate" // isolate and release pods and namespaces
	RoleCordon  = "kdfir-cordon"  // cordon, drain and uncordon nodes
	RoleExec    = "kdfir-exec"    // exec-pod
)

// Env is what an action acts through.
type Env struct {
	Client kubernetes.Interface
	// Config is the client configuration, for streaming connections
	// (pods/exec).
	Config *rest.Config
}

// Info describes an action.
type Info struct {
	// Name keys the action in the registry and the journal: isolate-pod.
	Name    string
	Summary string
	// Example is the CLI command that runs it.
	Example string
	// Revertible is false for actions that change nothing kdfir can undo
	// (exec).
	Revertible bool
	// Rules is the RBAC the action (and its revert) needs.
	Rules []rbacv1.PolicyRule
	// Role is the ClusterRole in deploy/rbac.yaml that grants Rules:
	// kdfir-isolate, kdfir-cordon or kdfir-exec. Bind only the roles of
	// the actions a deployment uses.
	Role string
}

// An Action is one kind of response action. The journal entry is its
// receipt: Plan fills in the prior state of every object it will change
// and the objects it will create, Apply works from that record, and Revert
// needs nothing else, so an action interrupted between intent and outcome
// can still be reverted.
type Action interface {
	Info() Info
	// Validate checks the target and the parameters without calling the
	// API, and returns the parameters with defaults filled in. Its errors
	// are *InputError or wrap ErrExecDisabled or ErrNotAllowed.
	Validate(target string, params json.RawMessage) (json.RawMessage, error)
	// Plan reads the cluster and records in e what Apply will do: the
	// prior state of every object it will change (e.Prior), the changes
	// (e.Changes), the objects it will create (e.Created), and resolved
	// parameters (e.Params). When the action's effect is already in
	// place, it records nothing and returns a message that says so.
	Plan(ctx context.Context, env Env, e *journal.Entry) (already string, err error)
	// Apply makes the planned change; with dryRun the API server only
	// checks it. It updates e.Changes and e.Created to what was done. A
	// conflict (apierrors.IsConflict) means the objects changed since
	// Plan, before anything was changed: the Runner plans again.
	Apply(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (Outcome, error)
	// Revert undoes e from what it recorded, restoring only the fields
	// the action set that nobody changed since, and reports the rest as
	// left alone.
	Revert(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (*journal.Revert, error)
}

// Outcome is what Apply reports beyond its changes.
type Outcome struct {
	// Output is recorded as the journal entry's result (exec output,
	// per-pod eviction results).
	Output any
	// Warnings are things a responder must see, such as an eviction a
	// PodDisruptionBudget blocked.
	Warnings []string
}

// Registry holds the actions by name.
type Registry struct {
	actions map[string]Action
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{actions: map[string]Action{}} }

// Register adds an action; a second action with the same name is an error.
func (r *Registry) Register(a Action) error {
	name := a.Info().Name
	if _, dup := r.actions[name]; dup {
		return fmt.Errorf("action %q registered twice", name)
	}
	r.actions[name] = a
	return nil
}

// Get returns the action with that name.
func (r *Registry) Get(name string) (Action, bool) {
	a, ok := r.actions[name]
	return a, ok
}

// All returns the actions sorted by name.
func (r *Registry) All() []Action {
	out := make([]Action, 0, len(r.actions))
	for _, a := range r.actions {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Info().Name < out[j].Info().Name })
	return out
}

// Validate checks a request without any API call: the action exists and
// its target and parameters are valid (and, for exec, allowed).
func (r *Registry) Validate(req Request) error {
	_, _, err := r.prepare(req)
	return err
}

func (r *Registry) prepare(req Request) (Action, json.RawMessage, error) {
	act, ok := r.Get(req.Action)
	if !ok {
		var names []string
		for _, a := range r.All() {
			names = append(names, a.Info().Name)
		}
		return nil, nil, inputErrorf("unknown action %q (known: %s)", req.Action, strings.Join(names, ", "))
	}
	raw, err := marshalParams(req.Params)
	if err != nil {
		return nil, nil, err
	}
	params, err := act.Validate(req.Target, raw)
	if err != nil {
		return nil, nil, err
	}
	return act, params, nil
}

// Builtin returns a registry of kdfir's actions: isolate-pod,
// isolate-namespace, cordon-node, exec-pod (governed by exec) and
// remove-pod-markers.
func Builtin(exec ExecPolicy) *Registry {
	r := NewRegistry()
	for _, a := range []Action{IsolatePod{}, IsolateNamespace{}, CordonNode{}, ExecPod{Policy: exec}, RemovePodMarkers{}} {
		if err := r.Register(a); err != nil {
			panic(err) // the names above are distinct constants
		}
	}
	return r
}

// Journal is the part of *journal.Journal the Runner uses.
type Journal interface {
	Begin(ctx context.Context, e *journal.Entry) error
	Update(ctx context.Context, e *journal.Entry) error
	Finish(ctx context.Context, e *journal.Entry, result any, actionErr error) error
	Get(ctx context.Context, id string) (*journal.Entry, error)
	Unreverted(ctx context.Context, cluster, action, target string) ([]*journal.Entry, error)
}

// Runner runs, reverts and releases actions on one cluster and journals
// each of them.
type Runner struct {
	Client  kubernetes.Interface
	Config  *rest.Config
	Journal Journal
	Actions *Registry
	// Cluster is the cluster's name, as recorded in the journal.
	Cluster string
	// Actor is who acts: the OS user, or an API key's name.
	Actor string
	// Log defaults to slog.Default().
	Log *slog.Logger
}

// Request asks for one action.
type Request struct {
	Action string
	Target string
	// Params are the action's parameters: a struct such as
	// IsolatePodParams, or JSON.
	Params any
	Reason string
	DryRun bool
	// Parent links the journal entry to what caused it: an alert's id.
	Parent string
}

// Status is how a run or a revert ended.
type Status string

// Statuses of a Result.
const (
	StatusSucceeded       Status = "succeeded"
	StatusFailed          Status = "failed"
	StatusDryRun          Status = "dry-run"
	StatusUnchanged       Status = "unchanged" // already in place; nothing journaled
	StatusReverted        Status = "reverted"
	StatusAlreadyReverted Status = "already-reverted"
)

// Result is what a run, a revert or a release did.
type Result struct {
	// ID is the journaled action (the one reverted, for a revert).
	ID        string           `json:"id,omitempty"`
	Action    string           `json:"action"`
	Target    string           `json:"target"`
	Status    Status           `json:"status"`
	Message   string           `json:"message"`
	Changes   []journal.Change `json:"changes"`
	LeftAlone []string         `json:"leftAlone,omitempty"`
	Warnings  []string         `json:"warnings,omitempty"`
	// Reverted lists every action a release reverted, newest first.
	Reverted []string `json:"reverted,omitempty"`
	Output   any      `json:"output,omitempty"`
	// Plan is, for a dry run, every object that would change and how,
	// from the API server's dry-run answers.
	Plan []PlanItem `json:"plan,omitempty"`
}

// InputError is bad input, found before any API call.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// ErrNotRevertible is returned when reverting an action that changes
// nothing kdfir can undo (exec).
var ErrNotRevertible = errors.New("cannot be reverted")

// maxReplans bounds how often a run plans again after a conflict.
const maxReplans = 5

// testHook, when set by a test, is called at "intent" (after the intent is
// written, before any change) and at "applied" (after the change, before
// the outcome is written), and likewise at "revert-intent" and
// "revert-applied" for a revert, so a test can kill the process there.
var testHook func(stage string)

func (r *Runner) env() Env { return Env{Client: r.Client, Config: r.Config} }

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Run validates, plans, journals and applies one action. When the action
// fails after its intent was journaled, Run returns both the Result (with
// the action id) and the error.
func (r *Runner) Run(ctx context.Context, req Request) (*Result, error) {
	act, params, err := r.Actions.prepare(req)
	if err != nil {
		return nil, err
	}
	e := &journal.Entry{
		ID: journal.NewID(), Actor: r.Actor, Reason: req.Reason, Cluster: r.Cluster,
		Action: req.Action, Target: req.Target, Params: params, Parent: req.Parent,
	}
	res := &Result{Action: req.Action, Target: req.Target, Changes: []journal.Change{}}
	already, err := act.Plan(ctx, r.env(), e)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Action, req.Target, err)
	}
	if already != "" {
		res.Status, res.Message = StatusUnchanged, already
		return res, nil
	}
	if req.DryRun {
		env, plan := r.dryRunEnv()
		out, err := act.Apply(ctx, env, e, true)
		if err != nil {
			return nil, fmt.Errorf("%s %s (dry run): %w", req.Action, req.Target, err)
		}
		res.Status, res.Message = StatusDryRun, "dry run: the API server accepted these changes; nothing was changed or journaled"
		res.Changes = nonNil(e.Changes)
		res.Plan = plan(e.Changes)
		res.Output, res.Warnings = out.Output, out.Warnings
		return res, nil
	}

	log := r.log().With("action", req.Action, "id", e.ID, "target", req.Target)
	ctx = withLogger(ctx, log)
	if err := r.Journal.Begin(ctx, e); err != nil {
		return nil, err
	}
	hook("intent")
	out, applyErr := r.apply(ctx, act, e, log)
	hook("applied")
	// The outcome is recorded even when ctx was cancelled mid-action.
	wctx := context.WithoutCancel(ctx)
	if err := r.Journal.Finish(wctx, e, out.Output, applyErr); err != nil {
		return nil, errors.Join(applyErr, err)
	}
	res.ID, res.Changes, res.Output, res.Warnings = e.ID, nonNil(e.Changes), out.Output, out.Warnings
	if applyErr != nil {
		res.Status, res.Message = StatusFailed, applyErr.Error()
		log.Warn("action failed", "err", applyErr)
		return res, fmt.Errorf("%s %s: %w (journaled as action %s, which can be reverted)", req.Action, req.Target, applyErr, e.ID)
	}
	res.Status, res.Message = StatusSucceeded, fmt.Sprintf("%s %s done", req.Action, req.Target)
	if len(e.Changes) == 0 {
		res.Message = "nothing left to change: another writer made the change first"
	}
	log.Debug("action applied", "changes", len(e.Changes))
	return res, nil
}

// apply runs Apply, planning again (and updating the intent) when the
// objects changed between Plan and Apply.
func (r *Runner) apply(ctx context.Context, act Action, e *journal.Entry, log *slog.Logger) (Outcome, error) {
	for attempt := 1; ; attempt++ {
		out, err := act.Apply(ctx, r.env(), e, false)
		if err == nil || !apierrors.IsConflict(err) || attempt == maxReplans {
			return out, err
		}
		log.Debug("conflict: planning again", "attempt", attempt, "err", err)
		e.Prior, e.Changes, e.Created = nil, nil, nil
		already, err := act.Plan(ctx, r.env(), e)
		if err != nil {
			return Outcome{}, err
		}
		if already != "" {
			// Someone else made the change: record that nothing was done.
			e.Prior, e.Changes, e.Created = nil, nil, nil
			return Outcome{}, nil
		}
		if err := r.Journal.Update(ctx, e); err != nil {
			return Outcome{}, err
		}
	}
}

func hook(stage string) {
	if testHook != nil {
		testHook(stage)
	}
}

// Revert undoes the journaled action id. Reverting an action that was
// already reverted changes nothing and says so.
func (r *Runner) Revert(ctx context.Context, id string, dryRun bool) (*Result, error) {
	e, err := r.Journal.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.revert(ctx, e, dryRun)
}

func (r *Runner) revert(ctx context.Context, e *journal.Entry, dryRun bool) (*Result, error) {
	res := &Result{ID: e.ID, Action: e.Action, Target: e.Target, Changes: []journal.Change{}}
	if e.Cluster != r.Cluster {
		return nil, fmt.Errorf("action %s was taken on cluster %q, not on %q: target that cluster to revert it", e.ID, e.Cluster, r.Cluster)
	}
	if e.Revert != nil && e.Revert.Status == journal.Succeeded {
		res.Status = StatusAlreadyReverted
		res.Message = fmt.Sprintf("action %s was already reverted at %s by %s; nothing to do", e.ID, e.Revert.Time.Format(time.RFC3339), e.Revert.Actor)
		return res, nil
	}
	act, ok := r.Actions.Get(e.Action)
	if !ok || !act.Info().Revertible {
		return nil, fmt.Errorf("action %s (%s): %w: it changed nothing kdfir can undo", e.ID, e.Action, ErrNotRevertible)
	}
	if dryRun {
		env, plan := r.dryRunEnv()
		rv, err := act.Revert(ctx, env, e, true)
		if err != nil {
			return nil, fmt.Errorf("revert %s (dry run): %w", e.ID, err)
		}
		res.Status, res.Message = StatusDryRun, "dry run: the API server accepted these changes; nothing was changed or journaled"
		res.Changes, res.LeftAlone = nonNil(rv.Changes), rv.LeftAlone
		res.Plan = plan(rv.Changes)
		return res, nil
	}
	// The revert's intent, so that a revert interrupted midway shows as
	// pending and can run again.
	e.Revert = &journal.Revert{Time: time.Now().UTC(), Actor: r.Actor, Status: journal.Pending}
	if err := r.Journal.Update(ctx, e); err != nil {
		return nil, err
	}
	hook("revert-intent")
	rv, revErr := act.Revert(ctx, r.env(), e, false)
	hook("revert-applied")
	if rv == nil {
		rv = &journal.Revert{}
	}
	rv.Time, rv.Actor, rv.Status = e.Revert.Time, r.Actor, journal.Succeeded
	if revErr != nil {
		rv.Status, rv.Error = journal.Failed, revErr.Error()
	}
	e.Revert = rv
	if err := r.Journal.Update(context.WithoutCancel(ctx), e); err != nil {
		return nil, errors.Join(revErr, err)
	}
	res.Changes, res.LeftAlone = nonNil(rv.Changes), rv.LeftAlone
	if revErr != nil {
		res.Status, res.Message = StatusFailed, revErr.Error()
		return res, fmt.Errorf("revert %s: %w", e.ID, revErr)
	}
	res.Status, res.Message = StatusReverted, fmt.Sprintf("action %s (%s %s) reverted", e.ID, e.Action, e.Target)
	if len(rv.LeftAlone) > 0 {
		res.Message += fmt.Sprintf("; left alone %d thing(s) changed since", len(rv.LeftAlone))
	}
	r.log().Debug("action reverted", "id", e.ID, "action", e.Action, "target", e.Target, "changes", len(rv.Changes), "left_alone", len(rv.LeftAlone))
	return res, nil
}

// Release reverts every unreverted action of one kind on target, newest
// first: `kdfir unisolate pod X` releases every isolate-pod of X. When
// there is none, it checks that the target exists and says that there is
// nothing to release.
func (r *Runner) Release(ctx context.Context, action, target string, dryRun bool) (*Result, error) {
	act, params, err := r.Actions.prepare(Request{Action: action, Target: target})
	if err != nil {
		return nil, err
	}
	entries, err := r.Journal.Unreverted(ctx, r.Cluster, action, target)
	if err != nil {
		return nil, err
	}
	res := &Result{Action: action, Target: target, Changes: []journal.Change{}}
	if len(entries) == 0 {
		// Plan reads the target, so a missing one is reported by name.
		scratch := &journal.Entry{Action: action, Target: target, Params: params}
		if _, err := act.Plan(ctx, r.env(), scratch); err != nil {
			return nil, fmt.Errorf("release %s: %w", target, err)
		}
		res.Status = StatusUnchanged
		res.Message = fmt.Sprintf("nothing to release: no %s of %s in the journal for cluster %s", action, target, r.Cluster)
		return res, nil
	}
	res.Status = StatusReverted
	if dryRun {
		res.Status = StatusDryRun
	}
	var msgs []string
	for _, e := range entries {
		one, err := r.revert(ctx, e, dryRun)
		if one != nil {
			res.Reverted = append(res.Reverted, e.ID)
			res.Changes = append(res.Changes, one.Changes...)
			res.LeftAlone = append(res.LeftAlone, one.LeftAlone...)
			res.Plan = append(res.Plan, one.Plan...)
			msgs = append(msgs, one.Message)
		}
		if err != nil {
			res.Status, res.Message = StatusFailed, err.Error()
			return res, err
		}
	}
	res.ID = entries[0].ID
	res.Message = strings.Join(msgs, "; ")
	return res, nil
}

func marshalParams(p any) (json.RawMessage, error) {
	switch p := p.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return p, nil
	case []byte:
		return p, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, inputErrorf("parameters: %v", err)
	}
	return b, nil
}

func nonNil(c []journal.Change) []journal.Change {
	if c == nil {
		return []journal.Change{}
	}
	return c
}
