package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kdfir/kdfir/internal/audit"
)

// columns lists the events table's columns in order, for the appender.
var columns = []string{
	"time", "cluster", "cluster_resource_id", "dedup", "kind", "api_version", "level", "audit_id",
	"stage", "request_uri", "verb", "user_agent", "username", "principal_oid", "source_ip",
	"resource", "subresource", "namespace", "name", "api_group", "code", "request_received",
	"stage_timestamp", "user", "impersonated_user", "source_ips", "object_ref", "response_status",
	"request_object", "response_object", "annotations", "extra", "null_strs",
}

// DedupKey is the key that tells two copies of an event apart from two
// events, with the time, cluster and stage: the auditID, or for an event
// without one "sha256:" and a hash of its JSON.
func DedupKey(e *audit.Event) string {
	if e.Has(audit.FieldAuditID) && e.AuditID != "" {
		return e.AuditID
	}
	h := sha256.Sum256(e.Raw)
	return "sha256:" + hex.EncodeToString(h[:16])
}

// row returns the appender values of one event.
func row(e *audit.Event) []driver.Value {
	r := audit.Shred(e)
	v := make([]driver.Value, len(columns))
	v[0] = optTime(r.Time)
	v[1], v[2] = e.Cluster, e.ClusterResourceID
	if !e.Has(audit.FieldAuditID) || e.AuditID == "" {
		v[3] = DedupKey(e)
	}
	strs := []string{r.Kind, r.APIVersion, r.Level, r.AuditID, r.Stage, r.RequestURI, r.Verb, r.UserAgent}
	for i, s := range strs {
		if r.Strs&(1<<i) != 0 {
			v[4+i] = s
		}
	}
	hot := func(f audit.Field, s string) driver.Value {
		if e.Has(f) {
			return s
		}
		return nil
	}
	v[12] = hot(audit.FieldUsername, e.User.Username)
	if e.PrincipalOID != "" {
		v[13] = e.PrincipalOID
	}
	if len(e.SourceIPs) > 0 {
		v[14] = e.SourceIPs[0]
	}
	ref := &e.ObjectRef
	v[15], v[16] = hot(audit.FieldResource, ref.Resource), hot(audit.FieldSubresource, ref.Subresource)
	v[17], v[18] = hot(audit.FieldNamespace, ref.Namespace), hot(audit.FieldName, ref.Name)
	v[19] = hot(audit.FieldAPIGroup, ref.APIGroup)
	if e.Has(audit.FieldCode) {
		v[20] = e.Code
	}
	v[21], v[22] = optTime(r.RequestReceived), optTime(r.StageTimestamp)
	for i, b := range [][]byte{r.User, r.ImpersonatedUser, r.SourceIPs, r.ObjectRef, r.ResponseStatus,
		r.RequestObject, r.ResponseObject, r.Annotations, r.Extra} {
		if b != nil { // "null" too: RawEventData keeps a member whose value is null
			// The appender copies the bytes; b lives until it has.
			v[23+i] = unsafe.String(unsafe.SliceData(b), len(b))
		}
	}
	if r.NullStrs != 0 {
		v[32] = r.NullStrs
	}
	return v
}

func optTime(t time.Time) driver.Value {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// shredAll builds the rows of events on every core.
func shredAll(events []audit.Event) [][]driver.Value {
	rows := make([][]driver.Value, len(events))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(events)/256))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(events); i += workers {
				rows[i] = row(&events[i])
			}
		}()
	}
	wg.Wait()
	return rows
}

// stagingSQL makes an empty staging table for one batch. It is made anew
// each time: rows deleted from a DuckDB table keep their memory.
const stagingSQL = `CREATE OR REPLACE TEMP TABLE staging AS SELECT * FROM events LIMIT 0`

// insertSQL moves the staged rows that are not stored yet (and the first
// of any repeats within the batch) into events. %s restricts the stored
// events compared to the batch's time range, so that DuckDB reads only
// the row groups of that range.
const insertSQL = `
INSERT INTO events
SELECT s.* FROM staging s
WHERE NOT EXISTS (
	SELECT 1 FROM events e
	WHERE %s
	  AND e.time IS NOT DISTINCT FROM s.time AND e.cluster = s.cluster
	  AND e.stage IS NOT DISTINCT FROM s.stage
	  AND coalesce(e.dedup, e.audit_id) IS NOT DISTINCT FROM coalesce(s.dedup, s.audit_id))
QUALIFY row_number() OVER (PARTITION BY s.time, s.cluster, s.stage, coalesce(s.dedup, s.audit_id) ORDER BY s.rowid) = 1`

// InsertBatch stores events in one transaction, skipping those already
// stored (same time, cluster, audit id and stage, including repeats within
// the batch). It is durable when it returns without error.
//
// An event later than every stored event (most of them: audit logs arrive
// nearly in time order) cannot repeat a stored event, so its row goes
// straight into the table, with repeats within the batch dropped here.
// The others (an event whose stage ends before an earlier-sent one's, an
// event without a time, a batch sent again) go through a staging table
// and an anti-join against the stored events of their time range only.
func (s *Store) InsertBatch(ctx context.Context, events []audit.Event) (stored, duplicates int, err error) {
	if len(events) == 0 {
		return 0, 0, nil
	}
	return s.insertShredded(ctx, events, shredAll(events))
}

