package alert

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ParseEntities resolves a Defender for Containers / Sentinel entity list.
// Entities link to each other with "$id" and {"$ref": ID}; an entity may be
// given in full the first time it appears, nested inside another, and by
// reference after that. Flat entities with only Name and Type work too, and
// so do Sentinel API entities ({"kind": ..., "properties": {...}}).
//
// Types understood (case-insensitive): azure-resource, K8s-cluster,
// K8s-namespace, K8s-pod, container, container-image, K8s-deployment,
// K8s-daemonset, K8s-node, K8s-service, account, ip. Others are ignored.
//
// A link must point at an entity of the right type (a pod's Namespace at a
// K8s-namespace, a container's Pod at a K8s-pod). In a flat list, where
// entities carry no links, a pod takes its namespace from the list's only
// K8s-namespace entity, and every entity its cluster from the only
// K8s-cluster or AKS azure-resource; when there are several of them, the
// list is ambiguous and the error names them.
func ParseEntities(raw json.RawMessage) ([]Entity, error) {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	// Sentinel sometimes passes the list as a JSON string.
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("entities: %w", err)
		}
		raw = json.RawMessage(s)
	}
	var list []any
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("entities: want a JSON array: %w", err)
	}
	r := &resolver{byID: map[string]map[string]any{}}
	for _, item := range list {
		r.index(item)
	}
	var out []Entity
	for _, item := range list {
		obj := r.deref(item)
		if obj == nil {
			continue
		}
		if e, ok := r.entity(obj, 0); ok {
			out = append(out, e)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	out = dedupe(out)
	if err := fillFromSiblings(out); err != nil {
		return nil, err
	}
	return out, nil
}

// fillFromSiblings gives namespaced entities without a namespace the
// list's only namespace, and entities without a cluster its only cluster.
func fillFromSiblings(ents []Entity) error {
	var namespaces, clusters []Entity
	for _, e := range ents {
		switch e.Type {
		case EntityNamespace:
			if !slices.ContainsFunc(namespaces, func(x Entity) bool { return x.Name == e.Name }) {
				namespaces = append(namespaces, e)
			}
		case EntityCluster:
			// A K8s-cluster by name and the azure-resource of the same
			// cluster are one cluster: keep the resource id.
			i := slices.IndexFunc(clusters, func(x Entity) bool { return strings.EqualFold(lastSegment(x.Cluster), lastSegment(e.Cluster)) })
			switch {
			case i < 0:
				clusters = append(clusters, e)
			case strings.Contains(e.Cluster, "/"):
				clusters[i] = e
			}
		}
	}
	for i := range ents {
		e := &ents[i]
		if namespaced(e.Type) && e.Namespace == "" && e.Name != "" {
			switch len(namespaces) {
			case 0:
			case 1:
				e.Namespace = namespaces[0].Name
				if e.Cluster == "" {
					e.Cluster = namespaces[0].Cluster
				}
			default:
				return fmt.Errorf("entities: %s %q has no Namespace link and the alert names %d namespaces (%s): link it with {\"$ref\": ...}",
					e.Type, e.Name, len(namespaces), names(namespaces))
			}
		}
	}
	for i := range ents {
		e := &ents[i]
		if e.Cluster != "" || e.Type == EntityCluster || e.Type == EntityUser || e.Type == EntityIP || e.Type == EntityImage {
			continue
		}
		switch len(clusters) {
		case 0:
		case 1:
			e.Cluster = clusters[0].Cluster
		default:
			return fmt.Errorf("entities: %s %q has no Cluster link and the alert names %d clusters (%s)", e.Type, e.Name, len(clusters), names(clusters))
		}
	}
	return nil
}

func namespaced(typ string) bool {
	switch typ {
	case EntityPod, EntityContainer, EntityDeployment, EntityDaemonSet, EntityService:
		return true
	}
	return false
}

func names(ents []Entity) string {
	var out []string
	for _, e := range ents {
		n := e.Name
		if e.Type == EntityCluster {
			n = e.Cluster
		}
		out = append(out, fmt.Sprintf("%q", n))
	}
	return strings.Join(out, ", ")
}

type resolver struct {
	byID map[string]map[string]any
	err  error // the first link to an entity of the wrong type
}

// linked resolves a link field and checks the type of what it points at.
func (r *resolver) linked(m map[string]any, key string, from string, want ...string) map[string]any {
	t := r.ref(m, key)
	if t == nil {
		return nil
	}
	got := strings.ToLower(str(t, "Type"))
	if got != "" && !slices.Contains(want, got) {
		if r.err == nil {
			r.err = fmt.Errorf("entities: %s %q: %s links to a %q entity, want %s", from, str(m, "Name", "FriendlyName"), key, str(t, "Type"), strings.Join(want, " or "))
		}
		return nil
	}
	return t
}

// index records every object that carries an "$id", at any depth.
func (r *resolver) index(v any) {
	switch v := v.(type) {
	case map[string]any:
		if id, ok := v["$id"]; ok {
			r.byID[fmt.Sprint(id)] = v
		}
		for _, c := range v {
			r.index(c)
		}
	case []any:
		for _, c := range v {
			r.index(c)
		}
	}
}

// deref follows a {"$ref": ID} to its object.
func (r *resolver) deref(v any) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if ref, ok := m["$ref"]; ok {
		return r.byID[fmt.Sprint(ref)]
	}
	// Sentinel API shape: {"kind": "...", "properties": {...}}.
	if props, ok := m["properties"].(map[string]any); ok {
		if kind, ok := m["kind"].(string); ok {
			flat := map[string]any{"Type": kind}
			for k, v := range props {
				flat[k] = v
			}
			return flat
		}
	}
	return m
}

