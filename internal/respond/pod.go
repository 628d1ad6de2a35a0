package respond

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"

	"github.com/kdfir/kdfir/internal/journal"
)

// IsolatePodParams are the parameters of isolate-pod.
type IsolatePodParams struct {
	// Label is the quarantine label, KEY=VALUE (default
	// kdfir.io/quarantine=true).
	Label string `json:"label,omitempty"`
	// Detach also removes the labels by which the pod's Services and its
	// ReplicaSet, StatefulSet, DaemonSet or Job select it, so it leaves
	// the Service endpoints and its controller replaces it.
	Detach bool `json:"detach,omitempty"`
	// Policy names the deny-all NetworkPolicy (default kdfir-quarantine,
	// or a name derived from the label). A policy of that name that kdfir
	// did not create is relied on, never changed or deleted, when it
	// denies all traffic of exactly the labelled pods: so a namespace the
	// original AKS function isolated (deny-all-affected) keeps working.
	Policy string `json:"policy,omitempty"`
}

// isolatePodRecord is what isolate-pod journals as its parameters.
type isolatePodRecord struct {
	IsolatePodParams
	// Policy is the namespace's deny-all policy for Label.
	Policy string `json:"policy"`
	// Selector is the labels the pod gets and the policy selects: Label,
	// and kdfir's own label beside any other, so that a label the user
	// chose (app=web) never selects pods kdfir did not isolate. Entries
	// journaled before it existed select Label alone.
	Selector map[string]string `json:"selector,omitempty"`
	// DetachLabels are the label keys --detach removes, found by Plan.
	DetachLabels []string `json:"detachLabels,omitempty"`
}

// IsolatePod labels a pod as quarantined and ensures a NetworkPolicy in
// its namespace that denies all ingress and egress of exactly the
// quarantined pods. One policy per namespace and label serves every
// quarantined pod; releasing the last of them deletes it.
type IsolatePod struct{}

// Info implements Action.
func (IsolatePod) Info() Info {
	return Info{
		Name:       "isolate-pod",
		Summary:    "label a pod as quarantined and deny all its traffic with a NetworkPolicy",
		Example:    "kdfir isolate pod shop/web-7f9 --reason INC-1234",
		Revertible: true,
		Role:       RoleIsolate,
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "create", "patch", "delete"}},
			{APIGroups: []string{"apps"}, Resources: []string{"replicasets", "statefulsets", "daemonsets"}, Verbs: []string{"get"}},
			{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get"}},
		},
	}
}

// Validate implements Action.
func (IsolatePod) Validate(target string, params json.RawMessage) (json.RawMessage, error) {
	var p IsolatePodParams
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if _, _, err := parsePodTarget(target); err != nil {
		return nil, err
	}
	if p.Label == "" {
		p.Label = DefaultQuarantine
	}
	key, value, err := parseLabel(p.Label)
	if err != nil {
		return nil, err
	}
	if err := checkLabelKey(key); err != nil {
		return nil, err
	}
	policy := quarantinePolicyName(key, value)
	if p.Policy != "" {
		if errs := validation.IsDNS1123Subdomain(p.Policy); len(errs) > 0 {
			return nil, inputErrorf("invalid policy name %q: %s", p.Policy, errs[0])
		}
		policy = p.Policy
	}
	sel := map[string]string{key: value, QuarantineKey: QuarantineValue}
	if key == QuarantineKey {
		sel = map[string]string{key: value}
	}
	return mustJSON(isolatePodRecord{IsolatePodParams: p, Policy: policy, Selector: sel}), nil
}

func podObject(ns, name string) journal.Object {
	return journal.Object{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: name}
}

// isolatePodOp is one isolate-pod entry, decoded.
type isolatePodOp struct {
	ns, name   string
	key, value string
	rec        isolatePodRecord
}

func decodeIsolatePod(e *journal.Entry) (*isolatePodOp, error) {
	op := &isolatePodOp{}
	var err error
	op.ns, op.name, op.key, op.value, err = decodePodLabel(e, &op.rec, func() string { return op.rec.Label })
	return op, err
}

// decodePodLabel decodes a journaled action on a pod that sets or removes
// a label: the pod from the target, the parameters into params, and the
// label that label reads from them.
func decodePodLabel(e *journal.Entry, params any, label func() string) (ns, name, key, value string, err error) {
	if ns, name, err = parsePodTarget(e.Target); err != nil {
		return "", "", "", "", err
	}
	if err := decodeParams(e.Params, params); err != nil {
		return "", "", "", "", err
	}
	if key, value, err = parseLabel(label()); err != nil {
		return "", "", "", "", err
	}
	return ns, name, key, value, nil
}

