package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/server"
)

type huntAnswer struct {
	Columns []struct{ Name, Type string }
	Rows    [][]any
	Elapsed int64 `json:"elapsedMs"`
	Scanned int64
	Trunc   bool `json:"truncated"`
	Chart   *struct {
		Kind, X, Series string
		Y               []string
	}
	Error     string
	Line, Col int
}

func (sv *svc) hunt(t *testing.T, key string, body any) (int, huntAnswer) {
	t.Helper()
	b, _ := json.Marshal(body)
	var out huntAnswer
	code := sv.call(t, "POST", "/v1/hunt", key, b, &out)
	return code, out
}

func TestHuntAPI(t *testing.T) {
	sv := kdfir(t)
	admin := sv.keys["admin"]

	// The API server's own requests reach the store through the webhook.
	q := map[string]any{"query": "KubeAudit\n| summarize n = count() by bin(stageTimestamp, 1m), verb\n| render timechart", "since": "1h"}
	deadline := time.Now().Add(30 * time.Second)
	var res huntAnswer
	for {
		var code int
		if code, res = sv.hunt(t, admin, q); code != 200 {
			t.Fatalf("hunt: %d %s", code, res.Error)
		}
		if len(res.Rows) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(res.Rows) == 0 || res.Scanned == 0 {
		t.Fatalf("no rows from the webhook's events: %+v", res)
	}
	if res.Chart == nil || res.Chart.Kind != "timechart" || res.Chart.X != "stageTimestamp" || res.Chart.Series != "verb" || len(res.Chart.Y) != 1 || res.Chart.Y[0] != "n" {
		t.Fatalf("chart %+v", res.Chart)
	}
	if got := fmt.Sprint(res.Columns); got != "[{stageTimestamp datetime} {verb string} {n long}]" {
		t.Fatalf("columns %s", got)
	}

	// summarize by bin() draws without render; a plain query does not.
	if _, r := sv.hunt(t, admin, map[string]any{"query": "KubeAudit | summarize count() by bin(stageTimestamp, 5m)"}); r.Chart == nil || r.Chart.Kind != "timechart" {
		t.Fatalf("bin chart %+v", r.Chart)
	}
	if _, r := sv.hunt(t, admin, map[string]any{"query": "KubeAudit | summarize n = count() by verb | render piechart"}); r.Chart == nil || r.Chart.Kind != "piechart" || r.Chart.X != "verb" {
		t.Fatalf("pie chart %+v", r.Chart)
	}
	code, r := sv.hunt(t, admin, map[string]any{"query": "range x from 1 to 100 step 1", "maxRows": 2})
	if code != 200 || r.Chart != nil || len(r.Rows) != 2 || !r.Trunc {
		t.Fatalf("bounded: %d rows %d truncated %v chart %+v", code, len(r.Rows), r.Trunc, r.Chart)
	}

	// Errors in the query are 400s at their line and column; nothing the
	// caller sends is a 5xx.
	for _, tc := range []struct {
		name      string
		body      string
		line, col int
		want      string
	}{
		{"syntax", `{"query": "KubeAudit\n| where verb = \"get\""}`, 2, 14, "2:14: expected"},
		{"unknown column", `{"query": "KubeAudit\n| where nosuchcolumn == 1"}`, 0, 0, "nosuchcolumn"},
		{"unknown table", `{"query": "NoTable | take 1"}`, 0, 0, "NoTable"},
		{"empty", `{"query": "  "}`, 0, 0, "query is required"},
		{"bad since", `{"query": "KubeAudit", "since": "yesterday"}`, 0, 0, "since"},
		{"until before since", `{"query": "KubeAudit", "since": "1h", "until": "2h"}`, 0, 0, "until must be after since"},
		{"too many rows", `{"query": "KubeAudit", "maxRows": 1000000}`, 0, 0, "maxRows"},
		{"negative rows", `{"query": "KubeAudit", "maxRows": -1}`, 0, 0, "maxRows"},
		{"unknown field", `{"query": "KubeAudit", "rows": 1}`, 0, 0, "unknown field"},
		{"not json", `KubeAudit | take 1`, 0, 0, "invalid JSON"},
		{"trailing", `{"query": "KubeAudit"} {}`, 0, 0, "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out huntAnswer
			code := sv.call(t, "POST", "/v1/hunt", admin, []byte(tc.body), &out)
			if code != 400 || !strings.Contains(out.Error, tc.want) {
				t.Fatalf("%d %q, want 400 with %q", code, out.Error, tc.want)
			}
			if tc.line != 0 && (out.Line != tc.line || out.Col != tc.col) {
				t.Fatalf("at %d:%d, want %d:%d", out.Line, out.Col, tc.line, tc.col)
			}
		})
	}

	// The hunt scope: read alone is not enough.
	if code, _ := sv.hunt(t, sv.keys["collector"], q); code != 403 {
		t.Fatalf("hunt without the hunt scope: %d", code)
	}
	if code := sv.call(t, "POST", "/v1/hunt", "", []byte(`{"query":"KubeAudit"}`), nil); code != 401 {
		t.Fatalf("hunt without a key: %d", code)
	}

	var schema struct {
		Tables []struct {
			Name    string
			Columns []struct{ Name, Type string }
		}
	}
	if code := sv.call(t, "GET", "/v1/hunt/schema", sv.keys["collector"], nil, &schema); code != 200 {
		t.Fatalf("schema: %d", code)
	}
	tables := map[string]string{}
	for _, tb := range schema.Tables {
		for _, c := range tb.Columns {
			tables[tb.Name+"."+c.Name] = c.Type
		}
	}
	if tables["KubeAudit.stageTimestamp"] != "datetime" || tables["CloudAuditEvents.RawEventData"] != "dynamic" {
		t.Fatalf("schema: %v", schema.Tables)
	}
	var lib struct {
		Queries []struct{ Name, Query string }
	}
	if code := sv.call(t, "GET", "/v1/hunt/queries", sv.keys["collector"], nil, &lib); code != 200 || len(lib.Queries) == 0 {
		t.Fatalf("queries: %d %v", code, lib)
	}
	found := false
	for _, b := range lib.Queries {
		found = found || b.Name == "exec-into-pods" && strings.Contains(b.Query, "KubeAudit")
	}
	if !found {
		t.Fatalf("exec-into-pods is not among the built-in queries: %v", lib.Queries)
	}
	if code := sv.call(t, "GET", "/v1/hunt/schema", auditKey, nil, nil); code != 403 {
		t.Fatalf("schema without read: %d", code)
	}
}

