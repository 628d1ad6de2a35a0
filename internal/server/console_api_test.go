package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/testenv"
)

type consoleConf struct {
	Key                   string
	Actions               []string
	ExecEnabled           bool
	Hunt, Triage, Approve bool
	Revert                string
}

// GET /v1/console/config says what the key may do, so the console shows
// only the buttons it can use; exec-pod only where exec is enabled.
func TestConsoleConfig(t *testing.T) {
	sv := kdfir(t)
	var c consoleConf
	if code := sv.call(t, "GET", "/v1/console/config", sv.keys["admin"], nil, &c); code != 200 {
		t.Fatalf("config: %d", code)
	}
	want := consoleConf{Key: "admin", Actions: []string{"collect-namespace", "collect-node", "collect-pod", "cordon-node", "isolate-namespace",
		"isolate-pod", "uncordon-node", "unisolate-namespace", "unisolate-pod"}, Hunt: true, Triage: true, Approve: true, Revert: "any"}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("admin (-want +got):\n%s", diff)
	}
	c = consoleConf{}
	sv.call(t, "GET", "/v1/console/config", sv.keys["reverter"], nil, &c)
	if diff := cmp.Diff(consoleConf{Key: "reverter", Actions: []string{}, Revert: "own"}, c); diff != "" {
		t.Errorf("reverter (-want +got):\n%s", diff)
	}
	if code := sv.call(t, "GET", "/v1/console/config", "", nil, nil); code != 401 {
		t.Errorf("without a key: %d", code)
	}
	// Where exec is enabled, exec-pod is offered to a key with its scope.
	cs := kdfirCompat(t)
	c = consoleConf{}
	cs.call(t, "GET", "/v1/console/config", cs.keys["admin"], nil, &c)
	if !c.ExecEnabled || !strings.Contains(strings.Join(c.Actions, ","), "exec-pod") {
		t.Errorf("with exec enabled: %+v", c)
	}
}

type planned struct {
	Status string
	Plan   []struct {
		Object journal.Object
		Op     string
		Fields []struct {
			Field    string
			From, To any
		}
		Detail string
	}
	LeftAlone []string
}

func (p planned) ops() []string {
	var out []string
	for _, it := range p.Plan {
		out = append(out, it.Op+" "+it.Object.Kind)
	}
	return out
}

// A dry run through POST /v1/actions answers the plan: the objects that
// would change and how, from the API server's dry-run answers.
func TestPreviewActionAPI(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web")
	pod := `"target":{"type":"pod","namespace":"` + ns + `","name":"web"}`
	var p planned
	if code := sv.call(t, "POST", "/v1/actions", sv.keys["admin"], []byte(`{"action":"isolate-pod",`+pod+`,"dryRun":true}`), &p); code != 200 || p.Status != "dry-run" {
		t.Fatalf("isolate dry run: %d %+v", code, p)
	}
	if diff := cmp.Diff([]string{"patch Pod", "create NetworkPolicy"}, p.ops()); diff != "" {
		t.Fatalf("isolate plan (-want +got):\n%s", diff)
	}
	if f := p.Plan[0].Fields; len(f) == 0 || !strings.Contains(f[len(f)-1].Field+f[0].Field, "kdfir.io") {
		t.Errorf("the pod's plan names no kdfir field: %+v", f)
	}
	if quarantined(t, env, ns, "web") || policies(t, env, ns) != 0 {
		t.Fatal("the dry run changed the cluster")
	}
	p = planned{}
	if code := sv.call(t, "POST", "/v1/actions", sv.keys["admin"], []byte(`{"action":"collect-pod",`+pod+`,"dryRun":true}`), &p); code != 200 || len(p.Plan) != 1 || p.Plan[0].Op != "collect" {
		t.Fatalf("collect dry run: %d %+v", code, p)
	}
	// Run command, where exec is enabled: the plan says what would run.
	cs := kdfirCompat(t)
	p = planned{}
	exec := `{"action":"exec-pod",` + pod + `,"params":{"command":["cat","/etc/hostname"]},"dryRun":true}`
	if code := cs.call(t, "POST", "/v1/actions", cs.keys["admin"], []byte(exec), &p); code != 200 || len(p.Plan) != 1 || p.Plan[0].Op != "exec" ||
		!strings.Contains(p.Plan[0].Detail, "cat") {
		t.Fatalf("exec dry run: %d %+v", code, p)
	}
	if code := sv.call(t, "POST", "/v1/actions", sv.keys["admin"], []byte(exec), nil); code != 403 {
		t.Errorf("exec dry run where exec is disabled: %d", code)
	}
	for _, tc := range []struct {
		key, body string
		code      int
	}{
		{"admin", `{"action":"isolate-pod",` + pod + `,"dryRun":"yes"}`, 400},
		{"admin", `{"action":"isolate-pod","target":{"type":"pod","namespace":"` + ns + `","name":"nope"},"dryRun":true}`, 400},
		{"admin", `{"action":"cordon-node","target":{"type":"node","name":"no-such-node"},"dryRun":true}`, 400},
		{"reverter", `{"action":"isolate-pod",` + pod + `,"dryRun":true}`, 403},
	} {
		if code := sv.call(t, "POST", "/v1/actions", sv.keys[tc.key], []byte(tc.body), nil); code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.key, tc.body, code, tc.code)
		}
	}
}

