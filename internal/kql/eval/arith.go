package eval

import (
	"math"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// arithType is the static type of "a op b", or "" if not allowed.
func arithType(op byte, a, b table.Type) table.Type {
	if a == table.Dynamic || b == table.Dynamic {
		return table.Dynamic
	}
	if a == "" {
		a = b
	}
	if b == "" {
		b = a
	}
	switch {
	case isNumericType(a) && isNumericType(b):
		if a == table.Real || b == table.Real {
			return table.Real
		}
		if a == table.Int && b == table.Int {
			return table.Int
		}
		return table.Long
	case a == table.DateTime && b == table.DateTime:
		if op == '-' {
			return table.TimeSpan
		}
	case a == table.DateTime && b == table.TimeSpan:
		if op == '+' || op == '-' {
			return table.DateTime
		}
	case a == table.TimeSpan && b == table.DateTime:
		if op == '+' {
			return table.DateTime
		}
	case a == table.TimeSpan && b == table.TimeSpan:
		switch op {
		case '+', '-', '%':
			return table.TimeSpan
		case '/':
			return table.Real
		}
	case a == table.TimeSpan && isNumericType(b):
		if op == '*' || op == '/' {
			return table.TimeSpan
		}
	case isNumericType(a) && b == table.TimeSpan:
		if op == '*' {
			return table.TimeSpan
		}
	}
	return ""
}

func (sc *scope) arith(e *syntax.Binary, l, r *cexpr) (*cexpr, error) {
	op := e.Op[0]
	typ := arithType(op, l.typ, r.typ)
	if typ == "" {
		hint := ""
		if l.typ == table.String && r.typ == table.String && op == '+' {
			hint = " (use strcat to join strings)"
		}
		return nil, sc.errorf(e.OpPos, "operator %s cannot be applied to %s and %s%s", e.Op, l.typ, r.typ, hint)
	}
	lf, rf := l.fn, r.fn
	return fold(newExpr(typ, e.OpPos, func(row []any) any {
		a := lf(row)
		if a == nil {
			return nil
		}
		b := rf(row)
		if b == nil {
			return nil
		}
		return arith(op, a, b)
	}), l, r), nil
}

// arith applies op to two runtime values; nil when the combination is not
// meaningful (e.g. a dynamic string) or on division by zero.
func arith(op byte, a, b any) any {
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return arithInt(op, x, y)
		case float64:
			return arithFloat(op, float64(x), y)
		case time.Duration:
			if op == '*' {
				return time.Duration(x) * y
			}
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return arithFloat(op, x, float64(y))
		case float64:
			return arithFloat(op, x, y)
		case time.Duration:
			if op == '*' {
				return durationOf(x * float64(y))
			}
		}
	case time.Time:
		switch y := b.(type) {
		case time.Time:
			if op == '-' {
				return x.Sub(y)
			}
		case time.Duration:
			switch op {
			case '+':
				return x.Add(y)
			case '-':
				return x.Add(-y)
			}
		}
	case time.Duration:
		switch y := b.(type) {
		case time.Duration:
			switch op {
			case '+':
				return x + y
			case '-':
				return x - y
			case '/':
				if y == 0 {
					return nil
				}
				return float64(x) / float64(y)
			case '%':
				if y == 0 {
					return nil
				}
				return x % y
			}
		case time.Time:
			if op == '+' {
				return y.Add(x)
			}
		case int64:
			switch op {
			case '*':
				return x * time.Duration(y)
			case '/':
				if y == 0 {
					return nil
				}
				return x / time.Duration(y)
			}
		case float64:
			switch op {
			case '*':
				return durationOf(float64(x) * y)
			case '/':
				if y == 0 {
					return nil
				}
				return durationOf(float64(x) / y)
			}
		}
	case string:
		// a dynamic string holding a number
		if n, ok := toNumber(x); ok {
			if _, isStr := b.(string); !isStr {
				return arith(op, n, b)
			}
		}
	}
	if s, ok := b.(string); ok {
		if n, ok := toNumber(s); ok {
			if _, isStr := a.(string); !isStr {
				return arith(op, a, n)
			}
		}
	}
	return nil
}

func durationOf(f float64) any {
	if math.IsNaN(f) || math.Abs(f) > math.MaxInt64 {
		return nil
	}
	return time.Duration(f)
}

func arithInt(op byte, x, y int64) any {
	switch op {
	case '+':
		return x + y
	case '-':
		return x - y
	case '*':
		return x * y
	case '/':
		if y == 0 {
			return nil
		}
		if y == -1 {
			return -x
		}
		return x / y
	case '%':
		if y == 0 {
			return nil
		}
		if y == -1 {
			return int64(0)
		}
		return x % y
	}
	return nil
}

func arithFloat(op byte, x, y float64) any {
	switch op {
	case '+':
		return x + y
	case '-':
		return x - y
	case '*':
		return x * y
	case '/':
		return x / y
	case '%':
		return math.Mod(x, y)
	}
	return nil
}
