package syntax

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/table"
)

var cmpOps = map[string]bool{
	"==": true, "!=": true, "<>": true, "<": true, "<=": true, ">": true, ">=": true, "=~": true, "!~": true,
}

// StringOps are the binary string operators, as the parser spells them.
var stringOps = map[string]bool{}

func init() {
	for _, op := range []string{"has", "hasprefix", "hassuffix", "contains", "startswith", "endswith"} {
		stringOps[op] = true
		stringOps["!"+op] = true
		stringOps[op+"_cs"] = true
		stringOps["!"+op+"_cs"] = true
	}
	stringOps["matches"] = true
}

var inOps = map[string]bool{"in": true, "!in": true, "in~": true, "!in~": true, "has_any": true, "has_all": true}

func (p *parser) parseExpr() Expr {
	p.enter()
	defer p.leave()
	return p.parseOr()
}

func (p *parser) parseOr() Expr {
	x := p.parseAnd()
	for p.isIdent("or") {
		t := p.next()
		x = &Binary{OpPos: t.Pos, Op: "or", L: x, R: p.parseAnd()}
	}
	return x
}

func (p *parser) parseAnd() Expr {
	x := p.parseCmp()
	for p.isIdent("and") {
		t := p.next()
		x = &Binary{OpPos: t.Pos, Op: "and", L: x, R: p.parseCmp()}
	}
	return x
}

func (p *parser) parseCmp() Expr {
	x := p.parseAdd()
	for {
		t := p.tok()
		switch {
		case t.Kind == tokPunct && cmpOps[t.Text]:
			p.next()
			op := t.Text
			if op == "<>" {
				op = "!="
			}
			x = &Binary{OpPos: t.Pos, Op: op, L: x, R: p.parseAdd()}
		case t.Kind == tokIdent && stringOps[t.Text]:
			p.next()
			op := t.Text
			if op == "matches" {
				p.expectKeyword("regex")
				op = "matches regex"
			}
			x = &Binary{OpPos: t.Pos, Op: op, L: x, R: p.parseAdd()}
		case t.Kind == tokIdent && inOps[t.Text]:
			p.next()
			x = p.parseInList(t, x)
		case t.isIdent("between") || t.isIdent("!between"):
			p.next()
			p.expectPunct("(")
			lo := p.parseExpr()
			p.expectPunct("..")
			hi := p.parseExpr()
			p.expectPunct(")")
			x = &Between{OpPos: t.Pos, Not: t.Text == "!between", X: x, Lo: lo, Hi: hi}
		default:
			return x
		}
	}
}

func (p *parser) parseInList(op token, x Expr) Expr {
	in := &InExpr{OpPos: op.Pos, Op: op.Text, X: x}
	p.expectPunct("(")
	if p.looksTabular() {
		in.Sub = p.parseTabular()
		p.expectPunct(")")
		return in
	}
	for {
		in.List = append(in.List, p.parseExpr())
		if !p.acceptPunct(",") {
			break
		}
	}
	p.expectPunct(")")
	return in
}

func (p *parser) parseAdd() Expr {
	x := p.parseMul()
	for p.isPunct("+") || p.isPunct("-") {
		t := p.next()
		x = &Binary{OpPos: t.Pos, Op: t.Text, L: x, R: p.parseMul()}
	}
	return x
}

func (p *parser) parseMul() Expr {
	x := p.parseUnary()
	for p.isPunct("*") || p.isPunct("/") || p.isPunct("%") {
		t := p.next()
		x = &Binary{OpPos: t.Pos, Op: t.Text, L: x, R: p.parseUnary()}
	}
	return x
}

func (p *parser) parseUnary() Expr {
	t := p.tok()
	if t.isPunct("-") || t.isPunct("+") {
		p.enter()
		defer p.leave()
		p.next()
		x := p.parseUnary()
		if t.Text == "+" {
			return x
		}
		if lit, ok := x.(*Literal); ok {
			switch v := lit.Value.(type) {
			case int64:
				return &Literal{LitPos: t.Pos, Type: lit.Type, Value: -v}
			case float64:
				return &Literal{LitPos: t.Pos, Type: lit.Type, Value: -v}
			case time.Duration:
				return &Literal{LitPos: t.Pos, Type: lit.Type, Value: -v}
			}
		}
		return &Unary{OpPos: t.Pos, Op: "-", X: x}
	}
	return p.parsePostfix()
}

