package respond

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/kdfir/kdfir/internal/journal"
)

// CordonNodeParams are the parameters of cordon-node.
type CordonNodeParams struct {
	// Taint adds the taint kdfir.io/quarantine:NoSchedule.
	Taint bool `json:"taint,omitempty"`
	// Drain evicts every pod on the node through the Eviction API, so
	// PodDisruptionBudgets are honoured, except DaemonSet pods, mirror
	// pods and pods that are themselves quarantined.
	Drain bool `json:"drain,omitempty"`
}

// cordonNodeRecord is what cordon-node journals as its parameters.
type cordonNodeRecord struct {
	CordonNodeParams
	// Evict are the pods (NAMESPACE/NAME) Plan chose to evict; their
	// prior states are journaled too.
	Evict []string `json:"evict,omitempty"`
	// Skipped are the pods on the node that drain leaves, with why.
	Skipped []string `json:"skipped,omitempty"`
}

// quarantineTaint is the taint --taint adds.
var quarantineTaint = corev1.Taint{Key: QuarantineKey, Effect: corev1.TaintEffectNoSchedule}

// CordonNode labels a node as quarantined and marks it unschedulable;
// optionally it taints it and drains it.
type CordonNode struct{}

// Info implements Action.
func (CordonNode) Info() Info {
	return Info{
		Name:       "cordon-node",
		Summary:    "label a node as quarantined, mark it unschedulable, optionally taint and drain it",
		Example:    "kdfir cordon node aks-pool-1 --taint --drain --reason INC-1234",
		Revertible: true,
		Role:       RoleCordon,
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
			{APIGroups: []string{""}, Resources: []string{"pods/eviction"}, Verbs: []string{"create"}},
		},
	}
}

// Validate implements Action.
func (CordonNode) Validate(target string, params json.RawMessage) (json.RawMessage, error) {
	var p CordonNodeParams
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := checkNodeName(target); err != nil {
		return nil, err
	}
	return mustJSON(cordonNodeRecord{CordonNodeParams: p}), nil
}

func nodeObject(name string) journal.Object {
	return journal.Object{APIVersion: "v1", Kind: "Node", Name: name}
}

// nodeEdit is everything cordon sets on a node, worked out from its prior
// state.
type nodeEdit struct {
	meta          []metaEdit
	unschedulable bool // it sets spec.unschedulable (it was false)
	taint         bool // it adds quarantineTaint
}

func (n nodeEdit) empty() bool { return len(n.meta) == 0 && !n.unschedulable && !n.taint }

func cordonEdits(node *corev1.Node, p CordonNodeParams, id string) nodeEdit {
	ed := nodeEdit{
		meta:          diffMeta("labels", node.Labels, map[string]*string{QuarantineKey: ptr(QuarantineValue)}),
		unschedulable: !node.Spec.Unschedulable,
		taint:         p.Taint && !hasTaint(node.Spec.Taints, quarantineTaint),
	}
	if len(ed.meta) > 0 {
		ed.meta = append(ed.meta, diffMeta("annotations", node.Annotations, map[string]*string{ActionIDKey: ptr(id)})...)
	}
	return ed
}

func hasTaint(ts []corev1.Taint, t corev1.Taint) bool {
	return slices.ContainsFunc(ts, func(x corev1.Taint) bool { return x.MatchTaint(&t) })
}

