package eval

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadColumns(t *testing.T) {
	tests := []struct {
		query string
		want  []string // the columns the first scan asks for; nil for all
	}{
		{`CloudAuditEvents | where OperationName == "create" | project ReportId, IPAddress`, []string{"ReportId", "OperationName", "IPAddress"}},
		{`CloudAuditEvents | summarize count() by OperationName`, []string{"OperationName"}},
		{`CloudAuditEvents | where IPAddress startswith "203" | count`, []string{"IPAddress"}},
		{`CloudAuditEvents | extend u = tostring(RawEventData.User.username) | distinct u`, []string{"RawEventData"}},
		// The result has every column: nothing can be left out.
		{`CloudAuditEvents | where OperationName == "create"`, nil},
		{`CloudAuditEvents | project-away ReportId | project OperationName`, nil},
		{`CloudAuditEvents | extend p = pack_all() | project p`, nil},
		{`CloudAuditEvents | join kind=inner (Users) on $left.OperationName == $right.Username | project ReportId`, nil},
		{`CloudAuditEvents | where OperationName in ((CloudAuditEvents | project OperationName)) | count`, []string{"OperationName"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			src := &recordingSource{MemSource: fixtureSource()}
			full, _, err := Query(context.Background(), fixtureSource(), tt.query, Options{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := Query(context.Background(), src, tt.query, Options{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if len(src.reqs) == 0 {
				t.Fatal("no scan")
			}
			if diff := cmp.Diff(tt.want, src.reqs[len(src.reqs)-1].Columns); diff != "" {
				t.Errorf("columns asked (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(full, got); diff != "" {
				t.Errorf("result changed (-all columns +asked columns):\n%s", diff)
			}
		})
	}
}
