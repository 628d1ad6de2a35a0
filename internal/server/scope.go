package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/playbook"
)

// principal is the key on whose behalf an alert's playbooks run: an
// alert delivered with a key runs only the playbook actions that the key's
// own scopes name, and only on the clusters the key may act on.
type principal struct {
	Key     string   `json:"key"`
	Allowed []string `json:"allowed"`           // action names; "*" for every action
	Cluster string   `json:"cluster,omitempty"` // the only cluster, when the key is bound to one
}

type principalKey struct{}

// withPrincipal carries the key that delivered an alert (or an audit
// batch) to the playbooks it starts.
func withPrincipal(ctx context.Context, k *auth.Key) context.Context {
	p := principal{Key: k.Name, Cluster: k.Cluster, Allowed: []string{}}
	for _, s := range k.Scopes {
		if _, isAction := playbook.Actions[s]; isAction || s == auth.ScopeAll {
			p.Allowed = append(p.Allowed, s)
		}
	}
	return context.WithValue(ctx, principalKey{}, p)
}

func principalOf(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalKey{}).(principal)
	return p, ok
}

// mayRun says why a playbook step may not run under the principal in
// ctx, or "" when it may. Steps started without a principal (the API's
// own actions) are checked by their handlers.
func mayRun(ctx context.Context, action, cluster string, sameCluster func(a, b string) bool) string {
	p, ok := principalOf(ctx)
	if !ok {
		return ""
	}
	if !slices.Contains(p.Allowed, auth.ScopeAll) && !slices.Contains(p.Allowed, action) {
		return fmt.Sprintf("alerts delivered with key %s may not run %s: add %s to the key's scopes to allow it", p.Key, action, action)
	}
	if p.Cluster != "" && cluster != "" && !sameCluster(p.Cluster, cluster) {
		return fmt.Sprintf("key %s is bound to cluster %s, not %s", p.Key, p.Cluster, cluster)
	}
	return ""
}

// sameCluster reports whether two cluster references (names or Azure
// ResourceIds) name one cluster.
func (s *Server) sameCluster(a, b string) bool {
	if s.ClusterName != nil {
		if na := s.ClusterName(a); na != "" {
			a = na
		}
		if nb := s.ClusterName(b); nb != "" {
			b = nb
		}
	}
	return strings.EqualFold(a, b)
}

// keyCluster checks that a key bound to a cluster acts only on it; ref ""
// means the key's (or the default) cluster.
func (s *Server) keyCluster(k *auth.Key, ref string) error {
	if k.Cluster == "" || ref == "" || s.sameCluster(k.Cluster, ref) {
		return nil
	}
	return fmt.Errorf("key %s is bound to cluster %s, not %s", k.Name, k.Cluster, ref)
}

// ScheduledContext is the context scheduled rules run in: their alerts
// may run the playbook actions that the scopes of the keys with the audit
// scope name, since those keys delivered the events the rules read.
func ScheduledContext(ctx context.Context, keys []*auth.Key) context.Context {
	union := &auth.Key{Name: "scheduled-rules"}
	for _, k := range keys {
		if k.Allows(auth.ScopeAudit) {
			union.Scopes = append(union.Scopes, k.Scopes...)
		}
	}
	return withPrincipal(ctx, union)
}
