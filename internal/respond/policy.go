package respond

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kdfir/kdfir/internal/journal"
)

// lastActionKey is bumped on the shared pod-quarantine policy by every
// isolate-pod after it labels its pod. A release deletes the policy only
// with a resourceVersion precondition read before it found no quarantined
// pod, so an isolation that labelled its pod after that check makes the
// delete fail instead of leaving its pod unprotected.
const lastActionKey = "kdfir.io/last-action-id"

// quarantinePolicyName names the namespace's deny-all policy for the pods
// labelled key=value.
func quarantinePolicyName(key, value string) string {
	if key == QuarantineKey && value == QuarantineValue {
		return "kdfir-quarantine"
	}
	h := fnv.New32a()
	h.Write([]byte(key + "=" + value))
	return fmt.Sprintf("kdfir-quarantine-%08x", h.Sum32())
}

// namespacePolicyName names the deny-all policy of an isolated namespace.
const namespacePolicyName = "kdfir-isolate-namespace"

func policyObject(ns, name string) journal.Object {
	return journal.Object{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: ns, Name: name}
}

// denyAllPolicy selects the pods matching selector (every pod, when it is
// empty) and, having both policy types and no rules, denies all their
// ingress and egress.
func denyAllPolicy(ns, name string, selector map[string]string, id string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{ManagedByLabel: ManagedByValue},
			Annotations: map[string]string{ActionIDKey: id},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selector},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

func managedByKdfir(m metav1.Object) bool { return m.GetLabels()[ManagedByLabel] == ManagedByValue }

// checkDenyAll refuses to rely on a policy of that name that kdfir did not
// create or that no longer denies all traffic of exactly those pods: kdfir
// never silently takes over or rewrites someone else's policy. A policy
// the caller named (foreignOK) may be someone else's, when it denies all
// traffic of exactly those pods; kdfir then relies on it and leaves it be.
func checkDenyAll(p *networkingv1.NetworkPolicy, selector map[string]string, foreignOK bool) error {
	sel := p.Spec.PodSelector
	types := map[networkingv1.PolicyType]bool{}
	for _, t := range p.Spec.PolicyTypes {
		types[t] = true
	}
	// kdfir's own policy selects exactly those pods; one the caller named
	// may select more (a subset of the labels), as long as it denies them
	// all traffic.
	sameOrWider := maps.Equal(sel.MatchLabels, selector)
	if foreignOK && !managedByKdfir(p) {
		sameOrWider = len(sel.MatchLabels) > 0 && labels.SelectorFromSet(sel.MatchLabels).Matches(labels.Set(selector))
	}
	ok := (foreignOK || managedByKdfir(p)) && len(sel.MatchExpressions) == 0 && sameOrWider &&
		len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 &&
		len(types) == 2 && types[networkingv1.PolicyTypeIngress] && types[networkingv1.PolicyTypeEgress]
	if !ok {
		return fmt.Errorf("networkpolicy %s/%s exists but is not kdfir's deny-all policy for %s; refusing to change it (delete or rename it)", p.Namespace, p.Name, describeSelector(selector))
	}
	return nil
}

func describeSelector(sel map[string]string) string {
	if len(sel) == 0 {
		return "every pod"
	}
	return "pods labelled " + labels.Set(sel).String()
}

func policyDetail(selector map[string]string) string {
	return "deny all ingress and egress of " + describeSelector(selector)
}

// getPolicy returns the policy, or nil when it does not exist.
func getPolicy(ctx context.Context, env Env, ns, name string) (*networkingv1.NetworkPolicy, error) {
	p, err := env.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get networkpolicy %s/%s: %w", ns, name, err)
	}
	return p, nil
}

