// Package kqltest holds the dataset of the KQL golden tests, shared by the
// evaluator's tests and the SQL compiler's differential tests.
package kqltest

import (
	"time"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// Now is the query time of every golden test, so that ago() is deterministic.
var Now = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	aksProd  = "/subscriptions/0000-1111/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod"
	aksDev   = "/subscriptions/0000-1111/resourceGroups/rg-dev/providers/Microsoft.ContainerService/managedClusters/aks-dev"
	aksDS    = "Azure Kubernetes Service"
	miOID    = "7d3c9f0e-1a2b-4c5d-8e9f-0a1b2c3d4e5f"
	kubectl  = "kubectl/v1.30.0 (linux/amd64) kubernetes/7c48c2b"
	kubectl2 = "kubectl/v1.29.1 (darwin/arm64) kubernetes/bb6d5f3"
)

var auditColumns = []table.Column{
	{Name: "Timestamp", Type: table.DateTime},
	{Name: "TimeGenerated", Type: table.DateTime},
	{Name: "ReportId", Type: table.String},
	{Name: "DataSource", Type: table.String},
	{Name: "OperationName", Type: table.String},
	{Name: "AzureResourceId", Type: table.String},
	{Name: "IPAddress", Type: table.String},
	{Name: "UserAgent", Type: table.String},
	{Name: "RawEventData", Type: table.Dynamic},
}

type auditEvent struct {
	ts       string
	reportID string
	ds       string
	op       string
	cluster  string
	ip       string
	ua       string
	raw      map[string]any
}

func objRef(resource, subresource, namespace, name string) map[string]any {
	m := map[string]any{"resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1"}
	if subresource != "" {
		m["subresource"] = subresource
	}
	return m
}

func user(name string, groups ...string) map[string]any {
	g := []any{}
	for _, x := range groups {
		g = append(g, x)
	}
	return map[string]any{"username": name, "groups": g}
}

func container(name, image string, privileged any) map[string]any {
	c := map[string]any{"name": name, "image": image}
	if privileged != nil {
		c["securityContext"] = map[string]any{"privileged": privileged}
	}
	return c
}

