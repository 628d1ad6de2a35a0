// Package eval runs parsed KQL queries over tables read through
// table.Source. It knows nothing about storage: sources are given filters
// (pushdown) but the evaluator applies every predicate itself.
package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// Options control a run.
type Options struct {
	// Now is the time ago() and now() are relative to; zero means time.Now().
	Now time.Time
	// MaxRows, when positive, bounds the rows any intermediate result may
	// hold; a query exceeding it fails instead of exhausting memory.
	MaxRows int
}

// DefaultMaxRows is the bound hunts and rules run the evaluator with: a
// join or mv-expand that would hold more rows fails with a clear error
// instead of exhausting memory.
const DefaultMaxRows = 1_000_000

// Result is the output of a query: columns and rows of Go-native values
// (see package table).
type Result struct {
	Columns []table.Column
	Rows    [][]any
}

// Run evaluates q, reading tables from src.
//
// Errors about the query (unknown table, column or function, wrong
// argument count or types...) are *syntax.ErrorList values with a
// position; other errors come from the source or the context. A panic
// inside the evaluator (a bug) is recovered and returned as an error of
// one line, "kql: internal error: ...", without a stack trace.
func Run(ctx context.Context, src table.Source, q *syntax.Query, opts Options) (res *Result, err error) {
	if q == nil {
		return nil, errors.New("kql: nil query")
	}
	r := newRunner(ctx, src, q.Src, opts)
	r.query = q
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, internalError(ctx, p)
		}
	}()
	e, err := r.evalLets(q.Lets)
	if err != nil {
		return nil, err
	}
	rel, err := r.evalTabular(q.Body, e)
	if err != nil {
		return nil, err
	}
	rows := rel.rows
	if rel.shared { // never hand out the source's own row slices
		alloc := rowAlloc{width: len(rel.cols)}
		rows = make([][]any, len(rel.rows))
		for i, row := range rel.rows {
			rows[i] = alloc.row()
			copy(rows[i], row)
		}
	}
	return &Result{Columns: rel.cols, Rows: rows}, nil
}

// internalError turns a panic recovered by Run (a bug in the evaluator)
// into an error of one line: users see "kql: internal error: <panic>",
// never a stack trace. The stack is only logged, at debug level.
func internalError(ctx context.Context, p any) error {
	msg := strings.Join(strings.Fields(fmt.Sprint(p)), " ")
	if l := slog.Default(); l.Enabled(ctx, slog.LevelDebug) {
		l.DebugContext(ctx, "kql: internal error", "panic", msg, "stack", string(debug.Stack()))
	}
	return errors.New("kql: internal error: " + msg)
}

// Query parses text and runs it. Warnings from parsing are returned even
// when the query fails to run.
func Query(ctx context.Context, src table.Source, text string, opts Options) (*Result, []syntax.Warning, error) {
	q, warns, err := syntax.Parse(text)
	if err != nil {
		return nil, warns, err
	}
	res, err := Run(ctx, src, q, opts)
	return res, warns, err
}

// Check validates q against the schemas of src without reading any rows:
// unknown tables, columns and functions, argument counts and types.
func Check(ctx context.Context, src table.Source, q *syntax.Query) error {
	_, err := Run(ctx, schemaOnly{src}, q, Options{})
	return err
}

// StableRows may be implemented by a table.Rows whose Row slices stay
// valid and unmodified after Next (e.g. rows already held in memory). The
// evaluator then keeps them without copying; it never modifies them.
type StableRows interface {
	RowsAreStable() bool
}

type schemaOnly struct{ table.Source }

func (s schemaOnly) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	return &sliceRows{}, nil
}

// relation is an intermediate result. Rows are never modified once a
// relation is built; operators that change rows make new ones. shared
// marks rows that may be the source's own slices (see StableRows).
type relation struct {
	cols   []table.Column
	rows   [][]any
	shared bool
}

