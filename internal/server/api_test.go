package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/testenv"
)

type triggerResp struct {
	Status  string `json:"status"`
	Actions []struct {
		ID, Action, Target, Status, Message string
	} `json:"actions"`
	Error string `json:"error"`
}

func triggerBody(t *testing.T, action, ns, podName string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/aks-trigger-isolatepod.json")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("{{CLUSTER_ID}}", clusterID, "{{NAMESPACE}}", ns, "{{POD}}", podName).Replace(string(b))
	s = strings.Replace(s, `"action": "isolatepod"`, `"action": "`+action+`"`, 1)
	return []byte(s)
}

// The original Azure Function's request, with $id/$ref entities and the
// key in ?code=, isolates the named pod.
func TestAKSTriggerIsolatePod(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	req, _ := http.NewRequest("POST", sv.url+"/api/AKSTriggerResponse?code="+sv.keys["admin"], bytes.NewReader(triggerBody(t, "IsolatePod", ns, "web-1")))
	resp, err := sv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out triggerResp
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || out.Status != "succeeded" || len(out.Actions) != 1 || out.Actions[0].ID == "" {
		t.Fatalf("isolatepod: %d %+v", resp.StatusCode, out)
	}
	if !quarantined(t, env, ns, "web-1") || policies(t, env, ns) != 1 {
		t.Fatal("pod not quarantined by a deny-all policy")
	}
	// Same names with hyphens and underscores, and the release.
	if code := sv.call(t, "POST", "/api/AKSTriggerResponse", sv.keys["admin"], triggerBody(t, "remove_pod-isolation", ns, "web-1"), &out); code != 200 {
		t.Fatalf("removepodisolation: %d %+v", code, out)
	}
	if quarantined(t, env, ns, "web-1") || policies(t, env, ns) != 0 {
		t.Fatal("release left the quarantine in place")
	}
}

// collectartifacts with the playbooks' storageaccount / blobcontainer /
// blobsastoken writes an evidence set that verifies.
func TestAKSTriggerCollectArtifacts(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	_, sasToken, _ := strings.Cut(sv.sasURL, "?")
	body := triggerBody(t, "collectartifacts", ns, "web-1")
	body = bytes.Replace(body, []byte(`"storageaccount": ""`), []byte(`"storageaccount": "`+testenv.AzuriteAccount+`"`), 1)
	body = bytes.Replace(body, []byte(`"blobcontainer": ""`), []byte(`"blobcontainer": "evidence"`), 1)
	body = bytes.Replace(body, []byte(`"blobsastoken": ""`), []byte(`"blobsastoken": "?`+sasToken+`"`), 1)
	var out triggerResp
	if code := sv.call(t, "POST", "/api/AKSTriggerResponse", sv.keys["collector"], body, &out); code != 200 || len(out.Actions) != 1 {
		t.Fatalf("collectartifacts: %d %+v", code, out)
	}
	if strings.Contains(out.Actions[0].Message, "sig=") && !strings.Contains(out.Actions[0].Message, "REDACTED") {
		t.Fatalf("SAS signature in the response: %s", out.Actions[0].Message)
	}
	verifyEvidence(t, sv, out.Actions[0].ID)
}

