package eval

import (
	"math"
	"slices"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// aggState accumulates one aggregate for one group.
type aggState interface {
	add(row []any)
	result() any
}

// aggDef is a compiled aggregate: its result type and a state factory.
type aggDef struct {
	typ      table.Type
	newState func() aggState
}

// aggArgs are the compiled arguments of an aggregate call (nil for '*').
type aggArgs []*cexpr

func (a aggArgs) fn(i int) func([]any) any {
	if i >= len(a) || a[i] == nil {
		return nil
	}
	return a[i].fn
}

type aggSpec struct {
	min, max int
	prefix   string // output name prefix, e.g. "dcount_"
	argName  bool   // append the name of the first argument
	build    func(sc *scope, call *syntax.Call, args aggArgs) (*aggDef, error)
}

var aggregates map[string]aggSpec

func init() {
	maxArg := func(args aggArgs, i int) int {
		if i < len(args) && args[i] != nil && args[i].isConst {
			if n, ok := toLong(args[i].val); ok && n > 0 && n < 1<<20 {
				return int(n)
			}
		}
		return 1 << 20
	}
	predOf := func(sc *scope, args aggArgs, i int) (func([]any) any, error) {
		if !isBoolish(args[i].typ) {
			return nil, sc.errorf(args[i].pos, "predicate must be bool, not %s", args[i].typ)
		}
		return args[i].fn, nil
	}
	aggregates = map[string]aggSpec{
		"count": {0, 1, "count_", false, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			f := args.fn(0)
			return &aggDef{typ: table.Long, newState: func() aggState { return &countState{f: f} }}, nil
		}},
		"countif": {1, 1, "countif_", false, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			p, err := predOf(sc, args, 0)
			if err != nil {
				return nil, err
			}
			return &aggDef{typ: table.Long, newState: func() aggState { return &countState{pred: p} }}, nil
		}},
		"dcount": {1, 2, "dcount_", true, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			f := args.fn(0)
			return &aggDef{typ: table.Long, newState: func() aggState { return &dcountState{f: f, seen: map[string]struct{}{}} }}, nil
		}},
		"dcountif": {2, 3, "dcountif_", true, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			p, err := predOf(sc, args, 1)
			if err != nil {
				return nil, err
			}
			f := args.fn(0)
			return &aggDef{typ: table.Long, newState: func() aggState { return &dcountState{f: f, pred: p, seen: map[string]struct{}{}} }}, nil
		}},
		"sum":      {1, 1, "sum_", true, sumBuilder(false)},
		"sumif":    {2, 2, "sumif_", true, sumBuilder(true)},
		"avg":      {1, 1, "avg_", true, avgBuilder(false)},
		"avgif":    {2, 2, "avgif_", true, avgBuilder(true)},
		"min":      {1, 1, "min_", true, minMaxBuilder(-1, false)},
		"max":      {1, 1, "max_", true, minMaxBuilder(1, false)},
		"minif":    {2, 2, "minif_", true, minMaxBuilder(-1, true)},
		"maxif":    {2, 2, "maxif_", true, minMaxBuilder(1, true)},
		"stdev":    {1, 1, "stdev_", true, varianceBuilder(true)},
		"variance": {1, 1, "variance_", true, varianceBuilder(false)},
		"make_set": {1, 2, "set_", true, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			f, m := args.fn(0), maxArg(args, 1)
			return &aggDef{typ: table.Dynamic, newState: func() aggState { return &listState{f: f, max: m, seen: map[string]struct{}{}} }}, nil
		}},
		"make_set_if": {2, 3, "set_", true, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			p, err := predOf(sc, args, 1)
			if err != nil {
				return nil, err
			}
			f, m := args.fn(0), maxArg(args, 2)
			return &aggDef{typ: table.Dynamic, newState: func() aggState { return &listState{f: f, pred: p, max: m, seen: map[string]struct{}{}} }}, nil
		}},
		"make_list": {1, 2, "list_", true, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			f, m := args.fn(0), maxArg(args, 1)
			return &aggDef{typ: table.Dynamic, newState: func() aggState { return &listState{f: f, max: m} }}, nil
		}},
		"make_list_if": {2, 3, "list_", true, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			p, err := predOf(sc, args, 1)
			if err != nil {
				return nil, err
			}
			f, m := args.fn(0), maxArg(args, 2)
			return &aggDef{typ: table.Dynamic, newState: func() aggState { return &listState{f: f, pred: p, max: m} }}, nil
		}},
		"make_bag": {1, 2, "bag_", true, func(sc *scope, _ *syntax.Call, args aggArgs) (*aggDef, error) {
			f, m := args.fn(0), maxArg(args, 1)
			return &aggDef{typ: table.Dynamic, newState: func() aggState { return &bagState{f: f, max: m, m: map[string]any{}} }}, nil
		}},
		"percentile": {2, 2, "percentile_", true, percentileBuilder},
		"take_any":   {1, 1, "any_", true, anyBuilder},
		"any":        {1, 1, "any_", true, anyBuilder},
		"arg_max":    {2, -1, "", false, nil},
		"arg_min":    {2, -1, "", false, nil},
	}
	aggregates["count_distinct"] = aggregates["dcount"]
	aggregates["make_set_distinct"] = aggregates["make_set"]
}

