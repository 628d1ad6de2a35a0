package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/audittest"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// testEvents returns fixture events plus generated ones, tagged with
// clusters of every DataSource kind.
func testEvents(t *testing.T) []audit.Event {
	t.Helper()
	var all []audit.Event
	ids := []string{
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1",
		"arn:aws:eks:eu-west-1:123456789012:cluster/eks1",
		"//container.googleapis.com/projects/p/locations/l/clusters/gke1",
		"",
	}
	for i, dir := range []string{"falco-k8s-audit", "panther-k8s-audit"} {
		for j, f := range audittest.Files(t, dir) {
			evs, _ := decodeFile(t, f)
			for k := range evs {
				evs[k].ClusterResourceID = ids[(i+j)%len(ids)]
				evs[k].Cluster = audit.ClusterName(evs[k].ClusterResourceID)
			}
			all = append(all, evs...)
		}
	}
	var b bytes.Buffer
	if err := gen.New(7, gen.Options{}).WriteJSONL(&b, 3000); err != nil {
		t.Fatal(err)
	}
	evs, st, err := audit.DecodeAll(&b, audit.Options{Cluster: "gen", ClusterResourceID: ids[0]})
	if err != nil || st.Rejected != 0 {
		t.Fatal(err, st)
	}
	return append(all, evs...)
}

