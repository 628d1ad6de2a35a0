package eval

import (
	"container/heap"
	"slices"

	"github.com/kdfir/kdfir/internal/kql/syntax"
)

type sortSpec struct {
	desc       bool
	nullsFirst bool
}

// compareSortKey orders two key values; nulls go first or last whatever
// the direction (Kusto: nulls first for asc, last for desc by default).
func compareSortKey(a, b any, s sortSpec) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			if s.nullsFirst {
				return -1
			}
			return 1
		}
		if s.nullsFirst {
			return 1
		}
		return -1
	}
	c := sortCompare(a, b)
	if s.desc {
		return -c
	}
	return c
}

// sort orders rows by keys; with limit >= 0 only the first limit rows are
// kept (top).
func (r *runner) sort(rel *relation, keys []syntax.SortKey, e *env, limit int) (*relation, error) {
	sc := newScope(r, e, rel.cols)
	k := len(keys)
	fns := make([]func([]any) any, k)
	specs := make([]sortSpec, k)
	for i, key := range keys {
		c, err := sc.compile(key.Expr)
		if err != nil {
			return nil, err
		}
		fns[i] = c.fn
		specs[i] = sortSpec{desc: key.Desc, nullsFirst: !key.Desc}
		switch key.Nulls {
		case "first":
			specs[i].nullsFirst = true
		case "last":
			specs[i].nullsFirst = false
		}
	}
	n := len(rel.rows)
	vals := make([]any, n*k)
	for i, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		for j, f := range fns {
			vals[i*k+j] = f(row)
		}
	}
	cmpIdx := func(a, b int) int {
		for j := 0; j < k; j++ {
			if c := compareSortKey(vals[a*k+j], vals[b*k+j], specs[j]); c != 0 {
				return c
			}
		}
		return a - b // stable
	}
	var idx []int
	if limit >= 0 && limit < n/4 {
		idx = topN(n, limit, cmpIdx)
	} else {
		idx = make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, cmpIdx)
		if limit >= 0 && limit < n {
			idx = idx[:limit]
		}
	}
	out := make([][]any, len(idx))
	for i, j := range idx {
		out[i] = rel.rows[j]
	}
	return &relation{cols: rel.cols, rows: out, shared: rel.shared}, nil
}

// topN selects the limit smallest indexes under cmp, in order.
func topN(n, limit int, cmp func(a, b int) int) []int {
	if limit == 0 {
		return nil
	}
	h := &idxHeap{cmp: cmp}
	for i := 0; i < n; i++ {
		if h.Len() < limit {
			heap.Push(h, i)
			continue
		}
		if cmp(i, h.idx[0]) < 0 {
			h.idx[0] = i
			heap.Fix(h, 0)
		}
	}
	out := h.idx
	slices.SortFunc(out, cmp)
	return out
}

// idxHeap is a max-heap (under cmp) of row indexes.
type idxHeap struct {
	idx []int
	cmp func(a, b int) int
}

func (h *idxHeap) Len() int           { return len(h.idx) }
func (h *idxHeap) Less(i, j int) bool { return h.cmp(h.idx[i], h.idx[j]) > 0 }
func (h *idxHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *idxHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *idxHeap) Pop() any {
	v := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return v
}
