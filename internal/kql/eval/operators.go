package eval

import (
	"slices"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

func (r *runner) apply(rel *relation, b boundOp) (*relation, error) {
	e := b.env
	switch op := b.op.(type) {
	case *syntax.Where:
		return r.where(rel, op, e)
	case *syntax.Extend, *syntax.Serialize:
		if items := windowItems(op); items != nil {
			return r.windowPass(rel, items, e)
		}
		if isRowStage(op) {
			return r.rowPipeline(rel, []boundOp{b})
		}
		return rel, nil
	case *syntax.Project:
		if windowItems(op) != nil {
			return r.windowProject(rel, op, e)
		}
		return r.project(rel, op, e)
	case *syntax.ProjectAway:
		return r.projectAway(rel, op.Cols, false)
	case *syntax.ProjectKeep:
		return r.projectAway(rel, op.Cols, true)
	case *syntax.ProjectReorder:
		return r.projectReorder(rel, op.Cols)
	case *syntax.ProjectRename:
		return r.projectRename(rel, op)
	case *syntax.MvExpand:
		return r.mvExpand(rel, op, e)
	case *syntax.MvApply:
		return r.mvApply(rel, op, e)
	case *syntax.Search:
		return r.search(rel, op, e)
	case *syntax.MakeSeries:
		return r.makeSeries(rel, op, e)
	case *syntax.TopNested:
		return r.topNested(rel, op, e)
	case *syntax.Evaluate:
		return r.bagUnpack(rel, op, e)
	case *syntax.Invoke:
		return r.udfTable(op.Call.NamePos, op.Call.Name, op.Call.Args, rel, e)
	case *syntax.Summarize:
		return r.summarize(rel, op, e)
	case *syntax.Sort:
		return r.sort(rel, op.Keys, e, -1)
	case *syntax.Top:
		n, err := r.constCount(op.N, e, "top")
		if err != nil {
			return nil, err
		}
		return r.sort(rel, op.Keys, e, n)
	case *syntax.Take:
		n, err := r.constCount(op.N, e, "take")
		if err != nil {
			return nil, err
		}
		if n < len(rel.rows) {
			return &relation{cols: rel.cols, rows: rel.rows[:n:n], shared: rel.shared}, nil
		}
		return rel, nil
	case *syntax.Distinct:
		return r.distinct(rel, op, e)
	case *syntax.Count:
		return &relation{
			cols: []table.Column{{Name: "Count", Type: table.Long}},
			rows: [][]any{{int64(len(rel.rows))}},
		}, nil
	case *syntax.Join:
		return r.join(rel, op, e)
	case *syntax.Union:
		return r.union(rel, op.Params, op.Tables, e)
	case *syntax.ParseOp:
		return r.parse(rel, op, e)
	case *syntax.As:
		r.asBind[op.Name] = rel
		return rel, nil
	case *syntax.GetSchema:
		out := &relation{cols: []table.Column{
			{Name: "ColumnName", Type: table.String},
			{Name: "ColumnOrdinal", Type: table.Int},
			{Name: "DataType", Type: table.String},
			{Name: "ColumnType", Type: table.String},
		}}
		for i, c := range rel.cols {
			out.rows = append(out.rows, []any{c.Name, int64(i), netType(c.Type), string(c.Type)})
		}
		return out, nil
	case *syntax.Render:
		return rel, nil
	}
	return nil, r.errorf(b.op.Pos(), "unsupported operator")
}

// constCount evaluates the row count of take/top.
func (r *runner) constCount(e syntax.Expr, en *env, what string) (int, error) {
	c, err := newScope(r, en, nil).compile(e)
	if err != nil {
		return 0, err
	}
	n, ok := toLong(c.val)
	if !c.isConst || !ok || c.typ == table.String {
		return 0, r.errorf(e.Pos(), "%s expects a constant number of rows", what)
	}
	if n < 0 {
		n = 0
	}
	if n > 1<<31 {
		n = 1 << 31
	}
	return int(n), nil
}

func (r *runner) where(rel *relation, op *syntax.Where, e *env) (*relation, error) {
	c, err := newScope(r, e, rel.cols).whereExpr(op)
	if err != nil {
		return nil, err
	}
	out := [][]any{}
	for _, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		if c.fn(row) == true {
			out = append(out, row)
		}
	}
	return &relation{cols: rel.cols, rows: out, shared: rel.shared}, nil
}

