package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/testenv"
)

// aksResp is the AKS endpoint's answer.
type aksResp struct {
	Status  string `json:"status"`
	Error   string `json:"error"`
	Actions []struct {
		ID, Action, Target, Status, Message string
	} `json:"actions"`
	Done    []string `json:"done"`
	NotDone []struct{ Target, Error string }
	Stdout  *string `json:"stdout"`
	Stderr  *string `json:"stderr"`
	Exit    *int    `json:"exitCode"`
	Trunc   *bool   `json:"truncated"`
}

// aksEntities builds the entity list of an alert about a pod, in the
// linked ($id/$ref) form Defender sends or the flat form the original
// function documents.
func aksEntities(flat bool, ns, pod, node string) []any {
	if flat {
		ents := []any{
			map[string]any{"Name": pod, "Type": "K8s-pod"},
			map[string]any{"Name": ns, "Type": "K8s-namespace"},
			map[string]any{"Name": "testenv", "Type": "K8s-cluster"},
			map[string]any{"ResourceId": clusterID, "Type": "azure-resource"},
		}
		if node != "" {
			ents = append(ents, map[string]any{"Name": node, "Type": "K8s-node"})
		}
		return ents
	}
	ents := []any{
		map[string]any{"$id": "1", "ResourceId": clusterID, "Type": "azure-resource"},
		map[string]any{"$id": "2", "CloudResource": map[string]any{"$ref": "1"}, "Type": "K8s-cluster"},
		map[string]any{"$id": "3", "Name": ns, "Cluster": map[string]any{"$ref": "2"}, "Type": "K8s-namespace"},
		map[string]any{"$id": "4", "Name": pod, "Namespace": map[string]any{"$ref": "3"}, "Type": "K8s-pod"},
	}
	if node != "" {
		ents = append(ents, map[string]any{"$id": "5", "Name": node, "Cluster": map[string]any{"$ref": "2"}, "Type": "K8s-node"})
	}
	return ents
}

