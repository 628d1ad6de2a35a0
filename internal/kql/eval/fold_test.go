package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// resultJSON renders rows as compact JSON, dynamic values included.
func resultJSON(rows [][]any) string {
	out := make([]any, len(rows))
	for i, row := range rows {
		vals := make([]any, len(row))
		for j, v := range row {
			vals[j] = jsonable(v)
		}
		out[i] = vals
	}
	return string(marshal(out))
}

// TestPackAll checks that pack_all(), which has no arguments but reads the
// whole row, is evaluated per row in every context instead of being
// folded into a constant (which used to panic with a nil row).
func TestPackAll(t *testing.T) {
	tests := []struct {
		name, query, want string
	}{
		{"extend", `datatable(a:long)[1] | extend b = pack_all()`, `[[1,{"a":1}]]`},
		{"extend each row", `datatable(a:long)[1, 2, 3] | extend b = pack_all()`, `[[1,{"a":1}],[2,{"a":2}],[3,{"a":3}]]`},
		{"extend sees the input only", `datatable(a:long)[1] | extend b = 2, c = pack_all(), d = pack_all(true)`, `[[1,2,{"a":1},{"a":1}]]`},
		{"chained extend", `datatable(a:long)[1] | extend b = 2 | extend c = pack_all()`, `[[1,2,{"a":1,"b":2}]]`},
		{"project", `datatable(a:long)[1] | project pack_all()`, `[[{"a":1}]]`},
		{"project named", `datatable(a:long, s:string)[1, "x"] | project s, p = pack_all()`, `[["x",{"a":1,"s":"x"}]]`},
		{"summarize make_list", `datatable(a:long)[1, 2] | summarize make_list(pack_all())`, `[[[{"a":1},{"a":2}]]]`},
		{"summarize make_bag", `datatable(a:long, b:string)[1, "x", 2, ""] | summarize make_bag(pack_all(true))`, `[[{"a":1,"b":"x"}]]`}, // the first value of a key
		{"summarize by", `datatable(a:long)[1, 1, 2] | summarize n = count() by p = pack_all()`, `[[{"a":1},2],[{"a":2},1]]`},
		{"arg_max", `datatable(a:long, b:string)[1, "x", 2, "y"] | summarize arg_max(a, pack_all())`, `[[2,{"a":2,"b":"y"}]]`},
		{"ignore null and empty", `datatable(s:string, n:long, d:dynamic)["", 1, dynamic(null), "x", 2, dynamic({"k":1})] | extend p = pack_all(true), q = pack_all(false)`,
			`[["",1,null,{"n":1},{"d":null,"n":1,"s":""}],["x",2,{"k":1},{"d":{"k":1},"n":2,"s":"x"},{"d":{"k":1},"n":2,"s":"x"}]]`},
		{"datetime and timespan", `datatable(t:datetime, d:timespan)[datetime(2024-06-01), 1h] | project p = pack_all()`, `[[{"d":"01:00:00","t":"2024-06-01T00:00:00Z"}]]`},
		{"where", `datatable(a:long)[1, 2] | where pack_all().a == 2`, `[[2]]`},
		{"inside a function", `datatable(a:long)[1, 2] | extend s = tostring(pack_all()), k = bag_keys(pack_all())`, `[[1,"{\"a\":1}",["a"]],[2,"{\"a\":2}",["a"]]]`},
		{"mv-expand", `datatable(a:long, b:long)[1, 2] | mv-expand p = pack_all() | project p`, `[[{"a":1}],[{"b":2}]]`},
		{"sort by", `datatable(a:long)[1, 2] | sort by tostring(pack_all()) desc`, `[[2],[1]]`},
		{"print has no columns", `print p = pack_all()`, `[[{}]]`},
	}
	src := fixtureSource()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := run(t, src, tt.query)
			if err != nil {
				t.Fatalf("%s: %v", tt.query, err)
			}
			if got := resultJSON(res.Rows); got != tt.want {
				t.Errorf("%s:\n got %s\nwant %s", tt.query, got, tt.want)
			}
		})
	}
}

