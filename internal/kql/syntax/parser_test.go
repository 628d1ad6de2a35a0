package syntax

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/kql/table"
)

func mustParse(t *testing.T, src string) *Query {
	t.Helper()
	q, _, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return q
}

func TestParseAllErrorsReported(t *testing.T) {
	src := "T\n| where a ==\n| extend = 5\n| projekt x\n| where b == \"open"
	_, _, err := Parse(src)
	var el *ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("error %v is not an *ErrorList", err)
	}
	want := []string{
		`2:13: expected an expression at end of line, found '|' on the next line`,
		`3:10: expected an expression, found '='`,
		`4:3: unknown operator "projekt"`,
		`5:14: unterminated string literal`,
	}
	if diff := cmp.Diff(want, el.Lines()); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	// The full text shows each line and a caret under the column.
	full := err.Error()
	wantFull := strings.Join([]string{
		`2:13: expected an expression at end of line, found '|' on the next line`,
		`  | where a ==`,
		`              ^`,
		`3:10: expected an expression, found '='`,
		`  | extend = 5`,
		`           ^`,
		`4:3: unknown operator "projekt"`,
		`  | projekt x`,
		`    ^`,
		`5:14: unterminated string literal`,
		`  | where b == "open`,
		`               ^`,
	}, "\n")
	if full != wantFull {
		t.Errorf("Error():\n%s\nwant:\n%s", full, wantFull)
	}
	// Individual errors are reachable with errors.As.
	var one *Error
	if !errors.As(err, &one) || one.Pos.Line != 2 {
		t.Errorf("errors.As(*Error) = %v", one)
	}
}

