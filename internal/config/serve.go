package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

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
//	ruleExceptions: [/etc/kdfir/exceptions.yaml]  # exceptions files (see detect.Tuning)
//	evidence:
//	  destinations:                     # by name; playbooks and requests pick one ("default" when they name none)
//	    default: /var/lib/kdfir/evidence  # a directory, a container URL (with or without SAS), or azblob://ACCOUNT/CONTAINER
//	  allowedEndpoints:                 # blob accounts or containers a request may name (params.to, storageaccount)
//	  - https://contosoir.blob.core.windows.net
//	  - http://127.0.0.1:10000/devstoreaccount1   # Azurite: http only to loopback
//	  localRoots: [/var/lib/kdfir/evidence]     # directories under which params.to may name a path
//	labels: {allowedKeys: [status]}     # quarantine label keys requests may choose besides kdfir.io/...
//	aks:                                # the original Azure Function's endpoint
//	  route: /api/AKSTriggerResponse    # matched without regard to case
//	  compat: original                  # isolate with status=quarantine and deny-all-affected
//	  idempotencyWindow: 10m            # a repeated request within it gets the first answer
//	alerts: {dedupeWindow: 10m}
//	audit: {retention: 30d}
//	oidc: {issuer: ..., clientID: ..., redirectURL: ..., groups: {...}}  # console sign-in (see OIDC)
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
	RuleExceptions []string          `json:"ruleExceptions,omitempty" yaml:"ruleExceptions"`
	Evidence       Evidence          `json:"evidence,omitzero" yaml:"evidence"`
	AKS            AKS               `json:"aks,omitzero" yaml:"aks"`
	Labels         Labels            `json:"labels,omitzero" yaml:"labels"`
	Alerts         AlertsConfig      `json:"alerts,omitzero" yaml:"alerts"`
	Audit          AuditConfig       `json:"audit,omitzero" yaml:"audit"`
	// OIDC turns on the console's OpenID Connect sign-in (see OIDC).
	OIDC *OIDC `json:"oidc,omitempty" yaml:"oidc"`
}

// TLS names the certificate and key files.
type TLS struct {
	Cert string `json:"cert,omitempty" yaml:"cert"`
	Key  string `json:"key,omitempty" yaml:"key"`
}

// Evidence says where collections may go. Requests and playbooks pick a
// destination by name, or give one (params.to, the trigger's
// storageaccount) that lies under an allowed endpoint or local root; the
// destinations are allowed too. The older flat form, a map of names to
// destinations, is read as Destinations.
type Evidence struct {
	Destinations     map[string]string `json:"destinations,omitempty" yaml:"destinations"`
	AllowedEndpoints []string          `json:"allowedEndpoints,omitempty" yaml:"allowedEndpoints"`
	LocalRoots       []string          `json:"localRoots,omitempty" yaml:"localRoots"`
}

// UnmarshalYAML reads the structured form, or the flat map of names.
func (e *Evidence) UnmarshalYAML(n *yaml.Node) error {
	structured := false
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			switch n.Content[i].Value {
			case "destinations", "allowedEndpoints", "localRoots":
				structured = true
			}
		}
	}
	if !structured {
		return n.Decode(&e.Destinations)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "destinations", "allowedEndpoints", "localRoots":
		default:
			return fmt.Errorf("line %d: field %s not found in evidence (want destinations, allowedEndpoints, localRoots)", n.Content[i].Line, k)
		}
	}
	type plain Evidence
	return n.Decode((*plain)(e))
}

// Labels says which quarantine label keys requests may choose (isolate
// params.label): kdfir.io/... always, and these (status, for the original
// AKS function's status=quarantine; aks.compat: original allows it).
type Labels struct {
	AllowedKeys []string `json:"allowedKeys,omitempty" yaml:"allowedKeys"`
}

// LabelKeyAllowed reports whether a request may quarantine with key.
func (s *Serve) LabelKeyAllowed(key string) bool {
	if strings.HasPrefix(key, "kdfir.io/") || s.AKS.Compat == CompatOriginal && key == "status" {
		return true
	}
	return slices.Contains(s.Labels.AllowedKeys, key)
}

