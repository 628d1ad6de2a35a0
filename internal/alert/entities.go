package alert

import (
	"encoding/json"
	"fmt"
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
	return dedupe(out), nil
}

type resolver struct {
	byID map[string]map[string]any
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
		if res := r.ref(m, "CloudResource"); res != nil {
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
		if pod := r.ref(m, "Pod"); pod != nil {
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
	if ns := r.ref(m, "Namespace"); ns != nil {
		if n, ok := r.entity(ns, depth+1); ok {
			e.Namespace, e.Cluster = n.Name, n.Cluster
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
	if c := r.ref(m, "Cluster"); c != nil {
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