func aksBody(t testing.TB, fields map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends a body to path with the key in ?code= or x-functions-key,
// plus headers, and decodes the answer.
func (sv *svc) post(t testing.TB, path, key string, viaCode bool, body []byte, hdr map[string]string, out any) *http.Response {
	t.Helper()
	u := sv.url + path
	if viaCode {
		u += "?code=" + url.QueryEscape(key)
	}
	req, err := http.NewRequest("POST", u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if !viaCode {
		req.Header.Set("x-functions-key", key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := sv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: %d %s: %v", path, resp.StatusCode, b, err)
		}
	}
	return resp
}

func nsLabel(t testing.TB, env *testenv.Env, ns, key string) string {
	t.Helper()
	n, err := env.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Labels[key]
}

func nodeCordoned(t testing.TB, env *testenv.Env) bool {
	t.Helper()
	n, err := env.Client.CoreV1().Nodes().Get(context.Background(), env.Node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Spec.Unschedulable
}

// Every playbook's request, in both entity forms and with the key in
// both places, has its effect on the cluster and answers 200.
func TestAKSPlaybookRequests(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	_, sasToken, _ := strings.Cut(sv.sasURL, "?")
	for _, flat := range []bool{false, true} {
		for _, viaCode := range []bool{true, false} {
			form, where := "linked", "header"
			if flat {
				form = "flat"
			}
			if viaCode {
				where = "code"
			}
			t.Run(form+"-"+where, func(t *testing.T) {
				ns := env.Namespace(t)
				runPod(t, env, ns, "web-1")
				ents := aksEntities(flat, ns, "web-1", env.Node)
				send := func(action string, extra map[string]any) aksResp {
					t.Helper()
					f := map[string]any{"action": action, "entities": ents}
					for k, v := range extra {
						f[k] = v
					}
					var out aksResp
					resp := sv.post(t, "/api/AKSTriggerResponse", sv.keys["admin"], viaCode, aksBody(t, f), nil, &out)
					if resp.StatusCode != 200 || out.Status != "succeeded" {
						t.Fatalf("%s: %d %+v", action, resp.StatusCode, out)
					}
					return out
				}
				send("isolatepod", nil)
				if !quarantined(t, env, ns, "web-1") || policies(t, env, ns) != 1 {
					t.Fatal("isolatepod: pod not quarantined")
				}
				send("removepodisolation", nil)
				if quarantined(t, env, ns, "web-1") || policies(t, env, ns) != 0 {
					t.Fatal("removepodisolation: quarantine left in place")
				}
				send("isolatenamespace", nil)
				if nsLabel(t, env, ns, "kdfir.io/quarantine") != "true" || policies(t, env, ns) != 1 {
					t.Fatal("isolatenamespace: namespace not isolated")
				}
				send("removenamespaceisolation", nil)
				if nsLabel(t, env, ns, "kdfir.io/quarantine") != "" || policies(t, env, ns) != 0 {
					t.Fatal("removenamespaceisolation: isolation left in place")
				}
				send("cordonnode", nil)
				if !nodeCordoned(t, env) {
					t.Fatal("cordonnode: node schedulable")
				}
				send("uncordonnode", nil)
				if nodeCordoned(t, env) {
					t.Fatal("uncordonnode: node still cordoned")
				}
				out := send("collectartifacts", map[string]any{"storageaccount": testenv.AzuriteAccount, "blobcontainer": "evidence", "blobsastoken": sasToken})
				verifyEvidence(t, sv, out.Actions[0].ID)
			})
		}
	}
}

// What real callers send: a whole Sentinel incident, members kdfir does
// not know, booleans as strings, a lower-case route, and retries.
func TestAKSLenientRequests(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	runPod(t, env, ns, "web-2")
	key := sv.keys["admin"]

	// A dry run given as a string changes nothing.
	body := aksBody(t, map[string]any{"action": "IsolatePod", "entities": aksEntities(true, ns, "web-1", ""), "dryrun": "true", "incidentId": 42})
	var out aksResp
	if resp := sv.post(t, "/api/akstriggerresponse", key, true, body, nil, &out); resp.StatusCode != 200 || out.Actions[0].Status != "dry-run" {
		t.Fatalf("dry run: %d %+v", resp.StatusCode, out)
	}
	if quarantined(t, env, ns, "web-1") {
		t.Fatal("a dry run isolated the pod")
	}

	// The whole incident, as a Logic App's "When Azure Sentinel incident
	// is created" trigger hands it on, with the action beside it.
	incident := map[string]any{
		"action": "isolatepod", "dryrun": "false",
		"object": map[string]any{"name": "inc-1", "properties": map[string]any{"title": "exec", "severity": "High",
			"relatedEntities": []any{
				map[string]any{"kind": "K8s-pod", "properties": map[string]any{"Name": "web-1"}},
				map[string]any{"kind": "K8s-namespace", "properties": map[string]any{"Name": ns}},
			}}},
		"workspaceInfo": map[string]any{"SubscriptionId": "x"},
	}
	if resp := sv.post(t, "/API/AKSTRIGGERRESPONSE/", key, false, aksBody(t, incident), nil, &out); resp.StatusCode != 200 || out.Status != "succeeded" {
		t.Fatalf("incident: %d %+v", resp.StatusCode, out)
	}
	if !quarantined(t, env, ns, "web-1") {
		t.Fatal("incident: pod not quarantined")
	}

	// A retry of the same request gets the first answer, and runs nothing.
	body = aksBody(t, map[string]any{"action": "isolatepod", "entities": aksEntities(false, ns, "web-2", ""), "reason": "retry test"})
	var first, second aksResp
	sv.post(t, "/api/AKSTriggerResponse", key, true, body, nil, &first)
	resp := sv.post(t, "/api/akstriggerRESPONSE", key, true, body, nil, &second) // the same endpoint, in another case
	if resp.Header.Get("Idempotent-Replayed") != "true" || first.Actions[0].ID == "" || second.Actions[0].ID != first.Actions[0].ID {
		t.Fatalf("retry: replayed=%q first %+v second %+v", resp.Header.Get("Idempotent-Replayed"), first, second)
	}
	var list struct{ Actions []journal.Entry }
	sv.call(t, "GET", "/v1/actions?target="+ns+"/web-2", key, nil, &list)
	if len(list.Actions) != 1 {
		t.Fatalf("retry ran again: %d journal entries for web-2", len(list.Actions))
	}
	// The same tracking id with another body is the same request.
	hdr := map[string]string{"x-ms-client-tracking-id": "run-" + ns}
	rel := aksBody(t, map[string]any{"action": "removepodisolation", "entities": aksEntities(false, ns, "web-2", "")})
	sv.post(t, "/api/AKSTriggerResponse", key, false, rel, hdr, &first)
	resp = sv.post(t, "/api/AKSTriggerResponse", key, false, append(rel, ' '), hdr, &second)
	if resp.Header.Get("Idempotent-Replayed") != "true" || quarantined(t, env, ns, "web-2") {
		t.Fatalf("tracking id: replayed=%q, web-2 quarantined=%v", resp.Header.Get("Idempotent-Replayed"), quarantined(t, env, ns, "web-2"))
	}
}

// Each status code of the README's table, with the cluster unchanged
// where the table says so.
func TestAKSStatusCodes(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	key := sv.keys["admin"]
	_, sasToken, _ := strings.Cut(sv.sasURL, "?")
	expired := strings.NewReplacer("se=", "se=2001-01-01T00%3A00%3A00Z&old=").Replace(sasToken)
	collect := func(account, container, sas string) map[string]any {
		return map[string]any{"action": "collectartifacts", "entities": aksEntities(true, ns, "web-1", ""),
			"storageaccount": account, "blobcontainer": container, "blobsastoken": sas}
	}
	downEnts := []any{map[string]any{"Name": "web-1", "Type": "K8s-pod", "Namespace": ns}, map[string]any{"Name": "down", "Type": "K8s-cluster"}}
	for _, c := range []struct {
		name   string
		fields map[string]any
		want   int
		msg    string
	}{
		{"path in a name", map[string]any{"action": "isolatepod", "entities": aksEntities(true, ns, "../../nodes/x", "")}, 400, `invalid pod "`},
		{"missing pod", map[string]any{"action": "isolatepod", "entities": aksEntities(true, ns, "no-such-pod", "")}, 400, "no-such-pod not found"},
		{"missing namespace", map[string]any{"action": "isolatenamespace", "entities": aksEntities(true, "no-such-ns", "x", "")}, 400, "not found"},
		{"metadata address", collect("http://169.254.169.254/metadata", "evidence", sasToken), 400, "not a storage account name"},
		{"http endpoint", collect("http://evil.example:80", "evidence", sasToken), 400, "not a storage account name"},
		{"unlisted account", collect("evilcorp", "evidence", sasToken), 400, "not under evidence.allowedEndpoints"},
		{"expired SAS", collect(testenv.AzuriteAccount, "evidence", expired), 400, "expired"},
		{"SAS URL for another container", collect(testenv.AzuriteAccount, "evidence", sv.az.URL+"/other?"+sasToken), 400, "but storageaccount and blobcontainer say"},
		{"unreachable cluster", map[string]any{"action": "isolatepod", "entities": downEnts}, 503, "cluster unavailable"},
	} {
		var out aksResp
		resp := sv.post(t, "/api/AKSTriggerResponse", key, true, aksBody(t, c.fields), nil, &out)
		msg := out.Error + strings.Join(out.Errors(), ";")
		if resp.StatusCode != c.want || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, resp.StatusCode, msg, c.want, c.msg)
		}
		if c.want == 503 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", c.name)
		}
		if strings.Contains(msg, "sig=") && !strings.Contains(msg, "REDACTED") {
			t.Errorf("%s: SAS signature in the answer: %s", c.name, msg)
		}
	}
	if quarantined(t, env, ns, "web-1") || policies(t, env, ns) != 0 {
		t.Fatal("a refused request changed the cluster")
	}
	// Partly done: two pods, one of them missing. 409 says which.
	ents := []any{
		map[string]any{"Name": "web-1", "Type": "K8s-pod", "Namespace": ns},
		map[string]any{"Name": "gone", "Type": "K8s-pod", "Namespace": ns},
	}
	var out aksResp
	resp := sv.post(t, "/api/AKSTriggerResponse", key, true, aksBody(t, map[string]any{"action": "isolatepod", "entities": ents}), nil, &out)
	if resp.StatusCode != 409 || out.Status != "partial" || !cmp.Equal(out.Done, []string{ns + "/web-1"}) || len(out.NotDone) != 1 || out.NotDone[0].Target != ns+"/gone" {
		t.Fatalf("partial: %d %+v", resp.StatusCode, out)
	}
	if !quarantined(t, env, ns, "web-1") {
		t.Fatal("partial: the pod that exists was not isolated")
	}
}

