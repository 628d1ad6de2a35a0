package sqlc

import (
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// sexpr is a compiled scalar expression.
type sexpr struct {
	sql     string
	typ     table.Type // int is kept as long, with intType set
	intType bool
	srep    bool               // dynamic held as VARCHAR (a string or NULL)
	fields  map[string]*Column // members with their own expression
	rest    string             // JSON holding the members not in fields
	parsed  *Column            // what parse_json gives of this string (Column.Parsed)
	isConst bool               // a literal; val holds it
	val     any
	// notNull reports that the SQL value is never NULL.
	notNull bool
}

// derived is a new expression of e's type and representation.
func (e *sexpr) derived(sql string) *sexpr {
	return &sexpr{sql: sql, typ: e.typ, intType: e.intType, srep: e.srep, notNull: e.notNull}
}

// scope compiles expressions over the columns of a stage.
type scope struct {
	c    *compiler
	r    *rel
	aggs *aggCollector // set inside summarize aggregations
	// depth guards the inlining of scalar lets.
	depth int
}

func (c *compiler) scope(r *rel) *scope { return &scope{c: c, r: r} }

func (s *scope) expr(e syntax.Expr) (*sexpr, error) {
	switch x := e.(type) {
	case *syntax.Literal:
		return s.literal(x.Type, x.Value)
	case *syntax.Ident:
		return s.ident(x)
	case *syntax.Member:
		return s.member(x.X, PathElem{Key: x.Name})
	case *syntax.Index:
		lit, ok := x.Index.(*syntax.Literal)
		if !ok {
			return nil, unsupported("computed index")
		}
		switch v := lit.Value.(type) {
		case string:
			return s.member(x.X, PathElem{Key: v})
		case int64:
			return s.member(x.X, PathElem{Index: v, IsIndex: true})
		}
		return nil, unsupported("index of type %s", lit.Type)
	case *syntax.Unary:
		v, err := s.expr(x.X)
		if err != nil {
			return nil, err
		}
		if !isNumeric(v.typ) && v.typ != table.TimeSpan {
			return nil, unsupported("unary %s on %s", x.Op, v.typ)
		}
		if x.Op == "-" {
			return &sexpr{sql: "(-" + v.sql + ")", typ: v.typ, intType: v.intType}, nil
		}
		return v, nil
	case *syntax.Binary:
		return s.binary(x)
	case *syntax.InExpr:
		return s.in(x)
	case *syntax.Between:
		return s.between(x)
	case *syntax.Call:
		if s.aggs != nil {
			if spec, ok := aggregates[x.Name]; ok {
				return s.aggs.add(s, x, spec)
			}
		}
		return s.call(x)
	}
	return nil, unsupported("expression %T", e)
}

func (s *scope) literal(t table.Type, v any) (*sexpr, error) {
	d := s.c.d
	e := &sexpr{typ: t, isConst: true, val: v, notNull: v != nil}
	if t == table.Int {
		e.typ, e.intType = table.Long, true
	}
	if v == nil {
		st, err := sqlTypeOf(e.typ)
		if err != nil {
			return nil, err
		}
		e.sql = d.Null(st)
		return e, nil
	}
	switch x := v.(type) {
	case string:
		if t != table.String {
			return nil, unsupported("literal %s", t)
		}
		e.sql = d.String(x)
	case int64:
		e.sql = d.Long(x)
	case float64:
		e.sql = d.Real(x)
	case bool:
		e.sql = "FALSE"
		if x {
			e.sql = "TRUE"
		}
	case time.Time:
		if x.Nanosecond()%1000 != 0 {
			return nil, unsupported("datetime below a microsecond")
		}
		e.sql = d.DateTime(x)
	case time.Duration:
		e.sql = d.Long(int64(x))
	default:
		if t != table.Dynamic {
			return nil, unsupported("literal %s", t)
		}
		e.sql = d.JSONLiteral(jsonText(v))
	}
	if t == table.Dynamic {
		switch x := v.(type) {
		case string:
			e.sql = d.ToJSON(d.String(x))
		case int64, float64, bool:
			e.sql = d.JSONLiteral(jsonText(x))
		}
	}
	return e, nil
}

func sqlTypeOf(t table.Type) (sqlType, error) {
	switch t {
	case table.Bool:
		return sqlBool, nil
	case table.Long, table.Int, table.TimeSpan:
		return sqlBigint, nil
	case table.Real:
		return sqlDouble, nil
	case table.String:
		return sqlVarchar, nil
	case table.DateTime:
		return sqlTimestamp, nil
	case table.Dynamic:
		return sqlJSON, nil
	}
	return "", unsupported("type %s", t)
}

func isNumeric(t table.Type) bool { return t == table.Long || t == table.Real }

func (s *scope) ident(x *syntax.Ident) (*sexpr, error) {
	if i := s.r.find(x.Name); i >= 0 {
		return s.r.cols[i].e, nil
	}
	if l, ok := s.c.lets[x.Name]; ok && l.Scalar != nil {
		if s.depth > 20 {
			return nil, unsupported("let nesting")
		}
		// A scalar let is a constant: compile it with no columns in scope.
		inner := &scope{c: s.c, r: &rel{}, depth: s.depth + 1}
		return inner.expr(l.Scalar)
	}
	return nil, unsupported("name %s", x.Name)
}

// member compiles base.key or base[index].
func (s *scope) member(base syntax.Expr, p PathElem) (*sexpr, error) {
	b, err := s.expr(base)
	if err != nil {
		return nil, err
	}
	if b.typ != table.Dynamic {
		return nil, unsupported("member of %s", b.typ)
	}
	if !p.IsIndex && b.fields != nil {
		if f, ok := b.fields[p.Key]; ok {
			return fromColumn(f), nil
		}
		if b.rest != "" {
			return &sexpr{sql: s.c.d.JSONGet(b.rest, []PathElem{p}), typ: table.Dynamic}, nil
		}
	}
	if b.srep {
		// A string has no members.
		return &sexpr{sql: s.c.d.Null(sqlJSON), typ: table.Dynamic}, nil
	}
	// Merge a chain of plain JSON accesses into one path.
	if base, path, ok := splitPath(b.sql); ok {
		return &sexpr{sql: s.c.d.JSONGet(base, append(path, p)), typ: table.Dynamic}, nil
	}
	return &sexpr{sql: s.c.d.JSONGet(b.sql, []PathElem{p}), typ: table.Dynamic}, nil
}

// pathMarks lets member() find the base and path of a JSONGet it wrote.
var pathRE = regexp.MustCompile(`^nullif\(json_extract\((.*), '((?:/[^'/]*)+)'\), CAST\('null' AS JSON\)\)$`)

func splitPath(sql string) (string, []PathElem, bool) {
	m := pathRE.FindStringSubmatch(sql)
	if m == nil || strings.Contains(m[2], "''") {
		return "", nil, false
	}
	var path []PathElem
	for _, seg := range strings.Split(m[2][1:], "/") {
		path = append(path, PathElem{Key: strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)})
	}
	return m[1], path, true
}

