// Package sqlc compiles KQL queries (parsed by package syntax) to SQL.
//
// It translates the longest prefix of a query's pipeline that it can
// express with exactly the evaluator's semantics (package eval is the
// reference for Kusto's semantics), and hands back the rest, which the
// evaluator then runs over the rows that the SQL returns. Each pipe stage
// becomes a SELECT over the previous one, chained as common table
// expressions, so the SQL reads like the query.
//
// The package knows nothing about storage: a Catalog describes the tables
// as SQL expressions, and a Dialect holds what differs between SQL
// engines (DuckDB now; ClickHouse can follow).
package sqlc

import "github.com/kdfir/kdfir/internal/kql/table"

// Catalog describes the tables a query may read.
type Catalog interface {
	// Table returns a table by name; false when there is no such table.
	Table(name string) (*Table, bool)
	// Tables lists the table names, for error messages.
	Tables() []string
}

// Table is a KQL table defined over a SQL relation.
type Table struct {
	Name string
	// From is the SQL relation the column expressions read, e.g. "events".
	From string
	// Where, when set, is a SQL condition every row of the table meets
	// (e.g. a time window); the compiler adds it to the first stage.
	Where   string
	Columns []*Column
}

// Column is one column of a table: its KQL type and the SQL expression
// that computes it from Table.From.
//
// SQL values represent KQL values as follows: bool BOOLEAN, long and int
// BIGINT, real DOUBLE, string VARCHAR (never NULL), datetime TIMESTAMP,
// timespan BIGINT nanoseconds, dynamic JSON (SQL NULL for null and for a
// missing member). A dynamic column with StringRep set is VARCHAR instead:
// a string, or NULL.
type Column struct {
	Name      string
	Type      table.Type
	SQL       string
	StringRep bool
	// Fields, for a dynamic column, gives members that have an expression
	// of their own (typically a typed column the store keeps apart), so
	// that X.member reads it instead of parsing X.
	Fields map[string]*Column
	// FieldsRest, when set, is a JSON expression that holds the members
	// not in Fields, so that reading one never builds the whole value.
	FieldsRest string
	// Parsed, for a string column that holds JSON text, is the dynamic
	// value parse_json gives of it, with Fields of its own: so that
	// parse_json(Col).member reads a stored column, not the text.
	Parsed *Column
}
