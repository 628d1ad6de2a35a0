// Package server is kdfir serve: an HTTPS API that takes alerts (from
// Defender for Cloud, Sentinel, Falco, kdfir's own rules, and the original
// Azure Function's request format), runs playbooks and single actions, and
// receives the API server's audit webhook.
package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/playbook"
	"github.com/kdfir/kdfir/internal/respond"
	"github.com/kdfir/kdfir/internal/store"
	"github.com/kdfir/kdfir/web"
)

// ActionRequest asks for one action on one target.
type ActionRequest struct {
	// Cluster is a configured cluster's name or Azure ResourceId; empty
	// means the only or default cluster.
	Cluster string         `json:"cluster,omitempty"`
	Action  string         `json:"action"`
	Target  alert.Entity   `json:"target"`
	Params  map[string]any `json:"params,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	DryRun  bool           `json:"dryRun,omitempty"`
	// Alert links the action to the alert it answers (the journal
	// entry's parent), as a playbook's steps are.
	Alert string `json:"alert,omitempty"`
	// Actor is the API key's name; Parent the alert that caused it.
	Actor  string `json:"-"`
	Parent string `json:"-"`
}

// ActionResult is what an action did.
type ActionResult struct {
	ID      string           `json:"id"`
	Action  string           `json:"action"`
	Target  string           `json:"target"`
	Status  string           `json:"status"`
	Message string           `json:"message,omitempty"`
	Changes []journal.Change `json:"changes,omitempty"`
	// Output is what the action returned: exec-pod's respond.ExecOutput.
	Output   any      `json:"output,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Plan is, for a dry run, every object that would change and how;
	// LeftAlone what a revert leaves because someone changed it since.
	Plan      []respond.PlanItem `json:"plan,omitempty"`
	LeftAlone []string           `json:"leftAlone,omitempty"`
}

// Actions runs actions and reads the journal. Errors wrapping
// ErrBadRequest are the caller's fault (unknown cluster, pod, namespace or
// node; invalid parameters) and map to 400.
type Actions interface {
	Run(ctx context.Context, req ActionRequest) (*ActionResult, error)
	// Hold journals the action as pending_approval without running it.
	Hold(ctx context.Context, req ActionRequest, resume json.RawMessage) (*ActionResult, error)
	// Approve runs a held action and returns the resume data Hold stored.
	Approve(ctx context.Context, id, actor string) (*ActionResult, json.RawMessage, error)
	// Reject refuses a held action: it never runs.
	Reject(ctx context.Context, id, actor, reason string) (*journal.Entry, error)
	// Revert undoes an action; with dryRun the API server only checks
	// the revert, and the result's Plan says what it would restore.
	Revert(ctx context.Context, id, actor string, dryRun bool) (*ActionResult, error)
	Get(ctx context.Context, id string) (*journal.Entry, error)
	List(ctx context.Context, f journal.Filter) ([]*journal.Entry, error)
}

// ErrBadRequest marks errors in what a caller asked for.
var ErrBadRequest = errors.New("bad request")

// Alerts stores alerts.
type Alerts interface {
	// Add stores a new alert and assigns its ID.
	Add(ctx context.Context, a *alert.Alert) error
	// SetActions records the actions an alert's playbooks started.
	SetActions(ctx context.Context, id string, actions []string) error
	// FindBySource returns the alert from source with sourceID received
	// since the given time, or nil.
	FindBySource(ctx context.Context, source, sourceID string, since time.Time) (*alert.Alert, error)
	Get(ctx context.Context, id string) (*alert.Alert, error)
	List(ctx context.Context, f alert.Filter) ([]*alert.Alert, error)
	// Triage applies an analyst's update; CloseMany closes alerts all or
	// none. Both record who changed what.
	Triage(ctx context.Context, id string, u alert.TriageUpdate, by string) (*alert.Alert, error)
	CloseMany(ctx context.Context, ids []string, classification, comment, by string) ([]*alert.Alert, error)
}

// AuditSink receives audit.k8s.io EventList bodies from the API server's
// webhook; it must store them durably before returning.
type AuditSink interface {
	IngestWebhook(ctx context.Context, cluster string, body io.Reader) (stored int, err error)
}

