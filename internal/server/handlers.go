package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/playbook"
)

// run runs one action with metrics.
func (s *Server) run(ctx context.Context, req ActionRequest) (*ActionResult, error) {
	start := time.Now()
	res, err := s.Actions.Run(ctx, req)
	result := "succeeded"
	switch {
	case err != nil:
		result = "failed"
	case res != nil && res.Status != "":
		result = res.Status
	}
	s.Metrics.Actions.WithLabelValues(req.Action, result).Inc()
	s.Metrics.ActionLatency.WithLabelValues(req.Action).Observe(time.Since(start).Seconds())
	return res, err
}

type alertResponse struct {
	Alert     *alert.Alert       `json:"alert"`
	Duplicate bool               `json:"duplicate,omitempty"`
	Playbooks []playbook.Outcome `json:"playbooks,omitempty"`
	Actions   []string           `json:"actions"`
}

func (s *Server) postAlert(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a, err := alert.Parse(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if a.Cluster == "" && key.Cluster != "" {
		a.Cluster = key.Cluster
		for i := range a.Entities {
			if a.Entities[i].Cluster == "" && a.Entities[i].Type != alert.EntityUser && a.Entities[i].Type != alert.EntityIP {
				a.Entities[i].Cluster = key.Cluster
			}
		}
	}
	s.Metrics.AlertsReceived.WithLabelValues(a.Source).Inc()
	// The playbooks run to the end even when the client hangs up, with
	// only the actions the delivering key's scopes name.
	resp, err := s.Intake(withPrincipal(context.WithoutCancel(r.Context()), key), a)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// Intake stores an alert, unless it repeats one already received from the
// same source within the dedupe window, and runs the playbooks that match
// it. Alerts raised by kdfir's own rules come in here too.
func (s *Server) Intake(ctx context.Context, a *alert.Alert) (*alertResponse, error) {
	window := s.DedupeWindow
	if window <= 0 {
		window = 10 * time.Minute
	}
	if a.SourceID != "" {
		// Serialise check-and-add so two concurrent deliveries of one
		// alert cannot both pass.
		s.alertMu.Lock()
		prev, err := s.Alerts.FindBySource(ctx, a.Source, a.SourceID, time.Now().Add(-window))
		if err != nil {
			s.alertMu.Unlock()
			return nil, err
		}
		if prev != nil {
			s.alertMu.Unlock()
			return &alertResponse{Alert: prev, Duplicate: true, Actions: prev.Actions}, nil
		}
		err = s.Alerts.Add(ctx, a)
		s.alertMu.Unlock()
		if err != nil {
			return nil, err
		}
	} else if err := s.Alerts.Add(ctx, a); err != nil {
		return nil, err
	}
	s.feed.publish("alert", a)
	outs := s.Playbooks.Run(ctx, a)
	var ids []string
	for _, o := range outs {
		for _, st := range o.Steps {
			if st.ActionID != "" {
				ids = append(ids, st.ActionID)
			}
		}
	}
	a.Actions = ids
	if len(ids) > 0 {
		if err := s.Alerts.SetActions(ctx, a.ID, ids); err != nil {
			return nil, err
		}
	}
	return &alertResponse{Alert: a, Playbooks: outs, Actions: ids}, nil
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, _ *auth.Key) {
	q := r.URL.Query()
	f := alert.Filter{Status: listParam(q, "status"), Severity: listParam(q, "severity"), Source: listParam(q, "source"),
		Cluster: q.Get("cluster"), Rule: q.Get("rule"), Limit: limitParam(r)}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: want an RFC 3339 time such as 2026-12-03T10:00:00Z", name))
				return
			}
			*dst = t
		}
	}
	list, err := s.Alerts.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": nonNil(list)})
}

