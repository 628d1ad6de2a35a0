package eval

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// MemTable is an in-memory table.
type MemTable struct {
	Columns []table.Column
	Rows    [][]any
}

// MemSource is an in-memory table.Source: a map from table name to
// columns and rows. It ignores pushed-down filters (the evaluator applies
// them). Rows must hold the Go-native values of package table; AddTable
// and NewMemSource convert common alternatives (int, []string,
// map[string]string, RFC 3339 strings for datetimes...). A MemSource may
// be read by concurrent queries as long as nobody modifies it.
type MemSource struct {
	Tables map[string]*MemTable
}

// NewMemSource returns a source holding the given tables, with their
// values normalized.
func NewMemSource(tables map[string]*MemTable) *MemSource {
	m := &MemSource{Tables: map[string]*MemTable{}}
	for name, t := range tables {
		m.AddTable(name, t.Columns, t.Rows)
	}
	return m
}

// AddTable adds (or replaces) a table, normalizing its values to the
// column types. Rows shorter than the schema are padded with nulls.
func (m *MemSource) AddTable(name string, cols []table.Column, rows [][]any) {
	if m.Tables == nil {
		m.Tables = map[string]*MemTable{}
	}
	t := &MemTable{Columns: append([]table.Column(nil), cols...), Rows: make([][]any, 0, len(rows))}
	for _, row := range rows {
		t.Rows = append(t.Rows, normalizeRow(cols, row))
	}
	m.Tables[name] = t
}

// AppendRows adds rows to an existing table.
func (m *MemSource) AppendRows(name string, rows ...[]any) error {
	t, ok := m.Tables[name]
	if !ok {
		return fmt.Errorf("unknown table %q", name)
	}
	for _, row := range rows {
		t.Rows = append(t.Rows, normalizeRow(t.Columns, row))
	}
	return nil
}

func normalizeRow(cols []table.Column, row []any) []any {
	out := make([]any, len(cols))
	for i, c := range cols {
		if i < len(row) {
			out[i] = normalizeFor(c.Type, row[i])
		}
	}
	return out
}

// normalizeFor converts v to the canonical representation of type t.
func normalizeFor(t table.Type, v any) any {
	v = normalize(v)
	if v == nil {
		return nil
	}
	switch t {
	case table.Dynamic:
		return toDynamic(v)
	case table.DateTime:
		if tm, ok := v.(time.Time); ok {
			return tm.UTC()
		}
	}
	return convertTo(t, v)
}

// Names lists the tables, sorted.
func (m *MemSource) Names() []string {
	names := make([]string, 0, len(m.Tables))
	for n := range m.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Schema implements table.Source.
func (m *MemSource) Schema(ctx context.Context, name string) ([]table.Column, error) {
	t, ok := m.Tables[name]
	if !ok {
		return nil, fmt.Errorf("unknown table %q", name)
	}
	return t.Columns, nil
}

// Scan implements table.Source; it ignores req.Filters.
func (m *MemSource) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	t, ok := m.Tables[req.Table]
	if !ok {
		return nil, fmt.Errorf("unknown table %q", req.Table)
	}
	return &sliceRows{rows: t.Rows, i: -1}, nil
}

// sliceRows iterates a slice of rows.
type sliceRows struct {
	rows [][]any
	i    int
}

func (s *sliceRows) Next() bool {
	if s.i+1 >= len(s.rows) {
		s.i = len(s.rows)
		return false
	}
	s.i++
	return true
}

func (s *sliceRows) Row() []any          { return s.rows[s.i] }
func (s *sliceRows) RowsAreStable() bool { return true }
func (s *sliceRows) Err() error          { return nil }
func (s *sliceRows) Close() error        { return nil }
