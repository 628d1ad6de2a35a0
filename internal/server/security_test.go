package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/testenv"
)

// An attacker holding one key gets exactly what its scopes say.
func TestScopesMeanWhatTheySay(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	var res struct {
		ID, Status string
		Error      string
	}
	body := fmt.Sprintf(`{"action": "isolate-pod", "target": {"namespace": %q, "name": "web-1"}}`, ns)
	if code := sv.call(t, "POST", "/v1/actions", sv.keys["admin"], []byte(body), &res); code != 200 || res.ID == "" {
		t.Fatalf("isolate: %d %+v", code, res)
	}
	// Label keys come from configuration: not a key other pods share,
	// not Pod Security's.
	for _, label := range []string{"app=web", "pod-security.kubernetes.io/enforce=privileged"} {
		var e struct{ Error string }
		b := strings.Replace(body, `"target"`, `"params": {"label": "`+label+`"}, "target"`, 1)
		if code := sv.call(t, "POST", "/v1/actions", sv.keys["admin"], []byte(b), &e); code != 400 || !strings.Contains(e.Error, "labels.allowedKeys") {
			t.Fatalf("label %s: %d %q", label, code, e.Error)
		}
	}
	// revert alone cannot undo an isolation the key could not make.
	if code := sv.call(t, "POST", "/v1/actions/"+res.ID+"/revert", sv.keys["reverter"], nil, &res); code != 403 || !strings.Contains(res.Error, "revert-any") {
		t.Fatalf("revert without the action's scope: %d %+v", code, res)
	}
	if !quarantined(t, env, ns, "web-1") {
		t.Fatal("a refused revert released the pod")
	}
	// A key bound to one cluster acts on no other, even when it names it.
	if code := sv.call(t, "POST", "/v1/actions", sv.keys["bound"], []byte(strings.Replace(body, `"action"`, `"cluster": "testenv", "action"`, 1)), &res); code != 403 || !strings.Contains(res.Error, "bound to cluster down") {
		t.Fatalf("bound key on another cluster: %d %+v", code, res)
	}
	if code := sv.call(t, "POST", "/v1/actions/"+res.ID+"/revert", sv.keys["bound"], nil, &res); code != 403 {
		t.Fatalf("bound key reverting on another cluster: %d %+v", code, res)
	}

	// An alert delivered with a key whose scopes name no action runs no
	// playbook action: the Defender playbook's steps are refused.
	ns2 := env.Namespace(t)
	runPod(t, env, ns2, "web-2")
	alertBody := `{"schema":"kdfir.io/alert/v1","title":"load: forged","severity":"high","sourceId":"forged-` + ns2 + `","entities":[{"type":"pod","namespace":"` + ns2 + `","name":"web-2","cluster":"testenv"}]}`
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["sentinel"], []byte(alertBody), &out); code != 200 || len(out.Playbooks) != 1 {
		t.Fatalf("alert: %d %+v", code, out)
	}
	if st := out.Playbooks[0].Steps[0]; st.Status != "refused" || !strings.Contains(st.Error, "may not run isolate-pod") {
		t.Fatalf("step of an alert from a key without isolate-pod: %+v", st)
	}
	if quarantined(t, env, ns2, "web-2") {
		t.Fatal("an alert key without isolate-pod isolated a pod")
	}
}

