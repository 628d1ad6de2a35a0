package sqlc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// PrefixTable is the name under which Plan.Rest reads the rows of the SQL.
const PrefixTable = "__sql__"

// Plan is a compiled query.
type Plan struct {
	// SQL computes the translated prefix of the query; empty when nothing
	// could be translated.
	SQL string
	// Columns are the SQL result's columns, in order, with their KQL types.
	Columns []table.Column
	// StringRep marks dynamic columns that the SQL returns as plain
	// strings (or NULL) instead of JSON text.
	StringRep []bool
	// Rest, when not nil, is what the evaluator must run: the query with
	// its translated prefix replaced by a read of table PrefixTable.
	Rest *syntax.Query
	// Ordered reports that the SQL's rows come in the query's order.
	Ordered bool
	// Stopped says why translation stopped before the end ("" when it did not).
	Stopped string
	// Now is the query time: Options.Now, to the microsecond (DuckDB's
	// precision), for both paths.
	Now time.Time
	// MaxRows bounds the rows the evaluator's part may hold at any step
	// (eval.Options.MaxRows); zero means no bound. The SQL streams.
	MaxRows int
}

// Options control compilation.
type Options struct {
	// Now is the time ago() and now() are relative to.
	Now time.Time
}

// errUnsupported stops translation; the evaluator takes over from there.
// partial, when set, is the stage with the part of the operator that did
// translate (the conjuncts of a where).
type errUnsupported struct {
	msg     string
	partial *rel
}

func (e *errUnsupported) Error() string { return e.msg }

func unsupported(format string, args ...any) error {
	return &errUnsupported{msg: fmt.Sprintf(format, args...)}
}

// Compile translates q. It never fails on a query that the evaluator can
// run: what it cannot translate becomes Plan.Rest. It returns an error
// only for a query the evaluator would reject too (the evaluator's own
// error, with its position).
func Compile(ctx context.Context, q *syntax.Query, cat Catalog, d Dialect, opts Options) (*Plan, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	opts.Now = opts.Now.UTC().Truncate(time.Microsecond)
	c := &compiler{ctx: ctx, q: q, cat: cat, d: d, now: opts.Now.UTC(), lets: map[string]*syntax.Let{}}
	for _, l := range q.Lets {
		c.lets[l.Name] = l
	}
	// The evaluator checks the whole query first: its errors are the
	// user's, and its schemas are the reference for every stage.
	if _, err := c.schema(beforeEvaluate(q.Body)); err != nil {
		return nil, err
	}
	src, ops, err := c.pipeline(q.Body, len(q.Lets))
	if err != nil {
		return &Plan{Rest: q, Stopped: err.Error(), Now: c.now}, nil
	}
	r, err := c.source(src)
	if err != nil {
		var u *errUnsupported
		if !errors.As(err, &u) {
			return nil, err
		}
		return &Plan{Rest: q, Stopped: err.Error(), Now: c.now}, nil
	}
	r, done, stopped, narrowed, err := c.stages(src, ops, r)
	if err != nil {
		return nil, err
	}
	if done == 0 && !narrowed {
		// Nothing to gain from SQL that only reads the table: the
		// evaluator's scans push their filters down themselves.
		return &Plan{Rest: q, Stopped: stopped, Now: c.now}, nil
	}
	if done < len(ops) {
		r = prune(r, ops[done:], q.Src[ops[done].Pos().Offset:])
	}
	plan := c.finish(r)
	plan.Stopped = stopped
	plan.Now = c.now
	if done < len(ops) {
		rest := ops[done:]
		if syntax.Serialized(src, ops[:done]) && syntax.UsesWindow(rest) {
			// The rest's window functions need the prefix's rows
			// serialized: in the SQL's order when it keeps one.
			if !plan.Ordered {
				return &Plan{Rest: q, Stopped: "window functions after a prefix whose order SQL does not keep", Now: c.now}, nil
			}
			rest = append([]syntax.Operator{&syntax.Serialize{OpPos: ops[done].Pos()}}, rest...)
		}
		plan.Rest = &syntax.Query{
			Lets: q.Lets,
			Body: &syntax.Pipeline{Source: &syntax.TableRef{NamePos: ops[done].Pos(), Name: PrefixTable}, Ops: rest},
			Src:  q.Src,
		}
		plan.Ordered = false
	}
	return plan, nil
}

