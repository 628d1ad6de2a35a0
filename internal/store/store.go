// Package store keeps audit events in an embedded DuckDB database (a
// columnar, compressed, vectorised engine) in the data directory, and runs
// SQL over them: the SQL that internal/kql/sqlc compiles from KQL, and the
// scans the KQL evaluator asks for through table.Source.
//
// Layout: one table, events, with a column per top-level member of the
// audit event (so a query reads only the members it uses, and
// requestObject and responseObject, most of the bytes, are read only by
// queries that look into them), the hot fields again as typed columns
// (verb, user, resource, namespace, name, code, ...), and the event time.
// Long JSON members are compressed with zstd. The table views KubeAudit,
// CloudAuditEvents and AKSAudit are SQL expressions over these columns
// (see catalog.go); the events are rebuilt from them, so nothing is kept
// twice.
//
// Durability: every InsertBatch is one transaction, and DuckDB syncs its
// write-ahead log on commit, so an acknowledged batch survives a crash.
//
// Memory: DuckDB's memory_limit bounds what a query holds; above it,
// aggregates, joins and sorts spill to a temporary directory beside the
// database, one for each open store (see spillDir).
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// FileName is the database's file name in the data directory.
const FileName = "events.duckdb"

// Options configure Open.
type Options struct {
	// MemoryLimit bounds the memory DuckDB uses, as DuckDB reads it
	// ("2GB", "512MiB"); empty means DefaultMemoryLimit.
	MemoryLimit string
	// Threads bounds DuckDB's worker threads; 0 means one per CPU.
	Threads int
	// ReadOnly opens the database for reading only; it must exist.
	ReadOnly bool
}

// Store is an open event database. Its methods are safe for concurrent
// use; writes are serialised.
type Store struct {
	path  string
	spill string // DuckDB's temp_directory, this store's own
	conn  *duckdb.Connector
	db    *sql.DB

	wmu     sync.Mutex // serialises writes
	closed  bool       // under wmu
	maxTime time.Time  // the latest stored event time, under wmu; zero for none
	ro      bool
}

const schemaSQL = `
CREATE TABLE IF NOT EXISTS events (
	time                TIMESTAMP,   -- Event.Time; NULL when unknown
	cluster             VARCHAR NOT NULL,
	cluster_resource_id VARCHAR NOT NULL,
	dedup               VARCHAR,     -- a hash of the event when it has no auditID
	kind                VARCHAR,     -- the string members as the views show them; NULL when absent
	api_version         VARCHAR,
	level               VARCHAR,
	audit_id            VARCHAR,
	stage               VARCHAR,
	request_uri         VARCHAR,
	verb                VARCHAR,
	user_agent          VARCHAR,
	username            VARCHAR,     -- user.username; NULL when absent, likewise below
	principal_oid       VARCHAR,
	source_ip           VARCHAR,     -- sourceIPs[0]
	resource            VARCHAR,     -- objectRef.*
	subresource         VARCHAR,
	namespace           VARCHAR,
	name                VARCHAR,
	api_group           VARCHAR,
	code                BIGINT,      -- responseStatus.code
	request_received    TIMESTAMP,   -- requestReceivedTimestamp, parsed
	stage_timestamp     TIMESTAMP,   -- stageTimestamp, parsed
	"user"              VARCHAR,     -- the JSON members as compact JSON text ('null' for null); NULL when absent
	impersonated_user   VARCHAR,
	source_ips          VARCHAR,
	object_ref          VARCHAR,
	response_status     VARCHAR,
	request_object      VARCHAR USING COMPRESSION zstd,
	response_object     VARCHAR USING COMPRESSION zstd,
	annotations         VARCHAR,
	extra               VARCHAR USING COMPRESSION zstd, -- other members, keyed as in RawEventData
	null_strs           UTINYINT     -- the string members (kind ... userAgent) present with a null value (audit.Record.NullStrs)
);
CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
`

