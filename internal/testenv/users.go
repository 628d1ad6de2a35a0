package testenv

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// User is a least-privilege identity for the code under test: a
// ServiceAccount with a bound token, and whatever RBAC the test grants it.
type User struct {
	// Name is the Kubernetes username,
	// system:serviceaccount:NAMESPACE:NAME.
	Name       string
	Config     *rest.Config
	Kubeconfig string
}

// NewUser creates a ServiceAccount namespace/name, binds it to each of the
// named ClusterRoles cluster-wide, and returns its credentials. The
// ClusterRoles must exist (create them first, e.g. from deploy/rbac.yaml).
func (e *Env) NewUser(ctx context.Context, namespace, name string, clusterRoles ...string) (*User, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := e.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create service account: %w", err)
	}
	for _, role := range clusterRoles {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%s-%s", namespace, name, role)},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}},
		}
		if _, err := e.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("bind %s: %w", role, err)
		}
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	tok, err := e.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, tr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token for %s/%s: %w", namespace, name, err)
	}
	u := &User{
		Name: "system:serviceaccount:" + namespace + ":" + name,
		Config: &rest.Config{
			Host:            e.Server,
			BearerToken:     tok.Status.Token,
			TLSClientConfig: rest.TLSClientConfig{CAData: e.caPEM},
			QPS:             1000,
			Burst:           2000,
		},
		Kubeconfig: filepath.Join(e.Dir, fmt.Sprintf("user-%s-%s.kubeconfig", namespace, name)),
	}
	if err := writeFile(u.Kubeconfig, kubeconfigFor(e.Server, e.caPEM, name, tok.Status.Token)); err != nil {
		return nil, err
	}
	return u, nil
}

// ConfigFor returns a client configuration authenticated by a static token
// from the harness's token file (for example NobodyToken).
func (e *Env) ConfigFor(token string) *rest.Config {
	return &rest.Config{Host: e.Server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: e.caPEM}}
}

// CAPEM is the CA that signed the API server's and kwok's certificates.
func (e *Env) CAPEM() []byte { return e.caPEM }

// EntraConfig returns a client configuration that authenticates, through
// the API server's front-proxy authentication, as user with an Entra
// (Azure AD) object id in user.extra["oid"], the way AKS identities appear
// in the audit log. The groups are added to system:authenticated.
func (e *Env) EntraConfig(user, oid string, groups ...string) *rest.Config {
	cfg := &rest.Config{
		Host: e.Server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   e.caPEM,
			CertFile: e.proxyCrt,
			KeyFile:  e.proxyKey,
		},
	}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return headerTripper{rt: rt, user: user, oid: oid, groups: groups}
	})
	return cfg
}

type headerTripper struct {
	rt        http.RoundTripper
	user, oid string
	groups    []string
}

func (h headerTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Remote-User", h.user)
	req.Header.Set("X-Remote-Extra-Oid", h.oid)
	for _, g := range h.groups {
		req.Header.Add("X-Remote-Group", g)
	}
	return h.rt.RoundTrip(req)
}