func argType(args aggArgs, i int) table.Type {
	if i < len(args) && args[i] != nil {
		return args[i].typ
	}
	return table.Dynamic
}

func sumBuilder(withPred bool) func(*scope, *syntax.Call, aggArgs) (*aggDef, error) {
	return func(sc *scope, call *syntax.Call, args aggArgs) (*aggDef, error) {
		var pred func([]any) any
		if withPred {
			pred = args.fn(1)
		}
		kind := argType(args, 0)
		switch kind {
		case table.Long, table.Int:
			kind = table.Long
		case table.Real, table.TimeSpan:
		case table.Dynamic, "":
			kind = table.Real
		default:
			return nil, sc.errorf(call.NamePos, "%s() expects a number or timespan, not %s", call.Name, kind)
		}
		f := args.fn(0)
		return &aggDef{typ: kind, newState: func() aggState { return &sumState{kind: kind, f: f, pred: pred} }}, nil
	}
}

func avgBuilder(withPred bool) func(*scope, *syntax.Call, aggArgs) (*aggDef, error) {
	return func(sc *scope, call *syntax.Call, args aggArgs) (*aggDef, error) {
		var pred func([]any) any
		if withPred {
			pred = args.fn(1)
		}
		switch t := argType(args, 0); t {
		case table.Long, table.Int, table.Real, table.Dynamic, "":
		default:
			return nil, sc.errorf(call.NamePos, "%s() expects a number, not %s", call.Name, t)
		}
		f := args.fn(0)
		return &aggDef{typ: table.Real, newState: func() aggState { return &avgState{f: f, pred: pred} }}, nil
	}
}

func varianceBuilder(stdev bool) func(*scope, *syntax.Call, aggArgs) (*aggDef, error) {
	return func(sc *scope, call *syntax.Call, args aggArgs) (*aggDef, error) {
		f := args.fn(0)
		return &aggDef{typ: table.Real, newState: func() aggState { return &varState{f: f, stdev: stdev} }}, nil
	}
}

func minMaxBuilder(want int, withPred bool) func(*scope, *syntax.Call, aggArgs) (*aggDef, error) {
	return func(sc *scope, call *syntax.Call, args aggArgs) (*aggDef, error) {
		var pred func([]any) any
		if withPred {
			pred = args.fn(1)
		}
		f := args.fn(0)
		return &aggDef{typ: colType(args[0]), newState: func() aggState { return &minMaxState{want: want, f: f, pred: pred} }}, nil
	}
}

func anyBuilder(sc *scope, call *syntax.Call, args aggArgs) (*aggDef, error) {
	f := args.fn(0)
	return &aggDef{typ: colType(args[0]), newState: func() aggState { return &anyState{f: f} }}, nil
}

type countState struct {
	n    int64
	f    func([]any) any
	pred func([]any) any
}

func (s *countState) add(row []any) {
	switch {
	case s.pred != nil:
		if s.pred(row) == true {
			s.n++
		}
	case s.f != nil:
		if s.f(row) != nil {
			s.n++
		}
	default:
		s.n++
	}
}
func (s *countState) result() any { return s.n }

type dcountState struct {
	f, pred func([]any) any
	seen    map[string]struct{}
	buf     []byte
}

func (s *dcountState) add(row []any) {
	if s.pred != nil && s.pred(row) != true {
		return
	}
	v := s.f(row)
	if v == nil {
		return
	}
	s.buf = appendKey(s.buf[:0], v)
	if _, ok := s.seen[string(s.buf)]; !ok {
		s.seen[string(s.buf)] = struct{}{}
	}
}
func (s *dcountState) result() any { return int64(len(s.seen)) }

type sumState struct {
	kind    table.Type
	f, pred func([]any) any
	i       int64
	r       float64
	d       time.Duration
}

func (s *sumState) add(row []any) {
	if s.pred != nil && s.pred(row) != true {
		return
	}
	v := s.f(row)
	if v == nil {
		return
	}
	switch s.kind {
	case table.Long:
		if n, ok := v.(int64); ok {
			s.i += n
		}
	case table.TimeSpan:
		if d, ok := v.(time.Duration); ok {
			s.d += d
		}
	default:
		if f, ok := toReal(v); ok {
			s.r += f
		}
	}
}

func (s *sumState) result() any {
	switch s.kind {
	case table.Long:
		return s.i
	case table.TimeSpan:
		return s.d
	}
	return s.r
}

type avgState struct {
	f, pred func([]any) any
	sum     float64
	n       int64
}

func (s *avgState) add(row []any) {
	if s.pred != nil && s.pred(row) != true {
		return
	}
	v := s.f(row)
	if v == nil {
		return
	}
	if f, ok := toReal(v); ok {
		s.sum += f
		s.n++
	}
}

