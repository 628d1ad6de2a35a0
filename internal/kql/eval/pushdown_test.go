package eval

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// recordingSource records the scan requests it gets.
type recordingSource struct {
	*MemSource
	reqs []table.ScanRequest
}

func (s *recordingSource) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	s.reqs = append(s.reqs, req)
	return s.MemSource.Scan(ctx, req)
}

func TestPushdown(t *testing.T) {
	dt := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	f := func(col string, path []string, op table.Op, v any) table.Filter {
		return table.Filter{Column: col, Path: path, Op: op, Value: v}
	}
	p := func(s ...string) []string { return s }
	tests := []struct {
		name  string
		query string
		want  map[string][]table.Filter // table -> filters
	}{
		{
			name: "microsoft exec query",
			query: `CloudAuditEvents
| where DataSource == "Azure Kubernetes Service"
| where OperationName == "create"
| where RawEventData.ObjectRef.resource == "pods" and RawEventData.ResponseStatus.code == 101
| where RawEventData.ObjectRef.subresource == "exec"
| extend PodName = tostring(RawEventData.ObjectRef.name)
| where PodName startswith "ubuntu"`,
			want: map[string][]table.Filter{"CloudAuditEvents": {
				f("DataSource", nil, table.Eq, "Azure Kubernetes Service"),
				f("OperationName", nil, table.Eq, "create"),
				f("RawEventData", p("ObjectRef", "resource"), table.Eq, "pods"),
				f("RawEventData", p("ResponseStatus", "code"), table.Eq, int64(101)),
				f("RawEventData", p("ObjectRef", "subresource"), table.Eq, "exec"),
			}},
		},
		{
			name: "ago, isnull, startswith, tostring path",
			query: `CloudAuditEvents
| where Timestamp > ago(1d)
| where isnull(RawEventData.ObjectRef.subresource) and isnotnull(RawEventData["User"].username)
| where tostring(RawEventData.ResponseStatus.code) startswith "20"`,
			want: map[string][]table.Filter{"CloudAuditEvents": {
				f("Timestamp", nil, table.Gt, dt("2024-05-31T12:00:00Z")),
				f("RawEventData", p("ObjectRef", "subresource"), table.IsNull, nil),
				f("RawEventData", p("User", "username"), table.IsNotNull, nil),
				f("RawEventData", p("ResponseStatus", "code"), table.StartsWith, "20"),
			}},
		},
		{
			name: "flipped literal, in, between, has, contains, =~, !=",
			query: `CloudAuditEvents
| where "create" == OperationName and datetime(2024-06-01) <= Timestamp
| where ReportId in ("r01", "r02") and IPAddress != "10.0.0.5"
| where TimeGenerated between (datetime(2024-06-01) .. 1d)
| where UserAgent has "kubectl" and UserAgent contains "linux" and DataSource =~ "azure kubernetes service"`,
			want: map[string][]table.Filter{"CloudAuditEvents": {
				f("OperationName", nil, table.Eq, "create"),
				f("Timestamp", nil, table.Ge, dt("2024-06-01T00:00:00Z")),
				f("ReportId", nil, table.In, []any{"r01", "r02"}),
				f("IPAddress", nil, table.Ne, "10.0.0.5"),
				f("TimeGenerated", nil, table.Ge, dt("2024-06-01T00:00:00Z")),
				f("TimeGenerated", nil, table.Le, dt("2024-06-02T00:00:00Z")),
				f("UserAgent", nil, table.Has, "kubectl"),
				f("UserAgent", nil, table.Contains, "linux"),
				f("DataSource", nil, table.EqFold, "azure kubernetes service"),
			}},
		},
		{
			name: "nothing under or/not, nothing after extend",
			query: `CloudAuditEvents
| where OperationName == "get" or OperationName == "delete"
| where not(DataSource == "x")
| where ReportId == "r08"
| extend x = 1
| where IPAddress == "10.0.0.5"`,
			want: map[string][]table.Filter{"CloudAuditEvents": {
				f("ReportId", nil, table.Eq, "r08"),
			}},
		},
		{
			name: "lets: scalar constants and tabular lets are spliced",
			query: `let since = datetime(2024-06-01);
let ops = dynamic(["create", "get"]);
let evts = CloudAuditEvents | where Timestamp >= since;
evts
| where OperationName in (ops)
| where RawEventData.Verb == "create"`,
			want: map[string][]table.Filter{"CloudAuditEvents": {
				f("Timestamp", nil, table.Ge, dt("2024-06-01T00:00:00Z")),
				f("OperationName", nil, table.In, []any{"create", "get"}),
				f("RawEventData", p("Verb"), table.Eq, "create"),
			}},
		},
		{
			name: "join and union legs",
			query: `CloudAuditEvents
| where OperationName == "delete"
| extend Username = tostring(RawEventData.User.username)
| join kind=inner (Users | where RiskScore > 5) on Username
| union (Users | where Team == "sre")`,
			want: map[string][]table.Filter{
				"CloudAuditEvents": {f("OperationName", nil, table.Eq, "delete")},
				"Users":            {f("RiskScore", nil, table.Gt, int64(5)), f("Team", nil, table.Eq, "sre")},
			},
		},
		{
			name: "type mismatches and column comparisons are not pushed",
			query: `Users
| where RiskScore > 1.5 and Username == Team and IsAdmin == true and strlen(Username) > 3 and 5 < RiskScore + 1`,
			want: map[string][]table.Filter{"Users": {
				f("RiskScore", nil, table.Gt, 1.5),
				f("IsAdmin", nil, table.Eq, true),
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &recordingSource{MemSource: fixtureSource()}
			if _, _, err := Query(context.Background(), src, tt.query, Options{Now: testNow}); err != nil {
				t.Fatal(err)
			}
			got := map[string][]table.Filter{}
			for _, r := range src.reqs {
				got[r.Table] = append(got[r.Table], r.Filters...)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("filters (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPushdownSourceMayApplySubset checks that a source applying some of
// the filters gives the same result.
func TestPushdownSourceMayApplySubset(t *testing.T) {
	src := &filteringSource{MemSource: fixtureSource()}
	q := `CloudAuditEvents | where OperationName == "create" and DataSource == "Azure Kubernetes Service" | count`
	res, _, err := Query(context.Background(), src, q, Options{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Rows[0][0]; got != int64(9) {
		t.Fatalf("count = %v, want 9", got)
	}
	if src.applied == 0 {
		t.Fatal("filters were not applied by the source")
	}
}

// filteringSource applies Eq filters on string columns itself.
type filteringSource struct {
	*MemSource
	applied int
}

func (s *filteringSource) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	t := s.Tables[req.Table]
	var rows [][]any
next:
	for _, row := range t.Rows {
		for _, f := range req.Filters {
			i := columnIndex(t.Columns, f.Column)
			if f.Op == table.Eq && len(f.Path) == 0 && t.Columns[i].Type == table.String {
				s.applied++
				if row[i] != f.Value {
					continue next
				}
			}
		}
		rows = append(rows, row)
	}
	return &sliceRows{rows: rows, i: -1}, nil
}