func TestCaretWithTabsAndUnicode(t *testing.T) {
	src := "T\n|\twhere “é” == ?"
	_, _, err := Parse(src)
	if err == nil {
		t.Fatal("expected an error")
	}
	want := "2:16: expected an expression, found '?'\n  |\twhere “é” == ?\n   \t             ^"
	if err.Error() != want {
		t.Errorf("got:\n%q\nwant:\n%q", err.Error(), want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"", "1:1: query has no tabular expression"},
		{"let x = 1;", "1:11: query has no tabular expression"},
		{"T | where", "1:10: expected an expression, found end of query"},
		{"T | take 1 2", "1:12: expected '|' or end of operator, found number 2"},
		{"T | where x == 'a", "1:16: unterminated string literal"},
		{"T | where x == \"a\\q\"", `1:18: invalid escape sequence \q in string literal`},
		{"T | where x > 5x", `1:15: invalid number literal "5x"`},
		{"T | where x > datetime(2024-01-32)", `1:24: invalid datetime literal "2024-01-32"`},
		{"T | where x > datetime(2024-01-01", "1:24: unterminated literal: missing ')'"},
		{"T | join kind=sideways U on a", `1:15: unknown join kind "sideways"`},
		{"T | join U on a < b", "1:15: join condition must be a column name or $left.Column == $right.Column"},
		{"T | summarize", "1:14: expected an expression, found end of query"},
		{"T | fork (take 1)", `1:5: operator "fork" is not supported`},
		{"T | where a == 1 | ", "1:20: expected an operator after '|', found end of query"},
		{"T | where (a == 1", "1:18: expected ')', found end of query"},
		{"T; U", "1:4: only one tabular expression statement is supported"},
		{"T | where x in ()", "1:17: expected an expression, found ')'"},
		{"T | extend x = dynamic({1: 2})", "1:25: expected a property name, found number 1"},
		{"let v = view () { T }; T", "1:9: views are not supported"},
		{"T | where a == #", "1:16: unexpected character '#'"},
		{"T | project-away", "1:17: expected a column name, found end of query"},
		{"T | parse x with \"a\" \"b\"", "1:25: expected a column name in the parse pattern, found end of query"},
		{"T | extend x = 99999999999999999999", "1:16: integer literal out of range"},
		{"T | extend (a, b) = strlen(x)", "1:21: a tuple assignment needs a function that returns several columns, such as series_decompose_anomalies()"},
		{"T | extend (a, b, c, d, e) = series_decompose(x)", "1:25: series_decompose returns 4 columns (baseline, seasonal, trend, residual), not 5"},
		{"T | summarize (a, b) = arg_max(x, y)", "1:24: a tuple assignment needs a function that returns several columns, such as series_decompose_anomalies()"},
		{"T | make-series n = count() on t in range step 1", "1:37: expected range(start, stop, step) after in, found \"range\""},
		{"T | make-series n = count() on t in range(1, 2) step 1", "1:47: expected ',', found ')'"},
		{"T | top-nested 2 of a with others by count()", "1:35: expected '=', found \"by\""},
	}
	for _, tt := range tests {
		_, _, err := Parse(tt.src)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want %q", tt.src, tt.want)
			continue
		}
		var el *ErrorList
		if !errors.As(err, &el) {
			t.Errorf("Parse(%q): %T is not an *ErrorList", tt.src, err)
			continue
		}
		if got := el.Lines()[0]; got != tt.want {
			t.Errorf("Parse(%q) first error = %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestTypographicQuotesWarn(t *testing.T) {
	q, warns, err := Parse("T\n| where UserAgent has “kubectl” or Verb == ‘get’")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	want := []string{
		`2:23: typographic quotes “kubectl” were treated as "kubectl"`,
		`2:44: typographic quotes ‘get’ were treated as 'get'`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	where := q.Body.(*Pipeline).Ops[0].(*Where)
	or := where.Pred.(*Binary)
	has := or.L.(*Binary)
	if lit := has.R.(*Literal); lit.Value != "kubectl" {
		t.Errorf("literal = %#v", lit.Value)
	}
}

func TestLiterals(t *testing.T) {
	q := mustParse(t, `print a = "x\ty\"\u00e9", b = 'it\'s', c = @"C:\new""", d = @'a''b', e = h"secret",
		f = 1d, g = 1.5h, h = 100ms, i = -30s, j = time(1.02:03:04.5), k = datetime(2024-01-02T03:04:05Z),
		l = dynamic({"x": [1, -2, 2.5, "s", true, null], 'y': {}}), m = long(null), n = 0x10, o = int(-3),
		p = datetime("2024-01-02"), q = real(nan), r = `+"```multi\nline```")
	items := q.Body.(*Print).Items
	got := map[string]any{}
	for _, it := range items {
		got[it.Name] = it.Expr.(*Literal).Value
	}
	want := map[string]any{
		"a": "x\ty\"é", "b": "it's", "c": `C:\new"`, "d": "a'b", "e": "secret",
		"f": 24 * time.Hour, "g": 90 * time.Minute, "h": 100 * time.Millisecond, "i": -30 * time.Second,
		"j": 26*time.Hour + 3*time.Minute + 4500*time.Millisecond,
		"k": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		"l": map[string]any{"x": []any{int64(1), int64(-2), 2.5, "s", true, nil}, "y": map[string]any{}},
		"m": nil, "n": int64(16), "o": int64(-3), "p": time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
		"r": "multi\nline",
	}
	qv := got["q"]
	delete(got, "q")
	if f, ok := qv.(float64); !ok || f == f {
		t.Errorf("real(nan) = %v", qv)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("literals (-want +got):\n%s", diff)
	}
}

func TestParseStructure(t *testing.T) {
	q := mustParse(t, `let n = 5; // comment
let T2 = T | where x > n;
T2
| mv-expand with_itemindex=i c = arr to typeof(string) limit 3
| summarize cnt = count(), arg_max(ts, *) by bin(ts, 1h)
| join kind=leftouter (U | project a) on $left.a == $right.a, b
| union (V), W
| parse s with * "k=" K:long "," *
| sort by cnt desc nulls first, a asc
| top 5 by cnt
| project-rename x = y
| as Result
| render timechart with (title="x")`)
	if len(q.Lets) != 2 || q.Lets[0].Scalar == nil || q.Lets[1].Tabular == nil {
		t.Fatalf("lets = %+v", q.Lets)
	}
	ops := q.Body.(*Pipeline).Ops
	if len(ops) != 10 {
		t.Fatalf("got %d operators", len(ops))
	}
	mv := ops[0].(*MvExpand)
	if mv.WithItemIndex != "i" || mv.Items[0].Name != "c" || mv.Items[0].ToType != table.String || mv.Limit == nil {
		t.Errorf("mv-expand = %+v", mv)
	}
	j := ops[2].(*Join)
	wantOn := []JoinOn{{Left: "a", Right: "a"}, {Left: "b", Right: "b"}}
	if diff := cmp.Diff(wantOn, j.On, cmpIgnorePos); diff != "" || j.Kind != "leftouter" {
		t.Errorf("join on (-want +got):\n%s", diff)
	}
	pr := ops[4].(*ParseOp)
	if len(pr.Parts) != 5 || pr.Parts[2].Column != "K" || pr.Parts[2].Type != table.Long || !pr.Parts[0].Star {
		t.Errorf("parse = %+v", pr.Parts)
	}
	s := ops[5].(*Sort)
	if !s.Keys[0].Desc || s.Keys[0].Nulls != "first" || s.Keys[1].Desc {
		t.Errorf("sort keys = %+v", s.Keys)
	}
}

var cmpIgnorePos = cmp.Comparer(func(a, b Pos) bool { return true })

func TestPrecedence(t *testing.T) {
	q := mustParse(t, `T | where a == 1 or b == 2 and c + 2 * 3 > 4`)
	or := q.Body.(*Pipeline).Ops[0].(*Where).Pred.(*Binary)
	if or.Op != "or" {
		t.Fatalf("top op = %s", or.Op)
	}
	and := or.R.(*Binary)
	gt := and.R.(*Binary)
	plus := gt.L.(*Binary)
	if and.Op != "and" || gt.Op != ">" || plus.Op != "+" || plus.R.(*Binary).Op != "*" {
		t.Errorf("unexpected tree")
	}
}

func TestInspect(t *testing.T) {
	tests := []struct {
		src  string
		want Info
	}{
		{`CloudAuditEvents | where x == 1`, Info{Tables: []string{"CloudAuditEvents"}}},
		{`let T = CloudAuditEvents | where a; T | join (Users) on a | summarize count() by a`,
			Info{Tables: []string{"CloudAuditEvents", "Users"}, HasJoin: true, HasSummarize: true}},
		{`union A, (B | where x in (C | project y)), A`, Info{Tables: []string{"A", "B", "C"}, HasUnion: true}},
		{`A | union B | as X | join (X) on k`, Info{Tables: []string{"A", "B"}, HasUnion: true, HasJoin: true}},
		{`let CloudAuditEvents = CloudAuditEvents | take 1; CloudAuditEvents`, Info{Tables: []string{"CloudAuditEvents"}}},
		{`let x = toscalar(A | count); let y = B; print x`, Info{Tables: []string{"A", "B"}}},
		{`datatable(a:long)[1] | extend b = 2`, Info{}},
	}
	for _, tt := range tests {
		got := Inspect(mustParse(t, tt.src))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Inspect(%q) (-want +got):\n%s", tt.src, diff)
		}
	}
}

func TestHelpers(t *testing.T) {
	for s, want := range map[time.Duration]string{
		0: "00:00:00", time.Hour: "01:00:00", 26*time.Hour + 1500*time.Millisecond: "1.02:00:01.5000000", -90 * time.Second: "-00:01:30",
	} {
		if got := FormatTimespan(s); got != want {
			t.Errorf("FormatTimespan(%v) = %q, want %q", s, got, want)
		}
	}
	if _, ok := ParseDatetime("garbage"); ok {
		t.Error("ParseDatetime(garbage) succeeded")
	}
	if d, ok := ParseTimespan("2"); !ok || d != 48*time.Hour {
		t.Errorf("ParseTimespan(2) = %v, %v", d, ok)
	}
}

// seedQueries returns the golden queries of the evaluator plus a few
// unusual inputs.
func seedQueries(tb testing.TB) []string {
	files, _ := filepath.Glob("../eval/testdata/*/query.kql")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, string(b))
	}
	return append(out,
		"T | where a in~ (\"x\") and b !in (1) and c !between (1 .. 2)",
		"((((T))))", "T | extend x = dynamic([[[[1]]]])", "T | where “x", "let x = view() { T }; x",
		"T | where x == datetime(", "T | project a.b.c[0][\"d\"][-1]", "\xff\xfe", "T | parse x with * \"a\" b:long *",
	)
}