// prune drops the columns that the evaluator's part (rest, whose text is
// text) never reads, so that SQL does not compute them (a whole
// RawEventData, say) for every row it hands over. It prunes only when the
// rest ends in an operator that chooses its columns (project, summarize,
// count, distinct of columns), reached through operators that read
// columns only by name; a column counts as read when its name appears as
// a word anywhere in the text.
func prune(r *rel, rest []syntax.Operator, text string) *rel {
	if strings.Contains(text, "*") || strings.Contains(text, "pack_all") {
		return r
	}
	if !syntax.ChoosesColumns(rest) {
		return r
	}
	n := r.clone()
	n.cols = nil
	for _, col := range r.cols {
		if syntax.NameIn(text, col.name) {
			n.cols = append(n.cols, col)
		}
	}
	return n
}

// stages compiles ops over r, the stage of src, as far as they translate.
// It returns the last stage, how many operators it covers, why it stopped,
// and whether that stage also applies part of the next operator.
func (c *compiler) stages(src syntax.Tabular, ops []syntax.Operator, r *rel) (*rel, int, string, bool, error) {
	for i, op := range ops {
		want, err := c.schema(&syntax.Pipeline{Source: src, Ops: ops[:i+1]})
		if err != nil {
			return nil, 0, "", false, err
		}
		c.stageSchema = want
		next, err := c.op(r, op)
		if err == nil {
			err = checkSchema(next, want)
		}
		if err != nil {
			var u *errUnsupported
			if !errors.As(err, &u) {
				return nil, 0, "", false, err
			}
			stopped := fmt.Sprintf("%s: %s", opName(op), u.msg)
			if u.partial != nil {
				// Some conjuncts of a where translated: SQL applies
				// them, and the evaluator the whole where again.
				return u.partial, i, stopped, true, nil
			}
			return r, i, stopped, false, nil
		}
		r = next
	}
	return r, len(ops), "", false, nil
}

// whole compiles a tabular expression entirely, or fails.
func (c *compiler) whole(t syntax.Tabular, visible int) (*rel, error) {
	src, ops, err := c.pipeline(t, visible)
	if err != nil {
		return nil, err
	}
	r, err := c.source(src)
	if err != nil {
		return nil, err
	}
	r, done, stopped, _, err := c.stages(src, ops, r)
	if err != nil {
		return nil, err
	}
	if done < len(ops) {
		return nil, unsupported("%s", stopped)
	}
	return r, nil
}

// compiler holds the state of one compilation.
type compiler struct {
	ctx  context.Context
	q    *syntax.Query
	cat  Catalog
	d    Dialect
	now  time.Time
	lets map[string]*syntax.Let
	ctes []string
	n    int
	// stageSchema is the evaluator's schema after the stage being compiled.
	stageSchema []table.Column
}

// schema runs the evaluator over the catalog's schemas only (no rows) to
// get the columns and types of a tabular expression.
func (c *compiler) schema(t syntax.Tabular) ([]table.Column, error) {
	res, err := eval.Run(c.ctx, catalogSource{c.cat}, &syntax.Query{Lets: c.q.Lets, Body: t, Src: c.q.Src}, eval.Options{Now: c.now})
	if err != nil {
		return nil, err
	}
	return res.Columns, nil
}

// pipeline flattens a tabular expression into a source and its
// operators, following tabular lets used as a pipeline's source. visible
// is how many of the query's lets the expression sees (a let's own body
// sees only the lets before it).
func (c *compiler) pipeline(t syntax.Tabular, visible int) (syntax.Tabular, []syntax.Operator, error) {
	switch x := t.(type) {
	case *syntax.Pipeline:
		src, ops, err := c.pipeline(x.Source, visible)
		if err != nil {
			return nil, nil, err
		}
		return src, append(slices.Clone(ops), x.Ops...), nil
	case *syntax.TableRef:
		for i := visible - 1; i >= 0; i-- {
			l := c.q.Lets[i]
			if l.Name != x.Name {
				continue
			}
			if l.Tabular != nil {
				return c.pipeline(l.Tabular, i)
			}
			if id, ok := l.Scalar.(*syntax.Ident); ok {
				return c.pipeline(&syntax.TableRef{NamePos: x.NamePos, Name: id.Name}, i)
			}
			return nil, nil, unsupported("let %s", x.Name)
		}
		return x, nil, nil
	}
	return nil, nil, unsupported("source %T", t)
}

