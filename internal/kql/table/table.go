// Package table is the contract between the KQL evaluator and whatever holds
// the rows (the SQLite store, or an in-memory batch of events). It knows
// nothing about storage and nothing about KQL syntax.
package table

import "context"

// Type is a KQL scalar type.
type Type string

// The KQL scalar types a column may have.
const (
	Bool     Type = "bool"
	Long     Type = "long"
	Int      Type = "int"
	Real     Type = "real"
	String   Type = "string"
	DateTime Type = "datetime"
	TimeSpan Type = "timespan"
	Dynamic  Type = "dynamic"
)

// Column describes one column of a table.
type Column struct {
	Name string
	Type Type
}

// Values in a row are Go-native:
//
//	null      nil
//	bool      bool
//	long/int  int64
//	real      float64
//	string    string
//	datetime  time.Time (UTC)
//	timespan  time.Duration
//	dynamic   nil, bool, int64, float64, string, []any, map[string]any (recursively)
//
// A dynamic JSON number is an int64 when it is integral and a float64
// otherwise, as in Kusto.

// Op is a pushdown comparison.
type Op string

// The comparisons a source may apply. A filter compares the value at
// Column (and, for a dynamic column, at Path inside it) with Value.
const (
	Eq         Op = "=="         // case-sensitive equality
	EqFold     Op = "=~"         // case-insensitive equality (strings)
	Ne         Op = "!="         // case-sensitive inequality
	Lt         Op = "<"          // ordered comparisons, for numbers and datetimes
	Le         Op = "<="         //
	Gt         Op = ">"          //
	Ge         Op = ">="         //
	StartsWith Op = "startswith" // case-insensitive prefix, on the value as a string
	Has        Op = "has"        // case-insensitive term; a source may treat it as contains
	Contains   Op = "contains"   // case-insensitive substring
	In         Op = "in"         // Value is []any; case-sensitive
	IsNull     Op = "isnull"     // Value unused
	IsNotNull  Op = "isnotnull"  // Value unused
)

// Filter is one predicate the evaluator offers to a source.
type Filter struct {
	Column string   // a column of the table, e.g. "RawEventData" or "Timestamp"
	Path   []string // keys inside a dynamic column, e.g. ["ObjectRef", "resource"]; empty for the column itself
	Op     Op
	Value  any // a Go-native value as above
}

// ScanRequest asks a source for the rows of one table. Filters form a
// conjunction. A source may apply any subset of them, or none: the
// evaluator applies every predicate again to the rows it gets back, so
// pushdown only ever makes a scan cheaper, never changes a result.
type ScanRequest struct {
	Table   string
	Filters []Filter
	// Columns, when not nil, are the only columns the query reads: a
	// source may leave the others nil (and skip the work of filling them).
	Columns []string
}

// Rows iterates the rows of a scan. Row returns a slice aligned with the
// table's schema; it is only valid until the next call to Next.
type Rows interface {
	Next() bool
	Row() []any
	Err() error
	Close() error
}

// Source is anything the evaluator can read tables from.
type Source interface {
	// Schema returns the columns of a table, or an error naming the table
	// if it does not exist.
	Schema(ctx context.Context, table string) ([]Column, error)
	// Scan returns the rows of a table.
	Scan(ctx context.Context, req ScanRequest) (Rows, error)
}
