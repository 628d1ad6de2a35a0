package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to read the legacy store

	"github.com/kdfir/kdfir/internal/audit"
)

// This file moves the events of the SQLite store of earlier versions
// (events.db in the data directory) into the DuckDB store.
//
// The legacy table is events(id INTEGER PRIMARY KEY, time INTEGER (Unix
// ns, LegacyNoTime when unknown), ..., cluster TEXT, cluster_resource_id
// TEXT, raw BLOB (the event JSON, byte for byte)). Every other column was
// derived from raw, so an event is rebuilt from raw, cluster,
// cluster_resource_id and, for an event whose JSON carries no time (the
// time came from an Azure record's envelope), the time column.
//
// Resuming: the rows are read in id order and inserted in batches, each
// with InsertBatch (one transaction, duplicates skipped). After each batch
// the last migrated id is recorded in store_meta, with a fingerprint of
// the legacy file (its first row), so that a migration that was stopped
// (killed, interrupted, failed) continues where it stopped when run
// again. A batch that was committed but not recorded is inserted again,
// and InsertBatch skips its events as duplicates: nothing is lost or
// stored twice. When every row is in, the legacy files are renamed
// (events.db → events.db.migrated, and likewise its -wal and -shm, so the
// renamed database still opens with SQLite); nothing is deleted.

// LegacyFileName is the file name of the SQLite store of earlier versions.
const LegacyFileName = "events.db"

// LegacyNoTime is the legacy time column's value for an event without a
// time.
const LegacyNoTime int64 = -1 << 63

// DefaultMigrateBatch is the number of events MigrateLegacy inserts per
// transaction.
const DefaultMigrateBatch = 20000

// legacyMetaKey is the store_meta key of the migration's progress.
const legacyMetaKey = "legacy_migration"

// ErrNoLegacy is returned by MigrateLegacy when there is no legacy file.
var ErrNoLegacy = errors.New("store: no legacy events.db to migrate")

// MigrateOptions configure MigrateLegacy.
type MigrateOptions struct {
	// BatchSize is the number of events per transaction; 0 means
	// DefaultMigrateBatch. Memory grows with it, not with the data.
	BatchSize int
	// BatchBytes bounds a batch's event JSON too, whichever bound comes
	// first; 0 means IngestBatchBytes.
	BatchBytes int
	// Progress, when not nil, is called before the first batch and after
	// each one with the rows migrated so far (including those of an
	// earlier, interrupted run) and the rows of the legacy file.
	Progress func(done, total int64)
}

// MigrateStats describes a migration.
type MigrateStats struct {
	Source     string        `json:"source"`             // the legacy file
	RenamedTo  string        `json:"renamedTo"`          // where it is now
	Events     int64         `json:"events"`             // rows of the legacy file
	Stored     int64         `json:"stored"`             // new events in the store, over all runs
	Duplicates int64         `json:"duplicates"`         // events the store already had, over all runs
	Resumed    bool          `json:"resumed,omitempty"`  // an earlier run had begun
	Duration   time.Duration `json:"-"`                  // this run
	Seconds    float64       `json:"seconds"`            // Duration, in seconds
	Completed  time.Time     `json:"completed,omitzero"` // when the migration finished
}

// legacyProgress is the value of the legacyMetaKey record (JSON).
type legacyProgress struct {
	Source      string    `json:"source"`
	Fingerprint string    `json:"fingerprint"` // legacyFingerprint of the file
	LastID      int64     `json:"lastID"`      // rows up to this id are stored
	Stored      int64     `json:"stored"`
	Duplicates  int64     `json:"duplicates"`
	Done        bool      `json:"done,omitempty"`
	RenamedTo   string    `json:"renamedTo,omitempty"`
	Completed   time.Time `json:"completed,omitzero"`
}

