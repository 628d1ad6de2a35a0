package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// resource is an API resource kdfir reads.
type resource struct {
	group, version, name, kind string
	namespaced                 bool
}

var (
	resPods                = resource{"", "v1", "pods", "Pod", true}
	resNamespaces          = resource{"", "v1", "namespaces", "Namespace", false}
	resNodes               = resource{"", "v1", "nodes", "Node", false}
	resServices            = resource{"", "v1", "services", "Service", true}
	resServiceAccounts     = resource{"", "v1", "serviceaccounts", "ServiceAccount", true}
	resEvents              = resource{"", "v1", "events", "Event", true}
	resNetworkPolicies     = resource{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true}
	resRoles               = resource{"rbac.authorization.k8s.io", "v1", "roles", "Role", true}
	resRoleBindings        = resource{"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true}
	resClusterRoles        = resource{"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false}
	resClusterRoleBindings = resource{"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false}
)

func (r resource) apiVersion() string {
	if r.group == "" {
		return r.version
	}
	return r.group + "/" + r.version
}

// path is the API path of an object, or of a list when name is empty (all
// namespaces when ns is empty too).
func (r resource) path(ns, name string) string {
	p := "/apis/" + r.group + "/" + r.version
	if r.group == "" {
		p = "/api/" + r.version
	}
	if r.namespaced && ns != "" {
		p += "/namespaces/" + ns
	}
	p += "/" + r.name
	if name != "" {
		p += "/" + name
	}
	return p
}

// dir is where objects of this resource go in a collection:
// objects/<resource>[.<group>]/[<namespace>/].
func (r resource) dir(ns string) string {
	res := r.name
	if r.group != "" {
		res += "." + r.group
	}
	p := "objects/" + res
	if r.namespaced {
		p += "/" + pathSegment(ns)
	}
	return p
}

func (r resource) out(ns, name string) string { return r.dir(ns) + "/" + pathSegment(name) + ".yaml" }

// apiGet reads an API path as JSON, retrying transient errors. source is
// the request as recorded in the manifest.
func (c *Collector) apiGet(ctx context.Context, path string, params url.Values) ([]byte, string, error) {
	source := "GET " + path
	if len(params) > 0 {
		source += "?" + params.Encode()
	}
	var body []byte
	err := defaultBackoff.retry(ctx, func(ctx context.Context) error {
		req := c.client.Discovery().RESTClient().Get().AbsPath(path).SetHeader("Accept", "application/json")
		for k, vs := range params {
			for _, v := range vs {
				req = req.Param(k, v)
			}
		}
		b, err := req.Do(ctx).Raw()
		body = b
		return err
	})
	return body, source, err
}

// resourceFor finds the resource of an owner's kind through discovery, so
// that owners of any kind, custom resources included, can be read.
func (c *Collector) resourceFor(ctx context.Context, apiVersion, kind string) (resource, error) {
	c.mu.Lock()
	list, ok := c.resources[apiVersion]
	c.mu.Unlock()
	if !ok {
		p := "/apis/" + apiVersion
		if !strings.Contains(apiVersion, "/") {
			p = "/api/" + apiVersion
		}
		body, _, err := c.apiGet(ctx, p, nil)
		if err != nil {
			return resource{}, fmt.Errorf("discover %s: %w", apiVersion, err)
		}
		var rl metav1.APIResourceList
		if err := json.Unmarshal(body, &rl); err != nil {
			return resource{}, fmt.Errorf("discover %s: %w", apiVersion, err)
		}
		list = rl.APIResources
		c.mu.Lock()
		c.resources[apiVersion] = list
		c.mu.Unlock()
	}
	group, ver, found := strings.Cut(apiVersion, "/")
	if !found {
		group, ver = "", apiVersion
	}
	for _, ar := range list {
		if ar.Kind == kind && !strings.Contains(ar.Name, "/") {
			return resource{group: group, version: ver, name: ar.Name, kind: kind, namespaced: ar.Namespaced}, nil
		}
	}
	return resource{}, fmt.Errorf("the API server does not serve %s %s", apiVersion, kind)
}

// toYAML converts an object the API server returned as JSON to YAML. Items
// of a list carry no apiVersion and kind; they are added.
func toYAML(res resource, raw []byte) ([]byte, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return nil, err
	}
	y, err := yaml.JSONToYAML(raw)
	if err != nil {
		return nil, err
	}
	if tm.Kind == "" && res.kind != "" {
		y = append([]byte("apiVersion: "+res.apiVersion()+"\nkind: "+res.kind+"\n"), y...)
	}
	return y, nil
}

// writeYAML writes an object (or list) as YAML at path.
func (r *run) writeYAML(ctx context.Context, path, source string, res resource, raw []byte) {
	y, err := toYAML(res, raw)
	if err != nil {
		r.failed(path, source, fmt.Errorf("convert to YAML: %w", err))
		return
	}
	r.bytes(ctx, path, source, y)
}

// getObject reads one object and writes it under objects/. It returns the
// object's JSON, or nil when it failed or is already in the collection.
func (r *run) getObject(ctx context.Context, res resource, ns, name string) []byte {
	path := res.out(ns, name)
	if !r.claim(path) {
		return nil
	}
	raw, source, err := r.c.apiGet(ctx, res.path(ns, name), nil)
	if err != nil {
		r.record(Artifact{Path: path, Source: source}, err)
		return nil
	}
	y, err := toYAML(res, raw)
	if err != nil {
		r.record(Artifact{Path: path, Source: source}, fmt.Errorf("convert to YAML: %w", err))
		return nil
	}
	a, err := r.stream(ctx, item{path: path, source: source, open: bytesOpener(y)})
	if !errors.Is(err, errSinkFailed) {
		r.record(a, err)
	}
	return raw
}

// memo is a fetch that a collection does once, however many pods need it.
type memo struct {
	once   sync.Once
	items  []json.RawMessage
	source string
	err    error
}

// list lists a resource once per collection (in ns, or in all namespaces
// when ns is empty).
func (r *run) list(ctx context.Context, res resource, ns string, params url.Values) *memo {
	key := res.path(ns, "") + "?" + params.Encode()
	r.mu.Lock()
	m, ok := r.lists[key]
	if !ok {
		m = &memo{}
		r.lists[key] = m
	}
	r.mu.Unlock()
	m.once.Do(func() {
		var body []byte
		body, m.source, m.err = r.c.apiGet(ctx, res.path(ns, ""), params)
		if m.err != nil {
			return
		}
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(body, &l); err != nil {
			m.err = fmt.Errorf("decode list: %w", err)
			return
		}
		m.items = l.Items
	})
	return m
}

// writeAll writes every object of a list under objects/.
func (r *run) writeAll(ctx context.Context, res resource, ns string) {
	l := r.list(ctx, res, ns, nil)
	if l.err != nil {
		r.failed(res.dir(ns), l.source, l.err)
		return
	}
	for _, raw := range l.items {
		r.writeItem(ctx, res, raw, l.source)
	}
}

func (r *run) writeItem(ctx context.Context, res resource, raw json.RawMessage, source string) {
	var meta metav1.PartialObjectMetadata
	if err := json.Unmarshal(raw, &meta); err != nil {
		return
	}
	r.writeYAML(ctx, res.out(meta.Namespace, meta.Name), source, res, raw)
}

// owners writes the owner chain: ReplicaSet → Deployment, Job → CronJob,
// and so on, for owners of any kind.
func (r *run) owners(ctx context.Context, ns string, refs []metav1.OwnerReference) {
	for _, ref := range refs {
		res, err := r.c.resourceFor(ctx, ref.APIVersion, ref.Kind)
		if err != nil {
			r.failed("objects/"+strings.ToLower(pathSegment(ref.Kind))+"/"+pathSegment(ns)+"/"+pathSegment(ref.Name)+".yaml", "GET /apis/"+ref.APIVersion, err)
			continue
		}
		raw := r.getObject(ctx, res, ns, ref.Name)
		if raw == nil {
			continue
		}
		var meta metav1.PartialObjectMetadata
		if json.Unmarshal(raw, &meta) == nil {
			r.owners(ctx, ns, meta.OwnerReferences)
		}
	}
}

// podObjects writes what surrounds a pod: its owner chain, the Services
// and NetworkPolicies that select it, its ServiceAccount and the bindings
// that grant that ServiceAccount anything, and its node.
func (r *run) podObjects(ctx context.Context, pod *corev1.Pod) {
	r.owners(ctx, pod.Namespace, pod.OwnerReferences)
	podLabels := labels.Set(pod.Labels)

	if l := r.list(ctx, resServices, pod.Namespace, nil); l.err != nil {
		r.failed(resServices.dir(pod.Namespace), l.source, l.err)
	} else {
		for _, raw := range l.items {
			var svc corev1.Service
			if json.Unmarshal(raw, &svc) == nil && len(svc.Spec.Selector) > 0 &&
				labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
				r.writeItem(ctx, resServices, raw, l.source)
			}
		}
	}
	if l := r.list(ctx, resNetworkPolicies, pod.Namespace, nil); l.err != nil {
		r.failed(resNetworkPolicies.dir(pod.Namespace), l.source, l.err)
	} else {
		for _, raw := range l.items {
			var np networkingv1.NetworkPolicy
			if json.Unmarshal(raw, &np) != nil {
				continue
			}
			if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err == nil && sel.Matches(podLabels) {
				r.writeItem(ctx, resNetworkPolicies, raw, l.source)
			}
		}
	}

	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	r.getObject(ctx, resServiceAccounts, pod.Namespace, sa)
	r.bindings(ctx, resRoleBindings, pod.Namespace, sa)
	r.bindings(ctx, resClusterRoleBindings, pod.Namespace, sa)

	if pod.Spec.NodeName != "" {
		r.nodeObject(ctx, pod.Spec.NodeName)
	}
}

// bindings writes the RoleBindings or ClusterRoleBindings (in every
// namespace) that name the ServiceAccount ns/sa, directly, as its user
// name, or through its groups, and the roles they grant.
func (r *run) bindings(ctx context.Context, res resource, ns, sa string) {
	l := r.list(ctx, res, "", nil)
	if l.err != nil {
		r.failed(res.dir(""), l.source, l.err)
		return
	}
	for _, raw := range l.items {
		var b struct {
			metav1.ObjectMeta `json:"metadata"`
			Subjects          []rbacv1.Subject `json:"subjects"`
			RoleRef           rbacv1.RoleRef   `json:"roleRef"`
		}
		if json.Unmarshal(raw, &b) != nil {
			continue
		}
		match := false
		for _, s := range b.Subjects {
			match = match || namesServiceAccount(s, b.Namespace, ns, sa)
		}
		if !match {
			continue
		}
		r.writeItem(ctx, res, raw, l.source)
		switch b.RoleRef.Kind {
		case "Role":
			r.getObject(ctx, resRoles, b.Namespace, b.RoleRef.Name)
		case "ClusterRole":
			r.getObject(ctx, resClusterRoles, "", b.RoleRef.Name)
		}
	}
}

// namesServiceAccount tells whether a binding subject (in a binding in
// bindingNS, empty for a ClusterRoleBinding) applies to the ServiceAccount
// ns/sa.
func namesServiceAccount(s rbacv1.Subject, bindingNS, ns, sa string) bool {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		subjectNS := s.Namespace
		if subjectNS == "" {
			subjectNS = bindingNS
		}
		return s.Name == sa && subjectNS == ns
	case rbacv1.UserKind:
		return s.Name == "system:serviceaccount:"+ns+":"+sa
	case rbacv1.GroupKind:
		return s.Name == "system:serviceaccounts" || s.Name == "system:serviceaccounts:"+ns
	}
	return false
}

