// Package store keeps audit events in an embedded SQLite database (WAL
// mode, modernc.org/sqlite) and serves them to the KQL evaluator as a
// table.Source, pushing the filters it can into SQL on indexed columns.
//
// Durability: every connection runs with synchronous=FULL, so a commit,
// and so every InsertBatch that returned without error (an acknowledged
// webhook batch), survives a crash or power loss. In WAL mode that is one
// fsync per transaction, which large batches make negligible, so there is
// no separate bulk mode. Checkpoints run in the background.
//
// Layout choices made for ingest speed (measured on 1M events, 2 cores):
//   - Duplicates are detected with UNIQUE(time, cluster, audit_id, stage):
//     the same (cluster, auditID, stage) re-ingested has the same time, and
//     a key that starts with time is appended to in order, where a key that
//     starts with a random auditID dirties one index page per row in every
//     transaction. The same index serves time ranges.
//   - namespace is indexed alone: an index on (namespace, name) is random
//     in name for the same reason and cost about a third of the throughput.
//     Name lookups use the namespace and time indexes.
//   - No NOT NULL constraints: with them SQLite keeps a statement journal
//     for every multi-row INSERT.
//   - 8 KiB pages: fewer WAL writes than 4 KiB, and 16 KiB pages fall
//     outside the SQLite allocator's small-object slots.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Store is an open event database. Its methods are safe for concurrent
// use; writes are serialised.
type Store struct {
	db     *sql.DB    // readers
	wdb    *sql.DB    // the single writer connection
	wmu    sync.Mutex // serialises write transactions
	closed bool       // under wmu

	insMany *sql.Stmt // insertRows rows
	insOne  *sql.Stmt

	ckptKick chan struct{} // wakes the checkpointer; closed by Close
	ckptDone chan struct{}
}

// checkpointer copies committed WAL pages into the database file after
// writes (PASSIVE: it never blocks readers or the writer).
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	for range s.ckptKick {
		_, _ = s.db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// kickCheckpoint asks for a checkpoint without waiting.
func (s *Store) kickCheckpoint() {
	select {
	case s.ckptKick <- struct{}{}:
	default:
	}
}

const schemaSQL = `
CREATE TABLE IF NOT EXISTS events (
	id                  INTEGER PRIMARY KEY,
	time                INTEGER, -- Event.Time in Unix ns, NoTime when unknown
	audit_id            TEXT,    -- auditID, or DedupKey's hash when absent
	stage               TEXT,    -- '' when absent
	verb                TEXT,    -- NULL when absent, likewise below
	username            TEXT,
	groups              TEXT,    -- JSON array
	source_ip           TEXT,    -- the first of sourceIPs
	user_agent          TEXT,
	resource            TEXT,
	subresource         TEXT,
	namespace           TEXT,
	name                TEXT,
	api_group           TEXT,
	request_uri         TEXT,
	code                INTEGER,
	cluster             TEXT,    -- '' when none
	cluster_resource_id TEXT,    -- '' when none
	principal_oid       TEXT,
	raw                 BLOB,    -- the event JSON, byte for byte
	UNIQUE (time, cluster, audit_id, stage)
);
CREATE INDEX IF NOT EXISTS events_verb_resource ON events(verb, resource, subresource);
CREATE INDEX IF NOT EXISTS events_namespace ON events(namespace);
CREATE INDEX IF NOT EXISTS events_username ON events(username);
CREATE INDEX IF NOT EXISTS events_principal ON events(principal_oid) WHERE principal_oid IS NOT NULL;
`

// PageSize is the page size of new databases. Large pages cut the number
// of WAL writes (one system call per page) for ~1 KB events.
const PageSize = 8192

// Open opens (creating if needed) the database file at path. The file's
// directory must exist.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("store: %s is a directory", path)
	}
	base := "file:" + uriPath(path) + "?_txlock=immediate&_busy_timeout=10000&_synchronous=FULL&_pragma=temp_store(memory)"
	s := &Store{}
	var err error
	// The writer never checkpoints itself (wal_autocheckpoint=0): the
	// checkpointer goroutine does, on another connection, so that copying
	// WAL pages into the database overlaps with the next inserts.
	if s.wdb, err = sql.Open("sqlite", base+"&_pragma=cache_size(-131072)&_pragma=wal_autocheckpoint(0)"); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.wdb.SetMaxOpenConns(1) // the one writer connection, with a large page cache
	if s.db, err = sql.Open("sqlite", base+"&_pragma=cache_size(-16384)"); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.db.SetMaxOpenConns(8)
	s.db.SetMaxIdleConns(4)
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.ckptKick = make(chan struct{}, 1)
	s.ckptDone = make(chan struct{})
	go s.checkpointer()
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	// page_size only takes effect on a new, empty database, before WAL.
	for _, q := range []string{"PRAGMA page_size=" + strconv.Itoa(PageSize), "PRAGMA journal_mode=WAL", schemaSQL} {
		if _, err := s.wdb.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %s, not wal", mode)
	}
	var err error
	if s.insMany, err = s.wdb.PrepareContext(ctx, insertSQL(insertRows)); err != nil {
		return err
	}
	s.insOne, err = s.wdb.PrepareContext(ctx, insertSQL(1))
	return err
}

// uriPath escapes the characters that SQLite URI file names reserve.
func uriPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// Close closes the database.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.ckptKick != nil {
		close(s.ckptKick)
		<-s.ckptDone
	}
	var errs []error
	for _, st := range []*sql.Stmt{s.insMany, s.insOne} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, db := range []*sql.DB{s.db, s.wdb} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
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
