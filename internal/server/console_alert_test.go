package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/testenv"
)

// An analyst opens the exec alert, previews the pod's isolation (the
// server's dry run lists the label and the NetworkPolicy), confirms with a
// reason, sees the pod quarantined on the API server, and reverts from the
// journal after its preview; a key without action scopes sees no response
// buttons, and a request without the CSRF token is refused.
func TestConsoleAlertPreviewIsolateRevert(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web")
	dir := artifacts(t)
	ctx := browser(t)

	// An audit event of the pod, which the API server sent kdfir serve:
	// the alert reports it, so the page's hunt must find it.
	reportID, user := podEvent(t, sv, ns, "web")

	// The exec alert, as the exec rule raises it. Delivered with a key
	// that may run no actions, so its playbook's steps are refused and the
	// analyst decides.
	now := time.Now().UTC().Format(time.RFC3339)
	body := fmt.Sprintf(`{"schema":"kdfir.io/alert/v1","title":"Command executed in pod %[1]s/web: sh -c cat /etc/shadow","severity":"high",
"rule":"k8s-exec-into-pod","time":%[2]q,"reportIds":[%[3]q],"sourceId":"console-%[1]s",
"description":"%[4]s ran sh -c cat /etc/shadow in pod %[1]s/web",
"entities":[{"type":"pod","namespace":%[1]q,"name":"web","cluster":"testenv"},{"type":"user","name":%[4]q}]}`, ns, now, reportID, user)
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["sentinel"], []byte(body), &out); code != 200 {
		t.Fatalf("alert: %d", code)
	}
	id := out.Alert.ID

	row := `tr[data-id="` + id + `"]`
	if err := chromedp.Do(ctx,
		signIn(sv, "admin"),
		chromedp.WaitVisible(chromedp.CSS(row)),
		shot(t, dir, 1, "queue"),
		chromedp.Click(chromedp.CSS(row+" td.title a")),
		chromedp.WaitVisible(chromedp.CSS("#alert-title")),
		chromedp.WaitVisible(chromedp.CSS(`#alert-entities button[data-action="isolate-pod"]`)),
		chromedp.WaitVisible(chromedp.CSS("#alert-events tr.reported")),
		chromedp.WaitVisible(chromedp.CSS("#alert-user table.events tbody tr")),
		shot(t, dir, 2, "alert"),
	); err != nil {
		t.Fatalf("open the alert: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#alert")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"k8s-exec-into-pod", user + " ran sh -c cat /etc/shadow", `auditID in ("` + reportID + `")`, "Open in Hunt", "Run command"} {
		if want == "Run command" {
			if strings.Contains(page, want) {
				t.Errorf("run command is offered where exec is disabled")
			}
			continue
		}
		if !strings.Contains(page, want) {
			t.Errorf("the alert page lacks %q", want)
		}
	}

	// Preview the isolation: the plan names the label and the policy.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#alert-entities button[data-action="isolate-pod"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.plan.preview")),
		shot(t, dir, 3, "isolate-preview"),
	); err != nil {
		t.Fatalf("preview: %v", err)
	}
	plan, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("table.plan.preview")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Pod " + ns + "/web", `metadata.labels["kdfir.io/quarantine"]`, "NetworkPolicy " + ns + "/kdfir-quarantine", "Egress"} {
		if !strings.Contains(plan, want) {
			t.Errorf("the preview lacks %q:\n%s", want, plan)
		}
	}
	if quarantined(t, env, ns, "web") {
		t.Fatal("the preview isolated the pod")
	}

	// Confirm with a reason: the pod is quarantined on the API server and
	// the action is the alert's, by the console's key.
	if err := chromedp.Do(within(ctx, 20*time.Second),
		chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "exec of cat /etc/shadow, not ours"),
		chromedp.Click(chromedp.CSS("#confirm-action")),
		chromedp.WaitVisible(chromedp.CSS("#action-done")),
		chromedp.WaitVisible(chromedp.CSS("#alert-actions tr.status-succeeded")),
		shot(t, dir, 4, "isolated"),
	); err != nil {
		_ = chromedp.Do(ctx, shot(t, dir, 99, "confirm-failed"))
		t.Fatalf("confirm: %v", err)
	}
	if !quarantined(t, env, ns, "web") || policies(t, env, ns) != 1 {
		t.Fatal("the pod is not quarantined after the confirmation")
	}
	var list struct{ Actions []journal.Entry }
	sv.call(t, "GET", "/v1/actions?alert="+id, sv.keys["admin"], nil, &list)
	if len(list.Actions) != 1 || list.Actions[0].Actor != "admin" || list.Actions[0].Reason != "exec of cat /etc/shadow, not ours" {
		t.Fatalf("the alert's actions: %+v", list.Actions)
	}
	action := list.Actions[0].ID

	// Revert from the journal: the preview says what it restores.
	revert := `#journal-rows tr[data-id="` + action + `"] button.revert`
	if err := chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`location.hash = "#/journal"`),
		chromedp.WaitVisible(chromedp.CSS(revert)),
		shot(t, dir, 5, "journal"),
		chromedp.Click(chromedp.CSS(revert)),
		chromedp.WaitVisible(chromedp.CSS("table.plan.revert-plan")),
		shot(t, dir, 6, "revert-preview"),
	); err != nil {
		t.Fatalf("revert preview: %v", err)
	}
	rplan, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#journal-preview")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Will restore", `metadata.labels["kdfir.io/quarantine"]`, "DELETE\tNetworkPolicy " + ns + "/kdfir-quarantine", "Will leave alone"} {
		if !strings.Contains(rplan, want) {
			t.Errorf("the revert preview lacks %q:\n%s", want, rplan)
		}
	}
	if !quarantined(t, env, ns, "web") {
		t.Fatal("the revert preview released the pod")
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#confirm-revert")),
		chromedp.WaitVisible(chromedp.CSS("#revert-done")),
		shot(t, dir, 7, "reverted"),
	); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if quarantined(t, env, ns, "web") || policies(t, env, ns) != 0 {
		t.Fatal("the pod is still quarantined after the revert")
	}

	// A held playbook step is rejected from its alert's page.
	held, heldID := heldAlert(t, sv, env, ns, "held")
	step := `#alert-actions tr[data-id="` + heldID + `"]`
	if err := chromedp.Do(within(ctx, 20*time.Second),
		chromedp.Evaluate[chromedp.Void](`location.hash = "#/alerts/`+held.Alert.ID+`"`),
		chromedp.WaitVisible(chromedp.CSS(step+" button.reject")),
		shot(t, dir, 8, "held-step"),
		chromedp.Click(chromedp.CSS(step+" button.reject")),
		chromedp.WaitVisible(chromedp.CSS(`#alert-actions tr.status-rejected[data-id="`+heldID+`"]`)),
	); err != nil {
		t.Fatalf("reject the held step: %v", err)
	}
	var e journal.Entry
	if sv.call(t, "GET", "/v1/actions/"+heldID, sv.keys["admin"], nil, &e); e.Status != journal.Rejected || quarantined(t, env, ns, "web-1") {
		t.Fatalf("after rejecting in the console: %s", e.Status)
	}

	// A forged state-changing request, with the session cookie but
	// without the CSRF token, is refused.
	code, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/v1/actions", {method: "POST", credentials: "same-origin",
		headers: {"Content-Type": "application/json"},
		body: JSON.stringify({action: "isolate-pod", target: {type: "pod", namespace: "`+ns+`", name: "web"}, reason: "forged"})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if code != 403 || quarantined(t, env, ns, "web") {
		t.Fatalf("a request without the CSRF token: %d", code)
	}

	// A key without action scopes sees the alert without response buttons.
	ro := browser(t)
	if err := chromedp.Do(ro,
		signIn(sv, "reverter"),
		chromedp.Evaluate[chromedp.Void](`location.hash = "#/alerts/`+id+`"`),
		chromedp.WaitVisible(chromedp.CSS("#alert-entities")),
		shot(t, dir, 9, "read-only-alert"),
	); err != nil {
		t.Fatalf("read-only alert page: %v", err)
	}
	n, err := chromedp.Run(ro, chromedp.Evaluate[int](`document.querySelectorAll("#alert button.act, #confirm-action, #alert-take").length`))
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a key without action scopes sees %d response buttons", n)
	}
}

// within bounds one step of a browser test.
func within(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	go func() { <-c.Done(); cancel() }()
	return c
}

// signIn opens the console and signs in with a key, up to the queue.
func signIn(sv *svc, key string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(sv.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SetValue(chromedp.CSS("#key"), sv.keys[key]),
		chromedp.Click(chromedp.CSS("#signin-form button")),
		chromedp.WaitVisible(chromedp.CSS("#queue")))
}

// podEvent waits until kdfir serve has an audit event about the pod (its
// creation) and returns its audit id and user.
func podEvent(t *testing.T, sv *svc, ns, name string) (id, user string) {
	t.Helper()
	q, _ := json.Marshal(map[string]any{"since": "1h", "query": `KubeAudit | where objectRef.resource == "pods" and objectRef.namespace == "` + ns + `" and objectRef.name == "` + name +
		`" | project auditID, User = tostring(user.username) | take 1`})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var res struct{ Rows [][]string }
		if code := sv.call(t, "POST", "/v1/hunt", sv.keys["admin"], q, &res); code == 200 && len(res.Rows) == 1 {
			return res.Rows[0][0], res.Rows[0][1]
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no audit event of %s/%s reached kdfir serve", ns, name)
	return "", ""
}