// str reads a string field, trying each key without regard to case.
func str(m map[string]any, keys ...string) string {
	for _, k := range keys {
		for mk, v := range m {
			if strings.EqualFold(mk, k) {
				if s, ok := v.(string); ok && s != "" {
					return s
				}
			}
		}
	}
	return ""
}

func field(m map[string]any, key string) any {
	for mk, v := range m {
		if strings.EqualFold(mk, key) {
			return v
		}
	}
	return nil
}

// ref resolves a field that links to another entity.
func (r *resolver) ref(m map[string]any, key string) map[string]any {
	return r.deref(field(m, key))
}

const maxDepth = 8

// entity converts one resolved object. depth guards against reference
// cycles.
func (r *resolver) entity(m map[string]any, depth int) (Entity, bool) {
	if depth > maxDepth {
		return Entity{}, false
	}
	typ := strings.ToLower(str(m, "Type"))
	name := str(m, "Name", "FriendlyName")
	switch typ {
	case "k8s-cluster":
		e := Entity{Type: EntityCluster, Name: name}
		if res := r.linked(m, "CloudResource", "K8s-cluster", "azure-resource", "azureresource"); res != nil {
			if id := str(res, "ResourceId", "AzureResourceId"); id != "" {
				e.Cluster = id
			}
		}
		if e.Cluster == "" {
			e.Cluster = str(m, "ResourceId", "AzureResourceId")
		}
		if e.Cluster == "" {
			e.Cluster = name
		}
		if e.Name == "" {
			e.Name = lastSegment(e.Cluster)
		}
		return e, true
	case "azure-resource", "azureresource":
		id := str(m, "ResourceId", "AzureResourceId")
		if strings.Contains(strings.ToLower(id), "/microsoft.containerservice/managedclusters/") {
			return Entity{Type: EntityCluster, Name: lastSegment(id), Cluster: id}, true
		}
		return Entity{}, false
	case "k8s-namespace":
		return Entity{Type: EntityNamespace, Name: name, Cluster: r.clusterOf(m, depth)}, true
	case "k8s-pod":
		e := Entity{Type: EntityPod, Name: name}
		r.fillNamespace(&e, m, depth)
		return e, true
	case "k8s-deployment", "k8s-daemonset", "k8s-service":
		e := Entity{Type: strings.TrimPrefix(typ, "k8s-"), Name: name}
		r.fillNamespace(&e, m, depth)
		return e, true
	case "k8s-node":
		return Entity{Type: EntityNode, Name: name, Cluster: r.clusterOf(m, depth)}, true
	case "container":
		e := Entity{Type: EntityContainer, Name: name}
		if img := r.ref(m, "Image"); img != nil {
			e.ImageID = str(img, "ImageId", "Digest")
			e.Image = str(img, "Name", "ImageName")
		}
		if pod := r.linked(m, "Pod", "container", "k8s-pod"); pod != nil {
			if p, ok := r.entity(pod, depth+1); ok {
				e.Pod, e.Namespace, e.Cluster = p.Name, p.Namespace, p.Cluster
			}
		}
		return e, true
	case "container-image":
		return Entity{Type: EntityImage, Name: name, ImageID: str(m, "ImageId", "Digest")}, true
	case "account":
		n := str(m, "Name", "UPNSuffix", "AadUserId")
		if strings.HasPrefix(n, "system:serviceaccount:") {
			parts := strings.SplitN(strings.TrimPrefix(n, "system:serviceaccount:"), ":", 2)
			if len(parts) == 2 {
				return Entity{Type: EntityServiceAccount, Namespace: parts[0], Name: parts[1]}, true
			}
		}
		return Entity{Type: EntityUser, Name: n}, n != ""
	case "ip":
		a := str(m, "Address")
		return Entity{Type: EntityIP, Address: a}, a != ""
	}
	return Entity{}, false
}

