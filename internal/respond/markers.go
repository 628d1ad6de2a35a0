package respond

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kdfir/kdfir/internal/journal"
)

// RemovePodMarkersParams are the parameters of remove-pod-markers.
type RemovePodMarkersParams struct {
	// Label is the quarantine label another tool set, KEY=VALUE.
	Label string `json:"label"`
	// Policy is that tool's deny-all NetworkPolicy in the pod's namespace.
	Policy string `json:"policy"`
}

// RemovePodMarkers releases a pod that another tool quarantined, such as
// the original AKS response function (label status=quarantine, policy
// deny-all-affected), which kdfir's journal knows nothing of. It removes
// the label from the pod and, when no other pod of the namespace still
// carries it, deletes the policy. It journals both objects as they were,
// so a revert puts them back exactly.
type RemovePodMarkers struct{}

// Info implements Action.
func (RemovePodMarkers) Info() Info {
	return Info{
		Name:       "remove-pod-markers",
		Summary:    "remove another tool's quarantine label and deny-all policy from a pod",
		Example:    "kdfir unisolate pod shop/web-7f9 (with aks.compat: original in kdfir serve)",
		Revertible: true,
		Role:       RoleIsolate,
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "patch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "create", "delete"}},
		},
	}
}

// Validate implements Action.
func (RemovePodMarkers) Validate(target string, params json.RawMessage) (json.RawMessage, error) {
	var p RemovePodMarkersParams
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if _, _, err := parsePodTarget(target); err != nil {
		return nil, err
	}
	if _, _, err := parseLabel(p.Label); err != nil {
		return nil, err
	}
	if errs := validation.IsDNS1123Subdomain(p.Policy); len(errs) > 0 {
		return nil, inputErrorf("invalid policy name %q: %s", p.Policy, errs[0])
	}
	return mustJSON(p), nil
}

type markersOp struct {
	ns, name, key, value string
	p                    RemovePodMarkersParams
}

func decodeMarkers(e *journal.Entry) (*markersOp, error) {
	op := &markersOp{}
	var err error
	op.ns, op.name, op.key, op.value, err = decodePodLabel(e, &op.p, func() string { return op.p.Label })
	return op, err
}

// edits removes the label, when the pod has it with that value.
func (op *markersOp) edits(pod *corev1.Pod) []metaEdit {
	if pod.Labels[op.key] != op.value {
		return nil
	}
	return diffMeta("labels", pod.Labels, map[string]*string{op.key: nil})
}

// Plan implements Action: the pod's label goes, and the policy with it
// when no other pod of the namespace carries the label.
func (RemovePodMarkers) Plan(ctx context.Context, env Env, e *journal.Entry) (string, error) {
	op, err := decodeMarkers(e)
	if err != nil {
		return "", err
	}
	pod, err := getPod(ctx, env, op.ns, op.name)
	if err != nil {
		return "", err
	}
	edits := op.edits(pod)
	if len(edits) == 0 {
		return fmt.Sprintf("pod %s/%s has no label %s", op.ns, op.name, op.p.Label), nil
	}
	obj := podObject(op.ns, op.name)
	recordPrior(e, obj, pod)
	e.Changes = append(e.Changes, editChanges(obj, edits)...)
	pol, err := getPolicy(ctx, env, op.ns, op.p.Policy)
	if err != nil || pol == nil {
		return "", err
	}
	others, err := othersLabelled(ctx, env, op)
	if err != nil || others {
		return "", err
	}
	pobj := policyObject(op.ns, op.p.Policy)
	recordPrior(e, pobj, pol)
	e.Changes = append(e.Changes, journal.Change{Object: pobj, Op: "delete", Detail: "no other pod of the namespace carries " + op.p.Label})
	return "", nil
}

func othersLabelled(ctx context.Context, env Env, op *markersOp) (bool, error) {
	list, err := env.Client.CoreV1().Pods(op.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{op.key: op.value}.String(), Limit: 2})
	if err != nil {
		return false, fmt.Errorf("list pods labelled %s in %s: %w", op.p.Label, op.ns, err)
	}
	return slices.ContainsFunc(list.Items, func(p corev1.Pod) bool { return p.Name != op.name }), nil
}

// Apply implements Action.
func (RemovePodMarkers) Apply(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (Outcome, error) {
	op, err := decodeMarkers(e)
	if err != nil {
		return Outcome{}, err
	}
	var pod corev1.Pod
	if ok, err := priorOf(e, podObject(op.ns, op.name), &pod); err != nil || !ok {
		return Outcome{}, err
	}
	patch := mustJSON(metaPatch(pod.ResourceVersion, op.edits(&pod)))
	if _, err := env.Client.CoreV1().Pods(op.ns).Patch(ctx, op.name, types.MergePatchType, patch, patchOptions(dryRun)); err != nil {
		return Outcome{}, fmt.Errorf("unlabel pod %s/%s: %w", op.ns, op.name, err)
	}
	var pol networkingv1.NetworkPolicy
	ok, err := priorOf(e, policyObject(op.ns, op.p.Policy), &pol)
	if err != nil || !ok {
		return Outcome{}, err
	}
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pol.UID, ResourceVersion: &pol.ResourceVersion}}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	err = env.Client.NetworkingV1().NetworkPolicies(op.ns).Delete(ctx, op.p.Policy, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return Outcome{}, fmt.Errorf("delete networkpolicy %s/%s: %w", op.ns, op.p.Policy, err)
	}
	return Outcome{}, nil
}

// Revert implements Action: the label comes back unless someone set it
// since, and the policy is created again as it was, unless one of that
// name exists.
func (RemovePodMarkers) Revert(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (*journal.Revert, error) {
	op, err := decodeMarkers(e)
	if err != nil {
		return nil, err
	}
	rv := &journal.Revert{}
	var pod corev1.Pod
	if ok, err := priorOf(e, podObject(op.ns, op.name), &pod); err != nil || !ok {
		return rv, err
	}
	if _, err := revertPodMeta(ctx, env, op.ns, op.name, op.edits(&pod), rv, dryRun); err != nil {
		return rv, err
	}
	var pol networkingv1.NetworkPolicy
	pobj := policyObject(op.ns, op.p.Policy)
	ok, err := priorOf(e, pobj, &pol)
	if err != nil || !ok {
		return rv, err
	}
	again := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: pol.Name, Namespace: pol.Namespace, Labels: pol.Labels, Annotations: pol.Annotations},
		Spec:       pol.Spec,
	}
	opts := metav1.CreateOptions{FieldManager: FieldManager}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = env.Client.NetworkingV1().NetworkPolicies(op.ns).Create(ctx, again, opts)
	switch {
	case apierrors.IsAlreadyExists(err):
		rv.LeftAlone = append(rv.LeftAlone, pobj.String()+" exists again; not recreated")
	case err != nil:
		return rv, fmt.Errorf("recreate networkpolicy %s/%s: %w", op.ns, op.p.Policy, err)
	default:
		rv.Changes = append(rv.Changes, journal.Change{Object: pobj, Op: "create", Detail: "restored as it was before the release"})
	}
	return rv, nil
}