func TestRulesAPI(t *testing.T) {
	sv := kdfir(t)
	var list struct {
		Rules []struct {
			ID, Query string
			Pack      bool
			Schedule  *struct{ Every string }
			Alerts    struct{ Total, Open int }
		}
	}
	if code := sv.call(t, "GET", "/v1/rules", sv.keys["collector"], nil, &list); code != 200 || len(list.Rules) < 10 {
		t.Fatalf("rules: %d, %d rules", code, len(list.Rules))
	}
	ids := map[string]bool{}
	for _, r := range list.Rules {
		ids[r.ID] = r.Pack && r.Query != ""
	}
	if !ids["k8s-exec-into-pod"] {
		t.Fatalf("k8s-exec-into-pod is not a pack rule with a query: %+v", list.Rules)
	}

	// A rule that matches what the API server does all the time; the test
	// raises nothing.
	var before struct{ Alerts []any }
	sv.call(t, "GET", "/v1/alerts?rule=k8s-exec-into-pod&limit=1000&status=new,active,closed", sv.keys["admin"], nil, &before)
	var test struct {
		Rule     string
		Since    time.Time
		Alerts   []struct{ Title, Rule string }
		Excepted []any
	}
	if code := sv.call(t, "POST", "/v1/rules/k8s-exec-into-pod/test", sv.keys["admin"], nil, &test); code != 200 || test.Rule != "k8s-exec-into-pod" || test.Alerts == nil || test.Excepted == nil {
		t.Fatalf("test: %d %+v", code, test)
	}
	if time.Since(test.Since) < 23*time.Hour || time.Since(test.Since) > 25*time.Hour {
		t.Fatalf("test window starts %v", test.Since)
	}
	var after struct{ Alerts []any }
	sv.call(t, "GET", "/v1/alerts?rule=k8s-exec-into-pod&limit=1000&status=new,active,closed", sv.keys["admin"], nil, &after)
	if len(after.Alerts) != len(before.Alerts) {
		t.Fatalf("testing a rule raised alerts: %d before, %d after", len(before.Alerts), len(after.Alerts))
	}
	for _, tc := range []struct {
		path, key, body string
		want            int
	}{
		{"/v1/rules/no-such-rule/test", "admin", "", 404},
		{"/v1/rules/k8s-exec-into-pod/test", "admin", `{"since": "last week"}`, 400},
		{"/v1/rules/k8s-exec-into-pod/test", "admin", `{"unknown": 1}`, 400},
		{"/v1/rules/k8s-exec-into-pod/test", "admin", `{"since": "1h"}`, 200},
		{"/v1/rules/k8s-exec-into-pod/test", "collector", "", 403},
	} {
		if code := sv.call(t, "POST", tc.path, sv.keys[tc.key], []byte(tc.body), nil); code != tc.want {
			t.Errorf("POST %s as %s with %q: %d, want %d", tc.path, tc.key, tc.body, code, tc.want)
		}
	}
	if code := sv.call(t, "GET", "/v1/rules", auditKey, nil, nil); code != 403 {
		t.Fatalf("rules without read: %d", code)
	}
}

