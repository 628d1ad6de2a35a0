package eval_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

func Example() {
	src := eval.NewMemSource(map[string]*eval.MemTable{
		"Events": {
			Columns: []table.Column{
				{Name: "Timestamp", Type: table.DateTime},
				{Name: "UserAgent", Type: table.String},
				{Name: "RawEventData", Type: table.Dynamic},
			},
			Rows: [][]any{
				{time.Date(2024, 6, 1, 8, 0, 0, 0, time.UTC), "kubectl/v1.30.0 (linux/amd64)", map[string]any{"User": map[string]any{"username": "alice"}}},
				{time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC), "Mozilla/5.0", map[string]any{"User": map[string]any{"username": "bob"}}},
			},
		},
	})
	res, warns, err := eval.Query(context.Background(), src,
		`Events | where UserAgent has “kubectl” | project Timestamp, User = tostring(RawEventData.User.username)`,
		eval.Options{Now: time.Date(2024, 6, 2, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range warns {
		fmt.Println("warning:", w)
	}
	fmt.Println(res.Columns)
	for _, row := range res.Rows {
		fmt.Println(row[0].(time.Time).Format(time.RFC3339), row[1])
	}
	// Output:
	// warning: 1:30: typographic quotes “kubectl” were treated as "kubectl"
	// [{Timestamp datetime} {User string}]
	// 2024-06-01T08:00:00Z alice
}

func ExampleQuery_error() {
	src := eval.NewMemSource(nil)
	_, _, err := eval.Query(context.Background(), src, "Events\n| where x == 1", eval.Options{})
	fmt.Println(err)
	// Output:
	// 1:1: unknown table "Events"
	//   Events
	//   ^
}

func Example_inspect() {
	q, _, err := syntax.Parse(`let recent = CloudAuditEvents | where Timestamp > ago(1d);
recent | join kind=inner (Identities) on $left.User == $right.Upn | summarize count() by User`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", syntax.Inspect(q))
	// Output:
	// {Tables:[CloudAuditEvents Identities] HasJoin:true HasUnion:false HasSummarize:true}
}