func rows(t *testing.T, src table.Source, name string, filters ...table.Filter) [][]any {
	t.Helper()
	r, err := src.Scan(context.Background(), table.ScanRequest{Table: name, Filters: filters})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out [][]any
	for r.Next() {
		out = append(out, append([]any(nil), r.Row()...))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestViewsFollowContract(t *testing.T) {
	evs := testEvents(t)
	src := audit.NewBatchSource(evs)
	if d := cmp.Diff([]string{"AKSAudit", "AKSAuditAdmin", "AzureDiagnostics", "CloudAuditEvents", "KubeAudit"}, audit.Tables()); d != "" {
		t.Error(d)
	}
	admin := 0
	for i := range evs {
		if audit.IsAdmin(&evs[i]) {
			admin++
		}
	}
	if admin == 0 || admin == len(evs) {
		t.Fatalf("%d admin events of %d: the test needs both kinds", admin, len(evs))
	}
	for _, name := range audit.Tables() {
		cols, err := src.Schema(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		got := rows(t, src, name)
		want := len(evs)
		switch name {
		case audit.AKSAuditAdmin:
			want = admin
		case audit.AzureDiagnostics:
			want = len(evs) + admin
		}
		if len(got) != want {
			t.Fatalf("%s: %d rows for %d events, want %d", name, len(got), len(evs), want)
		}
		for _, r := range got {
			if err := audittest.CheckRow(cols, r); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	if _, err := src.Schema(context.Background(), "Nope"); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Errorf("unknown table: %v", err)
	}
}

func TestCloudAuditEventsRow(t *testing.T) {
	e, _ := audit.ParseEvent([]byte(ev1))
	e.Cluster, e.ClusterResourceID = "aks1", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1"
	got := rows(t, audit.NewBatchSource([]audit.Event{e}), audit.CloudAuditEvents)[0]
	cols, _ := audit.Schema(audit.CloudAuditEvents)
	row := map[string]any{}
	for i, c := range cols {
		row[c.Name] = got[i]
	}
	ts := time.Date(2025, 5, 1, 10, 0, 0, 500000000, time.UTC)
	want := map[string]any{
		"Timestamp": ts, "TimeGenerated": ts, "ReportId": "a1", "DataSource": "Azure Kubernetes Service",
		"ActionType": "KubernetesCreate", "OperationName": "create", "AzureResourceId": e.ClusterResourceID,
		"ResourceId": e.ClusterResourceID, "IPAddress": "20.1.2.3", "UserAgent": "kubectl/v1.32.0",
		"Cluster": "aks1", "AdditionalFields": map[string]any{"Cluster": "aks1"},
		"IsAnonymousProxy": nil, "CountryCode": "", "City": "", "Isp": "",
		"RawEventData": map[string]any{
			"Kind": "Event", "ApiVersion": "audit.k8s.io/v1", "Level": "Metadata", "AuditId": "a1",
			"Stage": "ResponseComplete", "RequestURI": "/api/v1/namespaces/default/pods/p/exec?command=sh",
			"Verb": "create",
			"User": map[string]any{"username": "alice@contoso.com", "groups": []any{"system:authenticated"},
				"extra": map[string]any{"oid": []any{"0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6"}}},
			"SourceIPs": []any{"20.1.2.3", "10.0.0.1"}, "UserAgent": "kubectl/v1.32.0",
			"ObjectRef": map[string]any{"resource": "pods", "subresource": "exec", "namespace": "default",
				"name": "p", "apiVersion": "v1"},
			"ResponseStatus":           map[string]any{"metadata": map[string]any{}, "code": int64(101)},
			"RequestReceivedTimestamp": "2025-05-01T10:00:00.000001Z", "StageTimestamp": "2025-05-01T10:00:00.500000Z",
			"Annotations":     map[string]any{"authorization.k8s.io/decision": "allow"},
			"AzureResourceId": e.ClusterResourceID, "principaloid": "0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6",
		},
	}
	if d := cmp.Diff(want, row); d != "" {
		t.Error(d)
	}
}

func TestDataSourceAndActionType(t *testing.T) {
	for id, want := range map[string]string{
		"/subscriptions/s/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/a": audit.DataSourceAKS,
		"arn:aws:eks:us-east-1:1:cluster/x":                                     audit.DataSourceEKS,
		"arn:aws-us-gov:eks:us-gov-west-1:1:cluster/x":                          audit.DataSourceEKS,
		"//container.googleapis.com/projects/p/zones/z/clusters/c":              audit.DataSourceGKE,
		"projects/p/locations/l/clusters/c":                                     audit.DataSourceGKE,
		"/subscriptions/s/providers/Microsoft.Kubernetes/connectedClusters/arc": audit.DataSourceGeneric,
		"": audit.DataSourceGeneric,
	} {
		if got := audit.DataSource(id); got != want {
			t.Errorf("%s: %s", id, got)
		}
	}
	for verb, want := range map[string]string{"create": "KubernetesCreate", "deletecollection": "KubernetesDeletecollection", "": "Kubernetes"} {
		if got := audit.ActionType(verb); got != want {
			t.Errorf("%s: %s", verb, got)
		}
	}
}

// rowObject renders a table row as an exported JSON object, the way
// Azure Monitor or Defender XDR exports it.
func rowObject(t *testing.T, name string, row []any) []byte {
	cols, _ := audit.Schema(name)
	m := map[string]any{}
	for i, c := range cols {
		v := row[i]
		if tm, ok := v.(time.Time); ok {
			v = tm.Format(time.RFC3339Nano)
		}
		m[c.Name] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExportedRowsRoundTrip converts events to AKSAudit and
// CloudAuditEvents rows, exports them as JSON, decodes them back, and
// checks that the tables see the same events.
func TestExportedRowsRoundTrip(t *testing.T) {
	evs := testEvents(t)
	for _, name := range []string{audit.CloudAuditEvents, audit.AKSAudit} {
		var lines bytes.Buffer
		for _, r := range rows(t, audit.NewBatchSource(evs), name) {
			lines.Write(rowObject(t, name, r))
			lines.WriteByte('\n')
		}
		back, st, err := audit.DecodeAll(&lines, audit.Options{})
		if err != nil || len(back) != len(evs) || st.Rejected != 0 {
			t.Fatalf("%s: %d of %d back, %+v, %v", name, len(back), len(evs), st, err)
		}
		want := rows(t, audit.NewBatchSource(evs), name)
		got := rows(t, audit.NewBatchSource(back), name)
		for i := range want {
			if d := cmp.Diff(want[i], got[i]); d != "" {
				t.Fatalf("%s row %d: %s", name, i, d)
			}
		}
	}
}
