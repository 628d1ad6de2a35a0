package syntax

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// tokenKind classifies a token.
type tokenKind int

// token kinds.
const (
	tokEOF      tokenKind = iota
	tokIllegal            // a lexical error, already reported
	tokIdent              // identifier or keyword; Text holds it ("!has", "in~", "mv-expand" included)
	tokInt                // integer literal; Int holds the value
	tokReal               // real literal; Real holds the value
	tokTimespan           // timespan literal such as 5m; Dur holds the value
	tokString             // string literal; Str holds the decoded value
	tokRaw                // the raw text inside the parentheses of datetime(...), time(...), long(...)...
	tokPunct              // punctuation; Text holds it
)

// token is one lexical token.
type token struct {
	Kind tokenKind
	Text string // source text (identifier, punctuation, raw literal contents)
	Str  string
	Int  int64
	Real float64
	Dur  time.Duration
	Pos  Pos
	End  int // byte offset just after the token
}

// rawLiteralIdents are the typed-literal keywords whose parenthesised
// contents are not expressions, e.g. datetime(2024-01-02T03:04:05Z).
var rawLiteralIdents = map[string]bool{
	"datetime": true, "date": true, "time": true, "timespan": true,
	"long": true, "int": true, "real": true, "double": true, "bool": true,
	"boolean": true, "guid": true, "decimal": true,
}

// hyphenated operator names, lexed as one identifier.
var hyphenated = map[string]bool{
	"project-away": true, "project-keep": true, "project-rename": true,
	"project-reorder": true, "mv-expand": true, "mv-apply": true,
	"parse-where": true, "top-nested": true, "top-hitters": true,
	"make-series": true, "sample-distinct": true, "parse-kv": true,
}

type lexer struct {
	src   string
	off   int
	line  int
	col   int
	toks  []token
	errs  []*Error
	warns []Warning
}

func lex(src string) ([]token, []*Error, []Warning) {
	l := &lexer{src: src, line: 1, col: 1}
	l.run()
	return l.toks, l.errs, l.warns
}

func (l *lexer) pos() Pos { return Pos{Offset: l.off, Line: l.line, Col: l.col} }

func (l *lexer) peek() (rune, int) {
	if l.off >= len(l.src) {
		return -1, 0
	}
	r, n := utf8.DecodeRuneInString(l.src[l.off:])
	return r, n
}

func (l *lexer) peekAt(off int) rune {
	if off >= len(l.src) {
		return -1
	}
	r, _ := utf8.DecodeRuneInString(l.src[off:])
	return r
}

func (l *lexer) advance() rune {
	r, n := l.peek()
	if n == 0 {
		return -1
	}
	l.off += n
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return r
}

func (l *lexer) errorf(p Pos, msg string) {
	l.errs = append(l.errs, &Error{Pos: p, Msg: msg})
}

func (l *lexer) emit(t token) {
	t.End = l.off
	l.toks = append(l.toks, t)
}

func isSpace(r rune) bool {
	return unicode.IsSpace(r) || r == '\u200b' || r == '\ufeff' || r == '\u2060'
}

func isIdentStart(r rune) bool {
	return r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 0x7f && unicode.IsLetter(r)
}

