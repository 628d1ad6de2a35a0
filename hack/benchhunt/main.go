// Command benchhunt measures kdfir's ingest and hunting side by side with
// DuckDB on the same generated RequestResponse audit log, and prints a
// Markdown table per size against the targets. Run it with make bench-hunt.
//
// Every measured step is a fresh child process, timed from start to exit,
// with its peak RSS from getrusage: bin/kdfir for kdfir, and this program
// re-executed with a hidden subcommand for DuckDB:
//
//	benchhunt duckdb-load DB FILE       load FILE into table ev of DB
//	benchhunt duckdb-query DB OUT SQL   run SQL and write its rows to OUT as a JSON array
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/kdfir/kdfir/internal/audit/gen"
)

const (
	clusterName = "aks-prod"
	clusterID   = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod"
	// aliceOID is the Entra object id of one of the generator's people.
	aliceOID = "0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6"
	// maxObject is read_json's maximum_object_size: the largest event
	// the generator writes is under 20 KB, real ones can reach a few MB.
	maxObject = 64 << 20
)

func main() {
	sub := ""
	if len(os.Args) > 1 {
		sub = os.Args[1]
	}
	var err error
	switch sub {
	case "duckdb-load":
		err = duckLoad(os.Args[2:])
	case "duckdb-query":
		err = duckQuery(os.Args[2:])
	default:
		err = run(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchhunt:", err)
		os.Exit(1)
	}
}

// duckLoad is the DuckDB peer of kdfir ingest: read the JSON lines into a
// table, letting DuckDB infer the schema as a user would.
func duckLoad(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: benchhunt duckdb-load DB FILE")
	}
	db, err := sql.Open("duckdb", args[0])
	if err != nil {
		return err
	}
	defer db.Close()
	// sample_size=-1: with the default sample (the first 20,480 lines)
	// the inferred schema misses the keys that only rare events have
	// (a hostPath volume, a privileged securityContext), and the values
	// of such keys are silently dropped from the table.
	q := fmt.Sprintf(`CREATE TABLE ev AS SELECT * FROM read_json(%s, format='newline_delimited', maximum_object_size=%d, sample_size=-1)`, sqlString(args[1]), maxObject)
	if _, err := db.Exec(q); err != nil {
		return fmt.Errorf("load %s: %w", args[1], err)
	}
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM ev`).Scan(&n); err != nil {
		return err
	}
	fmt.Println(n)
	return db.Close()
}

// duckQuery runs one query and writes its rows with DuckDB's own JSON
// writer, as kdfir hunt -o json writes its own.
func duckQuery(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: benchhunt duckdb-query DB OUT SQL")
	}
	db, err := sql.Open("duckdb", args[0]+"?access_mode=read_only")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`SET TimeZone = 'UTC'`); err != nil {
		return err
	}
	if _, err := db.Exec(fmt.Sprintf(`COPY (%s) TO %s (FORMAT json, ARRAY true)`, args[2], sqlString(args[1]))); err != nil {
		return err
	}
	return db.Close()
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

type config struct {
	kdfir   string
	repo    string
	sizes   []int
	span    time.Duration
	seed    uint64
	runs    int
	memcap  int64 // bytes of address space per child process; 0 for none
	timeout time.Duration
	dir     string
	keep    bool
	end     time.Time
	self    string
}

func run(args []string) error {
	fl := flag.NewFlagSet("benchhunt", flag.ContinueOnError)
	var c config
	var sizes, memcap string
	fl.StringVar(&c.kdfir, "kdfir", "bin/kdfir", "the kdfir binary")
	fl.StringVar(&c.repo, "repo", ".", "the repository root (for internal/hunt/testdata/microsoft)")
	fl.StringVar(&sizes, "sizes", "200000,1000000", "event counts, comma-separated")
	fl.DurationVar(&c.span, "span", 7*24*time.Hour, "the time the events spread over, ending now")
	fl.Uint64Var(&c.seed, "seed", 42, "generator seed")
	fl.IntVar(&c.runs, "runs", 5, "runs of each query, kdfir's and DuckDB's taking turns (the median is reported)")
	fl.StringVar(&memcap, "memcap", "", "address-space cap for each child process, e.g. 12GiB (ulimit -v)")
	fl.DurationVar(&c.timeout, "timeout", 10*time.Minute, "timeout of each child process")
	fl.StringVar(&c.dir, "dir", "", "work directory (default: a new one under $TMPDIR)")
	fl.BoolVar(&c.keep, "keep", false, "keep the generated file and the stores")
	if err := fl.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
		if err != nil || n < 10 {
			return fmt.Errorf("invalid size %q", s)
		}
		c.sizes = append(c.sizes, n)
	}
	if memcap != "" {
		n, err := parseBytes(memcap)
		if err != nil {
			return fmt.Errorf("invalid -memcap: %w", err)
		}
		c.memcap = n
	}
	var err error
	if c.kdfir, err = filepath.Abs(c.kdfir); err != nil {
		return err
	}
	if _, err := os.Stat(c.kdfir); err != nil {
		return fmt.Errorf("kdfir binary: %w (run make build)", err)
	}
	if c.self, err = os.Executable(); err != nil {
		return err
	}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "bench-hunt-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	c.end = time.Now().UTC().Truncate(time.Minute)
	queries, err := loadQueries(c.repo, c.end)
	if err != nil {
		return err
	}
	report := filepath.Join(c.dir, "bench-hunt.md")
	var all strings.Builder
	fmt.Fprintf(&all, "# kdfir vs DuckDB\n\nkdfir %s; DuckDB via github.com/duckdb/duckdb-go/v2; %s\n", kdfirVersion(c.kdfir), machine())
	if c.memcap > 0 {
		fmt.Fprintf(&all, "address space capped at %s per process\n", human(c.memcap))
	}
	fmt.Print(all.String())
	for _, n := range c.sizes {
		md, err := c.benchSize(n, queries)
		if err != nil {
			return err
		}
		fmt.Print("\n" + md)
		all.WriteString("\n" + md)
		if err := os.WriteFile(report, []byte(all.String()), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\ntables written to %s\n", report)
	return nil
}

// query is one hunt, in KQL for kdfir and in SQL for DuckDB.
type query struct {
	name string
	kql  string
	sql  string
	sum  bool // the answers' numeric columns must add up to the same total
}

// loadQueries returns Microsoft's four Defender XDR queries (read from the
// hunt package's testdata, as the hunt tests use them) and five more, each
// with the SQL a DuckDB user would write for it.
//
// CloudAuditEvents is Defender XDR's table; in kdfir it is a view whose
// RawEventData holds the event with PascalCase top-level keys. DuckDB's
// table is the events as they are, from one AKS cluster, so the
// DataSource and AzureResourceId conditions, true of every event, have no
// SQL counterpart.
func loadQueries(repo string, end time.Time) ([]query, error) {
	start, stop := end.Add(-3*24*time.Hour), end.Add(-24*time.Hour)
	vars := strings.NewReplacer("{{OID}}", aliceOID, "{{CLUSTER_ID}}", clusterID,
		"{{START}}", start.Format(time.RFC3339), "{{END}}", stop.Format(time.RFC3339))
	ms := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(repo, "internal", "hunt", "testdata", "microsoft", name+".kql"))
		return vars.Replace(string(b)), err
	}
	qs := []query{
		{name: "MS 1: exec into ubuntu pods", sql: `
SELECT stageTimestamp AS Timestamp, verb AS OperationName, sourceIPs[1] AS IPAddress, userAgent AS UserAgent,
       objectRef.name AS PodName, objectRef.namespace AS PodNamespace, "user".username AS Username,
       url_decode(array_to_string(regexp_extract_all(requestURI, 'command=([^&]*)', 1), ' ')) AS ParsedCommand
FROM ev
WHERE verb = 'create' AND objectRef.resource = 'pods' AND objectRef.subresource = 'exec'
  AND responseStatus.code = 101 AND starts_with(objectRef.name, 'ubuntu')`},
		{name: "MS 2: a managed identity's activity", sql: `
SELECT * FROM ev WHERE "user".extra.oid[1] = '` + aliceOID + `'`},
		{name: "MS 3: kubectl creations in a window", sql: `
SELECT * FROM ev
WHERE stageTimestamp > TIMESTAMP '` + start.Format("2006-01-02 15:04:05") + `' AND stageTimestamp < TIMESTAMP '` + stop.Format("2006-01-02 15:04:05") + `'
  AND verb = 'create' AND userAgent ILIKE '%kubectl%'`},
		{name: "MS 4: privileged pods", sql: `
SELECT stageTimestamp AS Timestamp, auditID AS ReportId, verb AS OperationName, sourceIPs[1] AS IPAddress, userAgent AS UserAgent,
       requestObject.metadata.name AS PodName, objectRef.namespace AS PodNamespace, c.name AS ContainerName,
       "user".username AS Username
FROM ev, unnest(requestObject.spec.containers) AS t(c)
WHERE stageTimestamp > now() - INTERVAL 1 DAY AND verb = 'create'
  AND objectRef.resource = 'pods' AND objectRef.subresource IS NULL
  AND CAST(responseStatus.code AS VARCHAR) LIKE '20%' AND c.securityContext.privileged`},
	}
	for i, f := range []string{"1-exec-into-ubuntu-pods", "2-managed-identity", "3-kubectl-creations", "4-privileged-pods"} {
		q, err := ms(f)
		if err != nil {
			return nil, fmt.Errorf("microsoft query: %w (run from the repository root or give -repo)", err)
		}
		qs[i].kql = q
	}
	return append(qs,
		query{name: "count by user, verb", sum: true,
			kql: `KubeAudit | summarize count() by tostring(user.username), verb`,
			sql: `SELECT "user".username, verb, count(*) AS n FROM ev GROUP BY ALL`},
		query{name: `requestURI has "exec"`, sum: true,
			kql: `KubeAudit | where requestURI has "exec" | count`,
			sql: `SELECT count(*) AS n FROM ev WHERE requestURI ILIKE '%exec%'`},
		// requestObject is a STRUCT whose type is the union of every
		// object's keys, so its text (CAST AS VARCHAR, or to_json) names
		// hostPath, with a NULL, in every pod with a volume: the SQL
		// looks where the key can be.
		query{name: `requestObject contains "hostPath"`, sum: true,
			kql: `KubeAudit | where tostring(requestObject) contains "hostPath" | count`,
			sql: `SELECT count(*) AS n FROM ev WHERE len(list_filter(requestObject.spec.volumes, v -> v.hostPath IS NOT NULL)) > 0`},
		query{name: "dcount(name) by 1h", sum: true,
			kql: `KubeAudit | summarize dcount(tostring(objectRef.name)) by bin(stageTimestamp, 1h)`,
			sql: `SELECT time_bucket(INTERVAL 1 HOUR, stageTimestamp) AS t, count(DISTINCT coalesce(objectRef.name, '')) AS n FROM ev GROUP BY ALL`},
		query{name: "dcount(name) by 1d", sum: true,
			kql: `KubeAudit | summarize dcount(tostring(objectRef.name)) by bin(stageTimestamp, 1d)`,
			sql: `SELECT time_bucket(INTERVAL 1 DAY, stageTimestamp) AS t, count(DISTINCT coalesce(objectRef.name, '')) AS n FROM ev GROUP BY ALL`},
		query{name: "pod creations by user", sum: true,
			kql: `KubeAudit | where verb == "create" and objectRef.resource == "pods" | summarize count() by tostring(user.username)`,
			sql: `SELECT "user".username, count(*) AS n FROM ev WHERE verb = 'create' AND objectRef.resource = 'pods' GROUP BY ALL`},
	), nil
}

// result is one child process's outcome.
type result struct {
	wall   time.Duration
	rss    int64 // peak RSS, bytes
	err    string
	stdout []byte
}

// child runs a command as a fresh process under the memory cap and the
// timeout, with its stdout to outFile ("" to keep it in result.stdout).
func (c *config) child(outFile, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var cmd *exec.Cmd
	if c.memcap > 0 {
		sh := fmt.Sprintf(`ulimit -v %d && exec "$@"`, c.memcap/1024)
		cmd = exec.CommandContext(ctx, "sh", append([]string{"-c", sh, "sh", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.WaitDelay = 10 * time.Second
	var stdout bytes.Buffer
	if outFile != "" {
		f, err := os.Create(outFile)
		if err != nil {
			return result{err: err.Error()}
		}
		defer f.Close()
		cmd.Stdout = f
	} else {
		cmd.Stdout = &stdout
	}
	stderr := &capped{max: 64 << 10}
	cmd.Stderr = stderr
	t0 := time.Now()
	err := cmd.Run()
	r := result{wall: time.Since(t0), stdout: stdout.Bytes()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.rss = ru.Maxrss * 1024 // KiB on Linux
		}
	}
	if err != nil {
		r.err = firstLine(stderr.String())
		switch {
		case ctx.Err() != nil:
			r.err = fmt.Sprintf("timed out after %s", c.timeout)
		case r.err == "":
			r.err = err.Error()
		default:
			r.err += " (" + err.Error() + ")"
		}
	}
	return r
}

// capped keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "warning:") {
			return l
		}
	}
	return ""
}

// measured is the outcome of the runs of one step on one side.
type measured struct {
	wall time.Duration // median
	rss  int64         // largest
	err  string
	out  string // the answer file of the median run
}

// command is one side of a step: the program, its arguments, and the
// file it writes its answer to ("" when it names the file itself).
type command struct {
	out  string
	name string
	args []string
}

// alternate runs each side's command runs times, the sides taking turns
// (kdfir, DuckDB, kdfir, ...), so that the machine's drift over the step
// falls on both. Each side keeps its median wall time and largest RSS,
// and stops at its first failure; a side given no command is skipped.
func (c *config) alternate(runs int, sides ...*command) []measured {
	walls := make([][]time.Duration, len(sides))
	ms := make([]measured, len(sides))
	for i := 0; i < runs; i++ {
		for j, cmd := range sides {
			if cmd == nil || ms[j].err != "" {
				continue
			}
			r := c.child(cmd.out, cmd.name, cmd.args...)
			ms[j].rss = max(ms[j].rss, r.rss)
			if r.err != "" {
				ms[j].err, ms[j].wall = r.err, r.wall
				continue
			}
			walls[j] = append(walls[j], r.wall)
		}
	}
	for j, cmd := range sides {
		if cmd == nil || ms[j].err != "" {
			continue
		}
		slices.Sort(walls[j])
		ms[j].wall, ms[j].out = walls[j][len(walls[j])/2], cmd.out
	}
	return ms
}

type row struct {
	step, kdfirTime, kdfirRSS, duckTime, duckRSS, ratio, answers, target, result string
}

func (c *config) benchSize(n int, queries []query) (string, error) {
	dir := filepath.Join(c.dir, strconv.Itoa(n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if !c.keep {
		defer func() {
			for _, f := range []string{"audit.jsonl", "kdfir", "kdfir-nrt", "duck.db", "duck.db.wal", "out"} {
				os.RemoveAll(filepath.Join(dir, f))
			}
		}()
	}
	jsonl := filepath.Join(dir, "audit.jsonl")
	fmt.Fprintf(os.Stderr, "\n== %d events: generating %s\n", n, jsonl)
	t0 := time.Now()
	size, median, err := c.generate(jsonl, n)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "   %s, median event %d B, average %d B (%.1f s)\n", human(size), median, size/int64(n), time.Since(t0).Seconds())

	var rows []row
	var warnings []string
	d1, d2, duck := filepath.Join(dir, "kdfir"), filepath.Join(dir, "kdfir-nrt"), filepath.Join(dir, "duck.db")
	outDir := filepath.Join(dir, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	small := n <= 200_000

	// Ingest.
	step := func(label string) { fmt.Fprintf(os.Stderr, "   %s ...\n", label) }
	step("kdfir ingest --no-detect")
	k1 := c.ingest(d1, jsonl, n, true)
	step("kdfir ingest (NRT pack)")
	k2 := c.ingest(d2, jsonl, n, false)
	os.RemoveAll(d2)
	step("DuckDB read_json")
	dl := c.duckLoad(duck, jsonl, n)
	rate := func(m measured) float64 { return float64(n) / m.wall.Seconds() }
	r := row{step: "ingest (no rules)", target: "faster than DuckDB read_json; RSS < 1 GiB"}
	fill(&r, k1, dl)
	if k1.err == "" {
		r.kdfirTime += fmt.Sprintf(" (%s ev/s)", thousands(rate(k1)))
		r.result = verdict(check{"time", dl.err != "" || k1.wall < dl.wall}, check{"RSS", k1.rss < 1<<30}) + noPeer(dl)
	}
	if dl.err == "" {
		r.duckTime += fmt.Sprintf(" (%s ev/s)", thousands(rate(dl)))
	}
	rows = append(rows, r)
	r = row{step: "ingest (NRT pack)", target: "≥ 50,000 ev/s; RSS < 1 GiB"}
	fill(&r, k2, dl)
	if k2.err == "" {
		r.kdfirTime += fmt.Sprintf(" (%s ev/s)", thousands(rate(k2)))
		r.result = verdict(check{"rate", rate(k2) >= 50_000}, check{"RSS", k2.rss < 1<<30})
	}
	if dl.err == "" {
		r.duckTime += fmt.Sprintf(" (%s ev/s)", thousands(rate(dl)))
	}
	rows = append(rows, r)

	// Hunts.
	for i, q := range queries {
		step("query " + q.name)
		kout, dout := filepath.Join(outDir, fmt.Sprintf("q%d-kdfir.json", i+1)), filepath.Join(outDir, fmt.Sprintf("q%d-duckdb.json", i+1))
		var kc, dc *command
		if k1.err == "" {
			kc = &command{out: kout, name: c.kdfir, args: []string{"--data-dir", d1, "hunt", q.kql, "-o", "json"}}
		}
		if dl.err == "" {
			dc = &command{name: c.self, args: []string{"duckdb-query", duck, dout, q.sql}}
		}
		ms := c.alternate(c.runs, kc, dc)
		km, dm := ms[0], ms[1]
		if kc == nil {
			km.err = "no store: ingest failed"
		}
		if dc == nil {
			dm.err = "no table: load failed"
		}
		dm.out = dout
		r := row{step: q.name, target: "≤ 1.5× DuckDB; RSS < 1 GiB"}
		if small {
			r.target = "≤ 1.5× DuckDB; < 1 s; RSS < 1 GiB"
		}
		fill(&r, km, dm)
		if km.err == "" && dm.err == "" {
			ka, kerr := summarize(kout)
			da, derr := summarize(dout)
			switch {
			case kerr != nil || derr != nil:
				r.answers = "?"
				warnings = append(warnings, fmt.Sprintf("%s: cannot read the answers: %v %v", q.name, kerr, derr))
			case ka.rows != da.rows || (q.sum && ka.sum != da.sum):
				r.answers = fmt.Sprintf("⚠ %s ≠ %s", ka.show(q.sum), da.show(q.sum))
				warnings = append(warnings, fmt.Sprintf("%s: kdfir answered %s, DuckDB %s", q.name, ka.show(q.sum), da.show(q.sum)))
			default:
				r.answers = "= " + ka.show(q.sum)
			}
		}
		if km.err == "" {
			r.result = verdict(check{"ratio", dm.err != "" || float64(km.wall) <= 1.5*float64(dm.wall)},
				check{"1 s", !small || km.wall < time.Second}, check{"RSS", km.rss < 1<<30}) + noPeer(dm)
		}
		rows = append(rows, r)
	}

	// Store size.
	ks, kerr := storeSize(d1)
	ds, derr := diskUsage(duck)
	r = row{step: "store size", target: "≤ 2× DuckDB", kdfirTime: "—", duckTime: "—"}
	if kerr == nil && k1.err == "" {
		r.kdfirTime = human(ks)
	}
	if derr == nil && dl.err == "" {
		r.duckTime = human(ds)
	}
	if kerr == nil && derr == nil && k1.err == "" && dl.err == "" && ds > 0 {
		r.ratio = fmt.Sprintf("%.2f", float64(ks)/float64(ds))
		r.result = verdict(check{"size", ks <= 2*ds})
	}
	r.answers = "JSON " + human(size)
	rows = append(rows, r)

	var b strings.Builder
	fmt.Fprintf(&b, "## %s events\n\n%s of JSON lines (RequestResponse level, median event %d B, average %d B) over %s, seed %d.\n\n",
		thousands(float64(n)), human(size), median, size/int64(n), span(c.span), c.seed)
	b.WriteString("| step | kdfir time | kdfir peak RSS | DuckDB time | DuckDB peak RSS | kdfir/DuckDB | answers | target | result |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.step, r.kdfirTime, r.kdfirRSS, r.duckTime, r.duckRSS, r.ratio, r.answers, r.target, r.result)
	}
	for _, w := range warnings {
		fmt.Fprintf(&b, "| ⚠ %s | | | | | | | | |\n", mdEscape(w))
	}
	fmt.Fprintf(&b, "\nQuery times are medians of %d runs, kdfir's and DuckDB's taking turns; ingest times are of one run; each run is a fresh process, and peak RSS is the largest of the runs.\n", c.runs)
	return b.String(), nil
}

// fill writes the times, RSS and ratio of one row; a failed side shows
// FAIL and its error's first line.
func fill(r *row, k, d measured) {
	show := func(m measured) (string, string) {
		if m.err != "" {
			rss := ""
			if m.rss > 0 {
				rss = human(m.rss)
			}
			return "FAIL: " + mdEscape(trim(m.err, 120)), rss
		}
		return dur(m.wall), human(m.rss)
	}
	r.kdfirTime, r.kdfirRSS = show(k)
	r.duckTime, r.duckRSS = show(d)
	if k.err == "" && d.err == "" && d.wall > 0 {
		r.ratio = fmt.Sprintf("%.2f", k.wall.Seconds()/d.wall.Seconds())
	}
	if k.err != "" {
		r.result = "FAIL"
	}
}

// check is one target: its short name and whether it was met.
type check struct {
	name string
	ok   bool
}

// noPeer notes that DuckDB failed, so that a PASS was not compared.
func noPeer(d measured) string {
	if d.err != "" {
		return " (DuckDB failed: not compared)"
	}
	return ""
}

// verdict is PASS, or MISS and the targets missed.
func verdict(checks ...check) string {
	var missed []string
	for _, c := range checks {
		if !c.ok {
			missed = append(missed, c.name)
		}
	}
	if len(missed) > 0 {
		return "MISS (" + strings.Join(missed, ", ") + ")"
	}
	return "PASS"
}

// duckLoad runs the DuckDB load and checks every event was loaded.
func (c *config) duckLoad(db, file string, n int) measured {
	r := c.child("", c.self, "duckdb-load", db, file)
	m := measured{wall: r.wall, rss: r.rss, err: r.err}
	if got := strings.TrimSpace(string(r.stdout)); m.err == "" && got != strconv.Itoa(n) {
		m.err = fmt.Sprintf("loaded %s of %d events", got, n)
	}
	return m
}

// ingest runs kdfir ingest into dataDir and checks every event was stored.
func (c *config) ingest(dataDir, file string, n int, noDetect bool) measured {
	args := []string{"--data-dir", dataDir, "--cluster", clusterName, "-o", "json", "ingest", file, "--cluster-resource-id", clusterID}
	if noDetect {
		args = append(args, "--no-detect")
	}
	r := c.child("", c.kdfir, args...)
	m := measured{wall: r.wall, rss: r.rss, err: r.err}
	if m.err != "" {
		return m
	}
	var reps []struct{ Stored, Rejected int }
	if err := json.Unmarshal(r.stdout, &reps); err != nil || len(reps) != 1 {
		m.err = fmt.Sprintf("unexpected ingest output: %.200s", r.stdout)
	} else if reps[0].Stored != n {
		m.err = fmt.Sprintf("stored %d of %d events", reps[0].Stored, n)
	}
	return m
}

// generate writes n RequestResponse events ending now and returns the
// file's size and the median event size.
func (c *config) generate(path string, n int) (int64, int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sizes := &lineSizes{}
	g := gen.New(c.seed, gen.Options{End: c.end, Span: c.span, Level: gen.LevelRequestResponse})
	if err := g.WriteJSONL(io.MultiWriter(f, sizes), n); err != nil {
		return 0, 0, fmt.Errorf("generate: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, 0, err
	}
	slices.Sort(sizes.sizes)
	return sizes.total, int64(sizes.sizes[len(sizes.sizes)/2]), nil
}

// lineSizes records the length of each line written to it.
type lineSizes struct {
	sizes []int32
	cur   int32
	total int64
}

func (l *lineSizes) Write(p []byte) (int, error) {
	n := len(p)
	l.total += int64(n)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.cur += int32(len(p))
			break
		}
		l.sizes = append(l.sizes, l.cur+int32(i)+1)
		l.cur, p = 0, p[i+1:]
	}
	return n, nil
}

// answer sums up a JSON array of rows: how many, and the total of their
// top-level numbers.
type answer struct {
	rows int
	sum  float64
}

func (a answer) show(sum bool) string {
	s := fmt.Sprintf("%d rows", a.rows)
	if a.rows == 1 {
		s = "1 row"
	}
	if sum {
		s += ", Σ " + strconv.FormatFloat(a.sum, 'f', -1, 64)
	}
	return s
}

func summarize(path string) (answer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return answer{}, err
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		return answer{}, err
	}
	a := answer{rows: len(rows)}
	for _, r := range rows {
		for _, v := range r {
			if f, ok := v.(float64); ok {
				a.sum += f
			}
		}
	}
	return a, nil
}

// storeSize is the disk usage of kdfir's data directory but for the
// journal and the alerts database: the event store, whatever its files.
func storeSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		base := d.Name()
		if strings.HasPrefix(base, "journal.db") || strings.HasPrefix(base, "alerts.db") {
			return nil
		}
		n, err := diskUsage(path)
		total += n
		return err
	})
	return total, err
}

// diskUsage is what du counts for one file: its allocated blocks.
func diskUsage(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512, nil
	}
	return fi.Size(), nil
}

func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%q: want e.g. 12GiB", s)
	}
	return int64(f * mult), nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000)
}

func span(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

func thousands(f float64) string {
	s := strconv.FormatInt(int64(math.Round(f)), 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func kdfirVersion(bin string) string {
	var v struct{ Version string }
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil || json.Unmarshal(out, &v) != nil {
		return "(unknown version)"
	}
	return v.Version
}

func machine() string {
	cpus := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpus = strconv.Itoa(bytes.Count(b, []byte("\nprocessor")) + 1)
	}
	return cpus + " CPUs"
}
