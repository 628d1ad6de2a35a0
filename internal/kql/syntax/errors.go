package syntax

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in the query text. Line and Col are 1-based; Col counts
// characters (runes), not bytes. Offset is the byte offset.
type Pos struct {
	Offset int
	Line   int
	Col    int
}

// IsValid reports whether p was set.
func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is one problem found in a query, at a position.
type Error struct {
	Pos Pos
	Msg string
}

// Error returns "line:col: message".
func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg) }

// Warning is a non-fatal remark about a query, e.g. that typographic quotes
// were treated as plain quotes.
type Warning struct {
	Pos Pos
	Msg string
}

// String returns "line:col: message".
func (w Warning) String() string { return fmt.Sprintf("%d:%d: %s", w.Pos.Line, w.Pos.Col, w.Msg) }

// ErrorList is the error returned by Parse (and by the evaluator for
// semantic errors). It holds every error found, sorted by position, and the
// query text so that Error can show the offending lines.
type ErrorList struct {
	Errors []*Error
	Src    string
}

// Error returns every error, each as "line:col: message" followed by the
// query line and a caret under the column.
func (l *ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(FormatError(l.Src, e))
	}
	return b.String()
}

// Lines returns each error as a single "line:col: message" line, without
// the source context.
func (l *ErrorList) Lines() []string {
	out := make([]string, len(l.Errors))
	for i, e := range l.Errors {
		out[i] = e.Error()
	}
	return out
}

// Unwrap exposes the individual errors to errors.Is / errors.As.
func (l *ErrorList) Unwrap() []error {
	out := make([]error, len(l.Errors))
	for i, e := range l.Errors {
		out[i] = e
	}
	return out
}

// FormatError renders e as "line:col: message", then the query line and a
// caret under the column.
func FormatError(src string, e *Error) string {
	var b strings.Builder
	b.WriteString(e.Error())
	line, ok := sourceLine(src, e.Pos.Line)
	if !ok {
		return b.String()
	}
	b.WriteString("\n  ")
	b.WriteString(line)
	b.WriteString("\n  ")
	col := 1
	for _, r := range line {
		if col >= e.Pos.Col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		col++
	}
	for ; col < e.Pos.Col; col++ {
		b.WriteByte(' ')
	}
	b.WriteByte('^')
	return b.String()
}

func sourceLine(src string, n int) (string, bool) {
	if n < 1 {
		return "", false
	}
	for i := 1; i < n; i++ {
		j := strings.IndexByte(src, '\n')
		if j < 0 {
			return "", false
		}
		src = src[j+1:]
	}
	if j := strings.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	return strings.TrimRight(src, "\r"), true
}

// newErrorList sorts errs by position and drops duplicates at the same spot.
func newErrorList(src string, errs []*Error) *ErrorList {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Pos.Offset < errs[j].Pos.Offset })
	out := errs[:0]
	for _, e := range errs {
		if len(out) > 0 && out[len(out)-1].Pos.Offset == e.Pos.Offset {
			continue
		}
		out = append(out, e)
	}
	return &ErrorList{Errors: out, Src: src}
}

// NewError builds an ErrorList with a single error at pos; the evaluator
// uses it for semantic errors (unknown column, bad argument types...).
func NewError(src string, pos Pos, format string, args ...any) *ErrorList {
	return &ErrorList{Src: src, Errors: []*Error{{Pos: pos, Msg: fmt.Sprintf(format, args...)}}}
}
