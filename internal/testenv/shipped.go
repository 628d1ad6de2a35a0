package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Shipped is what a set of manifests (deploy/*.yaml) holds that a
// least-privilege test needs: ClusterRoles by name, and admission policies
// with their bindings.
type Shipped struct {
	Roles    map[string]*rbacv1.ClusterRole
	Policies []*admissionv1.ValidatingAdmissionPolicy
	Bindings []*admissionv1.ValidatingAdmissionPolicyBinding
}

// LoadShipped reads the ClusterRoles and admission policies of manifest
// files; it ignores their other objects.
func LoadShipped(paths ...string) (*Shipped, error) {
	out := &Shipped{Roles: map[string]*rbacv1.ClusterRole{}}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			var err error
			switch meta.Kind {
			case "ClusterRole":
				r := &rbacv1.ClusterRole{}
				err = yaml.UnmarshalStrict([]byte(doc), r)
				out.Roles[r.Name] = r
			case "ValidatingAdmissionPolicy":
				v := &admissionv1.ValidatingAdmissionPolicy{}
				err = yaml.UnmarshalStrict([]byte(doc), v)
				out.Policies = append(out.Policies, v)
			case "ValidatingAdmissionPolicyBinding":
				v := &admissionv1.ValidatingAdmissionPolicyBinding{}
				err = yaml.UnmarshalStrict([]byte(doc), v)
				out.Bindings = append(out.Bindings, v)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", p, meta.Kind, err)
			}
		}
	}
	return out, nil
}

// ShippedUser creates the shipped ClusterRoles, a ServiceAccount
// namespace/name bound to the named ones, and the shipped admission
// policies with their username match pointed at that ServiceAccount, in
// force when it returns. The policies are named after the user, so users
// of several tests do not collide.
func (e *Env) ShippedUser(ctx context.Context, sh *Shipped, namespace, name string, roles ...string) (*User, error) {
	for _, r := range roles {
		role, ok := sh.Roles[r]
		if !ok {
			return nil, fmt.Errorf("no shipped ClusterRole %s", r)
		}
		if _, err := e.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create ClusterRole %s: %w", r, err)
		}
	}
	u, err := e.NewUser(ctx, namespace, name, roles...)
	if err != nil {
		return nil, err
	}
	adm := e.Client.AdmissionregistrationV1()
	suffix := "-" + namespace + "-" + name
	for _, p := range sh.Policies {
		pol := p.DeepCopy()
		pol.Name += suffix
		for i := range pol.Spec.MatchConditions {
			pol.Spec.MatchConditions[i].Expression = fmt.Sprintf("request.userInfo.username == %q", u.Name)
		}
		if _, err := adm.ValidatingAdmissionPolicies().Create(ctx, pol, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("admission policy %s: %w", pol.Name, err)
		}
		for _, b := range sh.Bindings {
			if b.Spec.PolicyName != p.Name {
				continue
			}
			bind := b.DeepCopy()
			bind.Name, bind.Spec.PolicyName = pol.Name, pol.Name
			if _, err := adm.ValidatingAdmissionPolicyBindings().Create(ctx, bind, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("admission policy binding %s: %w", bind.Name, err)
			}
		}
		// The policy takes effect once checked and seen by the admission
		// plugin's informer.
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := adm.ValidatingAdmissionPolicies().Get(ctx, pol.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			if tc := got.Status.TypeChecking; tc != nil && len(tc.ExpressionWarnings) > 0 {
				w := tc.ExpressionWarnings[0]
				return nil, fmt.Errorf("admission policy %s: %s: %s", p.Name, w.FieldRef, w.Warning)
			}
			if got.Status.ObservedGeneration == got.Generation {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("admission policy %s not checked in time", pol.Name)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second)
	return u, nil
}
