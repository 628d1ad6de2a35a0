package eval

import (
	"sort"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// bagUnpack runs evaluate bag_unpack(Col [, prefix [, columnsConflict
// [, ignoredProperties]]]): a dynamic column of property bags becomes a
// column per property that any row has (sorted by name, each dynamic),
// in place of Col. A property name that is already a column is an error
// with columnsConflict 'error' (the default); 'replace_source' takes the
// bag's value, 'keep_source' keeps the column's.
func (r *runner) bagUnpack(rel *relation, op *syntax.Evaluate, e *env) (*relation, error) {
	call := op.Plugin
	if err := checkArgCount(newScope(r, e, rel.cols), call, 1, 4); err != nil {
		return nil, err
	}
	id, ok := call.Args[0].(*syntax.Ident)
	src := -1
	if ok {
		src = columnIndex(rel.cols, id.Name)
	}
	if src < 0 {
		return nil, r.errorf(call.Args[0].Pos(), "bag_unpack expects a column of the input as its first argument")
	}
	if rel.cols[src].Type != table.Dynamic {
		return nil, r.errorf(call.Args[0].Pos(), "bag_unpack expects a dynamic column, not %s", rel.cols[src].Type)
	}
	str := func(i int, what string) (string, error) {
		c, err := newScope(r, e, nil).compile(call.Args[i])
		if err != nil {
			return "", err
		}
		s, ok := c.val.(string)
		if !c.isConst || !ok {
			return "", r.errorf(c.pos, "bag_unpack expects a constant string %s", what)
		}
		return s, nil
	}
	prefix, conflict := "", "error"
	var err error
	if len(call.Args) > 1 {
		if prefix, err = str(1, "prefix"); err != nil {
			return nil, err
		}
	}
	if len(call.Args) > 2 {
		if conflict, err = str(2, "columnsConflict"); err != nil {
			return nil, err
		}
		switch conflict {
		case "error", "replace_source", "keep_source":
		default:
			return nil, r.errorf(call.Args[2].Pos(), "bag_unpack columnsConflict must be 'error', 'replace_source' or 'keep_source', not %q", conflict)
		}
	}
	ignored := map[string]bool{}
	if len(call.Args) > 3 {
		c, err := newScope(r, e, nil).compile(call.Args[3])
		if err != nil {
			return nil, err
		}
		l, ok := c.val.([]any)
		if !c.isConst || !ok {
			return nil, r.errorf(c.pos, "bag_unpack expects a constant dynamic array of ignored properties")
		}
		for _, x := range l {
			ignored[toStr(x)] = true
		}
	}
	seen := map[string]bool{}
	for _, row := range rel.rows {
		if m, ok := row[src].(map[string]any); ok {
			for k := range m {
				if !ignored[k] {
					seen[k] = true
				}
			}
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The input's columns without the bag, then a column per property.
	var cols []table.Column
	var keep []int
	for i, c := range rel.cols {
		if i != src {
			cols = append(cols, c)
			keep = append(keep, i)
		}
	}
	type out struct {
		key string
		idx int  // the column it fills
		bag bool // false: keep the source column's value
	}
	var outs []out
	for _, k := range keys {
		name := prefix + k
		if j := columnIndex(cols, name); j >= 0 {
			switch conflict {
			case "error":
				return nil, r.errorf(call.NamePos, "bag_unpack: property %q is already a column (use columnsConflict 'replace_source' or 'keep_source')", name)
			case "replace_source":
				cols[j].Type = table.Dynamic
				outs = append(outs, out{key: k, idx: j, bag: true})
			}
			continue
		}
		outs = append(outs, out{key: k, idx: len(cols), bag: true})
		cols = append(cols, table.Column{Name: name, Type: table.Dynamic})
	}
	alloc := rowAlloc{width: len(cols)}
	rows := make([][]any, len(rel.rows))
	for n, row := range rel.rows {
		nr := alloc.row()
		for j, k := range keep {
			nr[j] = row[k]
		}
		m, _ := row[src].(map[string]any)
		for _, o := range outs {
			nr[o.idx] = m[o.key]
		}
		rows[n] = nr
	}
	return &relation{cols: cols, rows: rows}, nil
}
