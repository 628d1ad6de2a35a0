package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/audittest"
)

func decodeString(t *testing.T, in string, opts audit.Options) ([]audit.Event, audit.Stats) {
	t.Helper()
	evs, st, err := audit.DecodeAll(strings.NewReader(in), opts)
	if err != nil {
		t.Fatal(err)
	}
	return evs, st
}

func decodeFile(t *testing.T, path string) ([]audit.Event, audit.Stats) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, st, err := audit.DecodeAll(f, audit.Options{AssumeTime: fixtureTime})
	if err != nil {
		t.Fatal(err)
	}
	return evs, st
}

// fixtureTime is given to fixture events written without any time.
var fixtureTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFalcoFixtures(t *testing.T) {
	var events, rejected int
	for _, f := range audittest.Files(t, "falco-k8s-audit") {
		evs, st := decodeFile(t, f)
		events += len(evs)
		rejected += st.Rejected
		base := filepath.Base(f)
		switch base {
		case "create_configmap_sensitive_values.json":
			if len(evs) != 6 {
				t.Errorf("%s: %d events, want 6", base, len(evs))
			}
		case "fal_01_003.json":
			if st.Rejected != 1 || !strings.Contains(st.Problems[0].Reason, "not recognized as a k8s audit event") || st.Problems[0].Line != 1 {
				t.Errorf("%s: %+v", base, st)
			}
		default:
			if len(evs) != 1 {
				t.Errorf("%s: %d events (%+v)", base, len(evs), st)
			}
			// A single pretty-printed or one-line Event keeps its bytes.
			raw, _ := os.ReadFile(f)
			if !bytes.Equal(evs[0].Raw, bytes.TrimSpace(raw)) {
				t.Errorf("%s: raw bytes differ from the file", base)
			}
		}
		for _, e := range evs {
			if e.Time.IsZero() || e.AuditID == "" || e.Verb == "" {
				t.Errorf("%s: hot fields missing: %+v", base, e)
			}
		}
	}
	if events != 51 || rejected != 1 {
		t.Errorf("falco: %d events, %d rejected; want 51, 1", events, rejected)
	}
}

func TestPantherFixtures(t *testing.T) {
	var events, rejected, skipped, aks, gke int
	for _, f := range audittest.Files(t, "panther-k8s-audit") {
		evs, st := decodeFile(t, f)
		events += len(evs)
		rejected += st.Rejected
		skipped += st.Skipped
		raw, _ := os.ReadFile(f)
		if bytes.Contains(raw, []byte(`"category": "kube-audit"`)) {
			aks++
			if len(evs) != 1 || evs[0].Raw[0] != '{' || bytes.Contains(evs[0].Raw, []byte("p_log_type")) {
				t.Errorf("%s: AKS event not unwrapped: %d", filepath.Base(f), len(evs))
			}
		}
		if bytes.Contains(raw, []byte("protoPayload")) {
			gke++
			for _, e := range evs {
				if audit.DataSource(e.ClusterResourceID) != audit.DataSourceGKE || e.Verb == "" || e.AuditID == "" || !e.Has(audit.FieldCode) {
					t.Errorf("%s: GKE entry badly mapped: %s", filepath.Base(f), e.Raw)
				}
			}
		}
	}
	// 182 EKS events, 6 plain events without p_log_type, 34 AKS records,
	// 51 GKE entries; 6 GKE entries of other Google services, 5 Azure
	// activity events and 1 non-Kubernetes Azure event are skipped; 2 GKE
	// fragments (no protoPayload) are rejected.
	if events != 273 || rejected != 2 || skipped != 12 || aks != 34 || gke != 57 {
		t.Errorf("panther: %d events, %d rejected, %d skipped, %d AKS, %d GKE", events, rejected, skipped, aks, gke)
	}
}

const ev1 = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods/p/exec?command=sh","verb":"create","user":{"username":"alice@contoso.com","groups":["system:authenticated"],"extra":{"oid":["0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6"]}},"sourceIPs":["20.1.2.3","10.0.0.1"],"userAgent":"kubectl/v1.32.0","objectRef":{"resource":"pods","subresource":"exec","namespace":"default","name":"p","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":101},"requestReceivedTimestamp":"2025-05-01T10:00:00.000001Z","stageTimestamp":"2025-05-01T10:00:00.500000Z","annotations":{"authorization.k8s.io/decision":"allow"}}`