// Two approvals of one held step at once: one runs it, the other is
// told it was approved already, and the action runs once.
func TestConcurrentApprovalsRunOnce(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	body := `{"schema":"kdfir.io/alert/v1","title":"needs approval: web-1","severity":"high","sourceId":"race-` + ns + `","entities":[{"type":"pod","namespace":"` + ns + `","name":"web-1","cluster":"testenv"}]}`
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["sentinel"], []byte(body), &out); code != 200 || len(out.Playbooks) != 1 {
		t.Fatalf("alert: %d %+v", code, out)
	}
	held := out.Playbooks[0].Steps[0].ActionID
	codes := make([]int, 5)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = sv.call(t, "POST", "/v1/actions/"+held+"/approve", sv.keys["admin"], nil, nil)
		}()
	}
	wg.Wait()
	ok, conflict := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 409:
			conflict++
		}
	}
	if ok != 1 || conflict != 4 {
		t.Fatalf("approval answers %v, want one 200 and four 409", codes)
	}
	var list struct{ Actions []journal.Entry }
	sv.call(t, "GET", "/v1/actions?action=isolate-pod&target="+ns+"/web-1", sv.keys["admin"], nil, &list)
	ran := 0
	for _, e := range list.Actions {
		if e.Status != journal.Approved {
			ran++
		}
	}
	if ran != 1 {
		t.Fatalf("the held step ran %d times", ran)
	}

	// Three reverts of that action at once: one reverts, the others find
	// it reverted; none fails.
	var id string
	for _, e := range list.Actions {
		if e.Status == journal.Succeeded {
			id = e.ID
		}
	}
	statuses := make([]string, 3)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r struct{ Status string }
			if code := sv.call(t, "POST", "/v1/actions/"+id+"/revert", sv.keys["admin"], nil, &r); code != 200 {
				statuses[i] = fmt.Sprint(code)
				return
			}
			statuses[i] = r.Status
		}()
	}
	wg.Wait()
	n := map[string]int{}
	for _, s := range statuses {
		n[s]++
	}
	if n["reverted"] != 1 || n["already-reverted"] != 2 || quarantined(t, env, ns, "web-1") {
		t.Fatalf("concurrent reverts: %v", statuses)
	}
}

// A step held for approval keeps its destination to run it later, but the
// API never shows the SAS signature.
func TestHeldStepParamsRedacted(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	body := `{"schema":"kdfir.io/alert/v1","title":"held collect: web-1","severity":"high","sourceId":"held-` + ns + `","entities":[{"type":"pod","namespace":"` + ns + `","name":"web-1","cluster":"testenv"}]}`
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["defender"], []byte(body), &out); code != 200 || len(out.Playbooks) != 1 {
		t.Fatalf("alert: %d %+v", code, out)
	}
	id := out.Playbooks[0].Steps[0].ActionID
	_, sig, _ := strings.Cut(sv.sasURL, "sig=")
	sig, _, _ = strings.Cut(sig, "&")
	for _, path := range []string{"/v1/actions/" + id, "/v1/actions?target=" + ns + "/web-1"} {
		var raw json.RawMessage
		sv.call(t, "GET", path, sv.keys["admin"], nil, &raw)
		if strings.Contains(string(raw), sig) || !strings.Contains(string(raw), "REDACTED") {
			t.Fatalf("GET %s shows the SAS signature: %s", path, raw)
		}
	}
	// The approval still runs it with the real token.
	var ap struct{ Action struct{ ID, Status string } }
	if code := sv.call(t, "POST", "/v1/actions/"+id+"/approve", sv.keys["admin"], nil, &ap); code != 200 || ap.Action.Status != "succeeded" {
		t.Fatalf("approve: %d %+v", code, ap)
	}
	verifyEvidence(t, sv, ap.Action.ID)
}

