package server

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/config"
)

// OpenID Connect sign-in for the console: the authorization code flow
// with PKCE. /v1/session/oidc/login sends the browser to the provider with
// a fresh state, nonce and code verifier, kept on the server under a
// short-lived cookie of this browser's; /v1/session/oidc/callback checks
// the state against that cookie, exchanges the code, verifies the ID token
// (signature, issuer, audience, expiry, nonce) with go-oidc, maps the
// user's groups to the union of their scopes, and opens the same console
// session as a key sign-in, for the principal oidc:<username>.

// oidcStateCookie carries the id of a sign-in in progress; it goes only
// to the callback.
const oidcStateCookie = "kdfir_oidc"

// oidcLoginTTL bounds how long a user may take at the provider.
const oidcLoginTTL = 10 * time.Minute

// maxPendingLogins bounds sign-ins in progress (the login endpoint needs
// no credentials), and each client address may start 2 a second, in
// bursts of 40, so one cannot fill them.
const maxPendingLogins = 10000

// OIDC is the console's OpenID Connect sign-in.
type OIDC struct {
	cfg    config.OIDC
	secret string
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	provider *oidc.Provider // nil until discovery succeeds
	pending  map[string]*oidcLogin
	// logins bounds the sign-ins each client address may start.
	logins failureLimiter
}

type oidcLogin struct {
	state, nonce, verifier string
	expires                time.Time
}

// NewOIDC prepares OIDC sign-in; secret is the resolved client secret
// ("" for a public client). It discovers the provider now when it can,
// and otherwise on the first sign-in, so kdfir serve starts while the
// provider is unreachable.
func NewOIDC(ctx context.Context, cfg config.OIDC, secret string, log *slog.Logger) *OIDC {
	o := &OIDC{cfg: cfg, secret: secret, log: log, client: &http.Client{Timeout: 15 * time.Second},
		pending: map[string]*oidcLogin{}, logins: failureLimiter{perSecond: 2, burst: 40}}
	if _, err := o.discover(ctx); err != nil {
		log.Warn("oidc: provider discovery failed; retrying at the first sign-in", "issuer", cfg.Issuer, "err", err)
	}
	return o
}

// discover fetches the provider's metadata once.
func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.client), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery %s: %w", o.cfg.Issuer, err)
	}
	o.provider = p
	return p, nil
}

// reach returns the provider, or answers that it cannot be reached.
func (o *OIDC) reach(w http.ResponseWriter, r *http.Request) *oidc.Provider {
	p, err := o.discover(r.Context())
	if err != nil {
		o.log.Error("oidc sign-in", "err", err)
		oidcPage(w, http.StatusBadGateway, "The identity provider cannot be reached. Try again later, or sign in with an API key.")
		return nil
	}
	return p
}

func (o *OIDC) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.secret, Endpoint: p.Endpoint(),
		RedirectURL: o.cfg.RedirectURL, Scopes: o.cfg.ScopesWithOpenID()}
}

// begin records a new sign-in and returns its id.
func (o *OIDC) begin() (string, *oidcLogin, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	for id, l := range o.pending {
		if now.After(l.expires) {
			delete(o.pending, id)
		}
	}
	if len(o.pending) >= maxPendingLogins {
		return "", nil, errors.New("too many sign-ins in progress; try again in a few minutes")
	}
	l := &oidcLogin{state: randomToken(), nonce: randomToken(), verifier: oauth2.GenerateVerifier(), expires: now.Add(oidcLoginTTL)}
	id := randomToken()
	o.pending[id] = l
	return id, l, nil
}

// take removes and returns the sign-in with that id, if still valid.
func (o *OIDC) take(id string) *oidcLogin {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.pending[id]
	delete(o.pending, id)
	if l == nil || time.Now().After(l.expires) {
		return nil
	}
	return l
}

// oidcProviders answers GET /v1/session/providers: the sign-in methods
// the console offers, without credentials.
func (s *Server) oidcProviders(w http.ResponseWriter, _ *http.Request) {
	type provider struct {
		Name  string `json:"name"`
		Login string `json:"login"`
	}
	out := struct {
		Key  bool      `json:"key"`
		OIDC *provider `json:"oidc,omitempty"`
	}{Key: true}
	if s.OIDC != nil {
		out.OIDC = &provider{Name: s.OIDC.cfg.DisplayName(), Login: "/v1/session/oidc/login"}
	}
	writeJSON(w, http.StatusOK, out)
}