// Plan implements Action.
func (CordonNode) Plan(ctx context.Context, env Env, e *journal.Entry) (string, error) {
	var rec cordonNodeRecord
	if err := decodeParams(e.Params, &rec); err != nil {
		return "", err
	}
	name := e.Target
	node, err := env.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("node %s not found", name)
	}
	if err != nil {
		return "", fmt.Errorf("get node %s: %w", name, err)
	}
	obj := nodeObject(name)
	ed := cordonEdits(node, rec.CordonNodeParams, e.ID)
	if !ed.empty() {
		recordPrior(e, obj, node)
		e.Changes = append(e.Changes, editChanges(obj, ed.meta)...)
		if ed.unschedulable {
			e.Changes = append(e.Changes, journal.Change{Object: obj, Op: "patch", Detail: "spec.unschedulable set to true (was false)"})
		}
		if ed.taint {
			e.Changes = append(e.Changes, journal.Change{Object: obj, Op: "patch", Detail: "taint " + quarantineTaint.ToString() + " added"})
		}
	}
	rec.Evict, rec.Skipped = nil, nil
	if rec.Drain {
		pods, err := env.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String()})
		if err != nil {
			return "", fmt.Errorf("list pods on node %s: %w", name, err)
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			ref := p.Namespace + "/" + p.Name
			if why := keepOnDrain(p); why != "" {
				rec.Skipped = append(rec.Skipped, ref+": "+why)
				continue
			}
			rec.Evict = append(rec.Evict, ref)
			recordPrior(e, podObject(p.Namespace, p.Name), p)
			e.Changes = append(e.Changes, journal.Change{Object: podObject(p.Namespace, p.Name), Op: "evict", Detail: "evicted through the Eviction API"})
		}
	}
	e.Params = mustJSON(rec)
	if len(e.Changes) == 0 {
		return fmt.Sprintf("node %s is already cordoned", name), nil
	}
	return "", nil
}

// keepOnDrain says why drain leaves a pod, or "" to evict it.
func keepOnDrain(p *corev1.Pod) string {
	if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "DaemonSet" {
		return "DaemonSet pod"
	}
	if _, ok := p.Annotations[corev1.MirrorPodAnnotationKey]; ok {
		return "mirror (static) pod"
	}
	if p.Labels[QuarantineKey] == QuarantineValue || p.Annotations[ActionIDKey] != "" {
		return "quarantined pod (kept for forensics)"
	}
	if p.DeletionTimestamp != nil {
		return "already terminating"
	}
	return ""
}

// nodePatch is the merge patch that applies (or, with revert, undoes) ed
// on a node in state cur, with a resourceVersion precondition.
func nodePatch(cur *corev1.Node, ed nodeEdit, revert bool) []byte {
	p := metaPatch(cur.ResourceVersion, ed.meta)
	spec := map[string]any{}
	if ed.unschedulable {
		if revert {
			spec["unschedulable"] = nil
		} else {
			spec["unschedulable"] = true
		}
	}
	if ed.taint {
		taints := slices.DeleteFunc(slices.Clone(cur.Spec.Taints), func(t corev1.Taint) bool { return t.MatchTaint(&quarantineTaint) })
		if !revert {
			taints = append(taints, quarantineTaint)
		}
		spec["taints"] = taints
	}
	if len(spec) > 0 {
		p["spec"] = spec
	}
	return mustJSON(p)
}

// evictResult is what drain did with one pod.
type evictResult struct {
	Pod    string `json:"pod"`
	Result string `json:"result"` // evicted, blocked, gone, replaced, failed
	Detail string `json:"detail,omitempty"`
}

// DrainOutput is cordon-node's journaled result.
type DrainOutput struct {
	Evictions []evictResult `json:"evictions,omitempty"`
	Skipped   []string      `json:"skipped,omitempty"`
}

// Apply implements Action: it patches the node, then evicts the planned
// pods one by one. An eviction a PodDisruptionBudget blocks is reported,
// never forced.
func (CordonNode) Apply(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (Outcome, error) {
	var rec cordonNodeRecord
	if err := decodeParams(e.Params, &rec); err != nil {
		return Outcome{}, err
	}
	name := e.Target
	var node corev1.Node
	if ok, err := priorOf(e, nodeObject(name), &node); err != nil {
		return Outcome{}, err
	} else if ok {
		patch := nodePatch(&node, cordonEdits(&node, rec.CordonNodeParams, e.ID), false)
		if _, err := env.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, patchOptions(dryRun)); err != nil {
			return Outcome{}, fmt.Errorf("cordon node %s: %w", name, err)
		}
	}
	out := DrainOutput{Skipped: rec.Skipped}
	var warnings []string
	var changes []journal.Change
	for _, c := range e.Changes {
		if c.Op != "evict" {
			changes = append(changes, c)
		}
	}
	for _, ref := range rec.Evict {
		var pod corev1.Pod
		obj := podObjectFromRef(ref)
		if _, err := priorOf(e, obj, &pod); err != nil {
			return Outcome{}, err
		}
		r := evict(ctx, env, &pod, dryRun)
		out.Evictions = append(out.Evictions, r)
		switch r.Result {
		case "evicted":
			changes = append(changes, journal.Change{Object: obj, Op: "evict", Detail: "evicted through the Eviction API"})
		case "blocked", "failed":
			warnings = append(warnings, fmt.Sprintf("pod %s not evicted (%s): %s", ref, r.Result, r.Detail))
		}
		loggerFrom(ctx).Debug("drain", "pod", ref, "result", r.Result, "detail", r.Detail)
	}
	e.Changes = changes
	return Outcome{Output: out, Warnings: warnings}, nil
}