// Bad requests get exactly 401, 403, 400 or 429, and change nothing.
func TestRejectedRequestsChangeNothing(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	good := triggerBody(t, "isolatepod", ns, "web-1")
	unknownCluster := bytes.Replace(good, []byte(clusterID), []byte("/subscriptions/x/resourceGroups/y/providers/Microsoft.ContainerService/managedClusters/elsewhere"), 1)
	cases := []struct {
		name, key string
		body      []byte
		want      int
		msg       string
	}{
		{"missing key", "", good, 401, "API key"},
		{"wrong key", "kdfir_not-a-real-key", good, 401, "API key"},
		{"wrong scope", sv.keys["collector"], good, 403, "may not run isolate-pod"},
		{"malformed json", sv.keys["admin"], []byte(`{"action": "isolatepod", "entities": [`), 400, "invalid JSON"},
		{"trailing data", sv.keys["admin"], []byte(`{"action": "isolatepod", "entities": []}]]]`), 400, "trailing data"},
		{"dryrun not a boolean", sv.keys["admin"], []byte(`{"action": "isolatepod", "entities": [], "dryrun": "maybe"}`), 400, "dryrun must be true or false"},
		{"oversized body", sv.keys["admin"], append([]byte(`{"action": "isolatepod", "entities": [], "x": "`), bytes.Repeat([]byte("a"), 2<<20)...), 400, "larger than"},
		{"unknown pod", sv.keys["admin"], triggerBody(t, "isolatepod", ns, "no-such-pod"), 400, "no-such-pod not found"},
		{"unknown cluster", sv.keys["admin"], unknownCluster, 400, "is not configured"},
		{"unknown action", sv.keys["admin"], triggerBody(t, "nuke", ns, "web-1"), 400, "unknown action"},
		{"exec disabled", sv.keys["admin"], bytes.Replace(triggerBody(t, "runcommand", ns, "web-1"), []byte(`"blobsastoken": ""`), []byte(`"blobsastoken": "", "command": "id"`), 1), 403, "exec.enabled"},
	}
	for _, c := range cases {
		var out struct{ Error string }
		code := sv.call(t, "POST", "/api/AKSTriggerResponse", c.key, c.body, &out)
		if code != c.want || !strings.Contains(out.Error, c.msg) {
			t.Errorf("%s: %d %q, want %d containing %q", c.name, code, out.Error, c.want, c.msg)
		}
	}
	if quarantined(t, env, ns, "web-1") || policies(t, env, ns) != 0 {
		t.Fatal("a rejected request changed the cluster")
	}
	// A read-only key past its rate limit gets 429.
	got429 := false
	for range 10 {
		if sv.call(t, "GET", "/v1/actions?limit=1", sv.keys["limited"], nil, nil) == http.StatusTooManyRequests {
			got429 = true
		}
	}
	if !got429 {
		t.Fatal("no 429 past the rate limit")
	}
}

type alertResp struct {
	Alert struct {
		ID      string
		Source  string
		Actions []string
	}
	Duplicate bool
	Actions   []string
	Playbooks []struct {
		Playbook string
		Waiting  bool
		Steps    []struct{ Action, Status, ActionID, Error string }
	}
}

// A Defender for Cloud alert runs the collect-then-isolate playbook end to
// end, and a second delivery of it does nothing.
func TestDefenderAlertRunsPlaybook(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "ubuntu-7d9")
	b, err := os.ReadFile("../alert/testdata/defender-alert.json")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.NewReplacer("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod", clusterID,
		`"Name": "shop"`, `"Name": "`+ns+`"`, "2517000000000000000_abcd", "alert-"+ns, `"Name": "aks-nodepool1-0"`, `"Name": "`+env.Node+`"`).Replace(string(b))
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["defender"], []byte(body), &out); code != 200 {
		t.Fatalf("post alert: %d %+v", code, out)
	}
	if out.Alert.Source != "defender" || len(out.Playbooks) != 1 || out.Playbooks[0].Playbook != "defender-collect-then-isolate" || len(out.Actions) != 2 {
		t.Fatalf("alert response: %+v", out)
	}
	if !quarantined(t, env, ns, "ubuntu-7d9") {
		t.Fatal("pod not isolated")
	}
	verifyEvidence(t, sv, out.Playbooks[0].Steps[0].ActionID)
	var again alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["defender"], []byte(body), &again); code != 200 || !again.Duplicate || again.Alert.ID != out.Alert.ID {
		t.Fatalf("duplicate delivery: %d %+v", code, again)
	}
	var got struct{ Actions []string }
	if code := sv.call(t, "GET", "/v1/alerts/"+out.Alert.ID, sv.keys["sentinel"], nil, &got); code != 200 || len(got.Actions) != 2 {
		t.Fatalf("GET alert: %d %+v", code, got)
	}
}

func TestFalcoAlertRunsPlaybook(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-7f9")
	b, err := os.ReadFile("../alert/testdata/falco.json")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.NewReplacer(`"k8s.ns.name":"shop"`, `"k8s.ns.name":"`+ns+`"`, "8c7e6d5f-0000-4000-8000-123456789abc", "falco-"+ns).Replace(string(b))
	// Falco names no cluster: the key has none either, so the only
	// configured cluster is used.
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["defender"], []byte(body), &out); code != 200 || len(out.Actions) != 1 {
		t.Fatalf("falco alert: %d %+v", code, out)
	}
	if !quarantined(t, env, ns, "web-7f9") {
		t.Fatal("pod not isolated")
	}
}