// oidcLogin answers GET /v1/session/oidc/login: a redirect to the
// provider.
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	o := s.OIDC
	if o == nil {
		writeError(w, http.StatusNotFound, "OIDC sign-in is not configured")
		return
	}
	if !o.logins.allow(r.RemoteAddr) {
		w.Header().Set("Retry-After", "1")
		oidcPage(w, http.StatusTooManyRequests, "Too many sign-ins from this address; wait a moment and try again.")
		return
	}
	p := o.reach(w, r)
	if p == nil {
		return
	}
	id, l, err := o.begin()
	if err != nil {
		oidcPage(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: id, Path: "/v1/session/oidc/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcLoginTTL.Seconds())})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, o.oauth2(p).AuthCodeURL(l.state, oidc.Nonce(l.nonce), oauth2.S256ChallengeOption(l.verifier)), http.StatusFound)
}

// oidcCallback answers GET /v1/session/oidc/callback.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := s.OIDC
	if o == nil {
		writeError(w, http.StatusNotFound, "OIDC sign-in is not configured")
		return
	}
	// The state cookie is used once, whatever happens.
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: "", Path: "/v1/session/oidc/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	w.Header().Set("Cache-Control", "no-store")
	refuse := func(code int, why, msg string) {
		o.log.Warn("oidc sign-in refused", "reason", why, "remote", r.RemoteAddr)
		if !s.failures.allow(r.RemoteAddr) {
			w.Header().Set("Retry-After", "1")
			code = http.StatusTooManyRequests
		}
		oidcPage(w, code, msg)
	}
	q := r.URL.Query()
	var l *oidcLogin
	if c, err := r.Cookie(oidcStateCookie); err == nil && c.Value != "" {
		l = o.take(c.Value)
	}
	switch {
	case l == nil:
		refuse(http.StatusBadRequest, "no sign-in in progress in this browser", "No sign-in is in progress in this browser, or it took too long. Start again from the console.")
		return
	case q.Get("state") == "" || !equalSecret(q.Get("state"), l.state):
		refuse(http.StatusBadRequest, "state mismatch", "The answer from the identity provider does not belong to this browser's sign-in (state mismatch). Start again from the console.")
		return
	case q.Get("error") != "":
		refuse(http.StatusForbidden, "provider error "+q.Get("error"), "The identity provider refused the sign-in: "+q.Get("error")+" "+q.Get("error_description"))
		return
	case q.Get("code") == "":
		refuse(http.StatusBadRequest, "no code", "The identity provider's answer has no authorization code.")
		return
	}
	p := o.reach(w, r)
	if p == nil {
		return
	}
	ctx := oidc.ClientContext(r.Context(), o.client)
	tok, err := o.oauth2(p).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.verifier))
	if err != nil {
		o.log.Warn("oidc code exchange", "err", err)
		refuse(http.StatusForbidden, "code exchange failed", "The identity provider did not accept the authorization code.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		refuse(http.StatusForbidden, "no id_token", "The identity provider returned no ID token.")
		return
	}
	// The provider's keys are fetched once and again when a token names
	// a key not seen yet (a rotation), with the client discovery used.
	idt, err := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		refuse(http.StatusForbidden, "id token: "+err.Error(), "The ID token is not valid for this application: "+err.Error())
		return
	}
	if idt.Nonce == "" || !equalSecret(idt.Nonce, l.nonce) {
		refuse(http.StatusForbidden, "nonce mismatch", "The ID token was not issued for this sign-in (nonce mismatch).")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		refuse(http.StatusForbidden, "claims", "The ID token's claims cannot be read.")
		return
	}
	k, err := o.principal(claims)
	if err != nil {
		refuse(http.StatusForbidden, err.Error(), err.Error())
		return
	}
	s.startSession(w, k)
	s.Log.Info("console sign-in", "key", k.Name, "via", "oidc", "scopes", k.Scopes, "cluster", k.Cluster, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// principal maps an ID token's claims to the session's principal: its
// name from the username claim, the union of the mapped groups' scopes,
// and their cluster.
func (o *OIDC) principal(claims map[string]any) (*auth.Key, error) {
	user := ""
	if c := o.cfg.UsernameClaim; c != "" {
		user, _ = claims[c].(string)
		if user == "" {
			return nil, fmt.Errorf("the ID token has no %s claim to name the user", c)
		}
	} else {
		for _, c := range []string{"preferred_username", "email", "sub"} {
			if user, _ = claims[c].(string); user != "" {
				break
			}
		}
	}
	gc := o.cfg.GroupsClaimOrDefault()
	var groups []string
	switch v := claims[gc].(type) {
	case string:
		groups = []string{v}
	case []any:
		for _, g := range v {
			if s, ok := g.(string); ok {
				groups = append(groups, s)
			}
		}
	case nil:
		// Entra ID leaves the groups out when a user is in too many, and
		// names them in _claim_names for a Graph call instead.
		if names, ok := claims["_claim_names"].(map[string]any); ok && names[gc] != nil {
			return nil, fmt.Errorf("user %s is in too many groups for the ID token to list them (Entra ID group overage): assign the groups to the application and emit only those", user)
		}
	}
	var scopes, matched []string
	cluster, clusterFrom := "", ""
	for _, g := range groups {
		m, ok := o.cfg.Groups[g]
		if !ok || slices.Contains(matched, g) {
			continue
		}
		matched = append(matched, g)
		for _, sc := range m.Scopes {
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
		if m.Cluster != "" {
			if cluster != "" && !strings.EqualFold(cluster, m.Cluster) {
				return nil, fmt.Errorf("user %s is in groups bound to different clusters (%s: %s, %s: %s); a session acts on one cluster at most", user, clusterFrom, cluster, g, m.Cluster)
			}
			if cluster == "" {
				cluster, clusterFrom = m.Cluster, g
			}
		}
	}
	if len(matched) == 0 {
		return nil, fmt.Errorf("user %s is in no group that kdfir maps to scopes (claim %q): ask an administrator to add you to one", user, gc)
	}
	sort.Strings(scopes)
	return &auth.Key{Name: config.OIDCPrincipalPrefix + user, Scopes: scopes, Cluster: cluster}, nil
}

var oidcPageTmpl = template.Must(template.New("oidc").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kdfir: sign-in refused</title>
<link rel="stylesheet" href="/console/console.css"></head>
<body><header><h1>kdfir</h1></header>
<section><h2>Sign-in refused</h2><p id="oidc-error" class="error" role="alert">{{.}}</p>
<p><a href="/">Back to the console</a></p></section></body></html>
`))

// oidcPage answers a browser with a short page that says what went wrong.
func oidcPage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = oidcPageTmpl.Execute(w, msg)
}
