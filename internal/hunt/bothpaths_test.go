package hunt

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/audittest"
	"github.com/kdfir/kdfir/internal/audit/gen"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/kqltest"
	"github.com/kdfir/kdfir/internal/store"
)

// auditCorpus is the third-party fixtures and generated events (both
// levels), over clusters of every DataSource, without the repeats that the
// store drops.
func auditCorpus(t *testing.T, end time.Time) []audit.Event {
	t.Helper()
	ids := []string{aksID, "arn:aws:eks:eu-west-1:123456789012:cluster/eks1", "//container.googleapis.com/projects/p/locations/l/clusters/gke1", ""}
	var all []audit.Event
	add := func(b []byte, i int) {
		evs, _, err := audit.DecodeAll(bytes.NewReader(b), audit.Options{ClusterResourceID: ids[i%len(ids)], Cluster: fmt.Sprintf("c%d", i%len(ids))})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
	}
	i := 0
	for _, dir := range []string{"falco-k8s-audit", "panther-k8s-audit"} {
		for _, f := range audittest.Files(t, dir) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			add(b, i)
			i++
		}
	}
	for k, level := range []string{gen.LevelMetadata, gen.LevelRequestResponse} {
		var b bytes.Buffer
		if err := gen.New(uint64(k+1), gen.Options{Level: level, End: end, Span: 48 * time.Hour}).WriteJSONL(&b, 3000); err != nil {
			t.Fatal(err)
		}
		add(b.Bytes(), k)
	}
	return storable(all)
}

// orderShows lists the queries whose rows show the element order of
// make_set, which Kusto leaves open and the two paths choose differently.
var orderShows = map[string]string{
	"rule k8s-failed-authorization-burst": "strcat_array(make_set(...)) joins the set in its order",
}