// A step that needs approval waits in pending_approval, then runs (and the
// playbook goes on) after POST /v1/actions/{id}/approve.
func TestApprovalStep(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	body := `{"schema":"kdfir.io/alert/v1","title":"needs approval: web-1","severity":"high","sourceId":"approve-` + ns + `","entities":[{"type":"pod","namespace":"` + ns + `","name":"web-1","cluster":"testenv"}]}`
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["sentinel"], []byte(body), &out); code != 200 || len(out.Playbooks) != 1 || !out.Playbooks[0].Waiting {
		t.Fatalf("alert: %d %+v", code, out)
	}
	held := out.Playbooks[0].Steps[0]
	if held.Status != "pending_approval" || quarantined(t, env, ns, "web-1") {
		t.Fatalf("held step ran: %+v", held)
	}
	var e journal.Entry
	sv.call(t, "GET", "/v1/actions/"+held.ActionID, sv.keys["sentinel"], nil, &e)
	if e.Status != journal.PendingApproval {
		t.Fatalf("journal status %s", e.Status)
	}
	var ap struct {
		Action   struct{ ID, Status string }
		Playbook struct {
			Steps []struct{ Action, Status string }
		}
	}
	if code := sv.call(t, "POST", "/v1/actions/"+held.ActionID+"/approve", sv.keys["sentinel"], nil, &ap); code != 403 {
		t.Fatalf("approve without scope for the action: %d", code)
	}
	if code := sv.call(t, "POST", "/v1/actions/"+held.ActionID+"/approve", sv.keys["admin"], nil, &ap); code != 200 || ap.Action.Status != "succeeded" {
		t.Fatalf("approve: %d %+v", code, ap)
	}
	if !quarantined(t, env, ns, "web-1") || len(ap.Playbook.Steps) != 0 {
		// the next step (cordon-node) has no node entity: skipped
		if len(ap.Playbook.Steps) != 1 || ap.Playbook.Steps[0].Status != "skipped" {
			t.Fatalf("after approval: quarantined %v, steps %+v", quarantined(t, env, ns, "web-1"), ap.Playbook.Steps)
		}
	}
	if code := sv.call(t, "POST", "/v1/actions/"+held.ActionID+"/approve", sv.keys["admin"], nil, nil); code != 409 {
		t.Fatalf("second approval: %d", code)
	}
	// And the isolation reverts through the API.
	var res struct{ Status string }
	if code := sv.call(t, "POST", "/v1/actions/"+ap.Action.ID+"/revert", sv.keys["admin"], nil, &res); code != 200 || quarantined(t, env, ns, "web-1") {
		t.Fatalf("revert: %d %+v", code, res)
	}
}

func TestPostActionAndMetrics(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "api-1")
	var res struct{ ID, Status string }
	body := `{"action":"isolate-pod","target":{"namespace":"` + ns + `","name":"api-1"},"params":{"label":"status=quarantine"},"reason":"INC-42"}`
	if code := sv.call(t, "POST", "/v1/actions", sv.keys["admin"], []byte(body), &res); code != 200 || res.Status != "succeeded" {
		t.Fatalf("post action: %d %+v", code, res)
	}
	if pod(t, env, ns, "api-1").Labels["status"] != "quarantine" {
		t.Fatal("custom label not applied")
	}
	var list struct{ Actions []journal.Entry }
	if code := sv.call(t, "GET", "/v1/actions?target="+ns+"/api-1", sv.keys["limited"], nil, &list); code != 200 && code != 429 {
		t.Fatalf("list: %d", code)
	}
	req, _ := http.NewRequest("GET", sv.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+sv.keys["admin"])
	resp, err := sv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"kdfir_actions_total", "kdfir_http_requests_total", "kdfir_action_duration_seconds_bucket", "kdfir_alerts_received_total"} {
		if !strings.Contains(buf.String(), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	// No TLS below 1.2, and plain HTTP is refused.
	if _, err := http.Get("http://" + listenAddr + "/healthz"); err == nil {
		resp, _ := http.Get("http://" + listenAddr + "/healthz")
		if resp != nil && resp.StatusCode == 200 {
			t.Fatal("plain HTTP served")
		}
	}
}
