package eval

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// Functions that published hunting queries use: format_bytes,
// estimate_data_size, array_sort_asc/desc, new_guid, column_ifexists.

func registerCompatFuncs() {
	register("format_bytes", 1, 3, func(cc *callCtx) (*cexpr, error) {
		if !isNumericType(cc.args[0].typ) && cc.args[0].typ != table.Dynamic && cc.args[0].typ != "" {
			return nil, cc.errorf(cc.args[0].pos, "format_bytes expects a number, not %s", cc.args[0].typ)
		}
		if len(cc.args) > 1 && !isNumericType(cc.args[1].typ) && cc.args[1].typ != "" {
			return nil, cc.errorf(cc.args[1].pos, "format_bytes expects an int precision, not %s", cc.args[1].typ)
		}
		if len(cc.args) > 2 && cc.args[2].typ != table.String {
			return nil, cc.errorf(cc.args[2].pos, "format_bytes expects a string unit, not %s", cc.args[2].typ)
		}
		return fN(table.String, func(args []any) any {
			size, ok := toReal(args[0])
			if !ok {
				return ""
			}
			prec := int64(0)
			if len(args) > 1 {
				if prec, ok = toLong(args[1]); !ok || prec < 0 {
					prec = 0
				}
			}
			unit := ""
			if len(args) > 2 {
				unit = toStr(args[2])
			}
			return formatBytes(size, int(min(prec, 15)), unit)
		})(cc)
	})
	register("array_sort_asc", 1, 2, arraySort(false))
	register("array_sort_desc", 1, 2, arraySort(true))
	registerVolatile("new_guid", 0, 0, func(cc *callCtx) (*cexpr, error) {
		return newExpr(table.String, cc.call.NamePos, func([]any) any { return newGUID() }), nil
	})
}

var byteUnits = []string{"Bytes", "KB", "MB", "GB", "TB", "PB", "EB"}

// formatBytes writes size in 1024-based units, rounded to prec digits
// after the point with trailing zeros left out ("10.1 KB", "19 MB"); in
// unit when it is one of byteUnits, else in the largest unit the size
// reaches. An unknown unit gives "".
func formatBytes(size float64, prec int, unit string) string {
	i := -1
	if unit != "" {
		for j, u := range byteUnits {
			if strings.EqualFold(u, unit) {
				i = j
			}
		}
		if i < 0 {
			return ""
		}
	} else {
		i = 0
		for i+1 < len(byteUnits) && math.Abs(size) >= math.Pow(1024, float64(i+1)) {
			i++
		}
	}
	v := size / math.Pow(1024, float64(i))
	p := math.Pow(10, float64(prec))
	v = math.Round(v*p) / p
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s + " " + byteUnits[i]
}

// arraySort is array_sort_asc / array_sort_desc(array [, nulls_last]):
// the array sorted (numbers before strings and other values, each kind in
// its own order), nulls last unless nulls_last is false. A value that is
// not an array gives null.
func arraySort(desc bool) builder {
	return func(cc *callCtx) (*cexpr, error) {
		nullsLast := true
		if len(cc.args) == 2 {
			a := cc.args[1]
			b, ok := a.val.(bool)
			if !a.isConst || !ok {
				return nil, cc.errorf(a.pos, "%s expects a constant bool (nulls_last) as its second argument", cc.call.Name)
			}
			nullsLast = b
		}
		if t := cc.args[0].typ; t != table.Dynamic && t != "" {
			return nil, cc.errorf(cc.args[0].pos, "%s expects a dynamic array, not %s", cc.call.Name, t)
		}
		return f1(table.Dynamic, func(a any) any {
			arr, ok := a.([]any)
			if !ok {
				return nil
			}
			out := slices.Clone(arr)
			slices.SortStableFunc(out, func(x, y any) int {
				if x == nil || y == nil {
					switch {
					case x == nil && y == nil:
						return 0
					case (x == nil) == nullsLast:
						return 1
					}
					return -1
				}
				c := compareSortable(x, y)
				if desc {
					c = -c
				}
				return c
			})
			return out
		})(cc)
	}
}

// compareSortable orders two non-null dynamic values: numbers, then
// strings, then bools, then everything else by its JSON text.
func compareSortable(x, y any) int {
	rank := func(v any) int {
		switch v.(type) {
		case int64, float64, int:
			return 0
		case string:
			return 1
		case bool:
			return 2
		}
		return 3
	}
	rx, ry := rank(x), rank(y)
	if rx != ry {
		return rx - ry
	}
	if rx == 3 {
		bx, _ := json.Marshal(x)
		by, _ := json.Marshal(y)
		return strings.Compare(string(bx), string(by))
	}
	c, _ := orderValues(x, y)
	return c
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// specialCall compiles the functions whose arguments are not ordinary
// values: column_ifexists(name, default) reads a column only when the
// input has it; estimate_data_size(*) or (columns...) measures a row.
// ok is false for any other function.
func (sc *scope) specialCall(e *syntax.Call) (c *cexpr, ok bool, err error) {
	if b := sc.env.lookup(e.Name); b != nil && b.fn != nil {
		c, err := sc.udfCall(e, b)
		return c, true, err
	}
	if syntax.WindowFuncs[e.Name] {
		c, err := sc.windowCallExpr(e)
		return c, true, err
	}
	switch e.Name {
	case "column_ifexists":
		if err := checkArgCount(sc, e, 2, 2); err != nil {
			return nil, true, err
		}
		lit, isLit := e.Args[0].(*syntax.Literal)
		name, isStr := "", false
		if isLit {
			name, isStr = lit.Value.(string)
		}
		if !isStr {
			return nil, true, sc.errorf(e.Args[0].Pos(), "column_ifexists expects a constant string column name")
		}
		def, err := sc.compile(e.Args[1])
		if err != nil {
			return nil, true, err
		}
		if _, has := sc.idx[name]; has {
			col, err := sc.ident(&syntax.Ident{NamePos: e.NamePos, Name: name})
			if err != nil {
				return nil, true, err
			}
			return col, true, nil
		}
		return def, true, nil
	case "estimate_data_size":
		if len(e.Args) == 0 {
			return nil, true, sc.errorf(e.NamePos, "estimate_data_size expects * or one or more columns")
		}
		var fns []func([]any) any
		for _, a := range e.Args {
			if _, star := a.(*syntax.Star); star {
				cols := sc.cols
				if w := sc.packWidth; w >= 0 && w < len(cols) {
					cols = cols[:w]
				}
				for i := range cols {
					fns = append(fns, func(row []any) any { return row[i] })
				}
				continue
			}
			x, err := sc.compile(a)
			if err != nil {
				return nil, true, err
			}
			fns = append(fns, x.fn)
		}
		return newExpr(table.Long, e.NamePos, func(row []any) any {
			var n int64
			for _, f := range fns {
				n += dataSize(f(row))
			}
			return n
		}), true, nil
	}
	return nil, false, nil
}

// dataSize estimates a value's size in bytes: a string its UTF-8 length,
// a number, datetime or timespan 8, a bool 1, a dynamic value the length of
// its JSON, null 0.
func dataSize(v any) int64 {
	switch x := v.(type) {
	case nil:
		return 0
	case string:
		return int64(len(x))
	case bool:
		return 1
	case int64, float64, int, time.Time, time.Duration:
		return 8
	}
	b, _ := json.Marshal(v)
	return int64(len(b))
}