func (p *parser) parsePostfix() Expr {
	x := p.parsePrimary()
	for {
		switch {
		case p.isPunct("."):
			p.next()
			t := p.tok()
			if t.Kind == tokIdent && !strings.ContainsAny(t.Text, "!~") {
				p.next()
				x = &Member{X: x, Name: t.Text, NamePos: t.Pos}
				continue
			}
			if name, ok := p.bracketName(); ok {
				x = &Member{X: x, Name: name, NamePos: t.Pos}
				continue
			}
			p.failExpected(t, "a property name after '.'")
		case p.isPunct("["):
			lb := p.next()
			idx := p.parseExpr()
			p.expectPunct("]")
			x = &Index{X: x, Index: idx, LPos: lb.Pos}
		default:
			return x
		}
	}
}

func (p *parser) parsePrimary() Expr {
	t := p.tok()
	switch t.Kind {
	case tokInt:
		p.next()
		return &Literal{LitPos: t.Pos, Type: table.Long, Value: t.Int}
	case tokReal:
		p.next()
		return &Literal{LitPos: t.Pos, Type: table.Real, Value: t.Real}
	case tokTimespan:
		p.next()
		return &Literal{LitPos: t.Pos, Type: table.TimeSpan, Value: t.Dur}
	case tokString:
		p.next()
		s := t.Str
		for p.tok().Kind == tokString { // adjacent literals concatenate
			s += p.next().Str
		}
		return &Literal{LitPos: t.Pos, Type: table.String, Value: s}
	case tokPunct:
		switch t.Text {
		case "(":
			p.next()
			x := p.parseExpr()
			p.expectPunct(")")
			return x
		case "[":
			if name, ok := p.bracketName(); ok {
				return &Ident{NamePos: t.Pos, Name: name}
			}
		case "*":
			p.next()
			return &Star{StarPos: t.Pos}
		}
	case tokIdent:
		return p.parseIdentExpr(t)
	}
	p.failExpected(t, "an expression")
	return nil
}

func (p *parser) parseIdentExpr(t token) Expr {
	name := t.Text
	if !t.isName() {
		p.failExpected(t, "an expression")
	}
	next := p.peekN(1)
	switch name {
	case "true", "True", "TRUE":
		p.next()
		return &Literal{LitPos: t.Pos, Type: table.Bool, Value: true}
	case "false", "False", "FALSE":
		p.next()
		return &Literal{LitPos: t.Pos, Type: table.Bool, Value: false}
	}
	if !next.isPunct("(") {
		p.next()
		return &Ident{NamePos: t.Pos, Name: name}
	}
	switch {
	case rawLiteralIdents[name] && p.peekN(2).Kind == tokRaw:
		return p.parseTypedLiteral()
	case name == "dynamic":
		p.next()
		p.next()
		v := p.parseJSONValue()
		p.expectPunct(")")
		return &Literal{LitPos: t.Pos, Type: table.Dynamic, Value: v}
	case name == "typeof":
		p.next()
		p.next()
		typ := p.parseTypeName()
		p.expectPunct(")")
		return &TypeOf{TPos: t.Pos, Type: typ}
	case name == "toscalar":
		p.next()
		p.next()
		sub := p.parseTabular()
		p.expectPunct(")")
		return &ToScalar{TPos: t.Pos, Sub: sub}
	}
	p.next()
	p.next()
	call := &Call{NamePos: t.Pos, Name: name}
	if p.acceptPunct(")") {
		return call
	}
	for {
		call.Args = append(call.Args, p.parseExpr())
		if !p.acceptPunct(",") {
			break
		}
	}
	p.expectPunct(")")
	return call
}

