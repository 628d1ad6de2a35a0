package eval

import (
	"fmt"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// union concatenates the rows of its inputs. With kind=outer (the default)
// the output has every column of every input; a name used with different
// types becomes one column per type, named Name_type, as in Kusto. With
// kind=inner only the columns common to all inputs are kept.
func (r *runner) union(first *relation, params syntax.UnionParams, tables []syntax.Tabular, e *env) (*relation, error) {
	var rels []*relation
	var names []string
	if first != nil {
		rels = append(rels, first)
		names = append(names, "union_arg0")
	}
	for _, t := range tables {
		if params.IsFuzzy && r.missingTable(t, e) {
			continue
		}
		rel, err := r.evalTabular(t, e)
		if err != nil {
			return nil, err
		}
		rels = append(rels, rel)
		if name := syntax.SourceName(t); name != "" {
			names = append(names, name)
		} else {
			names = append(names, fmt.Sprintf("union_arg%d", len(names)))
		}
	}
	if len(rels) == 0 {
		ref := tables[0].(*syntax.TableRef)
		return nil, r.errorf(ref.NamePos, "union isfuzzy=true: none of its tables exists")
	}
	// Which names appear with more than one type?
	types := map[string]map[table.Type]bool{}
	for _, rel := range rels {
		for _, c := range rel.cols {
			if types[c.Name] == nil {
				types[c.Name] = map[table.Type]bool{}
			}
			types[c.Name][c.Type] = true
		}
	}
	outName := func(c table.Column) string {
		if len(types[c.Name]) > 1 {
			return c.Name + "_" + string(c.Type)
		}
		return c.Name
	}
	var cols []table.Column
	if params.WithSource != "" {
		cols = append(cols, table.Column{Name: params.WithSource, Type: table.String})
	}
	for _, rel := range rels {
		for _, c := range rel.cols {
			n := outName(c)
			if hasColumn(cols, n) {
				continue
			}
			if params.Kind == "inner" && !allHave(rels, c) {
				continue
			}
			cols = append(cols, table.Column{Name: n, Type: c.Type})
		}
	}
	alloc := rowAlloc{width: len(cols)}
	out := [][]any{}
	for k, rel := range rels {
		mapping := make([]int, len(rel.cols))
		for i, c := range rel.cols {
			mapping[i] = columnIndex(cols, outName(c))
		}
		for _, row := range rel.rows {
			if err := r.tick(); err != nil {
				return nil, err
			}
			nr := alloc.row()
			if params.WithSource != "" {
				nr[0] = names[k]
			}
			for i, j := range mapping {
				if j >= 0 {
					nr[j] = row[i]
				}
			}
			out = append(out, nr)
		}
		if err := r.checkRows(len(out), syntax.Pos{Line: 1, Col: 1}); err != nil {
			return nil, err
		}
	}
	return &relation{cols: cols, rows: out}, nil
}

func allHave(rels []*relation, c table.Column) bool {
	for _, rel := range rels {
		i := columnIndex(rel.cols, c.Name)
		if i < 0 || rel.cols[i].Type != c.Type {
			return false
		}
	}
	return true
}

func (r *runner) datatable(d *syntax.Datatable, e *env) (*relation, error) {
	sc := newScope(r, e, nil)
	n := len(d.Columns)
	rel := &relation{cols: d.Columns}
	if n == 0 {
		return rel, nil
	}
	for i := 0; i+n <= len(d.Values); i += n {
		row := make([]any, n)
		for j := 0; j < n; j++ {
			c, err := sc.compile(d.Values[i+j])
			if err != nil {
				return nil, err
			}
			if !c.isConst {
				return nil, r.errorf(d.Values[i+j].Pos(), "datatable values must be constants")
			}
			row[j] = convertTo(d.Columns[j].Type, c.val)
		}
		rel.rows = append(rel.rows, row)
	}
	return rel, nil
}

func (r *runner) print(p *syntax.Print, e *env) (*relation, error) {
	sc := newScope(r, e, nil)
	rel := &relation{rows: [][]any{make([]any, 0, len(p.Items))}}
	for i, it := range p.Items {
		c, err := sc.compile(it.Expr)
		if err != nil {
			return nil, err
		}
		name := it.Name
		if name == "" {
			name = syntax.DefaultName(it.Expr)
		}
		if name == "" || hasColumn(rel.cols, name) {
			name = fmt.Sprintf("print_%d", i)
		}
		rel.cols = append(rel.cols, table.Column{Name: name, Type: colType(c)})
		rel.rows[0] = append(rel.rows[0], c.fn(nil))
	}
	return rel, nil
}

const maxRangeRows = 10_000_000

func (r *runner) rangeTable(rg *syntax.Range, e *env) (*relation, error) {
	sc := newScope(r, e, nil)
	var vals [3]*cexpr
	for i, x := range []syntax.Expr{rg.From, rg.To, rg.Step} {
		c, err := sc.compile(x)
		if err != nil {
			return nil, err
		}
		if !c.isConst || c.val == nil {
			return nil, r.errorf(x.Pos(), "range bounds must be constants")
		}
		vals[i] = c
	}
	typ := vals[0].typ
	if isNumericType(typ) && (vals[1].typ == table.Real || vals[2].typ == table.Real) {
		typ = table.Real
	}
	rel := &relation{cols: []table.Column{{Name: rg.Name, Type: typ}}}
	from, to, step := vals[0].val, vals[1].val, vals[2].val
	if typ == table.Real {
		from, to = convertTo(table.Real, from), convertTo(table.Real, to)
	}
	if c, ok := orderValues(step, arith('-', step, step)); !ok || c <= 0 {
		return nil, r.errorf(rg.Step.Pos(), "range step must be positive")
	}
	for v := from; ; v = arith('+', v, step) {
		c, ok := orderValues(v, to)
		if !ok || c > 0 {
			break
		}
		if len(rel.rows) >= maxRangeRows || r.maxRows > 0 && len(rel.rows) >= r.maxRows {
			return nil, r.errorf(rg.RPos, "range produces too many rows")
		}
		rel.rows = append(rel.rows, []any{v})
	}
	return rel, nil
}

// missingTable reports whether t names a table that neither the query
// (let, as) nor the source has.
func (r *runner) missingTable(t syntax.Tabular, e *env) bool {
	ref, ok := t.(*syntax.TableRef)
	if !ok || e.lookup(ref.Name) != nil {
		return false
	}
	if _, ok := r.asBind[ref.Name]; ok {
		return false
	}
	_, err := r.schema(ref.Name)
	return err != nil
}
