package eval

import (
	"math"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// The series_* functions over the arrays make-series makes: element-wise
// arithmetic and comparison, filling, and statistics. An element that is
// not a number counts as null; an argument that is not an array gives
// null.

func registerSeriesFuncs() {
	elementwise := func(name string, typ table.Type, f func(a, b float64) any) {
		register(name, 2, 2, f2(table.Dynamic, func(x, y any) any {
			xs, ok := x.([]any)
			if !ok {
				return nil
			}
			ys, yArr := y.([]any)
			yc, yNum := toReal(y)
			if !yArr && (!yNum || y == nil) {
				return nil
			}
			n := len(xs)
			if yArr {
				n = max(n, len(ys))
			}
			out := make([]any, n)
			for i := range out {
				var a, b float64
				var okA, okB bool
				if i < len(xs) {
					a, okA = seriesNum(xs[i])
				}
				if yArr {
					if i < len(ys) {
						b, okB = seriesNum(ys[i])
					}
				} else {
					b, okB = yc, true
				}
				if okA && okB {
					out[i] = f(a, b)
				}
			}
			return out
		}))
	}
	num := func(v float64) any { return seriesOut(v) }
	elementwise("series_add", table.Real, func(a, b float64) any { return num(a + b) })
	elementwise("series_subtract", table.Real, func(a, b float64) any { return num(a - b) })
	elementwise("series_multiply", table.Real, func(a, b float64) any { return num(a * b) })
	elementwise("series_divide", table.Real, func(a, b float64) any { return a / b })
	elementwise("series_greater", table.Bool, func(a, b float64) any { return a > b })
	elementwise("series_greater_equals", table.Bool, func(a, b float64) any { return a >= b })
	elementwise("series_less", table.Bool, func(a, b float64) any { return a < b })
	elementwise("series_less_equals", table.Bool, func(a, b float64) any { return a <= b })
	elementwise("series_equals", table.Bool, func(a, b float64) any { return a == b })
	elementwise("series_not_equals", table.Bool, func(a, b float64) any { return a != b })
	register("series_abs", 1, 1, f1(table.Dynamic, func(x any) any {
		xs, ok := x.([]any)
		if !ok {
			return nil
		}
		out := make([]any, len(xs))
		for i, v := range xs {
			if f, ok := seriesNum(v); ok {
				out[i] = seriesOut(math.Abs(f))
			}
		}
		return out
	}))
	// array_sum: the sum of a numeric array, as a real; null when an
	// element is not a number (nulls are skipped) or the value is not an
	// array.
	register("array_sum", 1, 1, f1(table.Real, func(x any) any {
		xs, ok := x.([]any)
		if !ok {
			return nil
		}
		sum := 0.0
		for _, v := range xs {
			if v == nil {
				continue
			}
			f, ok := seriesNum(v)
			if !ok {
				return nil
			}
			sum += f
		}
		return sum
	}))
	register("series_fill_const", 2, 3, fN(table.Dynamic, func(args []any) any {
		xs, ok := args[0].([]any)
		if !ok {
			return nil
		}
		out := make([]any, len(xs))
		for i, v := range xs {
			if _, isNum := seriesNum(v); isNum {
				out[i] = v
			} else {
				out[i] = toDynamic(args[1])
			}
		}
		return out
	}))
	fill := func(forward bool) func(args []any) any {
		return func(args []any) any {
			xs, ok := args[0].([]any)
			if !ok {
				return nil
			}
			out := make([]any, len(xs))
			var last any
			for k := range xs {
				i := k
				if !forward {
					i = len(xs) - 1 - k
				}
				if _, isNum := seriesNum(xs[i]); isNum {
					last = xs[i]
				}
				if last != nil {
					out[i] = last
				} else {
					out[i] = xs[i]
				}
			}
			return out
		}
	}
	register("series_fill_forward", 1, 2, fN(table.Dynamic, fill(true)))
	register("series_fill_backward", 1, 2, fN(table.Dynamic, fill(false)))
	register("series_stats_dynamic", 1, 2, fN(table.Dynamic, func(args []any) any {
		xs, ok := args[0].([]any)
		if !ok {
			return nil
		}
		var n, sum, sq float64
		minV, maxV := math.Inf(1), math.Inf(-1)
		minI, maxI := int64(-1), int64(-1)
		for i, v := range xs {
			f, ok := seriesNum(v)
			if !ok {
				continue
			}
			n++
			sum += f
			sq += f * f
			if f < minV {
				minV, minI = f, int64(i)
			}
			if f > maxV {
				maxV, maxI = f, int64(i)
			}
		}
		if n == 0 {
			return map[string]any{"min": nil, "min_idx": nil, "max": nil, "max_idx": nil, "avg": nil, "stdev": nil, "variance": nil}
		}
		avg := sum / n
		variance := 0.0
		if n > 1 {
			variance = (sq - n*avg*avg) / (n - 1)
			if variance < 0 {
				variance = 0
			}
		}
		return map[string]any{
			"min": minV, "min_idx": minI, "max": maxV, "max_idx": maxI,
			"avg": avg, "variance": variance, "stdev": math.Sqrt(variance),
		}
	}))
}

// seriesNum reads an array element as a number.
func seriesNum(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x)
	case int:
		return float64(x), true
	}
	return 0, false
}

// seriesOut writes a result as a long when it is whole, as Kusto's
// series functions keep long arrays long.
func seriesOut(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f)
	}
	return f
}
