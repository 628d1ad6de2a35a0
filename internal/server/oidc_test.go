package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kdfir/kdfir/internal/testenv"
	"github.com/kdfir/kdfir/internal/testenv/oidcprovider"
)

var (
	oidcOnce sync.Once
	oidcSvc  *svc
	idp      *oidcprovider.Provider
)

var alice = oidcprovider.User{Subject: "u-alice", Username: "alice@example.com", Email: "alice@example.com", Groups: []string{"soc-analysts", "unrelated"}}

// kdfirOIDC starts a kdfir serve whose console signs in through a real
// OpenID provider (zitadel/oidc's op), also started here.
func kdfirOIDC(t *testing.T) (*svc, *oidcprovider.Provider) {
	t.Helper()
	env := testenv.Get(t)
	oidcOnce.Do(func() {
		addr := freeAddr(t)
		redirect := "https://" + addr + "/v1/session/oidc/callback"
		var err error
		idp, err = oidcprovider.Start("kdfir-console", "console-secret", redirect, alice)
		if err != nil {
			t.Fatal(err)
		}
		secret := filepath.Join(t.TempDir(), "oidc-secret")
		if err := os.WriteFile(secret, []byte("console-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		oidcSvc = startService(t, env, addr, fmt.Sprintf(`oidc:
  name: Test IdP
  issuer: %s
  clientID: kdfir-console
  clientSecretFile: %s
  redirectURL: %s
  groups:
    soc-analysts: {scopes: [read, triage]}
    responders: {scopes: [read, isolate-pod], cluster: testenv}
`, idp.Issuer, secret, redirect))
	})
	if oidcSvc == nil {
		t.Fatal("kdfir serve (oidc) did not start")
	}
	return oidcSvc, idp
}

// freeAddr returns a loopback address no one listens on.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// browserless is a browser's cookie jar and redirects, done by hand so a
// test can stop at the callback.
type browserless struct {
	t      *testing.T
	sv     *svc
	client *http.Client
	jar    *cookiejar.Jar
}

func newBrowserless(t *testing.T, sv *svc) *browserless {
	jar, _ := cookiejar.New(nil)
	tr := sv.client.Transport
	return &browserless{t: t, sv: sv, jar: jar, client: &http.Client{Jar: jar, Transport: tr, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browserless) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// toCallback starts a sign-in and follows the redirects through the
// provider, up to the provider's redirect back to kdfir's callback, which
// it returns with the state cookie's answer.
func (b *browserless) toCallback() (callback *url.URL, login *http.Response) {
	b.t.Helper()
	next := b.sv.url + "/v1/session/oidc/login"
	for i := 0; i < 10; i++ {
		resp, body := b.get(next)
		if i == 0 {
			login = resp
		}
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			b.t.Fatalf("GET %s: %d %s", next, resp.StatusCode, body)
		}
		loc, err := resp.Location()
		if err != nil {
			b.t.Fatal(err)
		}
		if loc.Path == "/v1/session/oidc/callback" {
			return loc, login
		}
		next = loc.String()
	}
	b.t.Fatal("too many redirects")
	return nil, nil
}

// signIn runs the whole flow and returns the callback's answer and body.
func (b *browserless) signIn() (*http.Response, string) {
	b.t.Helper()
	cb, _ := b.toCallback()
	return b.get(cb.String())
}

// session reads GET /v1/session with the jar's cookie.
func (b *browserless) session() (code int, s struct {
	Key    string
	Scopes []string
	CSRF   string
}) {
	resp, body := b.get(b.sv.url + "/v1/session")
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			b.t.Fatal(err)
		}
	}
	return resp.StatusCode, s
}

func (b *browserless) do(method, path, csrf string, body []byte) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.sv.url+path, bytes.NewReader(body))
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// A user of a mapped group signs in through the provider and gets a
// console session like a key's: the group's scopes, CSRF on every change,
// and the principal oidc:<username> in the alert's history.
func TestOIDCSignIn(t *testing.T) {
	sv, p := kdfirOIDC(t)
	p.SetUser(alice)
	p.Tamper(nil)

	var prov struct {
		OIDC struct{ Name, Login string }
	}
	if code := sv.call(t, "GET", "/v1/session/providers", "", nil, &prov); code != 200 || prov.OIDC.Name != "Test IdP" || prov.OIDC.Login != "/v1/session/oidc/login" {
		t.Fatalf("providers: %d %+v", code, prov)
	}
	var none struct{ OIDC *struct{} }
	if code := kdfir(t).call(t, "GET", "/v1/session/providers", "", nil, &none); code != 200 || none.OIDC != nil {
		t.Fatalf("providers without OIDC configured: %d %+v", code, none)
	}

	b := newBrowserless(t, sv)
	cb, login := b.toCallback()
	st := cookieNamed(login, "kdfir_oidc")
	if st == nil || !st.HttpOnly || !st.Secure || st.SameSite != http.SameSiteLaxMode || st.MaxAge <= 0 || st.MaxAge > 600 || st.Path != "/v1/session/oidc/" {
		t.Fatalf("state cookie %+v", st)
	}
	authURL, _ := login.Location()
	q := authURL.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("state") == st.Value {
		t.Fatalf("authorization request %s", authURL)
	}
	resp, body := b.get(cb.String())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	c := cookieNamed(resp, "kdfir_session")
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.MaxAge <= 0 {
		t.Fatalf("session cookie %+v", c)
	}
	code, s := b.session()
	if code != 200 || s.Key != "oidc:alice@example.com" || strings.Join(s.Scopes, ",") != "read,triage" || s.CSRF == "" {
		t.Fatalf("session: %d %+v", code, s)
	}

	// The group's scopes: read and triage, not alerts.
	if code, body := b.do("GET", "/v1/alerts?limit=1", "", nil); code != 200 {
		t.Fatalf("read alerts: %d %s", code, body)
	}
	alertBody := []byte(`{"schema":"kdfir.io/alert/v1","title":"oidc triage ` + time.Now().Format(time.RFC3339Nano) + `","severity":"low","entities":[]}`)
	if code, body := b.do("POST", "/v1/alerts", s.CSRF, alertBody); code != 403 || !strings.Contains(body, `lacks scope \"alerts\"`) {
		t.Fatalf("POST /v1/alerts without the alerts scope: %d %s", code, body)
	}
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["admin"], alertBody, &out); code != 200 {
		t.Fatalf("alert: %d", code)
	}
	patch := []byte(`{"status":"active","comment":"looking"}`)
	if code, body := b.do("PATCH", "/v1/alerts/"+out.Alert.ID, "", patch); code != 403 || !strings.Contains(body, "CSRF") {
		t.Fatalf("PATCH without the CSRF token: %d %s", code, body)
	}
	if code, body := b.do("PATCH", "/v1/alerts/"+out.Alert.ID, "guess", patch); code != 403 {
		t.Fatalf("PATCH with a wrong CSRF token: %d %s", code, body)
	}
	if code, body := b.do("PATCH", "/v1/alerts/"+out.Alert.ID, s.CSRF, patch); code != 200 {
		t.Fatalf("PATCH with the CSRF token: %d %s", code, body)
	}
	var a struct {
		Triage struct {
			Status  string
			History []struct{ By string }
		}
	}
	sv.call(t, "GET", "/v1/alerts/"+out.Alert.ID, sv.keys["admin"], nil, &a)
	if a.Triage.Status != "active" || len(a.Triage.History) == 0 || a.Triage.History[len(a.Triage.History)-1].By != "oidc:alice@example.com" {
		t.Fatalf("triage recorded as %+v", a.Triage)
	}

	// The callback cannot be replayed: its state was used.
	if resp, body := b.get(cb.String()); resp.StatusCode != 400 || cookieNamed(resp, "kdfir_session") != nil {
		t.Fatalf("replayed callback: %d %s", resp.StatusCode, body)
	}
	// Sign-out ends the session.
	if code, _ := b.do("DELETE", "/v1/session", s.CSRF, nil); code != 200 {
		t.Fatalf("sign-out: %d", code)
	}
	if code, _ := b.do("GET", "/v1/alerts?limit=1", "", nil); code != 401 {
		t.Fatalf("read after sign-out: %d", code)
	}
}

// A group's cluster binds the session as a key's cluster does.
func TestOIDCClusterBinding(t *testing.T) {
	sv, p := kdfirOIDC(t)
	p.Tamper(nil)
	p.SetUser(oidcprovider.User{Subject: "u-bob", Username: "bob", Groups: []string{"responders"}})
	t.Cleanup(func() { p.SetUser(alice) })
	b := newBrowserless(t, sv)
	if resp, body := b.signIn(); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	code, s := b.session()
	if code != 200 || s.Key != "oidc:bob" || strings.Join(s.Scopes, ",") != "isolate-pod,read" {
		t.Fatalf("session: %d %+v", code, s)
	}
	req := []byte(`{"cluster":"down","action":"isolate-pod","target":{"type":"pod","namespace":"x","name":"y"},"dryRun":true,"reason":"test"}`)
	if code, body := b.do("POST", "/v1/actions", s.CSRF, req); code != 403 || !strings.Contains(body, "bound to cluster testenv") {
		t.Fatalf("action on another cluster: %d %s", code, body)
	}
}

// Sign-ins that must not open a session.
func TestOIDCRefused(t *testing.T) {
	sv, p := kdfirOIDC(t)
	t.Cleanup(func() { p.SetUser(alice); p.Tamper(nil) })
	cases := []struct {
		name   string
		user   oidcprovider.User
		tamper func(map[string]any)
		// edit changes the provider's redirect to the callback.
		edit     func(*url.URL)
		code     int
		contains string
	}{
		{name: "unmapped group", user: oidcprovider.User{Subject: "u-eve", Username: "eve", Groups: []string{"sales"}},
			code: 403, contains: "user eve is in no group that kdfir maps to scopes"},
		{name: "no groups", user: oidcprovider.User{Subject: "u-nog", Username: "nog"}, code: 403, contains: "in no group"},
		{name: "tampered state", edit: func(u *url.URL) {
			q := u.Query()
			q.Set("state", q.Get("state")+"x")
			u.RawQuery = q.Encode()
		}, code: 400, contains: "state mismatch"},
		{name: "no state", edit: func(u *url.URL) {
			q := u.Query()
			q.Del("state")
			u.RawQuery = q.Encode()
		}, code: 400, contains: "state mismatch"},
		{name: "tampered code", edit: func(u *url.URL) {
			q := u.Query()
			q.Set("code", "forged")
			u.RawQuery = q.Encode()
		}, code: 403, contains: "did not accept the authorization code"},
		{name: "provider error", edit: func(u *url.URL) {
			q := u.Query()
			q.Del("code")
			q.Set("error", "access_denied")
			u.RawQuery = q.Encode()
		}, code: 403, contains: "access_denied"},
		{name: "tampered nonce", tamper: func(c map[string]any) { c["nonce"] = "other" }, code: 403, contains: "nonce mismatch"},
		{name: "no nonce", tamper: func(c map[string]any) { delete(c, "nonce") }, code: 403, contains: "nonce mismatch"},
		{name: "other issuer", tamper: func(c map[string]any) { c["iss"] = "http://127.0.0.1:1" }, code: 403, contains: "different provider"},
		{name: "other audience", tamper: func(c map[string]any) { c["aud"] = []string{"another-app"} }, code: 403, contains: "expected audience"},
		{name: "expired", tamper: func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
			c["iat"] = time.Now().Add(-time.Hour).Unix()
		}, code: 403, contains: "expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := alice
			if tc.user.Subject != "" {
				u = tc.user
			}
			p.SetUser(u)
			p.Tamper(tc.tamper)
			b := newBrowserless(t, sv)
			cb, _ := b.toCallback()
			if tc.edit != nil {
				tc.edit(cb)
			}
			resp, body := b.get(cb.String())
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.contains) {
				t.Fatalf("callback: %d, want %d with %q\n%s", resp.StatusCode, tc.code, tc.contains, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("refusal page is %s", ct)
			}
			if c := cookieNamed(resp, "kdfir_session"); c != nil {
				t.Fatalf("a refused sign-in set a session cookie %+v", c)
			}
			if code, _ := b.session(); code != 401 {
				t.Fatalf("a refused sign-in has a session: %d", code)
			}
		})
	}

	// An answer that reaches another browser (no state cookie) is refused.
	p.SetUser(alice)
	p.Tamper(nil)
	cb, _ := newBrowserless(t, sv).toCallback()
	other := newBrowserless(t, sv)
	if resp, body := other.get(cb.String()); resp.StatusCode != 400 || !strings.Contains(body, "No sign-in is in progress in this browser") {
		t.Fatalf("callback in another browser: %d %s", resp.StatusCode, body)
	}
}