func TestPackAllErrors(t *testing.T) {
	tests := []struct{ query, want string }{
		{`datatable(a:long, b:bool)[1, true] | extend p = pack_all(b)`, `1:58: pack_all() expects a constant bool (ignore_null_empty)`},
		{`datatable(a:long)[1] | extend p = pack_all(1)`, `1:44: pack_all() expects a constant bool (ignore_null_empty)`},
		{`datatable(a:long)[1] | extend p = pack_all(true, false)`, `1:35: function pack_all expects 0 to 1 arguments, got 2`},
		{`datatable(a:long)[1] | summarize p = pack_all()`, `1:38: pack_all() in summarize must be the argument of an aggregation function, such as make_list(pack_all())`},
		{`datatable(a:long)[1] | summarize count(), p = pack_all()`, `1:47: pack_all() in summarize must be the argument of an aggregation function, such as make_list(pack_all())`},
		{`let x = pack_all(); print x`, `1:9: let x must be a constant expression`},
	}
	checkQueryErrors(t, tests)
}

// checkQueryErrors runs each query over the fixture: each must fail with
// a query error whose first line is want.
func checkQueryErrors(t *testing.T, tests []struct{ query, want string }) {
	t.Helper()
	src := fixtureSource()
	for _, tt := range tests {
		_, err := run(t, src, tt.query)
		var el *syntax.ErrorList
		if !errors.As(err, &el) {
			t.Errorf("%s: error %v, want a query error %q", tt.query, err, tt.want)
			continue
		}
		if got := el.Lines()[0]; got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.query, got, tt.want)
		}
	}
}

// foldArgs are constant arguments of every type, to call each function
// with.
var foldArgs = []string{`1`, `"a"`, `dynamic({"k":[1]})`, `true`, `datetime(2024-06-01)`, `1h`}

// argLists returns argument lists of n arguments taken from foldArgs:
// all of them for up to two arguments; for more, the lists that vary one
// argument at a time and those that repeat one value.
func argLists(n int) [][]string {
	if n <= 2 {
		if n == 0 {
			return [][]string{nil}
		}
		var out [][]string
		for _, rest := range argLists(n - 1) {
			for _, a := range foldArgs {
				out = append(out, append(slices.Clone(rest), a))
			}
		}
		return out
	}
	var out [][]string
	for _, a := range foldArgs {
		for i := 0; i < n; i++ {
			l := slices.Repeat([]string{foldArgs[0]}, n)
			l[i] = a
			out = append(out, l)
		}
		out = append(out, slices.Repeat([]string{a}, n))
	}
	return out
}

// callsToAudit returns, for every function of the table, its calls with
// constant arguments (up to 2 more than its minimum).
func callsToAudit() []string {
	names := make([]string, 0, len(functions))
	for n := range functions {
		names = append(names, n)
	}
	slices.Sort(names)
	var calls []string
	for _, name := range names {
		spec := functions[name]
		hi := spec.min + 2
		if spec.max >= 0 && spec.max < hi {
			hi = spec.max
		}
		for n := spec.min; n <= hi; n++ {
			for _, args := range argLists(n) {
				calls = append(calls, name+"("+strings.Join(args, ", ")+")")
			}
		}
	}
	return calls
}