func (s *Server) getAlert(w http.ResponseWriter, r *http.Request, _ *auth.Key) {
	a, err := s.Alerts.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) postAction(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	var req ActionRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	want, ok := playbook.Actions[req.Action]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown action %q", req.Action))
		return
	}
	if !key.Allows(req.Action) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("key %s may not run %s", key.Name, req.Action))
		return
	}
	if req.Action == "exec-pod" && !s.ExecEnabled {
		writeError(w, http.StatusForbidden, "exec is disabled: set exec.enabled: true in the kdfir serve config")
		return
	}
	if req.Target.Type == "" {
		req.Target.Type = want
	}
	if req.Target.Type != want {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s acts on a %s, not a %s", req.Action, want, req.Target.Type))
		return
	}
	if req.Cluster == "" {
		req.Cluster = firstNonEmpty(req.Target.Cluster, key.Cluster)
	}
	if err := s.keyCluster(key, req.Cluster); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if req.Alert != "" {
		if _, err := s.Alerts.Get(r.Context(), req.Alert); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("alert %q: %v", req.Alert, err))
			return
		}
		req.Parent = req.Alert
	}
	req.Actor = key.Name
	res, err := s.run(context.WithoutCancel(r.Context()), req)
	if err != nil {
		writeActionError(w, err, res)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) listActions(w http.ResponseWriter, r *http.Request, _ *auth.Key) {
	q := r.URL.Query()
	list, err := s.Actions.List(r.Context(), journal.Filter{Cluster: q.Get("cluster"), Action: q.Get("action"), Target: q.Get("target"), Parent: q.Get("alert"), Limit: limitParam(r)})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"actions": redacted(nonNil(list))})
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request, _ *auth.Key) {
	e, err := s.Actions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeActionError(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, redacted(e))
}

// redacted is v as JSON with every SAS signature in it redacted: a held
// step keeps its parameters (a destination URL with its token) to run
// them on approval, but the API never shows the signature.
func redacted(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return json.RawMessage(evidence.Redact(string(b)))
}

