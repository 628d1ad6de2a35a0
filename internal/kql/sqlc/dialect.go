package sqlc

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// PathElem is one step into a dynamic value: a member name, or (when
// IsIndex) an array index.
type PathElem struct {
	Key     string
	Index   int64
	IsIndex bool
}

// Dialect is what the compiler needs to know about one SQL engine: how to
// write literals and names, and the handful of operations that have no
// standard SQL spelling (JSON access, regular expressions, time
// arithmetic, list aggregates). Everything else the compiler writes is
// standard SQL.
type Dialect interface {
	Name() string
	// Ident quotes an identifier.
	Ident(name string) string
	// String is a string literal.
	String(s string) string
	// Long, Real, Bool, DateTime are typed literals; Null is a typed null.
	Long(n int64) string
	Real(f float64) string
	DateTime(t time.Time) string
	Null(t sqlType) string
	// JSONLiteral is a dynamic constant given as JSON text.
	JSONLiteral(text string) string
	// JSONGet is the member or element at path inside the JSON value x
	// (NULL when missing or null).
	JSONGet(x string, path []PathElem) string
	// DatetimeText is tostring() of a timestamp as the evaluator writes
	// it (syntax.FormatDatetime): seconds, and 7 fractional digits when
	// there is a fraction.
	DatetimeText(x string) string
	// JSONText is the string form of a JSON value: a string's text, the
	// JSON of anything else; NULL for null.
	JSONText(x string) string
	// JSONKind is the kind of a JSON value: one of "string", "number",
	// "bool", "array", "object", or NULL.
	JSONKind(x string) string
	// ToJSON turns a SQL value into JSON (a VARCHAR into a JSON string).
	ToJSON(x string) string
	// ParseJSON reads a VARCHAR as JSON, and keeps it as a JSON string
	// when it is not valid JSON.
	ParseJSON(x string) string
	// ArrayLength is the length of a JSON array, NULL for anything else.
	ArrayLength(x string) string
	// Elements is the list of JSON texts mv-expand makes of a JSON value:
	// an array's elements, a bag's properties as one-property bags in key
	// order, a scalar itself; empty for null.
	Elements(x string) string
	// RegexMatch tests a regular expression (RE2 syntax).
	RegexMatch(x, re string) string
	// RegexExtract returns capture group g of the first match, "" when none.
	RegexExtract(x, re string, g int) string
	// Contains tests for a substring; fold ignores case (needle is lower-case).
	Contains(x, needle string, fold bool) string
	// StartsWith and EndsWith test a prefix or suffix; fold as for Contains.
	StartsWith(x, needle string, fold bool) string
	EndsWith(x, needle string, fold bool) string
	// Lower and Upper change case.
	Lower(x string) string
	Upper(x string) string
	// Length is the length of a string in characters.
	Length(x string) string
	// Substring is the substring of x from start (0-based) of length n (n == "" for the rest).
	Substring(x, start, n string) string
	// EpochMicros is a TIMESTAMP as microseconds since 1970; FromEpochMicros the inverse.
	EpochMicros(x string) string
	FromEpochMicros(x string) string
	// DynToLong converts a dynamic value (JSON text, or a plain string
	// when str) to a long as the evaluator's tolong does: integers as
	// they are, reals truncated, bools 1 or 0, strings parsed; NULL for
	// anything else.
	DynToLong(x string, str bool) string
	// CastTry converts x to t, NULL when it cannot.
	CastTry(x string, t sqlType) string
	// IntDiv is integer division truncating toward zero.
	IntDiv(a, b string) string
	// CountDistinct, AnyValue, ArgMax, ListAgg, Stddev, Variance are aggregates.
	CountDistinct(x string) string
	AnyValue(x string) string
	ArgMax(x, key string, min bool) string
	// ListAgg collects the non-null values of x into a JSON array (distinct
	// when set); limit > 0 keeps at most that many.
	ListAgg(x string, distinct bool, limit int64, filter string, dyn bool) string
	Stddev(x string) string
	Variance(x string) string
	// StructField reads a field of a value built by ArgMax's first argument.
	StructPack(names, values []string) string
	StructField(x, name string) string
}

// sqlType is a SQL representation of a KQL value.
type sqlType string

const (
	sqlBool      sqlType = "BOOLEAN"
	sqlBigint    sqlType = "BIGINT"
	sqlDouble    sqlType = "DOUBLE"
	sqlVarchar   sqlType = "VARCHAR"
	sqlTimestamp sqlType = "TIMESTAMP"
	sqlJSON      sqlType = "VARCHAR" // JSON text
)

// DuckDB is the dialect of DuckDB (1.5 with the json extension).
var DuckDB Dialect = duckDB{}

