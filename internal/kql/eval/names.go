package eval

import (
	"strconv"
	"strings"

	"github.com/kdfir/kdfir/internal/kql/table"
)

func hasColumn(cols []table.Column, name string) bool {
	return columnIndex(cols, name) >= 0
}

func columnIndex(cols []table.Column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// nextColumnName returns prefix1, prefix2... whichever is free.
func nextColumnName(cols []table.Column, prefix string) string {
	for i := 1; ; i++ {
		n := prefix + strconv.Itoa(i)
		if !hasColumn(cols, n) {
			return n
		}
	}
}

// dedupName returns name, or name1, name2... if it is taken.
func dedupName(cols []table.Column, name string) string {
	if !hasColumn(cols, name) {
		return name
	}
	return nextColumnName(cols, name)
}

// globMatch matches a column name against a pattern where * matches any
// run of characters.
func globMatch(pattern, name string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == name
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(name, p)
		if i < 0 {
			return false
		}
		name = name[i+len(p):]
	}
	return strings.HasSuffix(name, last)
}

// netType maps a KQL type to the .NET type name getschema reports.
func netType(t table.Type) string {
	switch t {
	case table.Bool:
		return "System.SByte"
	case table.Int:
		return "System.Int32"
	case table.Long:
		return "System.Int64"
	case table.Real:
		return "System.Double"
	case table.String:
		return "System.String"
	case table.DateTime:
		return "System.DateTime"
	case table.TimeSpan:
		return "System.TimeSpan"
	}
	return "System.Object"
}