// The databases and the signing key are for kdfir's user only.
func TestDataFilesPrivate(t *testing.T) {
	sv := kdfir(t)
	entries, err := os.ReadDir(sv.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || fi.IsDir() {
			continue
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 && !strings.HasSuffix(e.Name(), ".pub") && !strings.HasSuffix(e.Name(), ".pem.pub") {
			t.Errorf("%s has mode %04o", e.Name(), m)
		}
		switch e.Name() {
		case "journal.db", "alerts.db", "events.duckdb", evidence.KeyFile:
			seen++
		}
	}
	if seen != 4 {
		t.Fatalf("found %d of the 4 data files in %s", seen, sv.dataDir)
	}
}

// Guessing keys is rate-limited: a flood of bad keys gets 429, and the
// limit lifts again.
func TestBadKeyFloodIsLimited(t *testing.T) {
	sv := kdfir(t)
	limited := 0
	for range 200 {
		if sv.call(t, "GET", "/v1/alerts", "kdfir_guess", nil, nil) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 150 {
		t.Fatalf("%d of 200 bad-key requests limited", limited)
	}
	// A valid key is not held back by others' failures.
	if code := sv.call(t, "GET", "/v1/alerts", sv.keys["admin"], nil, nil); code != 200 {
		t.Fatalf("valid key after the flood: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sv.call(t, "GET", "/v1/alerts", "kdfir_guess", nil, nil) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the limit did not lift")
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Leave the bucket full (20 at 5 a second) for the tests after this
	// one, which share the server and its client address: their own
	// deliberate failures (a signed-out session, a bad key) must get 401.
	time.Sleep(4 * time.Second)
}

// /readyz reports the stores and every cluster: an unreachable cluster
// that is not the default is listed, and kdfir stays ready.
func TestReadyzReportsComponents(t *testing.T) {
	sv := kdfir(t)
	resp, err := sv.client.Get(sv.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{"journal: ok", "alerts: ok", "events: ok", "cluster testenv: ok", "cluster down: unreachable"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz lacks %q:\n%s", want, body)
		}
	}
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz: %d\n%s", resp.StatusCode, body)
	}
}

// A revert and a new isolation of the same pod at once: whichever runs
// first, the cluster agrees with the journal afterwards (the pod is
// quarantined exactly when an isolation of it is not reverted).
func TestRevertAgainstApply(t *testing.T) {
	sv := kdfir(t)
	env := testenv.Get(t)
	ns := env.Namespace(t)
	runPod(t, env, ns, "web-1")
	body := []byte(fmt.Sprintf(`{"action": "isolate-pod", "target": {"namespace": %q, "name": "web-1"}}`, ns))
	for round := range 3 {
		var first struct{ ID, Status string }
		if code := sv.call(t, "POST", "/v1/actions", sv.keys["admin"], body, &first); code != 200 {
			t.Fatalf("round %d: isolate: %d %+v", round, code, first)
		}
		id := first.ID
		if id == "" { // already isolated by the last round's isolation
			var list struct{ Actions []journal.Entry }
			sv.call(t, "GET", "/v1/actions?action=isolate-pod&target="+ns+"/web-1&limit=1", sv.keys["admin"], nil, &list)
			id = list.Actions[0].ID
		}
		var wg sync.WaitGroup
		codes := make([]int, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			codes[0] = sv.call(t, "POST", "/v1/actions/"+id+"/revert", sv.keys["admin"], nil, nil)
		}()
		go func() {
			defer wg.Done()
			codes[1] = sv.call(t, "POST", "/v1/actions", sv.keys["admin"], body, nil)
		}()
		wg.Wait()
		if codes[0] != 200 || codes[1] != 200 {
			t.Fatalf("round %d: revert %d, isolate %d", round, codes[0], codes[1])
		}
		var list struct{ Actions []journal.Entry }
		sv.call(t, "GET", "/v1/actions?action=isolate-pod&target="+ns+"/web-1", sv.keys["admin"], nil, &list)
		inForce := false
		for _, e := range list.Actions {
			if e.Status == journal.Succeeded && (e.Revert == nil || e.Revert.Status != journal.Succeeded) {
				inForce = true
			}
		}
		if q := quarantined(t, env, ns, "web-1"); q != inForce || q && policies(t, env, ns) != 1 || !q && policies(t, env, ns) != 0 {
			t.Fatalf("round %d: quarantined %v, policies %d, but the journal has an isolation in force: %v", round, q, policies(t, env, ns), inForce)
		}
	}
}

// Analysts triage alerts through the API: take, comment, close, bulk
// close, and the queue's filters; every change names the key.
func TestAlertTriage(t *testing.T) {
	sv := kdfir(t)
	ns := testenv.Get(t).Namespace(t)
	post := func(title string) string {
		body := `{"schema":"kdfir.io/alert/v1","title":"` + title + `","severity":"medium","sourceId":"` + title + `-` + ns + `","entities":[]}`
		var out alertResp
		if code := sv.call(t, "POST", "/v1/alerts", sv.keys["admin"], []byte(body), &out); code != 200 {
			t.Fatalf("alert: %d", code)
		}
		return out.Alert.ID
	}
	a1, a2, a3 := post("triage one"), post("triage two"), post("triage three")
	type triaged struct {
		ID     string
		Error  string
		Triage struct {
			Status, Owner, Classification string
			History                       []struct{ By, Field, From, To string }
		}
	}
	var got triaged
	if code := sv.call(t, "PATCH", "/v1/alerts/"+a1, sv.keys["limited"], []byte(`{"owner":"alice"}`), &got); code != 403 {
		t.Fatalf("triage with a read key: %d", code)
	}
	if code := sv.call(t, "PATCH", "/v1/alerts/"+a1, sv.keys["admin"], []byte(`{"owner":"alice","comment":"mine"}`), &got); code != 200 ||
		got.Triage.Status != "active" || got.Triage.Owner != "alice" || got.Triage.History[0].By != "admin" {
		t.Fatalf("take: %d %+v", code, got)
	}
	for body, want := range map[string]int{
		`{"status":"closed"}`:     400, // no classification
		`{"status":"finished"}`:   400,
		`{"owner":"x","bogus":1}`: 400,
		`{}`:                      400,
	} {
		if code := sv.call(t, "PATCH", "/v1/alerts/"+a1, sv.keys["admin"], []byte(body), &got); code != want {
			t.Errorf("PATCH %s: %d, want %d (%s)", body, code, want, got.Error)
		}
	}
	if code := sv.call(t, "PATCH", "/v1/alerts/alert-nope", sv.keys["admin"], []byte(`{"owner":"x"}`), nil); code != 404 {
		t.Errorf("PATCH unknown alert: %d", code)
	}
	// Bulk close is all or none.
	if code := sv.call(t, "POST", "/v1/alerts/close", sv.keys["admin"], []byte(`{"ids":["`+a2+`","alert-nope"],"classification":"false-positive"}`), nil); code != 404 {
		t.Fatalf("bulk close with an unknown id: %d", code)
	}
	var closed struct{ Alerts []triaged }
	if code := sv.call(t, "POST", "/v1/alerts/close", sv.keys["admin"], []byte(`{"ids":["`+a2+`","`+a3+`"],"classification":"false-positive","comment":"test noise"}`), &closed); code != 200 || len(closed.Alerts) != 2 {
		t.Fatalf("bulk close: %d %+v", code, closed)
	}
	var list struct{ Alerts []triaged }
	sv.call(t, "GET", "/v1/alerts?status=closed&source=kdfir&limit=1000", sv.keys["admin"], nil, &list)
	seen := map[string]string{}
	for _, a := range list.Alerts {
		seen[a.ID] = a.Triage.Classification
	}
	if seen[a2] != "false-positive" || seen[a3] != "false-positive" || seen[a1] != "" {
		t.Fatalf("closed queue: %v", seen)
	}
	if code := sv.call(t, "GET", "/v1/alerts?since=yesterday", sv.keys["admin"], nil, nil); code != 400 {
		t.Fatalf("bad since: %d", code)
	}
}

// The alert queue updates live: a client of GET /v1/alerts/events sees a
// new alert and its triage as they happen.
func TestAlertEventsStream(t *testing.T) {
	sv := kdfir(t)
	ns := testenv.Get(t).Namespace(t)
	req, _ := http.NewRequest("GET", sv.url+"/v1/alerts/events", nil)
	req.Header.Set("x-functions-key", sv.keys["admin"])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := sv.client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				events <- ev + " " + strings.TrimPrefix(line, "data: ")
			}
		}
		close(events)
	}()
	body := `{"schema":"kdfir.io/alert/v1","title":"live ` + ns + `","severity":"high","entities":[]}`
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["admin"], []byte(body), &out); code != 200 {
		t.Fatalf("alert: %d", code)
	}
	next := func(want string) {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if strings.HasPrefix(ev, want) && strings.Contains(ev, out.Alert.ID) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %q event", want)
			}
		}
	}
	next("alert ")
	if code := sv.call(t, "PATCH", "/v1/alerts/"+out.Alert.ID, sv.keys["admin"], []byte(`{"owner":"alice"}`), nil); code != 200 {
		t.Fatalf("triage: %d", code)
	}
	next("triage ")
	// Without a key: no stream.
	if code := sv.call(t, "GET", "/v1/alerts/events", "", nil, nil); code != 401 {
		t.Fatalf("events without a key: %d", code)
	}
}