// TestFunctionsFoldOnlyWhatIsConstant audits the function table for the
// bug class of pack_all(): a call whose arguments are all constants (or
// that has none) is folded into a constant by evaluating it once with a
// nil row, which is only right when its value depends on its arguments
// alone. For every function and constant arguments, the call compiled in
// a scope with columns must give, on each row, the value it is folded to;
// functions that read the row or are not deterministic must be marked
// volatile (and then are never folded).
func TestFunctionsFoldOnlyWhatIsConstant(t *testing.T) {
	cols := []table.Column{{Name: "a", Type: table.Long}, {Name: "s", Type: table.String}, {Name: "d", Type: table.Dynamic}}
	rows := [][]any{
		{int64(1), "x", map[string]any{"k": []any{int64(1)}}},
		{int64(2), "", nil},
	}
	checked := 0
	for _, text := range callsToAudit() {
		q, _, err := syntax.Parse("print x = " + text) // named: a function of several outputs stays one call
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		call := q.Body.(*syntax.Print).Items[0].Expr.(*syntax.Call)
		spec := functions[call.Name]
		r := newRunner(context.Background(), fixtureSource(), q.Src, Options{Now: testNow})
		sc := newScope(r, nil, cols)
		var args []*cexpr
		for _, a := range call.Args {
			c, err := sc.compile(a)
			if err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			args = append(args, c)
		}
		c, err := func() (c *cexpr, err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			return sc.compile(call)
		}()
		if err != nil {
			var el *syntax.ErrorList
			if !errors.As(err, &el) {
				t.Errorf("%s: %v", text, err) // compiling (folding) panicked
			}
			continue // wrong argument types
		}
		checked++
		if spec.volatile {
			if c.isConst {
				t.Errorf("%s: volatile function folded into a constant", text)
			}
			continue
		}
		if !c.isConst {
			continue // not folded (e.g. a regex argument compiled later)
		}
		// Build the call again without folding and evaluate it on rows:
		// it must not look at them.
		raw, err := spec.build(&callCtx{sc: sc, call: call, args: args})
		if err != nil {
			t.Errorf("%s: %v", text, err)
			continue
		}
		for i, row := range rows {
			if got, want := keyOf(raw.fn(row)), keyOf(c.val); got != want {
				t.Errorf("%s: folded to %v but gives %v on row %d: it reads the row or is not deterministic; mark it volatile", text, c.val, raw.fn(row), i)
			}
		}
	}
	if checked < len(functions) {
		t.Errorf("only %d calls compiled for %d functions", checked, len(functions))
	}
}

// TestFunctionsNeverPanicOnConstants runs every function with constant
// arguments where rows exist (extend, where, summarize) and where they do
// not (print): no call may reach the evaluator's recover.
func TestFunctionsNeverPanicOnConstants(t *testing.T) {
	src := fixtureSource()
	const rows = `datatable(a:long, s:string, d:dynamic)[1, "x", dynamic({"k":[1]}), 2, "", dynamic(null)]`
	for _, call := range callsToAudit() {
		for _, q := range []string{
			rows + ` | extend r = ` + call,
			rows + ` | where isnotnull(` + call + `)`,
			rows + ` | summarize make_list(` + call + `)`,
			`print ` + call,
		} {
			_, _, err := Query(context.Background(), src, q, Options{Now: testNow, MaxRows: 100})
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Errorf("%s: %v", q, err)
			}
		}
	}
}

// panicSource panics while the evaluator reads it: a stand-in for any bug
// that reaches the recover in Run.
type panicSource struct {
	*MemSource
	value any
}

func (s panicSource) Scan(context.Context, table.ScanRequest) (table.Rows, error) {
	panic(s.value)
}