// plantCollection writes a signed collection of files under prefix, as a
// collect action would, and returns its id in destination dest. A
// non-empty lie is recorded in the manifest as that file's hash instead
// of the real one.
func plantCollection(t testing.TB, sink evidence.Sink, key ed25519.PrivateKey, dest, prefix string, files map[string]string, lie string) string {
	t.Helper()
	ctx := context.Background()
	out := sink.Sub(prefix)
	pub := key.Public().(ed25519.PublicKey)
	files[evidence.PublicKeyName] = string(evidence.MarshalPublicKey(pub))
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	id := filepath.Base(prefix)
	m := evidence.Manifest{Schema: evidence.Schema, ActionID: id, Action: "collect-pod", Prefix: prefix,
		Target: evidence.Target{Kind: "Pod", Namespace: "shop", Name: "web-1"}, Cluster: evidence.Cluster{Name: "testenv"},
		Started: time.Now().UTC(), Finished: time.Now().UTC(), SigningKey: evidence.Fingerprint(pub)}
	for _, n := range names {
		if _, err := out.Put(ctx, n, strings.NewReader(files[n])); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(files[n]))
		h := hex.EncodeToString(sum[:])
		if lie != "" && n != evidence.PublicKeyName {
			h, lie = lie, ""
		}
		m.Artifacts = append(m.Artifacts, evidence.Artifact{Path: n, Size: int64(len(files[n])), SHA256: h, Source: "test", Collected: m.Started})
	}
	body, _ := json.MarshalIndent(m, "", "  ")
	if _, err := out.Put(ctx, evidence.ManifestName, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, body)) + "\n"
	if _, err := out.Put(ctx, evidence.SignatureName, strings.NewReader(sig)); err != nil {
		t.Fatal(err)
	}
	return dest + ":" + id
}

type evidenceAnswer struct {
	ID        string
	Artifacts int
	Signature struct {
		Signed  bool `json:"signatureValid"`
		Trusted bool
	}
	Manifest     *evidence.Manifest
	Verification *struct{ OK bool }
	OK           bool
	Report       *evidence.Report
	Error        string
}

