package sigma_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/sigma"
)

func event(t *testing.T, id, body string) audit.Event {
	t.Helper()
	e, err := audit.ParseEvent([]byte(`{"kind":"Event","auditID":"` + id + `","stage":"ResponseComplete","stageTimestamp":"2025-01-01T00:00:00Z",` + body + `}`))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Each rule of testdata/ok, translated, fires on its positives and not
// on its near misses.
func TestConvertedRulesFire(t *testing.T) {
	cases := map[string]struct{ pos, neg []string }{
		"exec_shell.yml": {
			pos: []string{`"verb":"create","requestURI":"/api/v1/namespaces/a/pods/p/exec?command=bash&container=c","objectRef":{"resource":"pods","subresource":"exec","namespace":"a","name":"p"},"responseStatus":{"code":101}`,
				`"verb":"get","requestURI":"/api/v1/namespaces/a/pods/p/exec?command=%2Fbin%2Fsh","objectRef":{"resource":"pods","subresource":"exec","namespace":"a","name":"p"},"responseStatus":{"code":101}`},
			neg: []string{`"verb":"create","requestURI":"/api/v1/namespaces/a/pods/p/exec?command=bash","objectRef":{"resource":"pods","subresource":"exec","namespace":"a","name":"p"},"responseStatus":{"code":403}`,
				`"verb":"get","requestURI":"/api/v1/namespaces/a/pods/p/exec?command=ls","objectRef":{"resource":"pods","subresource":"exec","namespace":"a","name":"p"},"responseStatus":{"code":101}`},
		},
		"secret_delete.yml": {
			pos: []string{`"verb":"DELETE","user":{"username":"alice"},"objectRef":{"resource":"secrets","namespace":"a","name":"s"}`},
			neg: []string{`"verb":"delete","user":{"username":"system:serviceaccount:kube-system:namespace-controller"},"objectRef":{"resource":"secrets","namespace":"a","name":"s"}`,
				`"verb":"get","user":{"username":"alice"},"objectRef":{"resource":"secrets","namespace":"a","name":"s"}`},
		},
		"scanner.yml": {
			pos: []string{`"verb":"list","userAgent":"Kube-Hunter/1.0","sourceIPs":["10.0.0.1"]`, `"verb":"list","userAgent":"python-requests/2.31","sourceIPs":["198.51.100.7"]`},
			neg: []string{`"verb":"list","userAgent":"hunter/1.0","sourceIPs":["10.0.0.1"]`, `"verb":"list","userAgent":"python-requests/2.31","sourceIPs":["203.0.113.7"]`},
		},
		"hostpath_alias.yml": {
			pos: []string{`"verb":"create","objectRef":{"resource":"pods","namespace":"a","name":"p"},"requestObject":{"spec":{"volumes":[{"name":"h","hostPath":{"path":"/etc","type":""}}],"containers":[{"name":"c","image":"x"}]}}`},
			neg: []string{`"verb":"create","objectRef":{"resource":"pods","namespace":"a","name":"p"},"requestObject":{"spec":{"volumes":[{"name":"e","emptyDir":{}}],"containers":[{"name":"c","image":"x"}]}}`},
		},
		"cronjob_write.yml": {
			pos: []string{`"verb":"patch","objectRef":{"resource":"cronjobs","namespace":"a","name":"c"}`},
			neg: []string{`"verb":"patch","objectRef":{"resource":"jobs","namespace":"a","name":"c"}`, `"verb":"get","objectRef":{"resource":"cronjobs","namespace":"a","name":"c"}`},
		},
	}
	for file, c := range cases {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", "ok", file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sr, err := sigma.Convert(path, b)
			if err != nil {
				t.Fatal(err)
			}
			r, err := detect.Parse(sr.FileName(), sr.YAML, nil)
			if err != nil {
				t.Fatalf("translated rule is invalid: %v\n%s", err, sr.YAML)
			}
			for i, body := range c.pos {
				alerts, err := (&detect.Engine{}).Evaluate(context.Background(), r, audit.NewBatchSource([]audit.Event{event(t, "p", body)}))
				if err != nil || len(alerts) != 1 {
					t.Errorf("positive %d: %d alerts, %v\n%s", i, len(alerts), err, r.QueryText())
				}
			}
			for i, body := range c.neg {
				alerts, err := (&detect.Engine{}).Evaluate(context.Background(), r, audit.NewBatchSource([]audit.Event{event(t, "n", body)}))
				if err != nil || len(alerts) != 0 {
					t.Errorf("near miss %d: %d alerts, %v\n%s", i, len(alerts), err, r.QueryText())
				}
			}
		})
	}
}

func TestConvertMetadata(t *testing.T) {
	b, err := os.ReadFile("testdata/ok/exec_shell.yml")
	if err != nil {
		t.Fatal(err)
	}
	sr, err := sigma.Convert("exec_shell.yml", b)
	if err != nil {
		t.Fatal(err)
	}
	r, err := detect.Parse(sr.FileName(), sr.YAML, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "sigma-shell-started-in-a-pod-through-exec" || r.Severity != "high" || strings.Join(r.Techniques, ",") != "T1609" ||
		strings.Join(r.Tactics, ",") != "Execution" || !strings.Contains(r.Description, "0e6f3a52-1111-4c4e-9a51-000000000001") {
		t.Errorf("%+v", r)
	}
}

func TestConvertRefuses(t *testing.T) {
	want := map[string]string{
		"wrong_logsource.yml":    "only product kubernetes, service audit is imported",
		"base64.yml":             `modifier "base64offset" is not supported`,
		"not_an_event_field.yml": `field "file_path" is not in a Kubernetes audit Event`,
		"aggregation.yml":        "aggregations",
		"keywords.yml":           "keyword selections",
	}
	rules, errs := sigma.ConvertPaths([]string{"testdata/refused"})
	if len(rules) != 0 || len(errs) != len(want) {
		t.Fatalf("%d rules, %d errors: %v", len(rules), len(errs), errs)
	}
	for _, err := range errs {
		msg := err.Error()
		file := filepath.Base(strings.SplitN(msg, ":", 2)[0])
		if w, ok := want[file]; !ok || !strings.Contains(msg, w) || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q, want one line with %q", file, msg, want[file])
		}
	}
	rules, errs = sigma.ConvertPaths([]string{"testdata/ok"})
	if len(rules) != 5 || len(errs) != 0 {
		t.Errorf("ok: %d rules, %v", len(rules), errs)
	}
}
