package syntax

import (
	"fmt"
	"strings"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// maxDepth bounds nesting (parentheses, subqueries, dynamic literals) so
// that hostile input cannot exhaust the stack.
const maxDepth = 150

// Parse parses a KQL query. Warnings are returned even when parsing
// succeeds. On failure the error is an *ErrorList holding every error
// found; its Error() shows each as "line:col: message" with the query line
// and a caret.
func Parse(src string) (q *Query, warns []Warning, err error) {
	toks, lexErrs, warns := lex(src)
	p := &parser{toks: toks, src: src, errs: lexErrs}
	defer func() {
		if r := recover(); r != nil {
			q = nil
			err = &ErrorList{Src: src, Errors: []*Error{{Pos: Pos{Line: 1, Col: 1}, Msg: fmt.Sprintf("internal parser error: %v", r)}}}
		}
	}()
	q = p.parseQuery()
	if len(p.errs) > 0 {
		return nil, warns, newErrorList(src, p.errs)
	}
	return q, warns, nil
}

type parser struct {
	toks  []token
	i     int
	errs  []*Error
	src   string
	depth int
}

// bailout unwinds the parser to the nearest recovery point (operator or
// statement) after an error was recorded.
type bailout struct{}

func (p *parser) tok() token { return p.toks[p.i] }

func (p *parser) peekN(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.Kind != tokEOF {
		p.i++
	}
	return t
}

func (t token) is(kind tokenKind, text string) bool { return t.Kind == kind && t.Text == text }
func (t token) isPunct(s string) bool               { return t.is(tokPunct, s) }
func (t token) isIdent(s string) bool               { return t.is(tokIdent, s) }

// isName reports whether t can name a column, table or variable.
func (t token) isName() bool {
	return t.Kind == tokIdent && !strings.ContainsAny(t.Text, "!~-")
}

func (p *parser) isPunct(s string) bool { return p.tok().isPunct(s) }
func (p *parser) isIdent(s string) bool { return p.tok().isIdent(s) }

func (p *parser) acceptPunct(s string) bool {
	if p.isPunct(s) {
		p.next()
		return true
	}
	return false
}

func (p *parser) acceptIdent(s string) bool {
	if p.isIdent(s) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expectPunct(s string) token {
	t := p.tok()
	if !t.isPunct(s) {
		p.failExpected(t, "'"+s+"'")
	}
	return p.next()
}

func (p *parser) expectKeyword(s string) token {
	t := p.tok()
	if !t.isIdent(s) {
		p.failExpected(t, "'"+s+"'")
	}
	return p.next()
}

// expectName reads a name: an identifier or ['bracketed name'].
func (p *parser) expectName(what string) (string, Pos) {
	t := p.tok()
	if t.isName() {
		p.next()
		return t.Text, t.Pos
	}
	if name, ok := p.bracketName(); ok {
		return name, t.Pos
	}
	p.failExpected(t, what)
	return "", Pos{}
}

// bracketName reads ['name'] or ["name"] if present.
func (p *parser) bracketName() (string, bool) {
	if p.isPunct("[") && p.peekN(1).Kind == tokString && p.peekN(2).isPunct("]") {
		p.next()
		s := p.next().Str
		p.next()
		return s, true
	}
	return "", false
}

func (p *parser) isNameStart() bool {
	return p.tok().isName() || p.isPunct("[") && p.peekN(1).Kind == tokString && p.peekN(2).isPunct("]")
}

func describe(t token) string {
	switch t.Kind {
	case tokEOF:
		return "end of query"
	case tokIdent:
		return fmt.Sprintf("%q", t.Text)
	case tokString:
		return "string literal"
	case tokInt, tokReal:
		return "number " + t.Text
	case tokTimespan:
		return "timespan " + t.Text
	case tokPunct:
		return "'" + t.Text + "'"
	}
	return "literal"
}

func (p *parser) errorAt(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) fail(pos Pos, format string, args ...any) {
	p.errorAt(pos, format, args...)
	panic(bailout{})
}

func (p *parser) failExpected(t token, what string) {
	if t.Kind == tokIllegal { // already reported by the lexer
		panic(bailout{})
	}
	// When the offending token starts a later line, the problem is that
	// the previous line ended too early: point just after its last token.
	if p.i > 0 && p.toks[p.i-1].Pos.Line < t.Pos.Line && p.toks[p.i-1].End <= len(p.src) {
		prev := p.toks[p.i-1]
		p.fail(posAt(p.src, prev.End), "expected %s at end of line, found %s on the next line", what, describe(t))
	}
	p.fail(t.Pos, "expected %s, found %s", what, describe(t))
}

// posAt computes the position of a byte offset in src.
func posAt(src string, off int) Pos {
	p := Pos{Offset: off, Line: 1, Col: 1}
	for _, r := range src[:off] {
		if r == '\n' {
			p.Line++
			p.Col = 1
		} else {
			p.Col++
		}
	}
	return p
}

func (p *parser) enter() {
	p.depth++
	if p.depth > maxDepth {
		p.fail(p.tok().Pos, "query is nested too deeply")
	}
}

func (p *parser) leave() { p.depth-- }

func isBailout(r any) bool {
	_, ok := r.(bailout)
	return ok
}

// syncOperator skips to the end of the operator that started at token
// start: the next '|' or ';' at the same nesting, or a closing bracket that
// belongs to an enclosing expression.
func (p *parser) syncOperator(start int) {
	depth := 0
	for i := start; i < p.i; i++ {
		depth += nesting(p.toks[i])
	}
	for {
		t := p.tok()
		if t.Kind == tokEOF {
			return
		}
		if depth <= 0 && (t.isPunct("|") || t.isPunct(";")) {
			return
		}
		if d := nesting(t); d < 0 {
			if depth <= 0 {
				return
			}
			depth--
		} else {
			depth += d
		}
		p.next()
	}
}

// syncStatement skips to the next ';' outside brackets.
func (p *parser) syncStatement() {
	depth := 0
	for {
		t := p.tok()
		if t.Kind == tokEOF || depth <= 0 && t.isPunct(";") {
			return
		}
		depth += nesting(t)
		if depth < 0 {
			depth = 0
		}
		p.next()
	}
}

func nesting(t token) int {
	if t.Kind != tokPunct {
		return 0
	}
	switch t.Text {
	case "(", "[", "{":
		return 1
	case ")", "]", "}":
		return -1
	}
	return 0
}

// ---------------------------------------------------------------------------
// Statements.

func (p *parser) parseQuery() *Query {
	q := &Query{Src: p.src}
	for p.tok().Kind != tokEOF {
		if p.acceptPunct(";") {
			continue
		}
		start := p.i
		p.statement(q)
		if p.tok().Kind == tokEOF {
			break
		}
		if !p.acceptPunct(";") {
			t := p.tok()
			if t.Kind != tokIllegal {
				p.errorAt(t.Pos, "expected '|' or ';', found %s", describe(t))
			}
			p.syncStatement()
		}
		if p.i == start {
			p.next()
		}
	}
	if q.Body == nil && len(p.errs) == 0 {
		p.errorAt(p.tok().Pos, "query has no tabular expression")
	}
	return q
}

func (p *parser) statement(q *Query) {
	defer func() {
		if r := recover(); r != nil {
			if !isBailout(r) {
				panic(r)
			}
			p.syncStatement()
		}
	}()
	t := p.tok()
	switch {
	case t.isIdent("let"):
		l := p.parseLet()
		if q.Body != nil {
			p.errorAt(t.Pos, "let statement after the query body is not supported")
		}
		q.Lets = append(q.Lets, l)
		return
	case t.isIdent("set") || t.isIdent("declare") || t.isIdent("alias") || t.isIdent("pattern") || t.isIdent("restrict"):
		if p.peekN(1).isName() {
			p.fail(t.Pos, "%s statements are not supported", t.Text)
		}
	}
	body := p.parseTabular()
	if q.Body != nil {
		p.errorAt(body.Pos(), "only one tabular expression statement is supported")
	}
	q.Body = body
}

func (p *parser) parseLet() *Let {
	letTok := p.next()
	name, namePos := p.expectName("a name after let")
	p.expectPunct("=")
	l := &Let{LetPos: letTok.Pos, Name: name, NamePos: namePos}
	t := p.tok()
	switch {
	case t.isIdent("materialize") && p.peekN(1).isPunct("("):
		p.next()
		p.next()
		l.Tabular = p.parseTabular()
		p.expectPunct(")")
		l.Materialize = true
	case t.isIdent("view") && p.peekN(1).isPunct("("):
		p.fail(t.Pos, "views are not supported")
	case t.isPunct("(") && (p.peekN(1).isPunct(")") && p.peekN(2).isPunct("{") || p.peekN(1).isName() && p.peekN(2).isPunct(":")):
		l.Func = p.parseFuncDef()
	case p.looksTabular():
		l.Tabular = p.parseTabular()
	default:
		l.Scalar = p.parseExpr()
	}
	return l
}

// parseFuncDef parses "(params) { [let ...;] body }".
func (p *parser) parseFuncDef() *FuncDef {
	f := &FuncDef{LPos: p.expectPunct("(").Pos}
	seen := map[string]bool{}
	for !p.isPunct(")") {
		name, npos := p.expectName("a parameter name")
		if seen[name] {
			p.errorAt(npos, "duplicate parameter %q", name)
		}
		seen[name] = true
		prm := Param{Name: name, NamePos: npos}
		p.expectPunct(":")
		if p.acceptPunct("(") {
			// A tabular parameter: (*) or a schema, which is not checked.
			prm.Tabular = true
			depth := 1
			for depth > 0 {
				t := p.next()
				switch {
				case t.Kind == tokEOF:
					p.failExpected(t, "')'")
				case t.isPunct("("):
					depth++
				case t.isPunct(")"):
					depth--
				}
			}
		} else {
			prm.Type = p.parseTypeName()
		}
		if p.acceptPunct("=") {
			if prm.Tabular {
				p.fail(npos, "a tabular parameter cannot have a default")
			}
			prm.Default = p.parseExpr()
		} else if len(f.Params) > 0 && f.Params[len(f.Params)-1].Default != nil {
			p.errorAt(npos, "parameter %q without a default follows one with a default", name)
		}
		f.Params = append(f.Params, prm)
		if !p.acceptPunct(",") {
			break
		}
	}
	p.expectPunct(")")
	p.expectPunct("{")
	for p.isIdent("let") {
		f.Lets = append(f.Lets, p.parseLet())
		p.expectPunct(";")
	}
	if p.looksTabular() {
		f.Tabular = p.parseTabular()
	} else {
		f.Scalar = p.parseExpr()
	}
	p.acceptPunct(";")
	p.expectPunct("}")
	return f
}

// looksTabular reports whether the tokens ahead start a tabular expression
// rather than a scalar one: "T | ...", "(T | ...)", "union ...",
// "datatable(...)", "print ...", "range ...".
func (p *parser) looksTabular() bool {
	j := p.i
	for j < len(p.toks) && p.toks[j].isPunct("(") {
		j++
	}
	if j+1 >= len(p.toks) {
		return false
	}
	t, next := p.toks[j], p.toks[j+1]
	if !t.isName() {
		return false
	}
	switch t.Text {
	case "union", "print":
		return true
	case "datatable", "materialize":
		return next.isPunct("(")
	case "range":
		return next.isName()
	}
	return next.isPunct("|")
}

// ---------------------------------------------------------------------------
// Tabular expressions.

func (p *parser) parseTabular() Tabular {
	p.enter()
	defer p.leave()
	src := p.parseSourceRecover()
	var ops []Operator
	for p.isPunct("|") {
		p.next()
		if op := p.parseOperatorRecover(); op != nil {
			ops = append(ops, op)
		}
	}
	if len(ops) == 0 {
		return src
	}
	return &Pipeline{Source: src, Ops: ops}
}

func (p *parser) parseSourceRecover() (t Tabular) {
	start := p.i
	pos := p.tok().Pos
	defer func() {
		if r := recover(); r != nil {
			if !isBailout(r) {
				panic(r)
			}
			p.syncOperator(start)
			t = &TableRef{NamePos: pos}
		}
	}()
	return p.parseSource()
}

func (p *parser) parseSource() Tabular {
	t := p.tok()
	switch {
	case t.isPunct("("):
		p.next()
		inner := p.parseTabular()
		p.expectPunct(")")
		return inner
	case t.isPunct("["):
		if name, ok := p.bracketName(); ok {
			return &TableRef{NamePos: t.Pos, Name: name}
		}
	case t.isName():
		next := p.peekN(1)
		switch t.Text {
		case "union":
			p.next()
			params, tables := p.parseUnionBody()
			return &UnionSource{UPos: t.Pos, Params: params, Tables: tables}
		case "datatable":
			if next.isPunct("(") {
				return p.parseDatatable()
			}
		case "print":
			p.next()
			return &Print{PPos: t.Pos, Items: p.parseAssigns()}
		case "range":
			if next.isName() {
				return p.parseRange()
			}
		case "materialize":
			if next.isPunct("(") {
				p.next()
				p.next()
				inner := p.parseTabular()
				p.expectPunct(")")
				return inner
			}
		case "table":
			if next.isPunct("(") && p.peekN(2).Kind == tokString && p.peekN(3).isPunct(")") {
				p.next()
				p.next()
				name := p.next()
				p.next()
				return &TableRef{NamePos: name.Pos, Name: name.Str}
			}
		case "search":
			p.next()
			srch := p.parseSearchTerm(t.Pos)
			if !p.acceptIdent("in") {
				p.fail(t.Pos, "name the tables to search: search in (T1, T2) \"term\"")
			}
			p.expectPunct("(")
			src := &SearchSource{SPos: t.Pos, Search: srch}
			for {
				name, npos := p.expectName("a table")
				src.Tables = append(src.Tables, &TableRef{NamePos: npos, Name: name})
				if !p.acceptPunct(",") {
					break
				}
			}
			p.expectPunct(")")
			term := p.parseSearchTerm(t.Pos)
			srch.Term = term.Term
			return src
		case "find", "evaluate", "externaldata", "cluster", "database":
			if next.isPunct("(") || t.Text == "find" || t.Text == "evaluate" {
				p.fail(t.Pos, "%s is not supported", t.Text)
			}
		}
		p.next()
		if p.isPunct("*") && p.tok().Pos.Offset == t.End {
			p.fail(p.tok().Pos, "table name wildcards are not supported")
		}
		if p.isPunct("(") && t.Kind == tokIdent {
			// A call of a user-defined tabular function.
			return &FuncCall{NamePos: t.Pos, Name: t.Text, Args: p.parseCallArgs()}
		}
		return &TableRef{NamePos: t.Pos, Name: t.Text}
	}
	p.failExpected(t, "a table name or tabular expression")
	return nil
}

// parseCallArgs parses "(a, b, ...)".
func (p *parser) parseCallArgs() []Expr {
	p.expectPunct("(")
	var args []Expr
	for !p.isPunct(")") {
		args = append(args, p.parseExpr())
		if !p.acceptPunct(",") {
			break
		}
	}
	p.expectPunct(")")
	return args
}

func (p *parser) parseDatatable() Tabular {
	kw := p.next()
	p.expectPunct("(")
	d := &Datatable{DPos: kw.Pos}
	for {
		name, _ := p.expectName("a column name")
		p.expectPunct(":")
		typ := p.parseTypeName()
		d.Columns = append(d.Columns, table.Column{Name: name, Type: typ})
		if !p.acceptPunct(",") {
			break
		}
	}
	p.expectPunct(")")
	p.expectPunct("[")
	if !p.isPunct("]") {
		for {
			d.Values = append(d.Values, p.parseExpr())
			if !p.acceptPunct(",") || p.isPunct("]") {
				break
			}
		}
	}
	p.expectPunct("]")
	if len(d.Values)%len(d.Columns) != 0 {
		p.fail(kw.Pos, "datatable has %d values, not a multiple of its %d columns", len(d.Values), len(d.Columns))
	}
	return d
}

func (p *parser) parseRange() Tabular {
	kw := p.next()
	name, _ := p.expectName("a column name")
	r := &Range{RPos: kw.Pos, Name: name}
	p.expectKeyword("from")
	r.From = p.parseExpr()
	p.expectKeyword("to")
	r.To = p.parseExpr()
	p.expectKeyword("step")
	r.Step = p.parseExpr()
	return r
}

func (p *parser) parseTypeName() table.Type {
	t := p.tok()
	if t.Kind == tokIdent {
		if typ, ok := ParseTypeName(t.Text); ok {
			p.next()
			return typ
		}
	}
	p.failExpected(t, "a type name (string, long, int, real, bool, datetime, timespan, dynamic)")
	return ""
}
