package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/auth"
)

// aksRequest is the original Azure Function's request body, unchanged.
type aksRequest struct {
	Action         string          `json:"action"`
	Entities       json.RawMessage `json:"entities"`
	StorageAccount string          `json:"storageaccount"`
	BlobContainer  string          `json:"blobcontainer"`
	BlobSASToken   string          `json:"blobsastoken"`
	// Command is runcommand's command: a string split on spaces (as the
	// original did) or an argv array.
	Command   json.RawMessage `json:"command,omitempty"`
	Container string          `json:"container,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	DryRun    bool            `json:"dryrun,omitempty"`
}

// aksActions maps the original function's action names (compared without
// case, hyphens or underscores) to kdfir actions and the entity type each
// acts on.
var aksActions = map[string]struct{ action, target string }{
	"isolatepod":               {"isolate-pod", alert.EntityPod},
	"removepodisolation":       {"unisolate-pod", alert.EntityPod},
	"isolatenamespace":         {"isolate-namespace", alert.EntityNamespace},
	"removenamespaceisolation": {"unisolate-namespace", alert.EntityNamespace},
	"cordonnode":               {"cordon-node", alert.EntityNode},
	"uncordonnode":             {"uncordon-node", alert.EntityNode},
	"collectartifacts":         {"collect-pod", alert.EntityPod},
	"runcommand":               {"exec-pod", alert.EntityPod},
}

// AKSActionNames lists the accepted action names, for documentation.
func AKSActionNames() []string {
	out := make([]string, 0, len(aksActions))
	for k := range aksActions {
		out = append(out, k)
	}
	return out
}

func normalizeAction(s string) string {
	return strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(s))
}

type triggerResponse struct {
	Action  string          `json:"action"`
	Status  string          `json:"status"`
	Actions []*ActionResult `json:"actions"`
	Errors  []string        `json:"errors,omitempty"`
}

func (s *Server) aksTrigger(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	var req aksRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	spec, ok := aksActions[normalizeAction(req.Action)]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown action %q (want one of isolatepod, removepodisolation, isolatenamespace, removenamespaceisolation, cordonnode, uncordonnode, collectartifacts, runcommand)", req.Action))
		return
	}
	if !key.Allows(spec.action) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("key %s may not run %s", key.Name, spec.action))
		return
	}
	if spec.action == "exec-pod" && !s.ExecEnabled {
		writeError(w, http.StatusForbidden, "runcommand is disabled: set exec.enabled: true in the kdfir serve config")
		return
	}
	ents, err := alert.ParseEntities(req.Entities)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	targets := targetsFor(ents, spec.target)
	if len(targets) == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("entities name no %s for action %s", spec.target, req.Action))
		return
	}
	params := map[string]any{}
	switch spec.action {
	case "collect-pod":
		if req.StorageAccount != "" || req.BlobContainer != "" || req.BlobSASToken != "" {
			dest, err := sasDestination(req.StorageAccount, req.BlobContainer, req.BlobSASToken)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			params["to"] = dest
		}
	case "exec-pod":
		argv, err := commandArgv(req.Command)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		params["command"] = argv
		if req.Container != "" {
			params["container"] = req.Container
		}
	}
	cluster := clusterOf(ents, key)
	resp := triggerResponse{Action: spec.action, Status: "succeeded"}
	for _, t := range targets {
		res, err := s.run(r.Context(), ActionRequest{Cluster: cluster, Action: spec.action, Target: t, Params: params,
			Reason: req.Reason, DryRun: req.DryRun, Actor: key.Name})
		if err != nil {
			if errors.Is(err, ErrBadRequest) && len(targets) == 1 {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			resp.Status = "failed"
			resp.Errors = append(resp.Errors, err.Error())
		}
		if res != nil {
			resp.Actions = append(resp.Actions, res)
		}
	}
	code := http.StatusOK
	if resp.Status == "failed" {
		code = http.StatusInternalServerError
		if len(resp.Actions) > 0 {
			code = http.StatusMultiStatus
		}
	}
	writeJSON(w, code, resp)
}

// targetsFor picks the entities an action acts on. A namespace action also
// takes the namespaces of named pods, and a pod action the pods of named
// containers.
func targetsFor(ents []alert.Entity, typ string) []alert.Entity {
	var out []alert.Entity
	seen := map[string]bool{}
	add := func(e alert.Entity) {
		if k := e.Key(); !seen[k] && e.Name != "" {
			seen[k] = true
			out = append(out, e)
		}
	}
	for _, e := range ents {
		if e.Type == typ {
			add(e)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, e := range ents {
		switch {
		case typ == alert.EntityNamespace && e.Type == alert.EntityPod && e.Namespace != "":
			add(alert.Entity{Type: alert.EntityNamespace, Name: e.Namespace, Cluster: e.Cluster})
		case typ == alert.EntityPod && e.Type == alert.EntityContainer && e.Pod != "":
			add(alert.Entity{Type: alert.EntityPod, Name: e.Pod, Namespace: e.Namespace, Cluster: e.Cluster})
		}
	}
	return out
}

// clusterOf is the cluster the entities name, or the key's default.
func clusterOf(ents []alert.Entity, key *auth.Key) string {
	for _, e := range ents {
		if e.Type == alert.EntityCluster && e.Cluster != "" {
			return e.Cluster
		}
	}
	for _, e := range ents {
		if e.Cluster != "" {
			return e.Cluster
		}
	}
	return key.Cluster
}

// sasDestination builds the evidence destination the Sentinel playbooks
// describe with storageaccount, blobcontainer and blobsastoken. The
// account may also be a full endpoint URL (for Azurite or sovereign
// clouds).
func sasDestination(account, container, sas string) (string, error) {
	if account == "" || container == "" || sas == "" {
		return "", errors.New("collectartifacts needs storageaccount, blobcontainer and blobsastoken together")
	}
	sas = strings.TrimPrefix(sas, "?")
	if _, err := url.ParseQuery(sas); err != nil {
		return "", errors.New("blobsastoken is not a valid SAS query string")
	}
	base := "https://" + account + ".blob.core.windows.net"
	if strings.Contains(account, "://") {
		u, err := url.Parse(account)
		if err != nil || u.Host == "" {
			return "", errors.New("storageaccount is neither an account name nor an endpoint URL")
		}
		base = strings.TrimRight(account, "/")
	} else if strings.ContainsAny(account, "/?#") {
		return "", errors.New("storageaccount is not a valid account name")
	}
	return base + "/" + url.PathEscape(container) + "?" + sas, nil
}

func commandArgv(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("runcommand needs command")
	}
	var argv []string
	if err := json.Unmarshal(raw, &argv); err == nil {
		if len(argv) == 0 || argv[0] == "" {
			return nil, errors.New("command is empty")
		}
		return argv, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New("command must be a string or an array of strings")
	}
	argv = strings.Fields(s)
	if len(argv) == 0 {
		return nil, errors.New("command is empty")
	}
	return argv, nil
}
