package eval

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/kdfir/kdfir/internal/kql/table"
)

func registerDynamicFuncs() {
	register("array_length", 1, 1, f1(table.Long, func(a any) any {
		if arr, ok := a.([]any); ok {
			return int64(len(arr))
		}
		return nil
	}))
	register("bag_keys", 1, 1, f1(table.Dynamic, func(a any) any {
		m, ok := a.(map[string]any)
		if !ok {
			return nil
		}
		out := make([]any, 0, len(m))
		for _, k := range sortedKeys(m) {
			out = append(out, k)
		}
		return out
	}))
	register("bag_has_key", 2, 2, f2(table.Bool, func(a, k any) any {
		m, ok := a.(map[string]any)
		if !ok {
			return false
		}
		_, ok = m[toStr(k)]
		return ok
	}))
	pack := func(cc *callCtx) (*cexpr, error) {
		if len(cc.args)%2 != 0 {
			return nil, cc.errorf(cc.call.NamePos, "%s() expects pairs of key and value", cc.call.Name)
		}
		return fN(table.Dynamic, func(args []any) any {
			m := make(map[string]any, len(args)/2)
			for i := 0; i+1 < len(args); i += 2 {
				m[toStr(args[i])] = toDynamic(args[i+1])
			}
			return m
		})(cc)
	}
	register("pack", 0, -1, pack)
	register("bag_pack", 0, -1, pack)
	register("pack_dictionary", 0, -1, pack)
	register("pack_array", 0, -1, fN(table.Dynamic, func(args []any) any {
		out := make([]any, len(args))
		for i, a := range args {
			out[i] = toDynamic(a)
		}
		return out
	}))
	// pack_all([ignore_null_empty]) reads the whole input row, so it is
	// volatile: a call without arguments must not be folded.
	registerVolatile("pack_all", 0, 1, func(cc *callCtx) (*cexpr, error) {
		if cc.sc.agg != nil {
			// The output expressions of summarize see only the aggregation
			// results, not the input rows.
			return nil, cc.errorf(cc.call.NamePos, "pack_all() in summarize must be the argument of an aggregation function, such as make_list(pack_all())")
		}
		skipEmpty := false
		if len(cc.args) == 1 {
			a := cc.args[0]
			b, ok := a.val.(bool)
			if !a.isConst || !ok {
				return nil, cc.errorf(a.pos, "pack_all() expects a constant bool (ignore_null_empty)")
			}
			skipEmpty = b
		}
		cols := cc.sc.cols
		if w := cc.sc.packWidth; w >= 0 && w < len(cols) {
			cols = cols[:w]
		}
		cols = slices.Clone(cols)
		return newExpr(table.Dynamic, cc.call.NamePos, func(row []any) any {
			m := make(map[string]any, len(cols))
			for i, c := range cols {
				v := row[i]
				if skipEmpty && (v == nil || v == "") {
					continue
				}
				if _, dup := m[c.Name]; dup {
					continue // the first column of a name, as for references
				}
				m[c.Name] = toDynamic(v)
			}
			return m
		}), nil
	})
	register("set_has_element", 2, 2, f2(table.Bool, func(a, v any) any {
		return arrayIndexOf(a, v) >= 0
	}))
	register("array_index_of", 2, 2, f2(table.Long, func(a, v any) any {
		if _, ok := a.([]any); !ok {
			return nil
		}
		return int64(arrayIndexOf(a, v))
	}))
	register("array_concat", 1, -1, fN(table.Dynamic, func(args []any) any {
		out := []any{}
		for _, a := range args {
			arr, ok := a.([]any)
			if !ok {
				return nil
			}
			out = append(out, arr...)
		}
		return out
	}))
	register("array_slice", 3, 3, f3(table.Dynamic, func(a, s, e any) any {
		arr, ok := a.([]any)
		start, ok1 := toLong(s)
		end, ok2 := toLong(e)
		if !ok || !ok1 || !ok2 {
			return nil
		}
		n := int64(len(arr))
		if start < 0 {
			start += n
		}
		if end < 0 {
			end += n
		}
		start = max(start, 0)
		end = min(end, n-1)
		if start > end {
			return []any{}
		}
		return append([]any{}, arr[start:end+1]...)
	}))
	register("array_reverse", 1, 1, f1(table.Dynamic, func(a any) any {
		arr, ok := a.([]any)
		if !ok {
			return nil
		}
		out := make([]any, len(arr))
		for i, v := range arr {
			out[len(arr)-1-i] = v
		}
		return out
	}))
	register("ipv4_is_private", 1, 1, f1(table.Bool, func(a any) any {
		ip, ok := parseIPv4(toStr(a))
		if !ok {
			return nil
		}
		return ip.IsPrivate()
	}))
	register("ipv4_is_in_range", 2, 2, f2(table.Bool, func(a, r any) any {
		ip, ok := parseIPv4(toStr(a))
		if !ok {
			return nil
		}
		rs := toStr(r)
		if !strings.Contains(rs, "/") {
			rs += "/32"
		}
		p, err := netip.ParsePrefix(rs)
		if err != nil {
			return nil
		}
		return p.Contains(ip)
	}))
	register("parse_ipv4", 1, 1, f1(table.Long, func(a any) any {
		ip, ok := parseIPv4(toStr(a))
		if !ok {
			return nil
		}
		b := ip.As4()
		return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
	}))
}

func parseIPv4(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() && !ip.Is4In6() {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func arrayIndexOf(a, v any) int {
	arr, ok := a.([]any)
	if !ok || v == nil {
		return -1
	}
	dv := toDynamic(v)
	for i, e := range arr {
		if eq, ok := equalValues(e, dv); ok && eq {
			return i
		}
	}
	return -1
}
