package audit

import (
	"fmt"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// Table names.
const (
	KubeAudit        = "KubeAudit"
	CloudAuditEvents = "CloudAuditEvents"
	AKSAudit         = "AKSAudit"
	AKSAuditAdmin    = "AKSAuditAdmin"
	AzureDiagnostics = "AzureDiagnostics"
)

// DataSource values of CloudAuditEvents, chosen from the cluster resource
// id (ASCII case-insensitively, first match wins):
//
//	"Azure Kubernetes Service"           the id contains /providers/Microsoft.ContainerService/managedClusters/
//	"Amazon Elastic Kubernetes Service"  an EKS ARN: arn:<partition>:eks:...
//	"Google Kubernetes Engine"           //container.googleapis.com/... or projects/.../clusters/...
//	"Kubernetes"                         anything else, including no id
const (
	DataSourceAKS     = "Azure Kubernetes Service"
	DataSourceEKS     = "Amazon Elastic Kubernetes Service"
	DataSourceGKE     = "Google Kubernetes Engine"
	DataSourceGeneric = "Kubernetes"
)

// DataSource classifies a cluster resource id; see the DataSource* values.
func DataSource(resourceID string) string {
	low := asciiLower(resourceID)
	switch {
	case strings.Contains(low, "/providers/microsoft.containerservice/managedclusters/"):
		return DataSourceAKS
	case strings.HasPrefix(low, "arn:") && strings.Contains(low, ":eks:"):
		return DataSourceEKS
	case strings.HasPrefix(low, "//container.googleapis.com/"),
		strings.HasPrefix(low, "projects/") && strings.Contains(low, "/clusters/"):
		return DataSourceGKE
	}
	return DataSourceGeneric
}

// ActionType of CloudAuditEvents is "Kubernetes" followed by the verb with
// its first letter upper-cased: "KubernetesCreate", "KubernetesGet",
// "KubernetesDeletecollection"; just "Kubernetes" when there is no verb.
func ActionType(verb string) string {
	if verb == "" {
		return "Kubernetes"
	}
	if c := verb[0]; 'a' <= c && c <= 'z' {
		verb = string(c-'a'+'A') + verb[1:]
	}
	return "Kubernetes" + verb
}

func col(name string, t table.Type) table.Column { return table.Column{Name: name, Type: t} }

var schemas = map[string][]table.Column{
	KubeAudit: {
		col("kind", table.String), col("apiVersion", table.String), col("level", table.String),
		col("auditID", table.String), col("stage", table.String), col("requestURI", table.String),
		col("verb", table.String), col("user", table.Dynamic), col("impersonatedUser", table.Dynamic),
		col("sourceIPs", table.Dynamic), col("userAgent", table.String), col("objectRef", table.Dynamic),
		col("responseStatus", table.Dynamic), col("requestObject", table.Dynamic),
		col("responseObject", table.Dynamic), col("requestReceivedTimestamp", table.DateTime),
		col("stageTimestamp", table.DateTime), col("annotations", table.Dynamic),
		col("Cluster", table.String), col("ClusterResourceId", table.String),
	},
	CloudAuditEvents: {
		col("Timestamp", table.DateTime), col("TimeGenerated", table.DateTime),
		col("ReportId", table.String), col("DataSource", table.String), col("ActionType", table.String),
		col("OperationName", table.String), col("AzureResourceId", table.String),
		col("ResourceId", table.String), col("IPAddress", table.String), col("UserAgent", table.String),
		col("Cluster", table.String), col("RawEventData", table.Dynamic),
		col("AdditionalFields", table.Dynamic),
		// Defender's geolocation of IPAddress, which kdfir does not
		// know: null and empty, so that queries naming them run.
		col("IsAnonymousProxy", table.Bool), col("CountryCode", table.String), col("City", table.String),
		col("Isp", table.String),
	},
	AKSAudit:      aksSchema,
	AKSAuditAdmin: aksSchema,
	AzureDiagnostics: {
		col("TimeGenerated", table.DateTime), col("Category", table.String), col("log_s", table.String),
		col("ResourceId", table.String), col("_ResourceId", table.String), col("SubscriptionId", table.String),
		col("ResourceGroup", table.String), col("Resource", table.String), col("ResourceProvider", table.String),
		col("ResourceType", table.String), col("OperationName", table.String), col("SourceSystem", table.String),
		col("Cluster", table.String), col("Type", table.String),
	},
}

// aksSchema is the columns of AKSAudit and AKSAuditAdmin.
var aksSchema = []table.Column{
	col("TimeGenerated", table.DateTime), col("Level", table.String), col("AuditId", table.String),
	col("Stage", table.String), col("RequestUri", table.String), col("Verb", table.String),
	col("User", table.Dynamic), col("SourceIps", table.Dynamic), col("UserAgent", table.String),
	col("ObjectRef", table.Dynamic), col("ResponseStatus", table.Dynamic),
	col("RequestObject", table.Dynamic), col("ResponseObject", table.Dynamic),
	col("Annotations", table.Dynamic), col("RequestReceivedTime", table.DateTime),
	col("StageReceivedTime", table.DateTime), col("_ResourceId", table.String),
	col("Cluster", table.String), col("Type", table.String),
}

// Tables returns the table names, sorted.
func Tables() []string {
	return []string{AKSAudit, AKSAuditAdmin, AzureDiagnostics, CloudAuditEvents, KubeAudit}
}

// Schema returns a copy of a table's columns, or an error naming it.
func Schema(name string) ([]table.Column, error) {
	cols, ok := schemas[name]
	if !ok {
		return nil, fmt.Errorf("unknown table %q (have %s)", name, strings.Join(Tables(), ", "))
	}
	return append([]table.Column(nil), cols...), nil
}

// Mapper maps events to the rows of one table. It reuses its row slice:
// a row is valid until the next call.
type Mapper struct {
	table string
	row   []any
	keys  map[string]bool // the event members to decode; nil for all
}

// NewMapper returns a Mapper for a table.
func NewMapper(name string) (*Mapper, error) {
	cols, err := Schema(name)
	if err != nil {
		return nil, err
	}
	return &Mapper{table: name, row: make([]any, len(cols))}, nil
}

// NewColumnMapper returns a Mapper that fills only the given columns of a
// table (nil: all of them), decoding only the event members they show;
// the other columns are nil.
func NewColumnMapper(name string, columns []string) (*Mapper, error) {
	m, err := NewMapper(name)
	if err != nil || columns == nil {
		return m, err
	}
	m.keys = map[string]bool{}
	for _, c := range columns {
		keys, ok := memberKeys[name][c]
		if !ok {
			if name == CloudAuditEvents && c == "RawEventData" {
				m.keys = nil // every member
				return m, nil
			}
			keys = []string{c} // KubeAudit: a column is the member of its name
		}
		for _, k := range keys {
			m.keys[k] = true
		}
	}
	return m, nil
}

// memberKeys gives the event members a column shows, where it is not the
// member of the column's own name.
var memberKeys = map[string]map[string][]string{
	KubeAudit: {"Cluster": nil, "ClusterResourceId": nil},
	CloudAuditEvents: {
		"Timestamp": nil, "TimeGenerated": nil, "ReportId": {"auditID"}, "DataSource": nil,
		"ActionType": {"verb"}, "OperationName": {"verb"}, "AzureResourceId": nil, "ResourceId": nil,
		"IPAddress": {"sourceIPs"}, "UserAgent": {"userAgent"}, "Cluster": nil, "AdditionalFields": nil,
		"IsAnonymousProxy": nil, "CountryCode": nil, "City": nil, "Isp": nil,
	},
	AKSAudit: {
		"TimeGenerated": nil, "Level": {"level"}, "AuditId": {"auditID"}, "Stage": {"stage"},
		"RequestUri": {"requestURI"}, "Verb": {"verb"}, "User": {"user"}, "SourceIps": {"sourceIPs"},
		"UserAgent": {"userAgent"}, "ObjectRef": {"objectRef"}, "ResponseStatus": {"responseStatus"},
		"RequestObject": {"requestObject"}, "ResponseObject": {"responseObject"}, "Annotations": {"annotations"},
		"RequestReceivedTime": {"requestReceivedTimestamp"}, "StageReceivedTime": {"stageTimestamp"},
		"_ResourceId": nil, "Cluster": nil, "Type": nil,
	},
	AzureDiagnostics: {
		"TimeGenerated": nil, "Category": nil, "log_s": nil, "ResourceId": nil, "_ResourceId": nil,
		"SubscriptionId": nil, "ResourceGroup": nil, "Resource": nil, "ResourceProvider": nil,
		"ResourceType": nil, "OperationName": nil, "SourceSystem": nil, "Cluster": nil, "Type": nil,
	},
}

func init() { memberKeys[AKSAuditAdmin] = memberKeys[AKSAudit] }

// Row maps e to a row. It reads only e.Raw (which must be a valid event
// object, as from ParseEvent), e.Time, e.Cluster and e.ClusterResourceID;
// the other values come from Raw, which is parsed once per call.
func (m *Mapper) Row(e *Event) []any { return m.rowOf(e, 0) }

// rowOf maps e to its row in pass p of the table (see passes).
func (m *Mapper) rowOf(e *Event, pass int) []any {
	if m.table == AzureDiagnostics {
		diagRow(m.row, e, pass)
		return m.row
	}
	var obj map[string]any
	if m.keys == nil {
		obj, _ = dynamic(e.Raw[skipWS(e.Raw, 0):]).(map[string]any)
	} else {
		obj = map[string]any{}
		_ = eachField(e.Raw, func(k string, v []byte) bool {
			if m.keys[k] {
				obj[k] = dynamic(v)
			}
			return true
		})
	}
	if obj == nil {
		obj = map[string]any{}
	}
	switch m.table {
	case KubeAudit:
		kubeAuditRow(m.row, e, obj)
	case CloudAuditEvents:
		cloudAuditRow(m.row, e, obj)
	case AKSAudit, AKSAuditAdmin:
		aksAuditRow(m.row, e, obj, m.table)
	}
	return m.row
}

// str renders a member as a KQL string: "" when absent or null, the text
// of a string, the JSON of anything else.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	return compactJSON(v)
}