// Errors lists the messages of the targets not done.
func (r aksResp) Errors() []string {
	var out []string
	for _, n := range r.NotDone {
		out = append(out, n.Error)
	}
	return out
}

// Collection to Azurite with each form of SAS: a bare token, one with a
// leading "?", and a full SAS URL (alone, or with matching fields).
func TestAKSCollectSASForms(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	_, tok, _ := strings.Cut(sv.sasURL, "?")
	for name, f := range map[string]map[string]any{
		"bare token":        {"storageaccount": testenv.AzuriteAccount, "blobcontainer": "evidence", "blobsastoken": tok},
		"leading ?":         {"storageaccount": testenv.AzuriteAccount, "blobcontainer": "evidence", "blobsastoken": "?" + tok},
		"SAS URL alone":     {"blobsastoken": sv.sasURL},
		"SAS URL and names": {"storageaccount": testenv.AzuriteAccount, "blobcontainer": "evidence", "blobsastoken": sv.sasURL},
	} {
		f["action"] = "collectartifacts"
		f["entities"] = aksEntities(false, ns, "web-1", "")
		f["reason"] = name // a distinct body each time, so no replay
		var out aksResp
		resp := sv.post(t, "/api/AKSTriggerResponse", sv.keys["collector"], true, aksBody(t, f), nil, &out)
		if resp.StatusCode != 200 || len(out.Actions) != 1 {
			t.Fatalf("%s: %d %+v", name, resp.StatusCode, out)
		}
		verifyEvidence(t, sv, out.Actions[0].ID)
	}
}