// Server is the HTTP API.
type Server struct {
	Auth      *auth.Authenticator
	Actions   Actions
	Alerts    Alerts
	Audit     AuditSink // nil: /v1/audit answers 404
	Playbooks *playbook.Engine
	Metrics   *Metrics
	Log       *slog.Logger
	// ExecEnabled allows runcommand / exec-pod.
	ExecEnabled bool
	// DedupeWindow drops a repeated delivery of the same alert (same
	// source id) within this window. Default 10 minutes.
	DedupeWindow time.Duration
	// MaxBody bounds request bodies (default 1 MiB); MaxAuditBody bounds
	// audit webhook batches (default 32 MiB).
	MaxBody, MaxAuditBody int64
	// Ready reports readiness, one line per component (nil: always
	// ready).
	Ready func(ctx context.Context) (report string, ok bool)
	// AKSRoute is the path of the original function's endpoint, matched
	// without regard to case (default /api/AKSTriggerResponse).
	AKSRoute string
	// IdempotencyWindow is how long the AKS endpoint replays an answer to
	// a repeated request (default 10 minutes).
	IdempotencyWindow time.Duration
	// ClusterName resolves a cluster reference (a name or an Azure
	// ResourceId) to the configured cluster's name, or "".
	ClusterName func(ref string) string
	// SessionTTL is how long a console session lasts (default 8h).
	SessionTTL time.Duration
	// OIDC turns on the console's OpenID Connect sign-in (nil: off).
	OIDC *OIDC
	// Evidence maps the AKS endpoint's storageaccount to a checked
	// destination (nil: collectartifacts to blob storage is refused).
	Evidence *evidence.Policy
	// Events is the event store the audit webhook writes; hunts and rule
	// tests read it (nil: they answer 404).
	Events *store.Store
	// Rules are the detection rules and RuleState their last runs, for
	// GET /v1/rules.
	Rules     []*detect.Rule
	RuleState detect.State
	// EvidenceStores are the configured evidence destinations by name,
	// and EvidenceKey the trusted key their manifests are checked with.
	EvidenceStores map[string]evidence.Sink
	EvidenceKey    ed25519.PublicKey

	alertMu  sync.Mutex // serialises alert de-duplication
	replays  replays
	failures failureLimiter
	feed     feed
	sessions sessions
	// collections caches evidence listings and verifications.
	collections evidenceCache
	// hunts bounds the hunts and rule tests that run at once.
	hunts huntSlots
}

// failureLimiter bounds requests without a valid key, per client address:
// 5 a second, in bursts of 20.
type failureLimiter struct {
	mu  sync.Mutex
	ips map[string]*rate.Limiter
	// perSecond and burst override 5 and 20.
	perSecond rate.Limit
	burst     int
}

func (f *failureLimiter) allow(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ips == nil || len(f.ips) > 10000 {
		f.ips = map[string]*rate.Limiter{} // bounded: forget old clients
	}
	l, ok := f.ips[host]
	if !ok {
		every, burst := f.perSecond, f.burst
		if every == 0 {
			every, burst = 5, 20
		}
		l = rate.NewLimiter(every, burst)
		f.ips[host] = l
	}
	return l.Allow()
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, name, scope string, h func(http.ResponseWriter, *http.Request, *auth.Key)) {
		mux.Handle(pattern, s.wrap(name, scope, h))
	}
	aksRoute := s.AKSRoute
	if aksRoute == "" {
		aksRoute = "/api/AKSTriggerResponse"
	}
	aks := s.wrap("aks-trigger", "", s.aksTrigger)
	s.sessionRoutes(mux)
	route("DELETE /v1/session", "session-end", "", s.signOut)
	route("POST /v1/alerts", "alerts-post", auth.ScopeAlerts, s.postAlert)
	route("GET /v1/alerts", "alerts-list", auth.ScopeRead, s.listAlerts)
	route("GET /v1/alerts/events", "alerts-events", auth.ScopeRead, s.alertEvents)
	route("GET /v1/alerts/{id}", "alerts-get", auth.ScopeRead, s.getAlert)
	route("PATCH /v1/alerts/{id}", "alerts-triage", auth.ScopeTriage, s.triageAlert)
	route("POST /v1/alerts/close", "alerts-close", auth.ScopeTriage, s.closeAlerts)
	route("POST /v1/actions", "actions-post", "", s.postAction)
	route("GET /v1/actions", "actions-list", auth.ScopeRead, s.listActions)
	route("GET /v1/actions/{id}", "actions-get", auth.ScopeRead, s.getAction)
	route("POST /v1/actions/{id}/revert", "actions-revert", "", s.revertAction)
	route("POST /v1/actions/{id}/approve", "actions-approve", auth.ScopeApprove, s.approveAction)
	route("POST /v1/audit", "audit", auth.ScopeAudit, s.postAudit)
	s.consoleRoutes(route)
	s.huntRoutes(route)
	route("GET /metrics", "metrics", auth.ScopeRead, func(w http.ResponseWriter, r *http.Request, _ *auth.Key) {
		promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	})
	// The console: its page at /, its script and style under /console/.
	mux.Handle("GET /console/", http.FileServerFS(web.Console))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, web.Console, "console/index.html")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.Ready != nil {
			report, ok := s.Ready(r.Context())
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_, _ = io.WriteString(w, report)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	// Azure Functions match routes without regard to case, and so does
	// the AKS endpoint.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if strings.EqualFold(strings.TrimSuffix(r.URL.Path, "/"), aksRoute) {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				writeError(w, http.StatusMethodNotAllowed, "use POST")
				return
			}
			aks.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flushing and
