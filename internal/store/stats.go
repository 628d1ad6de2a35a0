package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
)

// Stats describes the stored events and what they take on disk.
type Stats struct {
	Path     string         `json:"path"`
	Events   int64          `json:"events"`
	Clusters []ClusterStats `json:"clusters"` // most events first
	Oldest   time.Time      `json:"oldest,omitzero"`
	Newest   time.Time      `json:"newest,omitzero"`
	Untimed  int64          `json:"untimed"` // events without a time

	FileBytes int64 `json:"fileBytes"` // the database file
	WALBytes  int64 `json:"walBytes"`  // its write-ahead log (.wal), not yet checkpointed
	DiskBytes int64 `json:"diskBytes"` // both: what the events take on disk, compressed
	// DataBytes is the size of the events' column data uncompressed: the
	// bytes of every string (the JSON members as compact JSON text) plus
	// the fixed-size values (times, codes).
	DataBytes int64 `json:"dataBytes"`
	// Ratio is DataBytes / DiskBytes; 0 when the store is empty.
	Ratio   float64       `json:"compressionRatio"`
	Columns []ColumnStats `json:"columns"` // largest first
}

// ClusterStats counts one cluster's events ("" is events ingested
// without --cluster).
type ClusterStats struct {
	Name   string `json:"name"`
	Events int64  `json:"events"`
}

// ColumnStats is one column of the events table.
type ColumnStats struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	DataBytes   int64    `json:"dataBytes"`             // uncompressed
	Compression []string `json:"compression,omitempty"` // DuckDB's methods in the column's segments
}

// Stats counts the stored events, by cluster and over time, and measures
// the store on disk against the size of its data uncompressed. It reads
// every column, so it takes about as long as a query that reads them all.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Path: s.path, Clusters: []ClusterStats{}}
	fail := func(what string, err error) (Stats, error) {
		return Stats{}, fmt.Errorf("store: stats: %s: %w", what, cleanErr(err))
	}
	var oldest, newest *time.Time
	err := s.db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE time IS NULL), min(time), max(time) FROM events`).
		Scan(&st.Events, &st.Untimed, &oldest, &newest)
	if err != nil {
		return fail("count", err)
	}
	if oldest != nil {
		st.Oldest, st.Newest = oldest.UTC(), newest.UTC()
	}

	rows, err := s.db.QueryContext(ctx, `SELECT cluster, count(*) FROM events GROUP BY cluster ORDER BY count(*) DESC, cluster`)
	if err != nil {
		return fail("clusters", err)
	}
	for rows.Next() {
		var c ClusterStats
		if err := rows.Scan(&c.Name, &c.Events); err != nil {
			rows.Close()
			return fail("clusters", err)
		}
		st.Clusters = append(st.Clusters, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail("clusters", err)
	}

	// The columns and their types, from the catalog, so that a column
	// added to the schema is counted without a change here.
	rows, err = s.db.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
		WHERE schema_name = 'main' AND table_name = 'events' AND NOT internal ORDER BY column_index`)
	if err != nil {
		return fail("columns", err)
	}
	for rows.Next() {
		var c ColumnStats
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			rows.Close()
			return fail("columns", err)
		}
		st.Columns = append(st.Columns, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail("columns", err)
	}
	if len(st.Columns) == 0 {
		return fail("columns", errors.New("no events table"))
	}

	// Uncompressed: a string's bytes, a fixed-size value's width.
	sums := make([]string, len(st.Columns))
	for i, c := range st.Columns {
		id := `"` + strings.ReplaceAll(c.Name, `"`, `""`) + `"`
		if c.Type == "VARCHAR" {
			sums[i] = "coalesce(sum(strlen(" + id + ")), 0)"
		} else {
			sums[i] = fmt.Sprintf("count(%s) * %d", id, fixedWidth(c.Type))
		}
	}
	dest := make([]any, len(st.Columns))
	for i := range st.Columns {
		dest[i] = &st.Columns[i].DataBytes
	}
	if err := s.db.QueryRowContext(ctx, "SELECT "+strings.Join(sums, ", ")+" FROM events").Scan(dest...); err != nil {
		return fail("sizes", err)
	}
	for _, c := range st.Columns {
		st.DataBytes += c.DataBytes
	}

	// The compression of the persisted segments (data still in the WAL
	// has none yet).
	rows, err = s.db.QueryContext(ctx, `SELECT column_name, list(DISTINCT compression ORDER BY compression)
		FROM pragma_storage_info('events') WHERE segment_type <> 'VALIDITY' GROUP BY column_name`)
	if err != nil {
		return fail("storage info", err)
	}
	comp := map[string][]string{}
	for rows.Next() {
		var name string
		var list []any
		if err := rows.Scan(&name, &list); err != nil {
			rows.Close()
			return fail("storage info", err)
		}
		for _, v := range list {
			if m, ok := v.(string); ok {
				comp[name] = append(comp[name], m)
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail("storage info", err)
	}
	for i := range st.Columns {
		st.Columns[i].Compression = comp[st.Columns[i].Name]
	}
	sortColumns(st.Columns)

	if st.FileBytes, err = fileSize(s.path); err != nil {
		return fail("size", err)
	}
	if st.WALBytes, err = fileSize(s.path + ".wal"); err != nil {
		return fail("size", err)
	}
	st.DiskBytes = st.FileBytes + st.WALBytes
	if st.Events > 0 && st.DiskBytes > 0 {
		st.Ratio = float64(st.DataBytes) / float64(st.DiskBytes)
	}
	return st, nil
}

// fixedWidth is the width in bytes of a fixed-size DuckDB type.
func fixedWidth(typ string) int {
	switch typ {
	case "BOOLEAN", "TINYINT", "UTINYINT":
		return 1
	case "SMALLINT", "USMALLINT":
		return 2
	case "INTEGER", "UINTEGER", "FLOAT", "DATE":
		return 4
	case "HUGEINT", "UHUGEINT", "UUID", "INTERVAL":
		return 16
	}
	return 8 // BIGINT, DOUBLE, TIMESTAMP, ...
}

// sortColumns orders columns by size, largest first, then by name.
func sortColumns(cs []ColumnStats) {
	slices.SortFunc(cs, func(a, b ColumnStats) int {
		return cmp.Or(cmp.Compare(b.DataBytes, a.DataBytes), strings.Compare(a.Name, b.Name))
	})
}

// fileSize is the size of a file, 0 when it does not exist.
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