func (op *isolatePodOp) selector() map[string]string {
	if len(op.rec.Selector) > 0 {
		return op.rec.Selector
	}
	return map[string]string{op.key: op.value}
}

// edits are the labels and annotations isolation sets on a pod that was
// in state pod: the quarantine label; the detach labels removed; and,
// when it adds the quarantine label, the action id.
func (op *isolatePodOp) edits(pod *corev1.Pod, id string) []metaEdit {
	want := map[string]*string{}
	for k, v := range op.selector() {
		want[k] = ptr(v)
	}
	for _, k := range op.rec.DetachLabels {
		if k != op.key {
			want[k] = nil
		}
	}
	edits := diffMeta("labels", pod.Labels, want)
	for _, ed := range edits {
		if ed.Key == op.key {
			return append(edits, diffMeta("annotations", pod.Annotations, map[string]*string{ActionIDKey: ptr(id)})...)
		}
	}
	return edits
}

// Plan implements Action.
func (IsolatePod) Plan(ctx context.Context, env Env, e *journal.Entry) (string, error) {
	op, err := decodeIsolatePod(e)
	if err != nil {
		return "", err
	}
	var pod *corev1.Pod
	policyExists := false
	err = inParallel(
		func() error {
			var err error
			pod, err = getPod(ctx, env, op.ns, op.name)
			return err
		},
		func() error {
			p, err := getPolicy(ctx, env, op.ns, op.rec.Policy)
			if err == nil && p != nil {
				err = checkDenyAll(p, op.selector(), op.rec.IsolatePodParams.Policy != "")
				policyExists = true
			}
			return err
		},
	)
	if err != nil {
		return "", err
	}
	op.rec.DetachLabels = nil
	if op.rec.Detach {
		if op.rec.DetachLabels, err = selectorKeys(ctx, env, pod, op.key); err != nil {
			return "", err
		}
	}
	e.Params = mustJSON(op.rec)
	obj := podObject(op.ns, op.name)
	if edits := op.edits(pod, e.ID); len(edits) > 0 {
		recordPrior(e, obj, pod)
		e.Changes = append(e.Changes, editChanges(obj, edits)...)
	}
	if !policyExists {
		pobj := policyObject(op.ns, op.rec.Policy)
		e.Created = append(e.Created, pobj)
		e.Changes = append(e.Changes, journal.Change{Object: pobj, Op: "create", Detail: policyDetail(op.selector())})
	}
	if len(e.Changes) == 0 {
		return fmt.Sprintf("pod %s/%s is already isolated (label %s=%s, networkpolicy %s)", op.ns, op.name, op.key, op.value, op.rec.Policy), nil
	}
	return "", nil
}

