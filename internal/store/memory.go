package store

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultMemoryFraction is the share of the machine's memory that DuckDB
// may use when no limit is given, up to DefaultMemoryCap: enough for
// hunts over a week of a busy cluster (aggregates spill beyond it; at
// 512MiB, a query reading the request bodies of many events scattered
// over a million ran out of memory), and it keeps kdfir beside the
// workloads it runs next to.
const (
	DefaultMemoryFraction = 0.25
	DefaultMemoryCap      = 1 << 30
)

// DefaultMemoryLimit returns DefaultMemoryFraction of the machine's
// memory, between 256MiB and DefaultMemoryCap, in DuckDB's notation.
func DefaultMemoryLimit() string {
	var si unix.Sysinfo_t
	total := uint64(4 << 30)
	if err := unix.Sysinfo(&si); err == nil && si.Totalram > 0 {
		total = uint64(si.Totalram) * uint64(si.Unit)
	}
	limit := uint64(float64(total) * DefaultMemoryFraction)
	limit = min(max(limit, 256<<20), DefaultMemoryCap)
	return strconv.FormatUint(limit>>20, 10) + "MiB"
}

var sizeRE = regexp.MustCompile(`^(?i)\s*([0-9]+(?:\.[0-9]+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$`)

// ParseMemoryLimit reads a memory limit: a size ("2GiB", "1500MB", "512mib";
// a bare number is bytes) or a percentage of the machine's memory ("25%").
// It returns the limit in DuckDB's notation.
func ParseMemoryLimit(s string) (string, error) {
	if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f <= 0 || f > 100 {
			return "", fmt.Errorf("invalid memory limit %q: want a size such as 2GiB or a percentage such as 25%%", s)
		}
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return "", fmt.Errorf("memory limit %q: read the machine's memory: %w", s, err)
		}
		total := float64(si.Totalram) * float64(si.Unit)
		return strconv.FormatUint(uint64(total*f/100)>>20, 10) + "MiB", nil
	}
	if err := validSize(s); err != nil {
		return "", err
	}
	return strings.TrimSpace(s), nil
}

func validSize(s string) error {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("invalid memory limit %q: want a size such as 2GiB or a percentage such as 25%%", s)
	}
	if f, _ := strconv.ParseFloat(m[1], 64); f == 0 {
		return fmt.Errorf("invalid memory limit %q: must be more than zero", s)
	}
	return nil
}