type duckDB struct{}

func (duckDB) Name() string { return "duckdb" }

func (duckDB) Ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func (duckDB) String(s string) string {
	if strings.ContainsRune(s, 0) {
		// DuckDB strings cannot hold NUL; chr(0) can.
		parts := strings.Split(s, "\x00")
		for i, p := range parts {
			parts[i] = "'" + strings.ReplaceAll(p, "'", "''") + "'"
		}
		return "(" + strings.Join(parts, " || chr(0) || ") + ")"
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func (duckDB) Long(n int64) string { return "CAST(" + strconv.FormatInt(n, 10) + " AS BIGINT)" }

func (duckDB) Real(f float64) string {
	return "CAST('" + strconv.FormatFloat(f, 'g', -1, 64) + "' AS DOUBLE)"
}

func (duckDB) DateTime(t time.Time) string {
	return "TIMESTAMP '" + t.UTC().Format("2006-01-02 15:04:05.999999") + "'"
}

func (duckDB) Null(t sqlType) string { return "CAST(NULL AS " + string(t) + ")" }

func (d duckDB) JSONLiteral(text string) string { return d.String(text) }

// jsonPointer writes path as an RFC 6901 pointer, which needs no quoting
// rules beyond ~0 and ~1.
func jsonPointer(path []PathElem) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteByte('/')
		if p.IsIndex {
			b.WriteString(strconv.FormatInt(p.Index, 10))
			continue
		}
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p.Key))
	}
	return b.String()
}

func (d duckDB) JSONGet(x string, path []PathElem) string {
	for i, p := range path {
		if p.IsIndex && p.Index < 0 {
			// A pointer cannot count from the end; JSONPath can.
			inner := x
			if i > 0 {
				inner = d.JSONGet(x, path[:i])
			}
			out := "nullif(CAST(json_extract(" + inner + ", '$[#" + strconv.FormatInt(p.Index, 10) + "]') AS VARCHAR), 'null')"
			if i+1 < len(path) {
				return d.JSONGet(out, path[i+1:])
			}
			return out
		}
	}
	return "nullif(CAST(json_extract(" + x + ", " + d.String(jsonPointer(path)) + ") AS VARCHAR), 'null')"
}

func (duckDB) DatetimeText(x string) string {
	return "CASE WHEN epoch_us(" + x + ") % 1000000 = 0 THEN strftime(" + x + ", '%Y-%m-%dT%H:%M:%SZ') ELSE strftime(" + x + ", '%Y-%m-%dT%H:%M:%S.%f') || '0Z' END"
}

func (duckDB) JSONText(x string) string {
	// Only a JSON string needs decoding; any other value is its own text.
	return "CASE WHEN starts_with(" + x + ", '\"') THEN json_extract_string(" + x + ", '$') ELSE " + x + " END"
}

func (duckDB) JSONKind(x string) string {
	return "CASE json_type(" + x + ") WHEN 'VARCHAR' THEN 'string' WHEN 'BIGINT' THEN 'number' WHEN 'UBIGINT' THEN 'number' " +
		"WHEN 'DOUBLE' THEN 'number' WHEN 'BOOLEAN' THEN 'bool' WHEN 'ARRAY' THEN 'array' WHEN 'OBJECT' THEN 'object' END"
}

func (duckDB) ToJSON(x string) string { return "CAST(to_json(" + x + ") AS VARCHAR)" }

func (duckDB) ParseJSON(x string) string {
	return "CAST(CASE WHEN json_valid(" + x + ") THEN json(" + x + ") ELSE to_json(" + x + ") END AS VARCHAR)"
}

func (duckDB) ArrayLength(x string) string {
	return "CASE WHEN json_type(" + x + ") = 'ARRAY' THEN CAST(json_array_length(" + x + ") AS BIGINT) END"
}

func (duckDB) Elements(x string) string {
	return "CASE json_type(" + x + ") " +
		"WHEN 'ARRAY' THEN CAST(json_extract(" + x + ", '$[*]') AS VARCHAR[]) " +
		"WHEN 'OBJECT' THEN list_transform(list_sort(json_keys(" + x + ")), k -> CAST(json_object(k, json_extract(" + x + ", '/' || replace(replace(k, '~', '~0'), '/', '~1'))) AS VARCHAR)) " +
		"WHEN 'NULL' THEN CAST([] AS VARCHAR[]) " +
		"ELSE CASE WHEN " + x + " IS NULL THEN CAST([] AS VARCHAR[]) ELSE [" + x + "] END END"
}

func (d duckDB) RegexMatch(x, re string) string {
	return "regexp_matches(" + x + ", " + d.String(re) + ")"
}

