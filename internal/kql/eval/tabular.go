package eval

import (
	"fmt"
	"strings"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// boundOp is an operator with the let bindings visible where it was
// written (a let-bound pipeline may be spliced into another one).
type boundOp struct {
	op  syntax.Operator
	env *env
}

// flatten unwraps nested pipelines and references to (non-materialized)
// tabular lets, so that "let x = T | where a; x | where b" becomes
// T with [where a, where b]; this lets where clauses reach the scan.
func (r *runner) flatten(t syntax.Tabular, e *env) (syntax.Tabular, *env, []boundOp) {
	var tail []boundOp
	for {
		switch x := t.(type) {
		case *syntax.Pipeline:
			ops := make([]boundOp, 0, len(x.Ops)+len(tail))
			for _, op := range x.Ops {
				ops = append(ops, boundOp{op: op, env: e})
			}
			tail = append(ops, tail...)
			t = x.Source
			continue
		case *syntax.TableRef:
			if b := e.lookup(x.Name); b != nil && b.tab != nil && b.mat == nil {
				t, e = b.tab, b.tabEnv
				continue
			}
		}
		return t, e, tail
	}
}

func (r *runner) evalTabular(t syntax.Tabular, e *env) (*relation, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	base, benv, ops := r.flatten(t, e)
	var rel *relation
	var err error
	switch b := base.(type) {
	case *syntax.TableRef:
		rel, ops, err = r.tableRef(b, benv, ops)
	case *syntax.UnionSource:
		rel, err = r.union(nil, b.Params, b.Tables, benv)
	case *syntax.Datatable:
		rel, err = r.datatable(b, benv)
	case *syntax.Print:
		rel, err = r.print(b, benv)
	case *syntax.Range:
		rel, err = r.rangeTable(b, benv)
	case *syntax.SearchSource:
		rel, err = r.searchSource(b, benv)
	case *syntax.FuncCall:
		rel, err = r.udfTable(b.NamePos, b.Name, b.Args, nil, benv)
	case nil:
		err = fmt.Errorf("kql: missing tabular expression")
	default:
		err = r.errorf(base.Pos(), "unsupported tabular expression")
	}
	if err != nil {
		return nil, err
	}
	_, serialized := base.(*syntax.Range)
	for k := range ops {
		// Window functions need a serialized row set.
		_, isSerialize := ops[k].op.(*syntax.Serialize)
		if err := r.checkSerialized(ops[k].op, serialized || isSerialize); err != nil {
			return nil, err
		}
		serialized = syntax.MakesOrder(ops[k].op) || serialized && syntax.KeepsOrder(ops[k].op)
	}
	for i := 0; i < len(ops); i++ {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		b := ops[i]
		// Runs of extend/where containing an extend are fused into one pass.
		j := i
		hasExtend := false
		for j < len(ops) && isRowStage(ops[j].op) {
			if _, isWhere := ops[j].op.(*syntax.Where); !isWhere {
				hasExtend = true
			}
			j++
		}
		if hasExtend {
			rel, err = r.rowPipeline(rel, ops[i:j])
			i = j - 1
		} else {
			rel, err = r.apply(rel, b)
		}
		if err != nil {
			return nil, err
		}
		if err := r.checkRows(len(rel.rows), b.op.Pos()); err != nil {
			return nil, err
		}
	}
	return rel, nil
}

// tableRef resolves a name at the start of a pipeline: a materialized
// let, an "as" name, or a table of the source (scanned with the where
// clauses that follow it pushed down).
func (r *runner) tableRef(ref *syntax.TableRef, e *env, ops []boundOp) (*relation, []boundOp, error) {
	if b := e.lookup(ref.Name); b != nil {
		if b.mat != nil {
			return b.mat, ops, nil
		}
		return nil, nil, r.errorf(ref.NamePos, "%q is a scalar, not a table", ref.Name)
	}
	if rel, ok := r.asBind[ref.Name]; ok {
		return rel, ops, nil
	}
	cols, err := r.schema(ref.Name)
	if err != nil {
		msg := err.Error()
		if !strings.Contains(msg, ref.Name) {
			msg = fmt.Sprintf("table %q: %s", ref.Name, msg)
		}
		return nil, nil, r.errorf(ref.NamePos, "%s", msg)
	}
	n := 0
	for n < len(ops) {
		if _, ok := ops[n].op.(*syntax.Where); !ok {
			break
		}
		n++
	}
	rel, err := r.scan(ref, cols, ops[:n])
	return rel, ops[n:], err
}

// scan reads a table, offering the pushable parts of the leading where
// clauses to the source and applying all of them to the rows returned.
func (r *runner) scan(ref *syntax.TableRef, cols []table.Column, wheres []boundOp) (*relation, error) {
	var preds []func([]any) any
	var filters []table.Filter
	for _, w := range wheres {
		wh := w.op.(*syntax.Where)
		sc := newScope(r, w.env, cols)
		c, err := sc.whereExpr(wh)
		if err != nil {
			return nil, err
		}
		preds = append(preds, c.fn)
		filters = append(filters, r.pushdown(wh.Pred, sc)...)
	}
	rows, err := r.src.Scan(r.ctx, table.ScanRequest{Table: ref.Name, Filters: filters, Columns: r.readColumns(ref, cols)})
	if err != nil {
		return nil, fmt.Errorf("kql: scan %s: %w", ref.Name, err)
	}
	defer rows.Close()
	stable := false
	if sr, ok := rows.(StableRows); ok {
		stable = sr.RowsAreStable()
	}
	width := len(cols)
	out := [][]any{}
	var backing []any
	for rows.Next() {
		if err := r.tick(); err != nil {
			return nil, err
		}
		row := rows.Row()
		if len(row) != width {
			return nil, fmt.Errorf("kql: table %s: source returned a row of %d values for %d columns", ref.Name, len(row), width)
		}
		keep := true
		for _, p := range preds {
			if p(row) != true {
				keep = false
				break
			}
		}
		if !keep {
			continue
		}
		if stable {
			out = append(out, row)
			continue
		}
		if len(backing) < width {
			backing = make([]any, width*256)
		}
		cp := backing[:width:width]
		backing = backing[width:]
		copy(cp, row)
		out = append(out, cp)
		if r.maxRows > 0 && len(out) > r.maxRows {
			return nil, r.errorf(ref.NamePos, "table %s: result exceeds the limit of %d rows", ref.Name, r.maxRows)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("kql: scan %s: %w", ref.Name, err)
	}
	return &relation{cols: cols, rows: out, shared: stable}, nil
}

func (sc *scope) whereExpr(wh *syntax.Where) (*cexpr, error) {
	c, err := sc.compile(wh.Pred)
	if err != nil {
		return nil, err
	}
	if !isBoolish(c.typ) {
		return nil, sc.errorf(wh.Pred.Pos(), "where predicate must be bool, not %s", c.typ)
	}
	return c, nil
}

// rowAlloc hands out row slices from large blocks.
type rowAlloc struct {
	width   int
	backing []any
}

func (a *rowAlloc) row() []any {
	if a.width == 0 {
		return nil
	}
	if len(a.backing) < a.width {
		a.backing = make([]any, a.width*256)
	}
	r := a.backing[:a.width:a.width]
	a.backing = a.backing[a.width:]
	return r
}
