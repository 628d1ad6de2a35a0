package eval

import (
	"cmp"
	"math"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// compareSame orders two non-null values of the same kind (numbers mix
// int64 and float64). ok is false when the kinds differ.
func compareSame(a, b any) (int, bool) {
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return cmp.Compare(x, y), true
		case float64:
			return compareFloat(float64(x), y), true
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return compareFloat(x, float64(y)), true
		case float64:
			return compareFloat(x, y), true
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), true
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y), true
		}
	case time.Duration:
		if y, ok := b.(time.Duration); ok {
			return cmp.Compare(x, y), true
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0, true
			case !x:
				return -1, true
			}
			return 1, true
		}
	}
	return 0, false
}

func compareFloat(a, b float64) int {
	if math.IsNaN(a) || math.IsNaN(b) {
		switch {
		case math.IsNaN(a) && math.IsNaN(b):
			return 0
		case math.IsNaN(a):
			return -1
		}
		return 1
	}
	return cmp.Compare(a, b)
}

// equalValues compares two dynamic (or same-typed) values. A string against
// a number or bool compares string forms, as Kusto does for dynamic
// values. ok is false when either side is null.
func equalValues(a, b any) (eq, ok bool) {
	if a == nil || b == nil {
		return false, false
	}
	if c, same := compareSame(a, b); same {
		return c == 0, true
	}
	switch x := a.(type) {
	case string:
		return x == toStr(b), true
	case []any, map[string]any:
		if s, isStr := b.(string); isStr {
			return toStr(x) == s, true
		}
		return sameKey(a, b), true
	}
	if y, isStr := b.(string); isStr {
		return toStr(a) == y, true
	}
	return false, true
}

// orderValues orders two values for <, <=, >, >=; ok is false when they
// are null or not comparable.
func orderValues(a, b any) (int, bool) {
	if a == nil || b == nil {
		return 0, false
	}
	if c, ok := compareSame(a, b); ok {
		return c, true
	}
	// dynamic string vs number: compare numerically when the string is a number.
	if s, isStr := a.(string); isStr {
		if n, ok := toNumber(s); ok {
			return compareSame(n, b)
		}
	}
	if s, isStr := b.(string); isStr {
		if n, ok := toNumber(s); ok {
			return compareSame(a, n)
		}
	}
	return 0, false
}

// sortCompare is a total order for sort/top/min/max: nulls first, then
// by kind, then by value.
func sortCompare(a, b any) int {
	if c, ok := compareSame(a, b); ok {
		return c
	}
	ra, rb := kindRank(a), kindRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	if ra == 0 {
		return 0
	}
	return strings.Compare(toStr(a), toStr(b))
}

func kindRank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case bool:
		return 1
	case int64, float64:
		return 2
	case time.Time:
		return 3
	case time.Duration:
		return 4
	case string:
		return 5
	case []any:
		return 6
	case map[string]any:
		return 7
	}
	return 8
}

// typeCategory groups types whose values can be compared.
func typeCategory(t table.Type) string {
	switch t {
	case table.Long, table.Int, table.Real:
		return "number"
	case "":
		return "dynamic"
	}
	return string(t)
}

// comparable reports whether values of static types a and b may be
// compared (dynamic compares with anything).
func comparableTypes(a, b table.Type) bool {
	ca, cb := typeCategory(a), typeCategory(b)
	return ca == cb || ca == "dynamic" || cb == "dynamic"
}

// dynamicConverter returns a function that converts a value of static
// type from (dynamic) to the representation of type to, for comparing a
// dynamic value with a typed one; nil when no conversion is needed.
func dynamicConverter(from, to table.Type) func(any) any {
	if from != table.Dynamic || to == table.Dynamic || to == "" {
		return nil
	}
	switch to {
	case table.String:
		return func(v any) any {
			if v == nil {
				return nil
			}
			return toStr(v)
		}
	case table.Long, table.Int, table.Real:
		return func(v any) any {
			n, ok := toNumber(v)
			if !ok {
				return nil
			}
			return n
		}
	}
	return func(v any) any { return convertTo(to, v) }
}