// sinkAndKey are the test service's evidence container and signing key.
func sinkAndKey(t testing.TB, sv *svc) (evidence.Sink, ed25519.PrivateKey) {
	t.Helper()
	sink, err := evidence.SinkFromURL(sv.sasURL)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := evidence.LoadOrCreateKey(sv.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return sink, key
}

func TestEvidenceAPI(t *testing.T) {
	sv := kdfir(t)
	sink, key := sinkAndKey(t, sv)
	stamp := time.Now().UTC().Format("20060102T150405Z")
	good := plantCollection(t, sink, key, "default", fmt.Sprintf("testenv/shop/web-1/%s-evidence-api-%d", stamp, time.Now().UnixNano()),
		map[string]string{"logs/app.log": "started\n", "pod.yaml": "kind: Pod\n"}, "")
	bad := plantCollection(t, sink, key, "default", fmt.Sprintf("testenv/shop/web-1/%s-evidence-bad-%d", stamp, time.Now().UnixNano()),
		map[string]string{"logs/app.log": "started\n"}, strings.Repeat("0", 64))
	reader := sv.keys["collector"]

	var list struct {
		Collections  []evidenceAnswer
		Destinations []struct{ Name, Location, Error string }
	}
	if code := sv.call(t, "GET", "/v1/evidence", reader, nil, &list); code != 200 {
		t.Fatalf("list: %d", code)
	}
	var seen *evidenceAnswer
	for i, c := range list.Collections {
		if c.ID == good {
			seen = &list.Collections[i]
		}
	}
	if seen == nil || !seen.Signature.Signed || !seen.Signature.Trusted || seen.Artifacts != 3 || seen.Verification != nil {
		t.Fatalf("collection %s in the list: %+v", good, seen)
	}
	if len(list.Destinations) != 1 || list.Destinations[0].Name != "default" || strings.Contains(list.Destinations[0].Location, "sig=") {
		t.Fatalf("destinations %+v", list.Destinations)
	}

	var one evidenceAnswer
	if code := sv.call(t, "GET", "/v1/evidence/"+good, reader, nil, &one); code != 200 || one.Manifest == nil || len(one.Manifest.Artifacts) != 3 {
		t.Fatalf("get: %d %+v", code, one)
	}
	resp, err := sv.client.Do(mustRequest(t, "GET", sv.url+"/v1/evidence/"+good+"/artifacts/logs/app.log", reader))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(body)
	if resp.StatusCode != 200 || string(body) != "started\n" || resp.Header.Get("X-Kdfir-SHA256") != hex.EncodeToString(sum[:]) ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("artifact: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	var v evidenceAnswer
	if code := sv.call(t, "POST", "/v1/evidence/"+good+"/verify", reader, nil, &v); code != 200 || !v.OK || v.Report == nil || v.Report.Checked != 3 {
		t.Fatalf("verify: %d %+v", code, v)
	}
	if code := sv.call(t, "POST", "/v1/evidence/"+bad+"/verify", reader, nil, &v); code != 200 || v.OK || len(v.Report.Problems) != 1 || v.Report.Problems[0].Kind != evidence.ProblemAltered {
		t.Fatalf("verify altered: %d %+v", code, v.Report)
	}
	sv.call(t, "GET", "/v1/evidence/"+good, reader, nil, &one)
	if one.Verification == nil || !one.Verification.OK {
		t.Fatalf("the last verification is not kept: %+v", one.Verification)
	}

	// Nothing outside the listed collections and their manifests can be
	// named.
	for _, p := range []string{
		"/v1/evidence/nope",
		"/v1/evidence/default:",
		"/v1/evidence/default:..",
		"/v1/evidence/other:" + strings.TrimPrefix(good, "default:"),
		"/v1/evidence/default:%2e%2e%2f%2e%2e",
		"/v1/evidence/" + good + "/artifacts/nothing",
		"/v1/evidence/" + good + "/artifacts/%2e%2e/" + strings.TrimPrefix(bad, "default:") + "/logs/app.log",
		"/v1/evidence/" + good + "/artifacts/logs%2f..%2f..%2fmanifest.json",
		"/v1/evidence/" + good + "/artifacts/%2fetc%2fpasswd",
	} {
		if code := sv.call(t, "GET", p, reader, nil, nil); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	if code := sv.call(t, "GET", "/v1/evidence", auditKey, nil, nil); code != 403 {
		t.Fatalf("evidence without read: %d", code)
	}
	if code := sv.call(t, "POST", "/v1/evidence/"+good+"/verify", auditKey, nil, nil); code != 403 {
		t.Fatalf("verify without read: %d", code)
	}
}

func mustRequest(t testing.TB, method, url, key string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-functions-key", key)
	return req
}

// A local evidence directory: no request reads a file beside it, however
// it is spelled.
func TestEvidenceLocalTraversal(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "secret.txt"), []byte("not evidence"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "evidence")
	sink, err := evidence.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	id := plantCollection(t, sink, priv, "local", "c/20261203T000000Z-local", map[string]string{"a.txt": "a"}, "")
	secret, hash, _ := auth.Generate()
	other, otherHash, _ := auth.Generate()
	authn, err := auth.New([]*auth.Key{{Name: "reader", Hash: hash, Scopes: []string{"read"}},
		{Name: "other-cluster", Hash: otherHash, Scopes: []string{"read"}, Cluster: "prod-eu"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Auth: authn, Metrics: server.NewMetrics(), Log: slog.New(slog.DiscardHandler),
		EvidenceStores: map[string]evidence.Sink{"local": sink}, EvidenceKey: priv.Public().(ed25519.PublicKey)}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	getAs := func(key, p string) (int, string) {
		resp, err := hs.Client().Do(mustRequest(t, "GET", hs.URL+p, key))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(p string) (int, string) { return getAs(secret, p) }
	if code, body := get("/v1/evidence/" + id + "/artifacts/a.txt"); code != 200 || body != "a" {
		t.Fatalf("artifact: %d %q", code, body)
	}
	// A key bound to another cluster neither lists nor reads testenv's
	// collection.
	if code, body := getAs(other, "/v1/evidence"); code != 200 || strings.Contains(body, id) {
		t.Errorf("list as a key bound to another cluster: %d %s", code, body)
	}
	for _, p := range []string{"/v1/evidence/" + id, "/v1/evidence/" + id + "/artifacts/a.txt"} {
		if code, body := getAs(other, p); code != 404 || strings.Contains(body, "\"a\"") {
			t.Errorf("GET %s as a key bound to another cluster: %d %q", p, code, body)
		}
	}
	for _, p := range []string{
		"/v1/evidence/" + id + "/artifacts/..%2f..%2f..%2fsecret.txt",
		"/v1/evidence/" + id + "/artifacts/%2e%2e/%2e%2e/%2e%2e/secret.txt",
		"/v1/evidence/" + id + "/artifacts/" + url2(filepath.Join(root, "secret.txt")),
		"/v1/evidence/local:..%2f..%2f..",
		"/v1/evidence/local:" + url2("../secret.txt") + "/artifacts/secret.txt",
	} {
		code, body := get(p)
		if code == 200 || strings.Contains(body, "not evidence") {
			t.Errorf("GET %s: %d %q", p, code, body)
		}
		if code >= 500 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
}

func url2(p string) string { return strings.ReplaceAll(p, "/", "%2f") }