// nodeObject writes a node's manifest once per collection and returns the
// node, or nil when it could not be read.
func (r *run) nodeObject(ctx context.Context, name string) *corev1.Node {
	r.mu.Lock()
	m, ok := r.nodes[name]
	if !ok {
		m = &nodeMemo{}
		r.nodes[name] = m
	}
	r.mu.Unlock()
	m.once.Do(func() {
		if raw := r.getObject(ctx, resNodes, "", name); raw != nil {
			var n corev1.Node
			if json.Unmarshal(raw, &n) == nil {
				m.node = &n
			}
		}
	})
	return m.node
}

type nodeMemo struct {
	once sync.Once
	node *corev1.Node
}

// namespace collects every pod of a namespace and its namespace-level
// objects.
func (r *run) namespace(ctx context.Context, ns string, raw []byte, source string) {
	r.writeYAML(ctx, resNamespaces.out("", ns), source, resNamespaces, raw)
	for _, res := range []resource{resServices, resNetworkPolicies, resRoles, resRoleBindings, resServiceAccounts} {
		r.writeAll(ctx, res, ns)
	}
	if body, src, err := r.c.apiGet(ctx, resEvents.path(ns, ""), nil); err != nil {
		r.failed("events.yaml", src, err)
	} else {
		r.writeYAML(ctx, "events.yaml", src, resource{}, body)
	}
	r.pods(ctx, ns, nil)
}