// dt renders a timestamp member as a datetime, nil when absent or invalid.
func dt(v any) any {
	if s, ok := v.(string); ok {
		if t, ok := ParseTime(s); ok {
			return t
		}
	}
	return nil
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func kubeAuditRow(r []any, e *Event, o map[string]any) {
	r[0], r[1], r[2] = str(o["kind"]), str(o["apiVersion"]), str(o["level"])
	r[3], r[4], r[5] = str(o["auditID"]), str(o["stage"]), str(o["requestURI"])
	r[6], r[7], r[8] = str(o["verb"]), o["user"], o["impersonatedUser"]
	r[9], r[10], r[11] = o["sourceIPs"], str(o["userAgent"]), o["objectRef"]
	r[12], r[13], r[14] = o["responseStatus"], o["requestObject"], o["responseObject"]
	r[15], r[16] = dt(o["requestReceivedTimestamp"]), dt(o["stageTimestamp"])
	r[17], r[18], r[19] = o["annotations"], e.Cluster, e.ClusterResourceID
}

// RawEventData builds the CloudAuditEvents RawEventData of an event from
// its decoded JSON object: PascalCase top-level keys, nested values as
// they are, plus AzureResourceId (when the cluster has one) and
// principaloid (when the user has an Entra object id).
func RawEventData(e *Event, o map[string]any) map[string]any {
	red := make(map[string]any, len(o)+2)
	for k, v := range o {
		if _, known := pascalKeys[k]; !known {
			if p, ok := pascalKey(k); ok {
				red[p] = v
			}
		}
	}
	for k, v := range o {
		if p, known := pascalKeys[k]; known {
			red[p] = v
		}
	}
	if e.ClusterResourceID != "" {
		red[rawResourceIDKey] = e.ClusterResourceID
	}
	u := userFromMap(o["user"])
	if oid := principalOID(&u); oid != "" {
		red[rawOIDKey] = oid
	}
	return red
}

func cloudAuditRow(r []any, e *Event, o map[string]any) {
	ts := timeOrNil(e.Time)
	ip := ""
	if l, ok := o["sourceIPs"].([]any); ok && len(l) > 0 {
		ip, _ = l[0].(string)
	}
	verb := str(o["verb"])
	add := map[string]any{"Cluster": e.Cluster}
	r[0], r[1], r[2] = ts, ts, str(o["auditID"])
	r[3], r[4], r[5] = DataSource(e.ClusterResourceID), ActionType(verb), verb
	r[6], r[7], r[8] = e.ClusterResourceID, e.ClusterResourceID, ip
	r[9], r[10], r[11], r[12] = str(o["userAgent"]), e.Cluster, RawEventData(e, o), add
	r[13], r[14], r[15], r[16] = nil, "", "", ""
}

// userFromMap rebuilds the hot UserInfo fields from a decoded user, as
// ParseEvent decodes them.
func userFromMap(v any) UserInfo {
	var u UserInfo
	m, _ := v.(map[string]any)
	u.Username, _ = m["username"].(string)
	if extra, ok := m["extra"].(map[string]any); ok {
		u.Extra = map[string][]string{}
		for k, l := range extra {
			arr, ok := l.([]any)
			if !ok {
				continue
			}
			ss := make([]string, 0, len(arr))
			for _, x := range arr {
				if s, ok := x.(string); ok {
					ss = append(ss, s)
				}
			}
			if len(ss) == len(arr) {
				u.Extra[k] = ss
			}
		}
	}
	return u
}

func aksAuditRow(r []any, e *Event, o map[string]any, typ string) {
	r[0], r[1], r[2] = timeOrNil(e.Time), str(o["level"]), str(o["auditID"])
	r[3], r[4], r[5] = str(o["stage"]), str(o["requestURI"]), str(o["verb"])
	r[6], r[7], r[8] = o["user"], o["sourceIPs"], str(o["userAgent"])
	r[9], r[10], r[11] = o["objectRef"], o["responseStatus"], o["requestObject"]
	r[12], r[13] = o["responseObject"], o["annotations"]
	r[14], r[15] = dt(o["requestReceivedTimestamp"]), dt(o["stageTimestamp"])
	r[16], r[17], r[18] = e.ClusterResourceID, e.Cluster, typ
}