func TestParseNeverPanics(t *testing.T) {
	for _, q := range seedQueries(t) {
		for i := 0; i <= len(q); i++ {
			checkParse(t, q[:i])
		}
	}
	checkParse(t, strings.Repeat("(", 10000)+"T")
	checkParse(t, "T | where "+strings.Repeat("-", 10000)+"1")
	checkParse(t, "T | extend x = dynamic("+strings.Repeat("[", 5000))
}

func checkParse(t testing.TB, src string) {
	q, _, err := Parse(src)
	if err != nil {
		if strings.Contains(err.Error(), "internal parser error") {
			t.Fatalf("Parse(%q) panicked: %v", src, err)
		}
		var el *ErrorList
		if !errors.As(err, &el) || len(el.Errors) == 0 {
			t.Fatalf("Parse(%q): bad error %v", src, err)
		}
		for _, e := range el.Errors {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || strings.Contains(e.Msg, "\n") {
				t.Fatalf("Parse(%q): bad error position/message %v", src, e)
			}
		}
		return
	}
	if q == nil || q.Body == nil {
		t.Fatalf("Parse(%q) returned no query and no error", src)
	}
	Inspect(q)
}

func FuzzParse(f *testing.F) {
	for _, q := range seedQueries(f) {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, src string) {
		checkParse(t, src)
	})
}

