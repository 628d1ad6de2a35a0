package respond

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kdfir/kdfir/internal/journal"
)

// IsolateNamespaceParams are the parameters of isolate-namespace.
type IsolateNamespaceParams struct {
	// Label marks the namespace, KEY=VALUE (default
	// kdfir.io/quarantine=true).
	Label string `json:"label,omitempty"`
}

// isolateNamespaceRecord is what isolate-namespace journals as its
// parameters.
type isolateNamespaceRecord struct {
	IsolateNamespaceParams
	Policy string `json:"policy"`
}

// IsolateNamespace labels a namespace and adds a NetworkPolicy whose
// podSelector is empty, so that it denies all ingress and egress of every
// pod in the namespace, including pods created later.
type IsolateNamespace struct{}

// Info implements Action.
func (IsolateNamespace) Info() Info {
	return Info{
		Name:       "isolate-namespace",
		Summary:    "label a namespace and deny all traffic of every pod in it with a NetworkPolicy",
		Example:    "kdfir isolate namespace shop --reason INC-1234",
		Revertible: true,
		Role:       RoleIsolate,
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "patch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "create", "delete"}},
		},
	}
}

// Validate implements Action.
func (IsolateNamespace) Validate(target string, params json.RawMessage) (json.RawMessage, error) {
	var p IsolateNamespaceParams
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := checkNamespace(target); err != nil {
		return nil, err
	}
	if p.Label == "" {
		p.Label = DefaultQuarantine
	}
	if key, _, err := parseLabel(p.Label); err != nil {
		return nil, err
	} else if err := checkLabelKey(key); err != nil {
		return nil, err
	}
	return mustJSON(isolateNamespaceRecord{IsolateNamespaceParams: p, Policy: namespacePolicyName}), nil
}

func namespaceObject(name string) journal.Object {
	return journal.Object{APIVersion: "v1", Kind: "Namespace", Name: name}
}

type isolateNamespaceOp struct {
	name       string
	key, value string
	rec        isolateNamespaceRecord
}

func decodeIsolateNamespace(e *journal.Entry) (*isolateNamespaceOp, error) {
	op := &isolateNamespaceOp{name: e.Target}
	if err := decodeParams(e.Params, &op.rec); err != nil {
		return nil, err
	}
	var err error
	op.key, op.value, err = parseLabel(op.rec.Label)
	return op, err
}

func (op *isolateNamespaceOp) edits(ns *corev1.Namespace, id string) []metaEdit {
	edits := diffMeta("labels", ns.Labels, map[string]*string{op.key: ptr(op.value)})
	if len(edits) > 0 {
		edits = append(edits, diffMeta("annotations", ns.Annotations, map[string]*string{ActionIDKey: ptr(id)})...)
	}
	return edits
}

// Plan implements Action.
func (IsolateNamespace) Plan(ctx context.Context, env Env, e *journal.Entry) (string, error) {
	op, err := decodeIsolateNamespace(e)
	if err != nil {
		return "", err
	}
	var ns *corev1.Namespace
	missing := false
	err = inParallel(
		func() error {
			var err error
			ns, err = env.Client.CoreV1().Namespaces().Get(ctx, op.name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("namespace %s not found", op.name)
			}
			if err != nil {
				return fmt.Errorf("get namespace %s: %w", op.name, err)
			}
			return nil
		},
		func() error {
			p, err := getPolicy(ctx, env, op.name, op.rec.Policy)
			if err == nil && p != nil {
				err = checkDenyAll(p, nil, false)
			}
			missing = p == nil
			return err
		},
	)
	if err != nil {
		return "", err
	}
	obj := namespaceObject(op.name)
	if edits := op.edits(ns, e.ID); len(edits) > 0 {
		recordPrior(e, obj, ns)
		e.Changes = append(e.Changes, editChanges(obj, edits)...)
	}
	if missing {
		pobj := policyObject(op.name, op.rec.Policy)
		e.Created = append(e.Created, pobj)
		e.Changes = append(e.Changes, journal.Change{Object: pobj, Op: "create", Detail: policyDetail(nil)})
	}
	if len(e.Changes) == 0 {
		return fmt.Sprintf("namespace %s is already isolated (label %s=%s, networkpolicy %s)", op.name, op.key, op.value, op.rec.Policy), nil
	}
	return "", nil
}

// Apply implements Action.
func (IsolateNamespace) Apply(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (Outcome, error) {
	op, err := decodeIsolateNamespace(e)
	if err != nil {
		return Outcome{}, err
	}
	var ns corev1.Namespace
	if ok, err := priorOf(e, namespaceObject(op.name), &ns); err != nil {
		return Outcome{}, err
	} else if ok {
		patch := mustJSON(metaPatch(ns.ResourceVersion, op.edits(&ns, e.ID)))
		if _, err := env.Client.CoreV1().Namespaces().Patch(ctx, op.name, types.MergePatchType, patch, patchOptions(dryRun)); err != nil {
			return Outcome{}, fmt.Errorf("label namespace %s: %w", op.name, err)
		}
	}
	pobj := policyObject(op.name, op.rec.Policy)
	if !containsObject(e.Created, pobj) {
		return Outcome{}, nil
	}
	want := denyAllPolicy(op.name, op.rec.Policy, nil, e.ID)
	opts := metav1.CreateOptions{FieldManager: FieldManager}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = env.Client.NetworkingV1().NetworkPolicies(op.name).Create(ctx, want, opts)
	if apierrors.IsAlreadyExists(err) {
		// Another writer created it since Plan: rely on it only if it is
		// the same deny-all policy.
		p, gerr := getPolicy(ctx, env, op.name, op.rec.Policy)
		if gerr == nil && p != nil {
			gerr = checkDenyAll(p, nil, false)
		}
		if gerr != nil {
			return Outcome{}, gerr
		}
		setCreated(e, pobj, false, "")
		return Outcome{}, nil
	}
	return Outcome{}, wrapPolicyErr("create", want, err)
}

// Revert implements Action.
func (IsolateNamespace) Revert(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (*journal.Revert, error) {
	op, err := decodeIsolateNamespace(e)
	if err != nil {
		return nil, err
	}
	rv := &journal.Revert{}
	var ns corev1.Namespace
	ok, err := priorOf(e, namespaceObject(op.name), &ns)
	if err != nil {
		return nil, err
	}
	// The label and the policy are independent: restore both at once.
	var meta journal.Revert
	var changes []journal.Change
	var left []string
	c := env.Client.CoreV1().Namespaces()
	err = inParallel(
		func() error {
			if !ok {
				return nil
			}
			_, err := revertMetaOn(ctx, namespaceObject(op.name), op.edits(&ns, e.ID), &meta,
				func(ctx context.Context) (metav1.Object, error) { return c.Get(ctx, op.name, metav1.GetOptions{}) },
				func(ctx context.Context, pt types.PatchType, patch []byte) error {
					_, err := c.Patch(ctx, op.name, pt, patch, patchOptions(dryRun))
					return err
				})
			return err
		},
		func() error {
			if !containsObject(e.Created, policyObject(op.name, op.rec.Policy)) {
				return nil
			}
			var err error
			changes, left, err = deleteOwnPolicy(ctx, env, op.name, op.rec.Policy, e.ID, dryRun)
			return err
		},
	)
	rv.Changes = append(meta.Changes, changes...)
	rv.LeftAlone = append(meta.LeftAlone, left...)
	if err != nil {
		return rv, err
	}
	return rv, nil
}
