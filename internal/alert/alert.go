// Package alert is kdfir's one Alert model, with resolved entities, and the
// parsers that turn each source's format into it: Microsoft Defender for
// Cloud alert resources, Microsoft Sentinel alerts and incidents, Falco and
// Falcosidekick events, the original Azure Function's request body, and
// kdfir's own JSON.
package alert

import (
	"encoding/json"
	"strings"
	"time"
)

// Sources an alert can come from.
const (
	SourceDefender = "defender"
	SourceSentinel = "sentinel"
	SourceFalco    = "falco"
	SourceKdfir    = "kdfir"
)

// Severities, normalized from each source's own scale.
const (
	SeverityInformational = "informational"
	SeverityLow           = "low"
	SeverityMedium        = "medium"
	SeverityHigh          = "high"
	SeverityCritical      = "critical"
)

// Entity types.
const (
	EntityCluster        = "cluster"
	EntityNamespace      = "namespace"
	EntityPod            = "pod"
	EntityContainer      = "container"
	EntityImage          = "image"
	EntityDeployment     = "deployment"
	EntityDaemonSet      = "daemonset"
	EntityNode           = "node"
	EntityService        = "service"
	EntityUser           = "user"
	EntityServiceAccount = "serviceaccount"
	EntityIP             = "ip"
)

// Entity is one thing an alert is about, with its references resolved: a
// pod knows its namespace and cluster, a container its pod and image.
type Entity struct {
	Type      string `json:"type"`
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// Cluster is a cluster name or an Azure ResourceId.
	Cluster string `json:"cluster,omitempty"`
	// Pod is set on containers.
	Pod string `json:"pod,omitempty"`
	// Image is an image reference; ImageID a digest (container-image.ImageId).
	Image   string `json:"image,omitempty"`
	ImageID string `json:"imageId,omitempty"`
	// Address is set on IP entities.
	Address string `json:"address,omitempty"`
}

// Key identifies an entity for de-duplication.
func (e Entity) Key() string {
	return strings.Join([]string{e.Type, e.Cluster, e.Namespace, e.Pod, e.Name, e.Address, e.ImageID}, "\x00")
}

// Alert is an alert from any source.
type Alert struct {
	ID string `json:"id"`
	// Source is one of the Source constants; SourceID is the alert's id in
	// that source (used to drop duplicate deliveries).
	Source      string    `json:"source"`
	SourceID    string    `json:"sourceId,omitempty"`
	Title       string    `json:"title"`
	AlertType   string    `json:"alertType,omitempty"`
	Severity    string    `json:"severity"`
	Description string    `json:"description,omitempty"`
	Time        time.Time `json:"time"`
	// Cluster is the cluster the alert names as a whole, when it does.
	Cluster  string   `json:"cluster,omitempty"`
	Entities []Entity `json:"entities"`
	// Fields are source-specific values playbooks can match on (Falco's
	// output_fields, Defender's extendedProperties, ...).
	Fields map[string]any `json:"fields,omitempty"`
	// Rule and ReportIDs are set on alerts raised by kdfir's detection rules.
	Rule      string   `json:"rule,omitempty"`
	ReportIDs []string `json:"reportIds,omitempty"`
	// Actions lists the ids of the actions the alert's playbooks started.
	Actions []string        `json:"actions,omitempty"`
	Raw     json.RawMessage `json:"raw,omitempty"`
	// Triage is the analysts' state of the alert (nil: new, untouched).
	Triage *Triage `json:"triage,omitempty"`
}

// OfType returns the alert's entities of one type.
func (a *Alert) OfType(t string) []Entity {
	var out []Entity
	for _, e := range a.Entities {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

// HasType reports whether the alert has an entity of type t.
func (a *Alert) HasType(t string) bool { return len(a.OfType(t)) > 0 }

// NormalizeSeverity maps a source's severity word to kdfir's scale.
func NormalizeSeverity(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "informational", "info", "debug", "notice", "none":
		return SeverityInformational
	case "low":
		return SeverityLow
	case "medium", "warning", "moderate":
		return SeverityMedium
	case "high", "error":
		return SeverityHigh
	case "critical", "alert", "emergency", "emerg", "crit":
		return SeverityCritical
	}
	return SeverityMedium
}

// SeverityRank orders severities, informational lowest.
func SeverityRank(s string) int {
	switch NormalizeSeverity(s) {
	case SeverityInformational:
		return 0
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	default:
		return 4
	}
}

// dedupe removes repeated entities, keeping the first.
func dedupe(in []Entity) []Entity {
	seen := map[string]bool{}
	out := in[:0]
	for _, e := range in {
		if k := e.Key(); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}
