// Package alertstore keeps alerts, and the detection engine's state (each
// scheduled rule's last window and the report ids that already raised an
// alert), in SQLite in the data directory.
package alertstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/journal"
)

// Store is an open alert database.
type Store struct {
	db *sql.DB
	mu sync.Mutex // serialises triage read-modify-writes
}

// ErrNotFound is returned for an unknown alert id.
var ErrNotFound = alert.ErrNotFound

// Open opens or creates the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open alerts %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open alerts %s: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open alerts %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// migrate adds the triage status column to a database from before it.
func migrate(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('alerts') WHERE name = 'status'`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := db.ExecContext(ctx, `ALTER TABLE alerts ADD COLUMN status TEXT NOT NULL DEFAULT 'new'`); err != nil {
			return err
		}
	}
	_, err := db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status, received)`)
	return err
}

const schema = `
CREATE TABLE IF NOT EXISTS alerts (
	id        TEXT PRIMARY KEY,
	received  INTEGER NOT NULL,
	source    TEXT NOT NULL,
	source_id TEXT NOT NULL,
	rule      TEXT NOT NULL,
	severity  TEXT NOT NULL,
	alert     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_source ON alerts (source, source_id, received);
CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received);
CREATE TABLE IF NOT EXISTS alert_reports (
	rule      TEXT NOT NULL,
	report_id TEXT NOT NULL,
	alert_id  TEXT NOT NULL,
	PRIMARY KEY (rule, report_id)
);
CREATE TABLE IF NOT EXISTS rule_state (
	rule     TEXT PRIMARY KEY,
	last_end INTEGER NOT NULL
);
`

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the store can be read.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Add stores a new alert, assigning its ID, and records its report ids
// against its rule.
func (s *Store) Add(ctx context.Context, a *alert.Alert) error {
	if a.ID == "" {
		a.ID = "alert-" + journal.NewID()
	}
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO alerts (id, received, source, source_id, rule, severity, alert) VALUES (?,?,?,?,?,?,?)`,
		a.ID, time.Now().UnixNano(), a.Source, a.SourceID, a.Rule, a.Severity, string(b)); err != nil {
		return fmt.Errorf("store alert: %w", err)
	}
	if a.Rule != "" {
		for _, r := range a.ReportIDs {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO alert_reports (rule, report_id, alert_id) VALUES (?,?,?)`, a.Rule, r, a.ID); err != nil {
				return fmt.Errorf("store alert: %w", err)
			}
		}
	}
	return tx.Commit()
}

// SetActions records the actions an alert's playbooks started.
func (s *Store) SetActions(ctx context.Context, id string, actions []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	a.Actions = actions
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE alerts SET alert = ? WHERE id = ?`, string(b), id)
	return err
}

// FindBySource returns the newest alert with this source and source id
// received since the given time, or nil.
func (s *Store) FindBySource(ctx context.Context, source, sourceID string, since time.Time) (*alert.Alert, error) {
	row := s.db.QueryRowContext(ctx, `SELECT alert FROM alerts WHERE source = ? AND source_id = ? AND received >= ? ORDER BY received DESC LIMIT 1`,
		source, sourceID, since.UnixNano())
	a, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return a, err
}

// Get returns one alert.
func (s *Store) Get(ctx context.Context, id string) (*alert.Alert, error) {
	a, err := scan(s.db.QueryRowContext(ctx, `SELECT alert FROM alerts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return a, err
}

// List returns the alerts f selects, newest first.
func (s *Store) List(ctx context.Context, f alert.Filter) ([]*alert.Alert, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	var where []string
	var args []any
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		where = append(where, col+" IN ("+strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",")+")")
		for _, v := range vals {
			args = append(args, v)
		}
	}
	in("status", f.Status)
	in("severity", f.Severity)
	in("source", f.Source)
	if f.Rule != "" {
		where, args = append(where, "rule = ?"), append(args, f.Rule)
	}
	if f.Cluster != "" {
		// The alert's own cluster, or any of its entities'.
		where = append(where, `(json_extract(alert, '$.cluster') = ? COLLATE NOCASE OR EXISTS (SELECT 1 FROM json_each(alert, '$.entities') WHERE json_extract(value, '$.cluster') = ? COLLATE NOCASE))`)
		args = append(args, f.Cluster, f.Cluster)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "received >= ?"), append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where, args = append(where, "received < ?"), append(args, f.Until.UnixNano())
	}
	q := `SELECT alert FROM alerts`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY received DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*alert.Alert
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(...any) error }

func scan(r scanner) (*alert.Alert, error) {
	var raw string
	if err := r.Scan(&raw); err != nil {
		return nil, err
	}
	var a alert.Alert
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		return nil, fmt.Errorf("alert record: %w", err)
	}
	return &a, nil
}

// LastRun is the end of a rule's last completed window.
func (s *Store) LastRun(ctx context.Context, rule string) (time.Time, error) {
	var ns int64
	err := s.db.QueryRowContext(ctx, `SELECT last_end FROM rule_state WHERE rule = ?`, rule).Scan(&ns)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, ns).UTC(), nil
}

// SetLastRun records the end of a rule's completed window.
func (s *Store) SetLastRun(ctx context.Context, rule string, end time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO rule_state (rule, last_end) VALUES (?, ?) ON CONFLICT (rule) DO UPDATE SET last_end = excluded.last_end`, rule, end.UnixNano())
	return err
}

// Seen reports which report ids already raised an alert for the rule.
func (s *Store) Seen(ctx context.Context, rule string, reportIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(reportIDs); start += 500 {
		end := min(start+500, len(reportIDs))
		chunk := reportIDs[start:end]
		args := []any{rule}
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.db.QueryContext(ctx, `SELECT report_id FROM alert_reports WHERE rule = ? AND report_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Triage applies an analyst's update to one alert, on behalf of by, and
// returns the alert as it is now.
func (s *Store) Triage(ctx context.Context, id string, u alert.TriageUpdate, by string) (*alert.Alert, error) {
	out, err := s.triage(ctx, []string{id}, u, by)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// CloseMany closes alerts with one classification and comment, all or
// none: an unknown id, or an update that does not apply to one of them,
// changes nothing.
func (s *Store) CloseMany(ctx context.Context, ids []string, classification, comment, by string) ([]*alert.Alert, error) {
	closed := alert.StatusClosed
	return s.triage(ctx, ids, alert.TriageUpdate{Status: &closed, Classification: &classification, Comment: comment}, by)
}

func (s *Store) triage(ctx context.Context, ids []string, u alert.TriageUpdate, by string) ([]*alert.Alert, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := time.Now().UTC()
	out := make([]*alert.Alert, 0, len(ids))
	for _, id := range ids {
		a, err := scan(tx.QueryRowContext(ctx, `SELECT alert FROM alerts WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return nil, err
		}
		if err := alert.ApplyTriage(a, u, by, now); err != nil {
			return nil, fmt.Errorf("alert %s: %w", id, err)
		}
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE alerts SET alert = ?, status = ? WHERE id = ?`, string(b), a.StatusOf(), id); err != nil {
			return nil, fmt.Errorf("triage alert %s: %w", id, err)
		}
		out = append(out, a)
	}
	return out, tx.Commit()
}