// Open opens (creating if needed) the database file at path. The file's
// directory must exist. DuckDB spills to a directory of its own under
// path + ".tmp", removed by Close.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("store: %s is a directory", path)
	} else if err != nil && opts.ReadOnly {
		return nil, fmt.Errorf("store: %w", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	limit := opts.MemoryLimit
	if limit == "" {
		limit = DefaultMemoryLimit()
	}
	if err := validSize(limit); err != nil {
		return nil, fmt.Errorf("store: memory limit: %w", err)
	}
	spill := spillDir(path)
	settings := []string{
		"SET memory_limit = " + quote(limit),
		"SET temp_directory = " + quote(spill),
		"SET preserve_insertion_order = false",
		"SET enable_progress_bar = false",
		// Fold the write-ahead log into the file every 1GB of it. A
		// checkpoint's cost grows with the table (at 1M events, 2 to 6 s
		// each), so at DuckDB's 16MB, or 64MB, ingest spent most of its
		// time in them: 1M events took 101 s at 64MB and 57 s at 1GB, with
		// a lower peak RSS (753 MiB against 915) and a smaller file
		// (250 MiB against 332; fewer rewrites of half-full row groups).
		// The log's data is buffer-managed, so memory stays under
		// memory_limit. The cost: a crash leaves up to 1GB of log to
		// replay when the store is next opened.
		"SET checkpoint_threshold = '1GB'",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET TimeZone = 'UTC'",
	}
	if opts.Threads > 0 {
		settings = append(settings, fmt.Sprintf("SET threads = %d", opts.Threads))
	}
	// The file is attached to an in-memory database, so that its path is
	// a SQL string (any character goes), in the newest storage format
	// (zstd and dictionary-FSST string compression need it).
	attach := "ATTACH IF NOT EXISTS " + quote(path) + " AS ev (STORAGE_VERSION 'latest'"
	if opts.ReadOnly {
		attach += ", READ_ONLY"
	}
	settings = append(settings, attach+")", "USE ev")
	conn, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		for _, q := range settings {
			if _, err := execer.ExecContext(ctx, q, nil); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = os.RemoveAll(spill)
		return nil, openErr(path, err)
	}
	s := &Store{path: path, spill: spill, conn: conn, db: sql.OpenDB(conn), ro: opts.ReadOnly}
	if opts.ReadOnly {
		// The first connection attaches the file: a writer's lock on it
		// is reported here, not by the first query.
		if err := s.db.PingContext(ctx); err != nil {
			s.Close()
			return nil, openErr(path, err)
		}
	} else {
		if _, err := s.db.ExecContext(ctx, schemaSQL); err != nil {
			s.Close()
			return nil, openErr(path, err)
		}
		var max sql.NullTime
		if err := s.db.QueryRowContext(ctx, "SELECT max(time) FROM events").Scan(&max); err != nil {
			s.Close()
			return nil, openErr(path, err)
		}
		if max.Valid {
			s.maxTime = max.Time.UTC()
		}
	}
	return s, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// DB returns the database, for SQL that the store's own methods do not
// cover (the compiled queries of package hunt).
func (s *Store) DB() *sql.DB { return s.db }

// Close checkpoints and closes the database.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	errs := []error{s.db.Close(), s.conn.Close()}
	_ = os.RemoveAll(s.spill)
	_ = os.Remove(s.path + ".tmp") // only when no other process has the store open
	return errors.Join(errs...)
}

// ErrClosed is returned by writes to a closed Store.
var ErrClosed = errors.New("store: closed")

// Count returns the number of stored events.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n)
	return n, err
}

var lockHolderRE = regexp.MustCompile(`Conflicting lock is held in (.*?) \(PID (\d+)\)`)

// openErr explains why the database could not be opened, in one line.
func openErr(path string, err error) error {
	if m := lockHolderRE.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("store: %s is in use by another process (%s, PID %s); a process that writes the event store (kdfir ingest, kdfir serve) has it to itself, and any number of hunts can read it at once otherwise", path, filepath.Base(m[1]), m[2])
	}
	return fmt.Errorf("store: open %s: %w", path, cleanErr(err))
}

// quote quotes a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// cleanErr keeps the first line of a DuckDB error: the message, without
// the hints and the internal context it adds on later lines.
func cleanErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		return errors.New(strings.TrimSpace(msg[:i]))
	}
	return err
}
