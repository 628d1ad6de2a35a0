package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
)

const (
	insertCols = 19
	insertRows = 100 // rows per multi-row INSERT (1,900 parameters)
)

func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO events (time, audit_id, stage, verb, username, groups, source_ip,
	user_agent, resource, subresource, namespace, name, api_group, request_uri, code, cluster,
	cluster_resource_id, principal_oid, raw) VALUES `)
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", insertCols), ",") + ")"
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(" ON CONFLICT DO NOTHING")
	return b.String()
}

// NoTime is the time stored for an event without one.
const NoTime int64 = -1 << 63

// DedupKey is the audit_id stored for an event: its auditID, or for an
// event without one "sha256:" and a hash of its raw JSON, so that
// re-ingesting it is still recognised.
func DedupKey(e *audit.Event) string {
	if e.Has(audit.FieldAuditID) && e.AuditID != "" {
		return e.AuditID
	}
	h := sha256.Sum256(e.Raw)
	return "sha256:" + hex.EncodeToString(h[:16])
}

func nullStr(e *audit.Event, f audit.Field, v string) any {
	if !e.Has(f) {
		return nil
	}
	return v
}

// appendArgs appends the INSERT parameters of one event.
func appendArgs(args []any, e *audit.Event) []any {
	var groups, ip, code, oid any
	tm := NoTime
	if !e.Time.IsZero() {
		tm = e.Time.UnixNano()
	}
	if e.Has(audit.FieldGroups) {
		b, _ := json.Marshal(e.User.Groups)
		groups = string(b)
	}
	if len(e.SourceIPs) > 0 {
		ip = e.SourceIPs[0]
	}
	if e.Has(audit.FieldCode) {
		code = e.Code
	}
	if e.PrincipalOID != "" {
		oid = e.PrincipalOID
	}
	r := &e.ObjectRef
	return append(args,
		tm, DedupKey(e), e.Stage,
		nullStr(e, audit.FieldVerb, e.Verb),
		nullStr(e, audit.FieldUsername, e.User.Username),
		groups, ip,
		nullStr(e, audit.FieldUserAgent, e.UserAgent),
		nullStr(e, audit.FieldResource, r.Resource),
		nullStr(e, audit.FieldSubresource, r.Subresource),
		nullStr(e, audit.FieldNamespace, r.Namespace),
		nullStr(e, audit.FieldName, r.Name),
		nullStr(e, audit.FieldAPIGroup, r.APIGroup),
		nullStr(e, audit.FieldRequestURI, e.RequestURI),
		code, e.Cluster, e.ClusterResourceID, oid, e.Raw,
	)
}

// InsertBatch stores events in one transaction, skipping those already
// stored (same cluster, audit id and stage, including repeats within the
// batch). It is durable when it returns without error.
func (s *Store) InsertBatch(ctx context.Context, events []audit.Event) (stored, duplicates int, err error) {
	if len(events) == 0 {
		return 0, 0, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	many := tx.StmtContext(ctx, s.insMany)
	one := tx.StmtContext(ctx, s.insOne)
	args := make([]any, 0, insertCols*insertRows)
	n := int64(0)
	for i := 0; i < len(events); {
		stmt, k := many, insertRows
		if len(events)-i < insertRows {
			stmt, k = one, 1
		}
		args = args[:0]
		for j := i; j < i+k; j++ {
			args = appendArgs(args, &events[j])
		}
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			return 0, 0, fmt.Errorf("store: insert: %w", err)
		}
		a, _ := res.RowsAffected()
		n += a
		i += k
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("store: commit: %w", err)
	}
	s.kickCheckpoint()
	return int(n), len(events) - int(n), nil
}

// DeleteBefore deletes the events whose time is before t (events without
// a time are kept) and returns how many it deleted.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	ns, ok := unixNanos(t)
	if !ok {
		if t.Before(time.Unix(0, 0)) {
			return 0, nil
		}
		ns = 1<<63 - 1
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	res, err := s.wdb.ExecContext(ctx, "DELETE FROM events WHERE time < ? AND time <> ?", ns, NoTime)
	if err != nil {
		return 0, fmt.Errorf("store: delete: %w", err)
	}
	return res.RowsAffected()
}

// unixNanos converts t when it fits in int64 nanoseconds.
func unixNanos(t time.Time) (int64, bool) {
	if t.Before(time.Unix(0, -1<<63)) || t.After(time.Unix(0, 1<<63-1)) {
		return 0, false
	}
	return t.UnixNano(), true
}
