package syntax

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/table"
)

var datetimeLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04Z07:00",
	"2006-01-02 15:04",
	"2006-01-02Z07:00",
	"2006-01-02",
	"2006/01/02 15:04:05.999999999",
	"2006/01/02 15:04",
	"2006/01/02",
	"2006-01-02T15",
	time.RFC1123,
	time.RFC1123Z,
	time.RFC850,
	time.RFC822,
	time.RFC822Z,
	"Mon, 2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04:05",
	"2 Jan 2006",
}

// ParseDatetime parses the datetime formats Kusto accepts in datetime(...)
// literals and todatetime(). A value without a zone is UTC. The result is
// in UTC.
func ParseDatetime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return time.Time{}, false
	}
	for _, layout := range datetimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// ParseTimespan parses a timespan as written in time(...) or passed to
// totimespan(): "1d", "1.5h", "30s", "100ms", "[-][d.]hh:mm[:ss[.fffffff]]",
// or a plain number of days.
func ParseTimespan(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return 0, false
	}
	neg := false
	body := s
	if body[0] == '-' || body[0] == '+' {
		neg = body[0] == '-'
		body = strings.TrimSpace(body[1:])
	}
	if body == "" {
		return 0, false
	}
	d, ok := parseTimespanBody(body)
	if !ok {
		return 0, false
	}
	if neg {
		d = -d
	}
	return d, true
}

func parseTimespanBody(s string) (time.Duration, bool) {
	if strings.Contains(s, ":") {
		return parseClockTimespan(s)
	}
	// number with optional unit
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, false
	}
	unit := strings.TrimSpace(s[i:])
	mult := 24 * time.Hour
	if unit != "" {
		u, ok := timespanUnits[unit]
		if !ok {
			return 0, false
		}
		mult = u
	}
	v := f * float64(mult)
	if v > float64(1<<62) {
		return 0, false
	}
	return time.Duration(v), true
}

func parseClockTimespan(s string) (time.Duration, bool) {
	var days int64
	if dot := strings.IndexByte(s, '.'); dot >= 0 && dot < strings.IndexByte(s, ':') {
		n, err := strconv.ParseInt(s[:dot], 10, 64)
		if err != nil || n > 100000 {
			return 0, false
		}
		days = n
		s = s[dot+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	h, err1 := strconv.ParseInt(parts[0], 10, 64)
	m, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || h < 0 || m < 0 || h > 1000000 || m > 59 {
		return 0, false
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	if len(parts) == 3 {
		sec := parts[2]
		frac := ""
		if dot := strings.IndexByte(sec, '.'); dot >= 0 {
			frac = sec[dot+1:]
			sec = sec[:dot]
		}
		sv, err := strconv.ParseInt(sec, 10, 64)
		if err != nil || sv < 0 || sv > 59 {
			return 0, false
		}
		d += time.Duration(sv) * time.Second
		if frac != "" {
			if len(frac) > 9 {
				frac = frac[:9]
			}
			for _, c := range frac {
				if c < '0' || c > '9' {
					return 0, false
				}
			}
			n, _ := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
			d += time.Duration(n)
		}
	}
	return d, true
}

// FormatTimespan renders d as Kusto does: [-][d.]hh:mm:ss[.fffffff].
func FormatTimespan(d time.Duration) string {
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = uint64(-d)
	}
	ticks := u / 100
	frac := ticks % 10000000
	secs := ticks / 10000000
	days := secs / 86400
	secs %= 86400
	if days > 0 {
		fmt.Fprintf(&b, "%d.", days)
	}
	fmt.Fprintf(&b, "%02d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	if frac != 0 {
		fmt.Fprintf(&b, ".%07d", frac)
	}
	return b.String()
}

// FormatDatetime renders t as Kusto's tostring does:
// 2024-01-02T03:04:05Z, with a 7-digit fraction when it is not zero.
func FormatDatetime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05") + fmt.Sprintf(".%07dZ", t.Nanosecond()/100)
}

// ParseTypeName maps a KQL type name (as in typeof(T), parse's col:T,
// datatable(c:T)) to a table.Type.
func ParseTypeName(s string) (table.Type, bool) {
	switch s {
	case "bool", "boolean":
		return table.Bool, true
	case "int":
		return table.Int, true
	case "long":
		return table.Long, true
	case "real", "double", "decimal":
		return table.Real, true
	case "string", "guid", "uniqueid":
		return table.String, true
	case "datetime", "date":
		return table.DateTime, true
	case "timespan", "time":
		return table.TimeSpan, true
	case "dynamic":
		return table.Dynamic, true
	}
	return "", false
}