func TestParseEventHotFields(t *testing.T) {
	e, err := audit.ParseEvent([]byte(ev1))
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Event{
		Raw:     []byte(ev1),
		Time:    time.Date(2025, 5, 1, 10, 0, 0, 500000000, time.UTC),
		AuditID: "a1", Stage: "ResponseComplete", Verb: "create", Level: "Metadata",
		User: audit.UserInfo{Username: "alice@contoso.com", Groups: []string{"system:authenticated"},
			Extra: map[string][]string{"oid": {"0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6"}}},
		SourceIPs:    []string{"20.1.2.3", "10.0.0.1"},
		UserAgent:    "kubectl/v1.32.0",
		ObjectRef:    audit.ObjectRef{Resource: "pods", Subresource: "exec", Namespace: "default", Name: "p", APIVersion: "v1"},
		RequestURI:   "/api/v1/namespaces/default/pods/p/exec?command=sh",
		Code:         101,
		Annotations:  map[string]string{"authorization.k8s.io/decision": "allow"},
		PrincipalOID: "0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6",
		Present:      e.Present,
	}
	if d := cmp.Diff(want, e); d != "" {
		t.Error(d)
	}
	for _, f := range []audit.Field{audit.FieldSubresource, audit.FieldCode, audit.FieldGroups, audit.FieldSourceIPs} {
		if !e.Has(f) {
			t.Errorf("field %d not present", f)
		}
	}
	if e.Has(audit.FieldAPIGroup) {
		t.Error("apiGroup present")
	}
}

