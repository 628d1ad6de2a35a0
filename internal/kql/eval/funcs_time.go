package eval

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/table"
)

func registerTimeFuncs() {
	register("now", 0, 1, func(cc *callCtx) (*cexpr, error) {
		now := cc.sc.r.now
		if len(cc.args) == 0 {
			return constExpr(table.DateTime, now, cc.call.NamePos), nil
		}
		return f1(table.DateTime, func(a any) any {
			d, ok := toTimespan(a)
			if !ok {
				return nil
			}
			return now.Add(d)
		})(cc)
	})
	register("ago", 1, 1, func(cc *callCtx) (*cexpr, error) {
		now := cc.sc.r.now
		return f1(table.DateTime, func(a any) any {
			d, ok := toTimespan(a)
			if !ok {
				return nil
			}
			return now.Add(-d)
		})(cc)
	})
	startOf := func(name string, f func(t time.Time) time.Time) {
		register(name, 1, 2, fN(table.DateTime, func(args []any) any {
			t, ok := toDatetime(args[0])
			if !ok {
				return nil
			}
			t = f(t)
			if len(args) == 2 {
				n, ok := toLong(args[1])
				if !ok {
					return nil
				}
				t = shiftPeriod(name, t, int(n))
			}
			return t
		}))
	}
	startOf("startofday", func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) })
	startOf("startofweek", func(t time.Time) time.Time {
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return d.AddDate(0, 0, -int(d.Weekday()))
	})
	startOf("startofmonth", func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC) })
	startOf("startofyear", func(t time.Time) time.Time { return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC) })
	startOf("endofday", func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1).Add(-100)
	})
	part := func(name string, typ table.Type, f func(t time.Time) any) {
		register(name, 1, 1, f1(typ, func(a any) any {
			t, ok := toDatetime(a)
			if !ok {
				return nil
			}
			return f(t)
		}))
	}
	part("dayofweek", table.TimeSpan, func(t time.Time) any { return time.Duration(t.Weekday()) * 24 * time.Hour })
	part("dayofmonth", table.Int, func(t time.Time) any { return int64(t.Day()) })
	part("dayofyear", table.Int, func(t time.Time) any { return int64(t.YearDay()) })
	part("hourofday", table.Int, func(t time.Time) any { return int64(t.Hour()) })
	part("getyear", table.Int, func(t time.Time) any { return int64(t.Year()) })
	part("getmonth", table.Int, func(t time.Time) any { return int64(t.Month()) })
	part("monthofyear", table.Int, func(t time.Time) any { return int64(t.Month()) })
	part("week_of_year", table.Int, func(t time.Time) any { _, w := t.ISOWeek(); return int64(w) })
	register("datetime_part", 2, 2, f2(table.Int, func(p, a any) any {
		t, ok := toDatetime(a)
		if !ok {
			return nil
		}
		switch strings.ToLower(toStr(p)) {
		case "year":
			return int64(t.Year())
		case "quarter":
			return int64((t.Month()-1)/3 + 1)
		case "month":
			return int64(t.Month())
		case "week_of_year", "weekofyear":
			_, w := t.ISOWeek()
			return int64(w)
		case "day":
			return int64(t.Day())
		case "dayofyear":
			return int64(t.YearDay())
		case "hour":
			return int64(t.Hour())
		case "minute":
			return int64(t.Minute())
		case "second":
			return int64(t.Second())
		case "millisecond":
			return int64(t.Nanosecond() / 1e6)
		case "microsecond":
			return int64(t.Nanosecond() / 1e3)
		case "nanosecond":
			return int64(t.Nanosecond())
		}
		return nil
	}))
	register("datetime_add", 3, 3, f3(table.DateTime, func(p, n, a any) any {
		t, ok := toDatetime(a)
		k, ok2 := toLong(n)
		if !ok || !ok2 || k > math.MaxInt32 || k < math.MinInt32 {
			return nil
		}
		return shiftPeriod(strings.ToLower(toStr(p)), t, int(k))
	}))
	register("datetime_diff", 3, 3, f3(table.Long, func(p, a, b any) any {
		t1, ok1 := toDatetime(a)
		t2, ok2 := toDatetime(b)
		if !ok1 || !ok2 {
			return nil
		}
		return datetimeDiff(strings.ToLower(toStr(p)), t1, t2)
	}))
	register("format_datetime", 2, 2, f2(table.String, func(a, f any) any {
		t, ok := toDatetime(a)
		if !ok {
			return ""
		}
		return formatDatetime(t, toStr(f))
	}))
	register("format_timespan", 2, 2, f2(table.String, func(a, f any) any {
		d, ok := toTimespan(a)
		if !ok {
			return ""
		}
		return formatTimespan(d, toStr(f))
	}))
	unix := func(name string, unit float64) {
		register(name, 1, 1, f1(table.DateTime, func(a any) any {
			f, ok := toReal(a)
			if !ok || a == nil || math.IsNaN(f) || math.Abs(f*unit) > 9e18 {
				return nil
			}
			ns := f * unit
			return time.Unix(0, 0).Add(time.Duration(ns)).UTC()
		}))
	}
	unix("unixtime_seconds_todatetime", 1e9)
	unix("unixtime_milliseconds_todatetime", 1e6)
	unix("unixtime_microseconds_todatetime", 1e3)
	unix("unixtime_nanoseconds_todatetime", 1)
	register("make_datetime", 3, 7, fN(table.DateTime, func(args []any) any {
		var v [7]int64
		for i, a := range args {
			if i == 5 {
				f, ok := toReal(a)
				if !ok {
					return nil
				}
				v[5] = int64(f)
				v[6] = int64((f - math.Floor(f)) * 1e9)
				continue
			}
			n, ok := toLong(a)
			if !ok || n < 0 || n > 100000 {
				return nil
			}
			v[i] = n
		}
		return time.Date(int(v[0]), time.Month(v[1]), int(v[2]), int(v[3]), int(v[4]), int(v[5]), int(v[6]), time.UTC)
	}))
}

