package eval

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

func run(t *testing.T, src table.Source, q string) (*Result, error) {
	t.Helper()
	res, _, err := Query(context.Background(), src, q, Options{Now: testNow})
	return res, err
}

func TestQueryErrors(t *testing.T) {
	tests := []struct{ query, want string }{
		{`NoSuchTable | take 1`, `1:1: unknown table "NoSuchTable"`},
		{`CloudAuditEvents | where Foo == 1`, `1:26: unknown column or variable "Foo"`},
		{`CloudAuditEvents | extend x = nosuchfn(1)`, `1:31: unknown function "nosuchfn"`},
		{`CloudAuditEvents | extend x = strlen("a", "b")`, `1:31: function strlen expects 1 argument, got 2`},
		{`CloudAuditEvents | extend x = iff(true, 1)`, `1:31: function iff expects 3 arguments, got 2`},
		{`CloudAuditEvents | where UserAgent has "kubectl`, `1:40: unterminated string literal`},
		{`CloudAuditEvents | where Timestamp > 5`, `1:36: cannot compare datetime with long using >`},
		{`CloudAuditEvents | extend x = ReportId + 1`, `1:40: operator + cannot be applied to string and long`},
		{`CloudAuditEvents | extend x = "a" + "b"`, `1:35: operator + cannot be applied to string and string (use strcat to join strings)`},
		{`CloudAuditEvents | where strlen(ReportId)`, `1:26: where predicate must be bool, not long`},
		{`CloudAuditEvents | summarize max(count())`, `1:34: aggregation functions cannot be nested (count)`},
		{`CloudAuditEvents | summarize x = Timestamp`, `1:34: column "Timestamp" must be used inside an aggregation function (or listed after by)`},
		{`CloudAuditEvents | project-away Nope`, `1:33: unknown column "Nope"`},
		{`CloudAuditEvents | project-rename a = Nope`, `1:39: unknown column "Nope"`},
		{`CloudAuditEvents | take ReportId`, `1:25: unknown column or variable "ReportId"`},
		{`CloudAuditEvents | extend x = extract("(", 1, ReportId)`, "1:39: invalid regular expression: error parsing regexp: missing closing ): `(`"},
		{`CloudAuditEvents | where ReportId matches regex "["`, "1:49: invalid regular expression: error parsing regexp: missing closing ]: `[`"},
		{`let x = CloudAuditEvents; x | where x == 1`, `1:37: "x" is a tabular expression, not a scalar`},
		{`let x = 1; x | take 1`, `1:12: "x" is a scalar, not a table`},
		{`CloudAuditEvents | join (Users) on $left.ReportId == $right.Nope`, `1:51: join: unknown column "Nope" on the right side`},
		{`CloudAuditEvents | join (Users) on $left.ReportId == $right.RiskScore`, `1:51: join: key ReportId is string on the left but long on the right`},
		{`CloudAuditEvents | project a = 1, a = 2`, `1:35: duplicate column name "a" in project`},
		{`CloudAuditEvents | extend x = Tostring(1)`, `1:31: unknown function "Tostring" (function names are case-sensitive: did you mean tostring?)`},
	}
	src := fixtureSource()
	for _, tt := range tests {
		_, err := run(t, src, tt.query)
		if err == nil {
			t.Errorf("%s: no error, want %q", tt.query, tt.want)
			continue
		}
		var el *syntax.ErrorList
		if !errors.As(err, &el) {
			t.Errorf("%s: error %T %v is not an *syntax.ErrorList", tt.query, err, err)
			continue
		}
		if got := el.Lines()[0]; got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.query, got, tt.want)
		}
		// The full text shows the query line and a caret.
		if lines := strings.Split(el.Error(), "\n"); len(lines) < 3 || !strings.HasSuffix(lines[2], "^") {
			t.Errorf("%s: formatted error lacks the caret line:\n%s", tt.query, el.Error())
		}
	}
}

func TestQueryReturnsWarningsOnFailure(t *testing.T) {
	_, warns, err := Query(context.Background(), fixtureSource(), "CloudAuditEvents | where Nope has “x”", Options{})
	if err == nil || len(warns) != 1 {
		t.Fatalf("err = %v, warns = %v", err, warns)
	}
}

