// Package hunt runs KQL hunting queries over the event store, and holds
// kdfir's built-in hunting library.
package hunt

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/sqlc"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
	"github.com/kdfir/kdfir/internal/store"
)

//go:embed queries/*.kql
var library embed.FS

// Builtin is one query of the library.
type Builtin struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Query       string `json:"query"`
	// Params are the {{name}} placeholders the query needs.
	Params []string `json:"params,omitempty"`
}

var paramRE = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// Library lists the built-in queries by name.
func Library() []Builtin {
	entries, _ := fs.ReadDir(library, "queries")
	var out []Builtin
	for _, e := range entries {
		b, err := fs.ReadFile(library, "queries/"+e.Name())
		if err != nil {
			continue
		}
		q := string(b)
		var desc []string
		for _, line := range strings.Split(q, "\n") {
			if d, ok := strings.CutPrefix(line, "//"); ok {
				desc = append(desc, strings.TrimSpace(d))
			} else {
				break
			}
		}
		var params []string
		seen := map[string]bool{}
		for _, m := range paramRE.FindAllStringSubmatch(q, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				params = append(params, m[1])
			}
		}
		out = append(out, Builtin{Name: strings.TrimSuffix(e.Name(), ".kql"), Description: strings.Join(desc, " "), Query: q, Params: params})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Find returns a built-in query by name.
func Find(name string) (Builtin, bool) {
	for _, b := range Library() {
		if b.Name == name {
			return b, true
		}
	}
	return Builtin{}, false
}

// Expand fills a built-in query's {{params}}. Values are quoted as KQL
// strings, so they cannot change the query's structure.
func (b Builtin) Expand(params map[string]string) (string, error) {
	var missing []string
	q := paramRE.ReplaceAllStringFunc(b.Query, func(m string) string {
		name := paramRE.FindStringSubmatch(m)[1]
		v, ok := params[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return escapeKQL(v)
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("query %s needs --param %s=VALUE", b.Name, strings.Join(missing, "=VALUE --param "))
	}
	return q, nil
}

// escapeKQL escapes a value placed inside a double-quoted KQL string.
func escapeKQL(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// Cursor streams a query's result.
type Cursor struct {
	cols []table.Column
	rows table.Rows
	sql  *store.Rows // the SQL's rows, for Scanned; nil when none
	// Plan is how the query ran: its SQL and what the evaluator ran.
	Plan *sqlc.Plan
}

// Columns returns the result's columns.
func (c *Cursor) Columns() []table.Column { return c.cols }

// Next advances to the next row.
func (c *Cursor) Next() bool { return c.rows.Next() }

// Row returns the current row; the caller may keep it.
func (c *Cursor) Row() []any { return c.rows.Row() }

// Err returns what ended the iteration.
func (c *Cursor) Err() error { return c.rows.Err() }

// Close releases the query.
func (c *Cursor) Close() error { return c.rows.Close() }

// Scanned returns how many rows DuckDB has handed over so far.
func (c *Cursor) Scanned() int64 {
	if c.sql == nil {
		return 0
	}
	return c.sql.Count()
}

// Run parses a query, compiles what it can to SQL for the event store, and
// returns its result as a stream. The part that SQL cannot express runs in
// the evaluator over the rows that the SQL streams in. Parse errors come
// back as *syntax.ErrorList, which formats each error with its line and a
// caret.
func Run(ctx context.Context, st *store.Store, opts store.SourceOptions, query string, now time.Time) (*Cursor, []syntax.Warning, error) {
	q, warns, err := syntax.Parse(query)
	if err != nil {
		return nil, warns, err
	}
	plan, err := Compile(ctx, st, opts, q, now)
	if err != nil {
		return nil, warns, err
	}
	cur, err := execute(ctx, st, opts, q, plan)
	return cur, warns, err
}

// Compile plans a parsed query over the store (see sqlc.Compile).
func Compile(ctx context.Context, st *store.Store, opts store.SourceOptions, q *syntax.Query, now time.Time) (*sqlc.Plan, error) {
	plan, err := sqlc.Compile(ctx, q, st.Catalog(opts), sqlc.DuckDB, sqlc.Options{Now: now})
	if plan != nil {
		plan.MaxRows = eval.DefaultMaxRows
	}
	return plan, err
}

func execute(ctx context.Context, st *store.Store, opts store.SourceOptions, q *syntax.Query, plan *sqlc.Plan) (*Cursor, error) {
	var sqlRows *store.Rows
	query := func(ctx context.Context, p *sqlc.Plan) (table.Rows, error) {
		rows, err := st.Query(ctx, p)
		sqlRows = rows
		return rows, err
	}
	res, err := sqlc.Execute(ctx, q, plan, st.Source(opts), query)
	if err != nil {
		return nil, err
	}
	return &Cursor{cols: res.Columns, rows: res.Rows, sql: sqlRows, Plan: plan}, nil
}

// Collect runs a query and gathers its whole result, for callers that
// need it in memory (tests, rules).
func Collect(ctx context.Context, st *store.Store, opts store.SourceOptions, query string, now time.Time) (*eval.Result, []syntax.Warning, error) {
	cur, warns, err := Run(ctx, st, opts, query, now)
	if err != nil {
		return nil, warns, err
	}
	defer cur.Close()
	res := &eval.Result{Columns: cur.Columns()}
	for cur.Next() {
		res.Rows = append(res.Rows, cur.Row())
	}
	return res, warns, cur.Err()
}

// compileText parses and compiles a query without running it.
func compileText(ctx context.Context, st *store.Store, opts store.SourceOptions, query string, now time.Time) (*sqlc.Plan, error) {
	q, _, err := syntax.Parse(query)
	if err != nil {
		return nil, err
	}
	return Compile(ctx, st, opts, q, now)
}

// Explain describes how a query runs: the SQL, and the part the evaluator
// runs (as KQL, from where translation stopped) with the reason.
func Explain(ctx context.Context, st *store.Store, opts store.SourceOptions, query string, now time.Time) (string, error) {
	plan, err := compileText(ctx, st, opts, query, now)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	switch {
	case plan.SQL == "":
		b.WriteString("-- runs entirely in the evaluator")
	default:
		b.WriteString("-- DuckDB SQL\n" + plan.SQL + ";")
	}
	if plan.Rest != nil {
		rest := ""
		if p, ok := plan.Rest.Body.(*syntax.Pipeline); ok && len(p.Ops) > 0 {
			rest = strings.TrimSpace(query[p.Ops[0].Pos().Offset:])
		}
		fmt.Fprintf(&b, "\n-- then in the evaluator (%s):\n%s | %s", plan.Stopped, sqlc.PrefixTable, rest)
	}
	return b.String(), nil
}

// ParseWhen reads a time bound: a duration back from now (24h, 7d) or an
// RFC 3339 time; "" is no bound (the zero time).
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d) nor an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

// JSONValue makes a result value JSON: datetimes in RFC 3339, timespans as
// Go durations (1h30m0s), and NaN and the infinities, which JSON lacks, as
// strings; dynamic arrays and bags are converted throughout.
func JSONValue(v any) any {
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		return v.String()
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprint(v)
		}
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = JSONValue(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = JSONValue(x)
		}
		return out
	}
	return v
}

// IsQueryError reports whether err is an error in the query itself (as
// opposed to the store).
func IsQueryError(err error) bool {
	var el *syntax.ErrorList
	return errors.As(err, &el)
}