func TestParseEventRejects(t *testing.T) {
	for _, in := range []string{
		`{"kind":0}`, `{"kind":"Pod"}`, `[1]`, `{"verb":5}`, `{"objectRef":"x"}`,
		`{"responseStatus":{"code":1.5}}`, `{"sourceIPs":[1]}`, `{"user":{"groups":"a"}}`, `{`,
	} {
		if _, err := audit.ParseEvent([]byte(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestPrincipalOID(t *testing.T) {
	for in, want := range map[string]string{
		`{"user":{"username":"u","extra":{"http://schemas.microsoft.com/identity/claims/objectidentifier":["x-oid"]}}}`: "x-oid",
		`{"user":{"username":"4c3b2a19-8d7e-4f60-a1b2-c3d4e5f60718"}}`:                                                  "4c3b2a19-8d7e-4f60-a1b2-c3d4e5f60718",
		`{"user":{"username":"bob"}}`: "",
	} {
		e, err := audit.ParseEvent([]byte(in))
		if err != nil || e.PrincipalOID != want {
			t.Errorf("%s: %q, %v", in, e.PrincipalOID, err)
		}
	}
}

func TestDecodeShapes(t *testing.T) {
	logString, _ := json.Marshal(ev1)
	resID := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1"
	azure := `{"category":"kube-audit","properties":{"log":` + string(logString) + `,"pod":"kube-apiserver-x"},"resourceId":"` + resID + `","time":"2025-05-01T10:00:01Z"}`
	azureObj := `{"category":"kube-audit-admin","properties":{"log":` + ev1 + `},"resourceId":"` + resID + `"}`
	cases := map[string]struct {
		in       string
		events   int
		rejected int
		skipped  int
	}{
		"jsonl":            {ev1 + "\n" + ev1 + "\n", 2, 0, 0},
		"eventlist":        {`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + ev1 + `,` + ev1 + `]}`, 2, 0, 0},
		"eventlist-pretty": {"{\n  \"kind\": \"EventList\",\n  \"items\": [\n    " + ev1 + ",\n    " + ev1 + "\n  ]\n}\n", 2, 0, 0},
		"azure-lines":      {azure + "\n" + azureObj + "\n", 2, 0, 0},
		"azure-records":    {`{"records":[` + azure + `,` + azureObj + `,{"category":"guard","properties":{}}]}`, 2, 0, 1},
		"records-pretty":   {"{\n\"records\": [\n" + azure + ",\n" + azureObj + "\n]\n}", 2, 0, 0},
		"array":            {"[\n" + ev1 + ",\n" + ev1 + "\n]", 2, 0, 0},
		"malformed-line":   {ev1 + "\n{\"verb\": \n" + ev1 + "\nnot json\n", 2, 2, 0},
		"first-line-bad":   {"{\"verb\": \n" + ev1 + "\n", 1, 1, 0},
		"pretty-concat":    {"{\n \"kind\": \"Event\",\n \"auditID\": \"x\"\n}\n{\n \"kind\": \"Event\",\n \"auditID\": \"y\"\n}\n", 2, 0, 0},
		"pretty-broken":    {"{\n \"kind\": \"Event\",\n \"auditID\": \"x\" ]\n}\n{\n \"kind\": \"Event\",\n \"auditID\": \"y\"\n}\n", 1, 1, 0},
		"truncated-doc":    {"{\n \"kind\": \"Event\",\n \"auditID\": \"x\"\n", 0, 1, 0},
		"empty":            {"\n\n  \n", 0, 0, 0},
		"gke":              {`{"protoPayload":{"methodName":"io.k8s.core.v1.pods.create"},"timestamp":"2025-05-01T10:00:00Z"}`, 1, 0, 0},
		"gke-other":        {`{"protoPayload":{"serviceName":"compute.googleapis.com","methodName":"compute.instances.list"},"timestamp":"2025-05-01T10:00:00Z"}`, 0, 0, 1},
		"gke-no-time":      {`{"protoPayload":{"methodName":"io.k8s.core.v1.pods.create"}}`, 0, 1, 0},
		"no-time":          {`{"kind":"Event","auditID":"x","verb":"get"}`, 0, 1, 0},
		"azure-no-time":    {`{"category":"kube-audit","properties":{"log":{"kind":"Event","auditID":"x","verb":"get"}}}`, 0, 1, 0},
		"cloudwatch-sub":   {`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/eks/prod/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"1","timestamp":1714557600000,"message":` + string(logString) + `},{"id":"2","timestamp":1714557600000,"message":"{\"kind\":\"Event\",\"auditID\":\"n\"}"}]}`, 2, 0, 0},
		"cloudwatch-ctl":   {`{"messageType":"CONTROL_MESSAGE","logEvents":[]}`, 0, 0, 1},
		"cloudwatch-cli":   {"{\n \"events\": [\n  {\"logStreamName\": \"kube-apiserver-audit-1\", \"timestamp\": 1714557600000, \"message\": " + string(logString) + "},\n  {\"timestamp\": 1, \"message\": \"not json\"}\n ]\n}\n", 1, 1, 0},
		"cloudwatch-row":   {`{"@timestamp":"2024-05-01 10:00:00.000","@message":"{\"kind\":\"Event\",\"auditID\":\"r\"}","@log":"123456789012:/aws/eks/prod/cluster"}`, 1, 0, 0},
		"s3-export":        {"2024-05-01T10:00:00.000Z {\"kind\":\"Event\",\"auditID\":\"s\"}\n2024-05-01T10:00:01.000Z " + ev1 + "\n", 2, 0, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			opts := audit.Options{AssumeTime: fixtureTime}
			if strings.Contains(name, "no-time") {
				opts = audit.Options{}
			}
			evs, st := decodeString(t, c.in, opts)
			if len(evs) != c.events || st.Events != c.events || st.Rejected != c.rejected || st.Skipped != c.skipped {
				t.Errorf("got %d events, stats %+v; want %d/%d/%d", len(evs), st, c.events, c.rejected, c.skipped)
			}
		})
	}
}

func TestDecodeAzureTagging(t *testing.T) {
	logString, _ := json.Marshal(`{"kind":"Event","auditID":"z","verb":"get"}`)
	resID := "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS1"
	in := `{"category":"kube-audit","properties":{"log":` + string(logString) + `},"resourceId":"` + resID + `","time":"2025-05-01T10:00:01Z"}`
	evs, _ := decodeString(t, in, audit.Options{})
	if len(evs) != 1 {
		t.Fatal(len(evs))
	}
	e := evs[0]
	if e.ClusterResourceID != resID || e.Cluster != "AKS1" || !e.Time.Equal(time.Date(2025, 5, 1, 10, 0, 1, 0, time.UTC)) {
		t.Errorf("%+v", e)
	}
	if string(e.Raw) != `{"kind":"Event","auditID":"z","verb":"get"}` {
		t.Errorf("raw %s", e.Raw)
	}
	evs, _ = decodeString(t, in, audit.Options{Cluster: "prod", ClusterResourceID: "arn:aws:eks:eu-west-1:1:cluster/x"})
	if evs[0].Cluster != "prod" || evs[0].ClusterResourceID != "arn:aws:eks:eu-west-1:1:cluster/x" {
		t.Errorf("%+v", evs[0])
	}
}

func TestDecodeLineNumbers(t *testing.T) {
	in := ev1 + "\n\n{bad\n" + ev1 + "\n{\"kind\":\"Pod\"}\n"
	_, st := decodeString(t, in, audit.Options{})
	got := []int{}
	for _, p := range st.Problems {
		got = append(got, p.Line)
	}
	if d := cmp.Diff([]int{3, 5}, got); d != "" {
		t.Error(d)
	}
}

func TestDecodeLongLine(t *testing.T) {
	big := `{"kind":"Event","auditID":"big","verb":"create","stageTimestamp":"2025-05-01T10:00:00Z","requestObject":{"data":"` + strings.Repeat("x", 3<<20) + `"}}`
	evs, st := decodeString(t, ev1+"\n"+big+"\n"+ev1+"\n", audit.Options{})
	if len(evs) != 3 || st.Rejected != 0 || len(evs[1].Raw) != len(big) {
		t.Errorf("%d events %+v", len(evs), st)
	}
	// A single-line document longer than the read buffer is streamed.
	evs, st = decodeString(t, `{"records":[{"category":"kube-audit","properties":{"log":`+big+`}},{"category":"kube-audit","properties":{"log":`+ev1+`}}]}`, audit.Options{})
	if len(evs) != 2 || st.Rejected != 0 {
		t.Errorf("%d events %+v", len(evs), st)
	}
}

func TestDecodeProblemCap(t *testing.T) {
	in := strings.Repeat(ev1+"\nbad\n", 300)
	evs, st := decodeString(t, in, audit.Options{})
	if len(evs) != 300 || st.Rejected != 300 || len(st.Problems) != audit.MaxProblems {
		t.Errorf("%d %d %d", len(evs), st.Rejected, len(st.Problems))
	}
}

func TestDecodeEmitError(t *testing.T) {
	stop := os.ErrClosed
	n := 0
	_, err := audit.Decode(strings.NewReader(ev1+"\n"+ev1+"\n"+ev1+"\n"), audit.Options{}, func(audit.Event) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("err %v after %d events", err, n)
	}
}

func TestDecodeGKE(t *testing.T) {
	in := `{"insertId":"i-1","timestamp":"2025-05-01T10:00:00.5Z","receiveTimestamp":"2025-05-01T10:00:09Z",
"resource":{"type":"k8s_cluster","labels":{"project_id":"p1","location":"europe-west1","cluster_name":"prod"}},
"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","serviceName":"k8s.io",
"methodName":"io.k8s.core.v1.pods.exec.create","resourceName":"core/v1/namespaces/shop/pods/web-1/exec",
"authenticationInfo":{"principalEmail":"alice@example.com"},"authorizationInfo":[{"granted":true}],
"requestMetadata":{"callerIp":"203.0.113.9","callerSuppliedUserAgent":"kubectl/v1.31.0"},
"request":{"command":["sh","-c","id"],"container":"app"},"status":{"code":7,"message":"denied"}}}`
	evs, st := decodeString(t, in, audit.Options{})
	if len(evs) != 1 {
		t.Fatalf("%+v", st)
	}
	e := evs[0]
	want := audit.Event{
		Time: time.Date(2025, 5, 1, 10, 0, 0, 500000000, time.UTC), AuditID: "i-1", Stage: "ResponseComplete",
		Verb: "create", Level: "RequestResponse", User: audit.UserInfo{Username: "alice@example.com"},
		SourceIPs: []string{"203.0.113.9"}, UserAgent: "kubectl/v1.31.0",
		ObjectRef:  audit.ObjectRef{Resource: "pods", Subresource: "exec", Namespace: "shop", Name: "web-1", APIVersion: "v1"},
		RequestURI: "/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=id&container=app",
		Code:       403,
		Annotations: map[string]string{"authorization.k8s.io/decision": "allow",
			"cloudaudit.googleapis.com/methodName": "io.k8s.core.v1.pods.exec.create"},
		Cluster: "prod", ClusterResourceID: "//container.googleapis.com/projects/p1/locations/europe-west1/clusters/prod",
	}
	if d := cmp.Diff(want, e, cmpopts.IgnoreFields(audit.Event{}, "Raw", "Present")); d != "" {
		t.Error(d)
	}
	if audit.DataSource(e.ClusterResourceID) != "Google Kubernetes Engine" {
		t.Errorf("data source %q", audit.DataSource(e.ClusterResourceID))
	}
	// RBAC group names are spelt out; a non-resource URL has no objectRef.
	for in, want := range map[string][2]string{
		`{"timestamp":"2025-05-01T10:00:00Z","protoPayload":{"methodName":"io.k8s.rbac.v1.clusterroles.create"}}`:                                                   {"rbac.authorization.k8s.io", "/apis/rbac.authorization.k8s.io/v1/clusterroles"},
		`{"timestamp":"2025-05-01 10:00:00.000","protoPayload":{"methodName":"io.k8s.core.v1.healthz.get","resourceName":"core/v1/healthz"}}`:                       {"", "/healthz"},
		`{"timestamp":"2025-05-01T10:00:00Z","protoPayload":{"methodName":"io.k8s.apps.v1.deployments.patch","resourceName":"apps/v1/namespaces/a/deployments/d"}}`: {"apps", "/apis/apps/v1/namespaces/a/deployments/d"},
	} {
		evs, st := decodeString(t, in, audit.Options{})
		if len(evs) != 1 || evs[0].ObjectRef.APIGroup != want[0] || evs[0].RequestURI != want[1] {
			t.Errorf("%s: %+v %+v", in, evs, st)
		}
	}
}

func TestDecodeNoTime(t *testing.T) {
	_, st := decodeString(t, `{"kind":"Event","auditID":"x1","verb":"get"}`, audit.Options{})
	if st.Rejected != 1 || !strings.Contains(st.Problems[0].Reason, "event x1 has no time") || strings.Contains(st.Problems[0].Reason, "\n") {
		t.Errorf("%+v", st)
	}
	evs, _ := decodeString(t, `{"kind":"Event","auditID":"x1","verb":"get"}`, audit.Options{AssumeTime: fixtureTime})
	if len(evs) != 1 || !evs[0].Time.Equal(fixtureTime) {
		t.Errorf("%+v", evs)
	}
	// An AKS record's envelope time stands in for a missing stageTimestamp.
	evs, _ = decodeString(t, `{"category":"kube-audit","time":"2025-05-01T10:00:01Z","properties":{"log":"{\"kind\":\"Event\",\"auditID\":\"a\"}"}}`, audit.Options{})
	if len(evs) != 1 || !evs[0].Time.Equal(time.Date(2025, 5, 1, 10, 0, 1, 0, time.UTC)) {
		t.Errorf("%+v", evs)
	}
}

func TestDecodeCloudWatchTagging(t *testing.T) {
	in := `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/eks/prod/cluster","logEvents":[{"id":"1","timestamp":1714557600000,"message":"{\"kind\":\"Event\",\"auditID\":\"n\"}"}]}`
	evs, _ := decodeString(t, in, audit.Options{})
	if len(evs) != 1 {
		t.Fatal(len(evs))
	}
	e := evs[0]
	if e.Cluster != "prod" || audit.DataSource(e.ClusterResourceID) != audit.DataSourceEKS || !e.Time.Equal(time.UnixMilli(1714557600000).UTC()) {
		t.Errorf("%+v", e)
	}
}

func TestDecodeGKEFailures(t *testing.T) {
	for in, want := range map[string]int64{
		`{"timestamp":"2025-05-01T10:00:00Z","protoPayload":{"methodName":"io.k8s.core.v1.pods.create","status":{}}}`:                                      200,
		`{"timestamp":"2025-05-01T10:00:00Z","protoPayload":{"methodName":"io.k8s.core.v1.pods.create","status":{"code":6}}}`:                              409,
		`{"timestamp":"2025-05-01T10:00:00Z","protoPayload":{"methodName":"io.k8s.core.v1.pods.create","authorizationInfo":[{"granted":false}]}}`:          403,
		`{"timestamp":"2025-05-01T10:00:00Z","protoPayload":{"methodName":"io.k8s.core.v1.pods.create","response":{"status":"Failure"}}}`:                  400,
		`{"timestamp":"2025-05-01T10:00:00Z","protoPayload":{"methodName":"io.k8s.core.v1.pods.create","response":{"status":"Failure","code":422}}}`:       422,
		`{"timestamp":"2025-05-01T10:00:00Z","protoPayload":{"methodName":"io.k8s.core.v1.pods.create","response":{"kind":"Pod","status":{"phase":"x"}}}}`: 200,
	} {
		evs, st := decodeString(t, in, audit.Options{})
		if len(evs) != 1 || evs[0].Code != want {
			t.Errorf("%s: %+v %+v, want code %d", in, evs, st, want)
		}
	}
}
