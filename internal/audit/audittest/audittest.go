// Package audittest holds test helpers for code that reads audit tables:
// a reference implementation of the pushdown filters and a check that
// rows follow the table contract.
package audittest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// Match reports whether row satisfies every filter, with the semantics
// the evaluator gives them: a null value matches only isnull; string
// operators compare the value's string form, case-insensitively after
// strings.ToLower; == and in compare case-sensitively.
func Match(cols []table.Column, row []any, filters []table.Filter) bool {
	for _, f := range filters {
		if !match1(cols, row, f) {
			return false
		}
	}
	return true
}

// Value returns the value a filter looks at, or nil.
func Value(cols []table.Column, row []any, f table.Filter) any {
	var v any
	for i, c := range cols {
		if c.Name == f.Column {
			v = row[i]
		}
	}
	for _, p := range f.Path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func match1(cols []table.Column, row []any, f table.Filter) bool {
	v := Value(cols, row, f)
	switch f.Op {
	case table.IsNull:
		return v == nil
	case table.IsNotNull:
		return v != nil
	}
	if v == nil {
		return false
	}
	switch f.Op {
	case table.Eq:
		return equal(v, f.Value)
	case table.Ne:
		return !equal(v, f.Value)
	case table.In:
		l, _ := f.Value.([]any)
		for _, x := range l {
			if equal(v, x) {
				return true
			}
		}
		return false
	case table.Lt, table.Le, table.Gt, table.Ge:
		c, ok := compare(v, f.Value)
		if !ok {
			return false
		}
		switch f.Op {
		case table.Lt:
			return c < 0
		case table.Le:
			return c <= 0
		case table.Gt:
			return c > 0
		}
		return c >= 0
	}
	s, w := strings.ToLower(String(v)), strings.ToLower(String(f.Value))
	switch f.Op {
	case table.EqFold:
		return s == w || strings.EqualFold(String(v), String(f.Value))
	case table.StartsWith:
		return strings.HasPrefix(s, w)
	case table.Has, table.Contains:
		return strings.Contains(s, w)
	}
	panic("unknown op " + string(f.Op))
}

// String renders a value as tostring() does.
func String(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func equal(a, b any) bool {
	if c, ok := compare(a, b); ok {
		return c == 0
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	}
	return false
}

// compare orders two numbers or two times.
func compare(a, b any) (int, bool) {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		if !ok {
			return 0, false
		}
		return ta.Compare(tb), true
	}
	fa, ok1 := num(a)
	fb, ok2 := num(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	switch {
	case fa < fb:
		return -1, true
	case fa > fb:
		return 1, true
	}
	return 0, true
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// CheckRow returns an error when a row does not follow the table
// contract (length, Go types per column type, dynamic values).
func CheckRow(cols []table.Column, row []any) error {
	if len(row) != len(cols) {
		return fmt.Errorf("row has %d values, schema %d", len(row), len(cols))
	}
	for i, c := range cols {
		v := row[i]
		if v == nil {
			continue
		}
		ok := false
		switch c.Type {
		case table.String:
			_, ok = v.(string)
		case table.Long, table.Int:
			_, ok = v.(int64)
		case table.Real:
			_, ok = v.(float64)
		case table.Bool:
			_, ok = v.(bool)
		case table.DateTime:
			var t time.Time
			t, ok = v.(time.Time)
			ok = ok && t.Location() == time.UTC
		case table.TimeSpan:
			_, ok = v.(time.Duration)
		case table.Dynamic:
			ok = checkDynamic(v) == nil
		}
		if !ok {
			return fmt.Errorf("column %s (%s): bad value %T %v", c.Name, c.Type, v, v)
		}
	}
	return nil
}

func checkDynamic(v any) error {
	switch x := v.(type) {
	case nil, bool, int64, float64, string:
		return nil
	case []any:
		for _, e := range x {
			if err := checkDynamic(e); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for _, e := range x {
			if err := checkDynamic(e); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("bad dynamic %T", v)
}