// POST /v1/actions/{id}/revert with {"dryRun": true} answers what the
// revert would restore and leave alone, and changes nothing.
func TestJournalRevertPreview(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web")
	var res struct{ ID, Status string }
	body := `{"action":"isolate-pod","target":{"type":"pod","namespace":"` + ns + `","name":"web"},"reason":"preview test"}`
	if code := sv.call(t, "POST", "/v1/actions", sv.keys["admin"], []byte(body), &res); code != 200 || res.ID == "" {
		t.Fatalf("isolate: %d %+v", code, res)
	}
	revert := "/v1/actions/" + res.ID + "/revert"
	var p planned
	if code := sv.call(t, "POST", revert, sv.keys["admin"], []byte(`{"dryRun":true}`), &p); code != 200 || p.Status != "dry-run" {
		t.Fatalf("revert dry run: %d %+v", code, p)
	}
	if diff := cmp.Diff([]string{"patch Pod", "delete NetworkPolicy"}, p.ops()); diff != "" {
		t.Fatalf("revert plan (-want +got):\n%s", diff)
	}
	var e journal.Entry
	sv.call(t, "GET", "/v1/actions/"+res.ID, sv.keys["admin"], nil, &e)
	if !quarantined(t, env, ns, "web") || e.Revert != nil {
		t.Fatal("the revert's dry run changed the cluster or the journal")
	}
	for _, tc := range []struct {
		key, body string
		code      int
	}{
		{"admin", `{"dryRun":1}`, 400},
		{"admin", `{"dryrun":true,"x":1}`, 400},
		{"admin", `not json`, 400},
		{"reverter", `{"dryRun":true}`, 403}, // revert, but not isolate-pod
		{"collector", `{"dryRun":true}`, 403},
	} {
		if code := sv.call(t, "POST", revert, sv.keys[tc.key], []byte(tc.body), nil); code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.key, tc.body, code, tc.code)
		}
	}
	if code := sv.call(t, "POST", "/v1/actions/nope/revert", sv.keys["admin"], []byte(`{"dryRun":true}`), nil); code != 404 {
		t.Errorf("unknown action: %d", code)
	}
	// An empty body is a real revert, as before.
	if code := sv.call(t, "POST", revert, sv.keys["admin"], nil, &p); code != 200 || p.Status != "reverted" || quarantined(t, env, ns, "web") {
		t.Fatalf("revert: %d %+v", code, p)
	}
}

