package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/store"
)

// ruleCountLimit bounds the alerts counted per rule.
const ruleCountLimit = 1000

// ruleInfo is a rule as GET /v1/rules shows it.
type ruleInfo struct {
	*detect.Rule
	// Query is the rule's query with its parameters filled in.
	Query string `json:"query"`
	// Pack is true for kdfir's built-in rules, false for the user's.
	Pack    bool       `json:"pack"`
	LastRun *time.Time `json:"lastRun,omitempty"`
	Alerts  ruleAlerts `json:"alerts"`
}

// ruleAlerts counts the alerts a rule raised (at most ruleCountLimit).
type ruleAlerts struct {
	Total  int  `json:"total"`
	Open   int  `json:"open"`
	Capped bool `json:"capped,omitempty"`
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request, _ *auth.Key) {
	ctx := r.Context()
	out := make([]ruleInfo, 0, len(s.Rules))
	for _, rule := range s.Rules {
		ri := ruleInfo{Rule: rule, Query: rule.QueryText(), Pack: strings.HasPrefix(rule.File, "builtin:")}
		if s.RuleState != nil && rule.Schedule != nil {
			if t, err := s.RuleState.LastRun(ctx, rule.ID); err == nil && !t.IsZero() {
				ri.LastRun = &t
			}
		}
		if s.Alerts != nil {
			list, err := s.Alerts.List(ctx, alert.Filter{Rule: rule.ID, Limit: ruleCountLimit})
			if err != nil {
				writeError(w, http.StatusInternalServerError, "count alerts: "+err.Error())
				return
			}
			ri.Alerts.Total, ri.Alerts.Capped = len(list), len(list) == ruleCountLimit
			for _, a := range list {
				if a.Triage == nil || a.Triage.Status != alert.StatusClosed {
					ri.Alerts.Open++
				}
			}
		}
		out = append(out, ri)
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": out})
}

// ruleTestRequest is POST /v1/rules/{id}/test's optional body.
type ruleTestRequest struct {
	// Since is how far back to run the rule: a duration or an RFC 3339
	// time (default 24h).
	Since string `json:"since,omitempty"`
}

// ruleTest is what a rule would raise over the window.
type ruleTest struct {
	Rule      string            `json:"rule"`
	Since     time.Time         `json:"since"`
	Until     time.Time         `json:"until"`
	ElapsedMs int64             `json:"elapsedMs"`
	Alerts    []*alert.Alert    `json:"alerts"`
	Excepted  []detect.Excepted `json:"excepted"`
}

// testRule is POST /v1/rules/{id}/test: the alerts the rule would raise
// over the last 24 hours of stored events. It raises nothing, and neither
// reads nor changes what the running rules have seen or suppressed.
func (s *Server) testRule(w http.ResponseWriter, r *http.Request, k *auth.Key) {
	var rule *detect.Rule
	for _, x := range s.Rules {
		if x.ID == r.PathValue("id") {
			rule = x
		}
	}
	if rule == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no rule %q", r.PathValue("id")))
		return
	}
	if s.Events == nil {
		writeError(w, http.StatusNotFound, "this server has no event store")
		return
	}
	var req ruleTestRequest
	if b, err := readBody(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	} else if len(strings.TrimSpace(string(b))) > 0 {
		if err := decodeStrict(b, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	now := time.Now().UTC()
	opts, err := s.huntWindow(k, req.Since, "", now)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	opts.Until = now
	ctx, done, ok := s.hunts.start(w, r)
	if !ok {
		return
	}
	defer done()
	start := time.Now()
	// A fresh engine: the service's own keeps the suppression state of
	// the running rules, which a test must not touch.
	alerts, excepted, err := (&detect.Engine{Now: func() time.Time { return now }}).EvaluateDetail(ctx, rule, s.Events.Source(store.SourceOptions(opts)))
	if err != nil {
		writeHuntError(w, err)
		return
	}
	if alerts == nil {
		alerts = []*alert.Alert{}
	}
	if excepted == nil {
		excepted = []detect.Excepted{}
	}
	writeJSON(w, http.StatusOK, ruleTest{Rule: rule.ID, Since: opts.Since, Until: now, ElapsedMs: time.Since(start).Milliseconds(), Alerts: alerts, Excepted: excepted})
}
