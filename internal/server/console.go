package server

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/playbook"
)

// The console's own routes: what the signed-in key may do, so the page
// shows only the buttons it can use, and the rejection of a held step.
func (s *Server) consoleRoutes(route func(pattern, name, scope string, h func(http.ResponseWriter, *http.Request, *auth.Key))) {
	route("GET /v1/console/config", "console-config", "", s.consoleConfig)
	route("POST /v1/actions/{id}/reject", "actions-reject", auth.ScopeApprove, s.rejectAction)
}

// consoleConfig is what GET /v1/console/config answers.
type consoleConfig struct {
	Key    string   `json:"key"`
	Scopes []string `json:"scopes"`
	// Actions are the actions the key may run here: exec-pod only when
	// exec is enabled.
	Actions     []string `json:"actions"`
	ExecEnabled bool     `json:"execEnabled"`
	// Hunt, Triage, Approve: the key may run hunts, triage alerts,
	// approve or reject held steps.
	Hunt    bool `json:"hunt"`
	Triage  bool `json:"triage"`
	Approve bool `json:"approve"`
	// Revert is "any" (revert-any), "own" (revert the actions the key may
	// take) or "".
	Revert string `json:"revert"`
	// Cluster is the only cluster the key may act on, when it is bound.
	Cluster string `json:"cluster,omitempty"`
}

func (s *Server) consoleConfig(w http.ResponseWriter, _ *http.Request, key *auth.Key) {
	c := consoleConfig{Key: key.Name, Scopes: nonNil(key.Scopes), Actions: []string{}, ExecEnabled: s.ExecEnabled,
		Hunt: key.Allows(auth.ScopeHunt), Triage: key.Allows(auth.ScopeTriage), Approve: key.Allows(auth.ScopeApprove), Cluster: key.Cluster}
	for a := range playbook.Actions {
		if key.Allows(a) && (a != "exec-pod" || s.ExecEnabled) {
			c.Actions = append(c.Actions, a)
		}
	}
	sort.Strings(c.Actions)
	switch {
	case key.Allows(auth.ScopeRevertAny):
		c.Revert = "any"
	case key.Allows(auth.ScopeRevert):
		c.Revert = "own"
	}
	writeJSON(w, http.StatusOK, c)
}

type revertRequest struct {
	// DryRun asks the API server to check the revert and answers what it
	// would restore (plan) and leave alone (leftAlone).
	DryRun bool `json:"dryRun,omitempty"`
}

type rejectRequest struct {
	Reason string `json:"reason,omitempty"`
}

// readOptionalJSON decodes a body strictly, when there is one.
func readOptionalJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return err
	}
	return decodeStrict(b, v)
}

// rejectAction refuses a held step. It needs the approve scope and the
// scope of the action, as approving it does.
func (s *Server) rejectAction(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	var req rejectRequest
	if err := readOptionalJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.Reason) > 4096 {
		writeError(w, http.StatusBadRequest, "reason: at most 4096 bytes")
		return
	}
	e, ok := s.heldFor(w, r, key)
	if !ok {
		return
	}
	e, err := s.Actions.Reject(r.Context(), e.ID, key.Name, req.Reason)
	if err != nil {
		writeActionError(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, redacted(e))
}

// heldFor reads the action of the request's path for an approval or a
// rejection: the key needs the action's scope and its cluster. When not,
// it has answered and returns false.
func (s *Server) heldFor(w http.ResponseWriter, r *http.Request, key *auth.Key) (*journal.Entry, bool) {
	e, err := s.Actions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeActionError(w, err, nil)
		return nil, false
	}
	if !key.Allows(e.Action) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("key %s may not approve or reject %s: it needs that scope", key.Name, e.Action))
		return nil, false
	}
	if err := s.keyCluster(key, e.Cluster); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return nil, false
	}
	return e, true
}
