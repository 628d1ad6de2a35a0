package gen_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/audit/gen"
)

func generate(t testing.TB, seed uint64, n int, opts gen.Options) []byte {
	var b bytes.Buffer
	if err := gen.New(seed, opts).WriteJSONL(&b, n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	a, b := generate(t, 42, 5000, gen.Options{}), generate(t, 42, 5000, gen.Options{})
	if !bytes.Equal(a, b) {
		t.Error("same seed, different output")
	}
	if bytes.Equal(a, generate(t, 43, 5000, gen.Options{})) {
		t.Error("different seeds, same output")
	}
}

func TestDistribution(t *testing.T) {
	end := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const n = 100000
	data := generate(t, 1, n, gen.Options{End: end, Span: 6 * time.Hour})
	evs, st, err := audit.DecodeAll(bytes.NewReader(data), audit.Options{Cluster: "c"})
	if err != nil || st.Rejected != 0 || len(evs) != n {
		t.Fatalf("%d events, %+v, %v", len(evs), st, err)
	}
	verbs := map[string]int{}
	execIDs := map[string][]string{}
	var ubuntu, privileged, oid, forbidden int
	for _, e := range evs {
		verbs[e.Verb]++
		if e.Time.Before(end.Add(-6*time.Hour-time.Second)) || e.Time.After(end.Add(11*time.Minute)) {
			t.Fatalf("time %v out of range", e.Time)
		}
		if e.ObjectRef.Subresource == "exec" || e.ObjectRef.Subresource == "attach" {
			if e.Code != 101 {
				t.Errorf("exec with code %d", e.Code)
			}
			execIDs[e.AuditID] = append(execIDs[e.AuditID], e.Stage)
		}
		if e.Verb == "create" && e.ObjectRef.Resource == "pods" && e.ObjectRef.Subresource == "" {
			if strings.HasPrefix(e.ObjectRef.Name, "ubuntu-") {
				ubuntu++
			}
			if bytes.Contains(e.Raw, []byte(`"privileged":true`)) {
				privileged++
			}
		}
		if e.PrincipalOID != "" {
			oid++
		}
		if e.Code == 403 {
			forbidden++
		}
	}
	reads := verbs["get"] + verbs["list"] + verbs["watch"]
	if reads < n/2 || verbs["create"] > n/5 || verbs["update"] < n/10 {
		t.Errorf("verb mix %v", verbs)
	}
	if len(execIDs) == 0 || ubuntu == 0 || privileged == 0 || oid == 0 || forbidden == 0 {
		t.Errorf("missing rare kinds: exec %d ubuntu %d privileged %d oid %d 403 %d", len(execIDs), ubuntu, privileged, oid, forbidden)
	}
	for id, stages := range execIDs {
		if len(stages) != 2 || stages[0] != "ResponseStarted" || stages[1] != "ResponseComplete" {
			t.Errorf("exec %s stages %v", id, stages)
		}
	}
	if !bytes.Contains(data, []byte("command=cat+%2Fetc%2Fshadow")) || !bytes.Contains(data, []byte(`"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/`)) {
		t.Error("exec command or kubectl user agent not in the expected form")
	}
}

func BenchmarkGenerate(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := gen.New(1, gen.Options{}).WriteJSONL(io.Discard, 1000000); err != nil {
			b.Fatal(err)
		}
	}
}