// MigrateLegacy copies every event of the legacy SQLite store at path
// into s, then renames path (and its -wal and -shm files) to
// path + ".migrated" (or ".migrated.2", ... when that name is taken). It
// returns ErrNoLegacy when path does not exist. The legacy file is opened
// read-only: whatever fails, it is left as it was. When it fails or is
// interrupted, calling it again continues where it stopped.
func (s *Store) MigrateLegacy(ctx context.Context, path string, opts MigrateOptions) (MigrateStats, error) {
	start := time.Now()
	st := MigrateStats{Source: path}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.finishRename(ctx, path); err != nil {
			return st, fmt.Errorf("migrate %s: %w", path, err)
		}
		return st, ErrNoLegacy
	}
	if err != nil {
		return st, fmt.Errorf("migrate %s: %w", path, err)
	}
	if fi.IsDir() {
		return st, fmt.Errorf("migrate %s: is a directory", path)
	}
	batch, batchBytes := opts.BatchSize, opts.BatchBytes
	if batch <= 0 {
		batch = DefaultMigrateBatch
	}
	if batchBytes <= 0 {
		batchBytes = IngestBatchBytes
	}
	fail := func(err error) (MigrateStats, error) {
		st.Duration = time.Since(start)
		st.Seconds = st.Duration.Seconds()
		if ctx.Err() != nil {
			// DuckDB and SQLite report an interrupt in their own words.
			return st, fmt.Errorf("migrate %s: interrupted: %w", path, ctx.Err())
		}
		return st, fmt.Errorf("migrate %s: %w", path, firstLine(err))
	}

	// SQLite makes the -wal and -shm files of a WAL database even for a
	// read-only connection; remove those it made, so that the directory
	// is left as it was found.
	var made []string
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(path + suffix); errors.Is(err, fs.ErrNotExist) {
			made = append(made, path+suffix)
		}
	}
	src, err := openLegacy(path)
	if err != nil {
		return fail(err)
	}
	closeSrc := func() error {
		err := src.Close()
		if len(made) == 2 {
			// Only when it made both: with a -wal of its own, there was no
			// other writer and it wrote nothing to it.
			if fi, serr := os.Stat(made[0]); serr == nil && fi.Size() == 0 {
				os.Remove(made[0])
				os.Remove(made[1])
			}
		}
		return err
	}
	defer closeSrc() //nolint:errcheck // closed below on success
	// One read transaction: a consistent snapshot of the file.
	tx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var tables int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'").Scan(&tables); err != nil {
		return fail(err)
	}
	var fp string
	switch {
	case tables == 1:
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&st.Events); err != nil {
			return fail(err)
		}
		if fp, err = legacyFingerprint(ctx, tx); err != nil {
			return fail(err)
		}
	case fi.Size() == 0:
		fp = "empty" // created, never written: nothing to move
	default:
		return fail(errors.New("not a kdfir event store (it has no events table)"))
	}
	prog, err := s.legacyProgress(ctx)
	if err != nil {
		return fail(err)
	}
	if prog.Fingerprint != fp {
		// Another file, or none migrated yet: start over. Events already
		// in the store (the same file migrated under another
		// fingerprint, say) are skipped as duplicates.
		prog = legacyProgress{Source: path, Fingerprint: fp}
	} else {
		st.Resumed = prog.LastID > 0
	}
	prog.Source = path
	var done int64
	if prog.LastID > 0 {
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE id <= ?", prog.LastID).Scan(&done); err != nil {
			return fail(err)
		}
	}
	if opts.Progress != nil {
		opts.Progress(done, st.Events)
	}

	// The next batch is read while one is inserted: reading and parsing
	// is a fair share of the work.
	type legacyBatch struct {
		events []audit.Event
		last   int64
		err    error
	}
	rctx, stopReading := context.WithCancel(ctx)
	batches := make(chan legacyBatch, 1)
	go func() {
		defer close(batches)
		after := prog.LastID
		for tables == 1 {
			events, last, err := readLegacyBatch(rctx, tx, after, batch, batchBytes, make([]audit.Event, 0, min(batch, 4096)))
			if len(events) == 0 && err == nil {
				return
			}
			select {
			case batches <- legacyBatch{events, last, err}:
			case <-rctx.Done():
				return
			}
			if err != nil {
				return
			}
			after = last
		}
	}()
	insertAll := func() error {
		for b := range batches {
			if b.err != nil {
				return b.err
			}
			n, d, err := s.InsertBatch(ctx, b.events)
			if err != nil {
				return err
			}
			prog.LastID = b.last
			prog.Stored += int64(n)
			prog.Duplicates += int64(d)
			if err := s.setLegacyProgress(ctx, prog); err != nil {
				return err
			}
			done += int64(len(b.events))
			if opts.Progress != nil {
				opts.Progress(done, st.Events)
			}
		}
		return ctx.Err() // the reader stops early only when cancelled
	}
	err = insertAll()
	stopReading()
	for range batches { //nolint:revive // wait for the reader to let go of tx
	}
	if err != nil {
		return fail(err)
	}
	if err := tx.Rollback(); err != nil {
		return fail(err)
	}
	if err := closeSrc(); err != nil {
		return fail(err)
	}

	// Everything is in: record it, then move the legacy files aside.
	if !prog.Done {
		prog.Done = true
		prog.Completed = time.Now().UTC()
	}
	if prog.RenamedTo, err = freeName(path + ".migrated"); err != nil {
		return fail(err)
	}
	if err := s.setLegacyProgress(ctx, prog); err != nil {
		return fail(err)
	}
	// The main file first: once it is gone, no later open migrates again.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(path+suffix, prog.RenamedTo+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
	}
	st.RenamedTo, st.Stored, st.Duplicates, st.Completed = prog.RenamedTo, prog.Stored, prog.Duplicates, prog.Completed
	st.Duration = time.Since(start)
	st.Seconds = st.Duration.Seconds()
	return st, nil
}

