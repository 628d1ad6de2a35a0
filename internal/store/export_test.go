package store

import (
	"context"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// RawEvents returns the stored raw events in insertion order.
func RawEvents(ctx context.Context, s *Store) ([][]byte, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT raw FROM events ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Pushed reports which of req's filters a scan translates to SQL.
func Pushed(req table.ScanRequest) []bool {
	_, _, used := (&source{}).query(req)
	return used
}