type runner struct {
	ctx     context.Context
	src     table.Source
	now     time.Time
	text    string
	query   *syntax.Query // the query being run, for readColumns
	asBind  map[string]*relation
	schemas map[string][]table.Column
	regexes map[string]*regexCacheEntry
	maxRows int
	ticks   int
	calls   int // the depth of user-defined function calls being compiled
}

func newRunner(ctx context.Context, src table.Source, text string, opts Options) *runner {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	return &runner{
		ctx:     ctx,
		src:     src,
		now:     now.UTC(),
		text:    text,
		asBind:  map[string]*relation{},
		schemas: map[string][]table.Column{},
		regexes: map[string]*regexCacheEntry{},
		maxRows: opts.MaxRows,
	}
}

// errorf returns a positioned query error.
func (r *runner) errorf(pos syntax.Pos, format string, args ...any) error {
	return syntax.NewError(r.text, pos, format, args...)
}

// tick checks for cancellation every few thousand rows.
func (r *runner) tick() error {
	r.ticks++
	if r.ticks&4095 == 0 {
		return r.ctx.Err()
	}
	return nil
}

func (r *runner) checkRows(n int, pos syntax.Pos) error {
	if r.maxRows > 0 && n > r.maxRows {
		return r.errorf(pos, "result exceeds the limit of %d rows", r.maxRows)
	}
	return nil
}

func (r *runner) schema(name string) ([]table.Column, error) {
	if cols, ok := r.schemas[name]; ok {
		return cols, nil
	}
	cols, err := r.src.Schema(r.ctx, name)
	if err != nil {
		return nil, err
	}
	r.schemas[name] = cols
	return cols, nil
}

// env is the chain of let bindings visible at a point of the query.
type env struct {
	parent *env
	name   string
	scalar *cexpr          // a scalar let (constant)
	tab    syntax.Tabular  // a tabular let, evaluated where used
	tabEnv *env            // the bindings visible to tab
	mat    *relation       // a materialized tabular let
	fn     *syntax.FuncDef // a user-defined function, defined in tabEnv
}

func (e *env) lookup(name string) *env {
	for ; e != nil; e = e.parent {
		if e.name == name {
			return e
		}
	}
	return nil
}

func (r *runner) evalLets(lets []*syntax.Let) (*env, error) {
	return r.evalLetsIn(nil, lets)
}

// evalLetsIn binds lets after the bindings of e.
func (r *runner) evalLetsIn(e *env, lets []*syntax.Let) (*env, error) {
	for _, l := range lets {
		b := &env{parent: e, name: l.Name}
		switch {
		case l.Func != nil:
			b.fn, b.tabEnv = l.Func, e
		case l.Tabular != nil:
			b.tab, b.tabEnv = l.Tabular, e
			if l.Materialize {
				rel, err := r.evalTabular(l.Tabular, e)
				if err != nil {
					return nil, err
				}
				b.mat = rel
			}
		default:
			if id, ok := l.Scalar.(*syntax.Ident); ok {
				if prev := e.lookup(id.Name); prev != nil {
					b.scalar, b.tab, b.tabEnv, b.mat, b.fn = prev.scalar, prev.tab, prev.tabEnv, prev.mat, prev.fn
					break
				}
				if r.asBind[id.Name] != nil {
					b.tab, b.tabEnv = &syntax.TableRef{NamePos: id.NamePos, Name: id.Name}, e
					break
				}
				if _, err := r.schema(id.Name); err == nil {
					b.tab, b.tabEnv = &syntax.TableRef{NamePos: id.NamePos, Name: id.Name}, e
					break
				}
				return nil, r.errorf(id.NamePos, "unknown table or variable %q", id.Name)
			}
			sc := newScope(r, e, nil)
			c, err := sc.compile(l.Scalar)
			if err != nil {
				return nil, err
			}
			if !c.isConst {
				return nil, r.errorf(l.Scalar.Pos(), "let %s must be a constant expression", l.Name)
			}
			b.scalar = c
		}
		e = b
	}
	return e, nil
}