func shiftPeriod(unit string, t time.Time, n int) time.Time {
	switch strings.TrimPrefix(unit, "startof") {
	case "year":
		return addMonths(t, 12*n)
	case "quarter":
		return addMonths(t, 3*n)
	case "month":
		return addMonths(t, n)
	case "week":
		return t.AddDate(0, 0, 7*n)
	case "day", "endofday":
		return t.AddDate(0, 0, n)
	case "hour":
		return t.Add(time.Duration(n) * time.Hour)
	case "minute":
		return t.Add(time.Duration(n) * time.Minute)
	case "second":
		return t.Add(time.Duration(n) * time.Second)
	case "millisecond":
		return t.Add(time.Duration(n) * time.Millisecond)
	case "microsecond":
		return t.Add(time.Duration(n) * time.Microsecond)
	case "nanosecond":
		return t.Add(time.Duration(n))
	}
	return t
}

// addMonths adds n months, clamping the day to the end of the month
// (2024-01-31 + 1 month = 2024-02-29).
func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// datetimeDiff counts period boundaries between t2 and t1 (t1 - t2).
func datetimeDiff(unit string, t1, t2 time.Time) any {
	switch unit {
	case "year":
		return int64(t1.Year() - t2.Year())
	case "quarter":
		return int64((t1.Year()-t2.Year())*4 + (int(t1.Month())-1)/3 - (int(t2.Month())-1)/3)
	case "month":
		return int64((t1.Year()-t2.Year())*12 + int(t1.Month()) - int(t2.Month()))
	}
	var size int64
	switch unit {
	case "week":
		// weeks start on Sunday
		a := ticksOf(t1) + 1*864000000000
		b := ticksOf(t2) + 1*864000000000
		w := int64(7 * 864000000000)
		return floorDiv(a, w) - floorDiv(b, w)
	case "day":
		size = 864000000000
	case "hour":
		size = 36000000000
	case "minute":
		size = 600000000
	case "second":
		size = 10000000
	case "millisecond":
		size = 10000
	case "microsecond":
		size = 10
	case "nanosecond":
		return t1.Sub(t2).Nanoseconds()
	default:
		return nil
	}
	return floorDiv(ticksOf(t1), size) - floorDiv(ticksOf(t2), size)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// formatDatetime implements format_datetime's specifiers: y yy yyyy M MM
// MMM MMMM d dd ddd dddd h hh H HH m mm s ss f..fffffff F..FFFFFFF tt.
func formatDatetime(t time.Time, f string) string {
	t = t.UTC()
	var b strings.Builder
	for i := 0; i < len(f); {
		c := f[i]
		j := i
		for j < len(f) && f[j] == c {
			j++
		}
		n := j - i
		switch c {
		case 'y':
			switch {
			case n <= 2:
				pad(&b, t.Year()%100, n)
			default:
				pad(&b, t.Year(), n)
			}
		case 'M':
			switch {
			case n <= 2:
				pad(&b, int(t.Month()), n)
			case n == 3:
				b.WriteString(t.Month().String()[:3])
			default:
				b.WriteString(t.Month().String())
			}
		case 'd':
			switch {
			case n <= 2:
				pad(&b, t.Day(), n)
			case n == 3:
				b.WriteString(t.Weekday().String()[:3])
			default:
				b.WriteString(t.Weekday().String())
			}
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			pad(&b, h, min(n, 2))
		case 'H':
			pad(&b, t.Hour(), min(n, 2))
		case 'm':
			pad(&b, t.Minute(), min(n, 2))
		case 's':
			pad(&b, t.Second(), min(n, 2))
		case 'f', 'F':
			n = min(n, 9)
			frac := strconv.Itoa(t.Nanosecond() + 1e9)[1:]
			s := frac[:n]
			if c == 'F' {
				s = strings.TrimRight(s, "0")
			}
			b.WriteString(s)
		case 't':
			if t.Hour() < 12 {
				b.WriteString("AM"[:min(n, 2)])
			} else {
				b.WriteString("PM"[:min(n, 2)])
			}
		default:
			b.WriteString(f[i:j])
		}
		i = j
	}
	return b.String()
}

// formatTimespan implements format_timespan's specifiers: d.. h hh H HH m mm s ss f.. F..
func formatTimespan(d time.Duration, f string) string {
	neg := d < 0
	if neg {
		d = -d
	}
	days := int(d / (24 * time.Hour))
	rem := d % (24 * time.Hour)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i := 0; i < len(f); {
		c := f[i]
		j := i
		for j < len(f) && f[j] == c {
			j++
		}
		n := j - i
		switch c {
		case 'd':
			pad(&b, days, n)
		case 'h', 'H':
			pad(&b, int(rem/time.Hour), min(n, 2))
		case 'm':
			pad(&b, int(rem/time.Minute%60), min(n, 2))
		case 's':
			pad(&b, int(rem/time.Second%60), min(n, 2))
		case 'f', 'F':
			n = min(n, 9)
			frac := strconv.Itoa(int(rem%time.Second) + 1e9)[1:]
			s := frac[:n]
			if c == 'F' {
				s = strings.TrimRight(s, "0")
			}
			b.WriteString(s)
		default:
			b.WriteString(f[i:j])
		}
		i = j
	}
	return b.String()
}

func pad(b *strings.Builder, v, width int) {
	s := strconv.Itoa(v)
	for k := len(s); k < width; k++ {
		b.WriteByte('0')
	}
	b.WriteString(s)
}
