package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/cluster"
)

// Serve is what kdfir serve reads beyond exec:
//
//	listen: 0.0.0.0:8443
//	tls: {cert: /etc/kdfir/tls.crt, key: /etc/kdfir/tls.key}   # reloaded on change
//	dataDir: /var/lib/kdfir
//	apiKeys:                            # from kdfir keys create; only hashes
//	- name: sentinel
//	  hash: sha256:SALT:HEX
//	  scopes: [alerts, collect-pod, isolate-pod, read]
//	  cluster: prod                     # assumed when a request names none
//	  ratePerSecond: 20
//	  burst: 40
//	clusters:                           # as in the clusters file
//	- {name: prod, kubeconfig: /etc/kdfir/prod.kubeconfig, resourceId: /subscriptions/.../managedClusters/prod}
//	- {name: self, inCluster: true}
//	defaultCluster: prod
//	playbooks: [/etc/kdfir/playbooks]
//	rules: [/etc/kdfir/rules]           # besides the built-in pack
//	builtinRules: true                  # default true
//	ruleParams: {allowed_registries: '"myacr.azurecr.io", "mcr.microsoft.com"'}
//	evidence:                           # destinations playbooks name
//	  default: /var/lib/kdfir/evidence  # a directory, a container URL with SAS, or azblob://ACCOUNT/CONTAINER
//	alerts: {dedupeWindow: 10m}
//	audit: {retention: 30d}
type Serve struct {
	Listen         string            `json:"listen,omitempty" yaml:"listen"`
	TLS            TLS               `json:"tls,omitzero" yaml:"tls"`
	DataDir        string            `json:"dataDir,omitempty" yaml:"dataDir"`
	APIKeys        []*auth.Key       `json:"apiKeys,omitempty" yaml:"apiKeys"`
	Clusters       []cluster.Cluster `json:"clusters,omitempty" yaml:"clusters"`
	DefaultCluster string            `json:"defaultCluster,omitempty" yaml:"defaultCluster"`
	Playbooks      []string          `json:"playbooks,omitempty" yaml:"playbooks"`
	Rules          []string          `json:"rules,omitempty" yaml:"rules"`
	BuiltinRules   *bool             `json:"builtinRules,omitempty" yaml:"builtinRules"`
	RuleParams     map[string]string `json:"ruleParams,omitempty" yaml:"ruleParams"`
	Evidence       map[string]string `json:"evidence,omitempty" yaml:"evidence"`
	Alerts         AlertsConfig      `json:"alerts,omitzero" yaml:"alerts"`
	Audit          AuditConfig       `json:"audit,omitzero" yaml:"audit"`
}

// TLS names the certificate and key files.
type TLS struct {
	Cert string `json:"cert,omitempty" yaml:"cert"`
	Key  string `json:"key,omitempty" yaml:"key"`
}

// AlertsConfig tunes alert intake.
type AlertsConfig struct {
	// DedupeWindow drops repeated deliveries of one alert (default 10m).
	DedupeWindow string `json:"dedupeWindow,omitempty" yaml:"dedupeWindow"`
}

// AuditConfig tunes the audit webhook's event store.
type AuditConfig struct {
	// Retention deletes events older than this, hourly (e.g. 30d).
	Retention string `json:"retention,omitempty" yaml:"retention"`
}

// ParseDuration accepts Go durations and a d suffix for days.
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) == n && days > 0 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid duration %q (want e.g. 30s, 10m, 30d)", s)
	}
	return d, nil
}

// UseBuiltinRules reports whether the built-in pack runs (default yes).
func (s *Serve) UseBuiltinRules() bool { return s.BuiltinRules == nil || *s.BuiltinRules }

// FindCluster returns the configured cluster named ref, or whose Azure
// ResourceId is ref (without regard to case); an empty ref means the
// default cluster, or the only one.
func (s *Serve) FindCluster(ref string) (cluster.Cluster, bool) {
	if ref == "" {
		ref = s.DefaultCluster
		if ref == "" && len(s.Clusters) == 1 {
			return s.Clusters[0], true
		}
	}
	return (&cluster.File{Clusters: s.Clusters}).Find(ref)
}

func (s *Serve) validate() error {
	if s.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			return fieldErrorf("listen", "%q is not HOST:PORT", s.Listen)
		}
	}
	if (s.TLS.Cert == "") != (s.TLS.Key == "") {
		return fieldErrorf("tls", "cert and key go together")
	}
	names := map[string]bool{}
	for i, k := range s.APIKeys {
		p := fmt.Sprintf("apiKeys[%d]", i)
		switch {
		case k == nil || k.Name == "":
			return fieldErrorf(p, "name is required")
		case names[k.Name]:
			return fieldErrorf(p+".name", "key %q is defined twice", k.Name)
		case len(k.Scopes) == 0:
			return fieldErrorf(p+".scopes", "key %q has no scopes", k.Name)
		}
		names[k.Name] = true
		if err := auth.ValidateHash(k.Hash); err != nil {
			return fieldErrorf(p+".hash", "%v", err)
		}
		for j, sc := range k.Scopes {
			if !slices.Contains(Scopes, sc) {
				return fieldErrorf(fmt.Sprintf("%s.scopes[%d]", p, j), "unknown scope %q (known: %s)", sc, strings.Join(Scopes, ", "))
			}
		}
		if k.Cluster != "" {
			if _, ok := s.FindCluster(k.Cluster); !ok {
				return fieldErrorf(p+".cluster", "cluster %q is not in clusters", k.Cluster)
			}
		}
	}
	if err := (&cluster.File{Clusters: s.Clusters}).Validate(); err != nil {
		return fieldErrorf("clusters", "%v", err)
	}
	if s.DefaultCluster != "" {
		if _, ok := s.FindCluster(s.DefaultCluster); !ok {
			return fieldErrorf("defaultCluster", "cluster %q is not in clusters", s.DefaultCluster)
		}
	}
	for name, dest := range s.Evidence {
		if strings.TrimSpace(dest) == "" {
			return fieldErrorf("evidence."+name, "empty destination")
		}
	}
	if s.Alerts.DedupeWindow != "" {
		if _, err := ParseDuration(s.Alerts.DedupeWindow); err != nil {
			return fieldErrorf("alerts.dedupeWindow", "%v", err)
		}
	}
	if s.Audit.Retention != "" {
		if _, err := ParseDuration(s.Audit.Retention); err != nil {
			return fieldErrorf("audit.retention", "%v", err)
		}
	}
	return nil
}

// Scopes an API key may have: the action names and the service scopes.
var Scopes = []string{
	"isolate-pod", "unisolate-pod", "isolate-namespace", "unisolate-namespace", "cordon-node", "uncordon-node",
	"collect-pod", "collect-namespace", "collect-node", "exec-pod",
	auth.ScopeAlerts, auth.ScopeAudit, auth.ScopeRead, auth.ScopeApprove, auth.ScopeRevert, auth.ScopeAll,
}
