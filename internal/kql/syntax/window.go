package syntax

import (
	"strings"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// WindowFuncs are the functions that read the rows around the current
// one: they need a serialized row set.
var WindowFuncs = map[string]bool{"row_number": true, "prev": true, "next": true}

// MakesOrder reports whether op's output is serialized whatever its
// input (sort, top, serialize, getschema; range, as a source, is too).
func MakesOrder(op Operator) bool {
	switch op.(type) {
	case *Sort, *Top, *Serialize, *GetSchema:
		return true
	}
	return false
}

// KeepsOrder reports whether op keeps a serialized input serialized.
func KeepsOrder(op Operator) bool {
	switch op.(type) {
	case *Where, *Extend, *Project, *ProjectAway, *ProjectKeep, *ProjectRename, *ProjectReorder,
		*Take, *MvExpand, *ParseOp, *As, *Render:
		return true
	}
	return false
}

// Serialized reports whether src followed by ops is a serialized row set.
func Serialized(src Tabular, ops []Operator) bool {
	_, s := src.(*Range)
	for _, op := range ops {
		s = MakesOrder(op) || s && KeepsOrder(op)
	}
	return s
}

// UsesWindow reports whether any of ops calls a window function.
func UsesWindow(ops []Operator) bool {
	for _, op := range ops {
		var items []Assign
		switch x := op.(type) {
		case *Extend:
			items = x.Items
		case *Serialize:
			items = x.Items
		case *Project:
			items = x.Items
		}
		for _, it := range items {
			if _, ok := WindowCall(it.Expr); ok {
				return true
			}
		}
	}
	return false
}

// WindowCall finds a call of a window function in e, and its position.
func WindowCall(e Expr) (Pos, bool) {
	var found Pos
	ok := false
	var walk func(e Expr)
	walk = func(e Expr) {
		if ok || e == nil {
			return
		}
		switch x := e.(type) {
		case *Call:
			if WindowFuncs[x.Name] {
				found, ok = x.NamePos, true
				return
			}
			for _, a := range x.Args {
				walk(a)
			}
		case *Unary:
			walk(x.X)
		case *Binary:
			walk(x.L)
			walk(x.R)
		case *InExpr:
			walk(x.X)
			for _, a := range x.List {
				walk(a)
			}
		case *Between:
			walk(x.X)
			walk(x.Lo)
			walk(x.Hi)
		case *Member:
			walk(x.X)
		case *Index:
			walk(x.X)
			walk(x.Index)
		}
	}
	walk(e)
	return found, ok
}

// SearchPredicate is what search "term" tests of a row with the given
// columns: some column, as a string, has the term ("term*": a word
// starting with it, "*term": ending with it, "*term*": containing it),
// case-insensitively unless the search is case-sensitive. The evaluator
// and the SQL compiler both filter with it.
func SearchPredicate(s *Search, cols []string) Expr {
	term, op := s.Term, "has"
	switch {
	case strings.HasPrefix(term, "*") && strings.HasSuffix(term, "*"):
		op, term = "contains", strings.Trim(term, "*")
	case strings.HasSuffix(term, "*"):
		op, term = "hasprefix", strings.TrimSuffix(term, "*")
	case strings.HasPrefix(term, "*"):
		op, term = "hassuffix", strings.TrimPrefix(term, "*")
	}
	if s.CaseSensitive {
		op += "_cs"
	}
	var pred Expr = &Literal{LitPos: s.OpPos, Type: table.Bool, Value: false}
	for i, c := range cols {
		has := &Binary{OpPos: s.OpPos, Op: op,
			L: &Call{NamePos: s.OpPos, Name: "tostring", Args: []Expr{&Ident{NamePos: s.OpPos, Name: c}}},
			R: &Literal{LitPos: s.OpPos, Type: table.String, Value: term}}
		if i == 0 {
			pred = has
		} else {
			pred = &Binary{OpPos: s.OpPos, Op: "or", L: pred, R: has}
		}
	}
	return pred
}
