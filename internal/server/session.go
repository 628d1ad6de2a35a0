package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/kdfir/kdfir/internal/auth"
)

// Console sessions: a browser signs in once with an API key and then
// carries an HttpOnly cookie instead of the key. The key's scopes apply
// unchanged. A state-changing request made with the cookie must also carry
// the session's CSRF token in X-CSRF-Token, which only the page that
// signed in has; the cookie is also SameSite=Strict.

// SessionCookie names the console's session cookie.
const SessionCookie = "kdfir_session"

// DefaultSessionTTL is how long a console session lasts.
const DefaultSessionTTL = 8 * time.Hour

type session struct {
	key string // the API key's name
	// principal is an OIDC session's (oidc:<user>, its groups' scopes);
	// nil for a key's session.
	principal *auth.Key
	csrf      string
	expires   time.Time
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *sessions) create(key string, principal *auth.Key, ttl time.Duration) (id string, s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*session{}
	}
	now := time.Now()
	for id, s := range ss.m {
		if now.After(s.expires) {
			delete(ss.m, id)
		}
	}
	id = randomToken()
	s = &session{key: key, principal: principal, csrf: randomToken(), expires: now.Add(ttl)}
	ss.m[id] = s
	return id, s
}

func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil || time.Now().After(s.expires) {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// fromSession authenticates a request by its session cookie. For a
// state-changing method it also checks the CSRF token; csrfOK is false
// when that check fails.
func (s *Server) fromSession(r *http.Request) (key *auth.Key, csrfOK bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, true
	}
	sess := s.sessions.get(c.Value)
	if sess == nil {
		return nil, true
	}
	k := sess.principal
	if k == nil {
		k = s.Auth.ByName(sess.key)
	}
	if k == nil {
		return nil, true // the key was removed from the config
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return k, true
	}
	return k, equalSecret(r.Header.Get("X-CSRF-Token"), sess.csrf)
}

// equalSecret compares a presented token with the expected one in
// constant time; an empty one never matches.
func equalSecret(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

type sessionRequest struct {
	Key string `json:"key"`
}

type sessionResponse struct {
	Key     string    `json:"key"`
	Scopes  []string  `json:"scopes"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

// signIn exchanges an API key (in the body, or the usual places) for a
// session cookie.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	var req sessionRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	secret := req.Key
	if secret == "" {
		secret = presentedKey(r)
	}
	k := s.Auth.Lookup(secret)
	if k == nil {
		if !s.failures.allow(r.RemoteAddr) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "too many requests without a valid API key")
			return
		}
		writeError(w, http.StatusUnauthorized, "a valid API key is required")
		return
	}
	sess := s.startSession(w, k)
	s.Log.Info("console sign-in", "key", k.Name, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, sessionResponse{Key: k.Name, Scopes: k.Scopes, CSRF: sess.csrf, Expires: sess.expires})
}

// startSession opens a console session for k and sets its cookie. A key
// (k from the Authenticator) is looked up again on every request; an OIDC
// principal (named oidc:...) is kept with the session.
func (s *Server) startSession(w http.ResponseWriter, k *auth.Key) *session {
	ttl := s.SessionTTL
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	var principal *auth.Key
	if s.Auth.ByName(k.Name) != k {
		principal = k
	}
	id, sess := s.sessions.create(k.Name, principal, ttl)
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, Expires: sess.expires, MaxAge: int(ttl.Seconds())})
	return sess
}

// currentSession answers GET /v1/session: the cookie's session, with its
// CSRF token, so the console picks up a session the OIDC callback opened.
// Only a same-origin page can read the answer.
func (s *Server) currentSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		if sess := s.sessions.get(c.Value); sess != nil {
			k := sess.principal
			if k == nil {
				k = s.Auth.ByName(sess.key)
			}
			if k != nil {
				writeJSON(w, http.StatusOK, sessionResponse{Key: k.Name, Scopes: k.Scopes, CSRF: sess.csrf, Expires: sess.expires})
				return
			}
		}
	}
	writeError(w, http.StatusUnauthorized, "not signed in")
}

// sessionRoutes adds the console's sign-in routes that need no
// credentials: the session itself, the sign-in methods, and OIDC.
func (s *Server) sessionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/session", s.signIn)
	mux.HandleFunc("GET /v1/session", s.currentSession)
	mux.HandleFunc("GET /v1/session/providers", s.oidcProviders)
	mux.HandleFunc("GET /v1/session/oidc/login", s.oidcLogin)
	mux.HandleFunc("GET /v1/session/oidc/callback", s.oidcCallback)
}

// signOut ends the session (it needs the CSRF token, as every
// state-changing request made with the cookie does).
func (s *Server) signOut(w http.ResponseWriter, r *http.Request, _ *auth.Key) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		s.sessions.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
}

// securityHeaders are set on every answer: no sniffing, no framing, a
// strict Content-Security-Policy with no inline scripts, no referrer.
func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
}