// Apply implements Action: it labels the pod (with a resourceVersion
// precondition), then ensures the policy, in that order (see
// lastActionKey).
func (IsolatePod) Apply(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (Outcome, error) {
	op, err := decodeIsolatePod(e)
	if err != nil {
		return Outcome{}, err
	}
	pobj := policyObject(op.ns, op.rec.Policy)
	var pod corev1.Pod
	if ok, err := priorOf(e, podObject(op.ns, op.name), &pod); err != nil {
		return Outcome{}, err
	} else if ok {
		patch := mustJSON(metaPatch(pod.ResourceVersion, op.edits(&pod, e.ID)))
		if _, err := env.Client.CoreV1().Pods(op.ns).Patch(ctx, op.name, types.MergePatchType, patch, patchOptions(dryRun)); err != nil {
			return Outcome{}, fmt.Errorf("label pod %s/%s: %w", op.ns, op.name, err)
		}
	}
	planned := containsObject(e.Created, pobj)
	want := denyAllPolicy(op.ns, op.rec.Policy, op.selector(), e.ID)
	created, err := ensureSharedPolicy(ctx, env, want, e.ID, planned, dryRun)
	if err != nil {
		return Outcome{}, err
	}
	if created != planned {
		setCreated(e, pobj, created, policyDetail(op.selector()))
	}
	return Outcome{}, nil
}

// Revert implements Action: it restores the pod's labels and annotations
// that isolation set and nobody changed since, then deletes the policy if
// no quarantined pod is left in the namespace.
func (IsolatePod) Revert(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (*journal.Revert, error) {
	op, err := decodeIsolatePod(e)
	if err != nil {
		return nil, err
	}
	rv := &journal.Revert{}
	var pod corev1.Pod
	ok, err := priorOf(e, podObject(op.ns, op.name), &pod)
	if err != nil {
		return nil, err
	}
	var pol *networkingv1.NetworkPolicy
	unlabelled := false
	err = inParallel(
		func() error {
			if !ok {
				return nil
			}
			undo, err := revertPodMeta(ctx, env, op.ns, op.name, op.edits(&pod, e.ID), rv, dryRun)
			for _, u := range undo {
				unlabelled = unlabelled || u.Key == op.key && u.Field == "labels"
			}
			return err
		},
		func() error {
			var err error
			pol, err = getPolicy(ctx, env, op.ns, op.rec.Policy)
			return err
		},
	)
	if err != nil {
		return rv, err
	}
	ignore := ""
	if dryRun && unlabelled {
		ignore = op.name
	}
	changes, left, err := releaseSharedPolicy(ctx, env, op.ns, op.rec.Policy, pol, op.selector(), ignore, dryRun)
	rv.Changes = append(rv.Changes, changes...)
	rv.LeftAlone = append(rv.LeftAlone, left...)
	return rv, err
}

// revertPodMeta undoes edits on a pod's labels and annotations (see
// revertMetaOn).
func revertPodMeta(ctx context.Context, env Env, ns, name string, edits []metaEdit, rv *journal.Revert, dryRun bool) ([]metaEdit, error) {
	pods := env.Client.CoreV1().Pods(ns)
	return revertMetaOn(ctx, podObject(ns, name), edits, rv,
		func(ctx context.Context) (metav1.Object, error) { return pods.Get(ctx, name, metav1.GetOptions{}) },
		func(ctx context.Context, pt types.PatchType, patch []byte) error {
			_, err := pods.Patch(ctx, name, pt, patch, patchOptions(dryRun))
			return err
		})
}

// revertMetaOn undoes edits on one object and records what it did in rv;
// it returns the undone edits. When every edit set a value, one JSON patch
// whose test operations check each value is still the one kdfir set
// undoes them all in a single round trip. Otherwise, or when a test fails
// because someone changed a value since, it reads the object, works out
// what is still as kdfir set it (revertMeta), and patches that back with a
// resourceVersion precondition, reading again on conflict.
func revertMetaOn(ctx context.Context, obj journal.Object, edits []metaEdit, rv *journal.Revert,
	get func(context.Context) (metav1.Object, error), patch func(context.Context, types.PatchType, []byte) error) ([]metaEdit, error) {
	if ops, ok := testedPatch(edits); ok {
		err := patch(ctx, types.JSONPatchType, ops)
		if err == nil {
			undo := make([]metaEdit, len(edits))
			for i, e := range edits {
				undo[i] = e.reversed()
				rv.Changes = append(rv.Changes, journal.Change{Object: obj, Op: "patch", Detail: undo[i].describe()})
			}
			return undo, nil
		}
		if !apierrors.IsInvalid(err) && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("restore %s: %w", obj, err)
		}
		// A test failed (422) or the object is gone: take the careful path.
	}
	var undo []metaEdit
	var changes []journal.Change
	var left []string
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := get(ctx)
		if apierrors.IsNotFound(err) {
			undo, changes, left = nil, nil, []string{obj.String() + " no longer exists"}
			return nil
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", obj, err)
		}
		undo, changes, left = revertMeta(obj, edits, cur.GetLabels(), cur.GetAnnotations())
		if len(undo) == 0 {
			return nil
		}
		return patch(ctx, types.MergePatchType, mustJSON(metaPatch(cur.GetResourceVersion(), undo)))
	})
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", obj, err)
	}
	rv.Changes = append(rv.Changes, changes...)
	rv.LeftAlone = append(rv.LeftAlone, left...)
	return undo, nil
}

func getPod(ctx context.Context, env Env, ns, name string) (*corev1.Pod, error) {
	pod, err := env.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("pod %s/%s not found", ns, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", ns, name, err)
	}
	return pod, nil
}

