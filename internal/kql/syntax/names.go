package syntax

import (
	"strconv"
	"strings"
)

// namePreserving functions keep the name of their first argument when a
// column is not named explicitly: "summarize by bin(Timestamp, 1h)" gives
// a column Timestamp.
var namePreserving = map[string]bool{
	"bin": true, "floor": true, "tostring": true, "toint": true, "tolong": true,
	"todouble": true, "toreal": true, "todecimal": true, "tobool": true, "toboolean": true,
	"todatetime": true, "totimespan": true, "totime": true, "todynamic": true,
	"parse_json": true, "tolower": true, "toupper": true, "startofday": true,
	"startofweek": true, "startofmonth": true, "startofyear": true,
}

// MultiOutput lists the functions that return several columns, with the
// suffix of each: "extend (flag, score, baseline) =
// series_decompose_anomalies(y)" names them, "extend
// series_decompose_anomalies(y)" gives series_decompose_anomalies_y_ad_flag
// and so on. Such a function's value is a bag of its outputs.
var MultiOutput = map[string][]string{
	"series_decompose_anomalies": {"ad_flag", "ad_score", "baseline"},
	"series_decompose":           {"baseline", "seasonal", "trend", "residual"},
}

// DefaultName is the column name Kusto gives an expression that is not
// named explicitly ("user_username" for user.username), or "".
func DefaultName(e Expr) string {
	switch x := e.(type) {
	case *Ident:
		if x.Name == "$left" || x.Name == "$right" {
			return ""
		}
		return x.Name
	case *Member:
		if b := DefaultName(x.X); b != "" {
			return b + "_" + x.Name
		}
	case *Index:
		b := DefaultName(x.X)
		lit, ok := x.Index.(*Literal)
		if b != "" && ok {
			switch v := lit.Value.(type) {
			case string:
				return b + "_" + v
			case int64:
				return b + "_" + strconv.FormatInt(v, 10)
			}
		}
	case *Call:
		if namePreserving[x.Name] && len(x.Args) > 0 {
			return DefaultName(x.Args[0])
		}
	}
	return ""
}

// NameIn reports whether name occurs in text as a word: not inside a
// longer name. Callers use it to tell, conservatively, whether a query
// may refer to a column.
func NameIn(text, name string) bool {
	isName := func(b byte) bool {
		return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
	}
	for i := 0; ; {
		j := strings.Index(text[i:], name)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(name)
		if (j == 0 || !isName(text[j-1])) && (end == len(text) || !isName(text[end])) {
			return true
		}
		i = j + 1
	}
}

// ChoosesColumns reports whether ops end up with only the columns they
// name: they reach a project, summarize, count or distinct of columns
// through operators that read columns by name only. Then a column whose
// name the query never mentions (see NameIn) cannot reach the result.
func ChoosesColumns(ops []Operator) bool {
	for _, op := range ops {
		switch x := op.(type) {
		case *Project, *Summarize, *Count:
			return true
		case *Distinct:
			return !x.All
		case *Where, *Extend, *MvExpand, *ParseOp, *Sort, *Top, *Take, *Serialize, *ProjectRename, *Render:
		default:
			return false
		}
	}
	return false
}

// PercentileName is the default column name of percentile(x, p):
// percentile_x_p, with a fractional p written with '_' for its point
// (percentile_x_99_5). It is "" when x has no default name or p is not a
// number literal.
func PercentileName(x, p Expr) string {
	base := DefaultName(x)
	lit, ok := p.(*Literal)
	if base == "" || !ok {
		return ""
	}
	var ps string
	switch v := lit.Value.(type) {
	case int64:
		ps = strconv.FormatInt(v, 10)
	case float64:
		ps = strings.ReplaceAll(strconv.FormatFloat(v, 'f', -1, 64), ".", "_")
	default:
		return ""
	}
	return "percentile_" + base + "_" + ps
}

// SourceName is what union withsource= shows for one of its tables: the
// table's name, or the name a subquery gives itself with a final "as";
// "" when it has neither (the caller numbers it union_argN).
func SourceName(t Tabular) string {
	switch x := t.(type) {
	case *TableRef:
		return x.Name
	case *Pipeline:
		if len(x.Ops) > 0 {
			if as, ok := x.Ops[len(x.Ops)-1].(*As); ok {
				return as.Name
			}
		}
	}
	return ""
}
