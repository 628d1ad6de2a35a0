// Package journal is kdfir's durable record of every action it takes on a
// cluster: the intent, written before the change, with the prior state of
// every object the action will touch; the outcome, written after it; and
// any revert. It lives in SQLite (modernc.org/sqlite, WAL mode) in the data
// directory.
package journal

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Status is where an action stands.
type Status string

// Action statuses. An entry is written as Pending before the change is
// made; a Pending entry whose process is gone reads as Incomplete.
const (
	Pending    Status = "pending"
	Succeeded  Status = "succeeded"
	Failed     Status = "failed"
	Incomplete Status = "incomplete"
	// PendingApproval is used by playbooks for a step that waits for a
	// human to approve it.
	PendingApproval Status = "pending_approval"
	// Approved is a held step once approved; the action it ran is an
	// entry of its own, named in its result.
	Approved Status = "approved"
	// Rejected is a held step someone refused; it never runs.
	Rejected Status = "rejected"
)

// Object identifies a Kubernetes object.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

func (o Object) String() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

// Prior is the state of an object before the action changed it.
type Prior struct {
	Object Object `json:"object"`
	// State is the object as it was (JSON), or null when it did not exist.
	State json.RawMessage `json:"state,omitempty"`
}

// Change is one change the action made or will make, in words a responder
// reads ("label kdfir.io/quarantine=true added").
type Change struct {
	Object Object `json:"object"`
	Op     string `json:"op"` // create, patch, delete, evict, exec, upload
	Detail string `json:"detail"`
}

// Revert records the undoing of an action.
type Revert struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Status Status    `json:"status"`
	// Changes are what the revert did; LeftAlone names what it did not
	// touch because someone else changed it since.
	Changes   []Change `json:"changes,omitempty"`
	LeftAlone []string `json:"leftAlone,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// Entry is one action.
type Entry struct {
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Actor   string          `json:"actor"`
	Reason  string          `json:"reason,omitempty"`
	Cluster string          `json:"cluster"`
	Action  string          `json:"action"` // e.g. isolate-pod
	Target  string          `json:"target"` // e.g. shop/web-7f9
	Params  json.RawMessage `json:"params,omitempty"`
	// Prior holds the state before of every object the action changes.
	Prior []Prior `json:"prior,omitempty"`
	// Created lists the objects the action creates.
	Created []Object `json:"created,omitempty"`
	// Changes is the plan, then what was done.
	Changes  []Change        `json:"changes,omitempty"`
	Status   Status          `json:"status"`
	Finished time.Time       `json:"finished,omitzero"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Revert   *Revert         `json:"revert,omitempty"`
	// Parent links a step to the alert or playbook run that started it.
	Parent string `json:"parent,omitempty"`
}

// Journal is an open journal database.
type Journal struct {
	db *sql.DB
	// process distinguishes this process's Pending entries from those of a
	// process that died between intent and outcome.
	process string
}

// Open opens or creates the journal at path.
func Open(ctx context.Context, path string) (*Journal, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	return &Journal{db: db, process: NewID()}, nil
}

const schema = `
CREATE TABLE IF NOT EXISTS actions (
	id       TEXT PRIMARY KEY,
	time     INTEGER NOT NULL,
	action   TEXT NOT NULL,
	cluster  TEXT NOT NULL,
	target   TEXT NOT NULL,
	status   TEXT NOT NULL,
	reverted INTEGER NOT NULL DEFAULT 0,
	process  TEXT NOT NULL,
	parent   TEXT NOT NULL DEFAULT '',
	entry    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_target ON actions (cluster, action, target);
CREATE INDEX IF NOT EXISTS actions_time ON actions (time);
CREATE INDEX IF NOT EXISTS actions_parent ON actions (parent);
`

// Close closes the database.
func (j *Journal) Close() error { return j.db.Close() }

