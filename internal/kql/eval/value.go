package eval

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// Runtime values are the Go-native values of package table. The static
// type of an expression (table.Type) tells how to interpret them; dynamic
// values are nil, bool, int64, float64, string, []any or map[string]any.

func isNumericType(t table.Type) bool { return t == table.Long || t == table.Int || t == table.Real }

// toStr is Kusto's tostring(): null is "", strings are unquoted, bags and
// arrays are compact JSON.
func toStr(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return formatReal(x)
	case time.Time:
		return syntax.FormatDatetime(x)
	case time.Duration:
		return syntax.FormatTimespan(x)
	case []any, map[string]any:
		return string(appendJSON(nil, x))
	case int:
		return strconv.Itoa(x)
	}
	return string(appendJSON(nil, normalize(v)))
}

func formatReal(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// toLong converts to an integer as tolong() does.
func toLong(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if math.IsNaN(x) || x >= 9.3e18 || x <= -9.3e18 {
			return 0, false
		}
		return int64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return toLong(f)
		}
	case time.Time:
		return ticksOf(x), true
	case time.Duration:
		return int64(x / 100), true
	case int:
		return int64(x), true
	}
	return 0, false
}

// toReal converts to a float as todouble() does.
func toReal(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case string:
		s := strings.TrimSpace(x)
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, true
		}
		switch strings.ToLower(s) {
		case "nan":
			return math.NaN(), true
		case "inf", "+inf", "infinity", "+infinity":
			return math.Inf(1), true
		case "-inf", "-infinity":
			return math.Inf(-1), true
		}
	case time.Duration:
		return float64(x / 100), true
	case int:
		return float64(x), true
	}
	return 0, false
}

// toNumber keeps integers as int64 and everything else numeric as float64.
func toNumber(v any) (any, bool) {
	switch x := v.(type) {
	case int64, float64:
		return x, true
	case bool:
		if x {
			return int64(1), true
		}
		return int64(0), true
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, true
		}
	case int:
		return int64(x), true
	}
	return nil, false
}

func toBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case int64:
		return x != 0, true
	case float64:
		return x != 0, true
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1":
			return true, true
		case "false", "0":
			return false, true
		}
	}
	return false, false
}

func toDatetime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x, true
	case string:
		return syntax.ParseDatetime(x)
	}
	return time.Time{}, false
}

func toTimespan(v any) (time.Duration, bool) {
	switch x := v.(type) {
	case time.Duration:
		return x, true
	case string:
		return syntax.ParseTimespan(x)
	case int64:
		if x > math.MaxInt64/100 || x < math.MinInt64/100 {
			return 0, false
		}
		return time.Duration(x * 100), true // ticks
	case float64:
		if math.IsNaN(x) || math.Abs(x) > 9e16 {
			return 0, false
		}
		return time.Duration(x * 100), true
	}
	return 0, false
}

// toDynamic converts a typed value to its dynamic representation:
// datetimes and timespans become strings, as Kusto's JSON does.
func toDynamic(v any) any {
	switch x := v.(type) {
	case time.Time:
		return syntax.FormatDatetime(x)
	case time.Duration:
		return syntax.FormatTimespan(x)
	}
	return v
}

// convertTo converts v to the representation of type t; nil when it
// cannot be converted. A value already in that representation is returned
// as is (without boxing it again).
func convertTo(t table.Type, v any) any {
	if v == nil {
		return nil
	}
	switch t {
	case table.String:
		if _, ok := v.(string); ok {
			return v
		}
		return toStr(v)
	case table.Long:
		if _, ok := v.(int64); ok {
			return v
		}
		if n, ok := toLong(v); ok {
			return n
		}
	case table.Int:
		if n, ok := v.(int64); ok && n >= math.MinInt32 && n <= math.MaxInt32 {
			return v
		}
		if n, ok := toLong(v); ok && n >= math.MinInt32 && n <= math.MaxInt32 {
			return n
		}
	case table.Real:
		if _, ok := v.(float64); ok {
			return v
		}
		if f, ok := toReal(v); ok {
			return f
		}
	case table.Bool:
		if _, ok := v.(bool); ok {
			return v
		}
		if b, ok := toBool(v); ok {
			return b
		}
	case table.DateTime:
		if _, ok := v.(time.Time); ok {
			return v
		}
		if d, ok := toDatetime(v); ok {
			return d
		}
	case table.TimeSpan:
		if _, ok := v.(time.Duration); ok {
			return v
		}
		if d, ok := toTimespan(v); ok {
			return d
		}
	case table.Dynamic:
		switch v.(type) {
		case bool, int64, float64, string:
			return v
		}
		return toDynamic(normalize(v))
	default:
		return v
	}
	return nil
}

