package gen_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
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

// TestMetadataUnchanged pins the Metadata-level output: tests and
// benchmarks elsewhere depend on its exact events.
func TestMetadataUnchanged(t *testing.T) {
	for _, c := range []struct {
		seed uint64
		opts gen.Options
		want string
	}{
		{42, gen.Options{}, "0c0d5cac6ec83b9ae4a35f8dd73f7753c8ca4017bd70fc5f03ec6c12af02dc94"},
		{7, gen.Options{End: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Span: 6 * time.Hour, Nodes: 3, Level: gen.LevelMetadata}, "9228b10708ba0fb8e52572dc58b20688a7a2b5881d5344fa2dae6d30f04b0386"},
	} {
		sum := sha256.Sum256(generate(t, c.seed, 20000, c.opts))
		if got := hex.EncodeToString(sum[:]); got != c.want {
			t.Errorf("seed %d: sha256 %s, want %s", c.seed, got, c.want)
		}
	}
}

var rr = gen.Options{Level: gen.LevelRequestResponse, Span: 7 * 24 * time.Hour}

func TestRequestResponseDeterministic(t *testing.T) {
	a, b := generate(t, 42, 3000, rr), generate(t, 42, 3000, rr)
	if !bytes.Equal(a, b) {
		t.Error("same seed, different output")
	}
	if bytes.Equal(a, generate(t, 43, 3000, rr)) {
		t.Error("different seeds, same output")
	}
	if bytes.Equal(a, generate(t, 42, 3000, gen.Options{Span: rr.Span})) {
		t.Error("RequestResponse and Metadata levels, same output")
	}
}

// TestRequestResponse checks the shape of RequestResponse events: every
// line is an audit Event, the sizes are those of a real log, the bodies
// are where the verb puts them, nothing is repeated, and the rare kinds
// the hunts look for are still there.
func TestRequestResponse(t *testing.T) {
	const n = 40000
	data := generate(t, 5, n, rr)
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	var sizes []int
	seenLine := map[[32]byte]bool{}
	uids := map[string]int{}
	var hostPath, privileged, ubuntu, exec101, forbidden, oid, lists, withUID int
	for i, l := range lines {
		e, err := audit.ParseEvent(l)
		if err != nil {
			t.Fatalf("line %d: %v: %.300s", i+1, err, l)
		}
		sizes = append(sizes, len(l))
		if h := sha256.Sum256(l); seenLine[h] {
			t.Fatalf("line %d repeats an earlier line", i+1)
		} else {
			seenLine[h] = true
		}
		var body struct {
			Req  json.RawMessage `json:"requestObject"`
			Resp json.RawMessage `json:"responseObject"`
		}
		if err := json.Unmarshal(l, &body); err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Kind     string
			Metadata struct{ UID, ResourceVersion string }
			Items    []json.RawMessage
		}
		if body.Resp != nil {
			if err := json.Unmarshal(body.Resp, &resp); err != nil {
				t.Fatalf("line %d: responseObject: %v", i+1, err)
			}
			if resp.Metadata.UID != "" {
				uids[resp.Metadata.UID]++
				withUID++
			}
		}
		sub, res := e.ObjectRef.Subresource, e.ObjectRef.Resource
		secret := res == "secrets"
		switch {
		case sub == "exec" || sub == "attach":
			if e.Code != 101 || body.Req != nil || body.Resp != nil {
				t.Errorf("line %d: exec with code %d and bodies %t %t", i+1, e.Code, body.Req != nil, body.Resp != nil)
			}
			exec101++
		case secret:
			if e.Level != "Metadata" || body.Req != nil || body.Resp != nil {
				t.Errorf("line %d: a secret's event at level %s with bodies", i+1, e.Level)
			}
		case e.Verb == "watch":
			if body.Req != nil || body.Resp != nil {
				t.Errorf("line %d: a watch with a body", i+1)
			}
		case e.Verb == "create" || e.Verb == "update" || e.Verb == "patch" || e.Verb == "delete":
			if body.Req == nil || body.Resp == nil {
				t.Errorf("line %d: %s %s without request and response bodies", i+1, e.Verb, res)
			}
		case e.Verb == "get":
			if body.Req != nil || body.Resp == nil || resp.Kind == "" {
				t.Errorf("line %d: get %s: request body %t, response kind %q", i+1, res, body.Req != nil, resp.Kind)
			}
		case e.Verb == "list":
			if !strings.HasSuffix(resp.Kind, "List") || len(resp.Items) < 1 || len(resp.Items) > 3 {
				t.Errorf("line %d: list %s: kind %q with %d items", i+1, res, resp.Kind, len(resp.Items))
			}
			lists++
		}
		if e.Level != "RequestResponse" && !secret {
			t.Errorf("line %d: level %s", i+1, e.Level)
		}
		if bytes.Contains(body.Req, []byte(`"hostPath"`)) {
			hostPath++
		}
		if e.Verb == "create" && res == "pods" && sub == "" {
			if bytes.Contains(body.Req, []byte(`"privileged":true`)) {
				privileged++
			}
			if strings.HasPrefix(e.ObjectRef.Name, "ubuntu-") {
				ubuntu++
			}
		}
		if e.Code == 403 {
			forbidden++
		}
		if e.PrincipalOID != "" {
			oid++
		}
	}
	slices.Sort(sizes)
	total := 0
	for _, s := range sizes {
		total += s
	}
	median, avg := sizes[len(sizes)/2], total/len(sizes)
	t.Logf("median %d B, average %d B, p90 %d B, max %d B", median, avg, sizes[len(sizes)*9/10], sizes[len(sizes)-1])
	if median < 2048 || avg < 2048 || avg > 4096 {
		t.Errorf("median %d B, average %d B; want a median of 2 KB or more and an average of 2-4 KB", median, avg)
	}
	if frac := float64(hostPath) / n; hostPath == 0 || frac > 0.01 {
		t.Errorf("%d requestObjects with a hostPath in %d events; want a small fraction", hostPath, n)
	}
	if exec101 == 0 || privileged == 0 || ubuntu == 0 || forbidden == 0 || oid == 0 || lists == 0 {
		t.Errorf("missing kinds: exec %d privileged %d ubuntu %d 403 %d oid %d lists %d", exec101, privileged, ubuntu, forbidden, oid, lists)
	}
	// Objects about the same thing (a node's lease) keep their uid;
	// everything else gets a fresh one.
	if len(uids) < withUID/2 {
		t.Errorf("%d distinct uids in %d responses", len(uids), withUID)
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, level := range []string{gen.LevelMetadata, gen.LevelRequestResponse} {
		b.Run(level, func(b *testing.B) {
			b.ReportAllocs()
			const n = 200000
			var cw countWriter
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				if err := gen.New(1, gen.Options{Level: level}).WriteJSONL(&cw, n); err != nil {
					b.Fatal(err)
				}
			}
			secs := time.Since(t0).Seconds()
			b.ReportMetric(float64(n*b.N)/secs, "events/s")
			b.ReportMetric(float64(cw.n)/float64(n*b.N), "B/event")
		})
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