func isIdentChar(r rune) bool {
	return isIdentStart(r) || r >= '0' && r <= '9' || r > 0x7f && unicode.IsDigit(r)
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// Typographic quotes, accepted as string delimiters with a warning.
func isTypoDouble(r rune) bool {
	return r == '“' || r == '”' || r == '„' || r == '‟' || r == '″'
}
func isTypoSingle(r rune) bool {
	return r == '‘' || r == '’' || r == '‚' || r == '‛' || r == '′'
}

func (l *lexer) run() {
	for {
		r, _ := l.peek()
		switch {
		case r == -1:
			l.toks = append(l.toks, token{Kind: tokEOF, Pos: l.pos(), End: l.off})
			return
		case isSpace(r):
			l.advance()
		case r == '/' && l.peekAt(l.off+1) == '/':
			for r, _ := l.peek(); r != -1 && r != '\n'; r, _ = l.peek() {
				l.advance()
			}
		case isIdentStart(r):
			l.lexIdent()
		case r == '$' && isIdentStart(l.peekAt(l.off+1)):
			p := l.pos()
			l.advance()
			start := l.off
			for isIdentChar(l.peekAt(l.off)) {
				l.advance()
			}
			l.emit(token{Kind: tokIdent, Text: "$" + l.src[start:l.off], Pos: p})
		case isDigit(r):
			l.lexNumber()
		case r == '"' || r == '\'':
			l.lexString(l.pos(), false)
		case r == '@' && (l.peekAt(l.off+1) == '"' || l.peekAt(l.off+1) == '\''):
			p := l.pos()
			l.advance()
			l.lexString(p, true)
		case r == '`' && strings.HasPrefix(l.src[l.off:], "```"):
			l.lexMultiline()
		case isTypoDouble(r) || isTypoSingle(r):
			l.lexTypoString()
		case r == '!' && (isIdentStart(l.peekAt(l.off + 1))):
			p := l.pos()
			l.advance()
			start := l.off
			for isIdentChar(l.peekAt(l.off)) {
				l.advance()
			}
			word := "!" + l.src[start:l.off]
			if word == "!in" && l.peekAt(l.off) == '~' {
				l.advance()
				word = "!in~"
			}
			l.emit(token{Kind: tokIdent, Text: word, Pos: p})
		default:
			l.lexPunct()
		}
	}
}

func (l *lexer) lexIdent() {
	p := l.pos()
	start := l.off
	for isIdentChar(l.peekAt(l.off)) {
		l.advance()
	}
	word := l.src[start:l.off]
	next := l.peekAt(l.off)
	// h"..." obfuscated strings are treated as plain strings.
	if (word == "h" || word == "H") && (next == '"' || next == '\'' || next == '@' && (l.peekAt(l.off+1) == '"' || l.peekAt(l.off+1) == '\'')) {
		if next == '@' {
			l.advance()
			l.lexString(p, true)
		} else {
			l.lexString(p, false)
		}
		return
	}
	if next == '-' && isIdentStart(l.peekAt(l.off+1)) {
		end := l.off + 1
		for end < len(l.src) && isIdentChar(l.peekAt(end)) {
			_, n := utf8.DecodeRuneInString(l.src[end:])
			end += n
		}
		if hyphenated[l.src[start:end]] {
			for l.off < end {
				l.advance()
			}
			word = l.src[start:end]
		}
	}
	if word == "in" && next == '~' {
		l.advance()
		word = "in~"
	}
	l.emit(token{Kind: tokIdent, Text: word, Pos: p})
	if rawLiteralIdents[word] {
		// Look past blanks for '('.
		off := l.off
		for off < len(l.src) && (l.src[off] == ' ' || l.src[off] == '\t') {
			off++
		}
		if off < len(l.src) && l.src[off] == '(' {
			for l.off < off {
				l.advance()
			}
			l.lexRaw()
		}
	}
}

// lexRaw reads "( ... )" after a typed-literal keyword and emits '(' Raw ')'.
func (l *lexer) lexRaw() {
	lp := l.pos()
	l.advance() // (
	l.emit(token{Kind: tokPunct, Text: "(", Pos: lp})
	p := l.pos()
	start := l.off
	depth := 0
	for {
		r, _ := l.peek()
		switch {
		case r == -1 || r == '\n' || r == ';' || r == '|':
			l.errorf(p, "unterminated literal: missing ')'")
			l.emit(token{Kind: tokIllegal, Pos: p})
			return
		case r == '"' || r == '\'':
			q := l.advance()
			for c, _ := l.peek(); c != -1 && c != q && c != '\n'; c, _ = l.peek() {
				if c == '\\' {
					l.advance()
				}
				l.advance()
			}
			if c, _ := l.peek(); c == q {
				l.advance()
			}
			continue
		case r == '(':
			depth++
		case r == ')':
			if depth == 0 {
				l.emit(token{Kind: tokRaw, Text: strings.TrimSpace(l.src[start:l.off]), Pos: p})
				rp := l.pos()
				l.advance()
				l.emit(token{Kind: tokPunct, Text: ")", Pos: rp})
				return
			}
			depth--
		}
		l.advance()
	}
}

// timespanUnits maps unit suffixes to their duration.
var timespanUnits = map[string]time.Duration{
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"ms": time.Millisecond, "milli": time.Millisecond, "millis": time.Millisecond,
	"millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"microsecond": time.Microsecond, "microseconds": time.Microsecond,
	"tick": 100 * time.Nanosecond, "ticks": 100 * time.Nanosecond,
}

func (l *lexer) lexNumber() {
	p := l.pos()
	start := l.off
	isReal := false
	if l.src[l.off] == '0' && (l.peekAt(l.off+1) == 'x' || l.peekAt(l.off+1) == 'X') {
		l.advance()
		l.advance()
		hs := l.off
		for isHex(l.peekAt(l.off)) {
			l.advance()
		}
		v, err := strconv.ParseUint(l.src[hs:l.off], 16, 64)
		if err != nil || l.off == hs {
			l.errorf(p, "invalid hexadecimal literal")
			l.emit(token{Kind: tokIllegal, Pos: p})
			return
		}
		l.emit(token{Kind: tokInt, Int: int64(v), Text: l.src[start:l.off], Pos: p})
		return
	}
	for isDigit(l.peekAt(l.off)) {
		l.advance()
	}
	if l.peekAt(l.off) == '.' && isDigit(l.peekAt(l.off+1)) {
		isReal = true
		l.advance()
		for isDigit(l.peekAt(l.off)) {
			l.advance()
		}
	}
	if c := l.peekAt(l.off); c == 'e' || c == 'E' {
		n := l.off + 1
		if c2 := l.peekAt(n); c2 == '+' || c2 == '-' {
			n++
		}
		if isDigit(l.peekAt(n)) {
			isReal = true
			for l.off < n {
				l.advance()
			}
			for isDigit(l.peekAt(l.off)) {
				l.advance()
			}
		}
	}
	numText := l.src[start:l.off]
	if isIdentStart(l.peekAt(l.off)) {
		us := l.off
		for isIdentChar(l.peekAt(l.off)) {
			l.advance()
		}
		unit := l.src[us:l.off]
		d, ok := timespanUnits[unit]
		if !ok {
			l.errorf(p, "invalid number literal "+strconv.Quote(l.src[start:l.off]))
			l.emit(token{Kind: tokIllegal, Pos: p})
			return
		}
		f, err := strconv.ParseFloat(numText, 64)
		if err != nil || f*float64(d) > float64(1<<62) {
			l.errorf(p, "timespan literal out of range")
			l.emit(token{Kind: tokIllegal, Pos: p})
			return
		}
		l.emit(token{Kind: tokTimespan, Dur: time.Duration(f * float64(d)), Text: l.src[start:l.off], Pos: p})
		return
	}
	if isReal {
		f, err := strconv.ParseFloat(numText, 64)
		if err != nil {
			l.errorf(p, "invalid real literal")
			l.emit(token{Kind: tokIllegal, Pos: p})
			return
		}
		l.emit(token{Kind: tokReal, Real: f, Text: numText, Pos: p})
		return
	}
	v, err := strconv.ParseInt(numText, 10, 64)
	if err != nil {
		l.errorf(p, "integer literal out of range")
		l.emit(token{Kind: tokIllegal, Pos: p})
		return
	}
	l.emit(token{Kind: tokInt, Int: v, Text: numText, Pos: p})
}

func isHex(r rune) bool { return isDigit(r) || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' }

// lexString reads a '...' or "..." literal starting at the quote; verbatim
// strings (@"...") have no escapes and double the quote to include it.
func (l *lexer) lexString(p Pos, verbatim bool) {
	q := l.advance()
	var b strings.Builder
	for {
		r, _ := l.peek()
		if r == -1 || r == '\n' {
			l.errorf(p, "unterminated string literal")
			l.emit(token{Kind: tokIllegal, Pos: p})
			return
		}
		if r == q {
			l.advance()
			if verbatim && l.peekAt(l.off) == q {
				l.advance()
				b.WriteRune(q)
				continue
			}
			break
		}
		if r == '\\' && !verbatim {
			ep := l.pos()
			l.advance()
			e := l.advance()
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'v':
				b.WriteByte('\v')
			case '\\', '"', '\'', '/', '?':
				b.WriteRune(e)
			case 'u', 'x', 'U':
				n := map[rune]int{'u': 4, 'x': 2, 'U': 8}[e]
				hs := l.off
				for i := 0; i < n && isHex(l.peekAt(l.off)); i++ {
					l.advance()
				}
				v, err := strconv.ParseUint(l.src[hs:l.off], 16, 32)
				if err != nil || l.off-hs != n || !utf8.ValidRune(rune(v)) {
					l.errorf(ep, "invalid escape sequence in string literal")
				} else {
					b.WriteRune(rune(v))
				}
			case -1, '\n':
				l.errorf(p, "unterminated string literal")
				l.emit(token{Kind: tokIllegal, Pos: p})
				return
			default:
				l.errorf(ep, "invalid escape sequence \\"+string(e)+" in string literal")
			}
			continue
		}
		b.WriteRune(l.advance())
	}
	l.emit(token{Kind: tokString, Str: b.String(), Text: l.src[p.Offset:l.off], Pos: p})
}

// lexTypoString reads a string delimited by typographic quotes such as
// “kubectl” or ‘x’, as pasted from web pages, and warns about it.
func (l *lexer) lexTypoString() {
	p := l.pos()
	open := l.advance()
	double := isTypoDouble(open)
	var b strings.Builder
	for {
		r, _ := l.peek()
		if r == -1 || r == '\n' {
			l.errorf(p, "unterminated string literal")
			l.emit(token{Kind: tokIllegal, Pos: p})
			return
		}
		l.advance()
		if double && isTypoDouble(r) || !double && isTypoSingle(r) {
			break
		}
		b.WriteRune(r)
	}
	q := `"`
	if !double {
		q = `'`
	}
	l.warns = append(l.warns, Warning{Pos: p, Msg: "typographic quotes " + l.src[p.Offset:l.off] + " were treated as " + q + b.String() + q})
	l.emit(token{Kind: tokString, Str: b.String(), Text: l.src[p.Offset:l.off], Pos: p})
}

func (l *lexer) lexMultiline() {
	p := l.pos()
	l.advance()
	l.advance()
	l.advance()
	end := strings.Index(l.src[l.off:], "```")
	if end < 0 {
		l.errorf(p, "unterminated multi-line string literal")
		for l.off < len(l.src) {
			l.advance()
		}
		l.emit(token{Kind: tokIllegal, Pos: p})
		return
	}
	s := l.src[l.off : l.off+end]
	for i := 0; i < end+3; {
		_, n := l.peek()
		l.advance()
		i += n
	}
	l.emit(token{Kind: tokString, Str: s, Text: l.src[p.Offset:l.off], Pos: p})
}

var puncts2 = []string{"==", "!=", "<>", "<=", ">=", "=~", "!~", "..", "=>"}

func (l *lexer) lexPunct() {
	p := l.pos()
	rest := l.src[l.off:]
	for _, s := range puncts2 {
		if strings.HasPrefix(rest, s) {
			l.advance()
			l.advance()
			l.emit(token{Kind: tokPunct, Text: s, Pos: p})
			return
		}
	}
	r := l.advance()
	if strings.ContainsRune("|;,()[]{}.=<>+-*/%:!~?", r) {
		l.emit(token{Kind: tokPunct, Text: string(r), Pos: p})
		return
	}
	msg := "unexpected character " + strconv.QuoteRune(r)
	if r == utf8.RuneError {
		msg = "invalid UTF-8 in query"
	}
	l.errorf(p, msg)
	l.emit(token{Kind: tokIllegal, Pos: p})
}
