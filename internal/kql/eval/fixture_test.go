package eval

import "github.com/kdfir/kdfir/internal/kql/kqltest"

// testNow is Options.Now for every test, so that ago() is deterministic.
var testNow = kqltest.Now

// fixtureSource is the dataset of the golden tests (see package kqltest).
func fixtureSource() *MemSource {
	m := NewMemSource(nil)
	for name, t := range kqltest.Tables() {
		m.AddTable(name, t.Columns, t.Rows)
	}
	return m
}
