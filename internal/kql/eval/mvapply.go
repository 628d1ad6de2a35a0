package eval

import (
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// mvApply runs mv-apply: for each row, the expansion of its arrays (as
// mv-expand makes it) becomes a table of the expanded columns (and the
// item index), the subquery runs on that table, and each of its rows is
// output after the row's other columns. A column expanded by name is
// replaced, as in Kusto: only the subquery's columns show it.
func (r *runner) mvApply(rel *relation, op *syntax.MvApply, e *env) (*relation, error) {
	// The expanded columns: mv-expand over no rows gives their names and
	// types.
	probe, err := r.mvExpand(&relation{cols: rel.cols}, op.Expand, e)
	if err != nil {
		return nil, err
	}
	var subIdx []int // columns of the expansion that make the subtable
	replaced := map[string]bool{}
	for _, it := range op.Expand.Items {
		name := it.Name
		if name == "" {
			name = syntax.DefaultName(it.Expr)
		}
		if id, ok := it.Expr.(*syntax.Ident); ok && columnIndex(rel.cols, id.Name) >= 0 {
			replaced[id.Name] = true
		}
		if i := columnIndex(probe.cols, name); i >= 0 {
			subIdx = append(subIdx, i)
		}
	}
	if op.Expand.WithItemIndex != "" {
		subIdx = append(subIdx, len(probe.cols)-1)
	}
	subCols := make([]table.Column, len(subIdx))
	for i, k := range subIdx {
		subCols[i] = probe.cols[k]
	}
	var keep []int // the row's columns the output keeps
	var cols []table.Column
	for i, c := range rel.cols {
		if !replaced[c.Name] {
			keep = append(keep, i)
			cols = append(cols, c)
		}
	}
	run := func(rows [][]any) (*relation, error) {
		be := &env{parent: e, name: syntax.MvApplyInput, mat: &relation{cols: subCols, rows: rows}}
		return r.evalTabular(op.Sub, be)
	}
	// The subquery's columns, from a run over no rows.
	shape, err := run(nil)
	if err != nil {
		return nil, err
	}
	width := len(cols)
	for _, c := range shape.cols {
		c.Name = dedupName(cols, c.Name)
		cols = append(cols, c)
	}
	alloc := rowAlloc{width: len(cols)}
	var out [][]any
	for _, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		exp, err := r.mvExpand(&relation{cols: rel.cols, rows: [][]any{row}}, op.Expand, e)
		if err != nil {
			return nil, err
		}
		res, err := run(selectColumns(exp, subIdx).rows)
		if err != nil {
			return nil, err
		}
		for _, rr := range res.rows {
			o := alloc.row()
			for j, k := range keep {
				o[j] = row[k]
			}
			copy(o[width:], rr)
			out = append(out, o)
		}
		if err := r.checkRows(len(out), op.OpPos); err != nil {
			return nil, err
		}
	}
	return &relation{cols: cols, rows: out}, nil
}
