package store_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/audittest"
	"github.com/kdfir/kdfir/internal/kql/table"
	"github.com/kdfir/kdfir/internal/store"
)

// filterPaths lists, per table, the column paths the store maps to hot
// columns (and a few it does not, which must simply be ignored).
var filterPaths = map[string][][]string{
	audit.KubeAudit: {
		{"verb"}, {"auditID"}, {"stage"}, {"requestURI"}, {"userAgent"}, {"stageTimestamp"},
		{"Cluster"}, {"ClusterResourceId"}, {"user", "username"}, {"user", "groups"},
		{"objectRef", "resource"}, {"objectRef", "subresource"}, {"objectRef", "namespace"},
		{"objectRef", "name"}, {"objectRef", "apiGroup"}, {"responseStatus", "code"},
		{"level"}, {"requestReceivedTimestamp"}, {"objectRef", "apiVersion"},
	},
	audit.CloudAuditEvents: {
		{"Timestamp"}, {"TimeGenerated"}, {"ReportId"}, {"OperationName"}, {"IPAddress"},
		{"UserAgent"}, {"AzureResourceId"}, {"ResourceId"}, {"Cluster"}, {"DataSource"},
		{"ActionType"}, {"RawEventData", "Verb"}, {"RawEventData", "Stage"},
		{"RawEventData", "AuditId"}, {"RawEventData", "RequestURI"}, {"RawEventData", "UserAgent"},
		{"RawEventData", "principaloid"}, {"RawEventData", "AzureResourceId"},
		{"AdditionalFields", "Cluster"}, {"RawEventData", "User", "username"},
		{"RawEventData", "User", "groups"}, {"RawEventData", "ObjectRef", "resource"},
		{"RawEventData", "ObjectRef", "subresource"}, {"RawEventData", "ObjectRef", "namespace"},
		{"RawEventData", "ObjectRef", "name"}, {"RawEventData", "ObjectRef", "apiGroup"},
		{"RawEventData", "ResponseStatus", "code"}, {"RawEventData", "Level"},
	},
	audit.AKSAudit: {
		{"TimeGenerated"}, {"StageReceivedTime"}, {"Verb"}, {"AuditId"}, {"Stage"}, {"RequestUri"},
		{"UserAgent"}, {"_ResourceId"}, {"Cluster"}, {"User", "username"}, {"User", "groups"},
		{"ObjectRef", "resource"}, {"ObjectRef", "subresource"}, {"ObjectRef", "namespace"},
		{"ObjectRef", "name"}, {"ResponseStatus", "code"}, {"Type"},
	},
}

// candidateFilters derives filters on a path from values seen in rows.
func candidateFilters(rng *rand.Rand, cols []table.Column, rows [][]any, path []string) []table.Filter {
	f := func(op table.Op, v any) table.Filter {
		return table.Filter{Column: path[0], Path: path[1:], Op: op, Value: v}
	}
	out := []table.Filter{f(table.IsNull, nil), f(table.IsNotNull, nil)}
	consts := []any{"", "%", "_", "k", "KUBE", "system:", "\u212Aube-admin", "istanbul", "50%_", "a\"b", int64(101), "20", "2", "Azure Kubernetes Service", "amazon elastic kubernetes service", "Google Kubernetes Engine", "Kubernetes", "KubernetesCreate", "KubernetesGET"}
	ops := []table.Op{table.Eq, table.EqFold, table.StartsWith, table.Contains, table.Has, table.Ne}
	for i := 0; i < 14; i++ {
		out = append(out, f(ops[rng.IntN(len(ops))], consts[rng.IntN(len(consts))]))
	}
	for i := 0; i < 5; i++ {
		r := rows[rng.IntN(len(rows))]
		v := audittest.Value(cols, r, table.Filter{Column: path[0], Path: path[1:]})
		switch x := v.(type) {
		case string:
			out = append(out, f(table.Eq, x), f(table.Ne, x), f(table.EqFold, strings.ToUpper(x)),
				f(table.In, []any{x, "zzz"}))
			if len(x) > 2 {
				out = append(out, f(table.StartsWith, strings.ToUpper(x[:len(x)/2])),
					f(table.Contains, x[len(x)/3:2*len(x)/3]), f(table.Has, x[1:]))
			}
		case int64:
			out = append(out, f(table.Eq, x), f(table.Ne, x), f(table.Lt, x), f(table.Ge, float64(x)),
				f(table.In, []any{x, int64(404)}), f(table.StartsWith, audittest.String(x)[:1]),
				f(table.Contains, audittest.String(x)), f(table.Eq, audittest.String(x)))
		case time.Time:
			out = append(out, f(table.Eq, x), f(table.Lt, x), f(table.Le, x), f(table.Gt, x),
				f(table.Ge, x.Add(-time.Minute)), f(table.Ne, x))
		case []any:
			if len(x) > 0 {
				if s, ok := x[0].(string); ok {
					out = append(out, f(table.Has, s), f(table.Contains, strings.ToUpper(s)))
				}
			}
		}
	}
	return out
}

