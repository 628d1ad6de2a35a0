package audit_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/audit"
)

// TestAzureDiagnosticsRows checks the legacy table's rows for one admin
// event and one get: log_s is the event as the API server wrote it, the
// resource columns come from the AKS resource id as Azure writes them,
// and the admin event has a kube-audit-admin row too.
func TestAzureDiagnosticsRows(t *testing.T) {
	e, err := audit.ParseEvent([]byte(ev1))
	if err != nil {
		t.Fatal(err)
	}
	e.Cluster, e.ClusterResourceID = "aks1", "/subscriptions/0000-1111/resourceGroups/rg-Prod/providers/Microsoft.ContainerService/managedClusters/aks1"
	get, err := audit.ParseEvent([]byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"g1","stage":"ResponseComplete","verb":"get","stageTimestamp":"2025-05-01T11:00:00Z","user":{"username":"bob"}}`))
	if err != nil {
		t.Fatal(err)
	}
	get.Cluster = "kind"
	src := audit.NewBatchSource([]audit.Event{e, get})
	cols, _ := audit.Schema(audit.AzureDiagnostics)
	var got []map[string]any
	for _, r := range rows(t, src, audit.AzureDiagnostics) {
		m := map[string]any{}
		for i, c := range cols {
			m[c.Name] = r[i]
		}
		got = append(got, m)
	}
	aks := map[string]any{
		"TimeGenerated": time.Date(2025, 5, 1, 10, 0, 0, 500000000, time.UTC), "Category": "kube-audit", "log_s": ev1,
		"ResourceId":     "/SUBSCRIPTIONS/0000-1111/RESOURCEGROUPS/RG-PROD/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS1",
		"_ResourceId":    e.ClusterResourceID,
		"SubscriptionId": "0000-1111", "ResourceGroup": "RG-PROD", "Resource": "AKS1",
		"ResourceProvider": "MICROSOFT.CONTAINERSERVICE", "ResourceType": "MANAGEDCLUSTERS",
		"OperationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
		"SourceSystem":  "Azure", "Cluster": "aks1", "Type": "AzureDiagnostics",
	}
	admin := map[string]any{}
	for k, v := range aks {
		admin[k] = v
	}
	admin["Category"] = "kube-audit-admin"
	other := map[string]any{
		"TimeGenerated": time.Date(2025, 5, 1, 11, 0, 0, 0, time.UTC), "Category": "kube-audit",
		"log_s":      `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"g1","stage":"ResponseComplete","verb":"get","user":{"username":"bob"},"stageTimestamp":"2025-05-01T11:00:00Z"}`,
		"ResourceId": "", "_ResourceId": "", "SubscriptionId": "", "ResourceGroup": "", "Resource": "",
		"ResourceProvider": "", "ResourceType": "", "OperationName": "", "SourceSystem": "Azure",
		"Cluster": "kind", "Type": "AzureDiagnostics",
	}
	if d := cmp.Diff([]map[string]any{aks, other, admin}, got); d != "" {
		t.Error(d)
	}
	for _, r := range got {
		if !json.Valid([]byte(r["log_s"].(string))) {
			t.Errorf("log_s is not JSON: %s", r["log_s"])
		}
	}
	// AKSAuditAdmin leaves out the get; its Type names it.
	adm := rows(t, src, audit.AKSAuditAdmin)
	if len(adm) != 1 || adm[0][2] != "a1" || adm[0][18] != "AKSAuditAdmin" {
		t.Errorf("AKSAuditAdmin rows: %v", adm)
	}
}

func TestIsAdmin(t *testing.T) {
	for verb, want := range map[string]bool{"get": false, "list": false, "watch": true, "create": true, "patch": true, "": true} {
		raw := `{"kind":"Event","auditID":"x"}`
		if verb != "" {
			raw = `{"kind":"Event","auditID":"x","verb":"` + verb + `"}`
		}
		e, err := audit.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := audit.IsAdmin(&e); got != want {
			t.Errorf("verb %q: IsAdmin %v", verb, got)
		}
	}
}