// normalize maps Go values a Source might hand us despite the contract
// (int, float32, []string, map[string]string, json.Number...) to the
// canonical representation.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, time.Time, time.Duration:
		return v
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint:
		return int64(x)
	case uint32:
		return int64(x)
	case uint16:
		return int64(x)
	case uint8:
		return int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return float64(x)
		}
		return int64(x)
	case float32:
		return float64(x)
	case json.Number:
		return jsonNumber(x)
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out
	case time.Month:
		return int64(x)
	}
	// Anything else: round-trip through JSON.
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	if d, ok := parseJSON(string(b)); ok {
		return d
	}
	return nil
}

func jsonNumber(n json.Number) any {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil
	}
	return f
}

// parseJSON decodes s into dynamic values (integral numbers become int64).
func parseJSON(s string) (any, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return fromJSON(v), true
}

func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		return jsonNumber(x)
	case []any:
		for i, e := range x {
			x[i] = fromJSON(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = fromJSON(e)
		}
		return x
	}
	return v
}

// appendJSON appends the compact JSON encoding of v (map keys sorted).
func appendJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return appendJSONString(b, formatReal(x))
		}
		return append(b, formatReal(x)...)
	case string:
		return appendJSONString(b, x)
	case time.Time:
		return appendJSONString(b, syntax.FormatDatetime(x))
	case time.Duration:
		return appendJSONString(b, syntax.FormatTimespan(x))
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := sortedKeys(x)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSON(b, x[k])
		}
		return append(b, '}')
	}
	return appendJSON(b, normalize(v))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// appendKey appends a canonical, type-tagged encoding of v for hashing
// (group keys, distinct, join keys, dcount). Integral reals hash like
// integers; a dynamic string hashes like a string.
func appendKey(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'n')
	case bool:
		if x {
			return append(b, 'b', 1)
		}
		return append(b, 'b', 0)
	case int64:
		b = append(b, 'i')
		return binary.LittleEndian.AppendUint64(b, uint64(x))
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 9e18 {
			b = append(b, 'i')
			return binary.LittleEndian.AppendUint64(b, uint64(int64(x)))
		}
		if math.IsNaN(x) {
			x = math.NaN()
		}
		b = append(b, 'f')
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	case string:
		b = append(b, 's')
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case time.Time:
		b = append(b, 't')
		b = binary.LittleEndian.AppendUint64(b, uint64(x.Unix()))
		return binary.LittleEndian.AppendUint32(b, uint32(x.Nanosecond()))
	case time.Duration:
		b = append(b, 'd')
		return binary.LittleEndian.AppendUint64(b, uint64(x))
	case []any:
		b = append(b, 'a')
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, e := range x {
			b = appendKey(b, e)
		}
		return b
	case map[string]any:
		b = append(b, 'm')
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, k := range sortedKeys(x) {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = appendKey(b, x[k])
		}
		return b
	}
	return appendKey(b, normalize(v))
}

func keyOf(v any) string { return string(appendKey(nil, v)) }

func sameKey(a, b any) bool { return bytes.Equal(appendKey(nil, a), appendKey(nil, b)) }

// ticks since 0001-01-01, Kusto's datetime epoch.
const unixToTicks = 62135596800 * 10000000

func ticksOf(t time.Time) int64 {
	return t.Unix()*10000000 + unixToTicks + int64(t.Nanosecond()/100)
}

func fromTicks(ticks int64) time.Time {
	ticks -= unixToTicks
	sec := ticks / 10000000
	rem := ticks % 10000000
	if rem < 0 {
		rem += 10000000
		sec--
	}
	return time.Unix(sec, rem*100).UTC()
}
