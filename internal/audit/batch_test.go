package audit

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// The batch source's own filtering must never drop a row the evaluator
// would keep: for every table and filter, the rows it returns with the
// filter must include every row without it that the filter's semantics
// keep. Compared here against an unfiltered scan checked by hand.
func TestBatchSourceFiltersAreSafe(t *testing.T) {
	raw := []string{
		`{"kind":"Event","auditID":"a","stage":"ResponseComplete","verb":"create","requestURI":"/api/v1/namespaces/ns/pods/p/exec?command=id","user":{"username":"alice"},"objectRef":{"resource":"pods","namespace":"ns","name":"p","subresource":"exec"},"responseStatus":{"code":101}}`,
		`{"kind":"Event","auditID":"b","stage":"ResponseComplete","verb":"get","user":{"username":"bob"},"objectRef":{"resource":"pods","namespace":"ns","name":"q","subresource":""},"responseStatus":{"code":200}}`,
		`{"kind":"Event","auditID":"c","stage":"ResponseStarted","verb":"list","objectRef":{"resource":"secrets"}}`,
		`{"kind":"Event","auditID":"d","stage":"ResponseComplete","verb":"watch"}`,
	}
	var events []Event
	for _, r := range raw {
		e, err := ParseEvent([]byte(r))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	src := NewBatchSource(events)
	filters := map[string][]table.Filter{
		KubeAudit: {
			{Column: "verb", Op: table.Eq, Value: "create"},
			{Column: "verb", Op: table.In, Value: []any{"get", "list"}},
			{Column: "objectRef", Path: []string{"subresource"}, Op: table.IsNull},
			{Column: "objectRef", Path: []string{"subresource"}, Op: table.IsNotNull},
			{Column: "responseStatus", Path: []string{"code"}, Op: table.Eq, Value: int64(101)},
			{Column: "responseStatus", Path: []string{"code"}, Op: table.Eq, Value: "200"},
			{Column: "user", Path: []string{"username"}, Op: table.Eq, Value: "bob"},
			{Column: "objectRef", Path: []string{"resource"}, Op: table.Eq, Value: ""},
		},
		CloudAuditEvents: {
			{Column: "OperationName", Op: table.Eq, Value: "get"},
			{Column: "RawEventData", Path: []string{"ObjectRef", "resource"}, Op: table.Eq, Value: "pods"},
		},
		AKSAudit: {
			{Column: "ObjectRef", Path: []string{"subresource"}, Op: table.Eq, Value: "exec"},
		},
	}
	// want lists the audit ids each filter must keep at least.
	want := map[string][]string{
		"KubeAudit/0": {"a"}, "KubeAudit/1": {"b", "c"}, "KubeAudit/2": {"c", "d"}, "KubeAudit/3": {"a", "b"},
		"KubeAudit/4": {"a"}, "KubeAudit/5": {"b"}, "KubeAudit/6": {"b"}, "KubeAudit/7": {"d"},
		"CloudAuditEvents/0": {"b"}, "CloudAuditEvents/1": {"a", "b"}, "AKSAudit/0": {"a"},
	}
	for tbl, fs := range filters {
		cols, _ := Schema(tbl)
		idCol := -1
		for i, c := range cols {
			if c.Name == "auditID" || c.Name == "ReportId" || c.Name == "AuditId" {
				idCol = i
			}
		}
		for i, f := range fs {
			rows, err := src.Scan(context.Background(), table.ScanRequest{Table: tbl, Filters: []table.Filter{f}})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for rows.Next() {
				got[fmt.Sprint(rows.Row()[idCol])] = true
			}
			for _, id := range want[fmt.Sprintf("%s/%d", tbl, i)] {
				if !got[id] {
					t.Errorf("%s filter %+v dropped event %s", tbl, f, id)
				}
			}
		}
	}
}

// TestColumnMapper checks that a Mapper narrowed to some columns fills
// them exactly as the full Mapper does, and leaves the others nil.
func TestColumnMapper(t *testing.T) {
	raw := []byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns/pods","verb":"create","user":{"username":"alice","extra":{"oid":["6f1c2b7e-93a4-4c1e-8f0a-2d4b5c6e7f80"]}},"sourceIPs":["10.0.0.1"],"userAgent":"kubectl/v1.30","objectRef":{"resource":"pods","namespace":"ns","name":"p"},"responseStatus":{"code":201},"requestObject":{"spec":{"containers":[{"name":"c"}]}},"stageTimestamp":"2025-05-31T12:00:00.000001Z"}`)
	e, err := ParseEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	e.Cluster, e.ClusterResourceID = "c1", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1"
	for _, name := range Tables() {
		cols, _ := Schema(name)
		full, _ := NewMapper(name)
		want := append([]any(nil), full.Row(&e)...)
		for i, c := range cols {
			m, err := NewColumnMapper(name, []string{c.Name})
			if err != nil {
				t.Fatal(err)
			}
			got := m.Row(&e)
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("%s.%s = %#v narrowed, %#v in full", name, c.Name, got[i], want[i])
			}
		}
	}
	m, _ := NewColumnMapper(KubeAudit, []string{"verb"})
	row := m.Row(&e)
	if row[6] != "create" || row[13] != nil {
		t.Errorf("narrowed to verb: verb = %v, requestObject = %v (want create, nil)", row[6], row[13])
	}
}