func TestCheck(t *testing.T) {
	src := &recordingSource{MemSource: fixtureSource()}
	q, _, err := syntax.Parse(`CloudAuditEvents | where OperationName == "create" | join (Users | where Nope > 1) on $left.ReportId == $right.Username`)
	if err != nil {
		t.Fatal(err)
	}
	err = Check(context.Background(), src, q)
	if err == nil || !strings.HasPrefix(err.Error(), `1:74: unknown column or variable "Nope"`) {
		t.Fatalf("Check = %v", err)
	}
	q, _, _ = syntax.Parse(`CloudAuditEvents | where OperationName == "create" | summarize count() by OperationName`)
	if err := Check(context.Background(), src, q); err != nil {
		t.Fatalf("Check = %v", err)
	}
}

func TestMemSourceNormalizes(t *testing.T) {
	m := NewMemSource(map[string]*MemTable{
		"T": {
			Columns: []table.Column{
				{Name: "n", Type: table.Long}, {Name: "t", Type: table.DateTime},
				{Name: "d", Type: table.Dynamic}, {Name: "s", Type: table.String},
			},
			Rows: [][]any{
				{3, "2024-01-02T03:04:05+01:00", map[string]any{"k": 1, "l": []string{"a"}}, "x"},
				{int32(4), time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600)), `{"raw":true}`},
			},
		},
	})
	res, err := run(t, m, `T | extend k = d.k + 1, l0 = d.l[0] | project n, t, k, l0, s`)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]any{
		{int64(3), time.Date(2024, 1, 2, 2, 4, 5, 0, time.UTC), int64(2), "a", "x"},
		{int64(4), time.Date(2023, 12, 31, 23, 0, 0, 0, time.UTC), nil, nil, nil},
	}
	if diff := cmp.Diff(want, res.Rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if err := m.AppendRows("T", []any{5}); err != nil || len(m.Tables["T"].Rows) != 3 {
		t.Errorf("AppendRows: %v", err)
	}
	if _, err := m.Schema(context.Background(), "nope"); err == nil {
		t.Error("Schema(nope) succeeded")
	}
}

func TestResultValuesAreGoNative(t *testing.T) {
	res, err := run(t, fixtureSource(), `CloudAuditEvents | take 1
		| project Timestamp, ReportId, RawEventData, n = 1, r = 1.5, b = true, ts = 1h, i = toint(2)`)
	if err != nil {
		t.Fatal(err)
	}
	row := res.Rows[0]
	types := []string{"time.Time", "string", "map[string]interface {}", "int64", "float64", "bool", "time.Duration", "int64"}
	for i, v := range row {
		if got := fmt.Sprintf("%T", v); got != types[i] {
			t.Errorf("column %s: %s, want %s", res.Columns[i].Name, got, types[i])
		}
	}
	if tm := row[0].(time.Time); tm.Location() != time.UTC {
		t.Errorf("datetime not UTC: %v", tm.Location())
	}
}

func TestContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := Query(ctx, fixtureSource(), `CloudAuditEvents | count`, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestMaxRows(t *testing.T) {
	_, _, err := Query(context.Background(), fixtureSource(), `CloudAuditEvents | join kind=inner (CloudAuditEvents) on DataSource`, Options{MaxRows: 50})
	if err == nil || !strings.Contains(err.Error(), "limit of 50 rows") {
		t.Fatalf("err = %v", err)
	}
}

// badSource returns rows of the wrong width.
type badSource struct{ *MemSource }

func (b badSource) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	return &sliceRows{rows: [][]any{{1}}, i: -1}, nil
}

func TestBadSource(t *testing.T) {
	_, err := run(t, badSource{fixtureSource()}, `Users | count`)
	if err == nil || !strings.Contains(err.Error(), "row of 1 values for 4 columns") {
		t.Fatalf("err = %v", err)
	}
}

func TestNowDefaultsToCurrentTime(t *testing.T) {
	res, _, err := Query(context.Background(), fixtureSource(), `print now()`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(res.Rows[0][0].(time.Time)); d < 0 || d > time.Minute {
		t.Errorf("now() is %v away from time.Now()", d)
	}
}

func TestConcurrentRuns(t *testing.T) {
	src := fixtureSource()
	q, _, err := syntax.Parse(`CloudAuditEvents | where UserAgent has "kubectl" | summarize count() by OperationName`)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			_, err := Run(context.Background(), src, q, Options{Now: testNow})
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