// TestBothPathsOnAuditEvents runs the hunting library, Microsoft's four
// queries, every built-in rule and whole-table reads of the three views
// through the store (compiled to SQL, the rest in the evaluator) and
// through the evaluator over the same events in memory (the reference,
// which maps events to rows with audit.Mapper): the rows must be equal.
func TestBothPathsOnAuditEvents(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	events := auditCorpus(t, now)
	st := storeOf(t, events)
	mem := audit.NewBatchSource(events)

	queries := map[string]string{
		"KubeAudit rows":        "KubeAudit",
		"CloudAuditEvents rows": "CloudAuditEvents",
		"AKSAudit rows":         "AKSAudit",
		"AKSAuditAdmin rows":    "AKSAuditAdmin",
		"AzureDiagnostics rows": "AzureDiagnostics",
		"legacy exec": `AzureDiagnostics | where Category == "kube-audit" | extend log = parse_json(log_s)
			| where log.objectRef.subresource == "exec" | project TimeGenerated, Resource, user = tostring(log.user.username), uri = tostring(log.requestURI)`,
		"legacy bag_unpack": `AzureDiagnostics | where Category == "kube-audit-admin" | extend log = parse_json(log_s)
			| project ref = log.objectRef | evaluate bag_unpack(ref, "ref_") | summarize count() by tostring(ref_resource)`,
		"legacy admin verbs":  `AzureDiagnostics | where Category == "kube-audit-admin" | extend log = parse_json(log_s) | summarize count() by verb = tostring(log.verb), Category`,
		"count by user, verb": "KubeAudit | summarize count() by tostring(user.username), verb",
		"exec":                `KubeAudit | where requestURI has "exec" | count`,
		"hostPath":            `KubeAudit | where tostring(requestObject) contains "hostPath" | count`,
		"names by hour":       "KubeAudit | summarize dcount(tostring(objectRef.name)) by bin(stageTimestamp, 1h)",
		"containers":          `KubeAudit | where verb == "create" and objectRef.resource == "pods" | mv-expand c = requestObject.spec.containers | project auditID, n = tostring(c.name), image = tostring(c.image), priv = tostring(c.securityContext.privileged)`,
		"aks by code":         "AKSAudit | summarize n = count(), users = dcount(tostring(User.username)) by code = toint(ResponseStatus.code), Verb",
		"raw members":         "CloudAuditEvents | project ReportId, RawEventData.Kind, RawEventData.StageTimestamp, RawEventData.principaloid, RawEventData.AzureResourceId, RawEventData.ObjectRef.name, DataSource, ActionType",
		"union":               "union withsource=T KubeAudit, (AKSAudit | project verb = Verb, auditID = AuditId) | summarize count() by T, verb",
		"codes":               "KubeAudit | summarize n = count() by c = tostring(responseStatus.code), t = gettype(responseStatus.code), empty = isempty(responseStatus.code)",
		"errors by verb":      "KubeAudit | where responseStatus.code >= 400 | summarize count() by verb, code = responseStatus.code",
		"raw codes":           "CloudAuditEvents | where RawEventData.ResponseStatus.code == 101 or isnull(RawEventData.ResponseStatus.code) | project ReportId, c = RawEventData.ResponseStatus.code, s = RawEventData.ResponseStatus",
		"legacy codes":        `AzureDiagnostics | extend log = parse_json(log_s) | summarize count() by Category, c = tolong(log.responseStatus.code)`,
	}
	for _, b := range Library() {
		params := map[string]string{}
		for _, p := range b.Params {
			params[p] = "alice@contoso.com"
		}
		q, err := b.Expand(params)
		if err != nil {
			t.Fatal(err)
		}
		queries["library "+b.Name] = q
	}
	for name, vars := range map[string]map[string]string{
		"1-exec-into-ubuntu-pods": nil,
		"2-managed-identity":      {"OID": entraOID},
		"3-kubectl-creations":     {"CLUSTER_ID": aksID, "START": now.Add(-24 * time.Hour).Format(time.RFC3339), "END": now.Format(time.RFC3339)},
		"4-privileged-pods":       nil,
	} {
		queries["microsoft "+name] = microsoftQuery(t, name, vars)
	}
	rules, err := detect.Builtin(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		queries["rule "+r.ID] = r.QueryText()
	}

	compiled := 0
	for name, q := range queries {
		t.Run(name, func(t *testing.T) {
			want, _, err := eval.Query(ctx, mem, q, eval.Options{Now: now})
			if err != nil {
				t.Fatalf("evaluator: %v", err)
			}
			got, _, err := Collect(ctx, st, store.SourceOptions{}, q, now)
			if err != nil {
				t.Fatalf("store: %v", err)
			}
			if diff := cmp.Diff(want.Columns, got.Columns); diff != "" {
				t.Fatalf("columns differ (-evaluator +store):\n%s", diff)
			}
			if why, ok := orderShows[name]; ok {
				// Compare all but the joined string.
				if len(want.Rows) != len(got.Rows) {
					t.Errorf("rows = %d, evaluator %d", len(got.Rows), len(want.Rows))
				}
				t.Logf("rows compared by count: %s", why)
			} else if diff := cmp.Diff(kqltest.CanonRows(want.Rows), kqltest.CanonRows(got.Rows)); diff != "" {
				t.Errorf("rows differ (-evaluator +store):\n%s", diff)
			}
			if len(want.Rows) == 0 && !strings.HasPrefix(name, "library user") && !strings.HasPrefix(name, "microsoft") {
				t.Logf("no rows: the comparison is weak")
			}
			plan, err := compileText(ctx, st, store.SourceOptions{}, q, now)
			if err == nil && plan.Rest == nil && plan.SQL != "" {
				compiled++
			} else if err == nil {
				t.Logf("evaluator from %s", plan.Stopped)
			}
		})
	}
	t.Logf("%d of %d queries ran entirely in SQL", compiled, len(queries))
}

// TestStatusCodeReadsItsColumn: responseStatus.code, in every view, reads
// the store's integer column instead of parsing responseStatus (the rows
// are compared with the evaluator's in TestBothPathsOnAuditEvents).
func TestStatusCodeReadsItsColumn(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	st := storeOf(t, auditCorpus(t, now)[:50])
	for _, q := range []string{
		"KubeAudit | where responseStatus.code >= 400 | project verb",
		"AKSAudit | summarize count() by tostring(ResponseStatus.code)",
		"CloudAuditEvents | where RawEventData.ResponseStatus.code == 101 | project ReportId",
		"AzureDiagnostics | extend log = parse_json(log_s) | where log.responseStatus.code == 200 | project TimeGenerated",
	} {
		plan, err := compileText(ctx, st, store.SourceOptions{}, q, now)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if plan.Rest != nil || !strings.Contains(plan.SQL, "CAST(code AS VARCHAR)") || strings.Contains(plan.SQL, "json_extract(nullif(response_status") {
			t.Errorf("%s: the SQL does not read the code column, or parses responseStatus:\n%s", q, plan.SQL)
		}
	}
}