// ensureSharedPolicy makes sure the pod-quarantine policy exists after a
// pod was labelled, and bumps it (see lastActionKey). It reports whether
// it created the policy. createFirst saves a round trip when Plan found
// the policy missing.
func ensureSharedPolicy(ctx context.Context, env Env, want *networkingv1.NetworkPolicy, id string, createFirst, dryRun bool) (created bool, err error) {
	c := env.Client.NetworkingV1().NetworkPolicies(want.Namespace)
	if dryRun {
		if !createFirst {
			return false, nil
		}
		_, err := c.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager, DryRun: []string{metav1.DryRunAll}})
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
		return err == nil, wrapPolicyErr("create", want, err)
	}
	touch := mustJSON(map[string]any{"metadata": map[string]any{"annotations": map[string]any{lastActionKey: id}}})
	for range 5 {
		if createFirst {
			_, err := c.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
			if err == nil {
				return true, nil
			}
			if !apierrors.IsAlreadyExists(err) {
				return false, wrapPolicyErr("create", want, err)
			}
		}
		_, err := c.Patch(ctx, want.Name, types.MergePatchType, touch, metav1.PatchOptions{FieldManager: FieldManager})
		if err == nil {
			return false, nil
		}
		if !apierrors.IsNotFound(err) {
			return false, wrapPolicyErr("patch", want, err)
		}
		createFirst = true // a release deleted it in between
	}
	return false, fmt.Errorf("networkpolicy %s/%s: created and deleted concurrently too often", want.Namespace, want.Name)
}

func wrapPolicyErr(op string, p *networkingv1.NetworkPolicy, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s networkpolicy %s/%s: %w", op, p.Namespace, p.Name, err)
}

// releaseSharedPolicy deletes the pod-quarantine policy pol (as read
// before) when kdfir manages it and no pod in the namespace still carries
// the quarantine label. ignorePod is left out of that count (for a dry
// run, where the pod keeps its label).
func releaseSharedPolicy(ctx context.Context, env Env, ns, name string, pol *networkingv1.NetworkPolicy, selector map[string]string, ignorePod string, dryRun bool) ([]journal.Change, []string, error) {
	c := env.Client.NetworkingV1().NetworkPolicies(ns)
	for range 5 {
		if pol == nil {
			return nil, nil, nil
		}
		if !managedByKdfir(pol) {
			return nil, []string{fmt.Sprintf("%s is not managed by kdfir", policyObject(ns, name))}, nil
		}
		// This list must come after pol was read: see lastActionKey.
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(selector).String(), Limit: 2})
		if err != nil {
			return nil, nil, fmt.Errorf("list quarantined pods in %s: %w", ns, err)
		}
		if slices.ContainsFunc(list.Items, func(p corev1.Pod) bool { return p.Name != ignorePod }) {
			return nil, nil, nil // another pod is still quarantined
		}
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pol.UID, ResourceVersion: &pol.ResourceVersion}}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		err = c.Delete(ctx, name, opts)
		switch {
		case err == nil:
			return []journal.Change{{Object: policyObject(ns, name), Op: "delete", Detail: "no quarantined pod left in the namespace"}}, nil, nil
		case apierrors.IsNotFound(err):
			return nil, nil, nil
		case apierrors.IsConflict(err):
			// An isolation touched it: read it again and recount.
			if pol, err = getPolicy(ctx, env, ns, name); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, fmt.Errorf("delete networkpolicy %s/%s: %w", ns, name, err)
		}
	}
	return nil, nil, fmt.Errorf("networkpolicy %s/%s kept changing; not deleted", ns, name)
}

// deleteOwnPolicy deletes a policy the action id created; a policy of that
// name that another action or someone else created is left alone.
func deleteOwnPolicy(ctx context.Context, env Env, ns, name, id string, dryRun bool) ([]journal.Change, []string, error) {
	pol, err := getPolicy(ctx, env, ns, name)
	if err != nil || pol == nil {
		return nil, nil, err
	}
	if owner := pol.Annotations[ActionIDKey]; owner != id || !managedByKdfir(pol) {
		return nil, []string{fmt.Sprintf("%s now belongs to %s, not to this action", policyObject(ns, name), ownerOf(pol))}, nil
	}
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pol.UID}}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if err := env.Client.NetworkingV1().NetworkPolicies(ns).Delete(ctx, name, opts); err != nil && !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("delete networkpolicy %s/%s: %w", ns, name, err)
	}
	return []journal.Change{{Object: policyObject(ns, name), Op: "delete", Detail: "created by this action"}}, nil, nil
}

func ownerOf(m metav1.Object) string {
	if id := m.GetAnnotations()[ActionIDKey]; id != "" && managedByKdfir(m) {
		return "kdfir action " + id
	}
	return "someone else"
}

// inParallel runs fns concurrently and returns the first error, in the
// order of fns.
func inParallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