// column is one visible column of a stage.
type column struct {
	name string
	e    *sexpr
}

// rel is a stage: the relation it reads, its visible columns as
// expressions over that relation, its filters and its order.
type rel struct {
	from  string
	cols  []column
	where []string
	// order, when set, orders the stage's rows (expressions over from).
	order []string
	limit int64 // -1 when none
}

func (r *rel) clone() *rel {
	n := *r
	n.cols = slices.Clone(r.cols)
	n.where = slices.Clone(r.where)
	n.order = slices.Clone(r.order)
	return &n
}

func (r *rel) find(name string) int {
	for i, c := range r.cols {
		if c.name == name {
			return i
		}
	}
	return -1
}

func (c *compiler) source(t syntax.Tabular) (*rel, error) {
	if u, ok := t.(*syntax.UnionSource); ok {
		want, err := c.schema(u)
		if err != nil {
			return nil, err
		}
		return c.union(nil, u.Params, u.Tables, want)
	}
	ref, ok := t.(*syntax.TableRef)
	if !ok {
		return nil, unsupported("source %T", t)
	}
	tab, ok := c.cat.Table(ref.Name)
	if !ok {
		return nil, unsupported("table %s", ref.Name)
	}
	r := &rel{from: tab.From, limit: -1}
	if tab.Where != "" {
		r.where = append(r.where, tab.Where)
	}
	for _, col := range tab.Columns {
		r.cols = append(r.cols, column{name: col.Name, e: fromColumn(col)})
	}
	return r, nil
}

func fromColumn(col *Column) *sexpr {
	t := col.Type
	if t == table.Int {
		t = table.Long
	}
	return &sexpr{sql: col.SQL, typ: t, srep: col.StringRep, fields: col.Fields, rest: col.FieldsRest, intType: col.Type == table.Int,
		notNull: t == table.String, parsed: col.Parsed}
}