// node collects a node, every pod on it, and the events about it.
func (r *run) node(ctx context.Context, name string, raw []byte, source string) {
	r.writeYAML(ctx, resNodes.out("", name), source, resNodes, raw)
	var n corev1.Node
	if json.Unmarshal(raw, &n) == nil {
		m := &nodeMemo{node: &n}
		m.once.Do(func() {})
		r.mu.Lock()
		r.nodes[name] = m
		r.mu.Unlock()
	}
	params := url.Values{"fieldSelector": {"involvedObject.kind=Node,involvedObject.name=" + name}}
	if body, src, err := r.c.apiGet(ctx, resEvents.path("", ""), params); err != nil {
		r.failed("events.yaml", src, err)
	} else {
		r.writeYAML(ctx, "events.yaml", src, resource{}, body)
	}
	r.pods(ctx, "", url.Values{"fieldSelector": {"spec.nodeName=" + name}})
}

// podDir is where a pod's artifacts go: pods/<pod>/ in a collection of
// one pod or one namespace (ns), and pods/<namespace>/<pod>/ in a node's
// (ns ""), whose pods may share names across namespaces.
func podDir(ns string, pod *corev1.Pod) string {
	if ns == "" {
		return "pods/" + pathSegment(pod.Namespace) + "/" + pathSegment(pod.Name) + "/"
	}
	return "pods/" + pathSegment(pod.Name) + "/"
}

// pods collects every pod a list returns, from namespace ns or, when ns
// is "", from every namespace.
func (r *run) pods(ctx context.Context, ns string, params url.Values) {
	l := r.list(ctx, resPods, ns, params)
	if l.err != nil {
		r.failed("pods", l.source, l.err)
		return
	}
	for _, raw := range l.items {
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil {
			continue
		}
		r.pod(ctx, podDir(ns, &pod), &pod, raw, l.source)
	}
}