func (d duckDB) RegexExtract(x, re string, g int) string {
	return "regexp_extract(" + x + ", " + d.String(re) + ", " + strconv.Itoa(g) + ")"
}

// The case-insensitive forms use RE2's (?i) on a quoted literal, which
// DuckDB runs about twice as fast as lower() and a substring test on long
// strings (it folds as it scans instead of copying the text).

func (d duckDB) Contains(x, needle string, fold bool) string {
	if fold {
		return d.RegexMatch(x, "(?is)"+regexp.QuoteMeta(needle))
	}
	return "contains(" + x + ", " + d.String(needle) + ")"
}

func (d duckDB) StartsWith(x, needle string, fold bool) string {
	if fold {
		return d.RegexMatch(x, "(?is)^"+regexp.QuoteMeta(needle))
	}
	return "starts_with(" + x + ", " + d.String(needle) + ")"
}

func (d duckDB) EndsWith(x, needle string, fold bool) string {
	if fold {
		return d.RegexMatch(x, "(?is)"+regexp.QuoteMeta(needle)+"$")
	}
	return "suffix(" + x + ", " + d.String(needle) + ")"
}

func (duckDB) Lower(x string) string  { return "lower(" + x + ")" }
func (duckDB) Upper(x string) string  { return "upper(" + x + ")" }
func (duckDB) Length(x string) string { return "CAST(length(" + x + ") AS BIGINT)" }

func (duckDB) Substring(x, start, n string) string {
	if n == "" {
		return "substring(" + x + ", (" + start + ") + 1)"
	}
	return "substring(" + x + ", (" + start + ") + 1, " + n + ")"
}

func (duckDB) EpochMicros(x string) string     { return "epoch_us(" + x + ")" }
func (duckDB) FromEpochMicros(x string) string { return "make_timestamp(" + x + ")" }

func (duckDB) DynToLong(x string, str bool) string {
	parse := func(s string) string {
		return "coalesce(TRY_CAST(trim(" + s + ") AS BIGINT), TRY_CAST(trunc(TRY_CAST(trim(" + s + ") AS DOUBLE)) AS BIGINT))"
	}
	if str {
		return parse(x)
	}
	return "CASE json_type(" + x + ") WHEN 'BIGINT' THEN TRY_CAST(" + x + " AS BIGINT) WHEN 'UBIGINT' THEN TRY_CAST(" + x + " AS BIGINT) " +
		"WHEN 'DOUBLE' THEN TRY_CAST(trunc(CAST(" + x + " AS DOUBLE)) AS BIGINT) WHEN 'BOOLEAN' THEN CASE WHEN " + x + " = 'true' THEN 1 ELSE 0 END " +
		"WHEN 'VARCHAR' THEN " + parse("json_extract_string("+x+", '$')") + " END"
}

func (duckDB) CastTry(x string, t sqlType) string {
	return "TRY_CAST(" + x + " AS " + string(t) + ")"
}

func (duckDB) IntDiv(a, b string) string {
	return "CAST(trunc(CAST(" + a + " AS DOUBLE) / NULLIF(" + b + ", 0)) AS BIGINT)"
}

func (duckDB) CountDistinct(x string) string { return "CAST(count(DISTINCT " + x + ") AS BIGINT)" }
func (duckDB) AnyValue(x string) string      { return "any_value(" + x + ")" }

func (duckDB) ArgMax(x, key string, min bool) string {
	if min {
		return "arg_min(" + x + ", " + key + ")"
	}
	return "arg_max(" + x + ", " + key + ")"
}

func (duckDB) ListAgg(x string, distinct bool, limit int64, filter string, dyn bool) string {
	f := "(" + x + ") IS NOT NULL"
	if filter != "" {
		f += " AND (" + filter + ")"
	}
	d := ""
	if distinct {
		d = "DISTINCT "
	}
	v := x
	if dyn {
		v = "json(" + x + ")"
	}
	l := "list(" + d + v + ") FILTER (WHERE " + f + ")"
	if limit > 0 {
		l = "list_slice(" + l + ", 1, " + strconv.FormatInt(limit, 10) + ")"
	}
	return "CAST(to_json(coalesce(" + l + ", [])) AS VARCHAR)"
}

func (duckDB) Stddev(x string) string   { return "stddev_samp(" + x + ")" }
func (duckDB) Variance(x string) string { return "var_samp(" + x + ")" }

func (d duckDB) StructPack(names, values []string) string {
	parts := make([]string, len(names))
	for i := range names {
		parts[i] = d.String(names[i]) + ": " + values[i]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (d duckDB) StructField(x, name string) string {
	return "struct_extract(" + x + ", " + d.String(name) + ")"
}
