package eval

import (
	"slices"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// mvExpand turns each element of an array (or property of a bag) into a
// row. Several expressions expand in parallel, the shorter ones padded
// with nulls. A scalar expands to itself; null or an empty array yields
// no row.
func (r *runner) mvExpand(rel *relation, op *syntax.MvExpand, e *env) (*relation, error) {
	sc := newScope(r, e, rel.cols)
	cols := slices.Clone(rel.cols)
	type item struct {
		fn  func([]any) any
		idx int
		to  table.Type
	}
	var items []item
	for _, it := range op.Items {
		c, err := sc.compile(it.Expr)
		if err != nil {
			return nil, err
		}
		name := it.Name
		if name == "" {
			name = syntax.DefaultName(it.Expr)
		}
		if name == "" {
			name = nextColumnName(cols, "Column")
		}
		typ := table.Dynamic
		if it.ToType != "" {
			typ = it.ToType
		}
		idx := columnIndex(cols, name)
		if idx < 0 {
			idx = len(cols)
			cols = append(cols, table.Column{Name: name})
		}
		cols[idx].Type = typ
		items = append(items, item{fn: c.fn, idx: idx, to: it.ToType})
	}
	indexCol := -1
	if op.WithItemIndex != "" {
		if hasColumn(cols, op.WithItemIndex) {
			return nil, r.errorf(op.OpPos, "column %q already exists", op.WithItemIndex)
		}
		indexCol = len(cols)
		cols = append(cols, table.Column{Name: op.WithItemIndex, Type: table.Long})
	}
	limit := int64(1) << 31
	if op.Limit != nil {
		n, err := r.constCount(op.Limit, e, "mv-expand limit")
		if err != nil {
			return nil, err
		}
		limit = int64(n)
	}
	asArray := op.BagExpansion == "array"
	alloc := rowAlloc{width: len(cols)}
	out := [][]any{}
	vals := make([][]any, len(items))
	for _, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		n := 0
		for i, it := range items {
			vals[i] = expandValue(it.fn(row), asArray)
			n = max(n, len(vals[i]))
		}
		for k := 0; k < n && int64(k) < limit; k++ {
			nr := alloc.row()
			copy(nr, row)
			for i, it := range items {
				var v any
				if k < len(vals[i]) {
					v = vals[i][k]
				}
				if it.to != "" && it.to != table.Dynamic {
					v = castTo(it.to, v)
				}
				nr[it.idx] = v
			}
			if indexCol >= 0 {
				nr[indexCol] = int64(k)
			}
			out = append(out, nr)
		}
		if err := r.checkRows(len(out), op.OpPos); err != nil {
			return nil, err
		}
	}
	return &relation{cols: cols, rows: out}, nil
}

func expandValue(v any, bagAsArray bool) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	case map[string]any:
		out := make([]any, 0, len(x))
		for _, k := range sortedKeys(x) {
			if bagAsArray {
				out = append(out, []any{k, x[k]})
			} else {
				out = append(out, map[string]any{k: x[k]})
			}
		}
		return out
	}
	return []any{v}
}

// castTo is mv-expand's "to typeof(T)": a cast, not a parse, except that
// datetimes and timespans (which dynamic holds as strings) are parsed.
func castTo(t table.Type, v any) any {
	switch t {
	case table.String:
		if s, ok := v.(string); ok {
			return s
		}
		return nil
	case table.Long, table.Int:
		switch x := v.(type) {
		case int64:
			return x
		case float64:
			return convertTo(t, x)
		}
		return nil
	case table.Real:
		switch x := v.(type) {
		case int64:
			return float64(x)
		case float64:
			return x
		}
		return nil
	case table.Bool:
		if b, ok := v.(bool); ok {
			return b
		}
		return nil
	}
	return convertTo(t, v)
}