// TestMultiOutput checks how a function of several outputs is named: a
// tuple names its first outputs, no name gives Kusto's default names
// (function_argument_output), and each column reads one output.
func TestMultiOutput(t *testing.T) {
	tests := []struct {
		src  string
		want []string // name.output of each item
	}{
		{"T | extend (f, s, b) = series_decompose_anomalies(x, 2.0)", []string{"f.ad_flag", "s.ad_score", "b.baseline"}},
		{"T | extend (f, s) = series_decompose_anomalies(x)", []string{"f.ad_flag", "s.ad_score"}},
		{"T | project series_decompose(y.z)", []string{"series_decompose_y_z_baseline.baseline", "series_decompose_y_z_seasonal.seasonal", "series_decompose_y_z_trend.trend", "series_decompose_y_z_residual.residual"}},
		{"T | extend series_decompose_anomalies(x + 1)", []string{"series_decompose_anomalies_ad_flag.ad_flag", "series_decompose_anomalies_ad_score.ad_score", "series_decompose_anomalies_baseline.baseline"}},
		{"T | extend a = series_decompose_anomalies(x), (p, q) = series_decompose(x)", []string{"a.", "p.baseline", "q.seasonal"}},
	}
	for _, tt := range tests {
		q, _, err := Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		var items []Assign
		switch op := q.Body.(*Pipeline).Ops[0].(type) {
		case *Extend:
			items = op.Items
		case *Project:
			items = op.Items
		}
		var got []string
		for _, it := range items {
			out := ""
			if m, ok := it.Expr.(*Member); ok {
				out = m.Name
			}
			got = append(got, it.Name+"."+out)
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("Parse(%q) items = %v, want %v", tt.src, got, tt.want)
		}
	}
}
