package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/store"
)

// The legacy store, as kdfir wrote it before the DuckDB store: the schema
// and the row of an event, from the SQLite store's store.go and insert.go.

const legacySchema = `
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

const legacyInsert = `INSERT INTO events (time, audit_id, stage, verb, username, groups, source_ip,
	user_agent, resource, subresource, namespace, name, api_group, request_uri, code, cluster,
	cluster_resource_id, principal_oid, raw) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`

func legacyArgs(e *audit.Event) []any {
	nullStr := func(f audit.Field, v string) any {
		if !e.Has(f) {
			return nil
		}
		return v
	}
	var groups, ip, code, oid any
	tm := store.LegacyNoTime
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
	key := e.AuditID // the legacy DedupKey
	if !e.Has(audit.FieldAuditID) || e.AuditID == "" {
		h := sha256.Sum256(e.Raw)
		key = "sha256:" + hex.EncodeToString(h[:16])
	}
	r := &e.ObjectRef
	return []any{tm, key, e.Stage,
		nullStr(audit.FieldVerb, e.Verb), nullStr(audit.FieldUsername, e.User.Username), groups, ip,
		nullStr(audit.FieldUserAgent, e.UserAgent), nullStr(audit.FieldResource, r.Resource),
		nullStr(audit.FieldSubresource, r.Subresource), nullStr(audit.FieldNamespace, r.Namespace),
		nullStr(audit.FieldName, r.Name), nullStr(audit.FieldAPIGroup, r.APIGroup),
		nullStr(audit.FieldRequestURI, e.RequestURI), code, e.Cluster, e.ClusterResourceID, oid, e.Raw}
}

// openLegacyWriter opens (creating) a legacy store at path, as the old
// store did: WAL mode, synchronous=FULL, 8 KiB pages. With noCheckpoint,
// committed transactions stay in the -wal file.
func openLegacyWriter(t testing.TB, path string, noCheckpoint bool) *sql.DB {
	t.Helper()
	dsn := "file:" + path + "?_txlock=immediate&_pragma=synchronous(FULL)"
	if noCheckpoint {
		dsn += "&_pragma=wal_autocheckpoint(0)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA page_size=8192", "PRAGMA journal_mode=WAL", legacySchema} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// insertLegacy adds events to a legacy store, in transactions of 1000, and
// returns how many it stored.
func insertLegacy(t testing.TB, db *sql.DB, evs []audit.Event) int {
	t.Helper()
	n := 0
	for len(evs) > 0 {
		k := min(1000, len(evs))
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs[:k] {
			res, err := tx.Exec(legacyInsert, legacyArgs(&evs[i])...)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := res.RowsAffected()
			n += int(a)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		evs = evs[k:]
	}
	return n
}

// writeLegacy makes a legacy store at path holding evs.
func writeLegacy(t testing.TB, path string, evs []audit.Event) int {
	t.Helper()
	db := openLegacyWriter(t, path, false)
	defer db.Close()
	return insertLegacy(t, db, evs)
}

// legacyEvents are the events of the migration tests: generated ones,
// some without an auditID, some without any time, some whose time is
// only the Azure envelope's (kept in the legacy time column, not in the
// event JSON), and the edge cases, over three clusters.
func legacyEvents(t testing.TB, n int) []audit.Event {
	t.Helper()
	var b bytes.Buffer
	if err := gen.New(7, gen.Options{}).WriteJSONL(&b, n); err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for l := range bytes.Lines(b.Bytes()) {
		lines = append(lines, bytes.TrimSpace(l))
	}
	var evs []audit.Event
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		switch i % 10 {
		case 3: // no auditID
			delete(m, "auditID")
		case 5: // no time at all, no auditID
			delete(m, "auditID")
			delete(m, "stageTimestamp")
			delete(m, "requestReceivedTimestamp")
		}
		raw, _ := json.Marshal(m)
		cluster := []string{"prod", "staging", ""}[i%3]
		if i%10 == 7 {
			// An AKS diagnostic record: the time is the envelope's.
			stage := m["stageTimestamp"]
			delete(m, "stageTimestamp")
			delete(m, "requestReceivedTimestamp")
			inner, _ := json.Marshal(m)
			rec, _ := json.Marshal(map[string]any{"category": "kube-audit", "time": stage,
				"resourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1",
				"properties": map[string]any{"log": string(inner)}})
			got, st, err := audit.DecodeAll(bytes.NewReader(rec), audit.Options{Cluster: "aks"})
			if err != nil || len(got) != 1 || got[0].Time.IsZero() {
				t.Fatalf("envelope record: %v %+v %d", err, st, len(got))
			}
			evs = append(evs, got[0])
			continue
		}
		e, err := audit.ParseEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		e.Cluster = cluster
		if cluster == "prod" {
			e.ClusterResourceID = "arn:aws:eks:eu-west-1:123456789012:cluster/prod"
		}
		evs = append(evs, e)
	}
	return append(evs, edgeEvents(t)...)
}

// legacyCounts counts the events of a legacy store by verb and user, and
// by cluster and time (to the microsecond).
func legacyCounts(t testing.TB, path string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return counts(t, db, `
		SELECT 'verb/user', coalesce(verb, '<null>') || '/' || coalesce(username, '<null>'), count(*) FROM events GROUP BY 2
		UNION ALL
		SELECT 'cluster/time', cluster || '/' || CASE WHEN time = -9223372036854775808 THEN 'none' ELSE CAST(time / 1000 AS TEXT) END, count(*) FROM events GROUP BY 2
		UNION ALL
		SELECT 'resource', coalesce(resource, '<null>') || '/' || coalesce(namespace, '<null>') || '/' || coalesce(code, '<null>'), count(*) FROM events GROUP BY 2`)
}

// storeCounts is legacyCounts over the DuckDB store.
func storeCounts(t testing.TB, s *store.Store) map[string]int64 {
	t.Helper()
	return counts(t, s.DB(), `
		SELECT 'verb/user', coalesce(verb, '<null>') || '/' || coalesce(username, '<null>'), count(*) FROM events GROUP BY 2
		UNION ALL
		SELECT 'cluster/time', cluster || '/' || coalesce(CAST(epoch_us(time) AS VARCHAR), 'none'), count(*) FROM events GROUP BY 2
		UNION ALL
		SELECT 'resource', coalesce(resource, '<null>') || '/' || coalesce(namespace, '<null>') || '/' || coalesce(CAST(code AS VARCHAR), '<null>'), count(*) FROM events GROUP BY 2`)
}

func counts(t testing.TB, db *sql.DB, q string) map[string]int64 {
	t.Helper()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var kind, key string
		var n int64
		if err := rows.Scan(&kind, &key, &n); err != nil {
			t.Fatal(err)
		}
		out[kind+" "+key] += n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// directStore is a store that ingested evs directly, to compare a
// migrated store with.
func directStore(t testing.TB, evs []audit.Event) *store.Store {
	t.Helper()
	s, _ := openTemp(t)
	if _, _, err := s.InsertBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrateLegacy(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, store.LegacyFileName)
	// Some events without time and auditID are the same event: the legacy
	// store keeps one.
	evs := dedup(legacyEvents(t, 3000))
	n := writeLegacy(t, legacy, evs)
	if n != len(evs) {
		t.Fatalf("legacy store took %d of %d events", n, len(evs))
	}
	var untimed, noID int
	for _, e := range evs {
		if e.Time.IsZero() {
			untimed++
		}
		if !e.Has(audit.FieldAuditID) {
			noID++
		}
	}
	if untimed < 100 || noID < 300 {
		t.Fatalf("the test data lacks events without time (%d) or auditID (%d)", untimed, noID)
	}
	wantCounts := legacyCounts(t, legacy)

	s, err := store.Open(ctx, filepath.Join(dir, store.FileName), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var calls [][2]int64
	st, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{BatchSize: 700, Progress: func(done, total int64) {
		calls = append(calls, [2]int64{done, total})
	}})
	if err != nil {
		t.Fatal(err)
	}
	total := int64(len(evs))
	if st.Events != total || st.Stored != total || st.Duplicates != 0 || st.Resumed {
		t.Errorf("stats %+v, want %d events, all stored", st, total)
	}
	// Progress: 0 first, then after each batch of 700, ending at total.
	if len(calls) != 1+int((total+699)/700) || calls[0] != [2]int64{0, total} || calls[len(calls)-1] != [2]int64{total, total} {
		t.Errorf("progress calls %v", calls)
	}
	if c, _ := s.Count(ctx); c != total {
		t.Errorf("count %d, want %d", c, total)
	}
	if diff := cmp.Diff(wantCounts, storeCounts(t, s)); diff != "" {
		t.Errorf("counts by verb/user, cluster/time and resource (-legacy +store):\n%s", diff)
	}
	// Every column of every event is what a direct ingest stores: the
	// events were rebuilt whole, with their cluster and envelope time.
	if diff := cmp.Diff(dumpEvents(t, directStore(t, evs)), dumpEvents(t, s)); diff != "" {
		t.Errorf("migrated events differ from ingested ones (-ingested +migrated):\n%s", diff)
	}
	// And the tables read the same.
	for _, name := range []string{audit.KubeAudit, audit.AKSAudit} {
		if diff := cmp.Diff(sortRows(t, scan(t, audit.NewBatchSource(evs), name)), sortRows(t, scan(t, s.Source(store.SourceOptions{}), name))); diff != "" {
			t.Errorf("%s after migration (-batch +store):\n%.3000s", name, diff)
		}
	}

	// The legacy file is renamed, not deleted, and opens as it was.
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy file still there: %v", err)
	}
	if st.RenamedTo != legacy+".migrated" {
		t.Errorf("renamed to %q", st.RenamedTo)
	}
	if diff := cmp.Diff(wantCounts, legacyCounts(t, st.RenamedTo)); diff != "" {
		t.Errorf("the renamed legacy store changed:\n%s", diff)
	}
	rec, ok, err := s.LegacyMigration(ctx)
	if err != nil || !ok || rec.Stored != total || rec.Source != legacy || rec.RenamedTo != st.RenamedTo || rec.Completed.IsZero() {
		t.Errorf("migration record %+v, %v, %v", rec, ok, err)
	}
	// Nothing more to do.
	if _, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{}); !errors.Is(err, store.ErrNoLegacy) {
		t.Errorf("second migration: %v, want ErrNoLegacy", err)
	}
}

// TestMigrateResume stops a migration after its first batch, then runs it
// again; then forgets the progress (as if the process died between a
// batch's commit and its record) and runs it once more.
func TestMigrateResume(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, store.LegacyFileName)
	evs := dedup(legacyEvents(t, 2000))
	total := int64(writeLegacy(t, legacy, evs))
	s, _ := openTemp(t)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err := s.MigrateLegacy(cctx, legacy, store.MigrateOptions{BatchSize: 500, Progress: func(done, _ int64) {
		if done > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled migration: %v", err)
	}
	if c, _ := s.Count(ctx); c != 500 {
		t.Fatalf("after the first batch: %d events, want 500", c)
	}
	if _, err := os.Stat(legacy); err != nil {
		t.Fatalf("legacy file moved by an unfinished migration: %v", err)
	}

	var first [2]int64
	st, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{BatchSize: 500, Progress: func(done, total int64) {
		if first == ([2]int64{}) {
			first = [2]int64{done, total}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Resumed || first != [2]int64{500, total} || st.Stored != total || st.Duplicates != 0 {
		t.Errorf("resumed: %+v, first progress %v", st, first)
	}
	if c, _ := s.Count(ctx); c != total {
		t.Errorf("after resuming: %d events, want %d", c, total)
	}

	// Put the file back and forget the progress: everything is read again
	// and nothing is stored twice.
	if err := os.Rename(st.RenamedTo, legacy); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, "DELETE FROM store_meta"); err != nil {
		t.Fatal(err)
	}
	st, err = s.MigrateLegacy(ctx, legacy, store.MigrateOptions{BatchSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if st.Resumed || st.Stored != 0 || st.Duplicates != total {
		t.Errorf("again from the start: %+v, want all %d duplicates", st, total)
	}
	if c, _ := s.Count(ctx); c != total {
		t.Errorf("after migrating twice: %d events, want %d", c, total)
	}
	if diff := cmp.Diff(dumpEvents(t, directStore(t, evs)), dumpEvents(t, s)); diff != "" {
		t.Errorf("migrated events differ from ingested ones (-ingested +migrated):\n%.3000s", diff)
	}
}

// TestMigrateKilled kills a migrating process (this test binary, run
// again) after its third batch, then resumes in this one.
func TestMigrateKilled(t *testing.T) {
	if dir := os.Getenv("KDFIR_MIGRATE_DIR"); dir != "" {
		s, err := store.Open(context.Background(), filepath.Join(dir, store.FileName), testOpts)
		if err != nil {
			os.Exit(3)
		}
		_, err = s.MigrateLegacy(context.Background(), filepath.Join(dir, store.LegacyFileName), store.MigrateOptions{
			BatchSize: 400,
			Progress: func(done, _ int64) {
				if done >= 1200 {
					fmt.Println("killed at", done)
					_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
					select {}
				}
			},
		})
		fmt.Println("not killed:", err)
		os.Exit(4)
	}
	dir := t.TempDir()
	legacy := filepath.Join(dir, store.LegacyFileName)
	evs := legacyEvents(t, 3000)
	total := int64(writeLegacy(t, legacy, evs))
	before, err := os.ReadFile(legacy)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateKilled$")
	cmd.Env = append(os.Environ(), "KDFIR_MIGRATE_DIR="+dir)
	out, _ := cmd.Output()
	if strings.TrimSpace(string(out)) != "killed at 1200" {
		t.Fatalf("child: %q", out)
	}
	if after, _ := os.ReadFile(legacy); !bytes.Equal(before, after) {
		t.Error("the killed migration changed the legacy file")
	}
	s, err := store.Open(ctx, filepath.Join(dir, store.FileName), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, _ := s.Count(ctx); c != 1200 {
		t.Errorf("after the kill: %d events, want the 1200 acknowledged", c)
	}
	st, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{BatchSize: 400})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Resumed || st.Stored != total {
		t.Errorf("resumed: %+v", st)
	}
	if c, _ := s.Count(ctx); c != total {
		t.Errorf("after resuming: %d events, want %d", c, total)
	}
	if diff := cmp.Diff(legacyCounts(t, st.RenamedTo), storeCounts(t, s)); diff != "" {
		t.Errorf("counts (-legacy +store):\n%s", diff)
	}
}

// TestMigrateWALLeftBehind migrates a legacy store whose last
// transactions are only in its -wal file, as an old kdfir that crashed
// leaves it, and renames the -wal with it.
func TestMigrateWALLeftBehind(t *testing.T) {
	src := filepath.Join(t.TempDir(), store.LegacyFileName)
	evs := legacyEvents(t, 1500)
	db := openLegacyWriter(t, src, true)
	defer db.Close()
	total := int64(insertLegacy(t, db, evs))
	// Copy the files while the writer holds them open: a crash image.
	dir := t.TempDir()
	legacy := filepath.Join(dir, store.LegacyFileName)
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(legacy+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(legacy + "-wal"); err != nil || fi.Size() < 100000 {
		t.Fatalf("no WAL to test with: %v", err)
	}
	s, _ := openTemp(t)
	st, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != total || st.Stored != total {
		t.Errorf("%+v, want %d events stored", st, total)
	}
	if _, err := os.Stat(st.RenamedTo + "-wal"); err != nil {
		t.Errorf("the WAL did not move with the database: %v", err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if _, err := os.Stat(legacy + suffix); err == nil {
			t.Errorf("%s%s left behind", legacy, suffix)
		}
	}
	if diff := cmp.Diff(legacyCounts(t, st.RenamedTo), storeCounts(t, s)); diff != "" {
		t.Errorf("counts (-legacy +store):\n%s", diff)
	}
}

// TestMigrateRenameTaken keeps an earlier events.db.migrated: the new one
// gets the next free name.
func TestMigrateRenameTaken(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, store.LegacyFileName)
	old := []byte("an earlier migration's file")
	if err := os.WriteFile(legacy+".migrated", old, 0o600); err != nil {
		t.Fatal(err)
	}
	writeLegacy(t, legacy, edgeEvents(t))
	s, _ := openTemp(t)
	st, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.RenamedTo != legacy+".migrated.2" || st.Stored != 4 {
		t.Errorf("%+v", st)
	}
	if b, _ := os.ReadFile(legacy + ".migrated"); !bytes.Equal(b, old) {
		t.Error("the earlier .migrated file was overwritten")
	}
}

// TestMigrateEmpty moves an empty legacy store (and a 0-byte file) aside.
func TestMigrateEmpty(t *testing.T) {
	for _, empty := range []bool{false, true} {
		dir := t.TempDir()
		legacy := filepath.Join(dir, store.LegacyFileName)
		if empty {
			if err := os.WriteFile(legacy, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			writeLegacy(t, legacy, nil)
		}
		s, _ := openTemp(t)
		st, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{})
		if err != nil || st.Events != 0 || st.RenamedTo == "" {
			t.Errorf("0-byte %v: %+v, %v", empty, st, err)
		}
		if _, err := os.Stat(st.RenamedTo); err != nil {
			t.Errorf("0-byte %v: %v", empty, err)
		}
	}
}

// TestMigrateBadLegacy: a file that is not a legacy store, or one that is
// damaged, gives a one-line error and changes nothing, neither the file
// nor the store.
func TestMigrateBadLegacy(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.db")
	writeLegacy(t, good, legacyEvents(t, 2000))
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	otherDB := filepath.Join(t.TempDir(), "other.db")
	func() {
		db, err := sql.Open("sqlite", otherDB)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('hello')"); err != nil {
			t.Fatal(err)
		}
	}()
	otherBytes, _ := os.ReadFile(otherDB)
	badRow := filepath.Join(t.TempDir(), "badrow.db")
	func() {
		db := openLegacyWriter(t, badRow, false)
		defer db.Close()
		insertLegacy(t, db, edgeEvents(t))
		if _, err := db.Exec(`INSERT INTO events (time, audit_id, stage, cluster, cluster_resource_id, raw) VALUES (1, 'x', '', '', '', '{"kind": 0')`); err != nil {
			t.Fatal(err)
		}
	}()
	badRowBytes, _ := os.ReadFile(badRow)

	cases := []struct {
		name    string
		content []byte
		want    string
	}{
		{"junk", bytes.Repeat([]byte("not sqlite "), 1000), "not a database"},
		{"truncated", goodBytes[:len(goodBytes)/2], "malformed"},
		{"header damaged", append(bytes.Repeat([]byte{0xff}, 100), goodBytes[100:]...), "not a database"},
		{"another database", otherBytes, "no events table"},
		{"a row that is not an event", badRowBytes, "row 5: invalid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			legacy := filepath.Join(dir, store.LegacyFileName)
			if err := os.WriteFile(legacy, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(legacy, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			s, _ := openTemp(t)
			_, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{BatchSize: 500})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") ||
				!strings.HasPrefix(err.Error(), "migrate "+legacy+": ") {
				t.Fatalf("error %q, want one line with %q", err, c.want)
			}
			fi, err := os.Stat(legacy)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(legacy); !bytes.Equal(b, c.content) || !fi.ModTime().Equal(mtime) {
				t.Error("the legacy file changed")
			}
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, []string{store.LegacyFileName}) {
				t.Errorf("directory holds %v", names)
			}
			if n, _ := s.Count(ctx); n != 0 {
				t.Errorf("the store took %d events", n)
			}
			if _, ok, err := s.LegacyMigration(ctx); ok || err != nil {
				t.Errorf("a migration was recorded (%v)", err)
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads any file")
		}
		dir := t.TempDir()
		legacy := filepath.Join(dir, store.LegacyFileName)
		if err := os.WriteFile(legacy, goodBytes, 0o000); err != nil {
			t.Fatal(err)
		}
		s, _ := openTemp(t)
		if _, err := s.MigrateLegacy(ctx, legacy, store.MigrateOptions{}); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("unreadable: %v", err)
		}
	})
}