// AKS configures the endpoint that replaces the original AKS response
// Azure Function.
type AKS struct {
	// Route is the endpoint's path, matched without regard to case
	// (default /api/AKSTriggerResponse).
	Route string `json:"route,omitempty" yaml:"route"`
	// Compat "original" isolates pods as the original function did:
	// label status=quarantine and one deny-all-affected NetworkPolicy per
	// namespace; a release also removes those markers when the original
	// set them.
	Compat string `json:"compat,omitempty" yaml:"compat"`
	// IdempotencyWindow is how long a repeated request (same key and body,
	// or the same x-ms-client-tracking-id or Idempotency-Key) gets the
	// first answer instead of running again (default 10m, at most 24h).
	IdempotencyWindow string `json:"idempotencyWindow,omitempty" yaml:"idempotencyWindow"`
}

// AKS compatibility modes.
const CompatOriginal = "original"

// DefaultAKSRoute is the original function's path.
const DefaultAKSRoute = "/api/AKSTriggerResponse"

// RouteOrDefault returns the configured path or the default.
func (a AKS) RouteOrDefault() string {
	if a.Route == "" {
		return DefaultAKSRoute
	}
	return a.Route
}

// Window returns the idempotency window (default 10 minutes).
func (a AKS) Window() time.Duration {
	d, err := ParseDuration(a.IdempotencyWindow)
	if err != nil {
		return 10 * time.Minute
	}
	return d
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
		if k.RatePerSecond < 0 || k.RatePerSecond > MaxKeyRate {
			return fieldErrorf(p+".ratePerSecond", "%v is outside 0 to %d", k.RatePerSecond, MaxKeyRate)
		}
		if k.Burst < 0 || k.Burst > MaxKeyRate {
			return fieldErrorf(p+".burst", "%d is outside 0 to %d", k.Burst, MaxKeyRate)
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
	for name, dest := range s.Evidence.Destinations {
		if strings.TrimSpace(dest) == "" {
			return fieldErrorf("evidence.destinations."+name, "empty destination")
		}
	}
	for i, e := range s.Evidence.AllowedEndpoints {
		u, err := url.Parse(e)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			return fieldErrorf(fmt.Sprintf("evidence.allowedEndpoints[%d]", i), "%q is not an https:// endpoint URL", e)
		case u.Scheme == "http" && !IsLoopbackHost(u.Hostname()):
			return fieldErrorf(fmt.Sprintf("evidence.allowedEndpoints[%d]", i), "plain http is allowed only to a loopback address")
		case u.RawQuery != "":
			return fieldErrorf(fmt.Sprintf("evidence.allowedEndpoints[%d]", i), "an endpoint has no query: SAS tokens go in destinations")
		}
	}
	if r := s.AKS.Route; r != "" && (!strings.HasPrefix(r, "/") || strings.ContainsAny(r, " {}?#") || strings.Contains(r, "//")) {
		return fieldErrorf("aks.route", "%q is not a path such as /api/AKSTriggerResponse", r)
	}
	if c := s.AKS.Compat; c != "" && c != CompatOriginal {
		return fieldErrorf("aks.compat", "unknown mode %q (want original, or leave it out)", c)
	}
	if w := s.AKS.IdempotencyWindow; w != "" {
		d, err := ParseDuration(w)
		if err != nil {
			return fieldErrorf("aks.idempotencyWindow", "%v", err)
		}
		if d > 24*time.Hour {
			return fieldErrorf("aks.idempotencyWindow", "%s is longer than the maximum, 24h", w)
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
	return s.validateOIDC()
}

// IsLoopbackHost reports whether a host (with or without a port) is
// localhost or a loopback address.
func IsLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// MaxKeyRate bounds a key's ratePerSecond and burst.
const MaxKeyRate = 100000

// Scopes an API key may have: the action names and the service scopes.
var Scopes = []string{
	"isolate-pod", "unisolate-pod", "isolate-namespace", "unisolate-namespace", "cordon-node", "uncordon-node",
	"collect-pod", "collect-namespace", "collect-node", "exec-pod",
	auth.ScopeAlerts, auth.ScopeAudit, auth.ScopeRead, auth.ScopeApprove, auth.ScopeTriage, auth.ScopeHunt, auth.ScopeRevert, auth.ScopeRevertAny, auth.ScopeAll,
}