// fillNamespace sets the namespace and cluster of a namespaced entity from
// its Namespace link, or from flat Namespace / Cluster fields.
func (r *resolver) fillNamespace(e *Entity, m map[string]any, depth int) {
	if ns := r.linked(m, "Namespace", str(m, "Type"), "k8s-namespace"); ns != nil {
		if n, ok := r.entity(ns, depth+1); ok {
			e.Namespace, e.Cluster = n.Name, n.Cluster
		} else if str(ns, "Type") == "" {
			e.Namespace = str(ns, "Name") // given inline, without a type
		}
	}
	if e.Namespace == "" {
		e.Namespace = str(m, "Namespace", "NamespaceName")
	}
	if e.Cluster == "" {
		e.Cluster = r.clusterOf(m, depth)
	}
}

func (r *resolver) clusterOf(m map[string]any, depth int) string {
	if c := r.linked(m, "Cluster", str(m, "Type"), "k8s-cluster", "azure-resource", "azureresource"); c != nil {
		if e, ok := r.entity(c, depth+1); ok {
			return e.Cluster
		}
	}
	return str(m, "Cluster", "ClusterName")
}

func lastSegment(id string) string {
	id = strings.TrimRight(id, "/")
	if i := strings.LastIndex(id, "/"); i >= 0 {
		return id[i+1:]
	}
	return id
}

// FindEntities finds the entity list in a body that carries an alert: an
// "entities" member (any case), or where a Sentinel alert
// (Entities), a Sentinel incident (object.properties.relatedEntities) or a
// Defender for Cloud alert (properties.entities) keeps it, in the body
// itself or in one of its object members (a Logic App that posts
// {"action": ..., "alert": <the alert>}).
func FindEntities(m map[string]any) (any, bool) {
	if v, ok := entitiesIn(m); ok {
		return v, true
	}
	for _, v := range m {
		if sub, ok := v.(map[string]any); ok {
			if v, ok := entitiesIn(sub); ok {
				return v, true
			}
		}
	}
	return nil, false
}

func entitiesIn(m map[string]any) (any, bool) {
	if v := field(m, "Entities"); v != nil {
		return v, true
	}
	if v := field(m, "relatedEntities"); v != nil {
		return v, true
	}
	for _, path := range [][]string{{"object", "properties"}, {"properties"}} {
		cur := m
		for _, k := range path {
			cur, _ = field(cur, k).(map[string]any)
		}
		if cur == nil {
			continue
		}
		for _, k := range []string{"relatedEntities", "entities"} {
			if v := field(cur, k); v != nil {
				return v, true
			}
		}
	}
	return nil, false
}