// A team switching from the original function: its markers, its route
// name, releasing what the original isolated, and runcommand's output.
func TestAKSCompatOriginal(t *testing.T) {
	sv := kdfirCompat(t)
	env := testenv.Get(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	runPod(t, env, ns, "old-1")
	key := sv.keys["admin"]
	send := func(action, pod string, extra map[string]any) (int, aksResp) {
		t.Helper()
		f := map[string]any{"action": action, "entities": aksEntities(true, ns, pod, "")}
		for k, v := range extra {
			f[k] = v
		}
		var out aksResp
		resp := sv.post(t, "/API/respond", key, true, aksBody(t, f), nil, &out)
		return resp.StatusCode, out
	}
	if code, _ := send("isolatepod", "web-1", nil); code != 200 {
		t.Fatalf("isolatepod: %d", code)
	}
	if p := pod(t, env, ns, "web-1"); p.Labels["status"] != "quarantine" {
		t.Fatalf("compat isolation labels = %v", p.Labels)
	}
	if _, err := env.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, "deny-all-affected", metav1.GetOptions{}); err != nil {
		t.Fatalf("compat isolation: %v", err)
	}
	if code, _ := send("removepodisolation", "web-1", nil); code != 200 || pod(t, env, ns, "web-1").Labels["status"] != "" || policies(t, env, ns) != 0 {
		t.Fatalf("compat release: %d, labels %v, %d policies", code, pod(t, env, ns, "web-1").Labels, policies(t, env, ns))
	}

	// A pod the original function isolated: its label and its policy,
	// with nothing in kdfir's journal.
	patch := []byte(`{"metadata":{"labels":{"status":"quarantine"}}}`)
	if _, err := env.Client.CoreV1().Pods(ns).Patch(ctx, "old-1", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	orig := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-all-affected", Namespace: ns, Labels: map[string]string{"owner": "aks-function"}},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"status": "quarantine"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}},
	}
	if _, err := env.Client.NetworkingV1().NetworkPolicies(ns).Create(ctx, orig, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out := send("removepodisolation", "old-1", nil)
	if code != 200 || len(out.Actions) != 1 || out.Actions[0].ID == "" {
		t.Fatalf("release of the original's isolation: %d %+v", code, out)
	}
	if pod(t, env, ns, "old-1").Labels["status"] != "" {
		t.Fatal("the original's label is still there")
	}
	if _, err := env.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, "deny-all-affected", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the original's policy is still there: %v", err)
	}
	var e journal.Entry
	sv.call(t, "GET", "/v1/actions/"+out.Actions[0].ID, key, nil, &e)
	if e.Action != "remove-pod-markers" || len(e.Prior) != 2 {
		t.Fatalf("journal entry = %s with %d prior states", e.Action, len(e.Prior))
	}
	// The revert puts both back exactly.
	if code := sv.call(t, "POST", "/v1/actions/"+e.ID+"/revert", key, nil, nil); code != 200 {
		t.Fatalf("revert: %d", code)
	}
	if pod(t, env, ns, "old-1").Labels["status"] != "quarantine" {
		t.Fatal("revert did not restore the label")
	}
	back, err := env.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, "deny-all-affected", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig.Spec, back.Spec); diff != "" || back.Labels["owner"] != "aks-function" {
		t.Fatalf("restored policy differs (-want +got):\n%s labels %v", diff, back.Labels)
	}

	// runcommand answers with the command's result, even when it failed.
	code, out = send("runcommand", "web-1", map[string]any{"command": "cat /nonexistent"})
	if code != 200 || out.Exit == nil || *out.Exit != 1 || out.Stderr == nil || *out.Stderr == "" || out.Trunc == nil || *out.Trunc {
		t.Fatalf("runcommand: %d %+v", code, out)
	}
	code, out = send("runcommand", "web-1", map[string]any{"command": []string{"cat", "/root/.bash_history"}})
	if code != 200 || out.Exit == nil || *out.Exit != 0 || out.Stdout == nil || !strings.Contains(*out.Stdout, "curl") {
		t.Fatalf("runcommand: %d %+v", code, out)
	}
	// The default route is not served when another is configured.
	if c := sv.call(t, "POST", "/api/AKSTriggerResponse", key, []byte(`{}`), nil); c != 404 {
		t.Fatalf("default route with aks.route set: %d", c)
	}
}
