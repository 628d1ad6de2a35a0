package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/audittest"
	"github.com/kdfir/kdfir/internal/audit/gen"
)

// seeds adds one input of every shape, generated real-shaped events at
// every level, and the third-party fixtures when they are there: the
// fuzzers never skip for want of shared/data.
func seeds(f *testing.F) {
	if dir, ok := audittest.FindDataDir(); ok {
		for _, sub := range []string{"falco-k8s-audit", "panther-k8s-audit"} {
			files, _ := filepath.Glob(filepath.Join(dir, sub, "*.json"))
			for _, p := range files {
				b, err := os.ReadFile(p)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
	}
	for i, level := range []string{"Metadata", "Request", "RequestResponse"} {
		g := gen.New(uint64(i+1), gen.Options{Level: level})
		var buf bytes.Buffer
		if err := g.WriteJSONL(&buf, 40); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		for line := range bytes.SplitSeq(buf.Bytes(), []byte("\n")) {
			if len(line) > 0 {
				f.Add(append([]byte(nil), line...))
			}
		}
	}
	logString, _ := json.Marshal(ev1)
	for _, s := range []string{
		ev1 + "\n" + ev1,
		`{"kind":"EventList","items":[` + ev1 + `]}`,
		`{"records":[{"category":"kube-audit","properties":{"log":` + string(logString) + `},"resourceId":"/x/managedClusters/y","time":"2025-01-01T00:00:00Z"}]}`,
		"{\n\"records\": [\n{\"category\":\"kube-audit-admin\",\"properties\":{\"log\":" + ev1 + "}}\n]\n}",
		`{"TimeGenerated":"2025-01-01T00:00:00Z","AuditId":"a","Verb":"get","User":"{\"username\":\"u\"}","ObjectRef":{"resource":"pods"},"_ResourceId":"/r","Type":"AKSAudit"}`,
		`{"Timestamp":"2025-01-01T00:00:00Z","ReportId":"a","RawEventData":{"Verb":"get","AuditId":"a","ObjectRef":{"resource":"pods"},"AzureResourceId":"/r","principaloid":"o"},"AdditionalFields":{"Cluster":"c"}}`,
		`{"Timestamp":"2025-01-01T00:00:00Z","RawEventData":"{\"Verb\":\"get\"}"}`,
		"[\n" + ev1 + "\n]",
		`{"kind": 0}`, `{"protoPayload":{}}`,
		`{"timestamp":"2025-01-01T00:00:00Z","protoPayload":{"methodName":"io.k8s.core.v1.pods.exec.create","resourceName":"core/v1/namespaces/a/pods/p/exec","request":{"command":["id"]},"status":{"code":7}}}`,
		`{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logEvents":[{"timestamp":1,"message":"{"kind":"Event","auditID":"a"}"}]}`,
		"2024-05-01T10:00:00Z " + ev1 + "\n", "{\n\"kind\":\"Event\",\n\"verb\":\"get\"\n}\n{\"verb\":",
	} {
		f.Add([]byte(s))
	}
}

// checkEvent verifies the invariants every decoded event must keep.
func checkEvent(t *testing.T, e audit.Event) {
	t.Helper()
	again, err := audit.ParseEvent(e.Raw)
	if err != nil {
		t.Fatalf("emitted event does not parse: %v: %q", err, e.Raw)
	}
	again.Time, again.Cluster, again.ClusterResourceID = e.Time, e.Cluster, e.ClusterResourceID
	if d := cmp.Diff(e, again); d != "" {
		t.Fatalf("hot fields differ on reparse: %s", d)
	}
	checkHotAgainstMap(t, &e)
	for _, name := range audit.Tables() {
		m, _ := audit.NewMapper(name)
		cols, _ := audit.Schema(name)
		if err := audittest.CheckRow(cols, m.Row(&e)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// checkHotAgainstMap checks that the hot fields equal what the table
// views show, which the store's pushdown relies on.
func checkHotAgainstMap(t *testing.T, e *audit.Event) {
	t.Helper()
	v, err := audit.Dynamic(e.Raw)
	if err != nil {
		t.Fatal(err)
	}
	o := v.(map[string]any)
	str := func(f audit.Field, got string, path ...string) {
		var x any = o
		for _, p := range path {
			m, ok := x.(map[string]any)
			if !ok {
				x = nil
				break
			}
			x = m[p]
		}
		if x == nil {
			if e.Has(f) || got != "" {
				t.Fatalf("%v: hot %q present, view null", path, got)
			}
			return
		}
		if s, ok := x.(string); !ok || s != got || !e.Has(f) {
			t.Fatalf("%v: hot %q (present %v), view %#v", path, got, e.Has(f), x)
		}
	}
	str(audit.FieldVerb, e.Verb, "verb")
	str(audit.FieldAuditID, e.AuditID, "auditID")
	str(audit.FieldStage, e.Stage, "stage")
	str(audit.FieldRequestURI, e.RequestURI, "requestURI")
	str(audit.FieldUserAgent, e.UserAgent, "userAgent")
	str(audit.FieldUsername, e.User.Username, "user", "username")
	str(audit.FieldResource, e.ObjectRef.Resource, "objectRef", "resource")
	str(audit.FieldSubresource, e.ObjectRef.Subresource, "objectRef", "subresource")
	str(audit.FieldNamespace, e.ObjectRef.Namespace, "objectRef", "namespace")
	str(audit.FieldName, e.ObjectRef.Name, "objectRef", "name")
	str(audit.FieldAPIGroup, e.ObjectRef.APIGroup, "objectRef", "apiGroup")
	var code any
	if rs, ok := o["responseStatus"].(map[string]any); ok {
		code = rs["code"]
	}
	if (code == nil) == e.Has(audit.FieldCode) || (code != nil && code != e.Code) {
		t.Fatalf("code: hot %d, view %#v", e.Code, code)
	}
}

func fuzzDecode(t *testing.T, data []byte) {
	var evs []audit.Event
	st, err := audit.Decode(bytes.NewReader(data), audit.Options{AssumeTime: fixtureTime}, func(e audit.Event) error {
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != len(evs) || len(st.Problems) > audit.MaxProblems || len(st.Problems) > st.Rejected+st.Skipped {
		t.Fatalf("bad stats %+v for %d events", st, len(evs))
	}
	for _, e := range evs {
		checkEvent(t, e)
	}
}

func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(fuzzDecode)
}

// FuzzDecodeRecords puts the input inside a pretty-printed records
// document, to exercise the streaming document framer.
func FuzzDecodeRecords(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, []byte("{\n  \"records\": [\n"+string(data)+"\n  ]\n}\n"))
	})
}

func FuzzParseEvent(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := audit.ParseEvent(data)
		if err != nil {
			return
		}
		checkEvent(t, e)
	})
}

// FuzzDynamic compares Dynamic with encoding/json.
func FuzzDynamic(f *testing.F) {
	seeds(f)
	f.Add([]byte(`{"a":1,"a":2.5,"b":[1e3,-0,"\u00e9\ud800",null,true],"c":{"d":12345678901234567890}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := audit.Dynamic(data)
		var want any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		werr := dec.Decode(&want)
		if werr == nil && dec.More() {
			werr = dec.Decode(new(any))
			if werr == nil {
				werr = os.ErrInvalid
			}
		}
		if (err == nil) != (werr == nil && json.Valid(data)) {
			t.Fatalf("Dynamic err %v, encoding/json err %v", err, werr)
		}
		if err != nil {
			return
		}
		if d := cmp.Diff(normalize(want), got); d != "" {
			t.Fatal(d)
		}
	})
}

// normalize converts json.Number the way the table contract wants.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if n, err := x.Int64(); err == nil {
				return n
			}
		}
		fl, _ := x.Float64()
		return fl
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}