// In a real browser: the sign-in page offers the provider, one click goes
// through it, and the console opens signed in as oidc:<username>.
func TestOIDCSignInBrowser(t *testing.T) {
	sv, p := kdfirOIDC(t)
	p.SetUser(alice)
	p.Tamper(nil)
	dir := artifacts(t)
	ctx := browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(sv.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#oidc-signin")),
		shot(t, dir, 1, "sign-in-with-oidc"),
	); err != nil {
		t.Fatalf("sign-in page: %v", err)
	}
	label, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#oidc-signin")))
	if err != nil || label != "Sign in with Test IdP" {
		t.Fatalf("OIDC button %q, %v", label, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#oidc-signin")),
		chromedp.WaitVisible(chromedp.CSS("#queue")),
		shot(t, dir, 2, "signed-in"),
	); err != nil {
		t.Fatalf("OIDC sign-in in the browser: %v", err)
	}
	who, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#who")))
	if err != nil {
		t.Fatal(err)
	}
	if who != "signed in as oidc:alice@example.com" {
		t.Fatalf("header says %q", who)
	}
	// Bulk close needs triage, which soc-analysts have.
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("bulk").hidden`))
	if err != nil {
		t.Fatal(err)
	}
	if hidden {
		t.Fatal("a session with the triage scope sees no close controls")
	}

	// A user in no mapped group lands on a page that says why.
	p.SetUser(oidcprovider.User{Subject: "u-eve", Username: "eve", Groups: []string{"sales"}})
	t.Cleanup(func() { p.SetUser(alice) })
	eve := browser(t)
	if err := chromedp.Do(eve,
		chromedp.Navigate(sv.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#oidc-signin")),
		chromedp.Click(chromedp.CSS("#oidc-signin")),
		chromedp.WaitVisible(chromedp.CSS("#oidc-error")),
		shot(t, dir, 3, "refused"),
	); err != nil {
		t.Fatalf("refused sign-in in the browser: %v", err)
	}
	msg, err := chromedp.Run(eve, chromedp.Text(chromedp.CSS("#oidc-error")))
	if err != nil || !strings.Contains(msg, "user eve is in no group that kdfir maps to scopes") {
		t.Fatalf("refusal page says %q, %v", msg, err)
	}
}

// The login endpoint needs no credentials: each address may start only so
// many sign-ins. (Last in the file: it spends this address's budget.)
func TestOIDCLoginRateLimit(t *testing.T) {
	sv, _ := kdfirOIDC(t)
	b := newBrowserless(t, sv)
	for i := 0; i < 100; i++ {
		resp, body := b.get(sv.url + "/v1/session/oidc/login")
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many sign-ins") {
				t.Fatalf("429 without Retry-After or reason: %s", body)
			}
			return
		}
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("login %d: %d %s", i, resp.StatusCode, body)
		}
	}
	t.Fatal("100 sign-ins started at once from one address, none limited")
}