// selectorKeys returns the pod's labels that its Services' selectors and
// its controller's selector use (matchLabels, and In or Exists
// expressions), except the quarantine key: removing them takes the pod
// out of every one of those selectors.
func selectorKeys(ctx context.Context, env Env, pod *corev1.Pod, quarantineKey string) ([]string, error) {
	keys := map[string]bool{}
	svcs, err := env.Client.CoreV1().Services(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services in %s: %w", pod.Namespace, err)
	}
	set := labels.Set(pod.Labels)
	for _, s := range svcs.Items {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(set) {
			for k := range s.Spec.Selector {
				keys[k] = true
			}
		}
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		sel, err := controllerSelector(ctx, env, pod.Namespace, ref)
		if err != nil {
			return nil, err
		}
		if sel != nil {
			if s, err := metav1.LabelSelectorAsSelector(sel); err == nil && s.Matches(set) {
				for k := range sel.MatchLabels {
					keys[k] = true
				}
				for _, r := range sel.MatchExpressions {
					if r.Operator == metav1.LabelSelectorOpIn || r.Operator == metav1.LabelSelectorOpExists {
						keys[r.Key] = true
					}
				}
			}
		}
	}
	var out []string
	for k := range keys {
		if _, has := pod.Labels[k]; has && k != quarantineKey {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// controllerSelector returns the selector of a pod's ReplicaSet,
// StatefulSet, DaemonSet or Job; nil for other controllers or when the
// controller is gone.
func controllerSelector(ctx context.Context, env Env, ns string, ref *metav1.OwnerReference) (*metav1.LabelSelector, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, nil
	}
	var sel *metav1.LabelSelector
	opts := metav1.GetOptions{}
	switch {
	case gv.Group == "apps" && ref.Kind == "ReplicaSet":
		rs, e := env.Client.AppsV1().ReplicaSets(ns).Get(ctx, ref.Name, opts)
		if err = e; e == nil {
			sel = rs.Spec.Selector
		}
	case gv.Group == "apps" && ref.Kind == "StatefulSet":
		ss, e := env.Client.AppsV1().StatefulSets(ns).Get(ctx, ref.Name, opts)
		if err = e; e == nil {
			sel = ss.Spec.Selector
		}
	case gv.Group == "apps" && ref.Kind == "DaemonSet":
		ds, e := env.Client.AppsV1().DaemonSets(ns).Get(ctx, ref.Name, opts)
		if err = e; e == nil {
			sel = ds.Spec.Selector
		}
	case gv.Group == "batch" && ref.Kind == "Job":
		job, e := env.Client.BatchV1().Jobs(ns).Get(ctx, ref.Name, opts)
		if err = e; e == nil {
			sel = job.Spec.Selector
		}
	default:
		return nil, nil
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s/%s: %w", ref.Kind, ns, ref.Name, err)
	}
	return sel, nil
}

// recordPrior journals obj's state before the action changes it, without
// its managedFields.
func recordPrior(e *journal.Entry, obj journal.Object, state metav1.Object) {
	state.SetManagedFields(nil)
	e.Prior = append(e.Prior, journal.Prior{Object: obj, State: mustJSON(state)})
}

// priorOf decodes obj's journaled prior state into v; false when the
// action recorded none (it does not change obj).
func priorOf(e *journal.Entry, obj journal.Object, v any) (bool, error) {
	for _, p := range e.Prior {
		if p.Object == obj {
			if err := json.Unmarshal(p.State, v); err != nil {
				return false, fmt.Errorf("journaled state of %s: %w", obj, err)
			}
			return true, nil
		}
	}
	return false, nil
}

func containsObject(list []journal.Object, o journal.Object) bool {
	for _, x := range list {
		if x == o {
			return true
		}
	}
	return false
}

// setCreated corrects e's record of whether the action created obj, when
// another writer created (or deleted) it between Plan and Apply.
func setCreated(e *journal.Entry, obj journal.Object, created bool, detail string) {
	var objs []journal.Object
	for _, o := range e.Created {
		if o != obj {
			objs = append(objs, o)
		}
	}
	var changes []journal.Change
	for _, c := range e.Changes {
		if c.Object != obj || c.Op != "create" {
			changes = append(changes, c)
		}
	}
	if created {
		objs = append(objs, obj)
		changes = append(changes, journal.Change{Object: obj, Op: "create", Detail: detail})
	}
	e.Created, e.Changes = objs, changes
}

func patchOptions(dryRun bool) metav1.PatchOptions {
	o := metav1.PatchOptions{FieldManager: FieldManager}
	if dryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}
	return o
}
