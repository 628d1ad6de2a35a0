package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Format names, as Detect reports them.
const (
	FormatDefender = "defender-for-cloud"
	FormatSentinel = "sentinel"
	FormatFalco    = "falco"
	FormatKdfir    = "kdfir"
)

// ErrUnknownFormat is returned for a body that is no known alert format.
var ErrUnknownFormat = errors.New("unrecognized alert format: want a Defender for Cloud alert, a Sentinel alert or incident, Falco JSON, or kdfir alert JSON")

// Parse detects the format of an alert body and normalizes it. The
// returned alert has no ID yet; the store assigns it.
func Parse(body []byte) (*Alert, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("alert: invalid JSON: %w", err)
	}
	var a *Alert
	var err error
	switch Detect(m) {
	case FormatKdfir:
		a, err = parseKdfir(body)
	case FormatDefender:
		a, err = parseDefender(m)
	case FormatSentinel:
		a, err = parseSentinel(m)
	case FormatFalco:
		a, err = parseFalco(m)
	default:
		return nil, ErrUnknownFormat
	}
	if err != nil {
		return nil, err
	}
	a.Raw = append(json.RawMessage(nil), body...)
	a.Triage = nil // triage is the analysts', never the sender's
	a.Severity = NormalizeSeverity(a.Severity)
	if a.Time.IsZero() {
		a.Time = time.Now().UTC()
	}
	a.Entities = dedupe(a.Entities)
	return a, nil
}

// Detect names the format of a decoded alert body, or "".
func Detect(m map[string]any) string {
	if s, _ := m["schema"].(string); strings.HasPrefix(s, "kdfir.io/alert") {
		return FormatKdfir
	}
	if props, ok := m["properties"].(map[string]any); ok {
		if _, ok := props["alertType"]; ok {
			return FormatDefender
		}
		if _, ok := props["entities"]; ok {
			return FormatDefender
		}
	}
	if obj, ok := m["object"].(map[string]any); ok {
		if _, ok := obj["properties"].(map[string]any); ok {
			return FormatSentinel // incident trigger payload
		}
	}
	if field(m, "Entities") != nil && (field(m, "AlertDisplayName") != nil || field(m, "SystemAlertId") != nil || field(m, "AlertName") != nil || field(m, "Title") != nil) {
		return FormatSentinel
	}
	if _, ok := m["rule"]; ok {
		if _, ok := m["output_fields"]; ok {
			return FormatFalco
		}
		if _, ok := m["priority"]; ok {
			return FormatFalco
		}
	}
	return ""
}

func parseKdfir(body []byte) (*Alert, error) {
	var a Alert
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("kdfir alert: %w", err)
	}
	if a.Title == "" {
		return nil, errors.New("kdfir alert: title is required")
	}
	for i, e := range a.Entities {
		if e.Type == "" {
			return nil, fmt.Errorf("kdfir alert: entities[%d]: type is required", i)
		}
	}
	if a.Source == "" {
		a.Source = SourceKdfir
	}
	return &a, nil
}

// parseDefender reads a Microsoft Defender for Cloud alert resource
// (Microsoft.Security/locations/alerts), as ARM, Event Hub export and the
// Logic App trigger deliver it.
func parseDefender(m map[string]any) (*Alert, error) {
	p, _ := m["properties"].(map[string]any)
	a := &Alert{
		Source:      SourceDefender,
		SourceID:    first(str(p, "systemAlertId"), str(m, "id"), str(m, "name")),
		Title:       first(str(p, "alertDisplayName", "displayName"), str(p, "alertType")),
		AlertType:   str(p, "alertType"),
		Severity:    str(p, "severity"),
		Description: str(p, "description"),
		Time:        parseTime(first(str(p, "startTimeUtc"), str(p, "timeGeneratedUtc"), str(p, "reportedTimeUtc"))),
		Fields:      map[string]any{},
	}
	if ext, ok := p["extendedProperties"].(map[string]any); ok {
		for k, v := range ext {
			a.Fields[k] = v
		}
	}
	if ids, ok := p["resourceIdentifiers"].([]any); ok {
		for _, id := range ids {
			if im, ok := id.(map[string]any); ok {
				if rid := str(im, "azureResourceId"); rid != "" && a.Cluster == "" {
					a.Cluster = rid
				}
			}
		}
	}
	if raw, ok := p["entities"]; ok {
		b, _ := json.Marshal(raw)
		ents, err := ParseEntities(b)
		if err != nil {
			return nil, fmt.Errorf("defender alert: %w", err)
		}
		a.Entities = ents
	}
	inheritCluster(a)
	if a.Title == "" {
		return nil, errors.New("defender alert: properties.alertDisplayName or alertType is required")
	}
	return a, nil
}

