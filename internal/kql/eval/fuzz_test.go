package eval

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/kql/syntax"
)

func goldenQueries(tb testing.TB) []string {
	files, err := filepath.Glob("testdata/*/query.kql")
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// FuzzRun parses and runs arbitrary queries over the fixture: neither may
// panic (Run reports a recovered panic as an "internal error").
func FuzzRun(f *testing.F) {
	for _, q := range goldenQueries(f) {
		f.Add(q)
	}
	src := fixtureSource()
	f.Fuzz(func(t *testing.T, text string) {
		q, _, err := syntax.Parse(text)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = Run(ctx, src, q, Options{Now: testNow, MaxRows: 2000})
		if err != nil && strings.Contains(err.Error(), "internal error") {
			t.Fatalf("Run(%q): %v", text, err)
		}
	})
}

// TestRunTruncatedQueries runs every prefix of every golden query.
func TestRunTruncatedQueries(t *testing.T) {
	src := fixtureSource()
	for _, text := range goldenQueries(t) {
		for i := 0; i <= len(text); i += 3 {
			q, _, err := syntax.Parse(text[:i])
			if err != nil {
				continue
			}
			_, err = Run(context.Background(), src, q, Options{Now: testNow, MaxRows: 2000})
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Run(%q): %v", text[:i], err)
			}
		}
	}
}

// bigSource replicates the fixture events n times with distinct ids and
// timestamps.
func bigSource(n int) *MemSource {
	base := fixtureSource()
	t := base.Tables["CloudAuditEvents"]
	rows := make([][]any, 0, n)
	for i := 0; len(rows) < n; i++ {
		for _, r := range t.Rows {
			if len(rows) == n {
				break
			}
			nr := append([]any(nil), r...)
			nr[2] = fmt.Sprintf("r%07d", len(rows))
			ts := r[0].(time.Time).Add(-time.Duration(i) * time.Second)
			nr[0], nr[1] = ts, ts
			rows = append(rows, nr)
		}
	}
	m := &MemSource{Tables: map[string]*MemTable{
		"CloudAuditEvents": {Columns: t.Columns, Rows: rows},
		"Users":            base.Tables["Users"],
	}}
	return m
}

var benchQueries = map[string]string{
	"exec": `CloudAuditEvents
| where DataSource == "Azure Kubernetes Service"
| where OperationName == "create"
| where RawEventData.ObjectRef.resource == "pods" and RawEventData.ResponseStatus.code == 101
| where RawEventData.ObjectRef.subresource == "exec"
| extend RequestURI = tostring(RawEventData.RequestURI)
| extend PodName = tostring(RawEventData.ObjectRef.name)
| where PodName startswith "ubuntu"
| extend Commands = extract_all(@"command=([^\&]*)", RequestURI)
| extend ParsedCommand = url_decode(strcat_array(Commands, " "))
| project Timestamp, PodName, ParsedCommand`,
	"summarize": `CloudAuditEvents
| summarize n = count(), users = dcount(tostring(RawEventData.User.username)), last = max(Timestamp) by OperationName, bin(Timestamp, 1h)`,
	"has":  `CloudAuditEvents | where UserAgent has "kubectl" and IPAddress !startswith "10." | count`,
	"sort": `CloudAuditEvents | top 10 by Timestamp desc | project ReportId`,
}

func BenchmarkQueries(b *testing.B) {
	src := bigSource(1_000_000)
	for name, text := range benchQueries {
		q, _, err := syntax.Parse(text)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := Run(context.Background(), src, q, Options{Now: testNow}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
