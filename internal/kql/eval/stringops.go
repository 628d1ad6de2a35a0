package eval

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// stringOp compiles has, contains, startswith, endswith, hasprefix,
// hassuffix with their _cs and ! variants. Both sides are used as strings.
func (sc *scope) stringOp(e *syntax.Binary, l, r *cexpr) (*cexpr, error) {
	op := e.Op
	neg := strings.HasPrefix(op, "!")
	op = strings.TrimPrefix(op, "!")
	cs := strings.HasSuffix(op, "_cs")
	op = strings.TrimSuffix(op, "_cs")
	match := matcherFor(op, cs)
	if match == nil {
		return nil, sc.errorf(e.OpPos, "unknown operator %q", e.Op)
	}
	lf := l.fn
	if r.isConst {
		needle := toStr(r.val)
		if !cs {
			needle = strings.ToLower(needle)
		}
		return fold(newExpr(table.Bool, e.OpPos, func(row []any) any {
			return match(toStr(lf(row)), needle) != neg
		}), l, r), nil
	}
	rf := r.fn
	return fold(newExpr(table.Bool, e.OpPos, func(row []any) any {
		needle := toStr(rf(row))
		if !cs {
			needle = strings.ToLower(needle)
		}
		return match(toStr(lf(row)), needle) != neg
	}), l, r), nil
}

// matcherFor returns a function testing hay against needle; for the
// case-insensitive forms the needle is already lower-case.
func matcherFor(op string, cs bool) func(hay, needle string) bool {
	switch op {
	case "has":
		return func(h, n string) bool { return hasTerm(h, n, !cs, true, true) }
	case "hasprefix":
		return func(h, n string) bool { return hasTerm(h, n, !cs, true, false) }
	case "hassuffix":
		return func(h, n string) bool { return hasTerm(h, n, !cs, false, true) }
	case "contains":
		if cs {
			return strings.Contains
		}
		return func(h, n string) bool { return indexFold(h, n, 0) >= 0 }
	case "startswith":
		if cs {
			return strings.HasPrefix
		}
		return hasPrefixFold
	case "endswith":
		if cs {
			return strings.HasSuffix
		}
		return hasSuffixFold
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 32
	}
	return c
}

// indexFold finds lowerSub in s from byte offset from, ignoring case.
// Offsets refer to s when lowerSub is ASCII; otherwise to lower(s).
func indexFold(s, lowerSub string, from int) int {
	if !isASCII(lowerSub) {
		ls := strings.ToLower(s)
		if from > len(ls) {
			return -1
		}
		if i := strings.Index(ls[from:], lowerSub); i >= 0 {
			return i + from
		}
		return -1
	}
	n := len(lowerSub)
	if n == 0 {
		if from <= len(s) {
			return from
		}
		return -1
	}
	c0 := lowerSub[0]
	for i := from; i+n <= len(s); i++ {
		if lowerASCII(s[i]) != c0 {
			continue
		}
		j := 1
		for ; j < n; j++ {
			if lowerASCII(s[i+j]) != lowerSub[j] {
				break
			}
		}
		if j == n {
			return i
		}
	}
	return -1
}

func hasPrefixFold(s, lowerPrefix string) bool {
	if isASCII(lowerPrefix) {
		if len(s) < len(lowerPrefix) {
			return false
		}
		for i := 0; i < len(lowerPrefix); i++ {
			if lowerASCII(s[i]) != lowerPrefix[i] {
				return false
			}
		}
		return true
	}
	return strings.HasPrefix(strings.ToLower(s), lowerPrefix)
}

func hasSuffixFold(s, lowerSuffix string) bool {
	if isASCII(lowerSuffix) {
		if len(s) < len(lowerSuffix) {
			return false
		}
		off := len(s) - len(lowerSuffix)
		for i := 0; i < len(lowerSuffix); i++ {
			if lowerASCII(s[off+i]) != lowerSuffix[i] {
				return false
			}
		}
		return true
	}
	return strings.HasSuffix(strings.ToLower(s), lowerSuffix)
}

func isTermRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// hasTerm implements Kusto's has: needle must occur in s as a whole term,
// i.e. not preceded (checkStart) or followed (checkEnd) by a letter or
// digit when the needle itself starts/ends with one.
func hasTerm(s, needle string, fold, checkStart, checkEnd bool) bool {
	if needle == "" {
		return true
	}
	if fold && !isASCII(needle) {
		s = strings.ToLower(s)
		fold = false
	}
	first, _ := utf8.DecodeRuneInString(needle)
	last, _ := utf8.DecodeLastRuneInString(needle)
	checkStart = checkStart && isTermRune(first)
	checkEnd = checkEnd && isTermRune(last)
	for from := 0; from <= len(s); {
		var i int
		if fold {
			i = indexFold(s, needle, from)
		} else {
			i = strings.Index(s[from:], needle)
			if i >= 0 {
				i += from
			}
		}
		if i < 0 {
			return false
		}
		end := i + len(needle)
		okStart := true
		if checkStart && i > 0 {
			r, _ := utf8.DecodeLastRuneInString(s[:i])
			okStart = !isTermRune(r)
		}
		okEnd := true
		if checkEnd && end < len(s) {
			r, _ := utf8.DecodeRuneInString(s[end:])
			okEnd = !isTermRune(r)
		}
		if okStart && okEnd {
			return true
		}
		from = i + 1
	}
	return false
}

type regexCacheEntry struct {
	re  *regexp.Regexp
	err error
}

// regex compiles (and caches) a regular expression used with a
// non-constant pattern.
func (r *runner) regex(pattern string) (*regexp.Regexp, error) {
	if e, ok := r.regexes[pattern]; ok {
		return e.re, e.err
	}
	re, err := regexp.Compile(pattern)
	if len(r.regexes) > 1000 {
		clear(r.regexes)
	}
	r.regexes[pattern] = &regexCacheEntry{re: re, err: err}
	return re, err
}

// regexArg returns a function yielding the compiled regex of arg, checking
// constant patterns at compile time.
func (sc *scope) regexArg(arg *cexpr) (func(row []any) *regexp.Regexp, error) {
	if arg.isConst {
		re, err := regexp.Compile(toStr(arg.val))
		if err != nil {
			return nil, sc.errorf(arg.pos, "invalid regular expression: %v", err)
		}
		return func([]any) *regexp.Regexp { return re }, nil
	}
	f := arg.fn
	r := sc.r
	return func(row []any) *regexp.Regexp {
		re, err := r.regex(toStr(f(row)))
		if err != nil {
			return nil
		}
		return re
	}, nil
}

func (sc *scope) matchesRegex(e *syntax.Binary, l, r *cexpr) (*cexpr, error) {
	re, err := sc.regexArg(r)
	if err != nil {
		return nil, err
	}
	lf := l.fn
	if r.isConst {
		// A constant pattern is often matched against a column with few
		// distinct values (user agents, images), row after row: remember
		// the answers. Rules run it on every ingested batch.
		rx := re(nil)
		m := &matchMemo{seen: map[string]bool{}}
		return fold(newExpr(table.Bool, e.OpPos, func(row []any) any {
			return m.match(rx, toStr(lf(row)))
		}), l, r), nil
	}
	return fold(newExpr(table.Bool, e.OpPos, func(row []any) any {
		rx := re(row)
		return rx != nil && rx.MatchString(toStr(lf(row)))
	}), l, r), nil
}

// matchMemo remembers a regex's answers for up to matchMemoSize strings of
// up to matchMemoLen bytes.
type matchMemo struct {
	mu   sync.Mutex
	seen map[string]bool
}

const (
	matchMemoSize = 4096
	matchMemoLen  = 1024
)

func (m *matchMemo) match(rx *regexp.Regexp, s string) bool {
	if len(s) > matchMemoLen {
		return rx.MatchString(s)
	}
	m.mu.Lock()
	ok, hit := m.seen[s]
	m.mu.Unlock()
	if hit {
		return ok
	}
	ok = rx.MatchString(s)
	m.mu.Lock()
	if len(m.seen) < matchMemoSize {
		m.seen[s] = ok
	}
	m.mu.Unlock()
	return ok
}