// A held step can be rejected (journaled, scoped as approval is); it never
// runs, and the alert's actions list it.
func TestAlertRejectHeldStep(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	out, id := heldAlert(t, sv, env, ns, "reject")
	var list struct{ Actions []journal.Entry }
	sv.call(t, "GET", "/v1/actions?alert="+out.Alert.ID, sv.keys["reverter"], nil, &list)
	if len(list.Actions) != 1 || list.Actions[0].ID != id || list.Actions[0].Status != journal.PendingApproval {
		t.Fatalf("the alert's actions: %+v", list.Actions)
	}
	reject := "/v1/actions/" + id + "/reject"
	for _, tc := range []struct {
		key, body string
		code      int
	}{
		{"reverter", `{"reason":"no"}`, 403}, // no approve scope
		{"sentinel", `{"reason":"no"}`, 403}, // approve, but not isolate-pod
		{"admin", `{"reason":7}`, 400},
		{"admin", `{"why":"x"}`, 400},
		{"admin", `{"reason":"` + strings.Repeat("x", 5000) + `"}`, 400},
	} {
		if code := sv.call(t, "POST", reject, sv.keys[tc.key], []byte(tc.body), nil); code != tc.code {
			t.Errorf("%s %.40s: %d, want %d", tc.key, tc.body, code, tc.code)
		}
	}
	var e journal.Entry
	if code := sv.call(t, "POST", reject, sv.keys["admin"], []byte(`{"reason":"a test, not an intrusion"}`), &e); code != 200 || e.Status != journal.Rejected {
		t.Fatalf("reject: %d %+v", code, e)
	}
	var why struct{ RejectedBy, Reason string }
	if err := json.Unmarshal(e.Result, &why); err != nil || why.RejectedBy != "admin" || why.Reason != "a test, not an intrusion" {
		t.Errorf("rejection result %s", e.Result)
	}
	for _, path := range []string{reject, "/v1/actions/" + id + "/approve"} {
		if code := sv.call(t, "POST", path, sv.keys["admin"], nil, nil); code != 409 {
			t.Errorf("%s after the rejection: %d", path, code)
		}
	}
	if code := sv.call(t, "POST", "/v1/actions/nope/reject", sv.keys["admin"], nil, nil); code != 404 {
		t.Errorf("unknown action: %d", code)
	}
	if quarantined(t, env, ns, "web-1") {
		t.Fatal("the rejected step ran")
	}
}

// An approved step's action is journaled as the playbook's, linked to the
// alert, so the alert page and the journal show who acted and why.
func TestAlertApprovedStepKeepsActorAndAlert(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	out, held := heldAlert(t, sv, env, ns, "actor")
	var ap struct{ Action struct{ ID, Status string } }
	if code := sv.call(t, "POST", "/v1/actions/"+held+"/approve", sv.keys["admin"], nil, &ap); code != 200 || ap.Action.Status != "succeeded" {
		t.Fatalf("approve: %d %+v", code, ap)
	}
	var e journal.Entry
	sv.call(t, "GET", "/v1/actions/"+ap.Action.ID, sv.keys["admin"], nil, &e)
	if e.Actor != "playbook:approve-then-isolate" || e.Parent != out.Alert.ID || !strings.Contains(e.Reason, "approved by admin") {
		t.Fatalf("the approved action: actor %q, parent %q, reason %q", e.Actor, e.Parent, e.Reason)
	}
	var list struct{ Actions []journal.Entry }
	sv.call(t, "GET", "/v1/actions?alert="+out.Alert.ID, sv.keys["admin"], nil, &list)
	if len(list.Actions) != 2 {
		t.Fatalf("the alert's actions: %d, want the held step and its action", len(list.Actions))
	}
}

// heldAlert runs pod web-1 in ns and posts an alert whose playbook holds
// its isolation for approval; it returns the alert and the held step's id.
func heldAlert(t *testing.T, sv *svc, env *testenv.Env, ns, name string) (alertResp, string) {
	t.Helper()
	runPod(t, env, ns, "web-1")
	body := `{"schema":"kdfir.io/alert/v1","title":"needs approval: ` + name + `","severity":"high","sourceId":"` + name + `-` + ns +
		`","entities":[{"type":"pod","namespace":"` + ns + `","name":"web-1","cluster":"testenv"}]}`
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["sentinel"], []byte(body), &out); code != 200 || len(out.Playbooks) != 1 || !out.Playbooks[0].Waiting {
		t.Fatalf("alert: %d %+v", code, out)
	}
	return out, out.Playbooks[0].Steps[0].ActionID
}