func (s *avgState) result() any {
	if s.n == 0 {
		return nil
	}
	return s.sum / float64(s.n)
}

type varState struct {
	f     func([]any) any
	stdev bool
	vals  []float64
}

func (s *varState) add(row []any) {
	if v := s.f(row); v != nil {
		if f, ok := toReal(v); ok {
			s.vals = append(s.vals, f)
		}
	}
}

func (s *varState) result() any {
	n := float64(len(s.vals))
	if n < 2 {
		return 0.0
	}
	mean := 0.0
	for _, v := range s.vals {
		mean += v
	}
	mean /= n
	ss := 0.0
	for _, v := range s.vals {
		ss += (v - mean) * (v - mean)
	}
	v := ss / (n - 1)
	if s.stdev {
		return math.Sqrt(v)
	}
	return v
}

type minMaxState struct {
	want    int
	f, pred func([]any) any
	best    any
}

func (s *minMaxState) add(row []any) {
	if s.pred != nil && s.pred(row) != true {
		return
	}
	v := s.f(row)
	if v == nil {
		return
	}
	if s.best == nil || sortCompare(v, s.best)*s.want > 0 {
		s.best = v
	}
}
func (s *minMaxState) result() any { return s.best }

type listState struct {
	f, pred func([]any) any
	max     int
	seen    map[string]struct{} // non-nil for make_set
	vals    []any
	buf     []byte
}

func (s *listState) add(row []any) {
	if len(s.vals) >= s.max || s.pred != nil && s.pred(row) != true {
		return
	}
	v := s.f(row)
	if v == nil {
		return
	}
	v = toDynamic(v)
	if s.seen != nil {
		s.buf = appendKey(s.buf[:0], v)
		if _, ok := s.seen[string(s.buf)]; ok {
			return
		}
		s.seen[string(s.buf)] = struct{}{}
	}
	s.vals = append(s.vals, v)
}

func (s *listState) result() any {
	if s.vals == nil {
		return []any{}
	}
	return s.vals
}

type bagState struct {
	f   func([]any) any
	max int
	m   map[string]any
}

func (s *bagState) add(row []any) {
	b, ok := s.f(row).(map[string]any)
	if !ok {
		return
	}
	for k, v := range b {
		if _, exists := s.m[k]; !exists && len(s.m) < s.max {
			s.m[k] = v
		}
	}
}
func (s *bagState) result() any { return s.m }

type anyState struct {
	f   func([]any) any
	v   any
	set bool
}

func (s *anyState) add(row []any) {
	if s.set {
		return
	}
	if v := s.f(row); v != nil {
		s.v, s.set = v, true
	}
}
func (s *anyState) result() any { return s.v }

// argState keeps the row where the key is largest (arg_max) or smallest.
type argState struct {
	want int
	key  func([]any) any
	best any
	row  []any
}

func (s *argState) add(row []any) {
	v := s.key(row)
	if v == nil {
		return
	}
	if s.best == nil || sortCompare(v, s.best)*s.want > 0 {
		s.best, s.row = v, row
	}
}
func (s *argState) result() any { return s }

// percentileBuilder compiles percentile(x, p): the nearest-rank
// percentile, the value at rank ceil(p/100 * n) of the group's non-null
// values in ascending order (Kusto estimates it; on the sizes kdfir
// queries its estimate is this value).
func percentileBuilder(sc *scope, call *syntax.Call, args aggArgs) (*aggDef, error) {
	x, p := args[0], args[1]
	switch x.typ {
	case table.Long, table.Int, table.Real, table.DateTime, table.TimeSpan, table.Dynamic:
	default:
		return nil, sc.errorf(x.pos, "percentile expects a number, datetime or timespan, not %s", x.typ)
	}
	pct, ok := toReal(p.val)
	if !p.isConst || !ok || !isNumericType(p.typ) {
		return nil, sc.errorf(p.pos, "the percentile must be a constant number")
	}
	if pct < 0 || pct > 100 || math.IsNaN(pct) {
		return nil, sc.errorf(p.pos, "the percentile must be between 0 and 100, not %v", pct)
	}
	typ := x.typ
	f := x.fn
	return &aggDef{typ: typ, newState: func() aggState { return &percentileState{f: f, pct: pct, dyn: typ == table.Dynamic} }}, nil
}

type percentileState struct {
	f    func([]any) any
	pct  float64
	dyn  bool
	vals []any
}

func (s *percentileState) add(row []any) {
	v := s.f(row)
	if s.dyn {
		// A dynamic value counts when it is a number.
		switch x := v.(type) {
		case int64, float64:
		case int:
			v = int64(x)
		default:
			return
		}
	}
	if v != nil {
		s.vals = append(s.vals, v)
	}
}

func (s *percentileState) result() any {
	n := len(s.vals)
	if n == 0 {
		return nil
	}
	slices.SortStableFunc(s.vals, func(a, b any) int {
		c, _ := orderValues(a, b)
		return c
	})
	k := int(math.Ceil(s.pct * float64(n) / 100))
	k = max(k, 1)
	return s.vals[k-1]
}