// parseTypedLiteral reads datetime(...), time(...), long(...) and friends,
// whose contents the lexer delivered as one Raw token.
func (p *parser) parseTypedLiteral() Expr {
	kw := p.next()
	p.expectPunct("(")
	raw := p.next()
	p.expectPunct(")")
	text := raw.Text
	isNull := text == "null"
	if len(text) >= 2 && (text[0] == '"' && text[len(text)-1] == '"' || text[0] == '\'' && text[len(text)-1] == '\'') {
		text = text[1 : len(text)-1]
	}
	lit := &Literal{LitPos: kw.Pos}
	switch kw.Text {
	case "datetime", "date":
		lit.Type = table.DateTime
		if !isNull {
			v, ok := ParseDatetime(text)
			if !ok {
				p.fail(raw.Pos, "invalid datetime literal %q", raw.Text)
			}
			lit.Value = v
		}
	case "time", "timespan":
		lit.Type = table.TimeSpan
		if !isNull {
			v, ok := ParseTimespan(text)
			if !ok {
				p.fail(raw.Pos, "invalid timespan literal %q", raw.Text)
			}
			lit.Value = v
		}
	case "long", "int":
		lit.Type = table.Long
		bits := 64
		if kw.Text == "int" {
			lit.Type, bits = table.Int, 32
		}
		if !isNull {
			v, err := strconv.ParseInt(strings.ReplaceAll(text, " ", ""), 0, bits)
			if err != nil {
				p.fail(raw.Pos, "invalid %s literal %q", kw.Text, raw.Text)
			}
			lit.Value = v
		}
	case "real", "double", "decimal":
		lit.Type = table.Real
		if !isNull {
			var v float64
			switch strings.ToLower(text) {
			case "nan":
				v = math.NaN()
			case "inf", "+inf":
				v = math.Inf(1)
			case "-inf":
				v = math.Inf(-1)
			default:
				f, err := strconv.ParseFloat(strings.ReplaceAll(text, " ", ""), 64)
				if err != nil {
					p.fail(raw.Pos, "invalid real literal %q", raw.Text)
				}
				v = f
			}
			lit.Value = v
		}
	case "bool", "boolean":
		lit.Type = table.Bool
		if !isNull {
			switch strings.ToLower(text) {
			case "true", "1":
				lit.Value = true
			case "false", "0":
				lit.Value = false
			default:
				p.fail(raw.Pos, "invalid bool literal %q", raw.Text)
			}
		}
	case "guid":
		lit.Type = table.String
		if !isNull {
			lit.Value = text
		} else {
			lit.Value = ""
		}
	}
	return lit
}

// parseJSONValue reads the contents of dynamic(...).
func (p *parser) parseJSONValue() any {
	p.enter()
	defer p.leave()
	t := p.tok()
	switch t.Kind {
	case tokString:
		p.next()
		return t.Str
	case tokInt:
		p.next()
		return t.Int
	case tokReal:
		p.next()
		return t.Real
	case tokTimespan:
		p.next()
		return FormatTimespan(t.Dur)
	case tokIdent:
		switch t.Text {
		case "true":
			p.next()
			return true
		case "false":
			p.next()
			return false
		case "null":
			p.next()
			return nil
		}
		if rawLiteralIdents[t.Text] && p.peekN(1).isPunct("(") && p.peekN(2).Kind == tokRaw {
			lit := p.parseTypedLiteral().(*Literal)
			switch v := lit.Value.(type) {
			case time.Time:
				return FormatDatetime(v)
			case time.Duration:
				return FormatTimespan(v)
			}
			return lit.Value
		}
	case tokPunct:
		switch t.Text {
		case "-":
			p.next()
			n := p.tok()
			switch n.Kind {
			case tokInt:
				p.next()
				return -n.Int
			case tokReal:
				p.next()
				return -n.Real
			}
			p.failExpected(n, "a number after '-'")
		case "[":
			p.next()
			arr := []any{}
			if p.acceptPunct("]") {
				return arr
			}
			for {
				arr = append(arr, p.parseJSONValue())
				if !p.acceptPunct(",") {
					break
				}
			}
			p.expectPunct("]")
			return arr
		case "{":
			p.next()
			m := map[string]any{}
			if p.acceptPunct("}") {
				return m
			}
			for {
				k := p.tok()
				var key string
				switch {
				case k.Kind == tokString:
					key = k.Str
				case k.isName():
					key = k.Text
				default:
					p.failExpected(k, "a property name")
				}
				p.next()
				p.expectPunct(":")
				m[key] = p.parseJSONValue()
				if !p.acceptPunct(",") {
					break
				}
			}
			p.expectPunct("}")
			return m
		}
	}
	p.failExpected(t, "a JSON value")
	return nil
}