// TestPushdownSuperset checks, for every mapped column path and many
// operators and values, that a pushed-down scan, filtered again, equals
// the in-memory batch filtered: the SQL never loses a matching row.
func TestPushdownSuperset(t *testing.T) {
	s, _ := openTemp(t)
	evs := append(fixtureEvents(t), genEvents(t, 11, 300, audit.Options{Cluster: "gen", ClusterResourceID: "arn:aws:eks:us-east-1:1:cluster/gen"})...)
	evs = append(evs, edgeEvents(t)...)
	if _, _, err := s.InsertBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	batch := audit.NewBatchSource(dedup(evs))
	rng := rand.New(rand.NewPCG(1, 2))
	pushed, skipped := 0, 0
	for name, paths := range filterPaths {
		cols, _ := audit.Schema(name)
		all := scan(t, batch, name)
		for _, p := range paths {
			for _, f := range candidateFilters(rng, cols, all, p) {
				filters := []table.Filter{f}
				if store.Pushed(table.ScanRequest{Table: name, Filters: filters})[0] {
					pushed++
				} else {
					skipped++
					continue
				}
				// The store holds the same rows as the batch (see
				// TestRoundTripLossless), so equal counts of matching rows
				// mean equal results.
				want, got := 0, 0
				for _, r := range all {
					if audittest.Match(cols, r, filters) {
						want++
					}
				}
				for _, r := range scan(t, s, name, filters...) {
					if audittest.Match(cols, r, filters) {
						got++
					}
				}
				if got != want {
					t.Errorf("%s %v %s %#v: store %d rows, batch %d", name, p, f.Op, f.Value, got, want)
				}
			}
		}
	}
	t.Logf("%d filters pushed down and checked, %d not translated", pushed, skipped)
	if pushed < 500 {
		t.Errorf("only %d filters pushed down", pushed)
	}
}

// TestPushdownConjunction checks several filters at once, with the
// source's time window and cluster.
func TestPushdownConjunction(t *testing.T) {
	s, _ := openTemp(t)
	evs := genEvents(t, 12, 3000, audit.Options{Cluster: "gen"})
	if _, _, err := s.InsertBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	cols, _ := audit.Schema(audit.CloudAuditEvents)
	filters := []table.Filter{
		{Column: "RawEventData", Path: []string{"ObjectRef", "resource"}, Op: table.Eq, Value: "pods"},
		{Column: "RawEventData", Path: []string{"ObjectRef", "subresource"}, Op: table.IsNull},
		{Column: "OperationName", Op: table.In, Value: []any{"create", "delete"}},
		{Column: "RawEventData", Path: []string{"ResponseStatus", "code"}, Op: table.StartsWith, Value: "20"},
		{Column: "Timestamp", Op: table.Ge, Value: evs[500].Time},
	}
	var want int
	for _, r := range scan(t, audit.NewBatchSource(evs), audit.CloudAuditEvents) {
		if audittest.Match(cols, r, filters) {
			want++
		}
	}
	got := scan(t, s, audit.CloudAuditEvents, filters...)
	for _, r := range got {
		if !audittest.Match(cols, r, filters) {
			t.Fatalf("row does not match: %v", r)
		}
	}
	if len(got) != want || want == 0 {
		t.Errorf("got %d rows, want %d", len(got), want)
	}
	for i, used := range store.Pushed(table.ScanRequest{Table: audit.CloudAuditEvents, Filters: filters}) {
		if !used {
			t.Errorf("filter %d not pushed down", i)
		}
	}
}