// finishRename moves the -wal and -shm files that a migration stopped
// between renames left behind, next to the renamed database they belong
// to.
func (s *Store) finishRename(ctx context.Context, path string) error {
	var left []string
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(path + suffix); err == nil {
			left = append(left, suffix)
		}
	}
	if len(left) == 0 {
		return nil
	}
	p, err := s.legacyProgress(ctx)
	if err != nil || !p.Done || p.RenamedTo == "" || p.Source != path {
		return err
	}
	if _, err := os.Stat(p.RenamedTo); err != nil {
		return nil // not ours to move
	}
	for _, suffix := range left {
		if _, err := os.Lstat(p.RenamedTo + suffix); err == nil {
			continue // never overwrite
		}
		if err := os.Rename(path+suffix, p.RenamedTo+suffix); err != nil {
			return err
		}
	}
	return nil
}

// LegacyMigration returns the record of the last migration of a legacy
// file into s; ok is false when there was none.
func (s *Store) LegacyMigration(ctx context.Context) (st MigrateStats, ok bool, err error) {
	p, err := s.legacyProgress(ctx)
	if err != nil || p.Fingerprint == "" {
		return MigrateStats{}, false, err
	}
	return MigrateStats{Source: p.Source, RenamedTo: p.RenamedTo, Stored: p.Stored, Duplicates: p.Duplicates,
		Events: p.Stored + p.Duplicates, Completed: p.Completed}, p.Done, nil
}

// openLegacy opens a SQLite file read-only, and checks that it is one.
func openLegacy(path string) (*sql.DB, error) {
	u := url.URL{Scheme: "file", Opaque: legacyURIPath(path), RawQuery: "mode=ro&_pragma=busy_timeout(10000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// legacyURIPath escapes the characters that SQLite URI file names reserve.
func legacyURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// legacyFingerprint identifies a legacy file by its first row, so that a
// record of progress is not applied to another file.
func legacyFingerprint(ctx context.Context, tx *sql.Tx) (string, error) {
	var id int64
	var raw []byte
	err := tx.QueryRowContext(ctx, "SELECT id, raw FROM events ORDER BY id LIMIT 1").Scan(&id, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return "empty", nil
	}
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(raw)
	return strconv.FormatInt(id, 10) + ":" + hex.EncodeToString(h[:16]), nil
}

// readLegacyBatch appends the events of up to n rows after id afterID to
// events, stopping early once they hold maxBytes of JSON, and returns them
// with the last row's id.
func readLegacyBatch(ctx context.Context, tx *sql.Tx, afterID int64, n, maxBytes int, events []audit.Event) ([]audit.Event, int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, time, cluster, cluster_resource_id, raw
		FROM events WHERE id > ? ORDER BY id LIMIT ?`, afterID, n)
	if err != nil {
		return events, 0, err
	}
	defer rows.Close()
	last, size := afterID, 0
	for size < maxBytes && rows.Next() {
		var id int64
		var tm sql.NullInt64
		var cluster, resID sql.NullString
		var raw []byte // Scan copies it
		if err := rows.Scan(&id, &tm, &cluster, &resID, &raw); err != nil {
			return events, 0, fmt.Errorf("row %d: %w", id, err)
		}
		e, err := audit.ParseEvent(raw)
		if err != nil {
			return events, 0, fmt.Errorf("row %d: %w", id, err)
		}
		e.Cluster, e.ClusterResourceID = cluster.String, resID.String
		if e.Time.IsZero() && tm.Valid && tm.Int64 != LegacyNoTime {
			e.Time = time.Unix(0, tm.Int64).UTC()
		}
		events = append(events, e)
		last, size = id, size+len(raw)
	}
	return events, last, rows.Err()
}

func (s *Store) legacyProgress(ctx context.Context) (legacyProgress, error) {
	var p legacyProgress
	var v string
	err := s.db.QueryRowContext(ctx, "SELECT value FROM store_meta WHERE key = ?", legacyMetaKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read migration progress: %w", cleanErr(err))
	}
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return legacyProgress{}, nil // unreadable: start over (duplicates are skipped)
	}
	return p, nil
}

func (s *Store) setLegacyProgress(ctx context.Context, p legacyProgress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.db.ExecContext(ctx, "INSERT OR REPLACE INTO store_meta (key, value) VALUES (?, ?)", legacyMetaKey, string(b)); err != nil {
		return fmt.Errorf("record migration progress: %w", cleanErr(err))
	}
	return nil
}

// freeName returns name, or name.2, name.3, ... : the first that is not
// taken (nor its -wal or -shm).
func freeName(name string) (string, error) {
	for i := 1; i < 1000; i++ {
		n := name
		if i > 1 {
			n = name + "." + strconv.Itoa(i)
		}
		taken := false
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if _, err := os.Lstat(n + suffix); err == nil {
				taken = true
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
		}
		if !taken {
			return n, nil
		}
	}
	return "", fmt.Errorf("no free name for %s", name)
}

// firstLine keeps the first line of an error's message.
func firstLine(err error) error {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		return errors.New(strings.TrimSpace(msg[:i]))
	}
	return err
}