// parseSentinel reads a Microsoft Sentinel alert (the SecurityAlert shape:
// AlertDisplayName, Severity, Entities, ...) or incident (the automation
// trigger's {"object": {"properties": {...}}}).
func parseSentinel(m map[string]any) (*Alert, error) {
	if obj, ok := m["object"].(map[string]any); ok {
		p, _ := obj["properties"].(map[string]any)
		a := &Alert{
			Source:      SourceSentinel,
			SourceID:    first(str(obj, "name"), str(obj, "id"), fmt.Sprint(field(p, "incidentNumber"))),
			Title:       str(p, "title"),
			Severity:    str(p, "severity"),
			Description: str(p, "description"),
			Time:        parseTime(first(str(p, "createdTimeUtc"), str(p, "firstActivityTimeUtc"))),
		}
		for _, key := range []string{"relatedEntities", "Entities"} {
			if raw := field(p, key); raw != nil {
				b, _ := json.Marshal(raw)
				ents, err := ParseEntities(b)
				if err != nil {
					return nil, fmt.Errorf("sentinel incident: %w", err)
				}
				a.Entities = append(a.Entities, ents...)
			}
		}
		if alerts, ok := field(p, "Alerts").([]any); ok {
			for _, al := range alerts {
				if am, ok := al.(map[string]any); ok {
					ap, _ := am["properties"].(map[string]any)
					if a.AlertType == "" {
						a.AlertType = str(ap, "alertType", "alertDisplayName")
					}
				}
			}
		}
		inheritCluster(a)
		if a.Title == "" {
			return nil, errors.New("sentinel incident: object.properties.title is required")
		}
		return a, nil
	}
	a := &Alert{
		Source:      SourceSentinel,
		SourceID:    first(str(m, "SystemAlertId", "VendorOriginalId", "AlertLink")),
		Title:       first(str(m, "AlertDisplayName", "AlertName", "Title")),
		AlertType:   str(m, "AlertType"),
		Severity:    str(m, "Severity", "AlertSeverity"),
		Description: str(m, "Description"),
		Time:        parseTime(first(str(m, "StartTimeUtc", "StartTime"), str(m, "TimeGenerated"))),
		Fields:      map[string]any{},
	}
	if ext := field(m, "ExtendedProperties"); ext != nil {
		if s, ok := ext.(string); ok {
			var em map[string]any
			if json.Unmarshal([]byte(s), &em) == nil {
				ext = em
			}
		}
		if em, ok := ext.(map[string]any); ok {
			for k, v := range em {
				a.Fields[k] = v
			}
		}
	}
	b, _ := json.Marshal(field(m, "Entities"))
	ents, err := ParseEntities(b)
	if err != nil {
		return nil, fmt.Errorf("sentinel alert: %w", err)
	}
	a.Entities = ents
	if rid := str(m, "ResourceId", "AzureResourceId"); rid != "" {
		a.Cluster = rid
	}
	inheritCluster(a)
	if a.Title == "" {
		return nil, errors.New("sentinel alert: AlertDisplayName is required")
	}
	return a, nil
}

// parseFalco reads Falco's JSON output, or Falcosidekick's forward of it.
func parseFalco(m map[string]any) (*Alert, error) {
	of, _ := m["output_fields"].(map[string]any)
	a := &Alert{
		Source:      SourceFalco,
		SourceID:    str(m, "uuid"),
		Title:       str(m, "rule"),
		AlertType:   str(m, "rule"),
		Severity:    str(m, "priority"),
		Description: str(m, "output"),
		Time:        parseTime(str(m, "time")),
		Fields:      map[string]any{},
	}
	for k, v := range of {
		a.Fields[k] = v
	}
	if tags, ok := m["tags"]; ok {
		a.Fields["tags"] = tags
	}
	if h := str(m, "hostname"); h != "" {
		a.Fields["hostname"] = h
	}
	ns := fieldString(of, "k8s.ns.name")
	pod := fieldString(of, "k8s.pod.name")
	if pod != "" && ns != "" {
		a.Entities = append(a.Entities, Entity{Type: EntityPod, Namespace: ns, Name: pod})
	}
	if ns != "" {
		a.Entities = append(a.Entities, Entity{Type: EntityNamespace, Name: ns})
	}
	if c := fieldString(of, "container.name"); c != "" || fieldString(of, "container.id") != "" {
		img := fieldString(of, "container.image.repository")
		if tag := fieldString(of, "container.image.tag"); img != "" && tag != "" {
			img += ":" + tag
		}
		a.Entities = append(a.Entities, Entity{Type: EntityContainer, Name: first(c, fieldString(of, "container.id")), Pod: pod, Namespace: ns, Image: img,
			ImageID: fieldString(of, "container.image.digest")})
	}
	if u := fieldString(of, "ka.user.name"); u != "" {
		a.Entities = append(a.Entities, Entity{Type: EntityUser, Name: u})
	}
	if a.Title == "" {
		return nil, errors.New("falco event: rule is required")
	}
	return a, nil
}

// inheritCluster gives entities without a cluster the alert's cluster, and
// the alert the cluster of its entities when it names none itself.
func inheritCluster(a *Alert) {
	if a.Cluster == "" {
		for _, e := range a.Entities {
			if e.Cluster != "" {
				a.Cluster = e.Cluster
				break
			}
		}
	}
	for i := range a.Entities {
		if a.Entities[i].Cluster == "" && a.Entities[i].Type != EntityUser && a.Entities[i].Type != EntityIP && a.Entities[i].Type != EntityImage {
			a.Entities[i].Cluster = a.Cluster
		}
	}
}

func fieldString(m map[string]any, key string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" && s != "<nil>" {
			return s
		}
	}
	return ""
}

func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
