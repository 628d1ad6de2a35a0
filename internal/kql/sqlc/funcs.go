package sqlc

import (
	"encoding/json"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// ticksOffsetMicros is the time from 0001-01-01 (where Kusto's ticks, and
// the evaluator's bin(), start) to 1970-01-01, in microseconds.
const ticksOffsetMicros = 62135596800000000

func (s *scope) args(call *syntax.Call) ([]*sexpr, error) {
	out := make([]*sexpr, len(call.Args))
	for i, a := range call.Args {
		e, err := s.expr(a)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// call compiles a scalar function. The evaluator has already checked the
// argument counts and types (Compile runs it first).
func (s *scope) call(call *syntax.Call) (*sexpr, error) {
	name := call.Name
	if l, ok := s.c.lets[name]; ok && l.Func != nil {
		return s.udf(call, l.Func)
	}
	switch name {
	case "now":
		if len(call.Args) > 0 {
			return nil, unsupported("now() with an offset")
		}
		return s.literal(table.DateTime, s.c.now)
	case "ago":
		a, err := s.args(call)
		if err != nil {
			return nil, err
		}
		d, ok := a[0].val.(time.Duration)
		if !a[0].isConst || !ok {
			return nil, unsupported("ago() of a non-constant")
		}
		return s.literal(table.DateTime, s.c.now.Add(-d))
	case "column_ifexists":
		// The evaluator has checked that the name is a string literal.
		lit, _ := call.Args[0].(*syntax.Literal)
		if col, _ := lit.Value.(string); s.r.find(col) >= 0 {
			return s.r.cols[s.r.find(col)].e, nil
		}
		return s.expr(call.Args[1])
	case "estimate_data_size":
		return s.estimateDataSize(call)
	case "new_guid":
		return &sexpr{sql: "CAST(gen_random_uuid() AS VARCHAR)", typ: table.String, notNull: true}, nil
	}
	a, err := s.args(call)
	if err != nil {
		return nil, err
	}
	d := s.c.d
	switch name {
	case "tostring":
		t, err := s.text(a[0])
		if err != nil {
			return nil, err
		}
		return &sexpr{sql: t, typ: table.String, notNull: true}, nil
	case "tolong", "toint":
		e := &sexpr{typ: table.Long, intType: name == "toint"}
		switch a[0].typ {
		case table.Long:
			e.sql = a[0].sql
			if name == "toint" && !a[0].intType {
				e.sql = "(CASE WHEN " + a[0].sql + " BETWEEN -2147483648 AND 2147483647 THEN " + a[0].sql + " END)"
			}
		case table.String:
			e.sql = d.CastTry(a[0].sql, sqlBigint)
		case table.Dynamic:
			e.sql = d.DynToLong(a[0].sql, a[0].srep)
			if name == "toint" {
				e.sql = "(CASE WHEN (" + e.sql + ") BETWEEN -2147483648 AND 2147483647 THEN (" + e.sql + ") END)"
			}
		default:
			return nil, unsupported("%s of %s", name, a[0].typ)
		}
		return e, nil
	case "todouble", "toreal":
		switch a[0].typ {
		case table.Long, table.Real:
			return &sexpr{sql: "CAST(" + a[0].sql + " AS DOUBLE)", typ: table.Real}, nil
		}
		return nil, unsupported("%s of %s", name, a[0].typ)
	case "todatetime":
		if a[0].typ == table.DateTime {
			return a[0], nil
		}
		return nil, unsupported("todatetime of %s", a[0].typ)
	case "strlen":
		t, err := s.text(a[0])
		if err != nil {
			return nil, err
		}
		return &sexpr{sql: d.Length(t), typ: table.Long, notNull: true}, nil
	case "tolower", "toupper":
		t, err := s.text(a[0])
		if err != nil {
			return nil, err
		}
		if name == "tolower" {
			return &sexpr{sql: d.Lower(t), typ: table.String, notNull: true}, nil
		}
		return &sexpr{sql: d.Upper(t), typ: table.String, notNull: true}, nil
	case "isempty", "isnotempty", "notempty":
		var test string
		switch a[0].typ {
		case table.String:
			test = "(" + a[0].sql + " = '')"
		case table.Dynamic:
			test = "coalesce(" + s.dynText(a[0]) + " = '', TRUE)"
		default:
			test = "(" + a[0].sql + " IS NULL)"
		}
		if name != "isempty" {
			test = "(NOT " + test + ")"
		}
		return boolExpr(test), nil
	case "isnull", "isnotnull", "notnull":
		if a[0].typ == table.String {
			return boolExpr(strconv.FormatBool(name != "isnull")), nil
		}
		if name == "isnull" {
			return boolExpr("(" + a[0].sql + " IS NULL)"), nil
		}
		return boolExpr("(" + a[0].sql + " IS NOT NULL)"), nil
	case "not":
		if a[0].typ != table.Bool {
			return nil, unsupported("not() of %s", a[0].typ)
		}
		return &sexpr{sql: "(NOT " + a[0].sql + ")", typ: table.Bool, notNull: a[0].notNull}, nil
	case "round":
		if !isNumeric(a[0].typ) {
			return nil, unsupported("round of %s", a[0].typ)
		}
		p := int64(0)
		if len(a) == 2 {
			n, ok := a[1].val.(int64)
			if !a[1].isConst || !ok || n < -15 || n > 15 {
				return nil, unsupported("round to a precision that is not a constant")
			}
			p = n
		}
		m := d.Real(math.Pow(10, float64(p)))
		// Go's math.Round: halves away from zero, as DuckDB's round of a DOUBLE.
		return &sexpr{sql: "(round(CAST(" + a[0].sql + " AS DOUBLE) * " + m + ") / " + m + ")", typ: table.Real}, nil
	case "iff", "iif":
		return s.conditional([]*sexpr{a[0]}, []*sexpr{a[1]}, a[2])
	case "case":
		if len(a)%2 == 0 {
			return nil, unsupported("case() without an else")
		}
		var conds, vals []*sexpr
		for i := 0; i+1 < len(a); i += 2 {
			conds, vals = append(conds, a[i]), append(vals, a[i+1])
		}
		return s.conditional(conds, vals, a[len(a)-1])
	case "coalesce":
		// The first value that is neither null nor "" (else the last).
		t := a[0].typ
		var b strings.Builder
		b.WriteString("CASE")
		for i, x := range a {
			if x.typ != t || x.srep != a[0].srep || x.intType != a[0].intType {
				return nil, unsupported("coalesce of %s", x.typ)
			}
			if i == len(a)-1 {
				b.WriteString(" ELSE " + x.sql + " END")
				break
			}
			test := x.sql + " IS NOT NULL"
			switch {
			case t == table.String || x.srep:
				test = "coalesce(" + x.sql + " <> '', FALSE)"
			case t == table.Dynamic:
				test = "coalesce(" + x.sql + " <> '\"\"', FALSE)" // a JSON "" is skipped too
			}
			b.WriteString(" WHEN " + test + " THEN " + x.sql)
		}
		notNull := a[len(a)-1].notNull
		return &sexpr{sql: b.String(), typ: t, srep: a[0].srep, intType: a[0].intType, notNull: notNull}, nil
	case "strcat":
		var parts []string
		for _, x := range a {
			t, err := s.text(x)
			if err != nil {
				return nil, err
			}
			parts = append(parts, t)
		}
		return &sexpr{sql: "(" + strings.Join(parts, " || ") + ")", typ: table.String, notNull: true}, nil
	case "substring":
		t, err := s.text(a[0])
		if err != nil {
			return nil, err
		}
		for _, x := range a[1:] {
			if x.typ != table.Long || !x.isConst || x.val.(int64) < 0 {
				return nil, unsupported("substring with computed or negative bounds")
			}
		}
		n := ""
		if len(a) > 2 {
			n = a[2].sql
		}
		return &sexpr{sql: "coalesce(" + d.Substring(t, a[1].sql, n) + ", '')", typ: table.String, notNull: true}, nil
	case "extract":
		if len(a) != 3 || !a[0].isConst || !a[1].isConst || a[0].typ != table.String || a[1].typ != table.Long {
			return nil, unsupported("extract() form")
		}
		re := a[0].val.(string)
		if _, err := regexp.Compile(re); err != nil {
			return nil, unsupported("regex %q", re)
		}
		t, err := s.text(a[2])
		if err != nil {
			return nil, err
		}
		return &sexpr{sql: d.RegexExtract(t, re, int(a[1].val.(int64))), typ: table.String, notNull: true}, nil
	case "bin", "floor":
		return s.bin(a[0], a[1])
	case "startofday":
		if len(a) != 1 || a[0].typ != table.DateTime {
			return nil, unsupported("startofday with an offset")
		}
		return s.bin(a[0], &sexpr{typ: table.TimeSpan, isConst: true, val: 24 * time.Hour})
	case "array_length":
		if a[0].typ != table.Dynamic {
			return nil, unsupported("array_length of %s", a[0].typ)
		}
		if a[0].srep {
			return &sexpr{sql: d.Null(sqlBigint), typ: table.Long}, nil
		}
		return &sexpr{sql: d.ArrayLength(a[0].sql), typ: table.Long}, nil
	case "parse_json", "todynamic", "toobject":
		switch {
		case a[0].parsed != nil:
			return fromColumn(a[0].parsed), nil
		case a[0].typ == table.String:
			return &sexpr{sql: d.ParseJSON(a[0].sql), typ: table.Dynamic}, nil
		case a[0].typ == table.Dynamic && !a[0].srep:
			return a[0], nil
		case a[0].typ == table.Dynamic:
			return &sexpr{sql: d.ToJSON(a[0].sql), typ: table.Dynamic}, nil
		}
		return nil, unsupported("%s of %s", name, a[0].typ)
	case "tobool", "toboolean":
		switch a[0].typ {
		case table.Bool:
			return a[0], nil
		case table.Long, table.Real:
			return &sexpr{sql: "(" + a[0].sql + " <> 0)", typ: table.Bool}, nil
		case table.String, table.Dynamic:
			// true and false, any case, 1 and 0 (and JSON numbers, non-zero is true)
			txt := a[0].sql
			num := ""
			if a[0].typ == table.Dynamic && !a[0].srep {
				txt = s.dynText(a[0])
				num = "WHEN " + d.JSONKind(a[0].sql) + " = 'number' THEN " + d.CastTry(a[0].sql, sqlDouble) + " <> 0 "
			}
			t := "lower(trim(" + txt + "))"
			return &sexpr{sql: "CASE " + num + "WHEN " + t + " IN ('true', '1') THEN TRUE WHEN " + t + " IN ('false', '0') THEN FALSE END", typ: table.Bool}, nil
		}
		return nil, unsupported("tobool of %s", a[0].typ)
	case "extract_all":
		if len(a) != 2 || !a[0].isConst || a[0].typ != table.String {
			return nil, unsupported("extract_all() form")
		}
		re, err := regexp.Compile(a[0].val.(string))
		if err != nil || re.NumSubexp() > 1 {
			return nil, unsupported("extract_all() of several groups")
		}
		t, err := s.text(a[1])
		if err != nil {
			return nil, err
		}
		l := "regexp_extract_all(" + t + ", " + d.String(a[0].val.(string)) + ", " + itoa(int64(re.NumSubexp())) + ")"
		// No match is null, as in the evaluator.
		return &sexpr{sql: "CASE WHEN len(" + l + ") > 0 THEN " + d.ToJSON(l) + " END", typ: table.Dynamic}, nil
	case "split":
		if len(a) != 2 || !a[1].isConst || a[1].typ != table.String || a[1].val.(string) == "" {
			return nil, unsupported("split() form")
		}
		t, err := s.text(a[0])
		if err != nil {
			return nil, err
		}
		return &sexpr{sql: d.ToJSON("string_split(" + t + ", " + a[1].sql + ")"), typ: table.Dynamic, notNull: true}, nil
	case "strcat_array", "array_strcat":
		if a[0].typ != table.Dynamic || a[0].srep {
			return nil, unsupported("%s of %s", name, a[0].typ)
		}
		delim, err := s.text(a[1])
		if err != nil {
			return nil, err
		}
		elems := "list_transform(" + d.Elements(a[0].sql) + ", e -> coalesce(" + d.JSONText("nullif(e, 'null')") + ", ''))"
		return &sexpr{sql: "CASE WHEN " + d.JSONKind(a[0].sql) + " = 'array' THEN array_to_string(" + elems + ", " + delim + ") ELSE '' END",
			typ: table.String, notNull: true}, nil
	case "replace_string":
		if !a[1].isConst || a[1].typ != table.String || a[1].val.(string) == "" {
			return nil, unsupported("replace_string() of a computed lookup")
		}
		t, err := s.text(a[0])
		if err != nil {
			return nil, err
		}
		r, err := s.text(a[2])
		if err != nil {
			return nil, err
		}
		return &sexpr{sql: "replace(" + t + ", " + a[1].sql + ", " + r + ")", typ: table.String, notNull: true}, nil
	case "gettype":
		return nil, unsupported("gettype")
	}
	return nil, unsupported("function %s", name)
}

// conditional compiles iff() and case(): all values must share one type.
func (s *scope) conditional(conds, vals []*sexpr, els *sexpr) (*sexpr, error) {
	t := els.typ
	all := append(append([]*sexpr(nil), vals...), els)
	for _, v := range all {
		if v.typ != t || v.srep != els.srep || v.intType != els.intType {
			return nil, unsupported("case of mixed types")
		}
	}
	var b strings.Builder
	b.WriteString("CASE")
	notNull := els.notNull
	for i, c := range conds {
		if c.typ != table.Bool {
			return nil, unsupported("case condition of %s", c.typ)
		}
		b.WriteString(" WHEN " + c.sql + " THEN " + vals[i].sql)
		notNull = notNull && vals[i].notNull
	}
	b.WriteString(" ELSE " + els.sql + " END")
	return &sexpr{sql: b.String(), typ: t, srep: els.srep, intType: els.intType, notNull: notNull}, nil
}

// bin rounds down to a multiple of a constant size, as the evaluator does
// (datetimes on Kusto's ticks, from 0001-01-01).
func (s *scope) bin(v, size *sexpr) (*sexpr, error) {
	if !size.isConst || size.val == nil {
		return nil, unsupported("bin() with a size that is not a constant")
	}
	d := s.c.d
	switch v.typ {
	case table.DateTime:
		span, ok := size.val.(time.Duration)
		if !ok || span <= 0 || span%time.Microsecond != 0 {
			return nil, unsupported("bin() of datetime by %v", size.val)
		}
		us := strconv.FormatInt(int64(span/time.Microsecond), 10)
		off := strconv.FormatInt(ticksOffsetMicros, 10)
		t := "(" + d.EpochMicros(v.sql) + " + " + off + ")"
		return &sexpr{sql: d.FromEpochMicros("(" + t + " - ((" + t + " % " + us + " + " + us + ") % " + us + ") - " + off + ")"), typ: table.DateTime}, nil
	case table.Long, table.TimeSpan:
		var n int64
		switch x := size.val.(type) {
		case int64:
			n = x
		case time.Duration:
			n = int64(x)
		default:
			return nil, unsupported("bin() of %s by %T", v.typ, size.val)
		}
		if n <= 0 || (v.typ == table.TimeSpan) != (size.typ == table.TimeSpan) {
			return nil, unsupported("bin() size")
		}
		ns := strconv.FormatInt(n, 10)
		return &sexpr{sql: "(" + v.sql + " - ((" + v.sql + " % " + ns + " + " + ns + ") % " + ns + "))", typ: v.typ}, nil
	case table.Real:
		f, ok := size.val.(float64)
		if n, isInt := size.val.(int64); isInt {
			f, ok = float64(n), true
		}
		if !ok || f <= 0 || math.IsInf(f, 0) {
			return nil, unsupported("bin() size")
		}
		fs := d.Real(f)
		return &sexpr{sql: "(floor(" + v.sql + " / " + fs + ") * " + fs + ")", typ: table.Real}, nil
	}
	return nil, unsupported("bin() of %s", v.typ)
}

// writeJSON writes a dynamic constant as JSON with sorted keys.
func writeJSON(b *strings.Builder, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			writeJSON(b, x[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, e)
		}
		b.WriteByte(']')
	case time.Time:
		kb, _ := json.Marshal(syntax.FormatDatetime(x))
		b.Write(kb)
	case time.Duration:
		kb, _ := json.Marshal(syntax.FormatTimespan(x))
		b.Write(kb)
	default:
		kb, err := json.Marshal(x)
		if err != nil {
			b.WriteString("null")
			return
		}
		b.Write(kb)
	}
}

// estimateDataSize mirrors the evaluator's dataSize for the columns (or
// *) it is given; dynamic values, whose size is their JSON text as Go
// writes it, are left to the evaluator.
func (s *scope) estimateDataSize(call *syntax.Call) (*sexpr, error) {
	var es []*sexpr
	for _, a := range call.Args {
		if _, star := a.(*syntax.Star); star {
			for _, col := range s.r.cols {
				es = append(es, col.e)
			}
			continue
		}
		e, err := s.expr(a)
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	parts := make([]string, 0, len(es))
	for _, e := range es {
		var size string
		switch e.typ {
		case table.String:
			size = "strlen(" + e.sql + ")"
		case table.Long, table.Real, table.DateTime, table.TimeSpan:
			size = "8"
		case table.Bool:
			size = "1"
		default:
			return nil, unsupported("estimate_data_size of %s", e.typ)
		}
		parts = append(parts, "coalesce(CASE WHEN "+e.sql+" IS NOT NULL THEN "+size+" END, 0)")
	}
	if len(parts) == 0 {
		return nil, unsupported("estimate_data_size of nothing")
	}
	return &sexpr{sql: "CAST((" + strings.Join(parts, " + ") + ") AS BIGINT)", typ: table.Long, notNull: true}, nil
}

// udf inlines a call of a user-defined scalar function: its body,
// compiled with the parameters bound to the arguments' SQL (the
// evaluator has checked the call).
func (s *scope) udf(call *syntax.Call, fn *syntax.FuncDef) (*sexpr, error) {
	if fn.Scalar == nil || len(fn.Lets) > 0 {
		return nil, unsupported("function %s", call.Name)
	}
	if s.depth > 20 {
		return nil, unsupported("function nesting")
	}
	inner := &scope{c: s.c, r: &rel{}, depth: s.depth + 1}
	for i, p := range fn.Params {
		var a *sexpr
		var err error
		if i < len(call.Args) {
			a, err = s.expr(call.Args[i])
		} else if p.Default != nil {
			a, err = (&scope{c: s.c, r: &rel{}, depth: s.depth + 1}).expr(p.Default)
		} else {
			return nil, unsupported("function %s arguments", call.Name)
		}
		if err != nil {
			return nil, err
		}
		if p.Type == table.Real && a.typ == table.Long {
			// A whole number passed as real, as the evaluator converts it.
			a = &sexpr{sql: "CAST(" + a.sql + " AS DOUBLE)", typ: table.Real, notNull: a.notNull}
		}
		if p.Tabular || a.typ != p.Type && p.Type != table.Dynamic && !(p.Type == table.Int && a.typ == table.Long) {
			return nil, unsupported("function %s: a %s argument for a %s parameter", call.Name, a.typ, p.Type)
		}
		inner.r.cols = append(inner.r.cols, column{name: p.Name, e: a})
	}
	return inner.expr(fn.Scalar)
}