func (s *Server) revertAction(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	e, err := s.Actions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeActionError(w, err, nil)
		return
	}
	// revert needs the scope of what it undoes, or revert-any.
	if !key.Allows(auth.ScopeRevertAny) && !(key.Allows(auth.ScopeRevert) && key.Allows(e.Action)) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("key %s may not revert %s: it needs scopes revert and %s, or revert-any", key.Name, e.Action, e.Action))
		return
	}
	if err := s.keyCluster(key, e.Cluster); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	var opts revertRequest
	if err := readOptionalJSON(r, &opts); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.Actions.Revert(context.WithoutCancel(r.Context()), e.ID, key.Name, opts.DryRun)
	if err != nil {
		writeActionError(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// resume is what a held playbook step needs to go on after approval.
type resume struct {
	Alert     string `json:"alert"`
	Playbook  string `json:"playbook"`
	StepIndex int    `json:"step"`
	// Principal limits the rest of the playbook as it limited the start.
	Principal *principal `json:"principal,omitempty"`
}

func (s *Server) approveAction(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	e, ok := s.heldFor(w, r, key)
	if !ok {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	res, raw, err := s.Actions.Approve(ctx, e.ID, key.Name)
	if err != nil {
		writeActionError(w, err, nil)
		return
	}
	out := map[string]any{"action": res}
	var rs resume
	if len(raw) > 0 && json.Unmarshal(raw, &rs) == nil && rs.Playbook != "" {
		a, err := s.Alerts.Get(ctx, rs.Alert)
		if rs.Principal != nil {
			ctx = context.WithValue(ctx, principalKey{}, *rs.Principal)
		}
		if err == nil {
			o, err := s.Playbooks.Continue(ctx, a, rs.Playbook, rs.StepIndex)
			if err != nil {
				out["playbookError"] = err.Error()
			} else {
				out["playbook"] = o
				ids := append([]string{}, a.Actions...)
				for _, st := range o.Steps {
					if st.ActionID != "" {
						ids = append(ids, st.ActionID)
					}
				}
				_ = s.Alerts.SetActions(ctx, a.ID, ids)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) postAudit(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	if s.Audit == nil {
		writeError(w, http.StatusNotFound, "audit ingestion is not configured")
		return
	}
	n, err := s.Audit.IngestWebhook(withPrincipal(r.Context(), key), key.Cluster, r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("body larger than %d bytes", mb.Limit))
			return
		}
		code := http.StatusInternalServerError
		if errors.Is(err, ErrBadRequest) {
			code = http.StatusBadRequest
		}
		writeError(w, code, err.Error())
		return
	}
	s.Metrics.AuditEvents.Add(float64(n))
	writeJSON(w, http.StatusOK, map[string]int{"stored": n})
}

// Run and Hold make the server the playbook engine's executor.

// Run performs a playbook step.
func (s *Server) Run(ctx context.Context, req playbook.StepRequest) (playbook.StepResult, error) {
	ar := s.stepAction(req)
	if why := mayRun(ctx, ar.Action, ar.Cluster, s.sameCluster); why != "" {
		return playbook.StepResult{Status: "refused", Message: why}, errors.New(why)
	}
	res, err := s.run(ctx, ar)
	return stepResult(res), err
}

// Hold journals a step that needs approval: whoever approves it needs
// the action's scope. The approval then runs the rest of the playbook
// with the same limits as the alert's key.
func (s *Server) Hold(ctx context.Context, req playbook.StepRequest) (playbook.StepResult, error) {
	ar := s.stepAction(req)
	rs := resume{Alert: req.Alert.ID, Playbook: req.Playbook, StepIndex: req.StepIndex}
	if p, ok := principalOf(ctx); ok {
		rs.Principal = &p
	}
	raw, _ := json.Marshal(rs)
	res, err := s.Actions.Hold(ctx, ar, raw)
	return stepResult(res), err
}

func (s *Server) stepAction(req playbook.StepRequest) ActionRequest {
	return ActionRequest{
		Cluster: firstNonEmpty(req.Target.Cluster, req.Alert.Cluster),
		Action:  req.Step.Action,
		Target:  req.Target,
		Params:  req.Step.Params,
		Reason:  fmt.Sprintf("alert %s (%s): %s", req.Alert.ID, req.Alert.Source, req.Alert.Title),
		DryRun:  req.DryRun,
		Actor:   "playbook:" + req.Playbook,
		Parent:  req.Alert.ID,
	}
}

func stepResult(res *ActionResult) playbook.StepResult {
	if res == nil {
		return playbook.StepResult{}
	}
	return playbook.StepResult{ActionID: res.ID, Status: res.Status, Message: res.Message}
}

func limitParam(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || n <= 0 || n > 1000 {
		return 100
	}
	return n
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// listParam reads a parameter given as a comma-separated list, repeated,
// or both.
func listParam(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// triageAlert changes one alert's status, owner, classification, or adds
// a comment, recorded with the key's name.
func (s *Server) triageAlert(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	var u alert.TriageUpdate
	if err := readJSON(r, &u); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a, err := s.Alerts.Triage(r.Context(), r.PathValue("id"), u, key.Name)
	if err != nil {
		writeError(w, triageStatus(err), err.Error())
		return
	}
	s.feed.publish("triage", a)
	writeJSON(w, http.StatusOK, a)
}

type closeRequest struct {
	IDs            []string `json:"ids"`
	Classification string   `json:"classification"`
	Comment        string   `json:"comment,omitempty"`
}

// closeAlerts closes several alerts at once, all or none.
func (s *Server) closeAlerts(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	var req closeRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.IDs) == 0 || len(req.IDs) > 1000 {
		writeError(w, http.StatusBadRequest, "ids: give 1 to 1000 alert ids")
		return
	}
	list, err := s.Alerts.CloseMany(r.Context(), req.IDs, req.Classification, req.Comment, key.Name)
	if err != nil {
		writeError(w, triageStatus(err), err.Error())
		return
	}
	for _, a := range list {
		s.feed.publish("triage", a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": list})
}

// triageStatus is 404 for an unknown alert and 400 for an update that does
// not apply; the store's own failures are 500.
func triageStatus(err error) int {
	switch {
	case errors.Is(err, alert.ErrNotFound):
		return http.StatusNotFound
	case errors.As(err, new(*alert.TriageError)):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