// TestInternalErrorIsOneLine checks that a panic inside Run is an error
// of one line, with the panic's value but no stack trace, and that the
// stack is logged at debug level only.
func TestInternalErrorIsOneLine(t *testing.T) {
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{"string", "boom", "kql: internal error: boom"},
		{"error", errors.New("bad state"), "kql: internal error: bad state"},
		{"multi-line value", "first line\n\tsecond line\n", "kql: internal error: first line second line"},
		{"runtime error", nil, "kql: internal error: runtime error: index out of range [3] with length 0"},
	}
	var logged strings.Builder
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logged.Reset()
			var src table.Source = panicSource{MemSource: fixtureSource(), value: tt.value}
			if tt.value == nil {
				src = indexPanicSource{fixtureSource()}
			}
			_, err := run(t, src, `CloudAuditEvents | take 1`)
			if err == nil {
				t.Fatal("no error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %q\nwant %q", got, tt.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "goroutine") {
				t.Errorf("error is not one line: %q", err.Error())
			}
			if !strings.Contains(logged.String(), "goroutine") || !strings.Contains(logged.String(), "level=DEBUG") {
				t.Errorf("the stack is not logged at debug level:\n%s", logged.String())
			}
		})
	}
	// Above debug level nothing is logged.
	logged.Reset()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if _, err := run(t, panicSource{MemSource: fixtureSource(), value: "boom"}, `CloudAuditEvents`); err == nil {
		t.Fatal("no error")
	}
	if logged.Len() != 0 {
		t.Errorf("logged above debug level:\n%s", logged.String())
	}
}

// indexPanicSource fails with a runtime error, as a real bug would.
type indexPanicSource struct{ *MemSource }

func (s indexPanicSource) Scan(context.Context, table.ScanRequest) (table.Rows, error) {
	var row []any
	i := 3
	_ = row[i]
	return nil, nil
}

// TestWindowFunctionsNeverFold covers the siblings of pack_all() outside
// the function table: row_number(), prev() and next() have no arguments
// or constant ones, yet their value depends on the row's place, so they
// must never be folded into a constant (prev(1) is null on the first row
// and 1 after it); where there is no serialized row set they are an
// error at their position, never a panic.
func TestWindowFunctionsNeverFold(t *testing.T) {
	const rows = `range x from 1 to 3 step 1`
	tests := []struct{ name, query, want string }{
		{"row_number", rows + ` | extend r = row_number()`, `[[1,1],[2,2],[3,3]]`},
		{"row_number constant start", rows + ` | extend r = row_number(10)`, `[[1,10],[2,11],[3,12]]`},
		{"row_number constant restart", rows + ` | extend r = row_number(1, true)`, `[[1,1],[2,1],[3,1]]`},
		{"prev constant", rows + ` | extend p = prev(1)`, `[[1,null],[2,1],[3,1]]`},
		{"prev constant default", rows + ` | extend p = prev(7, 1, 5)`, `[[1,5],[2,7],[3,7]]`},
		{"next constant", rows + ` | extend n = next(1)`, `[[1,1],[2,1],[3,null]]`},
		{"next constant offset", rows + ` | extend n = next("a", 2)`, `[[1,"a"],[2,""],[3,""]]`},
		{"inside a constant expression", rows + ` | extend s = strcat("r", row_number())`, `[[1,"r1"],[2,"r2"],[3,"r3"]]`},
		{"serialize", rows + ` | serialize r = row_number() | where r > 1`, `[[2,2],[3,3]]`},
		{"project", rows + ` | project p = prev(0, 1, -1)`, `[[-1],[0],[0]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := run(t, fixtureSource(), tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if got := resultJSON(res.Rows); got != tt.want {
				t.Errorf("%s:\n got %s\nwant %s", tt.query, got, tt.want)
			}
		})
	}
	errs := []struct{ query, want string }{
		{`print r = row_number()`, `1:11: row_number() can only be used in extend, serialize or project on a serialized row set`},
		{`print p = prev(1)`, `1:11: prev() can only be used in extend, serialize or project on a serialized row set`},
		{`print n = next(1)`, `1:11: next() can only be used in extend, serialize or project on a serialized row set`},
		{rows + ` | where next(1) == 1`, `1:36: next() can only be used in extend, serialize or project on a serialized row set`},
		{rows + ` | summarize make_list(row_number())`, `1:50: row_number() can only be used in extend, serialize or project on a serialized row set`},
		{`let n = row_number(); print n`, `1:9: row_number() can only be used in extend, serialize or project on a serialized row set`},
	}
	checkQueryErrors(t, errs)
}