// insertShredded is InsertBatch with the events' rows already built
// (rows[i] is row(&events[i])).
func (s *Store) insertShredded(ctx context.Context, events []audit.Event, rows [][]driver.Value) (stored, duplicates int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	if s.ro {
		return 0, 0, errors.New("store: opened read-only")
	}
	var fresh, late []int
	var hi, lateLo, lateHi time.Time
	untimed := false
	for i := range events {
		t := events[i].Time.Truncate(time.Microsecond)
		switch {
		case t.IsZero():
			untimed = true
			late = append(late, i)
		case s.maxTime.IsZero() || t.After(s.maxTime):
			fresh = append(fresh, i)
			if t.After(hi) {
				hi = t
			}
		default:
			late = append(late, i)
			if lateLo.IsZero() || t.Before(lateLo) {
				lateLo = t
			}
			if t.After(lateHi) {
				lateHi = t
			}
		}
	}

	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: insert: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return 0, 0, fmt.Errorf("store: insert: %w", cleanErr(err))
	}
	committed := false
	defer func() {
		if !committed {
			conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // the error that got here is the one to report
		}
	}()
	if len(late) > 0 {
		n, err := s.insertLate(ctx, conn, pick(rows, late), lateLo, lateHi, untimed)
		if err != nil {
			return 0, 0, err
		}
		stored += n
	}
	if len(fresh) > 0 {
		kept := dropRepeats(events, fresh)
		if err := s.appendRows(ctx, conn, "", "events", pick(rows, kept)); err != nil {
			return 0, 0, fmt.Errorf("store: insert: %w", cleanErr(err))
		}
		stored += len(kept)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS staging") //nolint:errcheck // best effort; the next batch replaces it
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, 0, fmt.Errorf("store: insert: %w", cleanErr(err))
	}
	committed = true
	if hi.After(s.maxTime) {
		s.maxTime = hi
	}
	return stored, len(events) - stored, nil
}

// insertLate stores rows that may repeat stored events, in the open
// transaction on conn: through a staging table, anti-joined with the
// stored events between lo and hi (and those without a time, when
// untimed).
func (s *Store) insertLate(ctx context.Context, conn *sql.Conn, rows [][]driver.Value, lo, hi time.Time, untimed bool) (int, error) {
	var cond string
	switch {
	case lo.IsZero():
		cond = "e.time IS NULL"
	case untimed:
		cond = fmt.Sprintf("(e.time BETWEEN %s AND %s OR e.time IS NULL)", tsLit(lo), tsLit(hi))
	default:
		cond = fmt.Sprintf("e.time BETWEEN %s AND %s", tsLit(lo), tsLit(hi))
	}
	if _, err := conn.ExecContext(ctx, stagingSQL); err != nil {
		return 0, fmt.Errorf("store: insert: %w", cleanErr(err))
	}
	if err := s.appendRows(ctx, conn, "temp", "staging", rows); err != nil {
		return 0, fmt.Errorf("store: insert: stage: %w", cleanErr(err))
	}
	res, err := conn.ExecContext(ctx, fmt.Sprintf(insertSQL, cond))
	if err != nil {
		return 0, fmt.Errorf("store: insert: %w", cleanErr(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// pick returns rows[i] for each i in idx.
func pick(rows [][]driver.Value, idx []int) [][]driver.Value {
	out := make([][]driver.Value, len(idx))
	for j, i := range idx {
		out[j] = rows[i]
	}
	return out
}

// appendRows appends rows to a table in one transaction.
func (s *Store) appendRows(ctx context.Context, conn *sql.Conn, catalog, table string, rows [][]driver.Value) error {
	return conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppender(dc.(driver.Conn), catalog, "main", table)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := a.AppendRow(r...); err != nil {
				a.Close()
				return err
			}
		}
		return a.Close()
	})
}

// IdentityKey is what makes an event itself and not a copy: its time (to
// the microsecond, as the store keeps it), cluster, stage (absent is not
// "") and DedupKey. The store keeps one event per identity.
func IdentityKey(e *audit.Event) string {
	stage := "\x01" // absent, which SQL tells from ""
	if e.Has(audit.FieldStage) {
		stage = e.Stage
	}
	t := e.Time.Truncate(time.Microsecond)
	return fmt.Sprint(t.UnixMicro(), t.IsZero(), "\x00", e.Cluster, "\x00", DedupKey(e), "\x00", stage)
}

// dropRepeats returns the indexes in idx of the first of the events that
// share an identity.
func dropRepeats(events []audit.Event, idx []int) []int {
	seen := make(map[string]struct{}, len(idx))
	out := make([]int, 0, len(idx))
	for _, i := range idx {
		k := IdentityKey(&events[i])
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, i)
	}
	return out
}

// tsLit is a TIMESTAMP literal (microseconds, as DuckDB keeps them).
func tsLit(t time.Time) string {
	return "TIMESTAMP '" + t.UTC().Format("2006-01-02 15:04:05.999999") + "'"
}

// DeleteBefore deletes the events whose time is before t (events without
// a time are kept) and returns how many it deleted.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	res, err := s.db.ExecContext(ctx, "DELETE FROM events WHERE time < "+tsLit(t))
	if err != nil {
		return 0, fmt.Errorf("store: delete: %w", cleanErr(err))
	}
	return res.RowsAffected()
}