// text converts a value to its KQL string form (tostring), never NULL.
func (s *scope) text(e *sexpr) (string, error) {
	d := s.c.d
	switch e.typ {
	case table.String:
		if !e.notNull {
			return "coalesce(" + e.sql + ", '')", nil
		}
		return e.sql, nil
	case table.Dynamic:
		if e.srep {
			return "coalesce(" + e.sql + ", '')", nil
		}
		return "coalesce(" + d.JSONText(e.sql) + ", '')", nil
	case table.Long:
		return "coalesce(CAST(" + e.sql + " AS VARCHAR), '')", nil
	case table.Bool:
		return "coalesce(CASE WHEN " + e.sql + " THEN 'true' ELSE 'false' END, '')", nil
	case table.DateTime:
		return "coalesce(" + d.DatetimeText(e.sql) + ", '')", nil
	}
	return "", unsupported("tostring of %s", e.typ)
}

// dynText is the string form of a dynamic value, NULL for null.
func (s *scope) dynText(e *sexpr) string {
	if e.srep {
		return e.sql
	}
	return s.c.d.JSONText(e.sql)
}

func boolExpr(sql string) *sexpr { return &sexpr{sql: sql, typ: table.Bool, notNull: true} }

func (s *scope) binary(x *syntax.Binary) (*sexpr, error) {
	l, err := s.expr(x.L)
	if err != nil {
		return nil, err
	}
	r, err := s.expr(x.R)
	if err != nil {
		return nil, err
	}
	op := x.Op
	switch op {
	case "and", "or":
		if l.typ != table.Bool || r.typ != table.Bool {
			return nil, unsupported("%s of %s and %s", op, l.typ, r.typ)
		}
		if !l.notNull || !r.notNull {
			return nil, unsupported("%s of nullable bools", op)
		}
		return boolExpr("(" + l.sql + " " + strings.ToUpper(op) + " " + r.sql + ")"), nil
	case "==", "!=", "<", "<=", ">", ">=":
		return s.compare(op, l, r)
	case "=~", "!~":
		ls, err := s.text(l)
		if err != nil {
			return nil, err
		}
		rs, err := s.text(r)
		if err != nil {
			return nil, err
		}
		if !isASCIIConst(r) && !isASCIIConst(l) {
			return nil, unsupported("%s on non-ASCII text", op)
		}
		eq := "(" + s.c.d.Lower(ls) + " = " + s.c.d.Lower(rs) + ")"
		if op == "!~" {
			eq = "(NOT " + eq + ")"
		}
		return boolExpr(eq), nil
	case "+", "-", "*", "/", "%":
		return s.arith(op, l, r)
	case "matches regex":
		if !r.isConst || r.typ != table.String {
			return nil, unsupported("regex that is not a constant")
		}
		re := r.val.(string)
		if _, err := regexp.Compile(re); err != nil {
			return nil, unsupported("regex %q", re)
		}
		ls, err := s.text(l)
		if err != nil {
			return nil, err
		}
		return boolExpr(s.c.d.RegexMatch(ls, re)), nil
	}
	return s.stringOp(op, l, r)
}

