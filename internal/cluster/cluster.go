// Package cluster maps a cluster name, a kubeconfig context or an Azure
// ResourceId to a Kubernetes client configuration.
package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// Cluster is one entry of the clusters file.
type Cluster struct {
	// Name is how commands refer to the cluster (--cluster NAME).
	Name string `json:"name" yaml:"name"`
	// Kubeconfig is the path of a kubeconfig file; empty means the default
	// loading rules ($KUBECONFIG, then ~/.kube/config).
	Kubeconfig string `json:"kubeconfig,omitempty" yaml:"kubeconfig"`
	// Context is a context in that kubeconfig; empty means its current context.
	Context string `json:"context,omitempty" yaml:"context"`
	// InCluster uses the pod's service account instead of a kubeconfig.
	InCluster bool `json:"inCluster,omitempty" yaml:"inCluster"`
	// ResourceID is the cluster's Azure ResourceId
	// (/subscriptions/…/providers/Microsoft.ContainerService/managedClusters/NAME),
	// so alerts that name the cluster that way can find it.
	ResourceID string `json:"resourceId,omitempty" yaml:"resourceId"`
}

// File is the clusters file:
//
//	clusters:
//	- name: prod
//	  kubeconfig: ~/.kube/prod.yaml
//	  context: prod-admin
//	  resourceId: /subscriptions/…/managedClusters/prod
//	- name: local
//	  inCluster: true
type File struct {
	Clusters []Cluster `json:"clusters"`
}

// LoadFile reads and validates a clusters file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read clusters file: %w", err)
	}
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("clusters file %s: %w", path, err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("clusters file %s: %w", path, err)
	}
	return &f, nil
}

// Validate checks names are present and unique and each entry is coherent.
func (f *File) Validate() error {
	seen := map[string]bool{}
	for i, c := range f.Clusters {
		switch {
		case c.Name == "":
			return fmt.Errorf("clusters[%d]: name is required", i)
		case seen[c.Name]:
			return fmt.Errorf("clusters[%d]: duplicate name %q", i, c.Name)
		case c.InCluster && (c.Kubeconfig != "" || c.Context != ""):
			return fmt.Errorf("cluster %q: inCluster excludes kubeconfig and context", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// Find returns the cluster whose name equals ref, or whose Azure ResourceId
// equals ref without regard to case.
func (f *File) Find(ref string) (Cluster, bool) {
	for _, c := range f.Clusters {
		if c.Name == ref || (c.ResourceID != "" && strings.EqualFold(c.ResourceID, ref)) {
			return c, true
		}
	}
	return Cluster{}, false
}

// Names lists the configured cluster names.
func (f *File) Names() []string {
	out := make([]string, len(f.Clusters))
	for i, c := range f.Clusters {
		out[i] = c.Name
	}
	return out
}

// RESTConfig builds a client configuration for the cluster.
func (c Cluster) RESTConfig() (*rest.Config, error) {
	if c.InCluster {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("cluster %q: in-cluster config: %w", c.Name, err)
		}
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules.ExplicitPath = expandHome(c.Kubeconfig)
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: c.Context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no kubeconfig found: set --kubeconfig, $KUBECONFIG or --cluster")
		}
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

// DisplayName is the name under which the cluster is recorded in the
// journal and in evidence paths.
func (c Cluster) DisplayName() string {
	if c.Name != "" {
		return c.Name
	}
	if c.Context != "" {
		return c.Context
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules.ExplicitPath = expandHome(c.Kubeconfig)
	}
	if raw, err := rules.Load(); err == nil && raw.CurrentContext != "" {
		return raw.CurrentContext
	}
	return "default"
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}
