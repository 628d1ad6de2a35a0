package cli

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
	"sigs.k8s.io/yaml"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/store"
)

// writeLegacyStore makes DATA_DIR/events.db as kdfir's SQLite store did
// (the columns the migration reads; the others were derived from raw)
// with n generated events of cluster prod and the exec fixture without a
// cluster, and returns its events.
func writeLegacyStore(t *testing.T, dir string, n int) []audit.Event {
	t.Helper()
	var b bytes.Buffer
	if err := gen.New(11, gen.Options{}).WriteJSONL(&b, n); err != nil {
		t.Fatal(err)
	}
	evs, _, err := audit.DecodeAll(&b, audit.Options{Cluster: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "data", "falco-k8s-audit", "exec_pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	more, _, err := audit.DecodeAll(bytes.NewReader(fixture), audit.Options{})
	if err != nil || len(more) != 1 {
		t.Fatalf("fixture: %v, %d events", err, len(more))
	}
	evs = append(evs, more...)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.LegacyFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA journal_mode=WAL; CREATE TABLE events (
		id INTEGER PRIMARY KEY, time INTEGER, audit_id TEXT, stage TEXT, verb TEXT, username TEXT,
		groups TEXT, source_ip TEXT, user_agent TEXT, resource TEXT, subresource TEXT, namespace TEXT,
		name TEXT, api_group TEXT, request_uri TEXT, code INTEGER, cluster TEXT,
		cluster_resource_id TEXT, principal_oid TEXT, raw BLOB, UNIQUE (time, cluster, audit_id, stage))`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		tm := store.LegacyNoTime
		if !e.Time.IsZero() {
			tm = e.Time.UnixNano()
		}
		if _, err := tx.Exec(`INSERT INTO events (time, audit_id, stage, verb, cluster, cluster_resource_id, raw) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			tm, store.DedupKey(&e), e.Stage, e.Verb, e.Cluster, e.ClusterResourceID, e.Raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestStoreMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	evs := writeLegacyStore(t, dir, 3000)
	legacy := filepath.Join(dir, store.LegacyFileName)

	code, out, stderr := runCLI(t, "--data-dir", dir, "store", "migrate", "-o", "json")
	if code != 0 {
		t.Fatalf("store migrate: exit %d, stderr %q", code, stderr)
	}
	var rep struct {
		Migrated                   bool
		Source, RenamedTo          string
		Events, Stored, Duplicates int64
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	n := int64(len(evs))
	if !rep.Migrated || rep.Source != legacy || rep.RenamedTo != legacy+".migrated" || rep.Events != n || rep.Stored != n || rep.Duplicates != 0 {
		t.Errorf("report %+v, want %d events migrated from %s", rep, n, legacy)
	}
	// Not a terminal: a progress line at 0% and at each further 10%.
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) < 2 || lines[0] != "migrating events.db: 0/3001 (0%)" || lines[len(lines)-1] != "migrating events.db: 3001/3001 (100%)" {
		t.Errorf("progress on stderr: %q", stderr)
	}
	if _, err := os.Stat(legacy + ".migrated"); err != nil {
		t.Error(err)
	}

	// Again: nothing to do, and it says what was done before.
	code, out, _ = runCLI(t, "--data-dir", dir, "store", "migrate")
	if code != 0 || !strings.HasPrefix(out, "nothing to migrate: there is no "+legacy) || !strings.Contains(out, "3001 events, now in "+legacy+".migrated") {
		t.Errorf("second migrate: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, "--data-dir", t.TempDir(), "store", "migrate", "-o", "json")
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Migrated || rep.Stored != 0 {
		t.Errorf("migrate with no legacy store: exit %d, %q", code, out)
	}
}

func TestStoreStatsCommand(t *testing.T) {
	dir := t.TempDir()
	evs := writeLegacyStore(t, dir, 2000)

	// The first command that opens the store migrates, and says so.
	code, out, stderr := runCLI(t, "--data-dir", dir, "store", "stats", "-o", "json")
	if code != 0 {
		t.Fatalf("store stats: exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stderr, "migrated 2001 events from events.db to the event store") || !strings.Contains(stderr, "events.db.migrated") {
		t.Errorf("no migration summary on stderr: %q", stderr)
	}
	var st store.Stats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	oldest, newest := evs[0].Time, evs[0].Time
	for _, e := range evs {
		if e.Time.Before(oldest) {
			oldest = e.Time
		}
		if e.Time.After(newest) {
			newest = e.Time
		}
	}
	if st.Events != 2001 || st.Untimed != 0 || len(st.Clusters) != 2 || st.Clusters[0] != (store.ClusterStats{Name: "prod", Events: 2000}) ||
		st.Clusters[1] != (store.ClusterStats{Name: "", Events: 1}) {
		t.Errorf("events %d, untimed %d, clusters %+v", st.Events, st.Untimed, st.Clusters)
	}
	if !st.Oldest.Equal(oldest.Truncate(time.Microsecond)) || !st.Newest.Equal(newest.Truncate(time.Microsecond)) {
		t.Errorf("time range %v – %v, want %v – %v", st.Oldest, st.Newest, oldest, newest)
	}
	if st.Path != filepath.Join(dir, store.FileName) || st.DiskBytes <= 0 || st.DataBytes <= 0 || st.Ratio <= 0 || len(st.Columns) == 0 {
		t.Errorf("sizes: %+v", st)
	}

	// The table and YAML say the same; no second migration.
	code, out, stderr = runCLI(t, "--data-dir", dir, "store", "stats")
	if code != 0 || stderr != "" {
		t.Fatalf("store stats: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"EVENTS        2001", "WITHOUT TIME  0", "CLUSTER  EVENTS", "prod     2000", "(none)   1", "COMPRESSION   "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "--data-dir", dir, "store", "stats", "-o", "yaml")
	var y store.Stats
	if code != 0 || yaml.Unmarshal([]byte(out), &y) != nil || y.Events != 2001 || y.DataBytes != st.DataBytes {
		t.Errorf("yaml: exit %d, %q", code, out)
	}
}

// TestStoreBadLegacy: a damaged events.db stops the command with a
// one-line error that says what to do, and is left as it was.
func TestStoreBadLegacy(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, store.LegacyFileName)
	junk := bytes.Repeat([]byte("not sqlite "), 1000)
	if err := os.WriteFile(legacy, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "--data-dir", dir, "store", "stats")
	if code != ExitFailure || out != "" || strings.Count(stderr, "\n") != 1 ||
		!strings.Contains(stderr, "Error: migrate "+legacy+": file is not a database") || !strings.Contains(stderr, "moved out of "+dir) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if b, _ := os.ReadFile(legacy); !bytes.Equal(b, junk) {
		t.Error("events.db changed")
	}
	if code, _, _ := runCLI(t, "--data-dir", dir, "store", "migrate"); code != ExitFailure {
		t.Errorf("store migrate: exit %d", code)
	}
	if code, _, stderr := runCLI(t, "--data-dir", dir, "store", "bogus"); code != ExitUsage {
		t.Errorf("store bogus: exit %d, %q", code, stderr)
	}
}
