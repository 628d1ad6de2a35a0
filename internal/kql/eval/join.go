package eval

import (
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

func joinKind(k string) string {
	switch k {
	case "":
		return "innerunique"
	case "anti", "leftantisemi":
		return "leftanti"
	case "rightantisemi":
		return "rightanti"
	}
	return k
}

// join implements the join kinds by hashing the right side on the key.
// Output columns are the left columns then the right ones; a right column
// whose name is taken gets a numeric suffix (Key -> Key1), as in Kusto.
func (r *runner) join(left *relation, op *syntax.Join, e *env) (*relation, error) {
	right, err := r.evalTabular(op.Right, e)
	if err != nil {
		return nil, err
	}
	kind := joinKind(op.Kind)
	if op.Lookup && op.Kind == "" {
		kind = "leftouter"
	}
	li := make([]int, len(op.On))
	ri := make([]int, len(op.On))
	for i, on := range op.On {
		li[i] = columnIndex(left.cols, on.Left)
		if li[i] < 0 {
			return nil, r.errorf(on.OnPos, "join: unknown column %q on the left side", on.Left)
		}
		ri[i] = columnIndex(right.cols, on.Right)
		if ri[i] < 0 {
			return nil, r.errorf(on.OnPos, "join: unknown column %q on the right side", on.Right)
		}
		lt, rt := left.cols[li[i]].Type, right.cols[ri[i]].Type
		if !comparableTypes(lt, rt) {
			return nil, r.errorf(on.OnPos, "join: key %s is %s on the left but %s on the right", on.Left, lt, rt)
		}
	}
	keyOfRow := func(row []any, idx []int, buf []byte) ([]byte, bool) {
		buf = buf[:0]
		for _, k := range idx {
			v := row[k]
			if v == nil {
				return buf, false
			}
			buf = appendKey(buf, v)
		}
		return buf, true
	}
	// Hash the right side.
	byKey := map[string][]int{}
	var buf []byte
	for j, row := range right.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		var ok bool
		buf, ok = keyOfRow(row, ri, buf)
		if ok {
			byKey[string(buf)] = append(byKey[string(buf)], j)
		}
	}
	leftRows := left.rows
	if kind == "innerunique" {
		seen := map[string]struct{}{}
		leftRows = nil
		for _, row := range left.rows {
			var ok bool
			buf, ok = keyOfRow(row, li, buf)
			if !ok {
				continue
			}
			if _, dup := seen[string(buf)]; dup {
				continue
			}
			seen[string(buf)] = struct{}{}
			leftRows = append(leftRows, row)
		}
		kind = "inner"
	}

	var cols []table.Column
	switch kind {
	case "leftanti", "leftsemi":
		cols = left.cols
	case "rightanti", "rightsemi":
		cols = right.cols
	default:
		cols = append(cols, left.cols...)
		for _, c := range right.cols {
			c.Name = dedupName(cols, c.Name)
			cols = append(cols, c)
		}
	}
	lw := len(left.cols)
	alloc := rowAlloc{width: lw + len(right.cols)}
	pair := func(l, rr []any) []any {
		row := alloc.row()
		copy(row, l)
		copy(row[lw:], rr)
		return row
	}
	out := [][]any{}
	matchedRight := make([]bool, len(right.rows))
	for _, l := range leftRows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		var matches []int
		if k, ok := keyOfRow(l, li, buf); ok {
			matches = byKey[string(k)]
			buf = k
		}
		for _, j := range matches {
			matchedRight[j] = true
		}
		switch kind {
		case "inner":
			for _, j := range matches {
				out = append(out, pair(l, right.rows[j]))
			}
		case "leftouter", "fullouter":
			if len(matches) == 0 {
				out = append(out, pair(l, nil))
			}
			for _, j := range matches {
				out = append(out, pair(l, right.rows[j]))
			}
		case "rightouter":
			for _, j := range matches {
				out = append(out, pair(l, right.rows[j]))
			}
		case "leftsemi":
			if len(matches) > 0 {
				out = append(out, l)
			}
		case "leftanti":
			if len(matches) == 0 {
				out = append(out, l)
			}
		}
		if err := r.checkRows(len(out), op.OpPos); err != nil {
			return nil, err
		}
	}
	switch kind {
	case "rightouter", "fullouter":
		for j, rr := range right.rows {
			if !matchedRight[j] {
				row := alloc.row()
				copy(row[lw:], rr)
				out = append(out, row)
			}
		}
	case "rightsemi", "rightanti":
		for j, rr := range right.rows {
			if matchedRight[j] == (kind == "rightsemi") {
				out = append(out, rr)
			}
		}
	}
	shared := false
	switch kind {
	case "leftsemi", "leftanti":
		shared = left.shared
	case "rightsemi", "rightanti":
		shared = right.shared
	}
	res := &relation{cols: cols, rows: out, shared: shared}
	if op.Lookup {
		res = dropRightKeys(res, lw, ri, right.cols)
	}
	return res, nil
}

// dropRightKeys removes the right side's key columns from a lookup's
// output (the left ones hold the same values), and names the other right
// columns again without them.
func dropRightKeys(rel *relation, lw int, ri []int, rightCols []table.Column) *relation {
	isKey := map[int]bool{}
	for _, i := range ri {
		isKey[i] = true
	}
	keep := make([]int, 0, len(rel.cols))
	cols := append([]table.Column(nil), rel.cols[:lw]...)
	for i := 0; i < lw; i++ {
		keep = append(keep, i)
	}
	for j, c := range rightCols {
		if isKey[j] {
			continue
		}
		c.Name = dedupName(cols, c.Name)
		cols = append(cols, c)
		keep = append(keep, lw+j)
	}
	out := selectColumns(rel, keep)
	out.cols = cols
	return out
}
