package sqlc_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kdfir/kdfir/internal/kql/kqltest"
)

// The fuzzer writes pipelines over the golden dataset's CloudAuditEvents
// from the grammar's common forms and requires the same rows from the
// compiled path as from the evaluator.

var (
	fuzzPreds = []string{
		`OperationName == "create"`, `OperationName != "get"`, `OperationName =~ "CREATE"`,
		`OperationName in ("create", "delete")`, `OperationName !in ("create")`, `OperationName in~ ("GET", "Delete")`,
		`IPAddress startswith "203"`, `UserAgent contains "KUBECTL"`, `UserAgent has "kubectl"`, `UserAgent !has "kubectl"`,
		`UserAgent contains_cs "kubectl"`, `UserAgent endswith "2b"`, `UserAgent hasprefix "kube"`, `UserAgent !contains "sdk"`,
		`RawEventData.ObjectRef.resource == "pods"`, `tostring(RawEventData.User.username) contains "alice"`,
		`RawEventData.ResponseStatus.code == 101`, `toint(RawEventData.ResponseStatus.code) >= 400`,
		`isnull(RawEventData.ObjectRef.subresource)`, `isnotnull(RawEventData.ObjectRef.subresource)`,
		`isnotempty(IPAddress)`, `isempty(UserAgent)`, `Timestamp > ago(1d)`, `Timestamp < datetime(2024-06-01 10:00)`,
		`Timestamp between (datetime(2024-06-01 08:00) .. 2h)`, `RawEventData.RequestURI has "exec"`,
		`RawEventData.ObjectRef.namespace in ("default", "kube-system")`, `strlen(UserAgent) > 30`,
		`RawEventData.User.groups has "devs"`, `AzureResourceId matches regex "aks-(prod|dev)$"`,
		`tostring(RawEventData.RequestObject) contains "privileged"`, `RawEventData.Verb != "create"`,
		`UserAgent has_any ("kubectl", "Mozilla")`, `toint(RawEventData.ResponseStatus.code) between (200 .. 299)`,
	}
	fuzzExtends = []string{
		`n = strlen(UserAgent)`, `op = toupper(OperationName)`, `pod = tostring(RawEventData.ObjectRef.name)`,
		`hour = bin(Timestamp, 1h)`, `code2 = toint(RawEventData.ResponseStatus.code) * 2`,
		`kind = iff(OperationName == "create", "write", "read")`, `key = strcat(OperationName, "/", IPAddress)`,
		`ns = RawEventData.ObjectRef.namespace`, `user = RawEventData.User.username`, `ok = RawEventData.ResponseStatus.code < 300`,
		`cls = case(toint(RawEventData.ResponseStatus.code) >= 400, "fail", toint(RawEventData.ResponseStatus.code) >= 200, "ok", "other")`,
		`first = substring(IPAddress, 0, 3)`, `cmd = extract("command=([^&]*)", 1, tostring(RawEventData.RequestURI))`,
		`age = datetime(2024-06-02) - Timestamp`, `later = Timestamp + 30m`,
	}
	fuzzAggs = []string{
		`count()`, `n = dcount(IPAddress)`, `fails = countif(toint(RawEventData.ResponseStatus.code) >= 400)`,
		`ops = make_set(OperationName)`, `first = min(Timestamp)`, `last = max(Timestamp)`,
		`total = sum(toint(RawEventData.ResponseStatus.code))`, `mean = avg(toint(RawEventData.ResponseStatus.code))`,
		`users = dcount(tostring(RawEventData.User.username))`, `ips = make_list(IPAddress)`, `longest = max(strlen(UserAgent))`,
	}
	fuzzKeys = []string{
		`OperationName`, `bin(Timestamp, 1h)`, `tostring(RawEventData.ObjectRef.resource)`, `AzureResourceId`,
		`DataSource, OperationName`, `ns = tostring(RawEventData.ObjectRef.namespace)`, `RawEventData.ResponseStatus.code`,
	}
)

func pick(r *rand.Rand, l []string) string { return l[r.IntN(len(l))] }

// genQuery writes a pipeline: filters and columns, an optional summarize
// and a last filter or sort.
func genQuery(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString("CloudAuditEvents")
	for range r.IntN(4) {
		switch r.IntN(4) {
		case 0, 1:
			p := pick(r, fuzzPreds)
			switch r.IntN(4) {
			case 0:
				p += " and " + pick(r, fuzzPreds)
			case 1:
				p = "(" + p + ") or (" + pick(r, fuzzPreds) + ")"
			case 2:
				p = "not(" + p + ")"
			}
			fmt.Fprintf(&b, "\n| where %s", p)
		case 2:
			fmt.Fprintf(&b, "\n| extend %s", pick(r, fuzzExtends))
		case 3:
			fmt.Fprintf(&b, "\n| mv-expand c = RawEventData.RequestObject.spec.containers")
		}
	}
	switch r.IntN(5) {
	case 0, 1:
		aggs := []string{pick(r, fuzzAggs)}
		if r.IntN(2) == 0 {
			if a := pick(r, fuzzAggs); !strings.Contains(aggs[0], strings.SplitN(a, " ", 2)[0]) {
				aggs = append(aggs, a)
			}
		}
		fmt.Fprintf(&b, "\n| summarize %s by %s", strings.Join(aggs, ", "), pick(r, fuzzKeys))
	case 2:
		fmt.Fprintf(&b, "\n| distinct OperationName, IPAddress")
	case 3:
		fmt.Fprintf(&b, "\n| project Timestamp, OperationName, u = tostring(RawEventData.User.username)\n| sort by Timestamp asc")
	case 4:
		fmt.Fprintf(&b, "\n| count")
	}
	return b.String()
}

// FuzzBothPaths compares the two paths on generated pipelines. Its seeds
// run in every go test; go test -fuzz FuzzBothPaths explores further.
func FuzzBothPaths(f *testing.F) {
	for i := range uint64(40) {
		f.Add(i)
	}
	h := newHarness(f, kqltest.Tables())
	f.Fuzz(func(t *testing.T, seed uint64) {
		q := genQuery(rand.New(rand.NewPCG(seed, seed^0x5bd1e995)))
		t.Logf("query:\n%s", q)
		h.compare(t, q)
	})
}

// TestGeneratedPipelines runs 300 generated pipelines on both paths and
// requires that most of them translate to SQL entirely.
func TestGeneratedPipelines(t *testing.T) {
	h := newHarness(t, kqltest.Tables())
	count := map[string]int{}
	stops := map[string]int{}
	for seed := range uint64(300) {
		q := genQuery(rand.New(rand.NewPCG(seed, seed^0x5bd1e995)))
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			kind := h.compare(t, q)
			count[kind]++
			if kind == "part" || kind == "none" {
				stops[h.lastStop]++
			}
			if t.Failed() {
				t.Logf("query:\n%s", q)
			}
		})
	}
	t.Logf("generated pipelines: %d compiled entirely, %d in part, %d not at all; stops: %v", count["all"], count["part"], count["none"], stops)
	if count["all"] < 200 {
		t.Errorf("only %d of 300 generated pipelines compile entirely", count["all"])
	}
}