func isASCIIConst(e *sexpr) bool {
	if !e.isConst {
		return false
	}
	str, ok := e.val.(string)
	return ok && isASCII(str)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// compare compiles ==, != and the orderings. Like the evaluator, a null on
// either side makes any comparison false.
func (s *scope) compare(op string, l, r *sexpr) (*sexpr, error) {
	sqlOp := op
	if op == "==" {
		sqlOp = "="
	} else if op == "!=" {
		sqlOp = "<>"
	}
	ls, rs, err := s.comparable(op, l, r)
	if err != nil {
		return nil, err
	}
	cmp := ls + " " + sqlOp + " " + rs
	if l.notNull && r.notNull {
		return boolExpr("(" + cmp + ")"), nil
	}
	return boolExpr("coalesce(" + cmp + ", FALSE)"), nil
}

// comparable converts two operands to one SQL type as the evaluator
// compares them.
func (s *scope) comparable(op string, l, r *sexpr) (string, string, error) {
	lt, rt := l.typ, r.typ
	switch {
	case lt == rt && lt != table.Dynamic:
		if lt == table.Bool && op != "==" && op != "!=" {
			return "", "", unsupported("ordering bools")
		}
		return l.sql, r.sql, nil
	case isNumeric(lt) && isNumeric(rt):
		return l.sql, r.sql, nil
	case lt == table.Dynamic && rt == table.String:
		if op != "==" && op != "!=" {
			return "", "", unsupported("ordering dynamic and string")
		}
		return s.dynText(l), r.sql, nil
	case lt == table.String && rt == table.Dynamic:
		if op != "==" && op != "!=" {
			return "", "", unsupported("ordering dynamic and string")
		}
		return l.sql, s.dynText(r), nil
	case lt == table.Dynamic && isNumeric(rt) && r.isConst:
		return s.c.d.CastTry(s.dynText(l), sqlDouble), r.sql, nil
	case rt == table.Dynamic && isNumeric(lt) && l.isConst:
		return l.sql, s.c.d.CastTry(s.dynText(r), sqlDouble), nil
	}
	return "", "", unsupported("comparing %s with %s", lt, rt)
}

func (s *scope) arith(op string, l, r *sexpr) (*sexpr, error) {
	lt, rt := l.typ, r.typ
	d := s.c.d
	switch {
	case lt == table.Long && rt == table.Long:
		switch op {
		case "/":
			return &sexpr{sql: d.IntDiv(l.sql, r.sql), typ: table.Long}, nil
		case "%":
			return &sexpr{sql: "(" + l.sql + " % NULLIF(" + r.sql + ", 0))", typ: table.Long}, nil
		}
		return &sexpr{sql: "(" + l.sql + " " + op + " " + r.sql + ")", typ: table.Long}, nil
	case isNumeric(lt) && isNumeric(rt) && op != "%":
		if op == "/" {
			return &sexpr{sql: "(CAST(" + l.sql + " AS DOUBLE) / " + r.sql + ")", typ: table.Real}, nil
		}
		return &sexpr{sql: "(CAST(" + l.sql + " AS DOUBLE) " + op + " " + r.sql + ")", typ: table.Real}, nil
	case lt == table.DateTime && rt == table.TimeSpan && (op == "+" || op == "-"):
		return &sexpr{sql: d.FromEpochMicros("(" + d.EpochMicros(l.sql) + " " + op + " " + d.IntDiv(r.sql, "1000") + ")"), typ: table.DateTime}, nil
	case lt == table.TimeSpan && rt == table.DateTime && op == "+":
		return &sexpr{sql: d.FromEpochMicros("(" + d.EpochMicros(r.sql) + " + " + d.IntDiv(l.sql, "1000") + ")"), typ: table.DateTime}, nil
	case lt == table.DateTime && rt == table.DateTime && op == "-":
		return &sexpr{sql: "((" + d.EpochMicros(l.sql) + " - " + d.EpochMicros(r.sql) + ") * 1000)", typ: table.TimeSpan}, nil
	case lt == table.TimeSpan && rt == table.TimeSpan && (op == "+" || op == "-"):
		return &sexpr{sql: "(" + l.sql + " " + op + " " + r.sql + ")", typ: table.TimeSpan}, nil
	}
	return nil, unsupported("%s %s %s", lt, op, rt)
}

// stringOp compiles has, contains, startswith, endswith, hasprefix,
// hassuffix, with their _cs and ! forms. A null operand counts as "".
func (s *scope) stringOp(op string, l, r *sexpr) (*sexpr, error) {
	neg := strings.HasPrefix(op, "!")
	base := strings.TrimPrefix(op, "!")
	cs := strings.HasSuffix(base, "_cs")
	base = strings.TrimSuffix(base, "_cs")
	if !r.isConst {
		return nil, unsupported("%s with a needle that is not a constant", op)
	}
	needle, ok := r.val.(string)
	if !ok {
		return nil, unsupported("%s with a needle of type %s", op, r.typ)
	}
	hay, err := s.text(l)
	if err != nil {
		return nil, err
	}
	fold := !cs
	if fold {
		if !isASCII(needle) {
			return nil, unsupported("case-insensitive %s of a non-ASCII needle", base)
		}
		needle = strings.ToLower(needle)
	}
	d := s.c.d
	var out string
	switch base {
	case "contains":
		out = d.Contains(hay, needle, fold)
	case "startswith":
		out = d.StartsWith(hay, needle, fold)
	case "endswith":
		out = d.EndsWith(hay, needle, fold)
	case "has":
		out = s.hasTerm(hay, needle, fold, true, true)
	case "hasprefix":
		out = s.hasTerm(hay, needle, fold, true, false)
	case "hassuffix":
		out = s.hasTerm(hay, needle, fold, false, true)
	default:
		return nil, unsupported("operator %s", op)
	}
	if neg {
		out = "(NOT " + out + ")"
	}
	return boolExpr(out), nil
}

// hasTerm matches needle as a whole term, as the evaluator's has does: not
// preceded (start) or followed (end) by a letter or digit when the needle
// itself starts or ends with one. A substring test comes first, which
// DuckDB runs much faster than the expression.
func (s *scope) hasTerm(hay, needle string, fold, start, end bool) string {
	if needle == "" {
		return "TRUE"
	}
	first, _ := utf8.DecodeRuneInString(needle)
	last, _ := utf8.DecodeLastRuneInString(needle)
	re := regexp.QuoteMeta(needle)
	if start && isTermRune(first) {
		re = `(?:^|[^\p{L}\p{N}])` + re
	}
	if end && isTermRune(last) {
		re += `(?:$|[^\p{L}\p{N}])`
	}
	if fold {
		re = "(?is)" + re
	} else {
		re = "(?s)" + re
	}
	d := s.c.d
	return "(" + d.Contains(hay, needle, fold) + " AND " + d.RegexMatch(hay, re) + ")"
}

func isTermRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// in compiles in, !in, in~, !in~ and has_any over constant lists.
func (s *scope) in(x *syntax.InExpr) (*sexpr, error) {
	if x.Sub != nil {
		return nil, unsupported("%s with a subquery", x.Op)
	}
	v, err := s.expr(x.X)
	if err != nil {
		return nil, err
	}
	var strs []string
	var nums []*sexpr
	for _, el := range x.List {
		e, err := s.expr(el)
		if err != nil {
			return nil, err
		}
		if !e.isConst || e.val == nil {
			return nil, unsupported("%s list that is not constant", x.Op)
		}
		if arr, ok := e.val.([]any); ok && e.typ == table.Dynamic {
			for _, v := range arr {
				str, ok := v.(string)
				if !ok {
					return nil, unsupported("%s list of dynamic %T", x.Op, v)
				}
				strs = append(strs, str)
			}
			continue
		}
		switch val := e.val.(type) {
		case string:
			if e.typ != table.String {
				return nil, unsupported("%s list of dynamic", x.Op)
			}
			strs = append(strs, val)
		case int64, float64:
			if e.typ == table.Dynamic {
				return nil, unsupported("%s list of dynamic", x.Op)
			}
			nums = append(nums, e)
		default:
			return nil, unsupported("%s list of %s", x.Op, e.typ)
		}
	}
	d := s.c.d
	switch x.Op {
	case "has_any", "has_all":
		if len(nums) > 0 || len(strs) == 0 {
			return nil, unsupported("%s list", x.Op)
		}
		hay, err := s.text(v)
		if err != nil {
			return nil, err
		}
		var parts []string
		for _, n := range strs {
			if !isASCII(n) {
				return nil, unsupported("has_any of a non-ASCII term")
			}
			parts = append(parts, s.hasTerm(hay, strings.ToLower(n), true, true, true))
		}
		j := " OR "
		if x.Op == "has_all" {
			j = " AND "
		}
		return boolExpr("(" + strings.Join(parts, j) + ")"), nil
	}
	neg := strings.HasPrefix(x.Op, "!")
	fold := strings.HasSuffix(x.Op, "~")
	var lhs string
	var list []string
	switch {
	case len(nums) == 0 && len(strs) > 0 && (v.typ == table.String || v.typ == table.Dynamic):
		lhs = v.sql
		if v.typ == table.Dynamic {
			lhs = s.dynText(v)
		}
		for _, str := range strs {
			if fold {
				if !isASCII(str) {
					return nil, unsupported("%s of a non-ASCII string", x.Op)
				}
				str = strings.ToLower(str)
			}
			list = append(list, d.String(str))
		}
		if fold {
			lhs = d.Lower(lhs)
		}
	case len(strs) == 0 && len(nums) > 0 && isNumeric(v.typ) && !fold:
		lhs = v.sql
		for _, n := range nums {
			list = append(list, n.sql)
		}
	default:
		return nil, unsupported("%s of %s", x.Op, v.typ)
	}
	test := lhs + " IN (" + strings.Join(list, ", ") + ")"
	if neg {
		test = "NOT (" + test + ")"
	}
	if v.notNull {
		return boolExpr("(" + test + ")"), nil
	}
	return boolExpr("coalesce(" + lhs + " IS NOT NULL AND " + test + ", FALSE)"), nil
}

func (s *scope) between(x *syntax.Between) (*sexpr, error) {
	v, err := s.expr(x.X)
	if err != nil {
		return nil, err
	}
	lo, err := s.expr(x.Lo)
	if err != nil {
		return nil, err
	}
	hi, err := s.expr(x.Hi)
	if err != nil {
		return nil, err
	}
	if v.typ == table.DateTime && lo.typ == table.DateTime && hi.typ == table.TimeSpan {
		if hi, err = s.arith("+", lo, hi); err != nil {
			return nil, err
		}
	}
	if v.typ == table.Dynamic && isNumeric(lo.typ) && isNumeric(hi.typ) {
		v = &sexpr{sql: s.c.d.CastTry(s.dynText(v), sqlDouble), typ: table.Real}
	}
	ok := (isNumeric(v.typ) && isNumeric(lo.typ) && isNumeric(hi.typ)) ||
		(v.typ == table.DateTime && lo.typ == table.DateTime && hi.typ == table.DateTime) ||
		(v.typ == table.TimeSpan && lo.typ == table.TimeSpan && hi.typ == table.TimeSpan)
	if !ok {
		return nil, unsupported("between of %s", v.typ)
	}
	test := v.sql + " BETWEEN " + lo.sql + " AND " + hi.sql
	if x.Not {
		test = "NOT (" + test + ")"
	}
	return boolExpr("coalesce(" + test + ", FALSE)"), nil
}

// jsonText renders a constant dynamic value as JSON.
func jsonText(v any) string {
	var b strings.Builder
	writeJSON(&b, v)
	return b.String()
}
