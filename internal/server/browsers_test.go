package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/testenv/webdriver"
)

// The console in Firefox (over WebDriver BiDi) and in WebKitGTK, Safari's
// engine (over W3C WebDriver): Chromium is tested with chromedp in
// console_test.go.
func TestBrowsersFirefox(t *testing.T) {
	sv := kdfir(t)
	began := time.Now()
	b := webdriver.Start(t, webdriver.StartFirefox, webdriver.Options{AcceptInsecureCerts: true})
	consoleInBrowser(t, sv, "firefox", b, began)
}

func TestBrowsersWebKit(t *testing.T) {
	sv := kdfir(t)
	began := time.Now()
	b := webdriver.Start(t, webdriver.StartWebKit, webdriver.Options{AcceptInsecureCerts: true})
	consoleInBrowser(t, sv, "webkit", b, began)
}

// errorCatcher records the page's uncaught errors, unhandled rejections,
// console.error calls and Content-Security-Policy violations from the
// moment it runs, in window.__kdfirErrors.
const errorCatcher = `
if (!window.__kdfirErrors) {
  const errs = (window.__kdfirErrors = []);
  window.addEventListener("error", (e) => errs.push("error: " + (e.message || (e.target && (e.target.src || e.target.href)) || "?") +
    (e.filename ? " at " + e.filename + ":" + e.lineno : "")), true);
  window.addEventListener("unhandledrejection", (e) => errs.push("unhandled rejection: " + ((e.reason && e.reason.message) || e.reason)));
  document.addEventListener("securitypolicyviolation", (e) => errs.push("CSP violation: " + e.violatedDirective + " " + e.blockedURI));
  const ce = console.error;
  console.error = function (...a) { errs.push("console.error: " + a.map(String).join(" ")); return ce.apply(this, a); };
}
return true;`