// The console signs in with a key and then uses an HttpOnly, Secure,
// SameSite=Strict cookie; a state-changing request with the cookie needs
// the session's CSRF token; every answer carries the security headers.
func TestConsoleSession(t *testing.T) {
	sv := kdfir(t)
	do := func(method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, sv.url+path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := sv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, _ := do("POST", "/v1/session", []byte(`{"key":"kdfir_wrong"}`), nil); resp.StatusCode != 401 {
		t.Fatalf("sign-in with a wrong key: %d", resp.StatusCode)
	}
	resp, b := do("POST", "/v1/session", []byte(`{"key":"`+sv.keys["admin"]+`"}`), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, b)
	}
	var sess struct{ Key, CSRF string }
	json.Unmarshal(b, &sess)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "kdfir_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.MaxAge <= 0 || sess.CSRF == "" || sess.Key != "admin" {
		t.Fatalf("session cookie %+v, answer %s", cookie, b)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("weak CSP %q", csp)
	}
	withCookie := map[string]string{"Cookie": "kdfir_session=" + cookie.Value}
	if resp, _ := do("GET", "/v1/alerts?limit=1", nil, withCookie); resp.StatusCode != 200 {
		t.Fatalf("read with the session: %d", resp.StatusCode)
	}
	// A forged state-changing request: the cookie alone is not enough.
	alertBody := []byte(`{"schema":"kdfir.io/alert/v1","title":"csrf test","severity":"low","entities":[]}`)
	if resp, b := do("POST", "/v1/alerts", alertBody, withCookie); resp.StatusCode != 403 || !strings.Contains(string(b), "CSRF") {
		t.Fatalf("POST with the cookie and no CSRF token: %d %s", resp.StatusCode, b)
	}
	if resp, _ := do("POST", "/v1/alerts", alertBody, map[string]string{"Cookie": withCookie["Cookie"], "X-CSRF-Token": "guess"}); resp.StatusCode != 403 {
		t.Fatalf("POST with a wrong CSRF token: %d", resp.StatusCode)
	}
	good := map[string]string{"Cookie": withCookie["Cookie"], "X-CSRF-Token": sess.CSRF}
	if resp, b := do("POST", "/v1/alerts", alertBody, good); resp.StatusCode != 200 {
		t.Fatalf("POST with the CSRF token: %d %s", resp.StatusCode, b)
	}
	// Scopes apply unchanged: a read-only key's session cannot triage.
	resp, b = do("POST", "/v1/session", []byte(`{"key":"`+sv.keys["limited"]+`"}`), nil)
	var ro struct{ CSRF string }
	json.Unmarshal(b, &ro)
	roCookie := ""
	for _, c := range resp.Cookies() {
		if c.Name == "kdfir_session" {
			roCookie = c.Value
		}
	}
	if resp, _ := do("POST", "/v1/alerts/close", []byte(`{"ids":["x"],"classification":"false-positive"}`),
		map[string]string{"Cookie": "kdfir_session=" + roCookie, "X-CSRF-Token": ro.CSRF}); resp.StatusCode != 403 {
		t.Fatalf("read-only session closing alerts: %d", resp.StatusCode)
	}
	// Sign-out ends the session.
	if resp, _ := do("DELETE", "/v1/session", nil, good); resp.StatusCode != 200 {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if resp, _ := do("GET", "/v1/alerts?limit=1", nil, withCookie); resp.StatusCode != 401 {
		t.Fatalf("read after sign-out: %d", resp.StatusCode)
	}
}
