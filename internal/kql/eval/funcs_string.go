package eval

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kdfir/kdfir/internal/kql/table"
)

func registerStringFuncs() {
	register("strcat", 1, 64, fN(table.String, func(args []any) any {
		var b strings.Builder
		for _, a := range args {
			b.WriteString(toStr(a))
		}
		return b.String()
	}))
	register("strcat_delim", 2, 65, fN(table.String, func(args []any) any {
		d := toStr(args[0])
		var b strings.Builder
		for i, a := range args[1:] {
			if i > 0 {
				b.WriteString(d)
			}
			b.WriteString(toStr(a))
		}
		return b.String()
	}))
	strcatArray := f2(table.String, func(a, d any) any {
		arr, ok := a.([]any)
		if !ok {
			return ""
		}
		parts := make([]string, len(arr))
		for i, e := range arr {
			parts[i] = toStr(e)
		}
		return strings.Join(parts, toStr(d))
	})
	register("strcat_array", 2, 2, strcatArray)
	register("array_strcat", 2, 2, strcatArray)
	register("strlen", 1, 1, f1(table.Long, func(a any) any { return int64(utf8.RuneCountInString(toStr(a))) }))
	register("tolower", 1, 1, f1(table.String, func(a any) any { return strings.ToLower(toStr(a)) }))
	register("toupper", 1, 1, f1(table.String, func(a any) any { return strings.ToUpper(toStr(a)) }))
	register("reverse", 1, 1, f1(table.String, func(a any) any {
		r := []rune(toStr(a))
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return string(r)
	}))
	register("strcmp", 2, 2, f2(table.Int, func(a, b any) any {
		return int64(strings.Compare(toStr(a), toStr(b)))
	}))
	register("strrep", 2, 3, fN(table.String, func(args []any) any {
		n, ok := toLong(args[1])
		if !ok || n < 0 || n > 10000 {
			return ""
		}
		d := ""
		if len(args) == 3 {
			d = toStr(args[2])
		}
		s := toStr(args[0])
		if int64(len(s)+len(d))*n > 1<<24 {
			return ""
		}
		parts := make([]string, n)
		for i := range parts {
			parts[i] = s
		}
		return strings.Join(parts, d)
	}))
	register("substring", 2, 3, fN(table.String, func(args []any) any {
		s := []rune(toStr(args[0]))
		start, ok := toLong(args[1])
		if !ok {
			return ""
		}
		if start < 0 {
			start = 0
		}
		if start > int64(len(s)) {
			return ""
		}
		end := int64(len(s))
		if len(args) == 3 && args[2] != nil {
			n, ok := toLong(args[2])
			if !ok || n < 0 {
				return ""
			}
			if start+n < end {
				end = start + n
			}
		}
		return string(s[start:end])
	}))
	register("split", 2, 3, fN(table.Dynamic, func(args []any) any {
		s, d := toStr(args[0]), toStr(args[1])
		var parts []string
		if d == "" {
			parts = []string{s}
		} else {
			parts = strings.Split(s, d)
		}
		if len(args) == 3 {
			i, ok := toLong(args[2])
			if !ok {
				return nil
			}
			if i < 0 {
				i += int64(len(parts))
			}
			if i < 0 || i >= int64(len(parts)) {
				return []any{}
			}
			return []any{parts[i]}
		}
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out
	}))
	register("indexof", 2, 5, fN(table.Long, func(args []any) any {
		s, sub := toStr(args[0]), toStr(args[1])
		if args[0] == nil || args[1] == nil {
			return nil
		}
		start := int64(0)
		if len(args) >= 3 {
			n, ok := toLong(args[2])
			if !ok {
				return nil
			}
			start = n
		}
		occurrence := int64(1)
		if len(args) == 5 {
			n, ok := toLong(args[4])
			if !ok || n < 1 {
				return nil
			}
			occurrence = n
		}
		rs := []rune(s)
		if start < 0 {
			start += int64(len(rs))
		}
		if start < 0 || start > int64(len(rs)) {
			return int64(-1)
		}
		limit := int64(len(rs))
		if len(args) >= 4 && args[3] != nil {
			n, ok := toLong(args[3])
			if ok && n >= 0 && start+n < limit {
				limit = start + n
			}
		}
		hay := string(rs[start:limit])
		off := 0
		for {
			i := strings.Index(hay[off:], sub)
			if i < 0 {
				return int64(-1)
			}
			occurrence--
			if occurrence == 0 {
				return start + int64(utf8.RuneCountInString(hay[:off+i]))
			}
			off += i + max(1, len(sub))
			if off > len(hay) {
				return int64(-1)
			}
		}
	}))
	register("countof", 2, 3, func(cc *callCtx) (*cexpr, error) {
		if len(cc.args) == 3 && cc.args[2].isConst && toStr(cc.args[2].val) == "regex" {
			re, err := cc.sc.regexArg(cc.args[1])
			if err != nil {
				return nil, err
			}
			s := cc.args[0].fn
			return newExpr(table.Long, cc.call.NamePos, func(row []any) any {
				rx := re(row)
				if rx == nil {
					return nil
				}
				return int64(len(rx.FindAllStringIndex(toStr(s(row)), -1)))
			}), nil
		}
		return f2(table.Long, func(a, b any) any {
			s, sub := toStr(a), toStr(b)
			if sub == "" {
				return int64(0)
			}
			n := int64(0)
			for i := 0; i <= len(s)-len(sub); {
				j := strings.Index(s[i:], sub)
				if j < 0 {
					break
				}
				n++
				_, w := utf8.DecodeRuneInString(s[i+j:])
				i += j + w
			}
			return n
		})(cc)
	})
	register("replace_string", 3, 3, f3(table.String, func(s, lookup, rewrite any) any {
		l := toStr(lookup)
		if l == "" {
			return toStr(s)
		}
		return strings.ReplaceAll(toStr(s), l, toStr(rewrite))
	}))
	replaceRegex := func(textArg, reArg, rewriteArg int) builder {
		return func(cc *callCtx) (*cexpr, error) {
			re, err := cc.sc.regexArg(cc.args[reArg])
			if err != nil {
				return nil, err
			}
			text, rewrite := cc.args[textArg].fn, cc.args[rewriteArg].fn
			return newExpr(table.String, cc.call.NamePos, func(row []any) any {
				rx := re(row)
				if rx == nil {
					return nil
				}
				return rx.ReplaceAllString(toStr(text(row)), kustoRewrite(toStr(rewrite(row))))
			}), nil
		}
	}
	register("replace_regex", 3, 3, replaceRegex(0, 1, 2))
	register("replace", 3, 3, replaceRegex(2, 0, 1))
	register("trim", 2, 2, trimBuilder(true, true))
	register("trim_start", 2, 2, trimBuilder(true, false))
	register("trim_end", 2, 2, trimBuilder(false, true))
	functions["extract"] = funcSpec{min: 3, max: 4, build: extractBuilder, typeofOK: true}
	register("extract_all", 2, 3, extractAllBuilder)
	register("url_decode", 1, 1, f1(table.String, func(a any) any { return urlDecode(toStr(a)) }))
	register("url_encode", 1, 1, f1(table.String, func(a any) any { return urlEncode(toStr(a)) }))
	register("url_encode_component", 1, 1, f1(table.String, func(a any) any { return urlEncode(toStr(a)) }))
	register("base64_encode_tostring", 1, 1, f1(table.String, func(a any) any {
		return base64.StdEncoding.EncodeToString([]byte(toStr(a)))
	}))
	register("base64_decode_tostring", 1, 1, f1(table.String, func(a any) any {
		s := strings.TrimSpace(toStr(a))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil && utf8.Valid(b) {
				return string(b)
			}
		}
		return ""
	}))
	register("hash_sha256", 1, 1, f1(table.String, func(a any) any {
		h := sha256.Sum256([]byte(toStr(a)))
		return hex.EncodeToString(h[:])
	}))
	register("hash_sha1", 1, 1, f1(table.String, func(a any) any {
		h := sha1.Sum([]byte(toStr(a)))
		return hex.EncodeToString(h[:])
	}))
	register("hash_md5", 1, 1, f1(table.String, func(a any) any {
		h := md5.Sum([]byte(toStr(a)))
		return hex.EncodeToString(h[:])
	}))
	register("parse_url", 1, 1, f1(table.Dynamic, parseURL))
	register("parse_urlquery", 1, 1, f1(table.Dynamic, func(a any) any {
		q := strings.TrimPrefix(toStr(a), "?")
		return map[string]any{"Query Parameters": queryParams(q)}
	}))
}