// consoleInBrowser: sign in, the queue with an alert posted through the
// API, a second alert arriving live, every page of the console, the
// session cookie out of the page's reach, and CSRF protection.
func consoleInBrowser(t *testing.T, sv *svc, name string, b webdriver.Browser, began time.Time) {
	t.Logf("%s started in %v", name, time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := artifacts(t)
	n := 0
	snap := func(step string) {
		t.Helper()
		n++
		png, err := b.Screenshot(ctx)
		if err != nil {
			t.Fatalf("screenshot %s: %v", step, err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%s-%02d-%s.png", name, n, step))
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	eval := func(body string, out any) {
		t.Helper()
		if err := b.Eval(ctx, body, out); err != nil {
			t.Fatalf("in %s: %v", name, err)
		}
	}
	// waitFor polls cond (a JavaScript expression) until it is true, for
	// up to 15 s.
	waitFor := func(what, cond string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			var ok bool
			eval("return Boolean("+cond+");", &ok)
			if ok {
				return
			}
			if time.Now().After(deadline) {
				snap("timeout")
				var page string
				_ = b.Eval(ctx, `return document.body.innerText.slice(0, 2000)`, &page)
				t.Fatalf("%s: timed out waiting for %s; the page shows:\n%s", name, what, page)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// shown is an expression: sel is on the page and visible.
	shown := func(sel string) string {
		return `((el) => !!el && !el.closest("[hidden]") && el.getClientRects().length > 0)(document.querySelector(` + jsString(sel) + `))`
	}

	ns := strings.ToLower(fmt.Sprintf("%s-%d", name, time.Now().UnixNano()))
	post := func(title string) string {
		t.Helper()
		body := `{"schema":"kdfir.io/alert/v1","title":"` + title + `","severity":"high","entities":[{"type":"pod","namespace":"` + ns + `","name":"web-1"}]}`
		var out alertResp
		if code := sv.call(t, "POST", "/v1/alerts", sv.keys["admin"], []byte(body), &out); code != 200 {
			t.Fatalf("POST /v1/alerts: %d", code)
		}
		return out.Alert.ID
	}
	first := post("first alert " + ns)

	// The sign-in page.
	if err := b.Navigate(ctx, sv.url+"/"); err != nil {
		t.Fatal(err)
	}
	eval(errorCatcher, nil)
	// A canary error proves that this engine reports errors to the test.
	eval(`setTimeout(() => { throw new Error("kdfir-canary"); }); console.error("kdfir-canary"); return true;`, nil)
	waitFor("the canary errors", `window.__kdfirErrors.filter((e) => e.includes("kdfir-canary")).length === 2`)
	eval(`window.__kdfirErrors.length = 0; return true;`, nil)
	if ff, ok := b.(*webdriver.Firefox); ok {
		canary := func(e webdriver.LogEntry) bool {
			return e.Type == "javascript" && strings.Contains(e.Text, "kdfir-canary")
		}
		for deadline := time.Now().Add(5 * time.Second); !slices.ContainsFunc(ff.Logs(), canary); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("firefox's log has no canary error: %v", ff.Logs())
			}
		}
	}
	waitFor("the sign-in form", shown("#signin-form"))
	snap("sign-in")

	// Sign in with an API key: the queue shows the first alert, and the
	// live-update stream is open.
	eval(`document.getElementById("key").value = `+jsString(sv.keys["admin"])+`;
document.querySelector("#signin-form button[type=submit]").click(); return true;`, nil)
	waitFor("the alert queue", shown("#queue"))
	waitFor("the first alert in the queue", shown(`tr[data-id="`+first+`"]`))
	waitFor("the live-update stream", shown("#live.on"))
	snap("queue")

	// A second alert arrives through the API and shows up without a
	// reload: a mark set on the page before is still there.
	eval(`window.__kdfirNoReload = true; return true;`, nil)
	second := post("second alert " + ns)
	waitFor("the second alert to arrive live", shown(`tr[data-id="`+second+`"].fresh`))
	var stillSame bool
	eval(`return window.__kdfirNoReload === true`, &stillSame)
	if !stillSame {
		t.Fatalf("%s: the page reloaded to show the new alert", name)
	}
	var chips string
	eval(`return document.querySelector('tr[data-id="`+second+`"]').innerText`, &chips)
	if !strings.Contains(chips, "pod: "+ns+"/web-1") {
		t.Errorf("%s: the live row reads %q", name, chips)
	}
	snap("alert-arrived")

	// The session cookie is HttpOnly: the browser holds it, the page
	// cannot read it.
	cookies, err := b.Cookies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(cookies, func(c webdriver.Cookie) bool { return c.Name == "kdfir_session" })
	if i < 0 {
		t.Fatalf("%s: no session cookie after sign-in: %+v", name, cookies)
	}
	if c := cookies[i]; !c.HTTPOnly || !c.Secure || c.SameSite != "strict" {
		t.Errorf("%s: session cookie %+v, want HttpOnly, Secure and SameSite=Strict", name, c)
	}
	var docCookie string
	eval(`return document.cookie`, &docCookie)
	if strings.Contains(docCookie, "kdfir_session") {
		t.Errorf("%s: the page reads the session cookie: %q", name, docCookie)
	}

	// A state-changing request with the cookie but without the CSRF token
	// is refused; the same one with the token is not.
	var codes struct{ Without, With, Owner string }
	eval(`const url = "/v1/alerts/" + encodeURIComponent(`+jsString(first)+`);
const req = (headers) => fetch(url, { method: "PATCH", credentials: "same-origin",
  headers: Object.assign({ "Content-Type": "application/json" }, headers), body: JSON.stringify({ owner: "admin" }) });
const without = await req({});
const after = await (await fetch(url, { credentials: "same-origin" })).json();
const owner = (after.triage && after.triage.owner) || "";
const withToken = await req({ "X-CSRF-Token": sessionStorage.getItem("kdfir.csrf") });
return { without: String(without.status), with: String(withToken.status), owner };`, &codes)
	if codes.Without != "403" {
		t.Errorf("%s: PATCH without X-CSRF-Token: %s, want 403", name, codes.Without)
	}
	if codes.Owner != "" {
		t.Errorf("%s: the refused PATCH still set the owner to %q", name, codes.Owner)
	}
	if codes.With != "200" {
		t.Errorf("%s: PATCH with X-CSRF-Token: %s, want 200", name, codes.With)
	}

	// Every page the console registers renders, without script errors.
	var names []string
	eval(`return Object.keys(pages).sort()`, &names)
	for _, want := range []string{"hunt", "evidence", "rules"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s: the console has no %s page (it has %v)", name, want, names)
		}
	}
	for _, p := range names {
		hash := "#/" + p
		if p == "alerts" {
			hash = "#/alerts/" + first // the alert page
		}
		eval(`location.hash = `+jsString(hash)+`; return true;`, nil)
		sec := "section#" + p
		if p == "alerts" {
			sec = "section#alert"
		}
		waitFor(p+" page", shown(sec)+` && document.getElementById("queue").hidden && document.querySelector(`+jsString(sec)+`).innerText.trim() !== ""`)
		time.Sleep(500 * time.Millisecond) // its requests answer and render
		if p == "hunt" {
			// Run the default query (a time chart of the audit log's
			// creates and deletes): a POST through the console's API
			// client, a grid and an SVG chart.
			eval(`document.getElementById("hunt-run").click(); return true;`, nil)
			waitFor("the hunt's results", `/rows/.test(document.getElementById("hunt-stats").textContent) && `+shown("#hunt-grid .row")+` && `+shown("#hunt-chart svg"))
		}
		var errText string
		eval(`return [...document.querySelectorAll(`+jsString(sec+" .error")+`)].map((e) => e.textContent.trim()).filter(Boolean).join("; ")`, &errText)
		if errText != "" {
			t.Errorf("%s: the %s page shows an error: %s", name, p, errText)
		}
		snap("page-" + p)
	}
	eval(`location.hash = "#/"; return true;`, nil)
	waitFor("the queue again", shown("#queue")+` && document.querySelector('tr[data-id="`+second+`"]') !== null`)

	// Script errors anywhere along the way: the page's own record, and
	// Firefox's log of uncaught errors and console messages from the start.
	var errs []string
	eval(`return window.__kdfirErrors || ["the error catcher is gone: the page reloaded"]`, &errs)
	if ff, ok := b.(*webdriver.Firefox); ok {
		for _, e := range ff.Logs() {
			if e.Level == "error" && !strings.Contains(e.Text, "kdfir-canary") {
				errs = append(errs, "firefox log: "+e.String())
			}
		}
	}
	for _, e := range errs {
		t.Errorf("%s: %s", name, e)
	}
	t.Logf("%s: signed in, live alert, %d pages (%s), cookie and CSRF checked in %v", name, len(names), strings.Join(names, ", "), time.Since(began).Round(time.Millisecond))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