// Ping checks that the journal can be read.
func (j *Journal) Ping(ctx context.Context) error {
	var n int
	return j.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM actions LIMIT 1)`).Scan(&n)
}

// NewID returns a time-ordered, unique action id: 20261123T070000Z-1a2b3c4d.
func NewID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Begin writes an action's intent before any change is made. It fills in
// ID and Time when they are empty and sets the status to Pending, unless
// the entry already carries PendingApproval.
func (j *Journal) Begin(ctx context.Context, e *Entry) error {
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Status != PendingApproval {
		e.Status = Pending
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = j.db.ExecContext(ctx,
		`INSERT INTO actions (id, time, action, cluster, target, status, process, parent, entry) VALUES (?,?,?,?,?,?,?,?,?)`,
		e.ID, e.Time.UnixNano(), e.Action, e.Cluster, e.Target, string(e.Status), j.process, e.Parent, string(b))
	if err != nil {
		return fmt.Errorf("journal intent of %s: %w", e.Action, err)
	}
	return nil
}

// Update rewrites an entry (for example to add prior states learned during
// the action, or to record its outcome).
func (j *Journal) Update(ctx context.Context, e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	res, err := j.db.ExecContext(ctx,
		`UPDATE actions SET status = ?, reverted = ?, process = ?, entry = ? WHERE id = ?`,
		string(e.Status), e.Revert != nil && e.Revert.Status == Succeeded, j.process, string(b), e.ID)
	if err != nil {
		return fmt.Errorf("journal update of %s: %w", e.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("journal update: %w: %s", ErrNotFound, e.ID)
	}
	return nil
}

// ErrConflict is returned by Transition when the entry is no longer in
// the status the caller read.
var ErrConflict = errors.New("the action changed concurrently")

// Transition saves e, with its new status, only when its stored status is
// still from: of two callers that read the same entry, one wins and the
// other gets ErrConflict.
func (j *Journal) Transition(ctx context.Context, e *Entry, from Status) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	res, err := j.db.ExecContext(ctx, `UPDATE actions SET status = ?, process = ?, entry = ? WHERE id = ? AND status = ?`,
		string(e.Status), j.process, string(b), e.ID, string(from))
	if err != nil {
		return fmt.Errorf("journal update of %s: %w", e.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("action %s: %w", e.ID, ErrConflict)
	}
	return nil
}

// Finish records an action's outcome: Succeeded when err is nil, else
// Failed with the error.
func (j *Journal) Finish(ctx context.Context, e *Entry, result any, actionErr error) error {
	e.Finished = time.Now().UTC()
	e.Status = Succeeded
	e.Error = ""
	if actionErr != nil {
		e.Status = Failed
		e.Error = actionErr.Error()
	}
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			return err
		}
		e.Result = b
	}
	return j.Update(ctx, e)
}

// ErrNotFound is returned for an unknown action id.
var ErrNotFound = errors.New("no such action")

// Get returns one entry. A Pending entry written by another process that is
// no longer finishing it reads as Incomplete.
func (j *Journal) Get(ctx context.Context, id string) (*Entry, error) {
	row := j.db.QueryRowContext(ctx, `SELECT entry, process FROM actions WHERE id = ?`, id)
	e, err := j.scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e, err
}

type scanner interface{ Scan(dest ...any) error }

func (j *Journal) scan(s scanner) (*Entry, error) {
	var raw, process string
	if err := s.Scan(&raw, &process); err != nil {
		return nil, err
	}
	var e Entry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return nil, fmt.Errorf("journal entry: %w", err)
	}
	if e.Status == Pending && process != j.process {
		e.Status = Incomplete
	}
	return &e, nil
}

// Filter narrows List.
type Filter struct {
	Cluster string
	Action  string
	Target  string
	Parent  string
	Since   time.Time
	Limit   int // default 100
}

// List returns entries, newest first.
func (j *Journal) List(ctx context.Context, f Filter) ([]*Entry, error) {
	var where []string
	var args []any
	for _, c := range []struct {
		col, val string
	}{{"cluster", f.Cluster}, {"action", f.Action}, {"target", f.Target}, {"parent", f.Parent}} {
		if c.val != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.Since.UnixNano())
	}
	q := `SELECT entry, process FROM actions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += fmt.Sprintf(" ORDER BY time DESC, id DESC LIMIT %d", limit)
	rows, err := j.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	defer rows.Close()
	var out []*Entry
	for rows.Next() {
		e, err := j.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