var backrefRe = regexp.MustCompile(`\\(\d)`)

// kustoRewrite turns Kusto's \1 back-references into Go's ${1}.
func kustoRewrite(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return backrefRe.ReplaceAllString(s, `$${$1}`)
}

// trimBuilder implements trim(regex, text) and its start/end forms.
func trimBuilder(start, end bool) builder {
	return func(cc *callCtx) (*cexpr, error) {
		build := func(p string) (*regexp.Regexp, *regexp.Regexp, error) {
			var s, e *regexp.Regexp
			var err error
			if start {
				if s, err = regexp.Compile(`^(?:` + p + `)+`); err != nil {
					return nil, nil, err
				}
			}
			if end {
				if e, err = regexp.Compile(`(?:` + p + `)+$`); err != nil {
					return nil, nil, err
				}
			}
			return s, e, nil
		}
		apply := func(s, e *regexp.Regexp, text string) string {
			if s != nil {
				if loc := s.FindStringIndex(text); loc != nil {
					text = text[loc[1]:]
				}
			}
			if e != nil {
				if loc := e.FindStringIndex(text); loc != nil {
					text = text[:loc[0]]
				}
			}
			return text
		}
		pat, text := cc.args[0], cc.args[1].fn
		if pat.isConst {
			s, e, err := build(toStr(pat.val))
			if err != nil {
				return nil, cc.errorf(pat.pos, "invalid regular expression: %v", err)
			}
			return newExpr(table.String, cc.call.NamePos, func(row []any) any {
				return apply(s, e, toStr(text(row)))
			}), nil
		}
		pf := pat.fn
		return newExpr(table.String, cc.call.NamePos, func(row []any) any {
			s, e, err := build(toStr(pf(row)))
			if err != nil {
				return nil
			}
			return apply(s, e, toStr(text(row)))
		}), nil
	}
}