// materialize closes a stage: it becomes a CTE that passes every column of
// the relation it reads through (*) and computes the stage's columns once,
// under unique names, so that later stages refer to them instead of
// repeating their expressions. Columns that are cheap to recompute, or
// that stand for table columns (with their member shortcuts), stay as
// they are: SQL reads only what a query uses.
func (c *compiler) materialize(r *rel) *rel {
	c.n++
	name := fmt.Sprintf("s%d", c.n)
	sel := []string{"*"}
	out := &rel{from: name, limit: -1}
	for _, col := range r.cols {
		if col.e.fields != nil || col.e.rest != "" || col.e.parsed != nil || len(col.e.sql) <= cheapSQL {
			out.cols = append(out.cols, col)
			continue
		}
		c.n++
		alias := c.d.Ident(fmt.Sprintf("__c%d", c.n))
		sel = append(sel, col.e.sql+" AS "+alias)
		out.cols = append(out.cols, column{name: col.name, e: col.e.derived(alias)})
	}
	for i, o := range r.order {
		if r.limit < 0 {
			break // without a limit the order does not survive a CTE boundary; the next sort redoes it
		}
		hidden := c.d.Ident(fmt.Sprintf("__o%d_%d", c.n, i))
		expr, dir, _ := strings.Cut(o, "\x00")
		sel = append(sel, expr+" AS "+hidden)
		out.order = append(out.order, hidden+"\x00"+dir)
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + r.from
	if len(r.where) > 0 {
		q += " WHERE " + strings.Join(r.where, " AND ")
	}
	if len(r.order) > 0 && r.limit >= 0 {
		q += " ORDER BY " + orderList(r.order)
	}
	if r.limit >= 0 {
		q += fmt.Sprintf(" LIMIT %d", r.limit)
	}
	c.ctes = append(c.ctes, name+" AS ("+q+")")
	return out
}

// cheapSQL is the length below which an expression is repeated where it
// is used rather than computed once in a CTE.
const cheapSQL = 96

func orderList(order []string) string {
	parts := make([]string, len(order))
	for i, o := range order {
		parts[i] = strings.ReplaceAll(o, "\x00", " ")
	}
	return strings.Join(parts, ", ")
}

// finish writes the final SELECT.
func (c *compiler) finish(r *rel) *Plan {
	p := &Plan{}
	var sel []string
	for _, col := range r.cols {
		e := col.e
		expr := e.sql
		if e.typ == table.Dynamic && !e.srep {
			expr = "CAST(" + expr + " AS VARCHAR)"
		}
		sel = append(sel, expr+" AS "+c.d.Ident(col.name))
		t := e.typ
		if e.intType {
			t = table.Int
		}
		p.Columns = append(p.Columns, table.Column{Name: col.name, Type: t})
		p.StringRep = append(p.StringRep, e.typ == table.Dynamic && e.srep)
	}
	if len(sel) == 0 {
		sel = append(sel, "1 AS "+c.d.Ident("__none"))
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + r.from
	if len(r.where) > 0 {
		q += " WHERE " + strings.Join(r.where, " AND ")
	}
	if len(r.order) > 0 {
		q += " ORDER BY " + orderList(r.order)
		p.Ordered = true
	}
	if r.limit >= 0 {
		q += fmt.Sprintf(" LIMIT %d", r.limit)
	}
	if len(c.ctes) > 0 {
		q = "WITH " + strings.Join(c.ctes, ",\n") + "\n" + q
	}
	p.SQL = q
	return p
}

// checkSchema makes sure a stage has exactly the evaluator's columns and
// types; anything else would change the result, so translation stops.
func checkSchema(r *rel, want []table.Column) error {
	if len(r.cols) != len(want) {
		return unsupported("%d columns where the evaluator has %d", len(r.cols), len(want))
	}
	for i, col := range r.cols {
		t := col.e.typ
		if col.e.intType {
			t = table.Int
		}
		if col.name != want[i].Name || t != want[i].Type {
			return unsupported("column %s:%s where the evaluator has %s:%s", col.name, t, want[i].Name, want[i].Type)
		}
	}
	return nil
}

func opName(op syntax.Operator) string {
	n := strings.ToLower(strings.TrimPrefix(fmt.Sprintf("%T", op), "*syntax."))
	switch n {
	case "projectaway":
		return "project-away"
	case "projectkeep":
		return "project-keep"
	case "projectrename":
		return "project-rename"
	case "projectreorder":
		return "project-reorder"
	case "mvexpand":
		return "mv-expand"
	case "parseop":
		return "parse"
	}
	return n
}

// catalogSource serves the catalog's schemas to the evaluator, and no rows.
type catalogSource struct{ cat Catalog }

func (s catalogSource) Schema(_ context.Context, name string) ([]table.Column, error) {
	t, ok := s.cat.Table(name)
	if !ok {
		return nil, fmt.Errorf("unknown table %q (have %s)", name, strings.Join(s.cat.Tables(), ", "))
	}
	cols := make([]table.Column, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = table.Column{Name: c.Name, Type: c.Type}
	}
	return cols, nil
}

func (s catalogSource) Scan(context.Context, table.ScanRequest) (table.Rows, error) {
	return emptyRows{}, nil
}

type emptyRows struct{}

func (emptyRows) Next() bool   { return false }
func (emptyRows) Row() []any   { return nil }
func (emptyRows) Err() error   { return nil }
func (emptyRows) Close() error { return nil }

// beforeEvaluate cuts a pipeline before its first evaluate: the columns
// bag_unpack makes depend on the data, so the evaluator's run over no
// rows cannot check what follows it (the evaluator does, over the rows).
func beforeEvaluate(t syntax.Tabular) syntax.Tabular {
	p, ok := t.(*syntax.Pipeline)
	if !ok {
		return t
	}
	for i, op := range p.Ops {
		if _, ok := op.(*syntax.Evaluate); ok {
			if i == 0 {
				return p.Source
			}
			return &syntax.Pipeline{Source: p.Source, Ops: p.Ops[:i]}
		}
	}
	return t
}