func colType(c *cexpr) table.Type {
	if c.typ == "" || c.typ == typeofType {
		return table.Dynamic
	}
	return c.typ
}

// extendSlot writes one computed column of an extend.
type extendSlot struct {
	idx int
	fn  func([]any) any
}

// compileExtend compiles the items of an extend over cols; it returns the
// slots and the new columns. Each item sees the columns computed by the
// items before it; an existing name is replaced in place.
func (r *runner) compileExtend(cols []table.Column, items []syntax.Assign, e *env) ([]extendSlot, []table.Column, error) {
	return r.compileExtendIn(cols, items, e, nil)
}

// compileExtendIn is compileExtend for a window pass at cur (nil for
// none, where window functions are errors).
func (r *runner) compileExtendIn(cols []table.Column, items []syntax.Assign, e *env, cur *windowCursor) ([]extendSlot, []table.Column, error) {
	inputWidth := len(cols)
	cols = slices.Clone(cols)
	slots := make([]extendSlot, 0, len(items))
	for _, it := range items {
		sc := newScope(r, e, cols)
		sc.packWidth = inputWidth
		sc.win = cur
		c, err := sc.compile(it.Expr)
		if err != nil {
			return nil, nil, err
		}
		if c.typ == typeofType {
			return nil, nil, r.errorf(c.pos, "typeof() is not a value")
		}
		name := it.Name
		if name == "" {
			name = syntax.DefaultName(it.Expr)
		}
		if name == "" {
			name = nextColumnName(cols, "Column")
		}
		idx := columnIndex(cols, name)
		if idx < 0 {
			idx = len(cols)
			cols = append(cols, table.Column{Name: name})
		}
		cols[idx].Type = colType(c)
		slots = append(slots, extendSlot{idx: idx, fn: c.fn})
	}
	return slots, cols, nil
}

// isRowStage reports whether op can run in a fused row pipeline.
func isRowStage(op syntax.Operator) bool {
	switch op := op.(type) {
	case *syntax.Where:
		return true
	case *syntax.Extend:
		return windowItems(op) == nil
	case *syntax.Serialize:
		return len(op.Items) > 0 && windowItems(op) == nil
	}
	return false
}

// rowPipeline runs a sequence of extend and where operators in one pass
// over the rows, writing each output row once.
func (r *runner) rowPipeline(rel *relation, ops []boundOp) (*relation, error) {
	type stage struct {
		slots []extendSlot
		pred  func([]any) any
	}
	cols := rel.cols
	var stages []stage
	for _, b := range ops {
		var items []syntax.Assign
		switch op := b.op.(type) {
		case *syntax.Where:
			c, err := newScope(r, b.env, cols).whereExpr(op)
			if err != nil {
				return nil, err
			}
			stages = append(stages, stage{pred: c.fn})
			continue
		case *syntax.Extend:
			items = op.Items
		case *syntax.Serialize:
			items = op.Items
		}
		slots, nc, err := r.compileExtend(cols, items, b.env)
		if err != nil {
			return nil, err
		}
		cols = nc
		stages = append(stages, stage{slots: slots})
	}
	alloc := rowAlloc{width: len(cols)}
	out := [][]any{}
	var buf []any
	for _, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		if buf == nil {
			buf = alloc.row()
		}
		copy(buf, row)
		keep := true
		for _, st := range stages {
			if st.pred != nil {
				if st.pred(buf) != true {
					keep = false
					break
				}
				continue
			}
			for _, s := range st.slots {
				buf[s.idx] = s.fn(buf)
			}
		}
		if keep {
			out = append(out, buf)
			buf = nil
		}
	}
	return &relation{cols: cols, rows: out}, nil
}