// extract(regex, captureGroup, text [, typeof(T)])
func extractBuilder(cc *callCtx) (*cexpr, error) {
	re, err := cc.sc.regexArg(cc.args[0])
	if err != nil {
		return nil, err
	}
	typ := table.String
	if len(cc.args) == 4 {
		t := cc.args[3]
		if t.typ != typeofType {
			return nil, cc.errorf(t.pos, "the 4th argument of extract must be typeof(T)")
		}
		typ = t.val.(table.Type)
	}
	group, text := cc.args[1].fn, cc.args[2].fn
	return newExpr(typ, cc.call.NamePos, func(row []any) any {
		rx := re(row)
		g, ok := toLong(group(row))
		if rx == nil || !ok || g < 0 || g > int64(rx.NumSubexp()) {
			return nullOf(typ)
		}
		m := rx.FindStringSubmatchIndex(toStr(text(row)))
		if m == nil || m[2*g] < 0 {
			return nullOf(typ)
		}
		s := toStr(text(row))[m[2*g]:m[2*g+1]]
		if typ == table.String {
			return s
		}
		return convertTo(typ, s)
	}), nil
}

func nullOf(t table.Type) any {
	if t == table.String {
		return ""
	}
	return nil
}

// extract_all(regex, [captureGroups,] text)
func extractAllBuilder(cc *callCtx) (*cexpr, error) {
	re, err := cc.sc.regexArg(cc.args[0])
	if err != nil {
		return nil, err
	}
	text := cc.args[len(cc.args)-1].fn
	groups := func([]any) any { return nil }
	if len(cc.args) == 3 {
		groups = cc.args[1].fn
	}
	return newExpr(table.Dynamic, cc.call.NamePos, func(row []any) any {
		rx := re(row)
		if rx == nil {
			return nil
		}
		var sel []int
		if g, ok := groups(row).([]any); ok {
			for _, x := range g {
				n, ok := toLong(x)
				if !ok || n < 0 || n > int64(rx.NumSubexp()) {
					return nil
				}
				sel = append(sel, int(n))
			}
		} else {
			for i := 1; i <= rx.NumSubexp(); i++ {
				sel = append(sel, i)
			}
			if len(sel) == 0 {
				sel = []int{0}
			}
		}
		matches := rx.FindAllStringSubmatch(toStr(text(row)), -1)
		if len(matches) == 0 {
			return nil
		}
		out := make([]any, 0, len(matches))
		for _, m := range matches {
			if len(sel) == 1 {
				out = append(out, m[sel[0]])
				continue
			}
			inner := make([]any, len(sel))
			for i, g := range sel {
				inner[i] = m[g]
			}
			out = append(out, inner)
		}
		return out
	}), nil
}

// urlDecode decodes %XX escapes and turns '+' into a space. Invalid
// escapes are kept as they are.
func urlDecode(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHexByte(s[i+1]) && isHexByte(s[i+2]):
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b = append(b, byte(v))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// urlEncode percent-encodes everything but unreserved characters.
func urlEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

func queryParams(q string) map[string]any {
	out := map[string]any{}
	for _, kv := range strings.Split(q, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		out[urlDecode(k)] = urlDecode(v)
	}
	return out
}

func parseURL(a any) any {
	u, err := url.Parse(toStr(a))
	if err != nil || u.Scheme == "" {
		return map[string]any{}
	}
	pw, _ := u.User.Password()
	return map[string]any{
		"Scheme":           u.Scheme,
		"Host":             u.Hostname(),
		"Port":             u.Port(),
		"Path":             u.EscapedPath(),
		"Username":         u.User.Username(),
		"Password":         pw,
		"Query Parameters": queryParams(u.RawQuery),
		"Fragment":         u.Fragment,
	}
}
