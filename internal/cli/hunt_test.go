package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/store"
)

// huntStore ingests n generated events into a fresh data directory.
func huntStore(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	var b bytes.Buffer
	if err := gen.New(5, gen.Options{Level: gen.LevelRequestResponse}).WriteJSONL(&b, n); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(f, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "--data-dir", dir, "--cluster", "prod", "ingest", "--no-detect", f); code != 0 {
		t.Fatalf("ingest: exit %d: %s", code, stderr)
	}
	return dir
}

func TestHuntOutputs(t *testing.T) {
	dir := huntStore(t, 3000)
	q := `KubeAudit | summarize n = count() by verb | sort by verb asc`

	code, out, stderr := runCLI(t, "--data-dir", dir, "hunt", q, "-o", "json")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	total := 0.0
	for i, r := range rows {
		total += r["n"].(float64)
		if i > 0 && rows[i-1]["verb"].(string) > r["verb"].(string) {
			t.Errorf("rows out of order: %v", rows)
		}
	}
	if len(rows) < 3 || total != 3000 {
		t.Errorf("json: %d rows, %v events; want the 3000 events by verb", len(rows), total)
	}

	code, out, _ = runCLI(t, "--data-dir", dir, "hunt", q, "-o", "csv")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(recs) != len(rows)+1 || strings.Join(recs[0], ",") != "verb,n" {
		t.Errorf("csv: exit %d, %v, %q", code, err, out)
	}

	code, out, _ = runCLI(t, "--data-dir", dir, "hunt", q)
	if code != 0 || !strings.Contains(out, "verb") || !strings.Contains(out, "rows)") {
		t.Errorf("table: exit %d, %q", code, out)
	}

	// An empty result is still valid JSON.
	code, out, _ = runCLI(t, "--data-dir", dir, "hunt", `KubeAudit | where verb == "nope"`, "-o", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty json: exit %d, %q", code, out)
	}
}

// TestHuntBesideAReader: hunts and store stats open the store read-only,
// so they run while another process reads it; an ingest, a writer, is
// refused with one line that says why.
func TestHuntBesideAReader(t *testing.T) {
	dir := huntStore(t, 300)
	release := holdStore(t, filepath.Join(dir, store.FileName))
	defer release()
	code, out, stderr := runCLI(t, "--data-dir", dir, "-o", "csv", "hunt", "KubeAudit | count")
	if code != 0 || out != "Count\n300\n" {
		t.Errorf("hunt: exit %d, %q, stderr %q", code, out, stderr)
	}
	if code, out, stderr := runCLI(t, "--data-dir", dir, "store", "stats"); code != 0 || !strings.Contains(out, "EVENTS        300") {
		t.Errorf("store stats: exit %d, %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = runCLI(t, "--data-dir", dir, "ingest", "--no-detect", filepath.Join(dir, "audit.jsonl"))
	if code != ExitFailure || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "is in use by another process") {
		t.Errorf("ingest beside a reader: exit %d, stderr %q", code, stderr)
	}
}

func TestHuntExplain(t *testing.T) {
	dir := huntStore(t, 200)
	code, out, stderr := runCLI(t, "--data-dir", dir, "hunt", "--explain",
		`KubeAudit | where verb == "create" | extend d = url_decode(requestURI) | project d`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"-- DuckDB SQL", "FROM events", "then in the evaluator", "url_decode", "| extend d = url_decode"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "--data-dir", dir, "hunt", "--explain", `KubeAudit | summarize count() by verb`)
	if code != 0 || strings.Contains(out, "evaluator") || !strings.Contains(out, "GROUP BY") {
		t.Errorf("a query that compiles entirely: exit %d\n%s", code, out)
	}
}

func TestHuntBadInput(t *testing.T) {
	dir := huntStore(t, 200)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"hunt", `KubeAudit | where verb = "x"`}, ExitFailure, "1:24: expected"},
		{[]string{"hunt", "--timeout", "1ns", `KubeAudit | summarize dcount(tostring(requestObject)) by verb`}, ExitFailure, "did not finish within --timeout 1ns"},
		{[]string{"hunt", "--timeout", "-1s", "KubeAudit"}, ExitUsage, "invalid --timeout"},
		{[]string{"--memory-limit", "lots", "hunt", "KubeAudit | count"}, ExitUsage, "invalid --memory-limit"},
		{[]string{"hunt", "-o", "yaml", "KubeAudit | count"}, ExitUsage, "table, json or csv"},
		{[]string{"hunt", "Nope | count"}, ExitFailure, "unknown table"},
	} {
		code, out, stderr := runCLI(t, append([]string{"--data-dir", dir}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and %q", tt.args, code, stderr, out, tt.code, tt.want)
		}
		if strings.Contains(stderr, "goroutine ") {
			t.Errorf("%v: a stack trace: %s", tt.args, stderr)
		}
	}
	// A memory limit that parses is used.
	if code, out, stderr := runCLI(t, "--data-dir", dir, "--memory-limit", "25%", "hunt", "KubeAudit | count", "-o", "json"); code != 0 || !strings.Contains(out, `"Count": 200`) {
		t.Errorf("--memory-limit 25%%: exit %d, %q %q", code, out, stderr)
	}
}
