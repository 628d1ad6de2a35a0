package syntax

import (
	"strings"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// ---------------------------------------------------------------------------
// Operators.

func (p *parser) parseOperatorRecover() (op Operator) {
	start := p.i
	defer func() {
		if r := recover(); r != nil {
			if !isBailout(r) {
				panic(r)
			}
			p.syncOperator(start)
			op = nil
		}
	}()
	op = p.parseOperator()
	if t := p.tok(); !(t.Kind == tokEOF || t.isPunct("|") || t.isPunct(";") || t.isPunct(")") || t.isPunct("}")) {
		p.failExpected(t, "'|' or end of operator")
	}
	return op
}

var unsupportedOps = map[string]bool{
	"top-hitters": true, "fork": true, "facet": true,
	"partition": true, "scan": true, "find": true, "sample-distinct": true,
	"reduce": true, "parse-kv": true, "consume": true, "externaldata": true,
	"as-of": true, "graph-match": true, "make-graph": true,
}

func (p *parser) parseOperator() Operator {
	t := p.tok()
	if t.Kind != tokIdent {
		p.failExpected(t, "an operator after '|'")
	}
	p.next()
	pos := t.Pos
	switch t.Text {
	case "where", "filter":
		return &Where{OpPos: pos, Pred: p.parseExpr()}
	case "extend":
		return &Extend{OpPos: pos, Items: p.parseAssigns()}
	case "project":
		return &Project{OpPos: pos, Items: p.parseAssigns()}
	case "project-away":
		return &ProjectAway{OpPos: pos, Cols: p.parseColPatterns()}
	case "project-keep":
		return &ProjectKeep{OpPos: pos, Cols: p.parseColPatterns()}
	case "project-reorder":
		return &ProjectReorder{OpPos: pos, Cols: p.parseColPatterns()}
	case "project-rename":
		return p.parseProjectRename(pos)
	case "mv-expand", "mvexpand":
		return p.parseMvExpand(pos)
	case "mv-apply":
		return p.parseMvApply(pos)
	case "search":
		return p.parseSearchTerm(pos)
	case "make-series":
		return p.parseMakeSeries(pos)
	case "top-nested":
		return p.parseTopNested(pos)
	case "evaluate":
		p.skipHints()
		name, npos := p.expectName("a plugin name after evaluate")
		if name != "bag_unpack" {
			p.fail(npos, "evaluate plugin %q is not supported (only bag_unpack is)", name)
		}
		return &Evaluate{OpPos: pos, Plugin: &Call{NamePos: npos, Name: name, Args: p.parseCallArgs()}}
	case "invoke":
		name, npos := p.expectName("a function name after invoke")
		return &Invoke{OpPos: pos, Call: &Call{NamePos: npos, Name: name, Args: p.parseCallArgs()}}
	case "summarize":
		return p.parseSummarize(pos)
	case "sort", "order":
		p.expectKeyword("by")
		return &Sort{OpPos: pos, Keys: p.parseSortKeys()}
	case "top":
		n := p.parseExpr()
		p.expectKeyword("by")
		return &Top{OpPos: pos, N: n, Keys: p.parseSortKeys()}
	case "take", "limit", "sample":
		return &Take{OpPos: pos, N: p.parseExpr()}
	case "distinct":
		if p.acceptPunct("*") {
			return &Distinct{OpPos: pos, All: true}
		}
		return &Distinct{OpPos: pos, Items: p.parseAssigns()}
	case "count":
		return &Count{OpPos: pos}
	case "join":
		return p.parseJoin(pos, false)
	case "lookup":
		return p.parseJoin(pos, true)
	case "union":
		params, tables := p.parseUnionBody()
		return &Union{OpPos: pos, Params: params, Tables: tables}
	case "parse", "parse-where":
		return p.parseParse(pos, t.Text == "parse-where")
	case "as":
		p.skipHints()
		name, npos := p.expectName("a name after as")
		return &As{OpPos: pos, Name: name, NamePos: npos}
	case "getschema":
		return &GetSchema{OpPos: pos}
	case "render":
		p.skipOperatorRest()
		return &Render{OpPos: pos}
	case "serialize":
		s := &Serialize{OpPos: pos}
		if p.isNameStart() || p.tok().Kind != tokEOF && !p.isPunct("|") && !p.isPunct(";") && !p.isPunct(")") {
			s.Items = p.parseAssigns()
		}
		return s
	}
	if unsupportedOps[t.Text] {
		p.fail(pos, "operator %q is not supported", t.Text)
	}
	p.fail(pos, "unknown operator %q", t.Text)
	return nil
}

// skipOperatorRest skips tokens to the end of the current operator.
func (p *parser) skipOperatorRest() {
	depth := 0
	for {
		t := p.tok()
		if t.Kind == tokEOF || depth == 0 && (t.isPunct("|") || t.isPunct(";") || t.isPunct(")")) {
			return
		}
		depth += nesting(t)
		p.next()
	}
}

// skipHints skips hint.name=value parameters.
func (p *parser) skipHints() {
	for p.isIdent("hint") && p.peekN(1).isPunct(".") {
		p.next()
		p.next()
		p.expectName("a hint name")
		p.expectPunct("=")
		p.paramValue()
	}
}

// paramValue reads the value of a name=value operator parameter.
func (p *parser) paramValue() string {
	t := p.tok()
	switch t.Kind {
	case tokIdent, tokInt, tokReal:
		p.next()
		return t.Text
	case tokString:
		p.next()
		return t.Str
	}
	p.failExpected(t, "a parameter value")
	return ""
}

func (p *parser) parseAssigns() []Assign {
	var out []Assign
	for {
		if names, ok := p.tupleNames(); ok {
			out = append(out, p.tupleAssign(names)...)
		} else {
			out = append(out, spreadOutputs(p.parseAssign())...)
		}
		if !p.acceptPunct(",") {
			return out
		}
	}
}

// tupleNames reads the "(a, b, c) =" of a tuple assignment, if one
// starts here.
func (p *parser) tupleNames() ([]token, bool) {
	if !p.isPunct("(") || !p.peekN(1).isName() {
		return nil, false
	}
	var names []token
	j := p.i + 1
	for ; j+1 < len(p.toks) && p.toks[j].isName(); j += 2 {
		names = append(names, p.toks[j])
		if !p.toks[j+1].isPunct(",") {
			break
		}
	}
	if j+2 >= len(p.toks) || !p.toks[j+1].isPunct(")") || !p.toks[j+2].isPunct("=") {
		return nil, false
	}
	p.i = j + 3
	return names, true
}

// tupleAssign is "(a, b, c) = f(...)" for a function that returns
// several columns (MultiOutput): a = f(...).first, and so on.
func (p *parser) tupleAssign(names []token) []Assign {
	x := p.parseExpr()
	call, ok := x.(*Call)
	outs := MultiOutput[callName(call, ok)]
	if !ok || outs == nil {
		p.fail(x.Pos(), "a tuple assignment needs a function that returns several columns, such as series_decompose_anomalies()")
		return nil
	}
	if len(names) > len(outs) {
		p.fail(names[len(outs)].Pos, "%s returns %d columns (%s), not %d", call.Name, len(outs), strings.Join(outs, ", "), len(names))
		return nil
	}
	out := make([]Assign, len(names))
	for i, n := range names {
		out[i] = Assign{Name: n.Text, NamePos: n.Pos, Expr: &Member{X: call, Name: outs[i], NamePos: call.NamePos}}
	}
	return out
}

func callName(c *Call, ok bool) string {
	if !ok {
		return ""
	}
	return c.Name
}

// spreadOutputs gives an unnamed call of a function that returns several
// columns one column per output, named as Kusto names them:
// "series_decompose_anomalies(y)" gives series_decompose_anomalies_y_ad_flag,
// series_decompose_anomalies_y_ad_score and series_decompose_anomalies_y_baseline.
func spreadOutputs(a Assign) []Assign {
	call, ok := a.Expr.(*Call)
	outs := MultiOutput[callName(call, ok)]
	if a.Name != "" || outs == nil {
		return []Assign{a}
	}
	prefix := call.Name
	if len(call.Args) > 0 {
		if n := DefaultName(call.Args[0]); n != "" {
			prefix += "_" + n
		}
	}
	out := make([]Assign, len(outs))
	for i, o := range outs {
		out[i] = Assign{Name: prefix + "_" + o, NamePos: call.NamePos, Expr: &Member{X: call, Name: o, NamePos: call.NamePos}}
	}
	return out
}

func (p *parser) parseAssign() Assign {
	t := p.tok()
	if t.isName() && p.peekN(1).isPunct("=") {
		p.next()
		p.next()
		return Assign{Name: t.Text, NamePos: t.Pos, Expr: p.parseExpr()}
	}
	if t.isPunct("[") && p.peekN(1).Kind == tokString && p.peekN(2).isPunct("]") && p.peekN(3).isPunct("=") {
		name, _ := p.bracketName()
		p.next()
		return Assign{Name: name, NamePos: t.Pos, Expr: p.parseExpr()}
	}
	if t.isPunct("(") && p.peekN(1).isName() && (p.peekN(2).isPunct(",") || p.peekN(2).isPunct(")")) {
		// (a, b) = expr: only detect to give a clear error.
		j := p.i + 1
		for j < len(p.toks) && (p.toks[j].isName() || p.toks[j].isPunct(",")) {
			j++
		}
		if j+1 < len(p.toks) && p.toks[j].isPunct(")") && p.toks[j+1].isPunct("=") {
			p.fail(t.Pos, "tuple assignments are not supported")
		}
	}
	return Assign{Expr: p.parseExpr()}
}

func (p *parser) parseColPatterns() []ColPattern {
	var out []ColPattern
	for {
		start := p.tok()
		if name, ok := p.bracketName(); ok {
			out = append(out, ColPattern{NamePos: start.Pos, Pattern: name})
		} else {
			var b strings.Builder
			end := -1
			for {
				t := p.tok()
				if !(t.isName() || t.isPunct("*")) || end >= 0 && t.Pos.Offset != end {
					break
				}
				b.WriteString(t.Text)
				end = t.End
				p.next()
			}
			if b.Len() == 0 {
				p.failExpected(p.tok(), "a column name")
			}
			out = append(out, ColPattern{NamePos: start.Pos, Pattern: b.String()})
		}
		if !p.acceptPunct(",") {
			return out
		}
	}
}

func (p *parser) parseProjectRename(pos Pos) Operator {
	r := &ProjectRename{OpPos: pos}
	for {
		nn, np := p.expectName("a new column name")
		p.expectPunct("=")
		on, op := p.expectName("an existing column name")
		r.Items = append(r.Items, Rename{New: nn, NewPos: np, Old: on, OldPos: op})
		if !p.acceptPunct(",") {
			return r
		}
	}
}

func (p *parser) parseMvExpand(pos Pos) Operator {
	m := &MvExpand{OpPos: pos, BagExpansion: "bag"}
	for p.tok().isName() && p.peekN(1).isPunct("=") {
		switch p.tok().Text {
		case "bagexpansion", "kind":
			p.next()
			p.next()
			t := p.tok()
			v := p.paramValue()
			if v != "bag" && v != "array" {
				p.fail(t.Pos, "mv-expand %s must be bag or array", "kind")
			}
			m.BagExpansion = v
			continue
		case "with_itemindex":
			p.next()
			p.next()
			m.WithItemIndex, _ = p.expectName("an index column name")
			continue
		}
		break
	}
	for {
		var it MvItem
		t := p.tok()
		if t.isName() && p.peekN(1).isPunct("=") {
			p.next()
			p.next()
			it.Name, it.NamePos = t.Text, t.Pos
		}
		it.Expr = p.parseExpr()
		if p.acceptIdent("to") {
			p.expectKeyword("typeof")
			p.expectPunct("(")
			it.ToType = p.parseTypeName()
			p.expectPunct(")")
		}
		m.Items = append(m.Items, it)
		if !p.acceptPunct(",") {
			break
		}
	}
	if p.acceptIdent("limit") {
		m.Limit = p.parseExpr()
	}
	return m
}

// parseSearchTerm parses "[kind=...] "term"" after search.
func (p *parser) parseSearchTerm(pos Pos) *Search {
	s := &Search{OpPos: pos}
	for p.isIdent("kind") && p.peekN(1).isPunct("=") {
		p.next()
		p.next()
		vt := p.tok()
		switch v := p.paramValue(); v {
		case "case_sensitive":
			s.CaseSensitive = true
		case "case_insensitive":
		default:
			p.fail(vt.Pos, "search kind must be case_sensitive or case_insensitive, not %q", v)
		}
	}
	if p.isIdent("in") {
		return s // the caller reads the tables
	}
	t := p.tok()
	if t.Kind != tokString {
		p.fail(t.Pos, "only search \"term\" is supported (not column predicates or expressions)")
	}
	p.next()
	s.Term = t.Str
	if strings.Trim(s.Term, "*") == "" {
		p.fail(t.Pos, "search needs a term")
	}
	return s
}

func (p *parser) parseMakeSeries(pos Pos) Operator {
	ms := &MakeSeries{OpPos: pos}
	for p.isIdent("kind") && p.peekN(1).isPunct("=") {
		p.next()
		p.next()
		vt := p.tok()
		if v := p.paramValue(); v != "nonempty" {
			p.fail(vt.Pos, "make-series kind must be nonempty, not %q", v)
		}
		ms.NonEmpty = true
	}
	p.skipHints()
	for {
		a := SeriesAgg{Assign: p.parseAssign()}
		if p.isIdent("default") && p.peekN(1).isPunct("=") {
			p.next()
			p.next()
			a.Default = p.parseExpr()
		}
		ms.Aggs = append(ms.Aggs, a)
		if !p.acceptPunct(",") {
			break
		}
	}
	p.expectKeyword("on")
	if t := p.tok(); t.isName() && p.peekN(1).isIdent("in") && p.peekN(2).isIdent("range") {
		// "on T in range(...)": T is a column, not the left of an in.
		p.next()
		ms.Axis = &Ident{Name: t.Text, NamePos: t.Pos}
	} else {
		ms.Axis = p.parseExpr()
	}
	if p.acceptIdent("in") {
		// The older form: in range(start, stop, step).
		if !p.isIdent("range") || !p.peekN(1).isPunct("(") {
			p.failExpected(p.tok(), "range(start, stop, step) after in")
		}
		p.next()
		p.next()
		ms.InRange = true
		ms.From = p.parseExpr()
		p.expectPunct(",")
		ms.To = p.parseExpr()
		p.expectPunct(",")
		ms.Step = p.parseExpr()
		p.expectPunct(")")
		if p.acceptIdent("by") {
			ms.By = p.parseAssigns()
		}
		return ms
	}
	if p.acceptIdent("from") {
		ms.From = p.parseExpr()
	}
	if p.acceptIdent("to") {
		ms.To = p.parseExpr()
	}
	p.expectKeyword("step")
	ms.Step = p.parseExpr()
	if p.acceptIdent("by") {
		ms.By = p.parseAssigns()
	}
	return ms
}

func (p *parser) parseTopNested(pos Pos) Operator {
	tn := &TopNested{OpPos: pos}
	lpos := pos
	for {
		l := TopNestedLevel{Pos: lpos, Desc: true}
		if !p.isIdent("of") {
			l.N = p.parseExpr()
		}
		p.expectKeyword("of")
		l.Of = p.parseAssign()
		if p.acceptIdent("with") {
			p.expectKeyword("others")
			p.expectPunct("=")
			l.Others = p.parseExpr()
		}
		p.expectKeyword("by")
		l.Agg = p.parseAssign()
		if p.acceptIdent("asc") {
			l.Desc = false
		} else {
			p.acceptIdent("desc")
		}
		tn.Levels = append(tn.Levels, l)
		if !p.isPunct(",") {
			return tn
		}
		p.next()
		t := p.tok()
		if !t.isIdent("top-nested") {
			p.failExpected(t, "top-nested after ','")
		}
		p.next()
		lpos = t.Pos
	}
}

func (p *parser) parseMvApply(pos Pos) Operator {
	m := &MvApply{OpPos: pos, Expand: p.parseMvExpand(pos).(*MvExpand)}
	p.expectKeyword("on")
	lp := p.expectPunct("(")
	sub := &Pipeline{Source: &TableRef{NamePos: lp.Pos, Name: MvApplyInput}}
	for {
		sub.Ops = append(sub.Ops, p.parseOperator())
		if !p.acceptPunct("|") {
			break
		}
	}
	p.expectPunct(")")
	m.Sub = sub
	return m
}

func (p *parser) parseSummarize(pos Pos) Operator {
	s := &Summarize{OpPos: pos}
	p.skipHints()
	if !p.isIdent("by") {
		s.Aggs = p.expandPercentiles(p.parseAssigns())
	}
	if p.acceptIdent("by") {
		s.By = p.parseAssigns()
	}
	return s
}

// expandPercentiles rewrites percentiles(x, p1, p2, ...) into one
// percentile(x, p) per percentile, named percentile_x_p as Kusto names
// them, so that the evaluator and the SQL compiler see only percentile.
func (p *parser) expandPercentiles(aggs []Assign) []Assign {
	var out []Assign
	for _, a := range aggs {
		call, ok := a.Expr.(*Call)
		if !ok || call.Name != "percentiles" {
			out = append(out, a)
			continue
		}
		if len(call.Args) < 2 {
			p.errorAt(call.NamePos, "function percentiles expects an expression and at least one percentile, got %d argument%s", len(call.Args), map[bool]string{true: "", false: "s"}[len(call.Args) == 1])
			continue
		}
		if a.Name != "" && len(call.Args) > 2 {
			p.errorAt(a.NamePos, "percentiles with several percentiles makes several columns: leave out the name %q", a.Name)
			continue
		}
		for _, pc := range call.Args[1:] {
			one := &Call{NamePos: call.NamePos, Name: "percentile", Args: []Expr{call.Args[0], pc}}
			name := a.Name
			if name == "" {
				name = PercentileName(call.Args[0], pc)
			}
			out = append(out, Assign{Name: name, NamePos: a.NamePos, Expr: one})
		}
	}
	return out
}

func (p *parser) parseSortKeys() []SortKey {
	var keys []SortKey
	for {
		k := SortKey{Expr: p.parseExpr(), Desc: true}
		if p.acceptIdent("asc") {
			k.Desc = false
		} else {
			p.acceptIdent("desc")
		}
		if p.acceptIdent("nulls") {
			t := p.tok()
			switch {
			case p.acceptIdent("first"):
				k.Nulls = "first"
			case p.acceptIdent("last"):
				k.Nulls = "last"
			default:
				p.failExpected(t, "first or last")
			}
		}
		keys = append(keys, k)
		if !p.acceptPunct(",") {
			return keys
		}
	}
}

var joinKinds = map[string]bool{
	"inner": true, "innerunique": true, "leftouter": true, "rightouter": true,
	"fullouter": true, "leftanti": true, "anti": true, "leftantisemi": true,
	"rightanti": true, "rightantisemi": true, "leftsemi": true, "rightsemi": true,
}

func (p *parser) parseJoin(pos Pos, lookup bool) Operator {
	j := &Join{OpPos: pos, Lookup: lookup}
	for {
		p.skipHints()
		t := p.tok()
		if !(t.isName() && p.peekN(1).isPunct("=")) {
			break
		}
		p.next()
		p.next()
		vt := p.tok()
		v := p.paramValue()
		switch t.Text {
		case "kind":
			if lookup && v != "leftouter" && v != "inner" {
				p.fail(vt.Pos, "lookup kind must be leftouter or inner, not %q", v)
			}
			if !joinKinds[v] {
				p.fail(vt.Pos, "unknown join kind %q", v)
			}
			j.Kind = v
		default:
			p.fail(t.Pos, "unknown join parameter %q", t.Text)
		}
	}
	t := p.tok()
	switch {
	case t.isPunct("("):
		p.next()
		j.Right = p.parseTabular()
		p.expectPunct(")")
	case p.isNameStart():
		name, npos := p.expectName("a table")
		j.Right = &TableRef{NamePos: npos, Name: name}
	default:
		p.failExpected(t, "a table or '(' after "+map[bool]string{false: "join", true: "lookup"}[lookup])
	}
	p.expectKeyword("on")
	for {
		e := p.parseExpr()
		p.joinConds(e, j)
		if !p.acceptPunct(",") {
			break
		}
	}
	return j
}

func (p *parser) joinConds(e Expr, j *Join) {
	switch e := e.(type) {
	case *Ident:
		if !strings.HasPrefix(e.Name, "$") {
			j.On = append(j.On, JoinOn{OnPos: e.NamePos, Left: e.Name, Right: e.Name})
			return
		}
	case *Binary:
		if e.Op == "and" {
			p.joinConds(e.L, j)
			p.joinConds(e.R, j)
			return
		}
		if e.Op == "==" {
			ls, ln := sideColumn(e.L)
			rs, rn := sideColumn(e.R)
			switch {
			case ls == "$left" && rs == "$right":
				j.On = append(j.On, JoinOn{OnPos: e.OpPos, Left: ln, Right: rn})
				return
			case ls == "$right" && rs == "$left":
				j.On = append(j.On, JoinOn{OnPos: e.OpPos, Left: rn, Right: ln})
				return
			}
		}
	}
	p.fail(e.Pos(), "join condition must be a column name or $left.Column == $right.Column")
}

func sideColumn(e Expr) (side, col string) {
	m, ok := e.(*Member)
	if !ok {
		return "", ""
	}
	id, ok := m.X.(*Ident)
	if !ok {
		return "", ""
	}
	return id.Name, m.Name
}

func (p *parser) parseUnionBody() (UnionParams, []Tabular) {
	params := UnionParams{Kind: "outer"}
	for p.tok().isName() && p.peekN(1).isPunct("=") {
		t := p.next()
		p.next()
		vt := p.tok()
		v := p.paramValue()
		switch t.Text {
		case "kind":
			if v != "inner" && v != "outer" {
				p.fail(vt.Pos, "union kind must be inner or outer")
			}
			params.Kind = v
		case "withsource":
			params.WithSource = v
		case "isfuzzy":
			switch v {
			case "true":
				params.IsFuzzy = true
			case "false":
			default:
				p.fail(vt.Pos, "isfuzzy must be true or false, not %q", v)
			}
		default:
			p.fail(t.Pos, "unknown union parameter %q", t.Text)
		}
	}
	var tables []Tabular
	for {
		t := p.tok()
		switch {
		case t.isPunct("("):
			p.next()
			tables = append(tables, p.parseTabular())
			p.expectPunct(")")
		case p.isNameStart():
			name, npos := p.expectName("a table")
			if p.isPunct("*") && p.tok().Pos.Offset == t.End {
				p.fail(p.tok().Pos, "table name wildcards are not supported")
			}
			tables = append(tables, &TableRef{NamePos: npos, Name: name})
		default:
			p.failExpected(t, "a table or '(' in union")
		}
		if !p.acceptPunct(",") {
			return params, tables
		}
	}
}

func (p *parser) parseParse(pos Pos, where bool) Operator {
	pr := &ParseOp{OpPos: pos, Where: where, Kind: "simple"}
	for p.tok().isName() && p.peekN(1).isPunct("=") && (p.isIdent("kind") || p.isIdent("flags")) {
		t := p.next()
		p.next()
		vt := p.tok()
		v := p.paramValue()
		if t.Text == "kind" {
			if v != "simple" && v != "regex" && v != "relaxed" {
				p.fail(vt.Pos, "parse kind must be simple, regex or relaxed")
			}
			pr.Kind = v
		} else {
			pr.Flags = v
		}
	}
	pr.X = p.parseExpr()
	p.expectKeyword("with")
	cols := 0
	for {
		t := p.tok()
		switch {
		case t.Kind == tokString:
			p.next()
			pr.Parts = append(pr.Parts, ParsePart{PartPos: t.Pos, Literal: t.Str})
			continue
		case t.isPunct("*"):
			p.next()
			pr.Parts = append(pr.Parts, ParsePart{PartPos: t.Pos, Star: true})
			continue
		case t.isName():
			p.next()
			part := ParsePart{PartPos: t.Pos, Column: t.Text, Type: table.String}
			if p.acceptPunct(":") {
				part.Type = p.parseTypeName()
			}
			pr.Parts = append(pr.Parts, part)
			cols++
			continue
		}
		break
	}
	if cols == 0 {
		p.failExpected(p.tok(), "a column name in the parse pattern")
	}
	return pr
}