func podObjectFromRef(ref string) journal.Object {
	ns, name, _ := parsePodTarget(ref)
	return podObject(ns, name)
}

func evict(ctx context.Context, env Env, pod *corev1.Pod, dryRun bool) evictResult {
	ref := pod.Namespace + "/" + pod.Name
	opts := &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	err := env.Client.PolicyV1().Evictions(pod.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		DeleteOptions: opts,
	})
	switch {
	case err == nil:
		return evictResult{Pod: ref, Result: "evicted"}
	case apierrors.IsTooManyRequests(err):
		return evictResult{Pod: ref, Result: "blocked", Detail: "PodDisruptionBudget: " + err.Error()}
	case apierrors.IsNotFound(err):
		return evictResult{Pod: ref, Result: "gone", Detail: "no longer exists"}
	case apierrors.IsConflict(err):
		return evictResult{Pod: ref, Result: "replaced", Detail: "a new pod of that name replaced the one planned"}
	default:
		return evictResult{Pod: ref, Result: "failed", Detail: err.Error()}
	}
}

// Revert implements Action: it restores exactly the unschedulable value,
// labels, annotations and taints cordon changed and nobody changed since.
// Evictions cannot be undone; the pods' controllers recreate them.
func (CordonNode) Revert(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (*journal.Revert, error) {
	var rec cordonNodeRecord
	if err := decodeParams(e.Params, &rec); err != nil {
		return nil, err
	}
	name := e.Target
	obj := nodeObject(name)
	rv := &journal.Revert{}
	var prior corev1.Node
	ok, err := priorOf(e, obj, &prior)
	if err != nil {
		return nil, err
	}
	for _, c := range e.Changes {
		if c.Op == "evict" {
			rv.LeftAlone = append(rv.LeftAlone, fmt.Sprintf("%s was evicted; an eviction cannot be undone (its controller, if any, recreates it)", c.Object))
		}
	}
	if !ok {
		return rv, nil
	}
	ed := cordonEdits(&prior, rec.CordonNodeParams, e.ID)
	c := env.Client.CoreV1().Nodes()
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := c.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			rv.LeftAlone = append(rv.LeftAlone, obj.String()+" no longer exists")
			return nil
		}
		if err != nil {
			return fmt.Errorf("get node %s: %w", name, err)
		}
		// undo.meta holds reversed edits, which metaPatch applies as
		// they are; revert only matters for the spec fields.
		var undo nodeEdit
		var changes []journal.Change
		var left []string
		undo.meta, changes, left = revertMeta(obj, ed.meta, cur.Labels, cur.Annotations)
		if ed.unschedulable && cur.Spec.Unschedulable {
			undo.unschedulable = true
			changes = append(changes, journal.Change{Object: obj, Op: "patch", Detail: "spec.unschedulable restored to false"})
		}
		if ed.taint && hasTaint(cur.Spec.Taints, quarantineTaint) {
			undo.taint = true
			changes = append(changes, journal.Change{Object: obj, Op: "patch", Detail: "taint " + quarantineTaint.ToString() + " removed"})
		}
		if !undo.empty() {
			if _, err := c.Patch(ctx, name, types.MergePatchType, nodePatch(cur, undo, true), patchOptions(dryRun)); err != nil {
				return err
			}
		}
		rv.Changes = append(rv.Changes, changes...)
		rv.LeftAlone = append(rv.LeftAlone, left...)
		return nil
	})
	if err != nil {
		return rv, fmt.Errorf("uncordon node %s: %w", name, err)
	}
	return rv, nil
}