func (r *runner) project(rel *relation, op *syntax.Project, e *env) (*relation, error) {
	sc := newScope(r, e, rel.cols)
	var cols []table.Column
	var fns []func([]any) any
	var srcIdx []int
	for _, it := range op.Items {
		c, err := sc.compile(it.Expr)
		if err != nil {
			return nil, err
		}
		if c.typ == typeofType {
			return nil, r.errorf(c.pos, "typeof() is not a value")
		}
		name := it.Name
		if name == "" {
			name = syntax.DefaultName(it.Expr)
		}
		if name == "" {
			name = nextColumnName(cols, "Column")
		}
		if hasColumn(cols, name) {
			pos := it.NamePos
			if !pos.IsValid() {
				pos = it.Expr.Pos()
			}
			return nil, r.errorf(pos, "duplicate column name %q in project", name)
		}
		cols = append(cols, table.Column{Name: name, Type: colType(c)})
		fns = append(fns, c.fn)
		srcIdx = append(srcIdx, c.col)
	}
	alloc := rowAlloc{width: len(cols)}
	out := make([][]any, len(rel.rows))
	for i, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		nr := alloc.row()
		for j, f := range fns {
			if k := srcIdx[j]; k >= 0 {
				nr[j] = row[k]
			} else {
				nr[j] = f(row)
			}
		}
		out[i] = nr
	}
	return &relation{cols: cols, rows: out}, nil
}

// selectColumns builds a relation from the given column indexes.
func selectColumns(rel *relation, idx []int) *relation {
	cols := make([]table.Column, len(idx))
	for i, k := range idx {
		cols[i] = rel.cols[k]
	}
	alloc := rowAlloc{width: len(idx)}
	out := make([][]any, len(rel.rows))
	for i, row := range rel.rows {
		nr := alloc.row()
		for j, k := range idx {
			nr[j] = row[k]
		}
		out[i] = nr
	}
	return &relation{cols: cols, rows: out}
}

func (r *runner) matchPatterns(rel *relation, pats []syntax.ColPattern) ([]bool, error) {
	match := make([]bool, len(rel.cols))
	for _, p := range pats {
		found := false
		for i, c := range rel.cols {
			if globMatch(p.Pattern, c.Name) {
				match[i] = true
				found = true
			}
		}
		if !found && !containsStar(p.Pattern) {
			return nil, r.errorf(p.NamePos, "unknown column %q", p.Pattern)
		}
	}
	return match, nil
}

func containsStar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' {
			return true
		}
	}
	return false
}

// projectAway drops the matching columns (or, for project-keep, keeps only them).
func (r *runner) projectAway(rel *relation, pats []syntax.ColPattern, keep bool) (*relation, error) {
	match, err := r.matchPatterns(rel, pats)
	if err != nil {
		return nil, err
	}
	var idx []int
	for i := range rel.cols {
		if match[i] == keep {
			idx = append(idx, i)
		}
	}
	return selectColumns(rel, idx), nil
}

func (r *runner) projectReorder(rel *relation, pats []syntax.ColPattern) (*relation, error) {
	used := make([]bool, len(rel.cols))
	var idx []int
	for _, p := range pats {
		found := false
		for i, c := range rel.cols {
			if !used[i] && globMatch(p.Pattern, c.Name) {
				used[i] = true
				idx = append(idx, i)
				found = true
			}
		}
		if !found && !containsStar(p.Pattern) && !hasColumn(rel.cols, p.Pattern) {
			return nil, r.errorf(p.NamePos, "unknown column %q", p.Pattern)
		}
	}
	for i := range rel.cols {
		if !used[i] {
			idx = append(idx, i)
		}
	}
	return selectColumns(rel, idx), nil
}

func (r *runner) projectRename(rel *relation, op *syntax.ProjectRename) (*relation, error) {
	cols := slices.Clone(rel.cols)
	for _, it := range op.Items {
		i := columnIndex(cols, it.Old)
		if i < 0 {
			return nil, r.errorf(it.OldPos, "unknown column %q", it.Old)
		}
		if j := columnIndex(cols, it.New); j >= 0 && j != i {
			return nil, r.errorf(it.NewPos, "column %q already exists", it.New)
		}
		cols[i].Name = it.New
	}
	return &relation{cols: cols, rows: rel.rows, shared: rel.shared}, nil
}

func (r *runner) distinct(rel *relation, op *syntax.Distinct, e *env) (*relation, error) {
	src := rel
	if !op.All {
		p, err := r.project(rel, &syntax.Project{OpPos: op.OpPos, Items: op.Items}, e)
		if err != nil {
			return nil, err
		}
		src = p
	}
	seen := map[string]struct{}{}
	var buf []byte
	out := [][]any{}
	for _, row := range src.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		buf = buf[:0]
		for _, v := range row {
			buf = appendKey(buf, v)
		}
		if _, ok := seen[string(buf)]; ok {
			continue
		}
		seen[string(buf)] = struct{}{}
		out = append(out, row)
	}
	return &relation{cols: src.cols, rows: out, shared: src.shared}, nil
}
