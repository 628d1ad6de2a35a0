package eval

import (
	"regexp"
	"slices"
	"strings"

	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// parseRegex builds the regular expression of a parse pattern: string
// constants are literal (kind simple/relaxed) or regex (kind regex),
// columns become capture groups shaped by their type, * skips text.
func parseRegex(op *syntax.ParseOp) (string, []syntax.ParsePart) {
	var b strings.Builder
	b.WriteString("^")
	if op.Kind == "regex" && op.Flags != "" {
		b.WriteString("(?" + op.Flags + ")")
	} else {
		b.WriteString("(?s)")
	}
	var cols []syntax.ParsePart
	for i, p := range op.Parts {
		last := i == len(op.Parts)-1
		switch {
		case p.Star:
			if last {
				b.WriteString(".*")
			} else {
				b.WriteString(".*?")
			}
		case p.Column != "":
			cols = append(cols, p)
			switch p.Type {
			case table.Long, table.Int:
				b.WriteString(`(-?\d+)`)
			case table.Real:
				b.WriteString(`(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)`)
			case table.Bool:
				b.WriteString(`((?i:true|false))`)
			default:
				if last {
					b.WriteString("(.*)")
				} else {
					b.WriteString("(.*?)")
				}
			}
			if last {
				b.WriteString("$")
			}
		default:
			if op.Kind == "regex" {
				b.WriteString("(?:" + p.Literal + ")")
			} else {
				b.WriteString(regexp.QuoteMeta(p.Literal))
			}
		}
	}
	return b.String(), cols
}

func (r *runner) parse(rel *relation, op *syntax.ParseOp, e *env) (*relation, error) {
	if op.Kind == "regex" {
		for _, c := range op.Flags {
			if !strings.ContainsRune("imsU", c) {
				return nil, r.errorf(op.OpPos, "invalid parse regex flag %q", c)
			}
		}
	}
	pattern, parts := parseRegex(op)
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, r.errorf(op.OpPos, "invalid parse pattern: %v", err)
	}
	x, err := newScope(r, e, rel.cols).compile(op.X)
	if err != nil {
		return nil, err
	}
	cols := slices.Clone(rel.cols)
	idx := make([]int, len(parts))
	for i, p := range parts {
		j := columnIndex(cols, p.Column)
		if j < 0 {
			j = len(cols)
			cols = append(cols, table.Column{Name: p.Column})
		}
		cols[j].Type = p.Type
		idx[i] = j
	}
	alloc := rowAlloc{width: len(cols)}
	out := make([][]any, 0, len(rel.rows))
	for _, row := range rel.rows {
		if err := r.tick(); err != nil {
			return nil, err
		}
		m := re.FindStringSubmatch(toStr(x.fn(row)))
		if m == nil && op.Where {
			continue
		}
		nr := alloc.row()
		copy(nr, row)
		for i, p := range parts {
			var v any
			if m != nil && i+1 < len(m) {
				v = convertTo(p.Type, m[i+1])
			}
			if v == nil && p.Type == table.String {
				v = ""
			}
			nr[idx[i]] = v
		}
		out = append(out, nr)
	}
	return &relation{cols: cols, rows: out}, nil
}