// deadlines for the event stream).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap authenticates, rate-limits, checks the route's scope (when it has a
// fixed one), bounds the body, and logs and counts the request. It never
// logs the key or the query string.
func (s *Server) wrap(name, scope string, h func(http.ResponseWriter, *http.Request, *auth.Key)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		keyName := "-"
		defer func() {
			s.Metrics.HTTPRequests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
			s.Log.Info("request", "method", r.Method, "route", name, "path", r.URL.Path, "key", keyName,
				"status", sw.code, "duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
		}()
		key := s.Auth.Lookup(presentedKey(r))
		if key == nil {
			var csrfOK bool
			if key, csrfOK = s.fromSession(r); key != nil && !csrfOK {
				keyName = key.Name
				writeError(sw, http.StatusForbidden, "missing or wrong X-CSRF-Token for this session")
				return
			}
		}
		if key == nil {
			// Failed attempts are rate-limited by client address, so
			// guessing keys is slow.
			if !s.failures.allow(r.RemoteAddr) {
				sw.Header().Set("Retry-After", "1")
				writeError(sw, http.StatusTooManyRequests, "too many requests without a valid API key")
				return
			}
			writeError(sw, http.StatusUnauthorized, "a valid API key is required (?code=, x-functions-key or Authorization: Bearer)")
			return
		}
		keyName = key.Name
		if !s.Auth.Allow(key) {
			sw.Header().Set("Retry-After", "1")
			writeError(sw, http.StatusTooManyRequests, "rate limit exceeded for key "+key.Name)
			return
		}
		if scope != "" && !key.Allows(scope) {
			writeError(sw, http.StatusForbidden, fmt.Sprintf("key %s lacks scope %q", key.Name, scope))
			return
		}
		limit := s.MaxBody
		if limit <= 0 {
			limit = 1 << 20
		}
		if name == "audit" {
			limit = s.MaxAuditBody
			if limit <= 0 {
				limit = 32 << 20
			}
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		h(sw, r, key)
	})
}

func presentedKey(r *http.Request) string {
	if k := r.Header.Get("x-functions-key"); k != "" {
		return k
	}
	if k, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	return r.URL.Query().Get("code")
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readJSON decodes a body strictly: unknown fields, trailing data and
// oversized bodies are errors.
func readJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeStrict(b, v)
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return noTrailing(dec)
}

// noTrailing fails when anything but white space follows the value.
func noTrailing(dec *json.Decoder) error {
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: trailing data after the object")
	}
	return nil
}

// readBody reads a bounded body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, fmt.Errorf("body larger than %d bytes", mb.Limit)
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}

// writeActionError answers an action's error: 400 for the caller's, 404,
// 503 with Retry-After when the cluster cannot be reached, else 500. res,
// when the action was journaled, goes along.
func writeActionError(w http.ResponseWriter, err error, res *ActionResult) {
	code := actionStatus(err)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	if res != nil {
		writeJSON(w, code, map[string]any{"error": err.Error(), "action": res})
		return
	}
	writeError(w, code, err.Error())
}

// actionStatus maps an action error to a status code.
func actionStatus(err error) int {
	if errors.Is(err, ErrBadRequest) {
		return http.StatusBadRequest
	}
	if errors.Is(err, journal.ErrNotFound) {
		return http.StatusNotFound
	}
	if errors.Is(err, ErrUnavailable) {
		return http.StatusServiceUnavailable
	}
	if errors.Is(err, journal.ErrConflict) {
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