func auditEvents() []auditEvent {
	execURI := func(ns, pod string, cmd ...string) string {
		s := "/api/v1/namespaces/" + ns + "/pods/" + pod + "/exec?"
		for _, c := range cmd {
			s += "command=" + c + "&"
		}
		return s + "container=app&stderr=true&stdout=true"
	}
	return []auditEvent{
		{"2024-06-01T08:00:00Z", "r01", aksDS, "create", aksProd, "203.0.113.10", kubectl, map[string]any{
			"ObjectRef":       objRef("pods", "exec", "default", "ubuntu-1"),
			"ResponseStatus":  map[string]any{"code": 101},
			"RequestURI":      execURI("default", "ubuntu-1", "sh", "-c", "cat+%2Fetc%2Fshadow"),
			"User":            user("alice@contoso.com", "system:authenticated"),
			"AzureResourceId": aksProd,
			"Verb":            "create",
		}},
		{"2024-06-01T08:05:00Z", "r02", aksDS, "create", aksProd, "203.0.113.11", kubectl2, map[string]any{
			"ObjectRef":       objRef("pods", "exec", "web", "ubuntu-2"),
			"ResponseStatus":  map[string]any{"code": 101},
			"RequestURI":      execURI("web", "ubuntu-2", "ls", "-la", "%2Froot"),
			"User":            user("bob@contoso.com", "system:authenticated", "devs"),
			"AzureResourceId": aksProd,
			"Verb":            "create",
		}},
		{"2024-06-01T08:10:00Z", "r03", aksDS, "create", aksProd, "203.0.113.10", kubectl, map[string]any{
			"ObjectRef":       objRef("pods", "exec", "default", "nginx-1"),
			"ResponseStatus":  map[string]any{"code": 101},
			"RequestURI":      execURI("default", "nginx-1", "bash"),
			"User":            user("alice@contoso.com", "system:authenticated"),
			"AzureResourceId": aksProd,
			"Verb":            "create",
		}},
		{"2024-06-01T08:15:00Z", "r04", aksDS, "create", aksProd, "198.51.100.7", kubectl, map[string]any{
			"ObjectRef":       objRef("pods", "exec", "default", "ubuntu-3"),
			"ResponseStatus":  map[string]any{"code": 403, "reason": "Forbidden"},
			"RequestURI":      execURI("default", "ubuntu-3", "id"),
			"User":            user("eve@fabrikam.com"),
			"AzureResourceId": aksProd,
			"Verb":            "create",
		}},
		{"2024-06-01T09:00:00Z", "r05", aksDS, "create", aksProd, "198.51.100.7", kubectl2, map[string]any{
			"ObjectRef":       objRef("pods", "", "kube-system", ""),
			"ResponseStatus":  map[string]any{"code": 201},
			"RequestURI":      "/api/v1/namespaces/kube-system/pods",
			"User":            user("mallory@fabrikam.com", "system:authenticated"),
			"AzureResourceId": aksProd,
			"Verb":            "create",
			"RequestObject": map[string]any{
				"metadata": map[string]any{"name": "priv-pod", "namespace": "kube-system"},
				"spec": map[string]any{"containers": []any{
					container("evil", "alpine:3.19", true),
					container("sidecar", "busybox", false),
				}},
			},
		}},
		{"2024-06-01T09:30:00Z", "r06", aksDS, "create", aksProd, "203.0.113.10", kubectl, map[string]any{
			"ObjectRef":       objRef("pods", "", "default", ""),
			"ResponseStatus":  map[string]any{"code": 201},
			"RequestURI":      "/api/v1/namespaces/default/pods",
			"User":            user("alice@contoso.com", "system:authenticated"),
			"AzureResourceId": aksProd,
			"Verb":            "create",
			"RequestObject": map[string]any{
				"metadata": map[string]any{"name": "web-1", "namespace": "default"},
				"spec":     map[string]any{"containers": []any{container("web", "nginx:1.27", nil)}},
			},
		}},
		{"2024-05-30T09:00:00Z", "r07", aksDS, "create", aksProd, "198.51.100.7", kubectl2, map[string]any{
			"ObjectRef":       objRef("pods", "", "kube-system", ""),
			"ResponseStatus":  map[string]any{"code": 201},
			"RequestURI":      "/api/v1/namespaces/kube-system/pods",
			"User":            user("mallory@fabrikam.com"),
			"AzureResourceId": aksProd,
			"Verb":            "create",
			"RequestObject": map[string]any{
				"metadata": map[string]any{"name": "old-priv", "namespace": "kube-system"},
				"spec":     map[string]any{"containers": []any{container("old", "alpine", true)}},
			},
		}},
		{"2024-06-01T10:00:00Z", "r08", aksDS, "get", aksProd, "10.0.0.5", "azure-sdk-for-go/v68.0.0", map[string]any{
			"ObjectRef":       objRef("secrets", "", "kube-system", "bootstrap-token"),
			"ResponseStatus":  map[string]any{"code": 200},
			"RequestURI":      "/api/v1/namespaces/kube-system/secrets/bootstrap-token",
			"User":            user("aks-identity"),
			"principaloid":    miOID,
			"AzureResourceId": aksProd,
			"Verb":            "get",
		}},
		{"2024-06-01T10:30:00Z", "r09", aksDS, "create", aksProd, "10.0.0.5", "azure-sdk-for-go/v68.0.0", map[string]any{
			"ObjectRef":       objRef("deployments", "", "default", "miner"),
			"ResponseStatus":  map[string]any{"code": 201},
			"RequestURI":      "/apis/apps/v1/namespaces/default/deployments",
			"User":            user("aks-identity"),
			"principaloid":    miOID,
			"AzureResourceId": aksProd,
			"Verb":            "create",
		}},
		{"2024-06-01T11:00:00Z", "r10", aksDS, "delete", aksDev, "192.0.2.44", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", map[string]any{
			"ObjectRef":       objRef("secrets", "", "default", "db-password"),
			"ResponseStatus":  map[string]any{"code": 200},
			"RequestURI":      "/api/v1/namespaces/default/secrets/db-password",
			"User":            user("bob@contoso.com", "devs"),
			"AzureResourceId": aksDev,
			"Verb":            "delete",
		}},
		{"2024-06-01T11:15:00Z", "r11", aksDS, "create", aksDev, "192.0.2.44", "kubectl/v1.28.3 (windows/amd64) kubernetes/a8a1abc", map[string]any{
			"ObjectRef":       objRef("configmaps", "", "default", "settings"),
			"ResponseStatus":  map[string]any{"code": 409, "reason": "AlreadyExists"},
			"RequestURI":      "/api/v1/namespaces/default/configmaps",
			"User":            user("carol@contoso.com"),
			"AzureResourceId": aksDev,
			"Verb":            "create",
		}},
		{"2024-06-01T11:45:00Z", "r12", "Azure Arc", "create", aksDev, "", "", map[string]any{
			"ObjectRef":      objRef("pods", "exec", "default", "ubuntu-9"),
			"ResponseStatus": map[string]any{"code": 101},
			"RequestURI":     execURI("default", "ubuntu-9", "whoami"),
			"User":           user("dave@contoso.com"),
			"Verb":           "create",
		}},
	}
}

var userColumns = []table.Column{
	{Name: "Username", Type: table.String},
	{Name: "Team", Type: table.String},
	{Name: "RiskScore", Type: table.Long},
	{Name: "IsAdmin", Type: table.Bool},
}

var userRows = [][]any{
	{"alice@contoso.com", "platform", int64(10), true},
	{"bob@contoso.com", "web", int64(30), false},
	{"carol@contoso.com", "data", int64(5), false},
	{"mallory@fabrikam.com", "contractor", int64(90), false},
	{"zoe@contoso.com", "sre", int64(20), true},
	{"alice@contoso.com", "security", int64(15), true},
}

// Table is one table of the dataset.
type Table struct {
	Columns []table.Column
	Rows    [][]any
}

// Tables is the dataset of the golden tests: CloudAuditEvents (AKS audit
// events, in a simplified shape) and Users (for joins).
func Tables() map[string]Table {
	var rows [][]any
	for _, e := range auditEvents() {
		ts, err := time.Parse(time.RFC3339, e.ts)
		if err != nil {
			panic(err)
		}
		rows = append(rows, []any{ts, ts, e.reportID, e.ds, e.op, e.cluster, e.ip, e.ua, e.raw})
	}
	return map[string]Table{
		"CloudAuditEvents": {Columns: auditColumns, Rows: rows},
		"Users":            {Columns: userColumns, Rows: userRows},
	}
}
